//! Built-in profile library: the per-layer times published in the LaLaRAND artifact.
//!
//! Source: `data/lalarand-artifact-profiles.json`, copied verbatim from the public LaLaRAND
//! research artifact (RTSS 2021, darknet-based version) as quoted in the project's shared
//! reference data. Set A is in microseconds (used by the artifact's experiment driver for DART
//! cut points); set B is raw scheduler-table values that the artifact multiplied by 10 to get
//! microseconds. The artifact publishes GPU and CPU fp32 times only: the `cpu-int8` mode and its
//! accuracy cost are *modelled* here by [`Int8Model`], which docs/evaluation.md states.

use crate::profile::{DnnProfile, LayerProfile, Mode, ModeTiming, OutputTransitions};
use crate::time::us_to_time;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The artifact's JSON, embedded so no user needs the shared folder.
pub const ARTIFACT_JSON: &str = include_str!("../data/lalarand-artifact-profiles.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactSet {
    /// Experiment-driver times, microseconds.
    A,
    /// Scheduler-table times (raw x 10 = microseconds).
    B,
}

/// How a `cpu-int8` mode is derived where only fp32 times are published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Int8Model {
    /// `cpu-int8` WCET = `cpu-fp32` WCET / speedup.
    pub speedup: f64,
    /// Accuracy drop (percentage points) of the whole DNN in int8, spread evenly over its layers.
    pub all_int8_drop: f64,
}

impl Default for Int8Model {
    /// 2.5x: ONNX Runtime's whole-model int8 speed-up on ResNet-18 on this project's machine
    /// (24.5 ms fp32 vs 9.7 ms int8, shared/models/README.md); 0.5 pp: the whole-model drop the
    /// engine must stay within.
    fn default() -> Self {
        Self { speedup: 2.5, all_int8_drop: 0.5 }
    }
}

#[derive(Deserialize)]
struct ArtifactFile {
    set_a: ArtifactSetFile,
    set_b: ArtifactSetFile,
}

#[derive(Deserialize)]
struct ArtifactSetFile {
    models: BTreeMap<String, ArtifactModel>,
}

#[derive(Deserialize)]
struct ArtifactModel {
    gpu: Vec<f64>,
    cpu: Vec<f64>,
    #[serde(default)]
    shipped_placement: Option<Vec<u8>>,
}

/// A published DNN: its profile and, for set B, the placement the artifact shipped (true = GPU).
#[derive(Debug, Clone)]
pub struct ArtifactDnn {
    pub profile: DnnProfile,
    pub shipped_on_gpu: Option<Vec<bool>>,
}

/// Profiles of one artifact set, sorted by model name; with `int8`, each layer also gets a
/// modelled `cpu-int8` mode.
pub fn artifact_dnns(set: ArtifactSet, int8: Option<Int8Model>) -> Vec<ArtifactDnn> {
    let file: ArtifactFile = serde_json::from_str(ARTIFACT_JSON).expect("embedded artifact JSON is valid");
    let (models, scale) = match set {
        ArtifactSet::A => (file.set_a.models, 1.0),
        ArtifactSet::B => (file.set_b.models, 10.0),
    };
    models
        .into_iter()
        .map(|(name, m)| {
            let n = m.gpu.len();
            let layers = m
                .gpu
                .iter()
                .zip(&m.cpu)
                .enumerate()
                .map(|(j, (&g, &c))| {
                    let mut l =
                        LayerProfile::gpu_cpu(format!("layer{j:02}"), us_to_time(g * scale), us_to_time(c * scale));
                    if let Some(q) = int8 {
                        l.modes[Mode::CpuInt8.index()] = Some(ModeTiming::from_wcet(us_to_time(c * scale / q.speedup)));
                        l.int8_accuracy_cost = q.all_int8_drop / n as f64;
                    }
                    l
                })
                .collect();
            let source = format!(
                "LaLaRAND artifact (RTSS 2021), set {set:?}{}",
                match int8 {
                    Some(q) => format!(
                        "; cpu-int8 modelled as cpu-fp32 / {} with {} pp whole-model drop",
                        q.speedup, q.all_int8_drop
                    ),
                    None => String::new(),
                }
            );
            ArtifactDnn {
                profile: DnnProfile {
                    model: name,
                    source,
                    wcet_margin: None,
                    model_sha256: None,
                    layers,
                    output: OutputTransitions::default(),
                    // Modelled costs (see `source`) are numbers the allocator may use: known.
                    int8_accuracy_unknown: Default::default(),
                    calibration: None,
                    input_shapes: Default::default(),
                    int8_notes: Default::default(),
                    int8_cost_kind: Default::default(),
                    stage_grouping: None,
                    layer_sources: Default::default(),
                },
                shipped_on_gpu: m.shipped_placement.map(|p| p.into_iter().map(|x| x == 1).collect()),
            }
        })
        .collect()
}

/// Just the profiles of [`artifact_dnns`].
pub fn artifact_profiles(set: ArtifactSet, int8: Option<Int8Model>) -> Vec<DnnProfile> {
    artifact_dnns(set, int8).into_iter().map(|d| d.profile).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_both_sets_with_published_shapes() {
        let a = artifact_profiles(ArtifactSet::A, None);
        assert_eq!(a.len(), 7);
        let resnet = a.iter().find(|p| p.model == "resnet18").unwrap();
        assert_eq!(resnet.layers.len(), 29);
        assert_eq!(resnet.layers[0].wcet(Mode::Gpu), Some(113_000));
        assert_eq!(resnet.layers[0].wcet(Mode::CpuInt8), None);
        let b = artifact_dnns(ArtifactSet::B, Some(Int8Model::default()));
        assert_eq!(b.len(), 4);
        let yolo = b.iter().find(|d| d.profile.model == "yolov3-tiny").unwrap();
        assert_eq!(yolo.profile.layers[0].wcet(Mode::Gpu), Some(10_690_000));
        assert_eq!(yolo.profile.layers[0].wcet(Mode::CpuInt8), Some(28_960_000));
        assert_eq!(yolo.shipped_on_gpu.as_ref().unwrap().len(), 24);
    }
}
