//! ONNX Runtime's own log, routed into lalarand's (`tracing`): every session of every stage
//! logs the same things, so a model of 76 stages repeated each warning 76 times, and ONNX
//! Runtime's graph cleanup listed every initializer a stage does not use ("Removing
//! initializer", 178 lines for one model), which says nothing a user can act on. Here a
//! warning is logged once per process (its repeats at debug level), the initializer cleanup at
//! debug level, ONNX Runtime's info at debug and its verbose at trace; errors always.

use ort::logging::{LogLevel, LoggerFunction};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The logger the environment is built with.
pub(crate) fn logger() -> LoggerFunction {
    let seen = Mutex::new(HashSet::new());
    Arc::new(move |level, _category, _id, location, message| {
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        match level_for(level, message, &mut seen) {
            tracing::Level::ERROR => tracing::error!(target: "onnxruntime", "{message} ({location})"),
            tracing::Level::WARN => tracing::warn!(target: "onnxruntime", "{message} ({location})"),
            tracing::Level::INFO => tracing::info!(target: "onnxruntime", "{message} ({location})"),
            tracing::Level::DEBUG => tracing::debug!(target: "onnxruntime", "{message} ({location})"),
            tracing::Level::TRACE => tracing::trace!(target: "onnxruntime", "{message} ({location})"),
        }
    })
}

/// The level lalarand logs an ONNX Runtime message at; `seen` holds the warnings already logged.
fn level_for(level: LogLevel, message: &str, seen: &mut HashSet<String>) -> tracing::Level {
    match level {
        LogLevel::Verbose => tracing::Level::TRACE,
        LogLevel::Info => tracing::Level::DEBUG,
        LogLevel::Warning if message.starts_with("Removing initializer") => tracing::Level::DEBUG,
        LogLevel::Warning if !seen.insert(message.to_string()) => tracing::Level::DEBUG,
        LogLevel::Warning => tracing::Level::WARN,
        LogLevel::Error | LogLevel::Fatal => tracing::Level::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_is_logged_once_and_the_initializer_cleanup_not_at_all() {
        let mut seen = HashSet::new();
        let opset = "This model has opset 9; upgrade it";
        let levels: Vec<tracing::Level> = (0..76).map(|_| level_for(LogLevel::Warning, opset, &mut seen)).collect();
        assert_eq!(levels[0], tracing::Level::WARN);
        assert!(levels[1..].iter().all(|l| *l == tracing::Level::DEBUG));
        let cleanup = "Removing initializer 'conv.w'. It is not used by any node and should be removed from the model.";
        assert_eq!(level_for(LogLevel::Warning, cleanup, &mut seen), tracing::Level::DEBUG);
        assert_eq!(level_for(LogLevel::Error, "failed", &mut seen), tracing::Level::ERROR);
        assert_eq!(level_for(LogLevel::Error, "failed", &mut seen), tracing::Level::ERROR, "errors every time");
        assert_eq!(level_for(LogLevel::Info, "session created", &mut seen), tracing::Level::DEBUG);
    }
}
