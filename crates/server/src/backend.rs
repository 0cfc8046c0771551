//! The one thing the front end needs of a server, whatever its executor: submit a release,
//! read its statistics.

use lalarand_runtime::serve::{Input, JobHandle, ServeError, ServeStats, Server};
use lalarand_runtime::StageExecutor;

/// A running [`Server`] seen through the protocol: object-safe, so the front end is not
/// generic over the executor.
pub trait Backend: Send + Sync + 'static {
    /// A release of sporadic task `task` ([`Server::submit`]).
    fn submit(&self, task: &str, input: Input) -> Result<JobHandle, ServeError>;
    /// Live statistics ([`Server::stats`]).
    fn stats(&self) -> ServeStats;
    /// Whether the server stopped (or is stopping): then nothing is ready.
    fn is_stopped(&self) -> bool;
}

impl<E: StageExecutor> Backend for Server<E> {
    fn submit(&self, task: &str, input: Input) -> Result<JobHandle, ServeError> {
        Server::submit(self, task, input)
    }

    fn stats(&self) -> ServeStats {
        Server::stats(self)
    }

    fn is_stopped(&self) -> bool {
        Server::is_stopped(self)
    }
}
