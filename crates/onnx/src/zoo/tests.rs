use std::collections::{BTreeMap, HashSet};

use super::yolo::parse_cfg;
use super::*;
use crate::builder::{find_attr, shape_of};
use crate::shape::infer_shapes;
use crate::tensor::to_f32;

const TORCHVISION_COUNTS: [(Architecture, u64); 4] = [
    (Architecture::ResNet18, 11_689_512),
    (Architecture::ResNet50, 25_557_032),
    (Architecture::MobileNetV2, 3_504_872),
    (Architecture::SqueezeNet1_1, 1_235_496),
];

#[test]
fn parameter_counts_match_torchvision() {
    for (arch, expected) in TORCHVISION_COUNTS {
        assert_eq!(parameter_count(&build(arch, 0)), expected, "{arch}");
    }
}

/// Parameters implied by the cfg itself: every convolution has `c_in * k * k * filters`
/// weights plus, per filter, either a bias or a batch-norm scale and bias.
fn cfg_parameter_count(cfg: &str) -> u64 {
    let mut channels: Vec<i64> = Vec::new();
    let mut c = 3;
    let mut total = 0;
    for (i, s) in parse_cfg(cfg).iter().enumerate() {
        match s.kind.as_str() {
            "convolutional" => {
                let (k, f) = (s.int("size", 1), s.int("filters", 1));
                let per_filter = if s.int("batch_normalize", 0) == 1 { 2 } else { 1 };
                total += (c * k * k * f + per_filter * f) as u64;
                c = f;
            }
            "route" => {
                c = s
                    .get("layers")
                    .unwrap()
                    .split(',')
                    .map(|v| v.trim().parse::<i64>().unwrap())
                    .map(|v| channels[if v < 0 { (i as i64 + v) as usize } else { v as usize }])
                    .sum();
            }
            _ => {}
        }
        channels.push(c);
    }
    total
}

#[test]
fn yolov3_tiny_count_is_the_one_its_cfg_implies() {
    let expected = cfg_parameter_count(YOLOV3_TINY_CFG);
    assert_eq!(expected, 8_852_366);
    assert_eq!(parameter_count(&build(Architecture::YoloV3Tiny, 0)), expected);
}

#[test]
fn batch_norm_statistics_are_not_parameters() {
    let model = build(Architecture::ResNet18, 0);
    let graph = model.graph.as_ref().unwrap();
    let all: u64 = graph.initializer.iter().map(|t| element_count(&t.dims)).sum();
    let stats: u64 = graph
        .initializer
        .iter()
        .filter(|t| t.name().ends_with("running_mean") || t.name().ends_with("running_var"))
        .map(|t| element_count(&t.dims))
        .sum();
    // ResNet-18 has 4,800 batch-norm channels, each with a mean and a variance.
    assert_eq!(stats, 2 * 4_800);
    assert_eq!(parameter_count(&model), all - stats);
}

#[test]
fn names_round_trip_and_unknown_names_are_errors() {
    for arch in Architecture::ALL {
        assert_eq!(arch.name().parse::<Architecture>().unwrap(), arch);
        assert_eq!(arch.to_string(), arch.name());
    }
    let err = "resnet19".parse::<Architecture>().unwrap_err().to_string();
    assert!(err.contains("resnet19") && err.contains("resnet18"), "{err}");
}

#[test]
fn every_model_is_a_well_formed_graph_with_the_documented_outputs() {
    for arch in Architecture::ALL {
        let model = build(arch, 7);
        assert_eq!(model.opset_import[0].version, Some(17), "{arch}");
        let graph = model.graph.as_ref().unwrap();
        let mut names = HashSet::new();
        for node in &graph.node {
            assert!(names.insert(node.name()), "{arch}: node name {} is used twice", node.name());
        }
        assert_eq!(graph.input[0].name(), "input");
        let side = arch.input_size();
        assert_eq!(shape_of(&graph.input[0]), Some(vec![1, 3, side, side]));
        let shapes = infer_shapes(graph).unwrap_or_else(|e| panic!("{arch}: {e}"));
        for out in &graph.output {
            assert_eq!(shapes.get(out.name()), shape_of(out).as_ref(), "{arch}: output {}", out.name());
        }
        let outputs: Vec<(&str, Vec<i64>)> = graph.output.iter().map(|o| (o.name(), shape_of(o).unwrap())).collect();
        let expected: Vec<(&str, Vec<i64>)> = match arch {
            Architecture::YoloV3Tiny => vec![("output", vec![1, 255, 13, 13]), ("output_1", vec![1, 255, 26, 26])],
            _ => vec![("output", vec![1, 1000])],
        };
        assert_eq!(outputs, expected, "{arch}");
    }
}

#[test]
fn weights_are_seeded_and_kaiming_scaled() {
    let a = build(Architecture::SqueezeNet1_1, 1);
    assert_eq!(a, build(Architecture::SqueezeNet1_1, 1));
    assert_ne!(a, build(Architecture::SqueezeNet1_1, 2));
    let graph = a.graph.unwrap();
    let w = graph.initializer.iter().find(|t| t.name() == "features.3.expand3x3.weight").unwrap();
    let values = to_f32(w).unwrap();
    let var = values.iter().map(|v| (v * v) as f64).sum::<f64>() / values.len() as f64;
    let fan_in = 16.0 * 9.0;
    assert!((var * fan_in / 2.0 - 1.0).abs() < 0.1, "variance {var} is not 2/fan_in");
}

#[test]
fn node_names_follow_the_module_names() {
    let graph = build(Architecture::ResNet50, 0).graph.unwrap();
    let names: HashSet<&str> = graph.node.iter().map(|n| n.name()).collect();
    for expected in ["conv1", "layer1.0.conv1", "layer1.0.downsample.0", "layer4.2.bn3", "fc"] {
        assert!(names.contains(expected), "{expected}");
    }
    let conv2 = graph.node.iter().find(|n| n.name() == "layer2.0.conv2").unwrap();
    assert_eq!(find_attr(conv2, "strides").unwrap().ints, vec![2, 2], "v1.5 strides the 3x3 convolution");
}

/// The operators of a graph as (op, weight shape, kernel, strides, pads, group), batch norm,
/// `Identity` and `Constant` left out (an exporter folds batch norm into the convolution).
fn signature(model: &ModelProto) -> BTreeMap<String, usize> {
    let graph = model.graph.as_ref().unwrap();
    let dims: HashMap<&str, &[i64]> = graph.initializer.iter().map(|t| (t.name(), t.dims.as_slice())).collect();
    // Exporters alias shared initializers through Identity nodes.
    let alias: HashMap<&str, &str> = graph
        .node
        .iter()
        .filter(|n| n.op_type() == "Identity")
        .map(|n| (n.output[0].as_str(), n.input[0].as_str()))
        .collect();
    let mut sig = BTreeMap::new();
    for n in &graph.node {
        if matches!(n.op_type(), "BatchNormalization" | "Identity" | "Constant") {
            continue;
        }
        let has_weight = matches!(n.op_type(), "Conv" | "Gemm");
        let weight = n
            .input
            .get(1)
            .filter(|_| has_weight)
            .map(|w| *alias.get(w.as_str()).unwrap_or(&w.as_str()))
            .and_then(|w| dims.get(w));
        let a = |k: &str| find_attr(n, k).map(|a| format!("{:?}{:?}", a.ints, a.i));
        let key = format!(
            "{} w={:?} k={:?} s={:?} p={:?} g={:?} ceil={:?}",
            n.op_type(),
            weight,
            a("kernel_shape"),
            a("strides"),
            a("pads"),
            a("group"),
            a("ceil_mode")
        );
        *sig.entry(key).or_insert(0) += 1;
    }
    sig
}

/// The architectures compared with PyTorch's exports, and where their signatures are kept: one
/// line per operator kind, `arch<TAB>count<TAB>signature`, written from torchvision's own ONNX
/// exports by [`write_pytorch_export_signatures`] (the exports are 65 MB, so only this is kept).
const EXPORTED: [Architecture; 3] = [Architecture::ResNet18, Architecture::MobileNetV2, Architecture::SqueezeNet1_1];
const EXPORT_SIGNATURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/pytorch_export_signatures.tsv");

fn signature_lines(arch: Architecture, sig: &BTreeMap<String, usize>) -> String {
    sig.iter().map(|(key, count)| format!("{arch}\t{count}\t{key}\n")).collect()
}

/// Same operators, weights and attributes as PyTorch's exports (their signatures, kept in the
/// repository).
#[test]
fn structure_matches_the_pytorch_exports() {
    let kept = std::fs::read_to_string(EXPORT_SIGNATURES).unwrap();
    for arch in EXPORTED {
        let want: String =
            kept.lines().filter(|l| l.starts_with(&format!("{arch}\t"))).map(|l| format!("{l}\n")).collect();
        assert!(!want.is_empty(), "{EXPORT_SIGNATURES} has no lines for {arch}");
        assert_eq!(signature_lines(arch, &signature(&build(arch, 0))), want, "{arch}");
    }
}

/// A made-up difference (one convolution's stride) changes the signature: the comparison above
/// can fail.
#[test]
fn a_changed_stride_changes_the_signature() {
    let mut model = build(Architecture::ResNet18, 0);
    let before = signature(&model);
    let conv = model.graph.as_mut().unwrap().node.iter_mut().find(|n| n.name() == "layer2.0.conv2").unwrap();
    let strides = conv.attribute.iter_mut().find(|a| a.name() == "strides").unwrap();
    strides.ints = vec![3, 3];
    assert_ne!(signature(&model), before);
}

/// Writes [`EXPORT_SIGNATURES`] from torchvision's ONNX exports in `$LALARAND_SHARED_MODELS`
/// (`resnet18.onnx`, `mobilenet_v2.onnx`, `squeezenet1_1.onnx`):
/// `LALARAND_SHARED_MODELS=DIR cargo test -p lalarand-onnx -- --ignored write_pytorch_export_signatures`.
#[test]
#[ignore = "regenerates testdata/pytorch_export_signatures.tsv from exports outside the repository ($LALARAND_SHARED_MODELS)"]
fn write_pytorch_export_signatures() {
    let dir = std::env::var("LALARAND_SHARED_MODELS").expect("set LALARAND_SHARED_MODELS to the folder of the exports");
    let mut text = String::new();
    for arch in EXPORTED {
        let exported = crate::load_model(std::path::Path::new(&dir).join(format!("{arch}.onnx"))).unwrap();
        text += &signature_lines(arch, &signature(&exported));
    }
    std::fs::write(EXPORT_SIGNATURES, text).unwrap();
}
