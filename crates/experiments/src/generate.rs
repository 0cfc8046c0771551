//! Seeded random DNN task sets, as in the LaLaRAND paper's schedulability experiments.
//!
//! A task set of `n` tasks at total utilization `U` is drawn as follows:
//!
//! 1. **Utilizations**: UUniFast-discard (Davis & Burns 2011): UUniFast draws `u_1..u_n`
//!    uniformly from the simplex `sum u_i = U`; vectors with any `u_i > 1` are discarded and
//!    redrawn, so the accepted vectors are uniform over the valid part of the simplex. Vectors
//!    with any `u_i <` [`MIN_TASK_UTILIZATION`] are discarded too (a probability-zero event in
//!    exact arithmetic that would otherwise give a near-infinite period).
//! 2. **DNNs**: each task's DNN is drawn uniformly, with replacement, from the profile library.
//! 3. **Periods**: `T_i = C_i^ref / u_i`, rounded up to the nanosecond, where `C_i^ref` is the
//!    DNN's cost in the vanilla all-accelerator framework ([`reference_wcet`]): every layer on
//!    the platform's [accelerator](Platform::accelerator) — the first gpu in `gpu` mode, or the
//!    cpu marked `accelerator = true` in `cpu-fp32` — costed by [`lalarand_model::plan`], so
//!    the accelerator's dispatch overhead and any copies are included (the artifact's profiles
//!    on the default platform have neither: there `C_i^ref` is the all-GPU WCET). `U` is
//!    therefore the accelerator utilization of the vanilla framework (`gpu-only`), the x axis
//!    of the paper's plots; an allocator that moves layers elsewhere changes the real load on
//!    each resource.
//! 4. **Deadlines** `D_i = T_i`; **priorities** rate-monotonic (ties by task index);
//!    **offsets** 0, or uniform in `[0, T_i)` when asked.
//!
//! Randomness: ChaCha8, one stream per set, keyed by (seed, utilization rounded to 1e-6, set
//! index) — see [`set_rng`] — so a set does not depend on the other points of a sweep, on how
//! many sets are drawn, or on the order threads draw them in.

use crate::error::ExperimentError;
use lalarand_model::plan::layer_cost;
use lalarand_model::{DnnProfile, Placement, Platform, PriorityPolicy, System, Task, TaskSet, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// Vectors with a smaller task utilization are redrawn (see the module docs).
pub const MIN_TASK_UTILIZATION: f64 = 1e-6;

/// Redraws allowed per vector before UUniFast-discard gives up. As `U / n` nears 1 almost every
/// vector has some `u_i > 1` (with 8 tasks at `U = 7.4`, none in a million); this bound turns
/// that into an error rather than a hang.
pub const MAX_DRAWS: usize = 1_000_000;

/// UUniFast-discard: `n` utilizations summing to `total`, each in `[MIN_TASK_UTILIZATION, 1]`.
pub fn uunifast_discard(n: usize, total: f64, rng: &mut impl Rng) -> Result<Vec<f64>, ExperimentError> {
    if n == 0 {
        return Err(ExperimentError::config("tasks", "0 tasks", "ask for at least 1 task per set"));
    }
    if !(total.is_finite() && total > 0.0 && total <= n as f64) {
        return Err(ExperimentError::config(
            "utilization",
            format!("total utilization {total} is not in (0, {n}] for {n} tasks"),
            "use utilizations above 0 and at most the task count (no task may exceed utilization 1)",
        ));
    }
    let mut u = vec![0.0; n];
    for _ in 0..MAX_DRAWS {
        let mut sum = total;
        for (i, slot) in u.iter_mut().enumerate().take(n - 1) {
            let next = sum * rng.gen::<f64>().powf(1.0 / (n - 1 - i) as f64);
            *slot = sum - next;
            sum = next;
        }
        u[n - 1] = sum;
        if u.iter().all(|&x| (MIN_TASK_UTILIZATION..=1.0).contains(&x)) {
            return Ok(u);
        }
    }
    Err(ExperimentError::config(
        "utilization",
        format!("no vector of {n} task utilizations <= 1 summing to {total} in {MAX_DRAWS} draws"),
        "lower the utilization or raise the task count",
    ))
}

/// The random stream of set `index` at total utilization `utilization` under `seed`.
pub fn set_rng(seed: u64, utilization: f64, index: u64) -> ChaCha8Rng {
    // Rounding makes 0.1 + 0.2 and 0.3 the same point.
    let key = (utilization * 1e6).round() as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(splitmix64(seed ^ splitmix64(key)));
    rng.set_stream(index);
    rng
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Where the vanilla framework runs every layer, which the utilization axis refers to: the
/// platform's [accelerator](Platform::accelerator) in its mode.
pub fn reference_placement(platform: &Platform) -> Result<Placement, ExperimentError> {
    let (resource, mode) = platform.accelerator().ok_or_else(|| {
        ExperimentError::config(
            "platform",
            "the platform has neither a gpu nor a cpu marked `accelerator = true`, so there is no \
             all-accelerator framework to measure utilization against",
            "add a gpu resource, or mark the cpu resource standing in for it `accelerator = true` (docs/formats.md)",
        )
    })?;
    Ok(Placement { mode, resource })
}

/// `C^ref`: the cost of `dnn` with every layer at `place`, charged by [`lalarand_model::plan`]
/// (WCET, dispatch overhead, copies). `None` if some layer lacks `place.mode`.
pub fn reference_wcet(platform: &Platform, dnn: &DnnProfile, place: Placement) -> Option<Time> {
    if dnn.layers.iter().any(|l| l.wcet(place.mode).is_none()) {
        return None;
    }
    let places = vec![place; dnn.layers.len()];
    Some((0..places.len()).map(|j| layer_cost(platform, dnn, &places, j)).sum())
}

/// Checks that `dnn` can be drawn onto `platform`: every layer has the accelerator's mode (the
/// vanilla framework runs it there) and the all-accelerator cost is not 0. Returns `C^ref`.
pub fn check_profile(platform: &Platform, dnn: &DnnProfile) -> Result<Time, ExperimentError> {
    let place = reference_placement(platform)?;
    let accel = &platform.resources[place.resource].name;
    let Some(c_ref) = reference_wcet(platform, dnn, place) else {
        let l = dnn.layers.iter().find(|l| l.wcet(place.mode).is_none()).expect("reference_wcet found one");
        return Err(ExperimentError::config(
            "profiles",
            format!(
                "profile {:?} layer {:?} has no {} mode, which the platform's accelerator {accel:?} runs every layer in \
                 (gpu-only, and the utilization axis)",
                dnn.model, l.name, place.mode
            ),
            format!(
                "profile the {} mode, or pass a --platform whose accelerator runs a mode the profiles have \
                 (for cpu-only profiles: a cpu resource marked `accelerator = true`)",
                place.mode
            ),
        ));
    };
    if c_ref == 0 {
        return Err(ExperimentError::config(
            "profiles",
            format!("profile {:?} costs 0 on the accelerator {accel:?}, so its period would be 0", dnn.model),
            "remove it or give its layers non-zero times",
        ));
    }
    Ok(c_ref)
}

/// Draws task sets of a fixed size from a profile library onto a platform.
#[derive(Debug, Clone)]
pub struct Generator {
    profiles: Vec<Arc<DnnProfile>>,
    /// [`reference_wcet`] of each profile.
    c_ref: Vec<Time>,
    platform: Platform,
    tasks: usize,
    random_offsets: bool,
}

impl Generator {
    /// Fails if a profile cannot be drawn onto `platform` ([`check_profile`]).
    pub fn new(
        profiles: Vec<Arc<DnnProfile>>,
        platform: Platform,
        tasks: usize,
        random_offsets: bool,
    ) -> Result<Self, ExperimentError> {
        if tasks == 0 {
            return Err(ExperimentError::config("tasks", "0 tasks", "ask for at least 1 task per set"));
        }
        if profiles.is_empty() {
            return Err(ExperimentError::config("library", "no DNN profiles", "give at least one profile"));
        }
        let c_ref = profiles.iter().map(|p| check_profile(&platform, p)).collect::<Result<_, _>>()?;
        Ok(Self { profiles, c_ref, platform, tasks, random_offsets })
    }

    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// One task set at total (all-accelerator) utilization `utilization`, drawn from `rng`.
    pub fn generate(&self, utilization: f64, rng: &mut impl Rng) -> Result<System, ExperimentError> {
        let utils = uunifast_discard(self.tasks, utilization, rng)?;
        let tasks = utils
            .iter()
            .enumerate()
            .map(|(i, &u)| {
                let k = rng.gen_range(0..self.profiles.len());
                let dnn = self.profiles[k].clone();
                let period = period_for(self.c_ref[k], u);
                let mut task = Task::new(format!("t{i}-{}", dnn.model), period, dnn);
                if self.random_offsets {
                    task.offset = rng.gen_range(0..period);
                }
                task
            })
            .collect();
        Ok(System::new(self.platform.clone(), TaskSet::new(tasks, PriorityPolicy::RateMonotonic)))
    }
}

/// `ceil(c_ref / u)`: rounding up keeps the generated utilization at or below `u`.
pub fn period_for(c_ref: Time, u: f64) -> Time {
    (c_ref as f64 / u).ceil() as Time
}

#[cfg(test)]
mod tests {
    use super::*;
    use lalarand_model::library::{artifact_profiles, ArtifactSet, Int8Model};
    use lalarand_model::{LayerProfile, Mode, ModeTiming, Resource, ResourceKind};
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    fn generator(tasks: usize, offsets: bool) -> Generator {
        let profiles =
            artifact_profiles(ArtifactSet::A, Some(Int8Model::default())).into_iter().map(Arc::new).collect();
        Generator::new(profiles, Platform::default_cpu_gpu(), tasks, offsets).unwrap()
    }

    #[test]
    fn same_seed_same_sets_and_other_seed_other_sets() {
        let g = generator(5, true);
        let a = g.generate(1.3, &mut set_rng(7, 1.3, 4)).unwrap();
        let b = g.generate(1.3, &mut set_rng(7, 1.3, 4)).unwrap();
        assert_eq!(a, b);
        // 0.1 * 13 is not 1.3 in binary; the key rounding makes it the same point.
        assert_eq!(a, g.generate(1.3, &mut set_rng(7, 0.1 * 13.0, 4)).unwrap());
        assert_ne!(a, g.generate(1.3, &mut set_rng(8, 1.3, 4)).unwrap());
        assert_ne!(a, g.generate(1.3, &mut set_rng(7, 1.3, 5)).unwrap());
    }

    #[test]
    fn periods_follow_the_formula_and_priorities_are_rate_monotonic() {
        let g = generator(6, false);
        let sys = g.generate(0.9, &mut set_rng(1, 0.9, 0)).unwrap();
        // Replay the draws: utilizations first, then one DNN index per task.
        let mut replay = set_rng(1, 0.9, 0);
        let u = uunifast_discard(6, 0.9, &mut replay).unwrap();
        for (t, &ui) in sys.tasks.iter().zip(&u) {
            let dnn = &g.profiles[replay.gen_range(0..g.profiles.len())];
            assert_eq!(t.dnn.model, dnn.model);
            let c_ref = dnn.total_wcet(Mode::Gpu);
            assert_eq!(t.period, (c_ref as f64 / ui).ceil() as Time);
            assert_eq!((t.deadline, t.offset), (t.period, 0));
        }
        let realised: f64 = sys.tasks.iter().map(|t| t.dnn.total_wcet(Mode::Gpu) as f64 / t.period as f64).sum();
        assert!((realised - 0.9).abs() < 1e-6, "{realised}");
        for w in sys.by_priority().windows(2) {
            assert!(sys.tasks[w[0]].period <= sys.tasks[w[1]].period);
        }
    }

    #[test]
    fn offsets_lie_within_the_period() {
        let g = generator(8, true);
        let sys = g.generate(2.0, &mut set_rng(3, 2.0, 1)).unwrap();
        assert!(sys.tasks.iter().all(|t| t.offset < t.period));
        assert!(sys.tasks.iter().any(|t| t.offset > 0));
    }

    #[test]
    fn rejects_impossible_requests() {
        let mut rng = set_rng(0, 1.0, 0);
        assert!(uunifast_discard(0, 0.5, &mut rng).is_err());
        assert!(uunifast_discard(2, 2.5, &mut rng).is_err());
        assert!(uunifast_discard(2, 0.0, &mut rng).is_err());
        assert!(uunifast_discard(2, f64::NAN, &mut rng).is_err());
        assert!(Generator::new(vec![], Platform::default_cpu_gpu(), 2, false).is_err());
        let e = Generator::new(
            vec![Arc::new(lalarand_model::examples::chain_profile("empty", &[]))],
            Platform::default_cpu_gpu(),
            2,
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"empty\""), "{e}");
    }

    /// Two cpus, the second standing in for the accelerator, 120 us dispatch overhead on each.
    fn stand_in_platform() -> Platform {
        let mut cpu = Resource::new("cpu", ResourceKind::Cpu);
        let mut accel = Resource::new("accel", ResourceKind::Cpu);
        cpu.dispatch_overhead = 120_000;
        accel.dispatch_overhead = 120_000;
        accel.accelerator = true;
        Platform { resources: vec![cpu, accel] }
    }

    /// A layer measured on the cpu only, in fp32 and int8.
    fn cpu_layer(name: &str, fp32: Time, int8: Time) -> LayerProfile {
        LayerProfile {
            modes: [None, Some(ModeTiming::from_wcet(fp32)), Some(ModeTiming::from_wcet(int8))],
            ..LayerProfile::gpu_cpu(name, 0, 0)
        }
    }

    #[test]
    fn the_reference_is_the_all_accelerator_cost_with_overheads() {
        // Artifact profiles on one gpu + one cpu: no overheads, no copies, the all-GPU WCET.
        let platform = Platform::default_cpu_gpu();
        let place = reference_placement(&platform).unwrap();
        assert_eq!(place, Placement { mode: Mode::Gpu, resource: 0 });
        for p in artifact_profiles(ArtifactSet::A, Some(Int8Model::default())) {
            assert_eq!(check_profile(&platform, &p).unwrap(), p.total_wcet(Mode::Gpu), "{}", p.model);
        }
        // cpu-only profiles on the stand-in: cpu-fp32 on `accel`, plus 120 us per layer.
        let platform = stand_in_platform();
        let dnn = lalarand_model::examples::chain_profile(
            "m",
            &[cpu_layer("a", 1_000_000, 400_000), cpu_layer("b", 2_000_000, 800_000)],
        );
        assert_eq!(reference_placement(&platform).unwrap(), Placement { mode: Mode::CpuFp32, resource: 1 });
        assert_eq!(check_profile(&platform, &dnn).unwrap(), 3_000_000 + 2 * 120_000);
        let g = Generator::new(vec![Arc::new(dnn)], platform, 2, false).unwrap();
        let sys = g.generate(0.5, &mut set_rng(1, 0.5, 0)).unwrap();
        let realised: f64 = sys.tasks.iter().map(|t| 3_240_000.0 / t.period as f64).sum();
        assert!((realised - 0.5).abs() < 1e-6, "{realised}");
    }

    #[test]
    fn profiles_the_platform_cannot_draw_are_named() {
        let cpu_only = lalarand_model::examples::chain_profile("cpu-only-net", &[cpu_layer("conv1", 10, 5)]);
        // The default platform's accelerator is a gpu; this profile has no gpu mode.
        let e = check_profile(&Platform::default_cpu_gpu(), &cpu_only).unwrap_err().to_string();
        assert!(e.starts_with("profiles: ") && e.contains("\"cpu-only-net\"") && e.contains("\"conv1\""), "{e}");
        assert!(e.contains("no gpu mode") && e.contains("--platform") && e.contains("accelerator = true"), "{e}");
        // A platform without an accelerator has no utilization axis.
        let plain = Platform { resources: vec![Resource::new("cpu", ResourceKind::Cpu)] };
        let e = Generator::new(vec![Arc::new(cpu_only)], plain, 2, false).unwrap_err().to_string();
        assert!(e.starts_with("platform: ") && e.contains("accelerator = true"), "{e}");
    }

    proptest! {
        #[test]
        fn uunifast_discard_sums_to_target_within_bounds(n in 1usize..12, frac in 0.01f64..0.6, seed: u64) {
            let total = frac * n as f64;
            let u = uunifast_discard(n, total, &mut set_rng(seed, total, 0)).unwrap();
            prop_assert_eq!(u.len(), n);
            prop_assert!((u.iter().sum::<f64>() - total).abs() < 1e-9);
            prop_assert!(u.iter().all(|&x| (MIN_TASK_UTILIZATION..=1.0).contains(&x)));
        }

        #[test]
        fn generated_sets_realise_the_target(n in 1usize..8, frac in 0.05f64..0.6, seed: u64, index in 0u64..1000) {
            let total = frac * n as f64;
            let g = generator(n, true);
            let sys = g.generate(total, &mut set_rng(seed, total, index)).unwrap();
            prop_assert_eq!(sys.tasks.len(), n);
            let realised: f64 = sys.tasks.iter().map(|t| t.dnn.total_wcet(Mode::Gpu) as f64 / t.period as f64).sum();
            // Rounding periods up only lowers utilization, by at most 1 ns per period.
            prop_assert!(realised <= total + 1e-9 && realised > total * (1.0 - 1e-3), "{} vs {}", realised, total);
            let mut ranks: Vec<u32> = sys.tasks.iter().map(|t| t.priority).collect();
            ranks.sort_unstable();
            prop_assert_eq!(ranks, (0..n as u32).collect::<Vec<_>>());
        }
    }
}
