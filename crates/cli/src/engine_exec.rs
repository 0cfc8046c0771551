//! Real inference under the runtime lives in `lalarand_engine::serving`, shared by `run`,
//! `serve`, `demo` and the Python package; re-exported here for the commands.

pub use lalarand_engine::serving::{model_paths, EngineExecutor};
