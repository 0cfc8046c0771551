//! `lalarand`: the command line over the task model, the analysis and the allocators (the
//! command-line library's `lalarand_cli::main_with_args`).
//!
//! Exit codes (docs/formats.md, "Exit codes"): 0 = done / every deadline proven, 1 = analyzed
//! but some task is not schedulable, 2 = bad input or any other failure (clap's own usage
//! errors also exit 2).

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(lalarand_cli::main_with_args(std::env::args_os()))
}
