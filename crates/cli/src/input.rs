//! Loading the files every command takes, with the library's error text (file, field, fix).

use anyhow::{Context, Result};
use lalarand_model::{Allocation, Platform, System, TaskSet};
use std::path::{Path, PathBuf};

/// `--platform` and `--tasks`, shared by the commands that read a system.
#[derive(Debug, clap::Args)]
pub struct SystemArgs {
    /// Platform TOML (resources); default: one `gpu` and one `cpu`.
    #[arg(long, value_name = "FILE")]
    pub platform: Option<PathBuf>,
    /// Task set TOML; profile paths inside it are relative to it.
    #[arg(long, value_name = "FILE")]
    pub tasks: PathBuf,
}

impl SystemArgs {
    pub fn load(&self) -> Result<System> {
        let platform = match &self.platform {
            Some(p) => Platform::load(p)?,
            None => Platform::default_cpu_gpu(),
        };
        let set = TaskSet::load(&self.tasks)?;
        tracing::info!(
            resources = platform.resources.len(),
            tasks = set.tasks.len(),
            "loaded {}",
            self.tasks.display()
        );
        Ok(System::new(platform, set))
    }
}

/// Loads an allocation and checks it against the system (modes, resources, layer counts).
pub fn load_allocation(path: &Path, system: &System) -> Result<Allocation> {
    let alloc = Allocation::load(path, system)?;
    alloc.validate(system).with_context(|| format!("{}: does not fit the task set", path.display()))?;
    Ok(alloc)
}
