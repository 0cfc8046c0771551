//! Shrinking a violating set to a minimal reproduction.

use super::generate::HYPERPERIODS;
use super::CampaignSet;
use crate::engine::Horizon;
use crate::exec::ExecutionTimeModel;

/// Greedily shrinks a violating set (drops tasks and layers, zeroes offsets, runs at the WCET,
/// shortens layers) while it keeps violating; returns the set unchanged if it does not.
pub fn minimize(set: &CampaignSet) -> CampaignSet {
    shrink(set, |s| !super::violations(s).is_empty())
}

/// Greedily applies the simplifications of [`minimize`] while `keep` holds.
pub fn shrink(set: &CampaignSet, keep: impl Fn(&CampaignSet) -> bool) -> CampaignSet {
    let mut best = set.clone();
    if !keep(&best) {
        return best;
    }
    while let Some(smaller) = candidates(&best).into_iter().find(&keep) {
        best = smaller;
    }
    best
}

/// One-step simplifications of `set`, simplest first.
fn candidates(set: &CampaignSet) -> Vec<CampaignSet> {
    let mut out = Vec::new();
    let with = |f: &dyn Fn(&mut CampaignSet)| {
        let mut c = set.clone();
        f(&mut c);
        c
    };
    if set.config.execution != ExecutionTimeModel::Wcet {
        out.push(with(&|c| c.config.execution = ExecutionTimeModel::Wcet));
    }
    let tasks = set.plan.tasks.len();
    for i in 0..tasks {
        if tasks > 1 {
            out.push(with(&|c| {
                c.plan.tasks.remove(i);
            }));
        }
        if set.plan.tasks[i].offset > 0 {
            out.push(with(&|c| c.plan.tasks[i].offset = 0));
        }
        for j in 0..set.plan.tasks[i].layers.len() {
            if set.plan.tasks[i].layers.len() > 1 {
                out.push(with(&|c| {
                    c.plan.tasks[i].layers.remove(j);
                }));
            }
            let w = set.plan.tasks[i].layers[j].wcet;
            for smaller in [w / 2, w - 1] {
                if smaller > 0 && smaller < w {
                    out.push(with(&|c| c.plan.tasks[i].layers[j].wcet = smaller));
                }
            }
        }
    }
    // Keep the horizon covering the (possibly changed) hyperperiod.
    for c in &mut out {
        let max_offset = c.plan.tasks.iter().map(|t| t.offset).max().unwrap_or(0);
        if let Some(h) = c.plan.hyperperiod() {
            c.config.horizon = Horizon::Until(max_offset + HYPERPERIODS * h);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::campaign_set;

    #[test]
    fn shrinks_to_what_the_property_needs() {
        // Property: two tasks or more, one layer of at least 5.
        let keep = |s: &CampaignSet| {
            s.plan.tasks.len() >= 2 && s.plan.tasks.iter().flat_map(|t| &t.layers).any(|l| l.wcet >= 5)
        };
        let set = (0..).map(|i| campaign_set(5, i)).find(|s| keep(s) && s.plan.tasks.len() > 2).unwrap();
        let small = shrink(&set, keep);
        assert_eq!(small.plan.tasks.len(), 2);
        assert!(small.plan.tasks.iter().all(|t| t.layers.len() == 1 && t.offset == 0));
        let mut costs: Vec<_> = small.plan.tasks.iter().map(|t| t.layers[0].wcet).collect();
        costs.sort();
        assert_eq!(costs, vec![1, 5]);
        assert_eq!(small.config.execution, ExecutionTimeModel::Wcet);
        assert_eq!(shrink(&set, |_| false), set);
    }
}
