//! Schedulability experiments for lalarand, after the LaLaRAND paper (Kang et al., RTSS 2021).
//!
//! [`generate`] draws seeded random DNN task sets (UUniFast-discard utilizations, periods from
//! the all-accelerator cost: all-GPU, or all on the cpu standing in for the accelerator) from
//! the artifact's profiles or any others ([`ProfileLibrary`]); [`run_schedulability`] sweeps
//! total utilization and counts, per [`lalarand_alloc::Policy`], the sets it makes
//! schedulable; [`SweepResult`] writes CSV, SVG and JSON, and [`Summary`] puts the totals next
//! to the paper's headline (+56% task sets over DART, +80% over the all-GPU framework).
//!
//! ```no_run
//! use lalarand_experiments::{run_schedulability, SweepConfig};
//! let cfg = SweepConfig { sets_per_point: 50, ..SweepConfig::default() };
//! let result = run_schedulability(&cfg, true)?;
//! result.write_all(std::path::Path::new("out"))?;
//! println!("{}", result.summary());
//! # Ok::<(), lalarand_experiments::ExperimentError>(())
//! ```

mod config;
mod error;
mod gap;
pub mod generate;
mod output;
mod plot;
mod result;
mod summary;
mod sweep;

pub use config::{parse_utilizations, LibraryInfo, ProfileLibrary, SweepConfig};
pub use error::ExperimentError;
pub use gap::{find_gap_example, GapExample};
pub use generate::{check_profile, reference_placement, reference_wcet, set_rng, uunifast_discard, Generator};
pub use result::{PointResult, PolicyPoint, Row, SweepResult, SweepSettings};
pub use summary::{Comparison, Gap, PolicyTotal, Summary, HEADLINE, PAPER_VS_DART_PERCENT, PAPER_VS_GPU_ONLY_PERCENT};
pub use sweep::{describe_platform, run_schedulability};
