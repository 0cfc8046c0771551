//! Obtaining the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`, so nothing is downloaded at build time. On first use we
//! fetch the official Python wheel with pip (the wheel is the one registry artifact that ships
//! `libonnxruntime.so`), unzip the library into a per-user cache and load it from there.
//! `ORT_DYLIB_PATH` overrides all of this.
//!
//! One process loads one library: the GPU wheel's library also has the CPU provider, so a
//! process that wants both loads [`Flavor::Gpu`] first.

use crate::error::{EngineError, OrtContext, Result};
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

pub const ORT_VERSION: &str = "1.31.1";

/// The newest ONNX IR version that ONNX Runtime [`ORT_VERSION`] loads (its `model.cc` refuses
/// newer ones): a newer model that needs nothing newer is lowered to it
/// ([`lalarand_onnx::ir_version`]). Raise it with `ORT_VERSION`; a test loads a model at it.
pub const ORT_MAX_IR_VERSION: i64 = 13;

/// The newest opset of ONNX's default domain that ONNX Runtime [`ORT_VERSION`] supports (it
/// refuses newer stamps): a model stamped newer whose operators did not change since is read at
/// it ([`lalarand_onnx::opset_version`]). Raise it with `ORT_VERSION`; a test loads a model at it.
pub const ORT_MAX_OPSET: i64 = 26;

/// Which runtime build: the CPU wheel or the CUDA one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Cpu,
    Gpu,
}

impl Flavor {
    pub fn package(self) -> &'static str {
        match self {
            Flavor::Cpu => "onnxruntime",
            Flavor::Gpu => "onnxruntime-gpu",
        }
    }

    fn cache_dir_name(self) -> String {
        match self {
            Flavor::Cpu => format!("onnxruntime-{ORT_VERSION}-cpu"),
            Flavor::Gpu => format!("onnxruntime-{ORT_VERSION}-gpu"),
        }
    }

    fn library_name() -> String {
        format!("libonnxruntime.so.{ORT_VERSION}")
    }
}

/// Where fetched libraries live: `$XDG_CACHE_HOME/lalarand`, else `~/.cache/lalarand`.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("lalarand"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".cache").join("lalarand")),
        None => Err(EngineError::unavailable(
            "neither XDG_CACHE_HOME nor HOME is set, so there is no cache to put the runtime in",
            "set XDG_CACHE_HOME, or ORT_DYLIB_PATH to an existing libonnxruntime.so",
        )),
    }
}

/// How [`resolve_library`] finds or fetches the library; [`Acquire::from_env`] is what users get.
#[derive(Debug, Clone)]
pub struct Acquire {
    /// `ORT_DYLIB_PATH`: used as is, never fetched.
    pub dylib_override: Option<PathBuf>,
    pub cache_root: PathBuf,
    /// Interpreter that runs pip (`LALARAND_PYTHON`, default `python3`).
    pub python: OsString,
}

impl Acquire {
    pub fn from_env() -> Result<Self> {
        let dylib_override = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()).map(PathBuf::from);
        // Without an override we need a cache; with one a missing HOME must not matter.
        let cache_root = match (&dylib_override, cache_root()) {
            (_, Ok(c)) => c,
            (Some(_), Err(_)) => PathBuf::new(),
            (None, Err(e)) => return Err(e),
        };
        let python = std::env::var_os("LALARAND_PYTHON").filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into());
        Ok(Self { dylib_override, cache_root, python })
    }
}

/// Returns the path of the runtime library, fetching it into the cache if needed.
///
/// Safe under concurrent threads and processes: the wheel is unpacked into a private temporary
/// directory that is renamed into place in one step, so a reader sees either nothing or a
/// complete directory.
pub fn resolve_library(flavor: Flavor, how: &Acquire) -> Result<PathBuf> {
    if let Some(p) = &how.dylib_override {
        if !p.is_file() {
            return Err(EngineError::unavailable(
                format!("ORT_DYLIB_PATH points to {}, which is not a file", p.display()),
                "point ORT_DYLIB_PATH at libonnxruntime.so (version >= 1.31), or unset it to fetch one",
            ));
        }
        return Ok(p.clone());
    }
    let dir = how.cache_root.join(flavor.cache_dir_name());
    let lib = dir.join(Flavor::library_name());
    if lib.is_file() {
        return Ok(lib);
    }
    std::fs::create_dir_all(&how.cache_root).map_err(|e| EngineError::io(&how.cache_root, e))?;
    let staging = tempdir_in(&how.cache_root)?;
    let wheel = pip_download(flavor, &how.python, staging.path())?;
    let unpacked = staging.path().join("lib");
    extract_libraries(&wheel, &unpacked)?;
    match std::fs::rename(&unpacked, &dir) {
        Ok(()) => {}
        // Another thread or process won the race; its directory is complete by construction.
        Err(_) if lib.is_file() => {}
        Err(e) => return Err(EngineError::io(&dir, e)),
    }
    tracing::info!("fetched {} {ORT_VERSION} into {}", flavor.package(), dir.display());
    Ok(lib)
}

fn tempdir_in(parent: &Path) -> Result<TempDir> {
    let pid = std::process::id();
    for n in 0..1000u32 {
        let p = parent.join(format!(".fetch-{pid}-{n}-{:?}", std::thread::current().id()).replace(['(', ')'], ""));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(TempDir(p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(EngineError::io(p, e)),
        }
    }
    Err(EngineError::unavailable(
        format!("cannot create a staging directory in {}", parent.display()),
        "remove stale .fetch-* directories there",
    ))
}

/// A directory removed on drop (the staging area of one fetch).
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pip_download(flavor: Flavor, python: &OsString, into: &Path) -> Result<PathBuf> {
    let spec = format!("{}=={ORT_VERSION}", flavor.package());
    let py = Path::new(python).display().to_string();
    let out = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-q"])
        .arg(&spec)
        .arg("-d")
        .arg(into)
        .output()
        .map_err(|e| {
            EngineError::unavailable(
                format!("cannot run `{py} -m pip` to fetch {spec}: {e}"),
                "install python3 with pip (or set LALARAND_PYTHON), or set ORT_DYLIB_PATH to a libonnxruntime.so",
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
        return Err(EngineError::unavailable(
            format!(
                "`{py} -m pip download {spec}` failed ({}): {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
            "check network access to PyPI, or download the wheel yourself and set ORT_DYLIB_PATH to \
             onnxruntime/capi/libonnxruntime.so.* from it",
        ));
    }
    let wheels: Vec<PathBuf> = std::fs::read_dir(into)
        .map_err(|e| EngineError::io(into, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    match wheels.as_slice() {
        [w] => Ok(w.clone()),
        _ => Err(EngineError::unavailable(
            format!("pip download of {spec} left {} wheels in {}", wheels.len(), into.display()),
            "set ORT_DYLIB_PATH to a libonnxruntime.so",
        )),
    }
}

/// Unpacks `onnxruntime/capi/libonnxruntime*.so*` (the runtime and, for the GPU wheel, its
/// provider libraries, which must sit next to it) from a wheel into `dir`.
pub fn extract_libraries(wheel: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let bad = |reason: String| {
        EngineError::unavailable(
            format!("{}: {reason}", wheel.display()),
            "delete it and retry, or set ORT_DYLIB_PATH to a libonnxruntime.so",
        )
    };
    let file = std::fs::File::open(wheel).map_err(|e| EngineError::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a wheel (zip): {e}")))?;
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let mut written = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        let name = entry.name().to_string();
        let Some(base) = name.strip_prefix("onnxruntime/capi/") else { continue };
        if base.contains('/') || !base.starts_with("libonnxruntime") || !base.contains(".so") {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("{name}: {e}")))?;
        let out = dir.join(base);
        std::fs::write(&out, bytes).map_err(|e| EngineError::io(&out, e))?;
        written.push(out);
    }
    if !written.iter().any(|p| p.file_name().is_some_and(|n| n.to_string_lossy() == Flavor::library_name())) {
        return Err(bad(format!("no onnxruntime/capi/{} inside", Flavor::library_name())));
    }
    Ok(written)
}

struct Loaded {
    flavor: Flavor,
    path: PathBuf,
    env: ort::environment::Environment,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

/// The process-wide ONNX Runtime environment, loading the library on first call.
///
/// A process that loaded the CPU library cannot switch to the GPU one later; the error says so.
pub fn environment(flavor: Flavor) -> Result<ort::environment::Environment> {
    let _guard = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = LOADED.get() {
        return match (l.flavor, flavor) {
            (Flavor::Cpu, Flavor::Gpu) => Err(EngineError::NoGpu {
                reason: format!("this process already loaded the CPU runtime from {}", l.path.display()),
                fix: "ask for gpu before any cpu work in the process (the GPU runtime also runs the CPU modes)".into(),
            }),
            _ => Ok(l.env.clone()),
        };
    }
    let path = resolve_library(flavor, &Acquire::from_env()?)?;
    let builder =
        ort::init_from(&path).map_err(|e| EngineError::RuntimeLoad { path: path.clone(), reason: e.to_string() })?;
    let env = builder
        .with_name("lalarand")
        .with_logger(crate::ort_log::logger())
        .build()
        .ctx(|| format!("creating ONNX Runtime environment from {}", path.display()))?;
    let _ = LOADED.set(Loaded { flavor, path, env: env.clone() });
    Ok(env)
}

/// Whether an NVIDIA GPU with a loaded driver is visible.
pub fn gpu_present() -> bool {
    std::fs::read_dir("/proc/driver/nvidia/gpus").map(|mut d| d.next().is_some()).unwrap_or(false)
        || Path::new("/dev/nvidia0").exists()
}

/// Loads the GPU runtime, for a process that may run gpu stages, before it builds any session:
/// one process loads one library, and only the GPU one also runs the CPU modes. Why gpu cannot
/// run here, if it cannot (no GPU visible, or its runtime does not load).
pub fn load_gpu_first() -> std::result::Result<(), String> {
    if !gpu_present() {
        return Err("no NVIDIA GPU visible".into());
    }
    environment(Flavor::Gpu).map(drop).map_err(|e| e.to_string())
}

/// The flavor and library path loaded in this process, if any.
pub fn loaded() -> Option<(Flavor, PathBuf)> {
    LOADED.get().map(|l| (l.flavor, l.path.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn how(root: &Path) -> Acquire {
        Acquire { dylib_override: None, cache_root: root.to_path_buf(), python: "python3".into() }
    }

    #[test]
    fn missing_override_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = how(dir.path());
        a.dylib_override = Some(dir.path().join("nope/libonnxruntime.so"));
        let e = resolve_library(Flavor::Cpu, &a).unwrap_err().to_string();
        assert!(e.contains("ORT_DYLIB_PATH") && e.contains("nope/libonnxruntime.so"), "{e}");
    }

    #[test]
    fn missing_python_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = how(dir.path());
        a.python = "/nonexistent/python3".into();
        let e = resolve_library(Flavor::Cpu, &a).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/python3") && e.contains("ORT_DYLIB_PATH"), "{e}");
        // The failed fetch leaves no half-made cache entry behind.
        assert!(!dir.path().join(Flavor::Cpu.cache_dir_name()).exists());
    }

    #[test]
    fn a_file_that_is_no_wheel_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("x.whl");
        std::fs::write(&w, b"not a zip").unwrap();
        let e = extract_libraries(&w, &dir.path().join("out")).unwrap_err().to_string();
        assert!(e.contains("x.whl") && e.contains("not a wheel"), "{e}");
    }

    #[test]
    fn cached_library_is_used_without_fetching() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join(Flavor::Cpu.cache_dir_name()).join(Flavor::library_name());
        std::fs::create_dir_all(lib.parent().unwrap()).unwrap();
        std::fs::write(&lib, b"").unwrap();
        let mut a = how(dir.path());
        a.python = "/nonexistent/python3".into();
        assert_eq!(resolve_library(Flavor::Cpu, &a).unwrap(), lib);
    }

    /// A stand-in for `python3 -m pip download` that copies a fake wheel after a short delay,
    /// so that concurrent fetches overlap.
    fn fake_pip(dir: &Path) -> PathBuf {
        let wheel = dir.join("onnxruntime-fake.whl");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        for name in [Flavor::library_name(), "libonnxruntime_providers_shared.so".into(), "other.py".into()] {
            zip.start_file(format!("onnxruntime/capi/{name}"), opts).unwrap();
            std::io::Write::write_all(&mut zip, name.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        let script = dir.join("fake-python");
        // Arguments: -m pip download ... <spec> -d <dir>; the destination is the last one.
        let body = format!("#!/bin/sh\nsleep 0.2\nfor a; do last=$a; done\ncp {} \"$last\"/\n", wheel.display());
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn concurrent_fetches_agree_and_leave_one_complete_cache() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = how(&dir.path().join("cache"));
        a.python = fake_pip(dir.path()).into();
        let paths: Vec<PathBuf> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4).map(|_| s.spawn(|| resolve_library(Flavor::Cpu, &a).unwrap())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(paths.windows(2).all(|w| w[0] == w[1]), "{paths:?}");
        assert_eq!(std::fs::read(&paths[0]).unwrap(), Flavor::library_name().as_bytes());
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [Flavor::Cpu.cache_dir_name()], "staging directories are cleaned up");
        let mut libs: Vec<String> = std::fs::read_dir(paths[0].parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        libs.sort();
        assert_eq!(libs, [Flavor::library_name(), "libonnxruntime_providers_shared.so".to_string()]);
    }
}
