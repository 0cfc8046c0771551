//! Shared by the criterion bench and the `ratios` example: ResNet-18 from the zoo as fp32 and
//! int8 pipelines (one session per stage) and as whole-model sessions, single thread.

use lalarand_engine::quant::{calibrate, quantize_stages};
use lalarand_engine::stage::{ExecConfig, StageRunner, Tensors};
use lalarand_engine::tensor::f32_value;
use lalarand_engine::{Pipeline, StagedModel};
use lalarand_model::Mode;
use lalarand_onnx::quantize::{quantize, CalibrationMethod, QuantizeOptions};
use lalarand_onnx::zoo::{self, Architecture};

pub struct Setup {
    pub dims: Vec<usize>,
    pub input: Vec<f32>,
    pub input_name: String,
    pub staged_fp32: Pipeline,
    pub staged_int8: Pipeline,
    pub whole_fp32: StageRunner,
    pub whole_int8: StageRunner,
    pub stages: usize,
}

fn inputs(n: usize, per: usize) -> Vec<Vec<f32>> {
    lalarand_engine::profile::seeded_inputs(n, per, 12345)
}

impl Setup {
    pub fn resnet18() -> Self {
        let arch = Architecture::ResNet18;
        let staged = StagedModel::from_model(arch.name(), zoo::build(arch, 1), "zoo:resnet18".into()).unwrap();
        let dims = staged.input_shape(1);
        let per: usize = dims.iter().product();
        let cal: Vec<(Vec<usize>, Vec<f32>)> = inputs(8, per).into_iter().map(|x| (dims.clone(), x)).collect();
        let ranges = calibrate(&staged, &cal, CalibrationMethod::Percentile(99.99)).unwrap();
        let int8 = quantize_stages(&staged, &ranges);
        let cfg = ExecConfig { threads: 1, cores: vec![0], gpu_device: 0 };
        lalarand_engine::pin_current_thread(&cfg.cores).unwrap();
        let n = staged.stage_count();
        let staged_fp32 = Pipeline::new(&staged, &vec![Mode::CpuFp32; n], None, &cfg).unwrap();
        let staged_int8 = Pipeline::new(&staged, &vec![Mode::CpuInt8; n], Some(&int8), &cfg).unwrap();
        let whole_fp32 = StageRunner::new("whole", Mode::CpuFp32, &staged.bytes, &cfg).unwrap();
        let q = quantize(&staged.model, &ranges, &QuantizeOptions::default()).unwrap();
        let whole_int8 =
            StageRunner::new("whole", Mode::CpuInt8, &lalarand_onnx::encode_model(&q.model), &cfg).unwrap();
        let input = cal[0].1.clone();
        Self {
            dims,
            input,
            input_name: staged.input_name.clone(),
            staged_fp32,
            staged_int8,
            whole_fp32,
            whole_int8,
            stages: n,
        }
    }

    pub fn run_staged(p: &mut Pipeline, dims: &[usize], input: &[f32]) {
        p.run(dims, input.to_vec()).unwrap();
    }

    pub fn run_whole(r: &mut StageRunner, name: &str, dims: &[usize], input: &[f32]) {
        let mut t = Tensors::new();
        t.insert(name.to_string(), f32_value(dims, input.to_vec()).unwrap());
        r.run(&mut t).unwrap();
    }
}
