//! lalarand as a library: the task model, the response-time analysis, the allocators, the
//! simulator, the real-time runtime and (with the `engine` feature) the ONNX engine,
//! re-exported from one crate.
//!
//! The `lalarand` command line (package `lalarand-cli`) is built on these crates; a Rust
//! program can use them directly.
//! A task set, allocated by LaLaRAND and proven schedulable:
//!
//! ```
//! use lalarand::{alloc, analysis, model};
//!
//! let system = model::examples::demo_system();
//! let outcome = alloc::Policy::Lalarand.allocate(&system, &alloc::AllocOptions::default()).unwrap();
//! let plan = model::ExecutionPlan::new(&system, &outcome.allocation).unwrap();
//! let proof = analysis::analyze(&plan);
//! assert!(proof.schedulable());
//! for (task, bound) in system.tasks.iter().zip(&proof.tasks) {
//!     let bound_ms = model::time_to_ms(bound.bound.unwrap());
//!     println!("{}: bound {bound_ms:.2} ms, deadline {:.2} ms", task.name, model::time_to_ms(bound.deadline));
//! }
//! ```
//!
//! Running an allocation with the runtime, observed response times next to the bounds:
//! `crates/lalarand/examples/quickstart.rs` (`cargo run -p lalarand --example quickstart`).
//! Serving an ONNX model under a proven schedule: `crates/lalarand/examples/serve.rs`
//! (`cargo run -p lalarand --features engine --example serve`).
//!
//! # Feature flags
//!
//! The timing core and the runtime are always there; what needs ONNX is behind a feature, so a
//! program that schedules, proves or simulates builds without compiling an inference stack.
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `engine` | off | the `engine` module (`lalarand-engine`: per-stage ONNX Runtime sessions, the profiler, accuracy, and the runtime's `EngineExecutor` for serving real models) and the `onnx` module (`lalarand-onnx`: graphs, model zoo, partitioning, int8 quantization). ONNX Runtime itself is loaded at run time (fetched with pip on first use, `ORT_DYLIB_PATH` overrides), so the build needs neither it nor a GPU. |
//!
//! `engine` is off by default because most uses of the library (analysis, allocation,
//! simulation, the runtime with busy-wait or its own executors) never touch a model, and the
//! engine brings `ort`, `ndarray`, `zip` and `flate2` into the build. Turn it on with
//! `lalarand = { version = "0.1", features = ["engine"] }`.
//!
//! | module | crate | feature |
//! | --- | --- | --- |
//! | [`model`] | `lalarand-model` | always |
//! | [`analysis`] | `lalarand-analysis` | always |
//! | [`alloc`] | `lalarand-alloc` | always |
//! | [`sim`] | `lalarand-sim` | always |
//! | [`runtime`] | `lalarand-runtime` | always |
//! | `engine` | `lalarand-engine` | `engine` |
//! | `onnx` | `lalarand-onnx` | `engine` |

pub use lalarand_alloc as alloc;
pub use lalarand_analysis as analysis;
pub use lalarand_model as model;
pub use lalarand_runtime as runtime;
pub use lalarand_sim as sim;

#[cfg(feature = "engine")]
pub use lalarand_engine as engine;
#[cfg(feature = "engine")]
pub use lalarand_onnx as onnx;
