//! vidlrp-c3d: the C3D network (Tran et al., 2015) for any [`Backend`]: architecture, weights
//! from every file people have ([`load_weights`]: PyTorch port, MMAction2, the original Caffe
//! model, renamed to the port's parameter names, with the [`Origin`] that picks pool5) and the
//! seeded He-normal initialiser of the untrained baseline (DTD-u).
//!
//! | layer | op |
//! |---|---|
//! | conv1 | Conv3d 3 -> w1, k3 p1, ReLU; pool1 k(1,2,2) s(1,2,2) |
//! | conv2 | w1 -> w2, ReLU; pool2 k2 s2 |
//! | conv3a, conv3b | ReLU each; pool3 k2 s2 |
//! | conv4a, conv4b | ReLU each; pool4 k2 s2 |
//! | conv5a, conv5b | ReLU each; pool5 k2 s2, padding (0,1,1) ([`Pool5::Port`]) or ceil mode ([`Pool5::Caffe`]) |
//! | fc6, fc7 | dense + ReLU |
//! | fc8 | dense, logits |
//!
//! Widths and class count are read from the weight shapes ([`C3dSpec::from_weights`]).
//!
//! ```
//! use vidlrp_c3d::{build, init_weights, C3dSpec, Pool5};
//! use vidlrp_core::{Backend, Composite, HostTensor, Target};
//!
//! // A narrow C3D for 16 frames of 32 x 32 pixels, seeded He-normal weights.
//! let spec = C3dSpec::with_widths([2; 8], [8, 8], 5, [16, 32, 32], Pool5::Port).unwrap();
//! let cpu = vidlrp_cpu::Cpu::new(1).unwrap();
//! let (net, found) = build(&cpu, init_weights(&spec, 7), Pool5::Port, [3, 16, 32, 32]).unwrap();
//! assert_eq!(found.classes, 5);
//! let x = cpu.upload(&HostTensor::zeros(vec![1, 3, 16, 32, 32])).unwrap();
//! let e = net.explain(&cpu, &x, &Target::Class(0), &Composite::sensitivity()).unwrap();
//! assert_eq!(e.relevance.shape(), &[1, 3, 16, 32, 32]);
//! ```

mod init;
mod weights;

pub use init::init_weights;
pub use weights::{
    from_checkpoint, load_weights, save_weights, to_port_names, C3dWeights, Origin,
    CAFFE_CONV_NAMES, ORIGIN_KEY, PRESET_KEY, SOURCE_FORMAT_KEY,
};

use std::fmt;
use std::str::FromStr;

use vidlrp_core::{Backend, HostTensor, LayerSpec, Pool3dGeometry, Sequential};
pub use vidlrp_io::TensorMap;

/// The eight convolutions in order.
pub const CONV_NAMES: [&str; 8] = [
    "conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b",
];
/// The three dense layers in order.
pub const FC_NAMES: [&str; 3] = ["fc6", "fc7", "fc8"];
/// The pooling that follows a convolution.
const POOL_AFTER: [(&str, &str); 5] = [
    ("conv1", "pool1"),
    ("conv2", "pool2"),
    ("conv3b", "pool3"),
    ("conv4b", "pool4"),
    ("conv5b", "pool5"),
];

/// Errors of loading or building a C3D model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum C3dError {
    /// The weight file could not be read.
    #[error(transparent)]
    Io(#[from] vidlrp_io::IoError),
    /// The weight file could not be read as a checkpoint (or was refused).
    #[error(transparent)]
    Checkpoint(#[from] vidlrp_checkpoint::CheckpointError),
    /// The weight file does not describe a C3D network.
    #[error("invalid C3D weights: {0}")]
    Weights(String),
    /// The input does not fit the network, or a value is invalid.
    #[error(transparent)]
    Core(#[from] vidlrp_core::Error),
}

/// Result alias of this crate.
pub type Result<T, E = C3dError> = std::result::Result<T, E>;

/// The two pool5 variants in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pool5 {
    /// The PyTorch port: padding (0, 1, 1), floor mode.
    #[default]
    Port,
    /// The original Caffe model: no padding, ceil-mode output.
    Caffe,
}

impl Pool5 {
    /// The pooling geometry.
    pub fn geometry(self) -> Pool3dGeometry {
        match self {
            Pool5::Port => Pool3dGeometry {
                kernel: [2; 3],
                stride: [2; 3],
                padding: [0, 1, 1],
                ceil_mode: false,
            },
            Pool5::Caffe => Pool3dGeometry {
                kernel: [2; 3],
                stride: [2; 3],
                padding: [0; 3],
                ceil_mode: true,
            },
        }
    }
}

impl FromStr for Pool5 {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "port" | "pytorch" => Ok(Pool5::Port),
            "caffe" | "ceil" => Ok(Pool5::Caffe),
            other => Err(format!(
                "unknown pool5 variant {other:?} (expected port or caffe)"
            )),
        }
    }
}

impl fmt::Display for Pool5 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pool5::Port => "port",
            Pool5::Caffe => "caffe",
        })
    }
}

/// The pooling that follows convolution `conv` (`conv1`, `conv2`, `conv3b`, `conv4b`, `conv5b`),
/// with its name and geometry under `pool5`; `None` for the other convolutions.
///
/// ```
/// use vidlrp_c3d::{pooling_after, Pool5};
/// let (name, g) = pooling_after("conv1", Pool5::Port).unwrap();
/// assert_eq!((name, g.kernel), ("pool1", [1, 2, 2]));
/// assert!(pooling_after("conv3a", Pool5::Port).is_none());
/// ```
pub fn pooling_after(conv: &str, pool5: Pool5) -> Option<(&'static str, Pool3dGeometry)> {
    POOL_AFTER
        .iter()
        .find(|(c, _)| *c == conv)
        .map(|(_, p)| (*p, pool_geometry(p, pool5)))
}

fn pool_geometry(name: &str, pool5: Pool5) -> Pool3dGeometry {
    match name {
        "pool1" => Pool3dGeometry {
            kernel: [1, 2, 2],
            stride: [1, 2, 2],
            padding: [0; 3],
            ceil_mode: false,
        },
        "pool5" => pool5.geometry(),
        _ => Pool3dGeometry {
            kernel: [2; 3],
            stride: [2; 3],
            padding: [0; 3],
            ceil_mode: false,
        },
    }
}

/// Widths of a C3D network, as read from its weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C3dSpec {
    /// Input channels (3).
    pub in_channels: usize,
    /// Output channels of conv1 .. conv5b.
    pub conv_widths: [usize; 8],
    /// Kernel `[kT, kH, kW]` of each convolution (odd, padded to keep the extent).
    pub kernels: [[usize; 3]; 8],
    /// fc6's number of inputs.
    pub fc6_inputs: usize,
    /// Outputs of fc6 and fc7.
    pub fc_widths: [usize; 2],
    /// Number of classes (fc8 outputs).
    pub classes: usize,
}

impl C3dSpec {
    /// The published C3D: widths 64 .. 512, fc 4096, 487 Sports-1M classes, 16x112x112 input.
    pub fn full() -> Self {
        Self::with_widths(
            [64, 128, 256, 256, 512, 512, 512, 512],
            [4096, 4096],
            487,
            [16, 112, 112],
            Pool5::Port,
        )
        .expect("the published C3D is valid")
    }

    /// C3D at `width` times the published widths (each rounded, at least 1: `width = 1` is
    /// 64 .. 512 channels and fc 4096), for `classes` classes and a `[T, H, W]` input.
    ///
    /// **Errors** if `width` is not in `(0, 4]`, `classes` is 0, or the input is too small.
    ///
    /// ```
    /// use vidlrp_c3d::{C3dSpec, Pool5};
    /// let s = C3dSpec::scaled(0.125, 4, [16, 112, 112], Pool5::Port).unwrap();
    /// assert_eq!((s.conv_widths[0], s.fc_widths[0]), (8, 512));
    /// ```
    pub fn scaled(width: f64, classes: usize, input: [usize; 3], pool5: Pool5) -> Result<Self> {
        if !(width > 0.0 && width <= 4.0) {
            return Err(C3dError::Weights(format!(
                "the width must be in (0, 4], got {width}"
            )));
        }
        let scale = |c: usize| ((c as f64 * width).round() as usize).max(1);
        let full = Self::full();
        Self::with_widths(
            full.conv_widths.map(scale),
            full.fc_widths.map(scale),
            classes,
            input,
            pool5,
        )
    }

    /// A network of the given widths whose fc6 fits a `[T, H, W]` input under `pool5`.
    ///
    /// **Errors** if a width is 0 or the input is too small for five poolings.
    pub fn with_widths(
        conv_widths: [usize; 8],
        fc_widths: [usize; 2],
        classes: usize,
        input: [usize; 3],
        pool5: Pool5,
    ) -> Result<Self> {
        if conv_widths.contains(&0) || fc_widths.contains(&0) || classes == 0 {
            return Err(C3dError::Weights(
                "widths and class count must be positive".into(),
            ));
        }
        let mut spec = Self {
            in_channels: 3,
            conv_widths,
            kernels: [[3; 3]; 8],
            fc6_inputs: 0,
            fc_widths,
            classes,
        };
        spec.fc6_inputs = spec.features_shape(input, pool5)?.iter().product();
        Ok(spec)
    }

    /// The shape `[C, T, H, W]` after pool5 for a `[T, H, W]` input.
    ///
    /// **Errors** if the input is too small for the poolings.
    pub fn features_shape(&self, input: [usize; 3], pool5: Pool5) -> Result<[usize; 4]> {
        let mut ext = input;
        for name in CONV_NAMES {
            if let Some((_, pool)) = POOL_AFTER.iter().find(|(c, _)| *c == name) {
                ext = pool_geometry(pool, pool5).output_extent(ext).map_err(|e| {
                    vidlrp_core::Error::shape(format!(
                        "input of {}x{}x{} (T x H x W) is too small for C3D at {pool}: {e}",
                        input[0], input[1], input[2]
                    ))
                })?;
            }
        }
        Ok([self.conv_widths[7], ext[0], ext[1], ext[2]])
    }

    /// Reads the widths from a weight map and checks that every tensor is present, of the
    /// right shape, and that nothing else is in the file.
    ///
    /// **Errors** naming the first missing, unexpected or misshapen tensor.
    pub fn from_weights(w: &TensorMap) -> Result<Self> {
        let get = |name: &str| -> Result<&HostTensor> {
            w.get(name).ok_or_else(|| {
                C3dError::Weights(format!("tensor {name} is missing (C3D needs conv1 .. conv5b and fc6 .. fc8, each with a weight and a bias, under the PyTorch port's names; Caffe's conv1a .. fc8-1 and MMAction2's names are renamed to these)"))
            })
        };
        let expected: Vec<String> = CONV_NAMES
            .iter()
            .chain(FC_NAMES.iter())
            .flat_map(|l| [format!("{l}.weight"), format!("{l}.bias")])
            .collect();
        for name in &expected {
            get(name)?;
        }
        let extra: Vec<&String> = w.keys().filter(|k| !expected.contains(k)).collect();
        if !extra.is_empty() {
            return Err(C3dError::Weights(format!(
                "unexpected tensor(s) {}: not part of C3D",
                extra
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut in_ch = get("conv1.weight")?.shape().get(1).copied().unwrap_or(0);
        let first_in = in_ch;
        let mut conv_widths = [0; 8];
        let mut kernels = [[0; 3]; 8];
        for (i, name) in CONV_NAMES.iter().enumerate() {
            let ws = get(&format!("{name}.weight"))?.shape();
            if ws.len() != 5 || ws[1] != in_ch || ws[0] == 0 || ws[2..].iter().any(|k| k % 2 == 0) {
                return Err(C3dError::Weights(format!(
                    "{name}.weight has shape {ws:?}; expected [C_out, {in_ch}, kT, kH, kW] with odd kernel sizes"
                )));
            }
            let bs = get(&format!("{name}.bias"))?.shape();
            if bs != [ws[0]] {
                return Err(C3dError::Weights(format!(
                    "{name}.bias has shape {bs:?}; expected [{}]",
                    ws[0]
                )));
            }
            conv_widths[i] = ws[0];
            kernels[i] = [ws[2], ws[3], ws[4]];
            in_ch = ws[0];
        }
        let mut dims = [0usize; 4];
        for (i, name) in FC_NAMES.iter().enumerate() {
            let ws = get(&format!("{name}.weight"))?.shape();
            if ws.len() != 2 || ws.contains(&0) || (i > 0 && ws[1] != dims[i]) {
                return Err(C3dError::Weights(format!(
                    "{name}.weight has shape {ws:?}; expected [D_out, {}]",
                    if i > 0 {
                        dims[i].to_string()
                    } else {
                        "D_in".into()
                    }
                )));
            }
            let bs = get(&format!("{name}.bias"))?.shape();
            if bs != [ws[0]] {
                return Err(C3dError::Weights(format!(
                    "{name}.bias has shape {bs:?}; expected [{}]",
                    ws[0]
                )));
            }
            if i == 0 {
                dims[0] = ws[1];
            }
            dims[i + 1] = ws[0];
        }
        if dims[0] % conv_widths[7] != 0 {
            return Err(C3dError::Weights(format!(
                "fc6 takes {} inputs, not a multiple of conv5b's {} channels",
                dims[0], conv_widths[7]
            )));
        }
        Ok(Self {
            in_channels: first_in,
            conv_widths,
            kernels,
            fc6_inputs: dims[0],
            fc_widths: [dims[1], dims[2]],
            classes: dims[3],
        })
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        let mut n = 0;
        let mut c = self.in_channels;
        for (w, k) in self.conv_widths.iter().zip(&self.kernels) {
            n += w * c * k.iter().product::<usize>() + w;
            c = *w;
        }
        let mut d = self.fc6_inputs;
        for o in self.fc_widths.iter().chain([self.classes].iter()) {
            n += o * d + o;
            d = *o;
        }
        n
    }

    /// Checks that an input `[C, T, H, W]` fits: channels match conv1 and the features after
    /// pool5 match fc6.
    ///
    /// **Errors** with a message that names the expected sizes.
    pub fn check_input(&self, input: [usize; 4], pool5: Pool5) -> Result<()> {
        if input[0] != self.in_channels {
            return Err(vidlrp_core::Error::shape(format!(
                "the input has {} channels but conv1 expects {}",
                input[0], self.in_channels
            ))
            .into());
        }
        let f = self.features_shape([input[1], input[2], input[3]], pool5)?;
        let n: usize = f.iter().product();
        if n != self.fc6_inputs {
            return Err(vidlrp_core::Error::shape(format!(
                "a {}x{}x{} (T x H x W) input gives {} = {}x{}x{}x{} features after pool5 ({pool5} variant), \
                 but fc6 expects {}; the weights were made for another input size or pool5 variant",
                input[1], input[2], input[3], n, f[0], f[1], f[2], f[3], self.fc6_inputs
            ))
            .into());
        }
        Ok(())
    }
}

/// The model description of the C3D `spec` under `pool5`: `conv1` .. `conv5b` (stride 1,
/// padding `k / 2` keeping the extent), each followed by a ReLU (`relu1` ..) and, after
/// `conv1`, `conv2`, `conv3b`, `conv4b`, `conv5b`, by its pooling; `flatten`; `fc6`, `fc7`
/// with ReLUs; `fc8` (logits). The one topology of C3D: [`build`] and the trainer run it.
///
/// ```
/// use vidlrp_c3d::{layers, C3dSpec, Pool5};
/// let names: Vec<String> = layers(&C3dSpec::full(), Pool5::Port)
///     .iter()
///     .map(|l| l.name().to_string())
///     .collect();
/// assert_eq!(names[..3], ["conv1", "relu1", "pool1"]);
/// assert_eq!(names.last().unwrap(), "fc8");
/// ```
pub fn layers(spec: &C3dSpec, pool5: Pool5) -> Vec<LayerSpec> {
    let mut out = Vec::new();
    let mut relu = 0;
    let mut push_relu = |out: &mut Vec<LayerSpec>| {
        relu += 1;
        out.push(LayerSpec::Relu {
            name: format!("relu{relu}"),
        });
    };
    for (name, k) in CONV_NAMES.iter().zip(spec.kernels) {
        out.push(LayerSpec::Conv3d {
            name: (*name).into(),
            stride: [1; 3],
            padding: [k[0] / 2, k[1] / 2, k[2] / 2],
        });
        push_relu(&mut out);
        if let Some((pool, geometry)) = pooling_after(name, pool5) {
            out.push(LayerSpec::MaxPool3d {
                name: pool.into(),
                geometry,
            });
        }
    }
    out.push(LayerSpec::Flatten {
        name: "flatten".into(),
    });
    for name in FC_NAMES {
        out.push(LayerSpec::Linear { name: name.into() });
        if name != "fc8" {
            push_relu(&mut out);
        }
    }
    out
}

/// Builds a C3D [`Sequential`] on `be` from a weight map, checked against an input of shape
/// `[C, T, H, W]`: [`layers`] run by [`Sequential::from_description`]. The weights are
/// consumed (no second copy is kept).
///
/// **Errors** on missing, unexpected, misshapen or non-finite weights, and on an input that
/// does not fit.
pub fn build<B: Backend>(
    be: &B,
    weights: TensorMap,
    pool5: Pool5,
    input: [usize; 4],
) -> Result<(Sequential<B>, C3dSpec)> {
    let spec = C3dSpec::from_weights(&weights)?;
    spec.check_input(input, pool5)?;
    let net = Sequential::from_description(be, &layers(&spec, pool5), weights)?;
    Ok((net, spec))
}
