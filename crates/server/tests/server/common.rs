//! A busy-wait server behind a front end on real sockets, and small clients: tonic's generated
//! gRPC client and a raw HTTP/1.1 one (so that tests can send malformed and truncated bodies).

use lalarand_model::examples::chain_profile;
use lalarand_model::{
    Allocation, LayerProfile, Mode, Placement, Platform, PriorityPolicy, Resource, ResourceKind, System, Task, TaskSet,
    Time,
};
use lalarand_runtime::serve::{EarlyPolicy, ServeConfig, Server, TensorSpec};
use lalarand_runtime::StageExecutor;
use lalarand_runtime::{os, BusyTime, BusyWait};
use lalarand_server::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use lalarand_server::{Catalog, FrontEnd, Listen, Options};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

pub const MS: Time = 1_000_000;

/// Runs take turns, across test threads and processes (nextest), with the runtime's tests too
/// (the same lock file): their workers pin to the same cores.
pub struct Turn {
    _file: std::fs::File,
    _guard: std::sync::MutexGuard<'static, ()>,
}

pub fn serial() -> Turn {
    use std::os::fd::AsRawFd;
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::env::temp_dir().join("lalarand-runtime-tests.lock");
    let file = std::fs::File::options().create(true).truncate(false).write(true).open(&path).expect("lock file");
    // SAFETY: flock on an open descriptor; released when the file is closed.
    assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) }, 0, "flock {}", path.display());
    Turn { _file: file, _guard: guard }
}

/// Two sporadic busy-wait tasks on one cpu resource (the first core): `fast` (period 4 ms,
/// one 1 ms stage) and `slow` (period 100 ms, 2 ms).
pub fn busy_system() -> (System, Allocation) {
    let core = os::available_cores()[0];
    let platform =
        Platform { resources: vec![Resource { cores: vec![core], ..Resource::new("cpu0", ResourceKind::Cpu) }] };
    let task = |name: &str, period: Time, t: Time| {
        Task::new(name, period, Arc::new(chain_profile(name, &[LayerProfile::gpu_cpu("l0", t, t)])))
    };
    let tasks = vec![task("fast", 4 * MS, MS), task("slow", 100 * MS, 2 * MS)];
    let alloc = Allocation { tasks: vec![vec![Placement { mode: Mode::CpuFp32, resource: 0 }]; 2] };
    (System::new(platform, TaskSet::new(tasks, PriorityPolicy::RateMonotonic)), alloc)
}

pub struct Running<E: StageExecutor> {
    pub server: Arc<Server<E>>,
    pub front: Option<FrontEnd>,
}

impl<E: StageExecutor> Running<E> {
    pub fn url(&self, prefix: &str) -> String {
        self.front.as_ref().unwrap().endpoints().iter().find(|u| u.starts_with(prefix)).unwrap().clone()
    }

    /// host:port of the first `http://` endpoint.
    pub fn http_addr(&self) -> String {
        self.url("http://").trim_start_matches("http://").to_string()
    }

    pub fn grpc_url(&self) -> String {
        self.url("grpc://").replace("grpc://", "http://")
    }
}

impl<E: StageExecutor> Drop for Running<E> {
    fn drop(&mut self) {
        if let Some(f) = self.front.take() {
            f.shutdown(Duration::from_secs(1));
        }
    }
}

/// `exec` serving `system` (every task sporadic, `early`), a front end on gRPC and HTTP on
/// 127.0.0.1 (ports chosen by the OS), plus `extra` endpoints.
pub fn start_with<E: StageExecutor>(
    system: &System,
    alloc: &Allocation,
    exec: E,
    outputs: Vec<Vec<TensorSpec>>,
    early: EarlyPolicy,
    options: impl FnOnce(&mut Options),
) -> Running<E> {
    let config = ServeConfig { realtime: false, early, ..ServeConfig::default() };
    let server = Arc::new(Server::builder(system, alloc, exec).config(config).start().unwrap());
    let catalog = Catalog::of_server(&server, outputs);
    let mut o = Options::local(vec![
        Listen::parse("grpc://127.0.0.1:0").unwrap(),
        Listen::parse("http://127.0.0.1:0").unwrap(),
    ]);
    options(&mut o);
    let front = FrontEnd::start(server.clone(), catalog, o).unwrap();
    Running { server, front: Some(front) }
}

pub fn start_busy(early: EarlyPolicy) -> Running<BusyWait> {
    let (system, alloc) = busy_system();
    let plan = lalarand_model::ExecutionPlan::new(&system, &alloc).unwrap();
    let exec = BusyWait::from_plan(&plan, &system.platform, BusyTime::Wcet);
    let outputs = vec![Catalog::busy_outputs(); 2];
    start_with(&system, &alloc, exec, outputs, early, |_| {})
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

pub async fn grpc(url: &str) -> GrpcInferenceServiceClient<tonic::transport::Channel> {
    GrpcInferenceServiceClient::connect(url.to_string()).await.unwrap().max_decoding_message_size(usize::MAX)
}

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        let n = self.header("inference-header-content-length").map_or(self.body.len(), |v| v.parse().unwrap());
        serde_json::from_slice(&self.body[..n])
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` with `headers` and `body` (Content-Length: `declared` or the body's
/// length) and reads the whole response (the connection closes after it).
pub fn http_raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
    declared: Option<usize>,
) -> HttpResponse {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", declared.unwrap_or(body.len())));
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    if declared.is_some_and(|d| d > body.len()) {
        // A truncated body: the client goes away before sending the rest.
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("no response: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let mut body = raw[end + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    HttpResponse { status, headers, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

pub fn http_get(addr: &str, path: &str) -> HttpResponse {
    http_raw(addr, "GET", path, &[], b"", None)
}

pub fn http_post_json(addr: &str, path: &str, body: &serde_json::Value) -> HttpResponse {
    http_raw(addr, "POST", path, &[("Content-Type", "application/json".into())], body.to_string().as_bytes(), None)
}

/// An infer body with binary inputs: the JSON header, then the bytes.
pub fn binary_body(header: &serde_json::Value, data: &[&[u8]]) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let head = header.to_string().into_bytes();
    let mut body = head.clone();
    for d in data {
        body.extend_from_slice(d);
    }
    (vec![("Inference-Header-Content-Length", head.len().to_string())], body)
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn f32_from(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}
