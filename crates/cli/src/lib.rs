//! The `lalarand` command line as a library: [`main_with_args`] runs it on the given arguments
//! and returns its exit status, so the `lalarand` binary (src/main.rs) and the Python package's
//! `lalarand` command (crates/python) run the same code. For the library a Rust program uses,
//! see the `lalarand` crate (crates/lalarand).
//!
//! Exit codes (docs/formats.md, "Exit codes"): 0 = done / every deadline proven, 1 = analyzed
//! but some task is not schedulable, 2 = bad input or any other failure, clap's own usage
//! errors included.

/// `print!`/`println!` to stdout that return the I/O error instead of panicking, so that
/// `lalarand ... | head` ends quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod cmd;
mod end_to_end;
mod engine_exec;
mod engine_repository;
mod files;
mod input;
mod report;

use clap::{Parser, Subcommand};

/// Real-time guarantees for periodic DNN tasks scheduled layer by layer on CPUs and GPUs.
#[derive(Debug, Parser)]
#[command(name = "lalarand", version, propagate_version = true)]
#[command(
    after_help = "Start with `lalarand demo` (real models profiled, proven and run here, about a minute; needs ONNX Runtime)\nor `lalarand demo --quick` (offline, a second); file formats: docs/formats.md.\nLogs: -v (info), -vv (debug), -vvv (trace), or RUST_LOG=lalarand=debug."
)]
pub struct Cli {
    /// More log output on stderr (repeat for more); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Analyze(cmd::analyze::Args),
    Allocate(cmd::allocate::Args),
    Simulate(cmd::simulate::Args),
    Experiment(cmd::experiment::Args),
    Demo(cmd::demo::Args),
    Init(cmd::init::Args),
    Zoo(cmd::zoo::Args),
    Profile(cmd::profile::Args),
    Accuracy(cmd::accuracy::Args),
    Verify(cmd::verify::Args),
    Run(cmd::run::Args),
    Serve(cmd::serve::Args),
    Completions(cmd::completions::Args),
}

/// What a successful command concluded; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Finished; nothing to prove (or everything proven).
    Done,
    /// Exit 1: a deadline not proven (analyze, allocate), missed in simulation, or a proven
    /// bound exceeded (simulate, soundness campaign).
    Unschedulable,
}

impl Verdict {
    pub fn of(schedulable: bool) -> Self {
        if schedulable {
            Verdict::Done
        } else {
            Verdict::Unschedulable
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Logs go to stderr so `--json` output on stdout stays parseable.
    // Colors only on a terminal, so redirected logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        // A second run in one process (the Python package's `lalarand` command is a function)
        // keeps the first subscriber.
        .try_init()
        .ok();
}

/// Runs the command line on `args` (the program name first, as `std::env::args_os`) and
/// returns its exit status: what the `lalarand` binary does, and the Python package's `lalarand`
/// command (crates/python) too, so that both behave the same.
pub fn main_with_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // --help, --version and usage errors: clap prints them and says the exit code.
        Err(e) => {
            let _ = e.print();
            return e.exit_code().clamp(0, 255) as u8;
        }
    };
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Analyze(a) => cmd::analyze::run(a),
        Command::Allocate(a) => cmd::allocate::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Experiment(a) => cmd::experiment::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Init(a) => cmd::init::run(a),
        Command::Zoo(a) => cmd::zoo::run(a),
        Command::Profile(a) => cmd::profile::run(a),
        Command::Accuracy(a) => cmd::accuracy::run(a),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Completions(a) => cmd::completions::run(a),
    };
    match result {
        Ok(Verdict::Done) => 0,
        Ok(Verdict::Unschedulable) => 1,
        // The reader went away (`| head`): what it did not read no longer matters. 141 is what
        // a shell reports for a process killed by SIGPIPE.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => {
            141
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}
