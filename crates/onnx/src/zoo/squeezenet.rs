//! SqueezeNet 1.1 as torchvision defines it.

use super::layers::{ConvSpec, Net};
use crate::proto::ModelProto;

fn fire(n: &mut Net, p: &str, x: &str, cin: i64, squeeze: i64, expand: i64) -> String {
    let s = n.conv(&format!("{p}.squeeze"), x, ConvSpec::new(cin, squeeze, 1, 1).bias());
    let s = n.relu(&format!("{p}.squeeze_activation"), &s);
    let e1 = n.conv(&format!("{p}.expand1x1"), &s, ConvSpec::new(squeeze, expand, 1, 1).bias());
    let e1 = n.relu(&format!("{p}.expand1x1_activation"), &e1);
    let e3 = n.conv(&format!("{p}.expand3x3"), &s, ConvSpec::new(squeeze, expand, 3, 1).bias());
    let e3 = n.relu(&format!("{p}.expand3x3_activation"), &e3);
    n.concat(&format!("{p}.concat"), &[&e1, &e3])
}

pub(crate) fn squeezenet1_1(seed: u64) -> ModelProto {
    let mut n = Net::new("squeezenet1_1", seed, 224);
    let x = n.conv("features.0", "input", ConvSpec::new(3, 64, 3, 2).pad(0).bias());
    let x = n.relu("features.1", &x);
    let x = n.maxpool("features.2", &x, 3, 2, [0; 4], true);
    let x = fire(&mut n, "features.3", &x, 64, 16, 64);
    let x = fire(&mut n, "features.4", &x, 128, 16, 64);
    let x = n.maxpool("features.5", &x, 3, 2, [0; 4], true);
    let x = fire(&mut n, "features.6", &x, 128, 32, 128);
    let x = fire(&mut n, "features.7", &x, 256, 32, 128);
    let x = n.maxpool("features.8", &x, 3, 2, [0; 4], true);
    let x = fire(&mut n, "features.9", &x, 256, 48, 192);
    let x = fire(&mut n, "features.10", &x, 384, 48, 192);
    let x = fire(&mut n, "features.11", &x, 384, 64, 256);
    let x = fire(&mut n, "features.12", &x, 512, 64, 256);
    // classifier.0 is Dropout, absent from an inference graph.
    let x = n.conv("classifier.1", &x, ConvSpec::new(512, 1000, 1, 1).bias());
    let x = n.relu("classifier.2", &x);
    let x = n.global_avg_pool("classifier.3", &x);
    n.flatten("flatten", &x);
    n.rename_last_output("output");
    n.finish(&[("output", &[1, 1000])])
}
