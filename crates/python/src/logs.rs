//! The library's diagnostics in Python's `logging`: every `tracing` event at INFO and above
//! (the real-time fallback's warning among them) becomes a record of the logger named after
//! its origin under `lalarand` (`lalarand_runtime::os` -> `lalarand.runtime.os`, `ort::session`
//! -> `lalarand.ort.session`), at the matching level; Python's handlers and levels decide what
//! is shown (by default, warnings and errors on stderr).
//!
//! An event may come from a real-time worker, which must never wait for the GIL: the layer
//! formats it on the emitting thread and queues it (bounded, never blocking: when the queue is
//! full the record is dropped and counted, and the count said at most every 10 s); a thread of its own, at normal priority, takes the
//! GIL and logs it. Installed by the library calls made from Python (`serve`, `profile`, the
//! commands `verify` and `accuracy`: [`forward_to_python`]), not by the `lalarand` console
//! script, whose command line writes its own logs to stderr as the cargo-built binary does.

use pyo3::prelude::*;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Records waiting for the forwarding thread; past this, records are dropped (and counted).
const QUEUE: usize = 1024;

struct Record {
    logger: String,
    level: i32,
    message: String,
}

/// The `tracing` layer: formats and queues.
struct ToPython {
    queue: SyncSender<Record>,
    dropped: Arc<AtomicU64>,
}

/// An event's message, then its other fields as `name=value`.
#[derive(Default)]
struct Message(String, String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.1, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.1, " {}={value}", field.name());
        }
    }
}

/// Python's level number for a `tracing` level.
fn python_level(level: &Level) -> i32 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

/// The logger for a `tracing` target: `lalarand_runtime::os` -> `lalarand.runtime.os`.
fn logger_name(target: &str) -> String {
    let dotted = target.replace("::", ".");
    match dotted.strip_prefix("lalarand_") {
        Some(rest) => format!("lalarand.{rest}"),
        None if dotted == "lalarand" || dotted.starts_with("lalarand.") => dotted,
        None => format!("lalarand.{dotted}"),
    }
}

impl<S: Subscriber> Layer<S> for ToPython {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut message = Message::default();
        event.record(&mut message);
        let record = Record {
            logger: logger_name(meta.target()),
            level: python_level(meta.level()),
            message: message.0 + &message.1,
        };
        if let Err(TrySendError::Full(_)) = self.queue.try_send(record) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How often, at most, the forwarding thread says how many records were dropped: a burst of
/// events overflows the queue again and again, and one line per overflow would flood stderr.
const DROPPED_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The forwarding thread: logs each record under the GIL.
fn forward(records: Receiver<Record>, dropped: Arc<AtomicU64>) {
    let mut unreported = 0u64;
    let mut last_report: Option<std::time::Instant> = None;
    for record in records {
        unreported += dropped.swap(0, Ordering::Relaxed);
        let due = last_report.is_none_or(|t| t.elapsed() >= DROPPED_EVERY);
        let lost = if unreported > 0 && due { std::mem::take(&mut unreported) } else { 0 };
        if lost > 0 {
            last_report = Some(std::time::Instant::now());
        }
        Python::attach(|py| {
            let log = |logger: &str, level: i32, message: &str| -> PyResult<()> {
                let logger = py.import("logging")?.call_method1("getLogger", (logger,))?;
                logger.call_method1("log", (level, message))?;
                Ok(())
            };
            if lost > 0 {
                let text = format!(
                    "{lost} log records were dropped (more than {QUEUE} waited to be logged; said at most every {}s)",
                    DROPPED_EVERY.as_secs()
                );
                let _ = log("lalarand", 30, &text);
            }
            if let Err(e) = log(&record.logger, record.level, &record.message) {
                e.write_unraisable(py, None);
            }
        });
    }
}

/// Sends the library's `tracing` events to Python's `logging` from now on, in this process
/// (once; a no-op where another subscriber was installed first, e.g. by the command line).
pub fn forward_to_python() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let (queue, records) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let layer = ToPython { queue, dropped: dropped.clone() };
        if tracing_subscriber::registry().with(layer.with_filter(LevelFilter::INFO)).try_init().is_ok() {
            let spawned =
                std::thread::Builder::new().name("lalarand-log".into()).spawn(move || forward(records, dropped));
            if let Err(e) = spawned {
                eprintln!("lalarand: cannot start the thread that forwards logs to Python: {e}");
            }
        }
    });
}

/// `lalarand._lalarand._forward_logs()`: [`forward_to_python`], for the Python-side commands.
#[pyfunction]
pub fn _forward_logs() {
    forward_to_python();
}
