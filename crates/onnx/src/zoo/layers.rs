//! Layer helpers that add the nodes and seeded weights of one PyTorch/darknet module each.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::builder::{attr, GraphBuilder};
use crate::proto::tensor_proto::DataType;
use crate::proto::ModelProto;

/// A graph under construction plus the generator of its weights.
pub(crate) struct Net {
    pub b: GraphBuilder,
    rng: ChaCha8Rng,
    clip_bounds: Option<(String, String)>,
}

/// Geometry of a 2-D convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvSpec {
    pub cin: i64,
    pub cout: i64,
    pub k: i64,
    pub stride: i64,
    pub pad: i64,
    pub group: i64,
    pub bias: bool,
}

impl ConvSpec {
    /// A dense convolution without bias (followed by batch norm), padded to keep the size.
    pub fn new(cin: i64, cout: i64, k: i64, stride: i64) -> Self {
        ConvSpec { cin, cout, k, stride, pad: k / 2, group: 1, bias: false }
    }
    pub fn group(self, group: i64) -> Self {
        ConvSpec { group, ..self }
    }
    pub fn bias(self) -> Self {
        ConvSpec { bias: true, ..self }
    }
    pub fn pad(self, pad: i64) -> Self {
        ConvSpec { pad, ..self }
    }
}

impl Net {
    pub fn new(name: &str, seed: u64, input_hw: i64) -> Self {
        let mut b = GraphBuilder::new(name);
        b.input("input", DataType::Float, &[1, 3, input_hw, input_hw]);
        Net { b, rng: ChaCha8Rng::seed_from_u64(seed), clip_bounds: None }
    }

    pub fn finish(mut self, outputs: &[(&str, &[i64])]) -> ModelProto {
        for (name, shape) in outputs {
            self.b.output(name, DataType::Float, shape);
        }
        self.b.finish()
    }

    /// Uniform values with variance `2 / fan_in` (Kaiming, ReLU gain), so activations keep
    /// their scale through the depth of the network.
    fn kaiming(&mut self, n: usize, fan_in: i64) -> Vec<f32> {
        let a = (6.0 / fan_in as f32).sqrt();
        (0..n).map(|_| self.rng.gen_range(-a..a)).collect()
    }

    fn uniform(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.rng.gen_range(lo..hi)).collect()
    }

    pub fn conv(&mut self, name: &str, x: &str, s: ConvSpec) -> String {
        let fan_in = s.cin / s.group * s.k * s.k;
        let dims = [s.cout, s.cin / s.group, s.k, s.k];
        let w = self.kaiming((s.cout * fan_in) as usize, fan_in);
        let w = self.b.f32_initializer(&format!("{name}.weight"), &dims, &w);
        let mut inputs = vec![x.to_string(), w];
        if s.bias {
            let bias = self.uniform(s.cout as usize, -0.05, 0.05);
            inputs.push(self.b.f32_initializer(&format!("{name}.bias"), &[s.cout], &bias));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let attrs = vec![
            attr::ints("dilations", &[1, 1]),
            attr::int("group", s.group),
            attr::ints("kernel_shape", &[s.k, s.k]),
            attr::ints("pads", &[s.pad; 4]),
            attr::ints("strides", &[s.stride, s.stride]),
        ];
        self.b.op("Conv", name, &inputs, attrs)
    }

    /// Batch norm in inference form, with random but plausible statistics.
    pub fn bn(&mut self, name: &str, x: &str, c: i64) -> String {
        let n = c as usize;
        let (gamma, beta) = (self.uniform(n, 0.5, 1.0), self.uniform(n, -0.1, 0.1));
        let (mean, var) = (self.uniform(n, -0.1, 0.1), self.uniform(n, 0.5, 1.5));
        let mut inputs = vec![x.to_string()];
        for (suffix, v) in [("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var)] {
            inputs.push(self.b.f32_initializer(&format!("{name}.{suffix}"), &[c], &v));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let attrs = vec![attr::float("epsilon", 1e-5), attr::float("momentum", 0.9)];
        self.b.op("BatchNormalization", name, &inputs, attrs)
    }

    pub fn relu(&mut self, name: &str, x: &str) -> String {
        self.b.op("Relu", name, &[x], vec![])
    }

    /// ReLU6 as the exporter writes it: Clip(x, 0, 6) with the bounds as inputs.
    pub fn relu6(&mut self, name: &str, x: &str) -> String {
        let (lo, hi) = match &self.clip_bounds {
            Some(bounds) => bounds.clone(),
            None => {
                let lo = self.b.f32_initializer("relu6.min", &[], &[0.0]);
                let hi = self.b.f32_initializer("relu6.max", &[], &[6.0]);
                self.clip_bounds = Some((lo.clone(), hi.clone()));
                (lo, hi)
            }
        };
        self.b.op("Clip", name, &[x, &lo, &hi], vec![])
    }

    pub fn leaky_relu(&mut self, name: &str, x: &str, alpha: f32) -> String {
        self.b.op("LeakyRelu", name, &[x], vec![attr::float("alpha", alpha)])
    }

    /// Max pooling; `pads` is `[top, left, bottom, right]`.
    pub fn maxpool(&mut self, name: &str, x: &str, k: i64, stride: i64, pads: [i64; 4], ceil: bool) -> String {
        let attrs = vec![
            attr::int("ceil_mode", ceil as i64),
            attr::ints("dilations", &[1, 1]),
            attr::ints("kernel_shape", &[k, k]),
            attr::ints("pads", &pads),
            attr::ints("strides", &[stride, stride]),
        ];
        self.b.op("MaxPool", name, &[x], attrs)
    }

    pub fn add(&mut self, name: &str, a: &str, b: &str) -> String {
        self.b.op("Add", name, &[a, b], vec![])
    }

    pub fn concat(&mut self, name: &str, xs: &[&str]) -> String {
        self.b.op("Concat", name, xs, vec![attr::int("axis", 1)])
    }

    pub fn global_avg_pool(&mut self, name: &str, x: &str) -> String {
        self.b.op("GlobalAveragePool", name, &[x], vec![])
    }

    pub fn flatten(&mut self, name: &str, x: &str) -> String {
        self.b.op("Flatten", name, &[x], vec![attr::int("axis", 1)])
    }

    /// Nearest-neighbour upsampling by an integer factor, as darknet's [upsample] does it.
    pub fn upsample(&mut self, name: &str, x: &str, factor: f32) -> String {
        let scales = self.b.f32_initializer(&format!("{name}.scales"), &[4], &[1.0, 1.0, factor, factor]);
        let attrs = vec![
            attr::string("coordinate_transformation_mode", "asymmetric"),
            attr::string("mode", "nearest"),
            attr::string("nearest_mode", "floor"),
        ];
        self.b.op("Resize", name, &[x, "", &scales], attrs)
    }

    /// A fully connected layer (`nn.Linear`) writing `out`.
    pub fn linear(&mut self, name: &str, x: &str, cin: i64, cout: i64, out: &str) {
        let w = self.kaiming((cin * cout) as usize, cin);
        let w = self.b.f32_initializer(&format!("{name}.weight"), &[cout, cin], &w);
        let bias = self.uniform(cout as usize, -0.05, 0.05);
        let bias = self.b.f32_initializer(&format!("{name}.bias"), &[cout], &bias);
        let attrs = vec![attr::float("alpha", 1.0), attr::float("beta", 1.0), attr::int("transB", 1)];
        self.b.node("Gemm", name, &[x, &w, &bias], &[out], attrs);
    }

    /// Renames the output of the last node (the graph output of the exporter is `output`).
    pub fn rename_last_output(&mut self, to: &str) {
        let node = self.b.graph.node.last_mut().expect("a network has nodes");
        node.output[0] = to.to_string();
    }
}
