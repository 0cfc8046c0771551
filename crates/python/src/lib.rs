//! `lalarand` for Python: the bindings of the timing core and the server.
//!
//! New layers bind, they do not decide: every class and function here translates between
//! Python values and the library's types and calls the library; the rules, checks and messages
//! are the library's. Python-side documentation lives in the docstrings (from these doc
//! comments) and in `python/lalarand/_lalarand.pyi`.

mod checked;
mod errors;
mod logs;
mod modes;
mod outputs;
mod serving;
mod stages;
mod system;
mod tools;

use pyo3::prelude::*;

/// The native module behind `lalarand`; import `lalarand` instead.
#[pymodule]
fn _lalarand(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LalarandError", py.get_type::<errors::LalarandError>())?;
    m.add("FormatError", py.get_type::<errors::FormatError>())?;
    m.add("AllocationError", py.get_type::<errors::AllocationError>())?;
    m.add("SimulationError", py.get_type::<errors::SimulationError>())?;
    m.add_class::<system::Resource>()?;
    m.add_class::<system::Platform>()?;
    m.add_class::<system::Profile>()?;
    m.add_class::<system::Task>()?;
    m.add_class::<system::TaskInfo>()?;
    m.add_class::<system::System>()?;
    m.add_class::<system::Allocation>()?;
    m.add_class::<system::Analysis>()?;
    m.add_class::<system::TaskAnalysis>()?;
    m.add_class::<system::ResourceUse>()?;
    m.add_class::<system::AllocationResult>()?;
    m.add_class::<system::Simulation>()?;
    m.add_class::<system::TaskSimulation>()?;
    m.add_function(wrap_pyfunction!(system::policies, m)?)?;
    m.add("ServerError", py.get_type::<errors::ServerError>())?;
    m.add("InputError", py.get_type::<errors::InputError>())?;
    m.add("StoppedError", py.get_type::<errors::StoppedError>())?;
    m.add("RejectedError", py.get_type::<errors::RejectedError>())?;
    m.add("JobError", py.get_type::<errors::JobError>())?;
    m.add("AlreadyTakenError", py.get_type::<errors::AlreadyTakenError>())?;
    m.add("AdmissionError", py.get_type::<errors::AdmissionError>())?;
    m.add_class::<serving::Server>()?;
    m.add_class::<serving::JobHandle>()?;
    m.add_class::<serving::JobResult>()?;
    m.add_class::<serving::InputSlot>()?;
    m.add_class::<serving::ResultStream>()?;
    m.add_class::<serving::Slot>()?;
    m.add("SLOT", serving::Slot)?;
    m.add_function(wrap_pyfunction!(serving::serve, m)?)?;
    m.add_function(wrap_pyfunction!(serving::_bench_rust_infer, m)?)?;
    m.add_function(wrap_pyfunction!(tools::profile, m)?)?;
    m.add_function(wrap_pyfunction!(stages::run_stages, m)?)?;
    m.add_function(wrap_pyfunction!(tools::zoo, m)?)?;
    m.add_function(wrap_pyfunction!(tools::zoo_architectures, m)?)?;
    m.add_function(wrap_pyfunction!(tools::_cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(logs::_forward_logs, m)?)?;
    Ok(())
}
