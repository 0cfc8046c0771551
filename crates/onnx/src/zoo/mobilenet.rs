//! MobileNetV2 (width 1.0) as torchvision defines it.

use super::layers::{ConvSpec, Net};
use crate::proto::ModelProto;

/// Expansion t, output channels c, repeats n, first stride s (torchvision's table).
const SETTINGS: [(i64, i64, usize, i64); 7] =
    [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];

/// Conv + BN + ReLU6 named `{p}.0`, `{p}.1`, `{p}.2` like `Conv2dNormActivation`.
fn conv_bn_relu6(n: &mut Net, p: &str, x: &str, s: ConvSpec) -> String {
    let y = n.conv(&format!("{p}.0"), x, s);
    let y = n.bn(&format!("{p}.1"), &y, s.cout);
    n.relu6(&format!("{p}.2"), &y)
}

pub(crate) fn mobilenet_v2(seed: u64) -> ModelProto {
    let mut n = Net::new("mobilenet_v2", seed, 224);
    let mut x = conv_bn_relu6(&mut n, "features.0", "input", ConvSpec::new(3, 32, 3, 2));
    let mut cin = 32;
    let mut index = 1;
    for (t, c, repeats, first_stride) in SETTINGS {
        for i in 0..repeats {
            let stride = if i == 0 { first_stride } else { 1 };
            let p = format!("features.{index}.conv");
            let hidden = cin * t;
            let mut y = x.clone();
            let mut part = 0;
            if t != 1 {
                y = conv_bn_relu6(&mut n, &format!("{p}.0"), &y, ConvSpec::new(cin, hidden, 1, 1));
                part = 1;
            }
            let dw = ConvSpec::new(hidden, hidden, 3, stride).group(hidden);
            y = conv_bn_relu6(&mut n, &format!("{p}.{part}"), &y, dw);
            y = n.conv(&format!("{p}.{}", part + 1), &y, ConvSpec::new(hidden, c, 1, 1));
            y = n.bn(&format!("{p}.{}", part + 2), &y, c);
            x = if stride == 1 && cin == c { n.add(&format!("features.{index}.add"), &x, &y) } else { y };
            cin = c;
            index += 1;
        }
    }
    let x = conv_bn_relu6(&mut n, &format!("features.{index}"), &x, ConvSpec::new(cin, 1280, 1, 1));
    let x = n.global_avg_pool("avgpool", &x);
    let x = n.flatten("flatten", &x);
    // classifier.0 is Dropout, absent from an inference graph.
    n.linear("classifier.1", &x, 1280, 1000, "output");
    n.finish(&[("output", &[1, 1000])])
}
