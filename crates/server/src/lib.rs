//! lalarand's network front end: the Open Inference Protocol (KServe v2, as Triton speaks it)
//! over gRPC and HTTP/REST, on top of the runtime's [`lalarand_runtime::serve::Server`].
//!
//! It binds, it does not decide: a model is a task (model name = task name) and an infer
//! request is a release of that sporadic task through [`lalarand_runtime::serve::Server::submit`];
//! the runtime enforces the period as the minimum inter-arrival time and schedules the job
//! under the proven allocation. The response's `parameters` carry the job's timing
//! ([`codec::timing_parameters`]). Design, protocol mapping, threads and security model:
//! docs/runtime.md, "Network server".
//!
//! - [`FrontEnd::start`] binds every [`Listen`] endpoint and serves until [`FrontEnd::shutdown`].
//! - [`Catalog`] is what the protocol says about the models (names, inputs, outputs, bounds).
//! - [`Backend`] is the one thing the front end needs of a server (any executor).

pub mod auth;
mod authority;
mod backend;
mod catalog;
pub mod codec;
mod error;
mod frontend;
#[cfg(test)]
mod fuzz;
mod grpc;
pub mod http;
mod listen;
mod metrics;
pub mod proto;
pub mod repository;
pub mod shm;

pub use backend::Backend;
pub use catalog::{Catalog, ModelInfo};
pub use error::{Code, ProtocolError, StartError};
pub use frontend::{FrontEnd, Limits, Options};
pub use listen::{Listen, Scheme};
pub use repository::{change_error, change_report, BusyRepository, Changed, LoadParameters, Repository};
