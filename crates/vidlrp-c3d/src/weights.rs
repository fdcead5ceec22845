//! C3D weights from any file `vidlrp-checkpoint` reads, renamed to the PyTorch port's names,
//! with the [`Origin`] that decides the architecture variant.
//!
//! | origin | names in the file | pool5 |
//! |---|---|---|
//! | [`Origin::Port`] | `conv1.weight` ... `fc8.bias` (c3d-pytorch, vidlrp) | padded ([`Pool5::Port`]) |
//! | [`Origin::MmAction2`] | `backbone.conv1a.conv.weight` ... `backbone.fc7.*`, `cls_head.fc_cls.*` | padded |
//! | [`Origin::Caffe`] | Caffe layers `conv1a` ... `conv5b`, `fc6-1` ... `fc8-1` (or `fc6` ...) | ceil mode ([`Pool5::Caffe`]) |
//!
//! A safetensors file written by [`save_weights`] records its origin in the header metadata
//! under [`ORIGIN_KEY`], so converted Caffe weights keep Caffe's defaults.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use vidlrp_checkpoint::{Format, Metadata};

use crate::{C3dError, Pool5, Result, TensorMap, CONV_NAMES, FC_NAMES};

/// The safetensors metadata key holding the origin.
pub const ORIGIN_KEY: &str = "vidlrp.origin";
/// The safetensors metadata key holding the format converted from.
pub const SOURCE_FORMAT_KEY: &str = "vidlrp.source_format";
/// The safetensors metadata key of the preprocessing preset a model was trained with (e.g.
/// `caffe@64` for `vidlrp train --size 64`); commands use it when no preset is given.
pub const PRESET_KEY: &str = "vidlrp.preset";

/// The Caffe C3D's convolution layer names, in [`CONV_NAMES`] order.
pub const CAFFE_CONV_NAMES: [&str; 8] = [
    "conv1a", "conv2a", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b",
];

/// Where a C3D's weights come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The PyTorch port (c3d-pytorch's `c3d.pickle`) and files with its names.
    Port,
    /// MMAction2's C3D.
    MmAction2,
    /// The original Caffe C3D (facebookarchive/C3D).
    Caffe,
}

impl Origin {
    /// The pool5 variant the weights were trained with.
    pub fn pool5(self) -> Pool5 {
        match self {
            Origin::Caffe => Pool5::Caffe,
            Origin::Port | Origin::MmAction2 => Pool5::Port,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Port => "pytorch-port",
            Origin::MmAction2 => "mmaction2",
            Origin::Caffe => "caffe",
        })
    }
}

impl FromStr for Origin {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "pytorch-port" | "port" => Ok(Origin::Port),
            "mmaction2" => Ok(Origin::MmAction2),
            "caffe" => Ok(Origin::Caffe),
            other => Err(format!(
                "unknown origin {other:?} (expected pytorch-port, mmaction2 or caffe)"
            )),
        }
    }
}

/// C3D weights under the port's names, and where they came from.
#[derive(Debug, Clone)]
pub struct C3dWeights {
    /// `conv1.weight` ... `fc8.bias`.
    pub tensors: TensorMap,
    /// Where they come from.
    pub origin: Origin,
    /// The file's format.
    pub format: Format,
    /// Wrappers removed while reading (`'state_dict'`, `'module.' prefix`).
    pub unwrapped: Vec<String>,
    /// What the file held that is not part of the network, with reasons.
    pub skipped: Vec<String>,
    /// The preprocessing preset recorded under [`PRESET_KEY`], if any.
    pub preset: Option<String>,
}

/// Renames `tensors` to the port's names, detecting the naming scheme.
///
/// ```
/// use vidlrp_c3d::{to_port_names, Origin, TensorMap};
/// use vidlrp_core::HostTensor;
/// let mut t = TensorMap::new();
/// t.insert("fc8-1.bias".into(), HostTensor::zeros(vec![4]));
/// t.insert("conv1a.weight".into(), HostTensor::zeros(vec![2, 3, 3, 3, 3]));
/// let (port, origin) = to_port_names(t);
/// assert_eq!(origin, Origin::Caffe);
/// assert!(port.contains_key("fc8.bias") && port.contains_key("conv1.weight"));
/// ```
///
/// Names that belong to no known layer are kept as they are, so that
/// [`C3dSpec::from_weights`](crate::C3dSpec::from_weights) names them.
pub fn to_port_names(tensors: TensorMap) -> (TensorMap, Origin) {
    let origin = if tensors.keys().any(|k| k.starts_with("backbone.")) {
        Origin::MmAction2
    } else if tensors.keys().any(|k| k.starts_with("conv1a.")) {
        Origin::Caffe
    } else {
        Origin::Port
    };
    let rename = |name: &str| -> Option<String> {
        let (layer, kind) = name.rsplit_once('.')?;
        if kind != "weight" && kind != "bias" {
            return None;
        }
        let port = match origin {
            Origin::Port => return None,
            Origin::MmAction2 => {
                if let Some(conv) = layer
                    .strip_prefix("backbone.")
                    .and_then(|l| l.strip_suffix(".conv"))
                {
                    CAFFE_CONV_NAMES
                        .iter()
                        .position(|c| *c == conv)
                        .map(|i| CONV_NAMES[i])?
                } else {
                    match layer {
                        "backbone.fc6" => "fc6",
                        "backbone.fc7" => "fc7",
                        "cls_head.fc_cls" => "fc8",
                        _ => return None,
                    }
                }
            }
            Origin::Caffe => {
                if let Some(i) = CAFFE_CONV_NAMES.iter().position(|c| *c == layer) {
                    CONV_NAMES[i]
                } else {
                    let fc = layer.strip_suffix("-1").unwrap_or(layer);
                    *FC_NAMES.iter().find(|f| **f == fc)?
                }
            }
        };
        Some(format!("{port}.{kind}"))
    };
    let renamed = tensors
        .into_iter()
        .map(|(k, v)| (rename(&k).unwrap_or(k), v))
        .collect();
    (renamed, origin)
}

/// Reads C3D weights from any supported file: safetensors, `.npz`, PyTorch zip or legacy
/// checkpoints, Caffe models. The origin comes from the format (Caffe), the safetensors
/// metadata ([`ORIGIN_KEY`]) or the names.
///
/// **Errors** as [`vidlrp_checkpoint::read`] does, and on a recorded origin that is unknown.
/// Whether the tensors form a C3D is checked by [`build`](crate::build) and
/// [`C3dSpec::from_weights`](crate::C3dSpec::from_weights).
pub fn load_weights(path: &Path) -> Result<C3dWeights> {
    from_checkpoint(vidlrp_checkpoint::read(path)?, path)
}

/// [`load_weights`] of a checkpoint already read from `path` (named in errors).
///
/// **Errors** on a recorded origin that is unknown.
pub fn from_checkpoint(ck: vidlrp_checkpoint::Checkpoint, path: &Path) -> Result<C3dWeights> {
    let (tensors, detected) = to_port_names(ck.tensors);
    let origin = match ck.metadata.get(ORIGIN_KEY) {
        Some(o) => o
            .parse()
            .map_err(|e| C3dError::Weights(format!("{}: {ORIGIN_KEY}: {e}", path.display())))?,
        None if ck.format.is_caffe() => Origin::Caffe,
        None => detected,
    };
    Ok(C3dWeights {
        tensors,
        origin,
        format: ck.format,
        unwrapped: ck.unwrapped,
        skipped: ck.skipped,
        preset: ck.metadata.get(PRESET_KEY).cloned(),
    })
}

/// Writes C3D weights as safetensors with the port's names, recording the origin and the
/// source format in the header metadata.
///
/// **Errors** if the file cannot be written.
pub fn save_weights(path: &Path, w: &C3dWeights) -> Result<()> {
    let mut meta = Metadata::new();
    meta.insert(ORIGIN_KEY.into(), w.origin.to_string());
    meta.insert(SOURCE_FORMAT_KEY.into(), w.format.to_string());
    if let Some(p) = &w.preset {
        meta.insert(PRESET_KEY.into(), p.clone());
    }
    vidlrp_io::write_safetensors_with_metadata(path, &w.tensors, &meta)?;
    Ok(())
}
