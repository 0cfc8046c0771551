//! DNN profiles: per layer, the worst-case time of every mode it can run in, what its int8 mode
//! costs in accuracy, and what moving its input between resources or precisions costs.
//!
//! JSON, one file per DNN; the engine's profiler writes it, the timing core reads it.

use crate::error::{json_error, read_file, FormatError};
use crate::platform::ResourceKind;
use crate::time::{time_to_us, us_to_time, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

pub const PROFILE_FORMAT: &str = "lalarand-profile/1";

/// How a layer runs: on which kind of resource, in which precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mode {
    /// fp32 on a gpu resource.
    #[serde(rename = "gpu")]
    Gpu,
    #[serde(rename = "cpu-fp32")]
    CpuFp32,
    /// Statically quantized int8 on a cpu resource.
    #[serde(rename = "cpu-int8")]
    CpuInt8,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Gpu, Mode::CpuFp32, Mode::CpuInt8];

    pub fn kind(self) -> ResourceKind {
        match self {
            Mode::Gpu => ResourceKind::Gpu,
            Mode::CpuFp32 | Mode::CpuInt8 => ResourceKind::Cpu,
        }
    }

    pub fn is_int8(self) -> bool {
        self == Mode::CpuInt8
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Gpu => "gpu",
            Mode::CpuFp32 => "cpu-fp32",
            Mode::CpuInt8 => "cpu-int8",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mode {s:?} (known: gpu, cpu-fp32, cpu-int8)"))
    }
}

/// Measured statistics behind a WCET.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimingStats {
    pub max_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub samples: u64,
}

/// One mode of one layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModeTiming {
    pub wcet: Time,
    /// Absent for published profiles that give only one number.
    pub stats: Option<TimingStats>,
}

impl ModeTiming {
    pub fn from_wcet(wcet: Time) -> Self {
        Self { wcet, stats: None }
    }
}

/// Costs of bringing a layer's input to where and how the layer runs. Charged on the layer's
/// own resource, before it, as part of its non-preemptive execution (see [`crate::plan`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transitions {
    /// Input arrives from another memory (host <-> gpu, or another gpu).
    pub copy_in: Time,
    /// fp32 input, int8 layer.
    pub quantize_in: Time,
    /// int8 input, fp32 layer.
    pub dequantize_in: Time,
}

/// Costs of handing the DNN's output back to the host as fp32, charged on the last layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputTransitions {
    pub copy_out: Time,
    pub dequantize_out: Time,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LayerProfile {
    pub name: String,
    /// Indexed by [`Mode::index`]; `None` where the layer cannot run in that mode.
    pub modes: [Option<ModeTiming>; 3],
    /// Top-1 accuracy drop, in percentage points, when this layer alone runs int8. `0.0` where
    /// it is not known (see [`DnnProfile::int8_accuracy_known`]).
    pub int8_accuracy_cost: f64,
    pub transitions: Transitions,
}

impl LayerProfile {
    /// The accuracy cost an int8 run of this layer is budgeted at: a negative measured cost (int8
    /// happened to score better) counts as zero, so budget sums are never optimistic.
    pub fn budgeted_int8_cost(&self) -> f64 {
        self.int8_accuracy_cost.max(0.0)
    }

    /// A layer with only fp32 modes and no transition costs.
    pub fn gpu_cpu(name: impl Into<String>, gpu: Time, cpu: Time) -> Self {
        Self {
            name: name.into(),
            modes: [Some(ModeTiming::from_wcet(gpu)), Some(ModeTiming::from_wcet(cpu)), None],
            int8_accuracy_cost: 0.0,
            transitions: Transitions::default(),
        }
    }

    pub fn mode(&self, mode: Mode) -> Option<&ModeTiming> {
        self.modes[mode.index()].as_ref()
    }

    pub fn wcet(&self, mode: Mode) -> Option<Time> {
        self.mode(mode).map(|m| m.wcet)
    }

    pub fn available_modes(&self) -> impl Iterator<Item = Mode> + '_ {
        Mode::ALL.into_iter().filter(|m| self.modes[m.index()].is_some())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnnProfile {
    pub model: String,
    /// Where the numbers came from (machine, tool, publication).
    pub source: String,
    /// WCET = observed max x this margin, when the profile was measured.
    pub wcet_margin: Option<f64>,
    /// SHA-256 of the model file that was profiled, so a runtime can refuse a changed model.
    pub model_sha256: Option<String>,
    pub layers: Vec<LayerProfile>,
    pub output: OutputTransitions,
    /// Indices into `layers` of the layers whose `int8_accuracy_cost` is not known: the file
    /// has `null` or no number there (`lalarand profile` without a labeled dataset). Their
    /// cost reads as `0.0`, which is not "free": ask [`Self::int8_accuracy_known`]. Empty
    /// (every cost known) for profiles built in code, whose costs are the numbers given, and
    /// for the artifact library, whose costs are modelled (its `source` says so).
    ///
    /// Kept here rather than as a field of [`LayerProfile`], so that code building layers
    /// field by field does not have to change; an index past `layers` means nothing.
    pub int8_accuracy_unknown: BTreeSet<usize>,
    /// The int8 calibration the `cpu-int8` stages were built from when they were profiled,
    /// so that a run serves the stages that were measured (`None`: not recorded, e.g. a
    /// profile written before this field, a published one, or one without `cpu-int8`).
    pub calibration: Option<Int8Calibration>,
    /// The input shapes the model was profiled at (`lalarand profile --input-shape`), by input
    /// name; whatever loads the model for this profile fixes the same ones. Empty: the shapes
    /// the model file declares.
    pub input_shapes: BTreeMap<String, Vec<i64>>,
    /// What building each layer's int8 mode found, by index into `layers` (engine profiles;
    /// empty elsewhere). Kept here for the same reason as `int8_accuracy_unknown`.
    pub int8_notes: BTreeMap<usize, Int8Note>,
    /// What the known `int8_accuracy_cost`s measure.
    pub int8_cost_kind: Int8CostKind,
    /// How the engine merged the model's layer stages into the profile's layers (`lalarand
    /// profile --granularity`); `None`: one layer per layer stage, as profiles before this
    /// field and published ones have.
    pub stage_grouping: Option<StageGrouping>,
    /// Where each layer's inputs come from, by index into `layers`, for the layers that read
    /// more than their predecessor's output (a residual add, a concatenation, a detection head
    /// reading an earlier feature map) or read the graph input after the first layer. Absent:
    /// the chain rule (the first layer reads the graph input, every other its predecessor).
    /// Kept here for the same reason as `int8_notes`. [`Self::sources`] reads it.
    pub layer_sources: BTreeMap<usize, LayerSources>,
}

/// What a layer reads (the profile's `reads_layers` / `reads_input`): the earlier layers whose
/// outputs it takes, and whether it takes the graph input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayerSources {
    pub layers: Vec<usize>,
    pub graph_input: bool,
}

/// The profile's `stage_grouping`: which granularity chose the layers, and how many of the
/// partition's layer stages each layer takes, in order, so that whatever loads the model for
/// this profile builds the same stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageGrouping {
    /// `layer`, `block` or `auto`.
    pub granularity: String,
    /// Layer stages per layer; as many entries as `layers`, each at least 1.
    pub groups: Vec<usize>,
}

/// How a profile's `cpu-int8` stages were made: the activation ranges of the calibration, the
/// method that chose them, and a digest of the int8 stage models they produced. A runtime
/// rebuilds the stages from the ranges and refuses them unless the digest matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Int8Calibration {
    /// `percentile:99.99` or `minmax`.
    pub method: String,
    /// Input samples the ranges were observed on.
    pub samples: u64,
    /// SHA-256 (hex) of the int8 stage models built from `ranges`, in stage order.
    pub int8_sha256: String,
    /// `[low, high]` of every fp32 tensor of the model, by tensor name.
    pub ranges: BTreeMap<String, [f32; 2]>,
}

/// What the layers' `int8_accuracy_cost` measures (the profile's `int8_cost_kind`). All three
/// are percentage points the allocators budget against `--budget` the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Int8CostKind {
    /// Top-1 accuracy drop on labeled test rows (`lalarand profile --dataset`); what a profile
    /// without `int8_cost_kind` holds.
    #[default]
    #[serde(rename = "top1-drop")]
    Top1Drop,
    /// Percentage of unlabeled inputs whose top-1 class differs from fp32's (a classifier
    /// output, no labels).
    #[serde(rename = "top1-disagreement")]
    Top1Disagreement,
    /// `100 x (1 - cosine similarity)` of the model's outputs to fp32's on unlabeled inputs
    /// (any other output).
    #[serde(rename = "distortion")]
    Distortion,
}

/// What the engine found when it built a layer's int8 mode (docs/formats.md, `int8_cosine`
/// and `int8_note`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Int8Note {
    /// Cosine similarity of the layer's int8 output to its fp32 output on calibration inputs:
    /// the build check, which a layer must pass to be offered in `cpu-int8`.
    pub cosine: Option<f64>,
    /// Why the layer has no `cpu-int8` mode, or which of its operators stay fp32 and why.
    pub note: Option<String>,
}

// ---- file format ----------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    format: String,
    model: String,
    #[serde(default)]
    source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wcet_margin: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model_sha256: Option<String>,
    layers: Vec<LayerFile>,
    #[serde(default)]
    output: OutputFile,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calibration: Option<Int8Calibration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    input_shapes: BTreeMap<String, Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stage_grouping: Option<StageGrouping>,
    /// Absent: `top1-drop` (files written before label-free costs existed).
    #[serde(default, skip_serializing_if = "is_top1_drop")]
    int8_cost_kind: Int8CostKind,
}

fn is_top1_drop(k: &Int8CostKind) -> bool {
    *k == Int8CostKind::Top1Drop
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerFile {
    name: String,
    modes: BTreeMap<String, ModeFile>,
    /// `null` (or absent): not known; written as `null`.
    #[serde(default)]
    int8_accuracy_cost: Option<f64>,
    #[serde(default)]
    copy_in_us: f64,
    #[serde(default)]
    quantize_in_us: f64,
    #[serde(default)]
    dequantize_in_us: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    int8_cosine: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    int8_note: Option<String>,
    /// Absent: the chain rule (see `DnnProfile::layer_sources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reads_layers: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reads_input: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeFile {
    wcet_us: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p99_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mean_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    samples: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputFile {
    #[serde(default)]
    copy_out_us: f64,
    #[serde(default)]
    dequantize_out_us: f64,
}

fn check_stage_grouping(
    origin: &Path,
    grouping: Option<StageGrouping>,
    layers: usize,
) -> Result<Option<StageGrouping>, FormatError> {
    let Some(g) = grouping else { return Ok(None) };
    if !["layer", "block", "auto"].contains(&g.granularity.as_str()) {
        return Err(FormatError::new(
            origin,
            "stage_grouping.granularity",
            format!("`{}` is not a granularity", g.granularity),
            "use layer, block or auto (or re-run `lalarand profile`)",
        ));
    }
    if g.groups.len() != layers || g.groups.contains(&0) {
        return Err(FormatError::new(
            origin,
            "stage_grouping.groups",
            format!("{} groups for {layers} layers", g.groups.len()),
            "give one positive count of layer stages per layer (or re-run `lalarand profile`)",
        ));
    }
    Ok(Some(g))
}

fn check_input_shapes(
    origin: &Path,
    shapes: BTreeMap<String, Vec<i64>>,
) -> Result<BTreeMap<String, Vec<i64>>, FormatError> {
    for (name, dims) in &shapes {
        if dims.is_empty() || dims.iter().any(|&d| d <= 0) {
            return Err(FormatError::new(
                origin,
                format!("input_shapes.{name}"),
                format!("{dims:?} is not a shape"),
                "give every dimension as a positive integer, e.g. [1, 3, 640, 640]",
            ));
        }
    }
    Ok(shapes)
}

fn check_time(origin: &Path, field: impl Into<String>, us: f64) -> Result<Time, FormatError> {
    if crate::time::in_range(us, 1e3) {
        Ok(us_to_time(us))
    } else {
        Err(FormatError::new(
            origin,
            field,
            format!("{us} is not a time between 0 and {} us", crate::time::MAX_TIME / 1_000),
            "use a finite time in microseconds >= 0",
        ))
    }
}

/// Ranges must be finite with `low <= high`, the digest 64 hex digits.
fn check_calibration(origin: &Path, c: Option<Int8Calibration>) -> Result<Option<Int8Calibration>, FormatError> {
    let Some(c) = c else { return Ok(None) };
    if c.int8_sha256.len() != 64 || !c.int8_sha256.chars().all(|ch| ch.is_ascii_hexdigit()) {
        return Err(FormatError::new(
            origin,
            "calibration.int8_sha256",
            format!("{:?} is not a SHA-256 in hex", c.int8_sha256),
            "re-run `lalarand profile` to write the calibration again",
        ));
    }
    if let Some((name, r)) = c.ranges.iter().find(|(_, r)| !(r[0].is_finite() && r[1].is_finite() && r[0] <= r[1])) {
        return Err(FormatError::new(
            origin,
            format!("calibration.ranges.{name}"),
            format!("{r:?} is not a finite [low, high] range"),
            "re-run `lalarand profile` to write the calibration again",
        ));
    }
    Ok(Some(c))
}

impl DnnProfile {
    pub fn load(path: &Path) -> Result<Self, FormatError> {
        Self::parse(&read_file(path)?, path)
    }

    /// Parses profile JSON; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, FormatError> {
        let file: ProfileFile = serde_json::from_str(text).map_err(|e| json_error(origin, e))?;
        if file.format != PROFILE_FORMAT {
            return Err(FormatError::new(
                origin,
                "format",
                format!("unknown format {:?}", file.format),
                format!("set \"format\": \"{PROFILE_FORMAT}\" (or re-run `lalarand profile`)"),
            ));
        }
        if file.model.trim().is_empty() {
            return Err(FormatError::new(origin, "model", "empty model name", "name the DNN, e.g. \"resnet18\""));
        }
        if let Some(m) = file.wcet_margin {
            if !m.is_finite() || m < 1.0 {
                return Err(FormatError::new(origin, "wcet_margin", format!("{m} is below 1"), "use a margin >= 1.0"));
            }
        }
        if file.layers.is_empty() {
            return Err(FormatError::new(origin, "layers", "no layers", "list the DNN's layers in execution order"));
        }
        let mut names = HashSet::new();
        let mut layers = Vec::with_capacity(file.layers.len());
        let mut unknown = BTreeSet::new();
        let mut notes = BTreeMap::new();
        let mut sources = BTreeMap::new();
        for (i, l) in file.layers.into_iter().enumerate() {
            let at = |f: &str| format!("layers[{i}].{f}");
            if !names.insert(l.name.clone()) {
                return Err(FormatError::new(
                    origin,
                    at("name"),
                    format!("duplicate layer name {:?}", l.name),
                    "give every layer a distinct name",
                ));
            }
            if l.modes.is_empty() {
                return Err(FormatError::new(
                    origin,
                    at("modes"),
                    format!("layer {:?} has no mode", l.name),
                    "give at least one of \"gpu\", \"cpu-fp32\", \"cpu-int8\" with its wcet_us",
                ));
            }
            let mut modes = [None; 3];
            for (key, m) in &l.modes {
                let mode: Mode = key
                    .parse()
                    .map_err(|e: String| FormatError::new(origin, at("modes"), e, "use gpu, cpu-fp32 or cpu-int8"))?;
                let field = at(&format!("modes.{key}"));
                let wcet = check_time(origin, format!("{field}.wcet_us"), m.wcet_us)?;
                let stats = match (m.max_us, m.p99_us, m.mean_us, m.samples) {
                    (None, None, None, None) => None,
                    (Some(max), Some(p99), Some(mean), Some(samples)) => {
                        for (f, v) in [("max_us", max), ("p99_us", p99), ("mean_us", mean)] {
                            check_time(origin, format!("{field}.{f}"), v)?;
                        }
                        if m.wcet_us < max {
                            return Err(FormatError::new(
                                origin,
                                format!("{field}.wcet_us"),
                                format!("wcet_us {} is below the observed max_us {max}", m.wcet_us),
                                "a worst case cannot be below an observation: raise wcet_us to at least max_us",
                            ));
                        }
                        Some(TimingStats { max_us: max, p99_us: p99, mean_us: mean, samples })
                    }
                    _ => {
                        return Err(FormatError::new(
                            origin,
                            field,
                            "partial statistics",
                            "give all of max_us, p99_us, mean_us, samples, or none of them",
                        ))
                    }
                };
                modes[mode.index()] = Some(ModeTiming { wcet, stats });
            }
            if l.int8_accuracy_cost.is_some_and(|c| !c.is_finite()) {
                return Err(FormatError::new(
                    origin,
                    at("int8_accuracy_cost"),
                    "not a finite number",
                    "use the measured drop in percentage points, or null where it was not measured",
                ));
            }
            if l.int8_accuracy_cost.is_none() {
                unknown.insert(i);
            }
            if l.int8_cosine.is_some_and(|c| !(-1.0..=1.0).contains(&c)) {
                return Err(FormatError::new(
                    origin,
                    at("int8_cosine"),
                    "not a cosine similarity",
                    "use a number in [-1, 1] (or re-run `lalarand profile`)",
                ));
            }
            if l.int8_cosine.is_some() || l.int8_note.is_some() {
                notes.insert(i, Int8Note { cosine: l.int8_cosine, note: l.int8_note.clone() });
            }
            if l.reads_layers.is_some() || l.reads_input.is_some() {
                let read = LayerSources {
                    layers: l.reads_layers.clone().unwrap_or_default(),
                    graph_input: l.reads_input.unwrap_or(false),
                };
                if let Some(&bad) = read.layers.iter().find(|&&k| k >= i) {
                    return Err(FormatError::new(
                        origin,
                        at("reads_layers"),
                        format!("layer {bad} is not an earlier layer"),
                        "list indices of earlier layers only (or re-run `lalarand profile`)",
                    ));
                }
                if read.layers.is_empty() && !read.graph_input {
                    return Err(FormatError::new(
                        origin,
                        at("reads_layers"),
                        "the layer reads nothing",
                        "list the earlier layers it reads, or set reads_input (or re-run `lalarand profile`)",
                    ));
                }
                sources.insert(i, read);
            }
            layers.push(LayerProfile {
                name: l.name,
                modes,
                int8_accuracy_cost: l.int8_accuracy_cost.unwrap_or(0.0),
                transitions: Transitions {
                    copy_in: check_time(origin, at("copy_in_us"), l.copy_in_us)?,
                    quantize_in: check_time(origin, at("quantize_in_us"), l.quantize_in_us)?,
                    dequantize_in: check_time(origin, at("dequantize_in_us"), l.dequantize_in_us)?,
                },
            });
        }
        let stage_grouping = check_stage_grouping(origin, file.stage_grouping, layers.len())?;
        Ok(Self {
            model: file.model,
            source: file.source,
            wcet_margin: file.wcet_margin,
            model_sha256: file.model_sha256,
            layers,
            output: OutputTransitions {
                copy_out: check_time(origin, "output.copy_out_us", file.output.copy_out_us)?,
                dequantize_out: check_time(origin, "output.dequantize_out_us", file.output.dequantize_out_us)?,
            },
            int8_accuracy_unknown: unknown,
            calibration: check_calibration(origin, file.calibration)?,
            input_shapes: check_input_shapes(origin, file.input_shapes)?,
            int8_notes: notes,
            int8_cost_kind: file.int8_cost_kind,
            stage_grouping,
            layer_sources: sources,
        })
    }

    pub fn to_json(&self) -> String {
        let file = ProfileFile {
            format: PROFILE_FORMAT.into(),
            model: self.model.clone(),
            source: self.source.clone(),
            wcet_margin: self.wcet_margin,
            model_sha256: self.model_sha256.clone(),
            layers: self
                .layers
                .iter()
                .enumerate()
                .map(|(j, l)| LayerFile {
                    name: l.name.clone(),
                    modes: l
                        .available_modes()
                        .map(|m| {
                            let t = l.mode(m).unwrap();
                            let s = t.stats;
                            (
                                m.name().to_string(),
                                ModeFile {
                                    wcet_us: time_to_us(t.wcet),
                                    max_us: s.map(|s| s.max_us),
                                    p99_us: s.map(|s| s.p99_us),
                                    mean_us: s.map(|s| s.mean_us),
                                    samples: s.map(|s| s.samples),
                                },
                            )
                        })
                        .collect(),
                    int8_accuracy_cost: self.int8_accuracy_known(j).then_some(l.int8_accuracy_cost),
                    copy_in_us: time_to_us(l.transitions.copy_in),
                    quantize_in_us: time_to_us(l.transitions.quantize_in),
                    dequantize_in_us: time_to_us(l.transitions.dequantize_in),
                    int8_cosine: self.int8_notes.get(&j).and_then(|n| n.cosine),
                    int8_note: self.int8_notes.get(&j).and_then(|n| n.note.clone()),
                    reads_layers: self.layer_sources.get(&j).map(|r| r.layers.clone()),
                    reads_input: self.layer_sources.get(&j).map(|r| r.graph_input),
                })
                .collect(),
            output: OutputFile {
                copy_out_us: time_to_us(self.output.copy_out),
                dequantize_out_us: time_to_us(self.output.dequantize_out),
            },
            calibration: self.calibration.clone(),
            input_shapes: self.input_shapes.clone(),
            stage_grouping: self.stage_grouping.clone(),
            int8_cost_kind: self.int8_cost_kind,
        };
        serde_json::to_string_pretty(&file).expect("profile serializes")
    }

    /// What layer `j` reads: `layer_sources[j]`, else the chain rule (the first layer the graph
    /// input, every other its predecessor).
    pub fn sources(&self, j: usize) -> std::borrow::Cow<'_, LayerSources> {
        match self.layer_sources.get(&j) {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(match j.checked_sub(1) {
                Some(prev) => LayerSources { layers: vec![prev], graph_input: false },
                None => LayerSources { layers: Vec::new(), graph_input: true },
            }),
        }
    }

    /// Whether layer `j`'s `int8_accuracy_cost` is a known number (measured, modelled or given
    /// in code) rather than the `0.0` that stands for "not measured".
    pub fn int8_accuracy_known(&self, j: usize) -> bool {
        !self.int8_accuracy_unknown.contains(&j)
    }

    /// Total worst-case time of the DNN with every layer in `mode` (falling back to the
    /// fastest available mode of the layer where `mode` is absent); transitions excluded.
    pub fn total_wcet(&self, mode: Mode) -> Time {
        self.layers
            .iter()
            .map(|l| l.wcet(mode).unwrap_or_else(|| l.available_modes().filter_map(|m| l.wcet(m)).min().unwrap_or(0)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"format":"lalarand-profile/1","model":"m","layers":[
        {"name":"a","modes":{"gpu":{"wcet_us":10},"cpu-fp32":{"wcet_us":100,"max_us":90,"p99_us":80,"mean_us":70,"samples":50},"cpu-int8":{"wcet_us":40}},"int8_accuracy_cost":0.1,"copy_in_us":5},
        {"name":"b","modes":{"gpu":{"wcet_us":3.5}}}],"output":{"copy_out_us":2}}"#;

    fn parse(s: &str) -> Result<DnnProfile, FormatError> {
        DnnProfile::parse(s, Path::new("x.json"))
    }

    #[test]
    fn parses_and_round_trips() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.layers.len(), 2);
        assert_eq!(p.layers[0].wcet(Mode::CpuInt8), Some(40_000));
        assert_eq!(p.layers[1].wcet(Mode::CpuFp32), None);
        assert_eq!(p.layers[1].wcet(Mode::Gpu), Some(3_500));
        assert_eq!(p.output.copy_out, 2_000);
        assert_eq!(parse(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn int8_cost_kind_round_trips_and_defaults_to_the_labeled_drop() {
        let p = DnnProfile::parse(GOOD, Path::new("p.json")).unwrap();
        assert_eq!(p.int8_cost_kind, Int8CostKind::Top1Drop);
        assert!(!p.to_json().contains("int8_cost_kind"), "the default is not written");
        let text = GOOD.replacen("\"layers\"", "\"int8_cost_kind\": \"top1-disagreement\", \"layers\"", 1);
        let p = DnnProfile::parse(&text, Path::new("p.json")).unwrap();
        assert_eq!(p.int8_cost_kind, Int8CostKind::Top1Disagreement);
        assert_eq!(DnnProfile::parse(&p.to_json(), Path::new("p.json")).unwrap(), p);
        let bad = GOOD.replacen("\"layers\"", "\"int8_cost_kind\": \"vibes\", \"layers\"", 1);
        assert!(DnnProfile::parse(&bad, Path::new("p.json")).unwrap_err().to_string().contains("vibes"));
    }

    #[test]
    fn accuracy_cost_null_or_absent_is_unknown() {
        // Layer a gives a number (known, also when it is 0), b none; c gives null.
        let text = GOOD.replace("\"int8_accuracy_cost\":0.1", "\"int8_accuracy_cost\":0").replace(
            "3.5}}}],",
            "3.5}}},{\"name\":\"c\",\"modes\":{\"gpu\":{\"wcet_us\":1}},\"int8_accuracy_cost\":null}],",
        );
        let p = parse(&text).unwrap();
        assert_eq!(p.layers.len(), 3);
        assert_eq!(p.int8_accuracy_unknown, BTreeSet::from([1, 2]));
        assert!(p.int8_accuracy_known(0) && !p.int8_accuracy_known(1) && !p.int8_accuracy_known(2));
        assert!(p.layers.iter().all(|l| l.int8_accuracy_cost == 0.0));
        // Unknown is written as null, a known 0 as 0; both read back as they were.
        let json = p.to_json();
        assert_eq!(json.matches("\"int8_accuracy_cost\": null").count(), 2, "{json}");
        assert_eq!(json.matches("\"int8_accuracy_cost\": 0.0").count(), 1, "{json}");
        assert_eq!(parse(&json).unwrap(), p);
        // A number stays known (files written before `null` existed mean what they said).
        assert!(parse(GOOD).unwrap().int8_accuracy_known(0));
        assert!(parse(&GOOD.replace("0.1", "\"x\"")).is_err());
    }

    /// `input_shapes` is optional: absent reads as empty and is not written; given, it
    /// round-trips; a non-positive dimension names the field.
    #[test]
    fn input_shapes_are_optional_and_round_trip() {
        let p = parse(GOOD).unwrap();
        assert!(p.input_shapes.is_empty());
        assert!(!p.to_json().contains("input_shapes"));
        let text = GOOD.replace(r#""model":"m","#, r#""model":"m","input_shapes":{"images":[1,3,640,640]},"#);
        let p = parse(&text).unwrap();
        assert_eq!(p.input_shapes["images"], [1, 3, 640, 640]);
        assert_eq!(parse(&p.to_json()).unwrap(), p);
        let e = parse(&text.replace("640,640", "0,640")).unwrap_err();
        assert_eq!(e.field, "input_shapes.images", "{e}");
    }

    #[test]
    fn stage_grouping_round_trips_and_is_checked() {
        let mut p = parse(GOOD).unwrap();
        assert_eq!(p.stage_grouping, None);
        assert!(!p.to_json().contains("stage_grouping"), "absent at layer granularity");
        let n = p.layers.len();
        p.stage_grouping = Some(StageGrouping { granularity: "auto".into(), groups: vec![3; n] });
        let json = p.to_json();
        assert_eq!(parse(&json).unwrap(), p);
        let e = parse(&json.replace("\"auto\"", "\"coarse\"")).unwrap_err();
        assert_eq!(e.field, "stage_grouping.granularity", "{e}");
        let mut short = p.clone();
        short.stage_grouping.as_mut().unwrap().groups.pop();
        let e = parse(&short.to_json()).unwrap_err();
        assert_eq!(e.field, "stage_grouping.groups", "{e}");
    }

    #[test]
    fn layer_sources_round_trip_and_are_checked() {
        let mut p = parse(GOOD).unwrap();
        assert!(!p.to_json().contains("reads_layers"), "absent under the chain rule");
        let last = p.layers.len() - 1;
        p.layer_sources.insert(last, LayerSources { layers: vec![0], graph_input: true });
        let json = p.to_json();
        assert_eq!(parse(&json).unwrap(), p);
        assert_eq!(p.sources(last).layers, [0]);
        assert!(p.sources(0).graph_input, "the chain rule's first layer");
        let mut bad = p.clone();
        bad.layer_sources.insert(0, LayerSources { layers: vec![0], graph_input: false });
        let e = parse(&bad.to_json()).unwrap_err();
        assert_eq!(e.field, "layers[0].reads_layers", "{e}");
    }

    #[test]
    fn calibration_round_trips_and_is_checked() {
        let mut p = parse(GOOD).unwrap();
        assert_eq!(p.calibration, None);
        assert!(!p.to_json().contains("calibration"), "absent when not recorded");
        p.calibration = Some(Int8Calibration {
            method: "percentile:99.99".into(),
            samples: 8,
            int8_sha256: "ab".repeat(32),
            ranges: BTreeMap::from([("x".into(), [-1.5, 2.25]), ("y".into(), [0.0, 1e-7])]),
        });
        let json = p.to_json();
        assert_eq!(parse(&json).unwrap(), p);
        let e = parse(&json.replace(&"ab".repeat(32), "xyz")).unwrap_err();
        assert_eq!(e.field, "calibration.int8_sha256", "{e}");
        let e = parse(&json.replace("-1.5", "3.0")).unwrap_err();
        assert_eq!(e.field, "calibration.ranges.x", "{e}");
    }

    #[test]
    fn rejects_bad_input() {
        let cases = [
            (GOOD.replace("\"wcet_us\":10}", "\"wcet_us\":-1}"), "layers[0].modes.gpu.wcet_us"),
            (GOOD.replace("\"wcet_us\":100", "\"wcet_us\":10"), "layers[0].modes.cpu-fp32.wcet_us"),
            (GOOD.replace("{\"gpu\":{\"wcet_us\":3.5}}", "{}"), "layers[1].modes"),
            (GOOD.replace("\"name\":\"b\"", "\"name\":\"a\""), "layers[1].name"),
            (GOOD.replace("lalarand-profile/1", "v0"), "format"),
            (GOOD.replace("cpu-int8", "npu"), "layers[0].modes"),
        ];
        for (text, field) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        assert!(parse("{not json").unwrap_err().field.starts_with("(line"));
    }
}
