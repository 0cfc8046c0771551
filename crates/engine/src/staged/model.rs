//! A model cut into stage models: loading, partitioning, checking the cuts, regrouping.

use crate::error::{EngineError, Result};
use crate::stage::{ExecConfig, StageRunner, Tensors};
use crate::tensor::{elem, info_of, typed_value, zeros_value};
use lalarand_model::Mode;
use lalarand_onnx::fold::{self, InputShape};
use lalarand_onnx::granularity;
use lalarand_onnx::partition::{self, Partition, TensorInfo};
use lalarand_onnx::quantize::QParams;
use lalarand_onnx::{encode_model, ModelProto, OnnxError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A model, its partition, and every stage as a standalone fp32 ONNX model.
#[derive(Debug, Clone)]
pub struct StagedModel {
    pub name: String,
    /// The file it came from (errors name it).
    pub source: PathBuf,
    pub model: ModelProto,
    /// The whole model, encoded.
    pub bytes: Vec<u8>,
    pub partition: Partition,
    /// Every graph input, in the graph's order, with its declared element type and dims.
    pub inputs: Vec<ModelInput>,
    /// The sample input: the one that profiling, calibration and verify samples fill (the
    /// first float input, else the first input). The other inputs get fixed values of their
    /// type ([`Self::companions`]): zeros (a recurrent model's initial state, a valid index),
    /// true for bool (a mask that keeps everything).
    pub input_name: String,
    /// The sample input's dims; `None` is the symbolic batch.
    pub input_dims: Vec<Option<i64>>,
    /// The first graph output (`partition.graph_outputs` has them all).
    pub output_name: String,
    /// Type and shape of every tensor that crosses a stage boundary.
    pub types: HashMap<String, TensorInfo>,
    /// The input shapes it was loaded with (`--input-shape`, recorded in the profile so that
    /// whatever loads the model for that profile uses the same ones).
    pub input_shapes: Vec<InputShape>,
    /// The partition's layer stages, before any merging ([`Self::regrouped`]).
    pub layer_partition: Partition,
    /// How many layer stages each stage takes (all 1 at `layer` granularity; recorded in the
    /// profile as `stage_groups`, so that whatever loads the model gets the same stages).
    pub stage_groups: Vec<usize>,
    /// What makes the model already quantized (`lalarand_onnx::quantize::prequantized`), if
    /// it is: its fp32 modes run it as it is, and it has no cpu-int8 mode of lalarand's.
    pub prequantized: Option<String>,
    stage_fp32: Vec<Vec<u8>>,
}

/// A graph input: its name, declared element type (ONNX numbering, [`crate::tensor::elem`])
/// and dims (`None`: the symbolic batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInput {
    pub name: String,
    pub elem_type: i32,
    pub dims: Vec<Option<i64>>,
}

impl ModelInput {
    /// Dims with the symbolic batch set to `batch`.
    pub fn shape(&self, batch: usize) -> Vec<usize> {
        self.dims.iter().map(|d| d.map_or(batch, |v| v as usize)).collect()
    }

    pub fn is_float(&self) -> bool {
        self.elem_type == elem::FLOAT
    }
}

/// Element types a graph input may declare (what ONNX Runtime values are made of here).
const INPUT_TYPES: [i32; 7] =
    [elem::FLOAT, elem::DOUBLE, elem::INT64, elem::INT32, elem::INT8, elem::UINT8, elem::BOOL];

fn onnx_err(source: &Path, e: OnnxError) -> EngineError {
    match e {
        OnnxError::Read { path, source } => EngineError::Io { path, error: source },
        OnnxError::NotAModel { path, reason } => EngineError::NotOnnx { path, reason },
        other => EngineError::graph(source.display().to_string(), other),
    }
}

impl StagedModel {
    /// Reads, partitions and types a model file whose input shapes the file fixes (or whose
    /// only symbolic dimension is the batch).
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &[])
    }

    /// Reads a model file for `profile`: with the input shapes it was profiled at.
    pub fn load_for_profile(path: &Path, profile: &lalarand_model::DnnProfile) -> Result<Self> {
        let shapes: Vec<InputShape> = profile
            .input_shapes
            .iter()
            .map(|(name, dims)| InputShape { name: name.clone(), dims: dims.clone() })
            .collect();
        Self::load_with(path, &shapes)?.regrouped_for(profile)
    }

    /// Reads, partitions and types a model file, its inputs fixed at `shapes` (see
    /// [`Self::from_model_with`]).
    pub fn load_with(path: &Path, shapes: &[InputShape]) -> Result<Self> {
        let model = lalarand_onnx::load_model(path).map_err(|e| onnx_err(path, e))?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        Self::from_model_with(&name, model, path.to_path_buf(), shapes)
    }

    /// Partitions `model` and types its cut tensors by running it once on zeros.
    pub fn from_model(name: &str, model: ModelProto, source: PathBuf) -> Result<Self> {
        Self::from_model_with(name, model, source, &[])
    }

    /// [`Self::from_model`] with the inputs fixed at `shapes` first; the shape computations
    /// that fixed shapes determine are then folded to constants (`lalarand_onnx::fold`). A
    /// symbolic dimension other than the batch left without a shape is an error naming it and
    /// the flag; a symbolic batch stays symbolic unless the graph computes shapes, where it is
    /// fixed at 1.
    pub fn from_model_with(name: &str, model: ModelProto, source: PathBuf, shapes: &[InputShape]) -> Result<Self> {
        let stride = model.graph.as_ref().map_or(1, lalarand_onnx::stride::deepest_stride);
        Self::build(name, model, source, shapes).map_err(|e| explain_undivided_sizes(e, shapes, stride))
    }

    fn build(name: &str, mut model: ModelProto, source: PathBuf, shapes: &[InputShape]) -> Result<Self> {
        prepare(&mut model, shapes, &source)?;
        let partition = partition::partition(&model).map_err(|e| onnx_err(&source, e))?;
        let prequantized = lalarand_onnx::quantize::prequantized(&model);
        if let Some(what) = &prequantized {
            tracing::info!(
                "{}: already quantized ({what}): every mode runs it as it is, and lalarand does not quantize it again (no cpu-int8 mode)",
                source.display()
            );
        }
        for note in &partition.notes {
            tracing::warn!("{}: {note}", source.display());
        }
        let graph = model.graph.as_ref().expect("partition checked the graph");
        let inputs =
            partition.graph_inputs.iter().map(|name| model_input(graph, name, &source)).collect::<Result<Vec<_>>>()?;
        let sample = inputs.iter().find(|i| i.is_float()).or(inputs.first()).ok_or_else(|| {
            EngineError::graph(
                source.display().to_string(),
                "the graph has no inputs; fix: export the model with its inputs as graph inputs",
            )
        })?;
        let (input_name, input_dims) = (sample.name.clone(), sample.dims.clone());
        let output_name = partition.graph_outputs[0].clone();
        let bytes = encode_model(&model);
        let types = infer_types(&model, &partition, &inputs, &source)?;
        let stage_fp32 = partition
            .stages
            .iter()
            .map(|s| partition::stage_model(&model, s, &types).map(|m| encode_model(&m)))
            .collect::<Result<_, _>>()
            .map_err(|e| onnx_err(&source, e))?;
        Ok(Self {
            name: name.into(),
            source,
            model,
            bytes,
            stage_groups: vec![1; partition.stages.len()],
            layer_partition: partition.clone(),
            partition,
            inputs,
            input_name,
            input_dims,
            output_name,
            types,
            input_shapes: shapes.to_vec(),
            prequantized,
            stage_fp32,
        })
    }

    /// The model with its layer stages merged into groups of `sizes` (see
    /// [`lalarand_onnx::granularity`]); each merged stage is named after its member of largest
    /// `weight` (a measured time). Always relative to the layer stages, whatever the current
    /// grouping is.
    pub fn regrouped(&self, sizes: &[usize], weight: &[f64]) -> Result<Self> {
        let partition =
            granularity::merge(&self.layer_partition, sizes, weight).map_err(|e| onnx_err(&self.source, e))?;
        let stage_fp32 = partition
            .stages
            .iter()
            .map(|s| partition::stage_model(&self.model, s, &self.types).map(|m| encode_model(&m)))
            .collect::<Result<_, _>>()
            .map_err(|e| onnx_err(&self.source, e))?;
        Ok(Self { partition, stage_groups: sizes.to_vec(), stage_fp32, ..self.clone() })
    }

    /// The model regrouped as `profile` records (`stage_groups`), named after its stages.
    fn regrouped_for(self, profile: &lalarand_model::DnnProfile) -> Result<Self> {
        let Some(sizes) = profile.stage_grouping.as_ref().map(|g| &g.groups).filter(|g| g.iter().any(|&s| s != 1))
        else {
            return Ok(self);
        };
        granularity::check_groups(sizes, self.layer_partition.stages.len()).map_err(|problem| {
            EngineError::tensor(
                self.source.display().to_string(),
                "(stage_grouping)",
                format!(
                    "the profile's stage_grouping does not fit this model: {problem}; fix: profile this model again"
                ),
            )
        })?;
        // Names come from the profile: each merged stage is named after a member layer stage.
        let names: Vec<&str> = profile.layers.iter().map(|l| l.name.as_str()).collect();
        let weight: Vec<f64> = self
            .layer_partition
            .stages
            .iter()
            .map(|s| if names.contains(&s.name.as_str()) { 1.0 } else { 0.0 })
            .collect();
        self.regrouped(sizes, &weight)
    }

    /// A model converting boundary tensor `name` between fp32 and uint8 with `q`, in the
    /// handover layout ([`lalarand_onnx::layout::conversion_model`]).
    pub fn conversion_model(&self, name: &str, q: QParams, to_u8: bool) -> Result<Vec<u8>> {
        let info = self
            .types
            .get(name)
            .ok_or_else(|| EngineError::tensor("building a (de)quantizer", name, "not a stage boundary"))?;
        Ok(encode_model(&lalarand_onnx::layout::conversion_model(&info.dims, q, to_u8)))
    }

    pub fn stage_count(&self) -> usize {
        self.partition.stages.len()
    }

    pub fn stage_names(&self) -> Vec<&str> {
        self.partition.stages.iter().map(|s| s.name.as_str()).collect()
    }

    /// The fp32 ONNX model of stage `i`.
    pub fn stage_fp32(&self, i: usize) -> &[u8] {
        &self.stage_fp32[i]
    }

    /// Why stage `i` has no cpu-int8 mode of lalarand's because it computes with the model's
    /// own quantized ops (`lalarand_onnx::quantize::quantized_stage_op`), if it has none; `None`
    /// for a float model and a float stage of a quantized one.
    pub fn prequantized_stage(&self, i: usize) -> Option<String> {
        let what = self.prequantized.as_ref()?;
        let graph = self.model.graph.as_ref()?;
        let stage = &self.partition.stages[i];
        let op =
            lalarand_onnx::quantize::quantized_stage_op(stage.nodes.iter().map(|&n| &graph.node[n]), &stage.inputs)?;
        Some(format!(
            "the model is already quantized ({what}) and this stage runs its {} `{}`: its own int8 ops run in cpu-fp32 and gpu as they are, and lalarand does not quantize them again; fix: profile the model's fp32 export for lalarand's cpu-int8 mode",
            op.op_type(),
            op.name()
        ))
    }

    /// The sample input's dims with the symbolic batch set to `batch`.
    pub fn input_shape(&self, batch: usize) -> Vec<usize> {
        self.input_dims.iter().map(|d| d.map_or(batch, |v| v as usize)).collect()
    }

    /// The sample input ([`Self::input_name`]).
    pub fn sample_input(&self) -> &ModelInput {
        self.inputs.iter().find(|i| i.name == self.input_name).expect("the sample input is a graph input")
    }

    /// The graph input called `name`.
    pub fn graph_input(&self, name: &str) -> Option<&ModelInput> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// Every graph input of one job whose sample input is `data` (fp32, shape `dims`,
    /// converted to the input's declared type: [`typed_value`]); every other input as
    /// [`Self::companions`], its symbolic batch the sample's (`dims[0]`).
    pub fn feed(&self, dims: &[usize], data: Vec<f32>) -> Result<crate::stage::Tensors> {
        self.check_input(dims, "model input")?;
        let mut t = self.companions(dims.first().copied().unwrap_or(1))?;
        let sample = self.sample_input();
        let v = typed_value(sample.elem_type, dims, data)
            .map_err(|e| EngineError::tensor("model input", &sample.name, e.to_string()))?;
        t.insert(sample.name.clone(), v);
        Ok(t)
    }

    /// Every graph input but the sample input, of its declared type, at batch `batch`: zeros
    /// (a recurrent model's initial state, index 0), and true for bool (a mask that keeps
    /// everything, so that calibration sees the values a mask lets through).
    pub fn companions(&self, batch: usize) -> Result<crate::stage::Tensors> {
        let mut t = crate::stage::Tensors::new();
        for i in self.inputs.iter().filter(|i| i.name != self.input_name) {
            let dims = i.shape(batch);
            let fill = if i.elem_type == elem::BOOL { 1.0 } else { 0.0 };
            t.insert(i.name.clone(), typed_value(i.elem_type, &dims, vec![fill; dims.iter().product()])?);
        }
        Ok(t)
    }

    /// Checks that `dims` fits the sample input; `context` says where the data came from.
    pub fn check_input(&self, dims: &[usize], context: &str) -> Result<()> {
        let fits = dims.len() == self.input_dims.len()
            && dims.iter().zip(&self.input_dims).all(|(&d, e)| e.is_none_or(|e| e as usize == d));
        if fits {
            Ok(())
        } else {
            let want: Vec<String> =
                self.input_dims.iter().map(|d| d.map_or("batch".into(), |v| v.to_string())).collect();
            Err(EngineError::tensor(
                context,
                &self.input_name,
                format!("shape {dims:?} does not fit the input [{}] of {}", want.join(", "), self.source.display()),
            ))
        }
    }
}

/// Fixes the input shapes and folds what they determine (see [`StagedModel::from_model_with`]).
fn prepare(model: &mut ModelProto, shapes: &[InputShape], source: &Path) -> Result<()> {
    let file = source.display().to_string();
    lower_ir_version(model, &file)?;
    lower_opset(model, &file)?;
    let weights = fold::weights_as_initializers(model);
    if weights > 0 {
        tracing::debug!("{file}: {weights} weights listed as graph inputs taken as initializers (an IR < 4 export)");
    }
    fold::constants_to_initializers(model).map_err(|e| onnx_err(source, e))?;
    fold::check_outputs_reachable(model).map_err(|e| onnx_err(source, e))?;
    let copies = fold::remove_identities(model);
    if copies > 0 {
        tracing::debug!("{file}: {copies} Identity nodes removed (their readers read the source)");
    }
    let opset = model.opset_import.iter().find(|o| o.domain().is_empty()).and_then(|o| o.version).unwrap_or(0);
    if fold::upgrade_to_opset13(model) {
        tracing::debug!("{file}: opset {opset} rewritten as opset 13 (per-channel int8 needs it)");
    } else if let Some(why) =
        model.graph.as_ref().filter(|_| (7..13).contains(&opset)).and_then(|g| fold::opset13_blocker(g, opset))
    {
        // Said once per model (its stages' int8 refusals name the opset).
        tracing::info!("{file}: opset {opset} kept ({why}); it runs in fp32 modes, and gets no cpu-int8 mode");
    }
    // An input lalarand cannot feed at all is said before its shapes are asked for (a user
    // would fix the shapes for nothing).
    if let Some(graph) = model.graph.as_ref() {
        let inits: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
        for vi in graph.input.iter().filter(|i| !inits.contains(i.name())) {
            if let Some(t) = lalarand_onnx::builder::elem_type_of(vi) {
                check_input_type(vi.name(), t, source)?;
            }
        }
    }
    fold::fix_input_shapes(model, shapes).map_err(|e| onnx_err(source, e))?;
    let symbolic = fold::symbolic_dims(model);
    if symbolic.iter().any(|d| d.axis != 0) {
        let gname = model.graph.as_ref().map_or("(none)", |g| g.name()).to_string();
        return Err(onnx_err(source, fold::symbolic_error(&gname, model, &symbolic)));
    }
    let graph = model.graph.as_ref().ok_or_else(|| EngineError::graph(&file, "the model has no graph"))?;
    if !symbolic.is_empty() && fold::reads_shapes(graph) {
        // Shapes computed from a symbolic batch cannot be folded; lalarand runs batch 1.
        let batch1: Vec<InputShape> = fold::input_dims(model)
            .into_iter()
            .filter_map(|(name, dims, _)| {
                let dims = dims?;
                dims[0].is_none().then(|| InputShape { name, dims: dims.iter().map(|d| d.unwrap_or(1)).collect() })
            })
            .collect();
        tracing::info!(
            "{file}: the graph computes shapes from its input, so its symbolic batch is fixed at 1 ({})",
            batch1.iter().map(InputShape::to_string).collect::<Vec<_>>().join(" ")
        );
        fold::fix_input_shapes(model, &batch1).map_err(|e| onnx_err(source, e))?;
    }
    let graph = model.graph.as_ref().expect("checked above");
    let names = fold::foldable(graph);
    if names.is_empty() {
        return Ok(());
    }
    let probe = encode_model(&partition::with_outputs(model, &names));
    let what = format!("{file} (its shape computations)");
    let mut runner = StageRunner::new(&what, Mode::CpuFp32, &probe, &ExecConfig::default()).map_err(not_runnable)?;
    let mut tensors = Tensors::new();
    for (name, dims, _) in fold::input_dims(model) {
        let dims: Vec<usize> = dims.unwrap_or_default().iter().map(|d| d.unwrap_or(1) as usize).collect();
        let elem_type = model_input(graph, &name, source)?.elem_type;
        tensors.insert(name, zeros_value(elem_type, &dims)?);
    }
    runner.run(&mut tensors)?;
    let values = names
        .iter()
        .map(|n| {
            let v = tensors.get(n).ok_or_else(|| EngineError::tensor(&what, n, "not computed"))?;
            tensor_proto_of(v, n).map_err(|problem| EngineError::tensor(&what, n, problem))
        })
        .collect::<Result<Vec<_>>>()?;
    tracing::debug!("{file}: folded {} shape computations to constants", values.len());
    fold::fold(model, values);
    Ok(())
}

/// A model written with a newer `onnx` than ONNX Runtime knows (IR 14 from onnx 1.23) that
/// uses no element type the newer IR version added gets the version ONNX Runtime reads; one that
/// does is refused, naming the type and what uses it.
fn lower_ir_version(model: &mut ModelProto, file: &str) -> Result<()> {
    use crate::onnxruntime::{ORT_MAX_IR_VERSION, ORT_VERSION};
    match lalarand_onnx::ir_version::lower_ir_version(model, ORT_MAX_IR_VERSION) {
        Ok(Some(written)) => {
            tracing::debug!(
                "{file}: IR version {written} read as {ORT_MAX_IR_VERSION} (ONNX Runtime {ORT_VERSION} reads IR {ORT_MAX_IR_VERSION} at most, and the model uses nothing newer)"
            );
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(newest) => Err(EngineError::graph(
            file,
            format!(
                "the model uses {}, an element type of ONNX IR version {}; ONNX Runtime {ORT_VERSION} reads IR {ORT_MAX_IR_VERSION} at most; fix: convert it to a type ONNX Runtime {ORT_VERSION} runs (float32, float16, int8, ...) before exporting",
                newest.used_by, newest.ir_version
            ),
        )),
    }
}

/// A model stamped with an opset newer than ONNX Runtime supports (28 from onnx 1.23's
/// `make_model`) is read at the newest one it does where none of its operators changed in
/// between; otherwise refused naming the operator, with the export settings that fix it.
fn lower_opset(model: &mut ModelProto, file: &str) -> Result<()> {
    use crate::onnxruntime::{ORT_MAX_OPSET, ORT_VERSION};
    use lalarand_onnx::opset_version::{lower_opset, NotLowered};
    let max = ORT_MAX_OPSET;
    let fix = format!(
        "fix: export at opset {max} or older (torch.onnx.export(..., opset_version={max}), onnx.helper.make_model(..., opset_imports=[onnx.helper.make_opsetid(\"\", {max})]), or onnx.version_converter.convert_version(model, {max}))"
    );
    let stamped =
        |opset| format!("the model is stamped opset {opset}, newer than ONNX Runtime {ORT_VERSION} supports ({max})");
    match lower_opset(model, max) {
        Ok(Some(opset)) => {
            tracing::debug!("{file}: opset {opset} read as {max} (none of its operators changed in between)");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(NotLowered::Changed(op)) => Err(EngineError::graph(
            file,
            format!(
                "{}, and its {} node {:?} changed in opset {}; {fix}",
                stamped(lalarand_onnx::opset_version::default_opset(model).unwrap_or_default()),
                op.op_type,
                op.node,
                op.opset
            ),
        )),
        Err(NotLowered::Unknown { opset }) => Err(EngineError::graph(
            file,
            format!(
                "{}, and newer than lalarand knows ({}); {fix}",
                stamped(opset),
                lalarand_onnx::opset_changes::LATEST_OPSET
            ),
        )),
    }
}

/// ONNX Runtime's shape inference found sizes that differ inside the model: where the user
/// fixed a spatial size (rank-4 input, axes 2 and 3) that the model's downsampling `stride` does
/// not divide, that is the cause, and the fix is a size that it divides.
fn explain_undivided_sizes(e: EngineError, shapes: &[InputShape], stride: u64) -> EngineError {
    let EngineError::Unsupported { stage, mode, problem } = e else { return e };
    let mismatch = problem.contains("ShapeInferenceError") || problem.contains("dimension");
    let undivided: Vec<String> = shapes
        .iter()
        .filter(|s| s.dims.len() == 4)
        .flat_map(|s| {
            [(2, "height"), (3, "width")].into_iter().filter_map(move |(axis, what)| {
                let size = u64::try_from(s.dims[axis]).ok().filter(|&d| d > 0)?;
                (size % stride != 0).then(|| {
                    let (below, above) = lalarand_onnx::stride::nearest_multiples(size, stride);
                    let or = if below == above { below.to_string() } else { format!("{below} or {above}") };
                    format!("`--input-shape {s}`: {what} {size} is not a multiple of {stride}, so use {or}")
                })
            })
        })
        .collect();
    if !mismatch || stride < 2 || undivided.is_empty() {
        return EngineError::Unsupported { stage, mode, problem };
    }
    let cause = problem.split("; fix:").next().unwrap_or(&problem);
    EngineError::Unsupported {
        stage,
        mode,
        problem: format!(
            "{cause}; the cause: the model downsamples its input by stride {stride} (its strided convolutions and poolings), and a size it does not divide gives branches of different sizes where they meet; fix: {}",
            undivided.join("; ")
        ),
    }
}

/// ONNX Runtime refused the whole model: the fix is on the model's side.
fn not_runnable(e: EngineError) -> EngineError {
    match e {
        EngineError::Unsupported { stage, mode, problem } => EngineError::Unsupported {
            stage,
            mode,
            problem: format!(
                "ONNX Runtime {} cannot run the model: {problem}; fix: export it with standard ONNX ops (the default domain, opset 11 or newer), or do that op's work outside the model",
                crate::onnxruntime::ORT_VERSION
            ),
        },
        other => other,
    }
}

/// An ONNX Runtime value as an ONNX initializer named `name`.
fn tensor_proto_of(v: &ort::value::DynValue, name: &str) -> std::result::Result<lalarand_onnx::TensorProto, String> {
    use lalarand_onnx::proto::tensor_proto::DataType;
    fn raw<T: ort::value::PrimitiveTensorElementType + Copy + std::fmt::Debug>(
        v: &ort::value::DynValue,
        bytes: impl Fn(&T) -> Vec<u8>,
    ) -> std::result::Result<(Vec<i64>, Vec<u8>), String> {
        let (shape, data) = v.try_extract_tensor::<T>().map_err(|e| e.to_string())?;
        Ok((shape.to_vec(), data.iter().flat_map(bytes).collect()))
    }
    let info = info_of(v).ok_or("is not a tensor")?;
    let ty = DataType::try_from(info.elem_type).map_err(|_| format!("element type {}", info.elem_type))?;
    let (dims, raw_data) = match ty {
        DataType::Float => raw::<f32>(v, |x| x.to_le_bytes().to_vec())?,
        DataType::Double => raw::<f64>(v, |x| x.to_le_bytes().to_vec())?,
        DataType::Int64 => raw::<i64>(v, |x| x.to_le_bytes().to_vec())?,
        DataType::Int32 => raw::<i32>(v, |x| x.to_le_bytes().to_vec())?,
        DataType::Int8 => raw::<i8>(v, |x| x.to_le_bytes().to_vec())?,
        DataType::Uint8 => raw::<u8>(v, |x| vec![*x])?,
        DataType::Bool => raw::<bool>(v, |x| vec![u8::from(*x)])?,
        other => return Err(format!("a {other:?} shape computation cannot be folded; fix: export it as int64")),
    };
    Ok(lalarand_onnx::TensorProto {
        name: Some(name.to_string()),
        dims,
        data_type: Some(ty as i32),
        raw_data: Some(raw_data),
        ..Default::default()
    })
}

/// An input of an element type lalarand does not feed is an error naming it and the fix.
fn check_input_type(name: &str, elem_type: i32, source: &Path) -> Result<()> {
    if INPUT_TYPES.contains(&elem_type) {
        return Ok(());
    }
    Err(EngineError::tensor(
        source.display().to_string(),
        name,
        format!(
            "the graph input is of {}; lalarand feeds float, double, int64, int32, int8, uint8 and bool inputs; fix: export this input as one of those",
            elem::name(elem_type)
        ),
    ))
}

/// Graph input `name`: its declared element type and dims. An input without a tensor shape,
/// or of an element type lalarand does not feed, is an error naming it and the fix.
fn model_input(graph: &lalarand_onnx::GraphProto, name: &str, source: &Path) -> Result<ModelInput> {
    use lalarand_onnx::proto::tensor_shape_proto::dimension::Value;
    use lalarand_onnx::proto::type_proto::Value as T;
    let file = source.display().to_string();
    let tensor =
        graph.input.iter().find(|i| i.name() == name).and_then(|vi| match vi.r#type.as_ref()?.value.as_ref() {
            Some(T::TensorType(t)) => Some(t),
            _ => None,
        });
    let Some(t) = tensor else {
        return Err(EngineError::tensor(
            file,
            name,
            "the graph input is not a tensor; fix: export it as a tensor input",
        ));
    };
    let elem_type = t.elem_type.unwrap_or(0);
    check_input_type(name, elem_type, source)?;
    let shape = t.shape.as_ref().ok_or_else(|| {
        EngineError::tensor(
            &file,
            name,
            "the graph input declares no tensor shape; fix: export it with a shape (or give --input-shape NAME=DIMS)",
        )
    })?;
    let dims = shape
        .dim
        .iter()
        .map(|d| match d.value {
            Some(Value::DimValue(v)) if v > 0 => Some(v),
            _ => None,
        })
        .collect();
    Ok(ModelInput { name: name.to_string(), elem_type, dims })
}

/// Runs the model once, on zeros of every input's declared type, with every cut tensor as an
/// output to learn their types and shapes. A symbolic batch is run as 2, and dim 0 of every
/// tensor of that size is made symbolic.
fn infer_types(
    model: &ModelProto,
    partition: &Partition,
    inputs: &[ModelInput],
    source: &Path,
) -> Result<HashMap<String, TensorInfo>> {
    const PROBE_BATCH: i64 = 2;
    let cuts = partition.cut_tensors();
    // Graph inputs are not requested back (ONNX Runtime does not return them reliably); the
    // input value inserted below stays in the map.
    let produced: Vec<String> = cuts.iter().filter(|c| !partition.graph_inputs.contains(c)).cloned().collect();
    let probe = encode_model(&partition::with_outputs(model, &produced));
    let whole = format!("{} (whole model)", source.display());
    let mut runner = StageRunner::new(&whole, Mode::CpuFp32, &probe, &ExecConfig::default()).map_err(not_runnable)?;
    let mut tensors = Tensors::new();
    for input in inputs {
        tensors.insert(input.name.clone(), zeros_value(input.elem_type, &input.shape(PROBE_BATCH as usize))?);
    }
    runner.run(&mut tensors)?;
    let symbolic_batch = inputs.iter().any(|i| i.dims.first().is_some_and(|d| d.is_none()));
    let mut types = HashMap::new();
    for name in cuts {
        let v = tensors.get(&name).ok_or_else(|| {
            EngineError::tensor(source.display().to_string(), &name, "not produced when running the model")
        })?;
        let mut info =
            info_of(v).ok_or_else(|| EngineError::tensor(source.display().to_string(), &name, "is not a tensor"))?;
        if symbolic_batch && info.dims.first() == Some(&Some(PROBE_BATCH)) {
            info.dims[0] = None;
        }
        types.insert(name, info);
    }
    Ok(types)
}
