//! Which layers an allocator may place in `cpu-int8`: a layer is offered int8 when its profile
//! has a `cpu-int8` mode. Withholding int8 from a layer is therefore one operation, taking that
//! mode away, which every allocator already respects (the engine's build check refuses stages
//! the same way). Two callers need it: layers whose int8 accuracy cost is unknown (refused
//! unless the user assumes a cost, docs/formats.md "int8_accuracy_cost") and layers the
//! engine's end-to-end check moved back to fp32 (docs/engine.md, "The chosen allocation,
//! checked end to end").

use crate::profile::{DnnProfile, Mode};
use crate::task::System;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

impl DnnProfile {
    /// The layers (indices) that have a `cpu-int8` mode but no known int8 accuracy cost.
    pub fn int8_cost_unknown_layers(&self) -> impl Iterator<Item = usize> + '_ {
        self.int8_accuracy_unknown
            .iter()
            .copied()
            .filter(|&j| self.layers.get(j).is_some_and(|l| l.mode(Mode::CpuInt8).is_some()))
    }

    /// This profile with no int8 layer of unknown cost left ([`System::with_unknown_int8_costs`]).
    pub fn with_unknown_int8_costs(&self, assume: Option<f64>) -> Cow<'_, DnnProfile> {
        let unknown: BTreeSet<usize> = self.int8_cost_unknown_layers().collect();
        if unknown.is_empty() {
            return Cow::Borrowed(self);
        }
        let mut dnn = self.clone();
        for &j in &unknown {
            match assume {
                Some(pp) => dnn.layers[j].int8_accuracy_cost = pp,
                None => dnn.layers[j].modes[Mode::CpuInt8.index()] = None,
            }
        }
        if assume.is_some() {
            dnn.int8_accuracy_unknown.retain(|j| !unknown.contains(j));
        }
        Cow::Owned(dnn)
    }
}

impl System {
    /// This system with no int8 layer of unknown cost left: with `assume` `None` those layers
    /// lose their `cpu-int8` mode (an unknown cost never counts as zero silently); with
    /// `Some(pp)` they keep it and are budgeted at `pp` percentage points each. Borrowed
    /// unchanged when every int8 layer's cost is known (the artifact's modelled profiles, the
    /// profiles `lalarand profile --dataset` or `--calibration` measured).
    pub fn with_unknown_int8_costs(&self, assume: Option<f64>) -> Cow<'_, System> {
        if self.tasks.iter().all(|t| t.dnn.int8_cost_unknown_layers().next().is_none()) {
            return Cow::Borrowed(self);
        }
        let mut system = self.clone();
        for task in &mut system.tasks {
            if let Cow::Owned(dnn) = task.dnn.with_unknown_int8_costs(assume) {
                task.dnn = Arc::new(dnn);
            }
        }
        Cow::Owned(system)
    }

    /// This system with the `cpu-int8` mode taken from the given `(task, layer)` pairs (indices;
    /// pairs past the system are ignored), so that no allocator places them in int8.
    pub fn without_int8(&self, layers: &BTreeSet<(usize, usize)>) -> System {
        let mut system = self.clone();
        for (i, task) in system.tasks.iter_mut().enumerate() {
            let here: Vec<usize> = layers.range((i, 0)..=(i, usize::MAX)).map(|&(_, j)| j).collect();
            if here.is_empty() {
                continue;
            }
            let mut dnn = (*task.dnn).clone();
            for j in here {
                if let Some(layer) = dnn.layers.get_mut(j) {
                    layer.modes[Mode::CpuInt8.index()] = None;
                }
            }
            task.dnn = Arc::new(dnn);
        }
        system
    }
}

#[cfg(test)]
mod tests {
    use crate::examples::demo_system;
    use crate::{Mode, System};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    /// The demo system with every layer of task 0 offered int8 at an unknown cost.
    fn with_unknown_costs() -> System {
        let mut system = demo_system();
        let mut dnn = (*system.tasks[0].dnn).clone();
        for (j, l) in dnn.layers.iter_mut().enumerate() {
            l.modes[Mode::CpuInt8.index()].get_or_insert(l.modes[Mode::CpuFp32.index()].unwrap());
            l.int8_accuracy_cost = 0.0;
            dnn.int8_accuracy_unknown.insert(j);
        }
        system.tasks[0].dnn = Arc::new(dnn);
        system
    }

    #[test]
    fn unknown_int8_costs_are_refused_unless_a_cost_is_assumed() {
        let system = with_unknown_costs();
        let refused = system.with_unknown_int8_costs(None);
        assert!(refused.tasks[0].dnn.layers.iter().all(|l| l.mode(Mode::CpuInt8).is_none()));
        assert_eq!(refused.tasks[1], system.tasks[1], "tasks of known cost keep their modes");
        let assumed = system.with_unknown_int8_costs(Some(0.3));
        let dnn = &assumed.tasks[0].dnn;
        assert!(dnn.layers.iter().all(|l| l.mode(Mode::CpuInt8).is_some() && l.int8_accuracy_cost == 0.3));
        assert!(dnn.int8_accuracy_unknown.is_empty(), "every cost is known (assumed) now");
    }

    #[test]
    fn known_costs_leave_the_system_borrowed() {
        let system = demo_system();
        assert!(matches!(system.with_unknown_int8_costs(None), std::borrow::Cow::Borrowed(_)));
    }

    /// The artifact's sweeps are not affected: their int8 costs are modelled, so known.
    #[test]
    fn the_artifact_profiles_have_no_unknown_int8_cost() {
        use crate::library::{artifact_profiles, ArtifactSet, Int8Model};
        for set in [ArtifactSet::A, ArtifactSet::B] {
            for p in artifact_profiles(set, Some(Int8Model::default())) {
                assert!(p.layers.iter().any(|l| l.mode(Mode::CpuInt8).is_some()), "{}", p.model);
                assert!(matches!(p.with_unknown_int8_costs(None), std::borrow::Cow::Borrowed(_)), "{}", p.model);
            }
        }
    }

    #[test]
    fn without_int8_takes_the_mode_from_the_named_layers_only() {
        let system = with_unknown_costs().with_unknown_int8_costs(Some(0.0)).into_owned();
        let forbidden: BTreeSet<(usize, usize)> = [(0, 1), (0, 99), (7, 0)].into();
        let out = system.without_int8(&forbidden);
        let dnn = &out.tasks[0].dnn;
        assert!(dnn.layers[1].mode(Mode::CpuInt8).is_none());
        assert!(dnn.layers[0].mode(Mode::CpuInt8).is_some());
        assert_eq!(out.tasks[1], system.tasks[1]);
    }
}
