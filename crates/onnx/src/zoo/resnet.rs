//! ResNet-18 and ResNet-50 as torchvision defines them (v1.5: stride on the 3x3 convolution).

use super::layers::{ConvSpec, Net};
use crate::proto::ModelProto;

#[derive(Clone, Copy)]
pub(crate) enum Block {
    Basic,
    Bottleneck,
}

pub(crate) fn resnet(name: &str, block: Block, depths: [usize; 4], seed: u64) -> ModelProto {
    let mut n = Net::new(name, seed, 224);
    let x = n.conv("conv1", "input", ConvSpec::new(3, 64, 7, 2));
    let x = n.bn("bn1", &x, 64);
    let x = n.relu("relu", &x);
    let mut x = n.maxpool("maxpool", &x, 3, 2, [1; 4], false);
    let expansion = match block {
        Block::Basic => 1,
        Block::Bottleneck => 4,
    };
    let mut cin = 64;
    for (stage, &depth) in depths.iter().enumerate() {
        let width = 64 << stage;
        for i in 0..depth {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let p = format!("layer{}.{i}", stage + 1);
            let cout = width * expansion;
            let shortcut = if stride != 1 || cin != cout {
                let s = n.conv(&format!("{p}.downsample.0"), &x, ConvSpec::new(cin, cout, 1, stride));
                n.bn(&format!("{p}.downsample.1"), &s, cout)
            } else {
                x.clone()
            };
            let y = match block {
                Block::Basic => {
                    let y = n.conv(&format!("{p}.conv1"), &x, ConvSpec::new(cin, width, 3, stride));
                    let y = n.bn(&format!("{p}.bn1"), &y, width);
                    let y = n.relu(&format!("{p}.relu1"), &y);
                    let y = n.conv(&format!("{p}.conv2"), &y, ConvSpec::new(width, width, 3, 1));
                    n.bn(&format!("{p}.bn2"), &y, width)
                }
                Block::Bottleneck => {
                    let y = n.conv(&format!("{p}.conv1"), &x, ConvSpec::new(cin, width, 1, 1));
                    let y = n.bn(&format!("{p}.bn1"), &y, width);
                    let y = n.relu(&format!("{p}.relu1"), &y);
                    let y = n.conv(&format!("{p}.conv2"), &y, ConvSpec::new(width, width, 3, stride));
                    let y = n.bn(&format!("{p}.bn2"), &y, width);
                    let y = n.relu(&format!("{p}.relu2"), &y);
                    let y = n.conv(&format!("{p}.conv3"), &y, ConvSpec::new(width, cout, 1, 1));
                    n.bn(&format!("{p}.bn3"), &y, cout)
                }
            };
            let y = n.add(&format!("{p}.add"), &y, &shortcut);
            x = n.relu(&format!("{p}.relu_out"), &y);
            cin = cout;
        }
    }
    let x = n.global_avg_pool("avgpool", &x);
    let x = n.flatten("flatten", &x);
    n.linear("fc", &x, cin, 1000, "output");
    n.finish(&[("output", &[1, 1000])])
}
