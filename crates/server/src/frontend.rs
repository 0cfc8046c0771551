//! The front end's lifetime: bind every endpoint, serve gRPC and HTTP on a tokio runtime whose
//! threads stay off the resources' cores, shut down gracefully.

use crate::auth::Auth;
use crate::backend::Backend;
use crate::catalog::Catalog;
use crate::error::{ProtocolError, StartError};
use crate::listen::{Address, Listen, Scheme};
use crate::metrics::Metrics;
use crate::repository::Repository;
use crate::shm::Registry;
use lalarand_runtime::serve::{Input, JobResult};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// What a request may ask for, checked before anything is allocated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request (HTTP body, gRPC message), bytes.
    pub max_request_bytes: usize,
    /// Most elements one input tensor may hold (on top of the model's declared shape).
    pub max_elements: usize,
}

impl Default for Limits {
    /// 64 MiB requests, 16 Mi elements per tensor (a 1x3x224x224 fp32 image is 0.6 MB).
    fn default() -> Self {
        Self { max_request_bytes: 64 << 20, max_elements: 16 << 20 }
    }
}

/// How the front end runs.
#[derive(Debug)]
pub struct Options {
    pub listen: Vec<Listen>,
    /// Allows endpoints other than a Unix socket or a loopback address (with a token).
    pub allow_remote: bool,
    pub auth: Auth,
    pub limits: Limits,
    /// Cores the front end's threads run on (the cores no cpu resource owns); empty: any.
    pub cores: Vec<usize>,
    /// Threads of the tokio runtime (at least 1).
    pub threads: usize,
}

impl Options {
    pub fn local(listen: Vec<Listen>) -> Self {
        Self {
            listen,
            allow_remote: false,
            auth: Auth::open(),
            limits: Limits::default(),
            cores: Vec::new(),
            threads: 2,
        }
    }
}

/// What every handler shares.
pub(crate) struct State {
    pub backend: Arc<dyn Backend>,
    /// Replaced whole by a model load or unload (the repository extension).
    pub catalog: RwLock<Arc<Catalog>>,
    /// Loads and unloads models (`None`: the repository extension is off).
    pub repository: Option<Arc<dyn Repository>>,
    /// Held from a change's request to its catalog's swap, so catalogs swap in change order.
    pub changing: Mutex<()>,
    pub shm: Registry,
    pub auth: Auth,
    pub limits: Limits,
    pub metrics: Metrics,
}

impl State {
    /// The models served now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The repository, or why models cannot be loaded here.
    pub fn repository(&self) -> Result<Arc<dyn Repository>, ProtocolError> {
        self.repository.clone().ok_or_else(|| {
            ProtocolError::new(
                crate::Code::Unavailable,
                "the model repository extension is off; start the server with --allow-load",
            )
        })
    }

    /// Loads (`Some(parameters)`) or unloads model `name` through the repository, on a blocking
    /// thread (a change waits for the old mode to drain), then serves the new catalog.
    pub async fn change_model(
        self: &Arc<Self>,
        name: &str,
        load: Option<crate::LoadParameters>,
    ) -> Result<serde_json::Value, ProtocolError> {
        let repo = self.repository()?;
        let (state, name) = (self.clone(), name.to_string());
        let changed = tokio::task::spawn_blocking(move || {
            let _turn = state.changing.lock().unwrap_or_else(PoisonError::into_inner);
            let changed = match &load {
                Some(p) => repo.load(&name, p),
                None => repo.unload(&name),
            }?;
            *state.catalog.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(changed.catalog);
            Ok::<_, ProtocolError>(changed.report)
        })
        .await
        .map_err(|e| ProtocolError::new(crate::Code::Internal, format!("the model change failed: {e}")))??;
        Ok(changed)
    }

    /// The model called `name` (version "" or "1"), served to clients.
    pub fn model(&self, name: &str, version: &str) -> Result<ModelRef, ProtocolError> {
        let catalog = self.catalog();
        let index = catalog.models.iter().position(|m| m.name == name).ok_or_else(|| {
            ProtocolError::not_found(format!("no model is called {name:?} (models: {})", catalog.names().join(", ")))
        })?;
        if !(version.is_empty() || version == "1") {
            return Err(ProtocolError::not_found(format!("model {name:?} has only version 1, not {version:?}")));
        }
        Ok(ModelRef { catalog, index })
    }

    /// Whether model `name` takes infer requests now.
    pub fn ready(&self, name: &str, version: &str) -> bool {
        !self.backend.is_stopped() && self.model(name, version).is_ok_and(|m| !m.periodic)
    }

    /// Releases a job of `task` and waits for it without blocking a thread: the worker that ends
    /// the job wakes this task, which reads the outputs (on a front-end thread, off the
    /// workers' cores). A client that goes away drops this future: the job still runs and
    /// counts, its result is discarded.
    pub async fn run_job(&self, task: &str, input: Input) -> Result<JobResult, ProtocolError> {
        let result = self.backend.submit(task, input)?.await?;
        self.metrics.observe(task, result.timing.response);
        Ok(result)
    }
}

/// A served model, valid while a request uses it even if the model is unloaded meanwhile.
pub(crate) struct ModelRef {
    catalog: Arc<Catalog>,
    index: usize,
}

impl std::ops::Deref for ModelRef {
    type Target = crate::ModelInfo;
    fn deref(&self) -> &crate::ModelInfo {
        &self.catalog.models[self.index]
    }
}

/// A running front end: every endpoint bound and served until [`Self::shutdown`].
pub struct FrontEnd {
    endpoints: Vec<String>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    unix_paths: Vec<std::path::PathBuf>,
}

impl std::fmt::Debug for FrontEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontEnd").field("endpoints", &self.endpoints).finish()
    }
}

/// Refuses endpoints that other machines can reach unless allowed, with a token.
fn check_security(o: &Options) -> Result<(), StartError> {
    for l in &o.listen {
        if l.is_local() {
            continue;
        }
        let url = l.url(None);
        if !o.allow_remote {
            return Err(StartError::Security {
                url,
                problem: "other machines can reach this address; serve on 127.0.0.1 or a Unix socket, or pass --allow-remote with --token-file".into(),
            });
        }
        if !o.auth.requires_token() {
            return Err(StartError::Security {
                url,
                problem: "--allow-remote needs a bearer token: --token-file FILE".into(),
            });
        }
    }
    Ok(())
}

/// Binds a Unix socket at `path` (mode 0660), replacing a stale socket file nobody listens on.
fn bind_unix(url: &str, path: &std::path::Path) -> Result<tokio::net::UnixListener, StartError> {
    let bind_err = |error| StartError::Bind { url: url.into(), error };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(bind_err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "a server already listens there")));
        }
        let is_socket = std::fs::symlink_metadata(path)
            .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
            .unwrap_or(false);
        if !is_socket {
            return Err(bind_err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is there; remove it or choose another path",
            )));
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    Ok(listener)
}

impl FrontEnd {
    /// Checks the endpoints (local unless allowed with a token), starts the runtime's threads
    /// on `options.cores`, binds every endpoint and starts serving.
    pub fn start(backend: Arc<dyn Backend>, catalog: Catalog, options: Options) -> Result<Self, StartError> {
        Self::start_with_repository(backend, catalog, options, None)
    }

    /// [`Self::start`] with the model repository extension: `POST /v2/repository/...` and the
    /// gRPC `Repository*` calls load and unload models through `repository`.
    pub fn start_with_repository(
        backend: Arc<dyn Backend>,
        catalog: Catalog,
        options: Options,
        repository: Option<Arc<dyn Repository>>,
    ) -> Result<Self, StartError> {
        check_security(&options)?;
        if options.listen.is_empty() {
            return Err(StartError::Listen { url: String::new(), problem: "no endpoint to listen on".into() });
        }
        let cores = options.cores.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads.max(1))
            .max_blocking_threads(2)
            .thread_name("lalarand-net")
            .on_thread_start(move || {
                if !cores.is_empty() {
                    if let Err(e) = lalarand_runtime::os::pin_current_thread(&cores) {
                        tracing::warn!("cannot keep a network thread on cores {cores:?} ({e})");
                    }
                }
            })
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let metrics = Metrics::new(&catalog);
        let state = Arc::new(State {
            backend,
            catalog: RwLock::new(Arc::new(catalog)),
            repository,
            changing: Mutex::new(()),
            shm: Registry::default(),
            auth: options.auth,
            limits: options.limits,
            metrics,
        });
        let (stop, stopped) = watch::channel(false);
        let mut endpoints = Vec::new();
        let mut servers = Vec::new();
        let mut unix_paths = Vec::new();
        for l in &options.listen {
            let url = l.url(None);
            let _guard = runtime.enter();
            let (bound_url, task) = match (&l.address, l.scheme) {
                (Address::Tcp(a), scheme) => {
                    let std_listener =
                        std::net::TcpListener::bind(a).map_err(|error| StartError::Bind { url: url.clone(), error })?;
                    std_listener.set_nonblocking(true).map_err(|error| StartError::Bind { url: url.clone(), error })?;
                    let bound = std_listener.local_addr().ok();
                    let listener = tokio::net::TcpListener::from_std(std_listener)
                        .map_err(|error| StartError::Bind { url: url.clone(), error })?;
                    let task = match scheme {
                        Scheme::Grpc => runtime.spawn(crate::grpc::serve_tcp(state.clone(), listener, stopped.clone())),
                        Scheme::Http => runtime.spawn(crate::http::serve_tcp(state.clone(), listener, stopped.clone())),
                    };
                    (l.url(bound), task)
                }
                (Address::Unix(path), scheme) => {
                    let listener = bind_unix(&url, path)?;
                    unix_paths.push(path.clone());
                    let task = match scheme {
                        Scheme::Grpc => {
                            runtime.spawn(crate::grpc::serve_unix(state.clone(), listener, stopped.clone()))
                        }
                        Scheme::Http => {
                            runtime.spawn(crate::http::serve_unix(state.clone(), listener, stopped.clone()))
                        }
                    };
                    (url, task)
                }
            };
            endpoints.push(bound_url);
            servers.push(task);
        }
        Ok(Self { endpoints, runtime: Some(runtime), stop, servers, unix_paths })
    }

    /// The URLs served, with the ports actually bound.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Stops accepting, lets requests in flight end (at most `grace`), then ends every thread
    /// and removes the Unix socket files.
    pub fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            let servers = std::mem::take(&mut self.servers);
            rt.block_on(async {
                let _ = tokio::time::timeout(grace, async {
                    for s in servers {
                        let _ = s.await;
                    }
                })
                .await;
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        }
        for p in &self.unix_paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for FrontEnd {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        for p in &self.unix_paths {
            let _ = std::fs::remove_file(p);
        }
    }
}
