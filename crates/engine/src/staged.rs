//! A model cut into stage models, and a pipeline that runs them in sequence.

use crate::error::{EngineError, Result};
use crate::stage::{ExecConfig, StageRunner, Tensors};
use crate::tensor::{f32_value, info_of};
use lalarand_model::Mode;
use lalarand_onnx::partition::{self, Partition, TensorInfo};
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
    pub input_name: String,
    /// Input dims; `None` is the symbolic batch.
    pub input_dims: Vec<Option<i64>>,
    pub output_name: String,
    /// Type and shape of every tensor that crosses a stage boundary.
    pub types: HashMap<String, TensorInfo>,
    stage_fp32: Vec<Vec<u8>>,
}

fn onnx_err(source: &Path, e: OnnxError) -> EngineError {
    match e {
        OnnxError::Read { path, source } => EngineError::Io { path, source },
        OnnxError::NotAModel { path, reason } => EngineError::NotOnnx { path, reason },
        other => EngineError::graph(source.display().to_string(), other),
    }
}

impl StagedModel {
    /// Reads, partitions and types a model file.
    pub fn load(path: &Path) -> Result<Self> {
        let model = lalarand_onnx::load_model(path).map_err(|e| onnx_err(path, e))?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        Self::from_model(&name, model, path.to_path_buf())
    }

    /// Partitions `model` and types its cut tensors by running it once on zeros.
    pub fn from_model(name: &str, model: ModelProto, source: PathBuf) -> Result<Self> {
        let partition = partition::partition(&model).map_err(|e| onnx_err(&source, e))?;
        let graph = model.graph.as_ref().expect("partition checked the graph");
        let [input_name] = partition.graph_inputs.as_slice() else {
            return Err(EngineError::Unsupported {
                stage: "(model)".into(),
                mode: "any".into(),
                problem: format!(
                    "{}: {} graph inputs {:?}; lalarand stages single-input models",
                    source.display(),
                    partition.graph_inputs.len(),
                    partition.graph_inputs
                ),
            });
        };
        let input_name = input_name.clone();
        let input_dims = input_dims(graph, &input_name).ok_or_else(|| {
            EngineError::tensor(source.display().to_string(), &input_name, "the graph input declares no tensor shape")
        })?;
        let output_name = partition.graph_outputs[0].clone();
        let bytes = encode_model(&model);
        let types = infer_types(&model, &partition, &input_name, &input_dims, &source)?;
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
            partition,
            input_name,
            input_dims,
            output_name,
            types,
            stage_fp32,
        })
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

    /// Input dims with the symbolic batch set to `batch`.
    pub fn input_shape(&self, batch: usize) -> Vec<usize> {
        self.input_dims.iter().map(|d| d.map_or(batch, |v| v as usize)).collect()
    }

    /// Checks that `dims` fits the model input; `context` says where the data came from.
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

fn input_dims(graph: &lalarand_onnx::GraphProto, name: &str) -> Option<Vec<Option<i64>>> {
    use lalarand_onnx::proto::tensor_shape_proto::dimension::Value;
    use lalarand_onnx::proto::type_proto::Value as T;
    let vi = graph.input.iter().find(|i| i.name() == name)?;
    let Some(T::TensorType(t)) = vi.r#type.as_ref()?.value.as_ref() else { return None };
    Some(
        t.shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| match d.value {
                Some(Value::DimValue(v)) if v > 0 => Some(v),
                _ => None,
            })
            .collect(),
    )
}

/// Runs the model once with every cut tensor as an output to learn their types and shapes.
/// A symbolic batch is run as 2, and dim 0 of every tensor of that size is made symbolic.
fn infer_types(
    model: &ModelProto,
    partition: &Partition,
    input_name: &str,
    input_dims: &[Option<i64>],
    source: &Path,
) -> Result<HashMap<String, TensorInfo>> {
    const PROBE_BATCH: i64 = 2;
    let cuts = partition.cut_tensors();
    let probe = encode_model(&partition::with_outputs(model, &cuts));
    let mut runner = StageRunner::new("(whole model)", Mode::CpuFp32, &probe, &ExecConfig::default())?;
    let dims: Vec<usize> = input_dims.iter().map(|d| d.unwrap_or(PROBE_BATCH) as usize).collect();
    let mut tensors = Tensors::new();
    tensors.insert(input_name.to_string(), f32_value(&dims, vec![0.0; dims.iter().product()])?);
    runner.run(&mut tensors)?;
    let symbolic_batch = input_dims.first().is_some_and(|d| d.is_none());
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

/// Stage models that were quantized to int8 (QDQ), by stage index; `None` where a stage could
/// not be quantized.
#[derive(Debug, Clone, Default)]
pub struct Int8Stages {
    pub stages: Vec<Option<Vec<u8>>>,
}

/// All stages of a model, each in its own session and mode, run in sequence.
#[derive(Debug)]
pub struct Pipeline {
    pub runners: Vec<StageRunner>,
    input_name: String,
    output_name: String,
}

impl Pipeline {
    /// Builds every stage in `modes[i]`; int8 stages come from `int8`.
    pub fn new(staged: &StagedModel, modes: &[Mode], int8: Option<&Int8Stages>, cfg: &ExecConfig) -> Result<Self> {
        if modes.len() != staged.stage_count() {
            return Err(EngineError::tensor(
                "building a pipeline",
                "(modes)",
                format!("{} modes for {} stages", modes.len(), staged.stage_count()),
            ));
        }
        let mut runners = Vec::with_capacity(modes.len());
        for (i, (stage, &mode)) in staged.partition.stages.iter().zip(modes).enumerate() {
            let bytes = match mode {
                Mode::CpuInt8 => int8.and_then(|q| q.stages.get(i)).and_then(|b| b.as_deref()).ok_or_else(|| {
                    EngineError::Unsupported {
                        stage: stage.name.clone(),
                        mode: mode.to_string(),
                        problem: "no int8 model of this stage (quantization failed or was not run)".into(),
                    }
                })?,
                Mode::CpuFp32 | Mode::Gpu => staged.stage_fp32(i),
            };
            runners.push(StageRunner::new(&stage.name, mode, bytes, cfg)?);
        }
        Ok(Self { runners, input_name: staged.input_name.clone(), output_name: staged.output_name.clone() })
    }

    /// Runs all stages on an fp32 input; returns every tensor, the graph output included.
    pub fn run_all(&mut self, dims: &[usize], input: Vec<f32>) -> Result<Tensors> {
        let mut tensors = Tensors::new();
        tensors.insert(self.input_name.clone(), f32_value(dims, input)?);
        for r in &mut self.runners {
            r.run(&mut tensors)?;
        }
        Ok(tensors)
    }

    /// Runs all stages and returns the graph output's shape and values.
    pub fn run(&mut self, dims: &[usize], input: Vec<f32>) -> Result<(Vec<usize>, Vec<f32>)> {
        let tensors = self.run_all(dims, input)?;
        let v = tensors.get(&self.output_name).ok_or_else(|| {
            EngineError::tensor("running the pipeline", &self.output_name, "the last stage did not produce it")
        })?;
        let (shape, data) = crate::tensor::f32_data(v, &self.output_name)?;
        Ok((shape, data.to_vec()))
    }
}
