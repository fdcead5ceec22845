//! torchvision's video ResNets (`r3d_18`, `mc3_18`, `r2plus1d_18`, and the same families with
//! other block counts) for any vidlrp backend.
//!
//! The architecture is read from a state dict's names and shapes ([`VideoResNetSpec::from_weights`]):
//! the stem (`stem.0` `3x7x7`, or the R(2+1)D stem `stem.0` `1x7x7` + `stem.3` `3x1x1`), four
//! stages of basic blocks (`layer{L}.{i}.conv1.0.weight`: a `3x3x3` convolution, a `1x3x3` one,
//! or a (2+1)D pair `conv1.0.0` / `conv1.0.3`), the shortcut convolutions
//! (`layer{L}.0.downsample.0`), and `fc` (its rows are the classes). [`layers`] writes the
//! network as a nested [`LayerSpec`] description, every `BatchNorm3d` after the convolution it
//! is folded into when the network is built ([`vidlrp_core::BatchNorm::fold`]):
//!
//! ```text
//! stem:   conv (1,2,2) -> BN -> ReLU            [R(2+1)D: conv 1x7x7 -> BN -> ReLU -> conv 3x1x1 -> BN -> ReLU]
//! block:  relu( BN(conv2(relu(BN(conv1(x))))) + shortcut(x) ),  shortcut = x or BN(conv 1x1x1, strided)
//! head:   AdaptiveAvgPool3d(1) -> flatten -> fc
//! ```
//!
//! The first block of stages 2-4 has stride 2 (`(2,2,2)` for `3x3x3` and (2+1)D convolutions,
//! `(1,2,2)` for `1x3x3` ones, as torchvision's `get_downsample_stride`).
//!
//! Explained with DTD (method.md §5): z^B on `stem.0`, z+ (bias ignored) on every other
//! convolution and `fc` after folding, ReLU passes relevance, each residual sum and the average
//! pool split relevance in proportion to their inputs.
//!
//! ```
//! use vidlrp_video_resnet::{init_weights, layers, VideoResNetSpec};
//! let spec = VideoResNetSpec::r3d_18(400);
//! let w = init_weights(&spec, 7);
//! assert_eq!(VideoResNetSpec::from_weights(&w).unwrap(), spec);
//! assert_eq!(spec.arch(), "r3d_18");
//! assert_eq!(spec.num_params(), 33_371_472); // torchvision's figure
//! let description = layers(&spec);
//! assert_eq!(description.first().unwrap().name(), "stem.0");
//! ```

use std::collections::BTreeMap;

use vidlrp_core::{
    AvgWindows, Backend, Error, ErrorKind, HostTensor, LayerSpec, Result, Sequential,
};
use vidlrp_rng::{Rng, GOLDEN_GAMMA};

/// Tensors by name.
pub type TensorMap = BTreeMap<String, HostTensor>;

/// torchvision's `BatchNorm3d` default `eps`.
pub const BN_EPS: f32 = 1e-5;

/// The stem of a video ResNet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stem {
    /// `Conv3d(3, w, (3,7,7), stride (1,2,2), padding (1,3,3))`, BN, ReLU (r3d, mc3).
    Basic {
        /// Output channels (64 in torchvision).
        width: usize,
    },
    /// `Conv3d(3, mid, (1,7,7), stride (1,2,2), padding (0,3,3))`, BN, ReLU, `Conv3d(mid, w,
    /// (3,1,1), padding (1,0,0))`, BN, ReLU (r2plus1d).
    R2Plus1d {
        /// Channels between the two convolutions (45 in torchvision).
        mid: usize,
        /// Output channels (64 in torchvision).
        width: usize,
    },
}

impl Stem {
    fn width(&self) -> usize {
        match self {
            Stem::Basic { width } | Stem::R2Plus1d { width, .. } => *width,
        }
    }
}

/// The convolution of a stage's blocks (torchvision's `conv_makers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockConv {
    /// `Conv3DSimple`: `3x3x3`, stride `(s,s,s)`, padding 1.
    Full,
    /// `Conv3DNoTemporal`: `1x3x3`, stride `(1,s,s)`, padding `(0,1,1)`.
    Spatial,
    /// `Conv2Plus1D`: `1x3x3` (stride `(1,s,s)`) to `mid` channels, BN, ReLU, `3x1x1` (stride
    /// `(s,1,1)`).
    TwoPlusOne,
}

impl BlockConv {
    /// The shortcut's stride for a block of stride `s` (`get_downsample_stride`).
    fn shortcut_stride(self, s: usize) -> [usize; 3] {
        match self {
            BlockConv::Full | BlockConv::TwoPlusOne => [s, s, s],
            BlockConv::Spatial => [1, s, s],
        }
    }
}

/// One stage (`layer1` .. `layer4`): its blocks' convolution, block count and width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The blocks' convolution.
    pub conv: BlockConv,
    /// Output channels of every block.
    pub width: usize,
    /// Per block: whether it has a shortcut convolution (`downsample`), and for (2+1)D blocks
    /// the middle widths of `conv1` and `conv2`.
    pub blocks: Vec<Block>,
}

/// One basic block of a [`Stage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Whether the shortcut is a strided `1x1x1` convolution + BN (else the identity).
    pub downsample: bool,
    /// The middle widths of `conv1` and `conv2` ((2+1)D blocks only; 0 otherwise).
    pub mid: [usize; 2],
}

/// A video ResNet: stem, four stages of basic blocks, `fc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoResNetSpec {
    /// The stem.
    pub stem: Stem,
    /// `layer1` .. `layer4`.
    pub stages: [Stage; 4],
    /// Output classes (`fc`'s rows).
    pub classes: usize,
    /// Input channels (3).
    pub in_channels: usize,
}

/// torchvision's (2+1)D middle width for `inplanes -> planes`.
fn midplanes(inplanes: usize, planes: usize) -> usize {
    (inplanes * planes * 27) / (inplanes * 9 + 3 * planes)
}

impl VideoResNetSpec {
    /// A torchvision video ResNet with stages of `blocks` basic blocks, widths 64, 128, 256,
    /// 512, and the given stem and stage convolutions.
    fn torchvision(stem: Stem, convs: [BlockConv; 4], blocks: [usize; 4], classes: usize) -> Self {
        let mut inplanes = stem.width();
        let stages = std::array::from_fn(|l| {
            let planes = 64 << l;
            let list = (0..blocks[l])
                .map(|i| {
                    let (cin, stride) = if i == 0 {
                        (inplanes, if l == 0 { 1 } else { 2 })
                    } else {
                        (planes, 1)
                    };
                    let mid = if convs[l] == BlockConv::TwoPlusOne {
                        // conv2 keeps the middle width computed for conv1 (torchvision).
                        let m = midplanes(cin, planes);
                        [m, m]
                    } else {
                        [0, 0]
                    };
                    Block {
                        downsample: i == 0 && (stride != 1 || cin != planes),
                        mid,
                    }
                })
                .collect();
            inplanes = planes;
            Stage {
                conv: convs[l],
                width: planes,
                blocks: list,
            }
        });
        Self {
            stem,
            stages,
            classes,
            in_channels: 3,
        }
    }

    /// torchvision's `r3d_18` (Kinetics-400: 400 classes).
    pub fn r3d_18(classes: usize) -> Self {
        Self::torchvision(
            Stem::Basic { width: 64 },
            [BlockConv::Full; 4],
            [2; 4],
            classes,
        )
    }

    /// torchvision's `mc3_18`.
    pub fn mc3_18(classes: usize) -> Self {
        use BlockConv::{Full, Spatial};
        Self::torchvision(
            Stem::Basic { width: 64 },
            [Full, Spatial, Spatial, Spatial],
            [2; 4],
            classes,
        )
    }

    /// torchvision's `r2plus1d_18`.
    pub fn r2plus1d_18(classes: usize) -> Self {
        Self::torchvision(
            Stem::R2Plus1d { mid: 45, width: 64 },
            [BlockConv::TwoPlusOne; 4],
            [2; 4],
            classes,
        )
    }

    /// The architecture by name: `r3d_18`, `mc3_18` or `r2plus1d_18`.
    ///
    /// **Errors** on another name.
    pub fn named(name: &str, classes: usize) -> Result<Self> {
        match name {
            "r3d_18" => Ok(Self::r3d_18(classes)),
            "mc3_18" => Ok(Self::mc3_18(classes)),
            "r2plus1d_18" => Ok(Self::r2plus1d_18(classes)),
            other => Err(Error::new(
                ErrorKind::Argument,
                format!("unknown video ResNet {other:?} (known: r3d_18, mc3_18, r2plus1d_18)"),
            )),
        }
    }

    /// The family and depth, as torchvision names them: `r3d_18`, `mc3_18`, `r2plus1d_18`
    /// (`r3d_34` etc. for other block counts; `video_resnet_N` for other combinations).
    pub fn arch(&self) -> String {
        use BlockConv::{Full, Spatial, TwoPlusOne};
        let depth = 2 + 2 * self.stages.iter().map(|s| s.blocks.len()).sum::<usize>();
        let convs: Vec<BlockConv> = self.stages.iter().map(|s| s.conv).collect();
        let family = match (&self.stem, convs.as_slice()) {
            (Stem::Basic { .. }, [Full, Full, Full, Full]) => "r3d",
            (Stem::Basic { .. }, [Full, Spatial, Spatial, Spatial]) => "mc3",
            (Stem::R2Plus1d { .. }, [TwoPlusOne, TwoPlusOne, TwoPlusOne, TwoPlusOne]) => "r2plus1d",
            _ => "video_resnet",
        };
        format!("{family}_{depth}")
    }

    /// The channel widths: stem, then each stage.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.stem.width())
            .chain(self.stages.iter().map(|s| s.width))
            .collect()
    }

    /// Every parameter's name and shape, in the state dict's names (BN statistics included).
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let conv = |out: &mut Vec<(String, Vec<usize>)>, name: &str, o, i, k: [usize; 3]| {
            out.push((format!("{name}.weight"), vec![o, i, k[0], k[1], k[2]]));
        };
        let bn = |out: &mut Vec<(String, Vec<usize>)>, name: &str, c: usize| {
            for p in ["weight", "bias", "running_mean", "running_var"] {
                out.push((format!("{name}.{p}"), vec![c]));
            }
        };
        let c_in = self.in_channels;
        match self.stem {
            Stem::Basic { width } => {
                conv(&mut out, "stem.0", width, c_in, [3, 7, 7]);
                bn(&mut out, "stem.1", width);
            }
            Stem::R2Plus1d { mid, width } => {
                conv(&mut out, "stem.0", mid, c_in, [1, 7, 7]);
                bn(&mut out, "stem.1", mid);
                conv(&mut out, "stem.3", width, mid, [3, 1, 1]);
                bn(&mut out, "stem.4", width);
            }
        }
        let mut inplanes = self.stem.width();
        for (l, stage) in self.stages.iter().enumerate() {
            for (i, block) in stage.blocks.iter().enumerate() {
                let p = format!("layer{}.{i}", l + 1);
                let w = stage.width;
                for (j, cin) in [(0, inplanes), (1, w)] {
                    let c = format!("{p}.conv{}", j + 1);
                    match stage.conv {
                        BlockConv::Full => conv(&mut out, &format!("{c}.0"), w, cin, [3, 3, 3]),
                        BlockConv::Spatial => {
                            conv(&mut out, &format!("{c}.0"), w, cin, [1, 3, 3]);
                        }
                        BlockConv::TwoPlusOne => {
                            let m = block.mid[j];
                            conv(&mut out, &format!("{c}.0.0"), m, cin, [1, 3, 3]);
                            bn(&mut out, &format!("{c}.0.1"), m);
                            conv(&mut out, &format!("{c}.0.3"), w, m, [3, 1, 1]);
                        }
                    }
                    bn(&mut out, &format!("{c}.1"), w);
                }
                if block.downsample {
                    conv(
                        &mut out,
                        &format!("{p}.downsample.0"),
                        w,
                        inplanes,
                        [1, 1, 1],
                    );
                    bn(&mut out, &format!("{p}.downsample.1"), w);
                }
                inplanes = w;
            }
        }
        out.push(("fc.weight".into(), vec![self.classes, inplanes]));
        out.push(("fc.bias".into(), vec![self.classes]));
        out
    }

    /// Trainable parameters (convolutions, BN scales and shifts, `fc`), as torchvision counts
    /// them.
    pub fn num_params(&self) -> usize {
        self.parameter_shapes()
            .iter()
            .filter(|(n, _)| !n.ends_with("running_mean") && !n.ends_with("running_var"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// The architecture of a state dict (torchvision's names, `module.` prefixes already
    /// removed), from its names and shapes.
    ///
    /// **Errors** if the names are not a video ResNet's, a stage uses bottleneck blocks
    /// (`conv3`, the 50+ layer variants), or a shape does not fit the architecture read.
    pub fn from_weights(w: &TensorMap) -> Result<Self> {
        let shape = |name: &str| w.get(name).map(|t| t.shape().to_vec());
        let need = |name: &str| {
            shape(name).ok_or_else(|| {
                bad(format!(
                    "tensor {name} is missing (a torchvision video ResNet has stem.0, \
                     layer1.0 .. layer4.N and fc)"
                ))
            })
        };
        let stem_w = need("stem.0.weight")?;
        if stem_w.len() != 5 {
            return Err(bad(format!(
                "stem.0.weight has shape {stem_w:?}, not a 3-d convolution"
            )));
        }
        let stem = match (&stem_w[2..], shape("stem.3.weight")) {
            ([3, 7, 7], None) => Stem::Basic { width: stem_w[0] },
            ([1, 7, 7], Some(s3)) if s3.len() == 5 => Stem::R2Plus1d {
                mid: stem_w[0],
                width: s3[0],
            },
            (k, _) => {
                return Err(bad(format!(
                    "stem.0 has kernel {k:?}: neither torchvision's basic stem (3x7x7) nor the \
                     R(2+1)D stem (1x7x7 with stem.3)"
                )))
            }
        };
        if w.keys().any(|k| k.contains(".conv3.")) {
            return Err(bad(
                "bottleneck blocks (conv3, the 50+ layer video ResNets) are not supported; \
                 r3d/mc3/r2plus1d with basic blocks are"
                    .to_string(),
            ));
        }
        let stages = (1..=4)
            .map(|l| read_stage(w, l))
            .collect::<Result<Vec<_>>>()?;
        let fc = need("fc.weight")?;
        if fc.len() != 2 {
            return Err(bad(format!(
                "fc.weight has shape {fc:?}, not a dense layer"
            )));
        }
        let spec = Self {
            stem,
            stages: stages.try_into().expect("four stages"),
            classes: fc[0],
            in_channels: stem_w[1],
        };
        // Every tensor must be where the architecture read puts it, with its shape.
        let expected: BTreeMap<String, Vec<usize>> = spec.parameter_shapes().into_iter().collect();
        for (name, want) in &expected {
            let got = need(name)?;
            if &got != want {
                return Err(bad(format!(
                    "{name} has shape {got:?}; the {} read from the other names needs {want:?}",
                    spec.arch()
                )));
            }
        }
        if let Some(extra) = w
            .keys()
            .find(|k| !expected.contains_key(*k) && !k.ends_with(".num_batches_tracked"))
        {
            return Err(bad(format!(
                "{extra} belongs to no layer of a video ResNet"
            )));
        }
        Ok(spec)
    }

    /// The smallest input `[T, H, W]` every layer accepts (each stride-2 step needs an extent
    /// of at least 1 after it): any `T >= 1`, `H, W >= 1`; torchvision's clips are 16x112x112.
    pub fn check_input(&self, input: [usize; 4]) -> Result<()> {
        if input[0] != self.in_channels {
            return Err(Error::shape(format!(
                "the {} takes {} input channels, the clip has {}",
                self.arch(),
                self.in_channels,
                input[0]
            )));
        }
        if input[1..].contains(&0) {
            return Err(Error::shape(format!("an empty clip {input:?}")));
        }
        Ok(())
    }
}

fn bad(message: String) -> Error {
    Error::new(
        ErrorKind::Argument,
        format!("not a torchvision video ResNet: {message}"),
    )
}

/// Stage `l` (1-based) of a state dict.
fn read_stage(w: &TensorMap, l: usize) -> Result<Stage> {
    let block_count = (0..)
        .take_while(|i| w.keys().any(|k| k.starts_with(&format!("layer{l}.{i}."))))
        .count();
    if block_count == 0 {
        return Err(bad(format!("no blocks of layer{l}")));
    }
    let first = format!("layer{l}.0.conv1.0");
    let (conv, width) = if let Some(t) = w.get(&format!("{first}.weight")) {
        let s = t.shape();
        match s.get(2..) {
            Some([3, 3, 3]) => (BlockConv::Full, s[0]),
            Some([1, 3, 3]) => (BlockConv::Spatial, s[0]),
            k => {
                return Err(bad(format!(
                    "{first}.weight has kernel {k:?} (3x3x3 or 1x3x3 expected)"
                )))
            }
        }
    } else if w.contains_key(&format!("{first}.0.weight")) {
        let out = w
            .get(&format!("{first}.3.weight"))
            .ok_or_else(|| bad(format!("{first}.0 without {first}.3 ((2+1)D pair)")))?;
        (BlockConv::TwoPlusOne, out.shape()[0])
    } else {
        return Err(bad(format!("no {first}.weight")));
    };
    let blocks = (0..block_count)
        .map(|i| {
            let mid = |j: usize| {
                w.get(&format!("layer{l}.{i}.conv{j}.0.0.weight"))
                    .map_or(0, |t| t.shape()[0])
            };
            Block {
                downsample: w.contains_key(&format!("layer{l}.{i}.downsample.0.weight")),
                mid: if conv == BlockConv::TwoPlusOne {
                    [mid(1), mid(2)]
                } else {
                    [0, 0]
                },
            }
        })
        .collect();
    Ok(Stage {
        conv,
        width,
        blocks,
    })
}

fn conv(name: String, stride: [usize; 3], padding: [usize; 3]) -> LayerSpec {
    LayerSpec::Conv3d {
        name,
        stride,
        padding,
    }
}

fn bn(name: String) -> LayerSpec {
    LayerSpec::BatchNorm { name, eps: BN_EPS }
}

fn relu(name: String) -> LayerSpec {
    LayerSpec::Relu { name }
}

/// A block convolution `prefix` (`layerL.i.convJ.0`) of stride `s`.
fn block_conv(out: &mut Vec<LayerSpec>, kind: BlockConv, prefix: &str, s: usize) {
    match kind {
        BlockConv::Full => out.push(conv(prefix.into(), [s; 3], [1; 3])),
        BlockConv::Spatial => out.push(conv(prefix.into(), [1, s, s], [0, 1, 1])),
        BlockConv::TwoPlusOne => {
            out.push(conv(format!("{prefix}.0"), [1, s, s], [0, 1, 1]));
            out.push(bn(format!("{prefix}.1")));
            out.push(relu(format!("{prefix}.2")));
            out.push(conv(format!("{prefix}.3"), [s, 1, 1], [1, 0, 0]));
        }
    }
}

/// The network as a nested description in torchvision's names (BN layers to be folded).
pub fn layers(spec: &VideoResNetSpec) -> Vec<LayerSpec> {
    let mut out = Vec::new();
    match spec.stem {
        Stem::Basic { .. } => {
            out.push(conv("stem.0".into(), [1, 2, 2], [1, 3, 3]));
            out.push(bn("stem.1".into()));
            out.push(relu("stem.2".into()));
        }
        Stem::R2Plus1d { .. } => {
            out.push(conv("stem.0".into(), [1, 2, 2], [0, 3, 3]));
            out.push(bn("stem.1".into()));
            out.push(relu("stem.2".into()));
            out.push(conv("stem.3".into(), [1, 1, 1], [1, 0, 0]));
            out.push(bn("stem.4".into()));
            out.push(relu("stem.5".into()));
        }
    }
    for (l, stage) in spec.stages.iter().enumerate() {
        for (i, block) in stage.blocks.iter().enumerate() {
            let p = format!("layer{}.{i}", l + 1);
            let s = if i == 0 && l > 0 { 2 } else { 1 };
            let mut main = Vec::new();
            block_conv(&mut main, stage.conv, &format!("{p}.conv1.0"), s);
            main.push(bn(format!("{p}.conv1.1")));
            main.push(relu(format!("{p}.conv1.2")));
            block_conv(&mut main, stage.conv, &format!("{p}.conv2.0"), 1);
            main.push(bn(format!("{p}.conv2.1")));
            let shortcut = if block.downsample {
                vec![
                    conv(
                        format!("{p}.downsample.0"),
                        stage.conv.shortcut_stride(s),
                        [0; 3],
                    ),
                    bn(format!("{p}.downsample.1")),
                ]
            } else {
                Vec::new()
            };
            out.push(LayerSpec::Residual {
                name: p.clone(),
                main,
                shortcut,
            });
            out.push(relu(format!("{p}.relu")));
        }
    }
    out.push(LayerSpec::AvgPool3d {
        name: "avgpool".into(),
        windows: AvgWindows::Adaptive([1, 1, 1]),
    });
    out.push(LayerSpec::Flatten {
        name: "flatten".into(),
    });
    out.push(LayerSpec::Linear { name: "fc".into() });
    out
}

/// Removes a `module.` prefix that every name carries (`nn.DataParallel`).
pub fn strip_module_prefix(w: TensorMap) -> TensorMap {
    if !w.is_empty() && w.keys().all(|k| k.starts_with("module.")) {
        w.into_iter()
            .map(|(k, v)| (k["module.".len()..].to_string(), v))
            .collect()
    } else {
        w
    }
}

/// Builds the network on `be` from a state dict (batch normalisation folded into the
/// convolutions), checked against an input of shape `[C, T, H, W]`.
///
/// **Errors** as [`VideoResNetSpec::from_weights`] and [`Sequential::from_description`], and if
/// the input does not fit.
pub fn build<B: Backend>(
    be: &B,
    weights: TensorMap,
    input: [usize; 4],
) -> Result<(Sequential<B>, VideoResNetSpec)> {
    let weights = strip_module_prefix(weights);
    let spec = VideoResNetSpec::from_weights(&weights)?;
    spec.check_input(input)?;
    let net = Sequential::from_description(be, &layers(&spec), weights)?;
    net.shapes(&[1, input[0], input[1], input[2], input[3]])?;
    Ok((net, spec))
}

/// Freshly initialised weights as torchvision initialises a video ResNet, on vidlrp's seeded
/// stream ([`vidlrp_rng::Rng`], one stream per tensor): convolutions `N(0, 2 / fan_out)` with
/// `fan_out = C_out kT kH kW` (`kaiming_normal_`, mode `fan_out`), BN scale 1, shift 0, running
/// mean 0, running variance 1, `fc` weights `N(0, 0.01^2)` and bias 0. The untrained baseline
/// (DTD-u) of a video ResNet.
pub fn init_weights(spec: &VideoResNetSpec, seed: u64) -> TensorMap {
    let mut out = TensorMap::new();
    for (k, (name, shape)) in spec.parameter_shapes().into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let mut v = vec![0.0f32; n];
        let mut rng = Rng::new(seed ^ (0x7e50_0000 + k as u64).wrapping_mul(GOLDEN_GAMMA));
        if name == "fc.weight" {
            rng.fill_normal(&mut v, 0.01);
        } else if shape.len() == 5 {
            let fan_out: usize = shape[0] * shape[2..].iter().product::<usize>();
            rng.fill_normal(&mut v, (2.0 / fan_out as f64).sqrt());
        } else if name.ends_with(".weight") || name.ends_with("running_var") {
            v.fill(1.0);
        }
        out.insert(name, HostTensor::new(shape, v).expect("shape"));
    }
    out
}
