//! Stages worth their overhead: for every zoo model, one thread on core 0, warm caches, the
//! summed means of its stages at each `--granularity` next to the whole model in ONNX Runtime,
//! in fp32 and int8, all timed in one run in interleaved rounds (every session once per round),
//! so that machine noise hits all alike.
//!
//! The int8 reference is the whole model quantized the way the stages are (QDQ, per-channel,
//! the same calibration), and, when `LALARAND_ORT_INT8_DIR` holds `<model>.onnx` files made by
//! `scripts/bench/ort_quantize_static.py`, ONNX Runtime's own `quantize_static` of it.
//!
//! `cargo run --release -p lalarand-engine --example stage_overhead [rounds] [model ...]`

use lalarand_engine::granularity::{self, Choice};
use lalarand_engine::profile::seeded_inputs;
use lalarand_engine::quant::{calibrate, quantize_stages};
use lalarand_engine::stage::{ExecConfig, StageRunner, Tensors};
use lalarand_engine::tensor::f32_value;
use lalarand_engine::{Pipeline, StagedModel};
use lalarand_model::Mode;
use lalarand_onnx::granularity::Granularity;
use lalarand_onnx::quantize::{quantize, CalibrationMethod, QuantizeOptions};
use lalarand_onnx::zoo::{self, Architecture};
use std::time::Instant;

const WARMUP_ROUNDS: usize = 3;

/// Something timed once per round: a whole-model session or a pipeline of stages.
enum Timed {
    Whole(StageRunner),
    Stages(Box<Pipeline>),
}

struct Row {
    what: String,
    timed: Timed,
    /// Per round: wall time, and the summed session times of the stages (pipelines).
    wall: Vec<f64>,
    stage_sum: Vec<f64>,
}

impl Row {
    fn new(what: String, timed: Timed) -> Self {
        Self { what, timed, wall: Vec::new(), stage_sum: Vec::new() }
    }

    fn run(&mut self, name: &str, dims: &[usize], input: &[f32], keep: bool) {
        let start = Instant::now();
        let stages = match &mut self.timed {
            Timed::Whole(r) => {
                let mut t = Tensors::new();
                t.insert(name.to_string(), f32_value(dims, input.to_vec()).unwrap());
                r.run(&mut t).unwrap();
                None
            }
            Timed::Stages(p) => {
                p.run(dims, input.to_vec()).unwrap();
                Some(p.last_stage_times().iter().map(|d| d.as_secs_f64() * 1e3).sum::<f64>())
            }
        };
        let wall = start.elapsed().as_secs_f64() * 1e3;
        if keep {
            self.wall.push(wall);
            self.stage_sum.push(stages.unwrap_or(wall));
        }
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn median(v: &[f64]) -> f64 {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let wanted: Vec<String> = args.collect();
    let cfg = ExecConfig { threads: 1, cores: vec![0], gpu_device: 0 };
    lalarand_engine::pin_current_thread(&cfg.cores).unwrap();
    let ort_dir = std::env::var_os("LALARAND_ORT_INT8_DIR").map(std::path::PathBuf::from);
    println!("one thread, core 0, warm caches, means of {rounds} interleaved rounds after {WARMUP_ROUNDS}");
    println!("fixed cost of one session run (a one-node Identity on one float): {:.1} µs", session_run_us(&cfg));
    println!("ratios: of means, bold; of medians, in parentheses");
    println!("| model | granularity | stages | fp32: sum of stage means / whole | int8: sum of stage means / whole QDQ | int8 / ORT quantize_static |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for arch in Architecture::ALL.into_iter().filter(|a| wanted.is_empty() || wanted.iter().any(|w| w == a.name())) {
        let staged =
            StagedModel::from_model(arch.name(), zoo::build(arch, 1), format!("zoo:{}", arch.name()).into()).unwrap();
        let dims = staged.input_shape(1);
        let per: usize = dims.iter().product();
        let cal: Vec<(Vec<usize>, Vec<f32>)> =
            seeded_inputs(8, per, 12345).into_iter().map(|x| (dims.clone(), x)).collect();
        let input = cal[0].1.clone();
        let ranges = calibrate(&staged, &cal, CalibrationMethod::Percentile(99.99)).unwrap();
        let q = quantize(&staged.model, &ranges, &QuantizeOptions::default()).unwrap();
        let mut rows = vec![
            Row::new(
                "whole fp32".into(),
                Timed::Whole(StageRunner::new("whole", Mode::CpuFp32, &staged.bytes, &cfg).unwrap()),
            ),
            Row::new(
                "whole int8".into(),
                Timed::Whole(
                    StageRunner::new("whole int8", Mode::CpuInt8, &lalarand_onnx::encode_model(&q.model), &cfg)
                        .unwrap(),
                ),
            ),
        ];
        let ort_model = ort_dir.as_ref().map(|d| d.join(format!("{}.onnx", arch.name()))).filter(|p| p.is_file());
        if let Some(path) = &ort_model {
            let bytes = std::fs::read(path).unwrap();
            rows.push(Row::new(
                "ort int8".into(),
                Timed::Whole(StageRunner::new("ort", Mode::CpuInt8, &bytes, &cfg).unwrap()),
            ));
        }
        let mut summaries = Vec::new();
        for g in Granularity::ALL {
            let (regrouped, choice): (StagedModel, Choice) =
                granularity::apply(&staged, g, &cfg, &input, &|| false).unwrap();
            summaries.push(choice.summary());
            let n = regrouped.stage_count();
            let fp32 = Pipeline::new(&regrouped, &vec![Mode::CpuFp32; n], None, &cfg).unwrap();
            let int8 = quantize_stages(&regrouped, &ranges);
            // A stage that does not quantize runs fp32 (the profile would not offer it int8).
            let modes: Vec<Mode> =
                int8.stages.iter().map(|s| if s.is_ok() { Mode::CpuInt8 } else { Mode::CpuFp32 }).collect();
            let int8 = Pipeline::new(&regrouped, &modes, Some(&int8), &cfg).unwrap();
            rows.push(Row::new(format!("{g} fp32"), Timed::Stages(Box::new(fp32))));
            rows.push(Row::new(format!("{g} int8"), Timed::Stages(Box::new(int8))));
        }
        for round in 0..WARMUP_ROUNDS + rounds {
            for row in &mut rows {
                row.run(&staged.input_name, &dims, &input, round >= WARMUP_ROUNDS);
            }
        }
        let stat = |what: &str, sums: bool, f: fn(&[f64]) -> f64| {
            let r = rows.iter().find(|r| r.what == what).unwrap();
            f(if sums { &r.stage_sum } else { &r.wall })
        };
        let mean = |what: &str, sums: bool| stat(what, sums, Row::mean);
        let median = |what: &str, sums: bool| stat(what, sums, Row::median);
        let (wf, wi) = (mean("whole fp32", false), mean("whole int8", false));
        let ort = ort_model.as_ref().map(|_| mean("ort int8", false));
        for g in Granularity::ALL {
            let stages = match &rows.iter().find(|r| r.what == format!("{g} fp32")).unwrap().timed {
                Timed::Stages(p) => p.stage_count(),
                Timed::Whole(_) => 1,
            };
            let (sf, si) = (mean(&format!("{g} fp32"), true), mean(&format!("{g} int8"), true));
            // The median ratio beside the mean's: a run preempted by another process moves the
            // mean, not the median.
            let med = |what: &str, whole: &str| median(&format!("{g} {what}"), true) / median(whole, false);
            println!(
                "| {} | {g} | {stages} | {sf:.2} / {wf:.2} ms = **{:.3}x** ({:.3}x) | {si:.2} / {wi:.2} ms = **{:.3}x** ({:.3}x) | {} |",
                arch.name(),
                sf / wf,
                med("fp32", "whole fp32"),
                si / wi,
                med("int8", "whole int8"),
                ort.map_or("-".into(), |o| format!("{si:.2} / {o:.2} ms = **{:.3}x** ({:.3}x)", si / o, med("int8", "ort int8")))
            );
        }
        let layer = rows.iter().find(|r| r.what == "layer fp32").unwrap();
        let stages = match &layer.timed {
            Timed::Stages(p) => p.stage_count(),
            Timed::Whole(_) => 1,
        };
        eprintln!(
            "  {}: outside the sessions (the pipeline's own work per stage run, fp32 layer stages): {:.1} µs",
            arch.name(),
            (Row::mean(&layer.wall) - Row::mean(&layer.stage_sum)) * 1e3 / stages as f64
        );
        for s in summaries.iter().filter(|s| s.contains("auto")) {
            eprintln!("  {}: {s}", arch.name());
        }
    }
}

/// Mean time of a session run that does nothing: ONNX Runtime's fixed cost per stage run.
fn session_run_us(cfg: &ExecConfig) -> f64 {
    use lalarand_onnx::proto::tensor_proto::DataType;
    let mut b = lalarand_onnx::GraphBuilder::new("identity");
    b.input("x", DataType::Float, &[1]);
    b.node("Identity", "id", &["x"], &["y"], vec![]);
    b.output("y", DataType::Float, &[1]);
    let bytes = lalarand_onnx::encode_model(&b.finish());
    let mut r = StageRunner::new("identity", Mode::CpuFp32, &bytes, cfg).unwrap();
    let x = f32_value(&[1], vec![1.0]).unwrap();
    let runs = 2000;
    for _ in 0..100 {
        r.run_with(|_| Some(&x)).unwrap();
    }
    let start = Instant::now();
    for _ in 0..runs {
        r.run_with(|_| Some(&x)).unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / runs as f64
}
