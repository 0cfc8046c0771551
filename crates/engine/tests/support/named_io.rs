//! What the tests of models with named inputs share (`multi_io`, `recurrent_exporters`): jobs
//! of typed, named inputs, the whole model run in ONNX Runtime to compare with, the chained
//! fp32 stages, and an untimed in-process server of fp32 stages.
// Each test file uses part of this module.
#![allow(dead_code)]

use lalarand_engine::profile::ProfileOptions;
use lalarand_engine::serving::{EngineExecutor, TaskModel};
use lalarand_engine::stage::{ExecConfig, StageRunner};
use lalarand_engine::tensor::{elem, f32_values, max_abs_diff, value_from_bytes};
use lalarand_engine::{Pipeline, StageTensors, StagedModel, Tensors};
use lalarand_model::examples::chain_profile;
use lalarand_model::{Allocation, DnnProfile, LayerProfile, Mode, System, Time};
use lalarand_onnx::{encode_model, ModelProto};
use lalarand_runtime::serve::{DataType, Input, JobResult, ServeConfig, Server, Tensor, TensorData};
use std::path::PathBuf;
use std::sync::Arc;

pub fn staged(name: &str, model: ModelProto) -> StagedModel {
    StagedModel::from_model(name, model, PathBuf::from(format!("{name}.onnx"))).unwrap()
}

/// One input of a job: its name, dims and data (fp32 values, or the little-endian bytes of
/// `dtype`).
#[derive(Clone)]
pub struct Fed {
    pub name: &'static str,
    pub dims: Vec<usize>,
    pub dtype: DataType,
    pub f32: Vec<f32>,
    pub bytes: Vec<u8>,
}

pub fn float(name: &'static str, dims: &[usize], seed: u64) -> Fed {
    let n = dims.iter().product();
    let f32 = lalarand_engine::profile::seeded_inputs(1, n, seed).remove(0).iter().map(|x| x * 2.0 - 1.0).collect();
    Fed { name, dims: dims.to_vec(), dtype: DataType::Fp32, f32, bytes: Vec::new() }
}

pub fn int64(name: &'static str, dims: &[usize], values: &[i64]) -> Fed {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Fed { name, dims: dims.to_vec(), dtype: DataType::Int64, f32: Vec::new(), bytes }
}

pub fn boolean(name: &'static str, dims: &[usize], f: impl Fn(usize) -> bool) -> Fed {
    let bytes = (0..dims.iter().product()).map(|i| u8::from(f(i))).collect();
    Fed { name, dims: dims.to_vec(), dtype: DataType::Bool, f32: Vec::new(), bytes }
}

impl Fed {
    pub fn elem_type(&self) -> i32 {
        match self.dtype {
            DataType::Fp32 => elem::FLOAT,
            DataType::Int64 => elem::INT64,
            DataType::Bool => elem::BOOL,
            other => panic!("{other}"),
        }
    }

    pub fn value(&self) -> ort::value::DynValue {
        match self.dtype {
            DataType::Fp32 => lalarand_engine::tensor::f32_value(&self.dims, self.f32.clone()).unwrap(),
            _ => value_from_bytes(self.elem_type(), &self.dims, &self.bytes).unwrap(),
        }
    }

    pub fn tensor(&self) -> Tensor {
        let data = match self.dtype {
            DataType::Fp32 => TensorData::F32(Arc::new(self.f32.clone())),
            d => TensorData::Bytes(d, Arc::new(self.bytes.clone())),
        };
        Tensor::new(self.name, self.dims.clone(), data).unwrap()
    }
}
/// Every graph output of the whole model, in one ONNX Runtime session.
pub fn whole(model: &ModelProto, inputs: &[Fed]) -> Tensors {
    let mut runner = StageRunner::new("whole", Mode::CpuFp32, &encode_model(model), &ExecConfig::default()).unwrap();
    let mut t = Tensors::new();
    for f in inputs {
        t.insert(f.name.into(), f.value());
    }
    runner.run(&mut t).unwrap();
    t
}

/// `got` (name, dims, values) within 1e-5 of its range of the whole model's output.
pub fn assert_close(want: &Tensors, name: &str, dims: &[usize], got: &[f32]) {
    let (want_dims, want) = f32_values(&want[name], name).unwrap();
    assert_eq!(dims, want_dims, "{name}");
    let (lo, hi) = want.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    assert!(hi > lo, "output {name} is constant; the test would prove nothing");
    let (diff, _) = max_abs_diff(&want, got);
    assert!(diff <= 1e-5 * (hi - lo), "output {name}: max |diff| {diff} > 1e-5 x {}", hi - lo);
}

/// The chained fp32 stages, every input fed by name in its own type, equal the whole model.
pub fn chain_equals_whole(model: ModelProto, name: &str, inputs: &[Fed]) -> StagedModel {
    let staged = staged(name, model.clone());
    let cfg = ExecConfig::default();
    let p = Pipeline::new(&staged, &vec![Mode::CpuFp32; staged.stage_count()], None, &cfg).unwrap();
    let mut held = StageTensors::default();
    for f in inputs {
        match f.dtype {
            DataType::Fp32 => p.add_shared(&mut held, f.name, &f.dims, Arc::new(f.f32.clone())).unwrap(),
            _ => p.add_bytes(&mut held, f.name, &f.dims, &f.bytes).unwrap(),
        }
    }
    p.check_fed(&held).unwrap();
    for i in 0..staged.stage_count() {
        p.run_stage(i, &mut held).unwrap();
    }
    let want = whole(&model, inputs);
    for out in &staged.partition.graph_outputs {
        let (dims, got) = f32_values(&held.f32()[out], out).unwrap();
        assert_close(&want, out, &dims, &got);
    }
    staged
}
/// [`crate::two_cpus::system_for`] with a long period (100 ms).
pub fn system_for(profile: DnnProfile, modes: &[Mode], wcet: Time) -> (System, Allocation) {
    crate::two_cpus::system_for(profile, modes, wcet, 100_000_000)
}

pub fn untimed() -> ServeConfig {
    ServeConfig { realtime: false, ..ServeConfig::default() }
}

pub fn fp32_server(m: &StagedModel) -> Server<EngineExecutor> {
    let layers: Vec<LayerProfile> =
        m.stage_names().iter().map(|n| LayerProfile::gpu_cpu(*n, 1_000_000, 1_000_000)).collect();
    let (system, alloc) = system_for(chain_profile(&m.name, &layers), &vec![Mode::CpuFp32; m.stage_count()], 1_000_000);
    let exec = EngineExecutor::from_models(&system, &alloc, vec![TaskModel { staged: m.clone(), int8: None }]).unwrap();
    Server::builder(&system, &alloc, exec).config(untimed()).start().unwrap()
}

pub fn submit(server: &Server<EngineExecutor>, inputs: &[Fed]) -> JobResult {
    let input = Input::named(inputs.iter().map(Fed::tensor).collect()).unwrap();
    server.submit("model", input).unwrap().wait().unwrap()
}

/// Profiling in cpu-fp32 and cpu-int8 with two timed runs per stage, quietly: these tests check
/// what is profiled (layers, modes, int8 notes), not the times.
pub fn quick_int8_profile() -> ProfileOptions {
    ProfileOptions {
        runs: 2,
        warmup: 1,
        modes: vec![Mode::CpuFp32, Mode::CpuInt8],
        progress: false,
        cold_cache: false,
        ..ProfileOptions::default()
    }
}
