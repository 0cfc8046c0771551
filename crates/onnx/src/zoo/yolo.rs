//! YOLOv3-tiny, built by interpreting the layer sections of darknet's published
//! `yolov3-tiny.cfg` (training options left out; they do not change the graph).

use super::layers::{ConvSpec, Net};
use crate::proto::ModelProto;

/// The layer sections of darknet's `cfg/yolov3-tiny.cfg`; `[net]` is 416x416x3.
pub const YOLOV3_TINY_CFG: &str = "
[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=64
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=128
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=256
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=512
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=1

[convolutional]
batch_normalize=1
filters=1024
size=3
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=256
size=1
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=512
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=255
activation=linear

[yolo]
mask = 3,4,5

[route]
layers = -4

[convolutional]
batch_normalize=1
filters=128
size=1
stride=1
pad=1
activation=leaky

[upsample]
stride=2

[route]
layers = -1, 8

[convolutional]
batch_normalize=1
filters=256
size=3
stride=1
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=255
activation=linear

[yolo]
mask = 0,1,2
";

/// Input side of the `[net]` section.
pub const YOLOV3_TINY_INPUT: i64 = 416;

/// One `[section]` of a darknet cfg: its kind and its `key=value` options.
pub(crate) struct Section {
    pub kind: String,
    pub options: Vec<(String, String)>,
}

impl Section {
    pub fn int(&self, key: &str, default: i64) -> i64 {
        self.get(key).map_or(default, |v| v.parse().expect("integer option in the embedded cfg"))
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.options.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

pub(crate) fn parse_cfg(cfg: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for line in cfg.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(kind) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(Section { kind: kind.to_string(), options: Vec::new() });
        } else if let (Some(section), Some((k, v))) = (sections.last_mut(), line.split_once('=')) {
            section.options.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    sections
}

/// A layer's output: tensor name, channels and spatial side.
#[derive(Clone)]
struct Out {
    name: String,
    c: i64,
    hw: i64,
}

pub(crate) fn yolov3_tiny(seed: u64) -> ModelProto {
    let mut n = Net::new("yolov3_tiny", seed, YOLOV3_TINY_INPUT);
    let mut outs: Vec<Out> = Vec::new();
    let mut heads: Vec<(String, i64, i64)> = Vec::new();
    let mut x = Out { name: "input".into(), c: 3, hw: YOLOV3_TINY_INPUT };
    for (i, s) in parse_cfg(YOLOV3_TINY_CFG).iter().enumerate() {
        let p = format!("layer{i}");
        x = match s.kind.as_str() {
            "convolutional" => {
                let (k, stride, bn) = (s.int("size", 1), s.int("stride", 1), s.int("batch_normalize", 0) == 1);
                let pad = if s.int("pad", 0) == 1 { k / 2 } else { 0 };
                let filters = s.int("filters", 1);
                let mut spec = ConvSpec::new(x.c, filters, k, stride).pad(pad);
                if !bn {
                    spec = spec.bias();
                }
                let mut y = n.conv(&format!("{p}.conv"), &x.name, spec);
                if bn {
                    y = n.bn(&format!("{p}.bn"), &y, filters);
                }
                if s.get("activation") == Some("leaky") {
                    y = n.leaky_relu(&format!("{p}.leaky"), &y, 0.1);
                }
                Out { name: y, c: filters, hw: (x.hw + 2 * pad - k) / stride + 1 }
            }
            "maxpool" => {
                // darknet pads size-1 in total, the smaller half before.
                let (k, stride) = (s.int("size", 2), s.int("stride", 2));
                let (before, after) = ((k - 1) / 2, (k - 1) - (k - 1) / 2);
                let y = n.maxpool(&format!("{p}.maxpool"), &x.name, k, stride, [before, before, after, after], false);
                Out { name: y, hw: (x.hw + k - 1 - k) / stride + 1, ..x }
            }
            "upsample" => {
                let f = s.int("stride", 2);
                let y = n.upsample(&format!("{p}.upsample"), &x.name, f as f32);
                Out { name: y, hw: x.hw * f, ..x }
            }
            "route" => {
                let srcs: Vec<Out> = s
                    .get("layers")
                    .expect("route layers")
                    .split(',')
                    .map(|v| {
                        let v: i64 = v.trim().parse().expect("route index");
                        outs[if v < 0 { (i as i64 + v) as usize } else { v as usize }].clone()
                    })
                    .collect();
                if let [only] = srcs.as_slice() {
                    only.clone()
                } else {
                    let names: Vec<&str> = srcs.iter().map(|o| o.name.as_str()).collect();
                    let y = n.concat(&format!("{p}.route"), &names);
                    Out { name: y, c: srcs.iter().map(|o| o.c).sum(), hw: srcs[0].hw }
                }
            }
            "yolo" => {
                // The YOLO layer decodes boxes outside the network; its input is a head output.
                heads.push((x.name.clone(), x.c, x.hw));
                x
            }
            other => unreachable!("section [{other}] is not in the embedded cfg"),
        };
        outs.push(x.clone());
    }
    let names: Vec<String> =
        (0..heads.len()).map(|k| if k == 0 { "output".into() } else { format!("output_{k}") }).collect();
    for ((tensor, _, _), name) in heads.iter().zip(&names) {
        for node in &mut n.b.graph.node {
            for o in node.output.iter_mut().filter(|o| *o == tensor) {
                o.clone_from(name);
            }
            for i in node.input.iter_mut().filter(|i| *i == tensor) {
                i.clone_from(name);
            }
        }
    }
    let shapes: Vec<[i64; 4]> = heads.iter().map(|&(_, c, hw)| [1, c, hw, hw]).collect();
    let outputs: Vec<(&str, &[i64])> = names.iter().zip(&shapes).map(|(n, s)| (n.as_str(), &s[..])).collect();
    n.finish(&outputs)
}
