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

/// Timed rounds per measurement (each round runs every session once; the fastest is kept).
const ROUNDS: usize = 15;
const WARMUP_ROUNDS: usize = 2;

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

/// What `auto` measured (fastest of its rounds, ms, on the profiler's core and threads).
#[derive(Debug, Clone, PartialEq)]
pub struct AutoReport {
    pub whole_ms: f64,
    /// Summed layer stages.
    pub layer_sum_ms: f64,
    /// Summed chosen stages, measured in the same rounds as the last `whole_ms`.
    pub chosen_sum_ms: f64,
    /// Groupings measured until the finest one within [`AUTO_GOAL`] was found.
    pub tries: usize,
}

impl AutoReport {
    pub fn ratio(&self) -> f64 {
        self.chosen_sum_ms / self.whole_ms
    }
}

impl Choice {
    /// One line for the user: what was chosen and, under `auto`, what it measured.
    pub fn summary(&self) -> String {
        let n: usize = self.groups.iter().sum();
        let mut line = format!("granularity {}: {n} layer stages -> {} stages", self.granularity, self.groups.len());
        if let Some(r) = &self.auto {
            line += &format!(
                "; summed stage times {:.3}x the whole model ({:.2} ms), {:.3}x at layer granularity",
                r.ratio(),
                r.whole_ms,
                r.layer_sum_ms / r.whole_ms
            );
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

    /// Fastest times (ms) of the whole model and of every runner, timed in interleaved rounds
    /// so that machine noise hits all alike.
    fn time(&mut self, runners: &mut [StageRunner], stop: &dyn Fn() -> bool) -> Result<(f64, Vec<f64>)> {
        let mut whole = Vec::with_capacity(ROUNDS);
        let mut each = vec![Vec::with_capacity(ROUNDS); runners.len()];
        for round in 0..WARMUP_ROUNDS + ROUNDS {
            if stop() {
                return Err(crate::error::EngineError::Interrupted("stop requested while choosing stages".into()));
            }
            let timed = round >= WARMUP_ROUNDS;
            let tensors = &self.tensors;
            let t = Instant::now();
            self.whole.run_with(|n| tensors.get(n))?;
            if timed {
                whole.push(t.elapsed().as_secs_f64() * 1e3);
            }
            for (r, samples) in runners.iter_mut().zip(&mut each) {
                let t = Instant::now();
                r.run_with(|n| tensors.get(n))?;
                if timed {
                    samples.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        // Compared only with what ran in the same rounds: a minimum over more samples would be
        // lower for the whole model than for the stages and bias every ratio upwards.
        Ok((fastest(whole), each.into_iter().map(fastest).collect()))
    }

    fn choose(mut self, stop: &dyn Fn() -> bool) -> Result<Choice> {
        let layers = self.staged.layer_partition.clone();
        let n = layers.stages.len();
        let mut runners = layers.stages.iter().map(|s| self.runner(s)).collect::<Result<Vec<_>>>()?;
        let (whole_ms, layer_ms) = self.time(&mut runners, stop)?;
        let layer_sum_ms: f64 = layer_ms.iter().sum();
        let done = |groups: Vec<usize>, whole_ms: f64, chosen_sum_ms: f64, tries: usize, layer_ms: Vec<f64>| Choice {
            granularity: Granularity::Auto,
            groups,
            layer_ms,
            auto: Some(AutoReport { whole_ms, layer_sum_ms, chosen_sum_ms, tries }),
        };
        if n == 1 || layer_sum_ms <= AUTO_GOAL * whole_ms {
            return Ok(done(vec![1; n], whole_ms, layer_sum_ms, 0, layer_ms));
        }
        // The cost of every cut, from its two stages timed alone and together.
        let mut pairs = (0..n - 1)
            .map(|i| self.runner(&granularity::merged_stage(&layers, i..i + 2)))
            .collect::<Result<Vec<_>>>()?;
        let (_, pair_ms) = self.time(&mut pairs, stop)?;
        drop(pairs);
        let cut_cost: Vec<f64> = (0..n - 1).map(|i| (layer_ms[i] + layer_ms[i + 1] - pair_ms[i]).max(0.0)).collect();
        // How many of the costliest cuts to merge: the fewest whose stages measure within
        // AUTO_GOAL of the whole model, found by bisection. The pairs' costs order the cuts and
        // give the first guess, but they do not add up to the whole overhead (a stage also
        // loses optimisations across its edges), so the count is measured, not computed.
        let order = costliest_first(&cut_cost);
        let excess = layer_sum_ms - AUTO_GOAL * whole_ms;
        let guess = cuts_to_cover(&cut_cost, &order, excess);
        let (mut fails, mut fits) = (0, n - 1);
        let mut best: Option<(Vec<usize>, f64, f64)> = None;
        let mut probe = guess.clamp(1, n - 1);
        let mut tries = 0;
        while fits - fails > 1 || best.is_none() {
            tries += 1;
            let groups = groups_merging(&order[..probe], n);
            let merged = granularity::merge(&layers, &groups, &layer_ms)
                .map_err(|e| crate::error::EngineError::graph(self.staged.source.display().to_string(), e))?;
            let mut chosen = merged.stages.iter().map(|s| self.runner(s)).collect::<Result<Vec<_>>>()?;
            let (whole_ms, chosen_ms) = self.time(&mut chosen, stop)?;
            let chosen_sum: f64 = chosen_ms.iter().sum();
            tracing::debug!(
                "{}: auto try {tries}: {probe} of {} cuts merged, {} stages, {:.3}x the whole model",
                self.staged.name,
                n - 1,
                groups.len(),
                chosen_sum / whole_ms
            );
            if chosen_sum <= AUTO_GOAL * whole_ms || probe == n - 1 {
                fits = probe;
                best = Some((groups, whole_ms, chosen_sum));
            } else {
                fails = probe;
            }
            probe = (fails + fits).div_ceil(2);
            if probe == fits && best.is_none() {
                probe = n - 1;
            }
        }
        let (groups, whole_ms, chosen_sum) = best.expect("the loop ends with a fit");
        Ok(done(groups, whole_ms, chosen_sum, tries, layer_ms))
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

/// The fastest of a session's rounds: what it costs when nothing else interferes, which is
/// what a cut adds (a median or mean would add the machine's noise to it, and a busy machine
/// would then merge everything).
fn fastest(v: Vec<f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, f64::min)
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
                assert!(r.whole_ms > 0.0 && r.chosen_sum_ms > 0.0, "{r:?}");
            }
        }
    }
}
