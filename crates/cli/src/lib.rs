//! lalarand as a library: the task model, the response-time analysis, the allocators, the
//! simulator, the real-time runtime and the ONNX engine, re-exported from one crate.
//!
//! The `lalarand` command line is built on these crates; a Rust program can use them directly.
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
//! `crates/cli/examples/quickstart.rs` (`cargo run -p lalarand --example quickstart`).

pub use lalarand_alloc as alloc;
pub use lalarand_analysis as analysis;
pub use lalarand_engine as engine;
pub use lalarand_model as model;
pub use lalarand_runtime as runtime;
pub use lalarand_sim as sim;
