//! Choosing how coarse a model's stages are (`--granularity`), by measuring them.
//!
//! A cut between two stages costs time that the whole model does not pay: a session run, and
//! above all the layout changes at a session's edges (ONNX Runtime computes convolutions in a
//! blocked NCHWc layout and converts a session's inputs into it and its outputs back; a whole
//! model converts once). The cost of a cut grows with the tensors crossing it, so it is
//! measured, not assumed: `auto` times every layer stage, every pair of neighbours as one
//! stage, and the whole model, all on the same inputs and interleaved, and takes the cost of
//! the cut between `i` and `i + 1` as `t(i) + t(i + 1) - t(i..=i + 1)`, which orders the cuts.
//! It then finds by bisection the fewest costliest cuts to merge for the stages to sum to
//! within [`AUTO_GOAL`] of the whole model, timing each candidate (the cut costs do not add up
//! to the whole overhead, so the count is measured, not computed). The cheap cuts stay, so
//! fine-grained placement is kept where it costs little. Timing is on the CPU in fp32 (the mode
//! every model has).

use crate::error::Result;
use crate::stage::{ExecConfig, StageRunner, Tensors};
use crate::staged::{Pipeline, StagedModel};
use lalarand_model::Mode;
use lalarand_onnx::encode_model;
use lalarand_onnx::granularity::{self, Granularity};
use lalarand_onnx::partition::{self, Stage};
use std::time::Instant;

/// What `auto` accepts: summed stage times at most this multiple of the whole model's (below
/// the 1.10 it promises, so that measurement noise does not push a choice over).
pub const AUTO_GOAL: f64 = 1.05;

/// Timed rounds per measurement (each round runs the whole model and every session once).
const ROUNDS: usize = 15;
const WARMUP_ROUNDS: usize = 2;

/// Stages compute what the whole model computes, with the same kernels, so together they
/// cannot take meaningfully less time than it does: a measured ratio below this is noise (the
/// whole model's runs were interrupted more than the stages'), measured again, and never
/// taken as a fit.
pub const NOISE_FLOOR: f64 = 0.95;
/// Measurements of one grouping at most, while its ratio is below [`NOISE_FLOOR`].
const MEASUREMENTS: usize = 3;

/// The grouping a granularity chose, with what `auto` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub granularity: Granularity,
    /// Layer stages per stage (see [`lalarand_onnx::granularity`]).
    pub groups: Vec<usize>,
    /// Fastest time of every layer stage (ms; `auto` only, else empty): names merged stages.
    pub layer_ms: Vec<f64>,
    pub auto: Option<AutoReport>,
}

/// What `auto` measured, on the profiler's core and threads. A ratio is the median over rounds
/// of the stages' summed time over the whole model's time in the same round.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoReport {
    /// The whole model's fastest round (ms), in the chosen grouping's measurement.
    pub whole_ms: f64,
    /// The layer stages' ratio.
    pub layer_ratio: f64,
    /// The chosen stages' ratio.
    pub chosen_ratio: f64,
    /// Groupings measured until the finest one within [`AUTO_GOAL`] was found.
    pub tries: usize,
    /// Measurements whose ratio was below [`NOISE_FLOOR`] and were taken again.
    pub noisy: usize,
}

impl Choice {
    /// One line for the user: what was chosen and, under `auto`, what it measured.
    pub fn summary(&self) -> String {
        let n: usize = self.groups.iter().sum();
        let mut line = format!("granularity {}: {n} layer stages -> {} stages", self.granularity, self.groups.len());
        if let Some(r) = &self.auto {
            line += &format!(
                "; summed stage times {:.3}x the whole model ({:.2} ms), {:.3}x at layer granularity",
                r.chosen_ratio, r.whole_ms, r.layer_ratio
            );
            if r.noisy > 0 {
                let (what, were) = if r.noisy == 1 { ("measurement", "was") } else { ("measurements", "were") };
                line += &format!(" ({} {what} below {NOISE_FLOOR}x {were} noise, measured again)", r.noisy);
            }
        }
        line
    }
}

/// Chooses the stages of `staged` (at layer granularity) for `granularity`; `input` is one
/// model input of batch 1 (`auto` times on it). `stop` is asked between measurements.
pub fn choose(
    staged: &StagedModel,
    granularity: Granularity,
    cfg: &ExecConfig,
    input: &[f32],
    stop: &dyn Fn() -> bool,
) -> Result<Choice> {
    let n = staged.layer_partition.stages.len();
    match granularity {
        Granularity::Layer => Ok(Choice { granularity, groups: vec![1; n], layer_ms: Vec::new(), auto: None }),
        Granularity::Block => Ok(Choice {
            granularity,
            groups: granularity::block_groups(&staged.layer_partition),
            layer_ms: Vec::new(),
            auto: None,
        }),
        Granularity::Auto => Auto::new(staged, cfg, input)?.choose(stop),
    }
}

/// [`choose`], then the model regrouped accordingly (merged stages named after their slowest
/// layer stage under `auto`, their first otherwise).
pub fn apply(
    staged: &StagedModel,
    granularity: Granularity,
    cfg: &ExecConfig,
    input: &[f32],
    stop: &dyn Fn() -> bool,
) -> Result<(StagedModel, Choice)> {
    let choice = choose(staged, granularity, cfg, input, stop)?;
    let weight =
        if choice.layer_ms.is_empty() { vec![0.0; choice.groups.iter().sum()] } else { choice.layer_ms.clone() };
    Ok((staged.regrouped(&choice.groups, &weight)?, choice))
}

/// The measurements behind `auto`.
struct Auto<'a> {
    staged: &'a StagedModel,
    cfg: &'a ExecConfig,
    /// Every cut tensor of one fp32 run of `input`.
    tensors: Tensors,
    whole: StageRunner,
}

impl<'a> Auto<'a> {
    fn new(staged: &'a StagedModel, cfg: &'a ExecConfig, input: &[f32]) -> Result<Self> {
        let n = staged.layer_partition.stages.len();
        let layers = staged.regrouped(&vec![1; n], &vec![0.0; n])?;
        let dims = staged.input_shape(1);
        let reference = Pipeline::new(&layers, &vec![Mode::CpuFp32; layers.stage_count()], None, cfg)?;
        let tensors = reference.run_all(&dims, input.to_vec())?;
        let whole = StageRunner::new(&format!("{} (whole)", staged.name), Mode::CpuFp32, &staged.bytes, cfg)?;
        Ok(Self { staged, cfg, tensors, whole })
    }

    /// A session of `stage` (layer stages merged) in cpu-fp32.
    fn runner(&self, stage: &Stage) -> Result<StageRunner> {
        let model = partition::stage_model(&self.staged.model, stage, &self.staged.types)
            .map_err(|e| crate::error::EngineError::graph(self.staged.source.display().to_string(), e))?;
        StageRunner::new(&stage.name, Mode::CpuFp32, &encode_model(&model), self.cfg)
    }

    /// Times (ms) of the whole model and of every runner, in interleaved rounds so that machine
    /// noise hits all alike.
    fn time(&mut self, runners: &mut [StageRunner], stop: &dyn Fn() -> bool) -> Result<Rounds> {
        let mut rounds =
            Rounds { whole: Vec::with_capacity(ROUNDS), each: vec![Vec::with_capacity(ROUNDS); runners.len()] };
        for round in 0..WARMUP_ROUNDS + ROUNDS {
            if stop() {
                return Err(crate::error::EngineError::Interrupted("stop requested while choosing stages".into()));
            }
            let timed = round >= WARMUP_ROUNDS;
            let tensors = &self.tensors;
            let t = Instant::now();
            self.whole.run_with(|n| tensors.get(n))?;
            if timed {
                rounds.whole.push(t.elapsed().as_secs_f64() * 1e3);
            }
            for (r, samples) in runners.iter_mut().zip(&mut rounds.each) {
                let t = Instant::now();
                r.run_with(|n| tensors.get(n))?;
                if timed {
                    samples.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        Ok(rounds)
    }

    /// [`Self::time`] until the ratio is not noise ([`NOISE_FLOOR`]), [`MEASUREMENTS`] times at
    /// most; the count of noisy measurements is added to `noisy`.
    fn measure(&mut self, runners: &mut [StageRunner], noisy: &mut usize, stop: &dyn Fn() -> bool) -> Result<Rounds> {
        let mut rounds = self.time(runners, stop)?;
        for _ in 1..MEASUREMENTS {
            if rounds.ratio() >= NOISE_FLOOR {
                break;
            }
            *noisy += 1;
            rounds = self.time(runners, stop)?;
        }
        if rounds.ratio() < NOISE_FLOOR {
            *noisy += 1;
        }
        Ok(rounds)
    }

    fn choose(mut self, stop: &dyn Fn() -> bool) -> Result<Choice> {
        let layers = self.staged.layer_partition.clone();
        let n = layers.stages.len();
        let mut noisy = 0;
        let mut runners = layers.stages.iter().map(|s| self.runner(s)).collect::<Result<Vec<_>>>()?;
        let first = self.measure(&mut runners, &mut noisy, stop)?;
        drop(runners);
        let layer_ms = first.fastest_each();
        let layer_ratio = first.ratio();
        let report = |whole_ms: f64, chosen_ratio: f64, tries: usize, noisy: usize| AutoReport {
            whole_ms,
            layer_ratio,
            chosen_ratio,
            tries,
            noisy,
        };
        if n == 1 || fits(layer_ratio) {
            let auto = report(first.fastest_whole(), layer_ratio, 0, noisy);
            return Ok(Choice { granularity: Granularity::Auto, groups: vec![1; n], layer_ms, auto: Some(auto) });
        }
        // The cost of every cut, from its two stages timed alone and together.
        let mut pairs = (0..n - 1)
            .map(|i| self.runner(&granularity::merged_stage(&layers, i..i + 2)))
            .collect::<Result<Vec<_>>>()?;
        let pair_ms = self.time(&mut pairs, stop)?.fastest_each();
        drop(pairs);
        let cut_cost: Vec<f64> = (0..n - 1).map(|i| (layer_ms[i] + layer_ms[i + 1] - pair_ms[i]).max(0.0)).collect();
        // How many of the costliest cuts to merge: the fewest whose stages measure within
        // AUTO_GOAL of the whole model, found by bisection. The pairs' costs order the cuts and
        // give the first guess, but they do not add up to the whole overhead (a stage also
        // loses optimisations across its edges), so the count is measured, not computed.
        let order = costliest_first(&cut_cost);
        let excess = (layer_ratio - AUTO_GOAL).max(0.0) * first.fastest_whole();
        let guess = cuts_to_cover(&cut_cost, &order, excess);
        let name = self.staged.name.clone();
        let mut measure = |probe: usize| -> Result<(Vec<usize>, Rounds)> {
            let groups = groups_merging(&order[..probe], n);
            let merged = granularity::merge(&layers, &groups, &layer_ms)
                .map_err(|e| crate::error::EngineError::graph(self.staged.source.display().to_string(), e))?;
            let mut chosen = merged.stages.iter().map(|s| self.runner(s)).collect::<Result<Vec<_>>>()?;
            let rounds = self.measure(&mut chosen, &mut noisy, stop)?;
            tracing::debug!(
                "{name}: auto: {probe} of {} cuts merged, {} stages, {:.3}x the whole model",
                n - 1,
                groups.len(),
                rounds.ratio()
            );
            Ok((groups, rounds))
        };
        let (tries, (groups, rounds)) = fewest_cuts_that_fit(n - 1, guess, |probe| {
            let (groups, rounds) = measure(probe)?;
            Ok((rounds.ratio(), (groups, rounds)))
        })?;
        let auto = report(rounds.fastest_whole(), rounds.ratio(), tries, noisy);
        Ok(Choice { granularity: Granularity::Auto, groups, layer_ms, auto: Some(auto) })
    }
}

/// Whether a measured ratio is within [`AUTO_GOAL`]: noise below [`NOISE_FLOOR`] is not.
fn fits(ratio: f64) -> bool {
    (NOISE_FLOOR..=AUTO_GOAL).contains(&ratio)
}

/// The fewest of `cuts` (costliest first) to merge for `measure(count)`'s ratio to [`fits`],
/// by bisection from `guess`; merging all of them is taken as it measures. Returns the number
/// of measurements and what the chosen count's measurement carried.
fn fewest_cuts_that_fit<T>(
    cuts: usize,
    guess: usize,
    mut measure: impl FnMut(usize) -> Result<(f64, T)>,
) -> Result<(usize, T)> {
    let (mut fails, mut fit) = (0, cuts);
    let mut best: Option<T> = None;
    let mut probe = guess.clamp(1, cuts.max(1));
    let mut tries = 0;
    while fit - fails > 1 || best.is_none() {
        tries += 1;
        let (ratio, carried) = measure(probe)?;
        if fits(ratio) || probe == cuts {
            fit = probe;
            best = Some(carried);
        } else {
            fails = probe;
        }
        probe = (fails + fit).div_ceil(2);
        if probe == fit && best.is_none() {
            probe = cuts;
        }
    }
    Ok((tries, best.expect("the loop ends with a fit")))
}

/// One measurement's times (ms): the whole model's and every session's, per round.
struct Rounds {
    whole: Vec<f64>,
    each: Vec<Vec<f64>>,
}

impl Rounds {
    /// The median over rounds of the sessions' summed time over the whole model's in the same
    /// round. Paired by round, so a slow phase of the machine hits both sides alike; a median,
    /// so an interrupted round does not move it. (The fastest time of each session summed, over
    /// the whole model's fastest, mixes rounds: a short session's fastest round is less often
    /// interrupted than a long one's, and the ratio then falls below what is possible.)
    fn ratio(&self) -> f64 {
        let mut ratios: Vec<f64> = (0..self.whole.len())
            .map(|r| self.each.iter().map(|s| s[r]).sum::<f64>() / self.whole[r])
            .filter(|x| x.is_finite())
            .collect();
        if ratios.is_empty() {
            return f64::NAN;
        }
        ratios.sort_by(f64::total_cmp);
        let mid = ratios.len() / 2;
        if ratios.len() % 2 == 1 {
            ratios[mid]
        } else {
            (ratios[mid - 1] + ratios[mid]) / 2.0
        }
    }

    /// Every session's fastest round: what it costs when nothing interferes, which is what a
    /// cut adds (a median or mean would add the machine's noise to it).
    fn fastest_each(&self) -> Vec<f64> {
        self.each.iter().map(|s| fastest(s)).collect()
    }

    fn fastest_whole(&self) -> f64 {
        fastest(&self.whole)
    }
}

/// Cut indices, costliest first (ties: the later cut).
fn costliest_first(cut_cost: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cut_cost.len()).collect();
    order.sort_by(|&a, &b| cut_cost[b].total_cmp(&cut_cost[a]).then(b.cmp(&a)));
    order
}

/// How many cuts of `order` (costliest first) it takes for their costs to reach `excess`
/// (all of them if they never do).
fn cuts_to_cover(cut_cost: &[f64], order: &[usize], excess: f64) -> usize {
    let mut saved = 0.0;
    for (k, &c) in order.iter().enumerate() {
        if saved >= excess {
            return k;
        }
        saved += cut_cost[c];
    }
    order.len()
}

/// Group sizes over `stages` layer stages with the cuts `merged` removed.
fn groups_merging(merged: &[usize], stages: usize) -> Vec<usize> {
    let mut groups = vec![1];
    for cut in 0..stages.saturating_sub(1) {
        match merged.contains(&cut) {
            true => *groups.last_mut().expect("never empty") += 1,
            false => groups.push(1),
        }
    }
    groups
}

fn fastest(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Group sizes after merging the costliest cuts (ties: the later cut) until the merged cuts
    /// cost at least `excess`; every cut is merged if they do not.
    fn merge_costliest_cuts(cut_cost: &[f64], excess: f64) -> Vec<usize> {
        let order = costliest_first(cut_cost);
        let k = cuts_to_cover(cut_cost, &order, excess);
        groups_merging(&order[..k], cut_cost.len() + 1)
    }

    #[test]
    fn the_costliest_cuts_go_first() {
        // Cuts 0..4 cost 5, 1, 3, 0, 2: an excess of 7 merges cuts 0 and 2 (5 + 3 >= 7).
        assert_eq!(merge_costliest_cuts(&[5.0, 1.0, 3.0, 0.0, 2.0], 7.0), [2, 2, 1, 1]);
        assert_eq!(merge_costliest_cuts(&[5.0, 1.0, 3.0, 0.0, 2.0], 0.0), [1, 1, 1, 1, 1, 1]);
        assert_eq!(merge_costliest_cuts(&[5.0, 1.0, 3.0, 0.0, 2.0], 100.0), [6], "everything when the cuts cannot pay");
        assert_eq!(merge_costliest_cuts(&[], 1.0), [1]);
    }

    /// Two stages interrupted in alternate rounds, and a whole model as long as their sum in
    /// every round: summing each stage's fastest round gives 0.67x, which cannot be; the
    /// rounds paired give 1.0x.
    #[test]
    fn a_ratio_pairs_rounds_and_takes_their_median() {
        let rounds = Rounds {
            whole: vec![15.0; 5],
            each: vec![vec![5.0, 10.0, 5.0, 10.0, 5.0], vec![10.0, 5.0, 10.0, 5.0, 10.0]],
        };
        let mixed: f64 = rounds.fastest_each().iter().sum::<f64>() / rounds.fastest_whole();
        assert!((mixed - 2.0 / 3.0).abs() < 1e-9 && !fits(mixed), "below the noise floor: not a fit");
        assert_eq!(rounds.ratio(), 1.0);
        // One interrupted round of the whole model does not move the median.
        let stalled = Rounds { whole: vec![15.0, 15.0, 60.0], each: vec![vec![15.0, 15.0, 15.0]] };
        assert_eq!(stalled.ratio(), 1.0);
    }

    /// The bisection on a grouping whose true ratio falls below the goal from 40 merged cuts of
    /// 100, measured with noise: a sub-floor ratio (an interrupted whole model) is never a fit,
    /// so the answer does not move to a count that does not fit.
    #[test]
    fn the_fewest_cuts_are_found_through_noise() {
        let truth = |k: usize| if k >= 40 { 1.04 } else { 1.30 - k as f64 * 0.005 };
        for noise_every in [0, 2, 3] {
            let mut calls = 0;
            let (_, chosen) = fewest_cuts_that_fit(100, 10, |k| {
                calls += 1;
                let noisy = noise_every > 0 && calls % noise_every == 0;
                Ok((if noisy { 0.7 } else { truth(k) }, k))
            })
            .unwrap();
            assert!(chosen >= 40 && fits(truth(chosen)), "noise every {noise_every}: {chosen}");
            if noise_every == 0 {
                assert_eq!(chosen, 40);
            }
        }
    }

    #[test]
    fn auto_meets_its_limit_on_a_real_model() {
        let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mnist_resnet.onnx");
        let staged = StagedModel::load(&model).unwrap();
        let input: Vec<f32> = (0..784).map(|i| (i % 7) as f32 / 7.0).collect();
        let cfg = ExecConfig::default();
        for g in Granularity::ALL {
            let (regrouped, choice) = apply(&staged, g, &cfg, &input, &|| false).unwrap();
            assert_eq!(choice.groups.iter().sum::<usize>(), staged.stage_count(), "{g}");
            assert_eq!(regrouped.stage_count(), choice.groups.len(), "{g}");
            // Whatever the grouping, the chained stages compute the model.
            let dims = staged.input_shape(1);
            let chained = Pipeline::new(&regrouped, &vec![Mode::CpuFp32; regrouped.stage_count()], None, &cfg)
                .unwrap()
                .run(&dims, input.clone())
                .unwrap();
            let whole = Pipeline::new(&staged, &vec![Mode::CpuFp32; staged.stage_count()], None, &cfg)
                .unwrap()
                .run(&dims, input.clone())
                .unwrap();
            assert_eq!(chained.0, whole.0);
            for (a, b) in chained.1.iter().zip(&whole.1) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{g}: {a} vs {b}");
            }
            if let Some(r) = choice.auto {
                assert!(r.whole_ms > 0.0 && r.chosen_ratio > 0.0 && r.layer_ratio > 0.0, "{r:?}");
            }
        }
    }
}
