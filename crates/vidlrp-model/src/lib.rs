//! A network read from a weight file, whichever family vidlrp supports: C3D
//! ([`vidlrp_c3d`]: the PyTorch port, MMAction2, Caffe, vidlrp's own files) or one of
//! torchvision's video ResNets ([`vidlrp_video_resnet`]: `r3d_18`, `mc3_18`, `r2plus1d_18`,
//! other depths). Every command loads its model through [`load`], so each takes any of them.
//!
//! The family is told from the tensor names (after a checkpoint's `state_dict` / `module.`
//! wrappers are removed): `stem.0.weight` or `layer1.0.conv1.*` make a video ResNet, anything
//! else is read as C3D (whose names are mapped to the port's first). A safetensors file
//! written by [`Model::save`] records the family in its metadata ([`ARCH_KEY`],
//! [`vidlrp_c3d::ORIGIN_KEY`]).
//!
//! | family | origin | preset by default | pool5 | untrained twin |
//! |---|---|---|---|---|
//! | C3D | `pytorch-port`, `mmaction2`, `caffe` | `caffe` | the origin's | [`vidlrp_c3d::init_weights`] |
//! | video ResNet | `torchvision` | `kinetics` | - | [`vidlrp_video_resnet::init_weights`] |
//!
//! A preset recorded in the file ([`vidlrp_c3d::PRESET_KEY`], e.g. by `vidlrp train`) wins
//! over the family's default.
//!
//! ```
//! use vidlrp_model::{Architecture, Model};
//! use vidlrp_video_resnet::{init_weights, VideoResNetSpec};
//! let spec = VideoResNetSpec::r3d_18(400);
//! let model = Model::from_tensors(init_weights(&spec, 1), "r3d_18.pth".as_ref(), None).unwrap();
//! assert_eq!(model.arch(), "r3d_18");
//! assert_eq!(model.preset_name(), "kinetics");
//! assert!(matches!(model.architecture, Architecture::VideoResNet(_)));
//! ```

use std::path::{Path, PathBuf};

use vidlrp_c3d::{C3dSpec, Origin, Pool5, ORIGIN_KEY, PRESET_KEY, SOURCE_FORMAT_KEY};
use vidlrp_checkpoint::{Checkpoint, Format, Metadata};
use vidlrp_core::{Backend, Sequential};
use vidlrp_video_resnet::VideoResNetSpec;

pub use device::Device;
pub use vidlrp_io::TensorMap;

mod device;

/// The safetensors metadata key holding the architecture's name (`c3d`, `r3d_18`, ...).
pub const ARCH_KEY: &str = "vidlrp.arch";
/// The origin recorded for torchvision's video ResNets.
pub const TORCHVISION: &str = "torchvision";

/// What went wrong loading or building a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file could not be read as a checkpoint (or was refused).
    #[error(transparent)]
    Checkpoint(#[from] vidlrp_checkpoint::CheckpointError),
    /// The file could not be read or written.
    #[error(transparent)]
    Io(#[from] vidlrp_io::IoError),
    /// The tensors are not a valid C3D.
    #[error(transparent)]
    C3d(#[from] vidlrp_c3d::C3dError),
    /// The tensors are not a valid video ResNet, or the input does not fit.
    #[error("{path}: {cause}")]
    Network {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        cause: vidlrp_core::Error,
    },
    /// The tensors belong to no supported family.
    #[error(
        "{path}: not a network vidlrp knows: no C3D names (conv1.weight .. fc8.bias, or \
         Caffe's / MMAction2's) and no video ResNet names (stem.0.weight, \
         layer1.0.conv1.0.weight, fc.weight); the file holds {names}"
    )]
    Unknown {
        /// The file.
        path: PathBuf,
        /// The first few tensor names.
        names: String,
    },
    /// A choice that does not apply to this model.
    #[error("{0}")]
    Argument(String),
}

/// Result alias of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// The architecture of a loaded model.
#[derive(Debug, Clone, PartialEq)]
pub enum Architecture {
    /// C3D at the widths its weights have.
    C3d {
        /// Widths and classes.
        spec: C3dSpec,
        /// Where the weights come from (decides the default pool5).
        origin: Origin,
        /// The pool5 variant the network is built with.
        pool5: Pool5,
        /// Why that pool5: `"given"` or `"origin"`.
        pool5_from: &'static str,
    },
    /// One of torchvision's video ResNets.
    VideoResNet(VideoResNetSpec),
}

/// A network's weights, its architecture and what the file said about them.
#[derive(Debug, Clone)]
pub struct Model {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// The architecture read from the names and shapes.
    pub architecture: Architecture,
    /// The tensors (C3D under the port's names; ResNets under torchvision's).
    pub tensors: TensorMap,
    /// Wrappers removed while reading (`state_dict`, `module.` prefix).
    pub unwrapped: Vec<String>,
    /// What the file held that is not part of the network, with reasons.
    pub skipped: Vec<String>,
    /// The preprocessing preset recorded in the file ([`PRESET_KEY`]), if any.
    pub recorded_preset: Option<String>,
}

/// Reads a model from any weight file vidlrp reads (safetensors, `.npz`, PyTorch zip or legacy
/// checkpoints, Caffe models), with C3D's pool5 variant `pool5` if given (else the origin's).
///
/// **Errors** if the file cannot be read, its tensors are no supported network or a
/// misshapen one, or `pool5` is given for a video ResNet.
pub fn load(path: &Path, pool5: Option<Pool5>) -> Result<Model> {
    let ck = vidlrp_checkpoint::read(path)?;
    from_checkpoint(ck, path, pool5)
}

/// Whether tensor names are those of a torchvision video ResNet.
pub fn is_video_resnet<'a>(mut names: impl Iterator<Item = &'a String>) -> bool {
    names.any(|k| {
        let k = k.strip_prefix("module.").unwrap_or(k);
        k == "stem.0.weight" || k.starts_with("layer1.0.conv1.")
    })
}

/// [`load`] of a checkpoint already read from `path` (named in errors).
///
/// **Errors** as [`load`].
pub fn from_checkpoint(ck: Checkpoint, path: &Path, pool5: Option<Pool5>) -> Result<Model> {
    let recorded_preset = ck.metadata.get(PRESET_KEY).cloned();
    let torchvision = ck.metadata.get(ORIGIN_KEY).map(String::as_str) == Some(TORCHVISION);
    if torchvision || is_video_resnet(ck.tensors.keys()) {
        let mut m = Model::from_tensors(ck.tensors, path, pool5)?;
        m.format = ck.format;
        m.unwrapped = ck.unwrapped;
        m.skipped = ck.skipped;
        m.recorded_preset = recorded_preset;
        return Ok(m);
    }
    let format = ck.format;
    let w = vidlrp_c3d::from_checkpoint(ck, path)?;
    if !w.tensors.contains_key("conv1.weight") {
        let mut names: Vec<&str> = w.tensors.keys().map(String::as_str).take(6).collect();
        if w.tensors.len() > names.len() {
            names.push("...");
        }
        return Err(ModelError::Unknown {
            path: path.to_path_buf(),
            names: if names.is_empty() {
                "no float tensors".into()
            } else {
                names.join(", ")
            },
        });
    }
    let spec = C3dSpec::from_weights(&w.tensors)?;
    let (pool5, pool5_from) = match pool5 {
        Some(p) => (p, "given"),
        None => (w.origin.pool5(), "origin"),
    };
    Ok(Model {
        path: path.to_path_buf(),
        format,
        architecture: Architecture::C3d {
            spec,
            origin: w.origin,
            pool5,
            pool5_from,
        },
        tensors: w.tensors,
        unwrapped: w.unwrapped,
        skipped: w.skipped,
        recorded_preset: w.preset,
    })
}

/// The preset name a model's file implies without a preset given: the one recorded in its
/// metadata, else its family's default. Reads only a safetensors header where that tells
/// (files from `vidlrp train` or [`Model::save`]); other files are read whole.
///
/// **Errors** as [`load`].
pub fn preset_of(path: &Path) -> Result<String> {
    if let Some(meta) = vidlrp_io::read_safetensors_metadata(path)? {
        if let Some(p) = meta.get(PRESET_KEY) {
            return Ok(p.clone());
        }
        if let Some(origin) = meta.get(ORIGIN_KEY) {
            return Ok(default_preset(origin == TORCHVISION).into());
        }
    }
    Ok(load(path, None)?.preset_name())
}

/// `kinetics` for video ResNets, `caffe` for C3D.
fn default_preset(video_resnet: bool) -> &'static str {
    if video_resnet {
        "kinetics"
    } else {
        "caffe"
    }
}

impl Model {
    /// A model from tensors in memory (`path` names it in errors; format: safetensors).
    ///
    /// **Errors** as [`load`].
    pub fn from_tensors(tensors: TensorMap, path: &Path, pool5: Option<Pool5>) -> Result<Self> {
        if !is_video_resnet(tensors.keys()) {
            let ck = Checkpoint {
                format: Format::Safetensors,
                tensors,
                metadata: Metadata::new(),
                unwrapped: Vec::new(),
                skipped: Vec::new(),
            };
            return from_checkpoint(ck, path, pool5);
        }
        if pool5.is_some() {
            return Err(ModelError::Argument(format!(
                "{}: the pool5 variant is a C3D choice; this file holds a video ResNet",
                path.display()
            )));
        }
        let tensors = vidlrp_video_resnet::strip_module_prefix(tensors);
        let spec =
            VideoResNetSpec::from_weights(&tensors).map_err(|cause| ModelError::Network {
                path: path.to_path_buf(),
                cause,
            })?;
        Ok(Model {
            path: path.to_path_buf(),
            format: Format::Safetensors,
            architecture: Architecture::VideoResNet(spec),
            tensors,
            unwrapped: Vec::new(),
            skipped: Vec::new(),
            recorded_preset: None,
        })
    }

    /// `c3d`, or torchvision's name of the video ResNet (`r3d_18`, ...).
    pub fn arch(&self) -> String {
        match &self.architecture {
            Architecture::C3d { .. } => "c3d".into(),
            Architecture::VideoResNet(s) => s.arch(),
        }
    }

    /// `pytorch-port`, `mmaction2`, `caffe` (C3D) or `torchvision`.
    pub fn origin(&self) -> String {
        match &self.architecture {
            Architecture::C3d { origin, .. } => origin.to_string(),
            Architecture::VideoResNet(_) => TORCHVISION.into(),
        }
    }

    /// The number of classes (rows of the last dense layer).
    pub fn classes(&self) -> usize {
        match &self.architecture {
            Architecture::C3d { spec, .. } => spec.classes,
            Architecture::VideoResNet(s) => s.classes,
        }
    }

    /// The number of parameters (a ResNet's batch-norm statistics included, as torchvision
    /// counts them: scale and shift only).
    pub fn num_params(&self) -> usize {
        match &self.architecture {
            Architecture::C3d { spec, .. } => spec.num_params(),
            Architecture::VideoResNet(s) => s.num_params(),
        }
    }

    /// The channel widths: C3D's eight convolutions then fc6, fc7; a ResNet's stem then stages.
    pub fn widths(&self) -> Vec<usize> {
        match &self.architecture {
            Architecture::C3d { spec, .. } => {
                let mut w = spec.conv_widths.to_vec();
                w.extend(spec.fc_widths);
                w
            }
            Architecture::VideoResNet(s) => s.widths(),
        }
    }

    /// C3D's pool5 variant; `None` for a ResNet.
    pub fn pool5(&self) -> Option<Pool5> {
        match &self.architecture {
            Architecture::C3d { pool5, .. } => Some(*pool5),
            Architecture::VideoResNet(_) => None,
        }
    }

    /// The preset a command uses when none is given: the recorded one, else the family's
    /// (`caffe` for C3D, `kinetics` for video ResNets).
    pub fn preset_name(&self) -> String {
        self.recorded_preset.clone().unwrap_or_else(|| {
            default_preset(matches!(self.architecture, Architecture::VideoResNet(_))).into()
        })
    }

    /// **Errors** if an input of shape `[C, T, H, W]` does not fit the network.
    pub fn check_input(&self, input: [usize; 4]) -> Result<()> {
        match &self.architecture {
            Architecture::C3d { spec, pool5, .. } => Ok(spec.check_input(input, *pool5)?),
            Architecture::VideoResNet(s) => s.check_input(input).map_err(|cause| self.err(cause)),
        }
    }

    fn err(&self, cause: vidlrp_core::Error) -> ModelError {
        ModelError::Network {
            path: self.path.clone(),
            cause,
        }
    }

    /// The network on `be` for inputs of shape `[C, T, H, W]` (its tensors copied; see
    /// [`Model::into_network`]).
    ///
    /// **Errors** if the input does not fit or a tensor is not finite.
    pub fn build<B: Backend>(&self, be: &B, input: [usize; 4]) -> Result<Sequential<B>> {
        self.build_with(be, self.tensors.clone(), input)
    }

    /// [`Model::build`] consuming the model (no second copy of the weights).
    ///
    /// **Errors** as [`Model::build`].
    pub fn into_network<B: Backend>(self, be: &B, input: [usize; 4]) -> Result<Sequential<B>> {
        let Model {
            tensors,
            architecture,
            path,
            ..
        } = self;
        build_arch(be, &architecture, tensors, input, &path)
    }

    /// [`Model::build`] moving the tensors into the network: the model keeps its architecture
    /// (for [`Model::build_with`] and [`Model::untrained`]) but no longer its tensors.
    ///
    /// **Errors** as [`Model::build`].
    pub fn take_network<B: Backend>(&mut self, be: &B, input: [usize; 4]) -> Result<Sequential<B>> {
        let tensors = std::mem::take(&mut self.tensors);
        self.build_with(be, tensors, input)
    }

    /// The same architecture with other weights (e.g. [`Model::untrained`]).
    ///
    /// **Errors** as [`Model::build`], and if `weights` do not have this architecture.
    pub fn build_with<B: Backend>(
        &self,
        be: &B,
        weights: TensorMap,
        input: [usize; 4],
    ) -> Result<Sequential<B>> {
        build_arch(be, &self.architecture, weights, input, &self.path)
    }

    /// Freshly initialised weights of this architecture, as the family's own code initialises
    /// them (the untrained baseline, DTD-u), from `seed`.
    pub fn untrained(&self, seed: u64) -> TensorMap {
        match &self.architecture {
            Architecture::C3d { spec, .. } => vidlrp_c3d::init_weights(spec, seed),
            Architecture::VideoResNet(s) => vidlrp_video_resnet::init_weights(s, seed),
        }
    }

    /// Writes the tensors as safetensors, recording the origin, the source format, the
    /// architecture and the recorded preset (if any) in the header's metadata.
    ///
    /// **Errors** if the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut meta = Metadata::new();
        meta.insert(ORIGIN_KEY.into(), self.origin());
        meta.insert(SOURCE_FORMAT_KEY.into(), self.format.to_string());
        meta.insert(ARCH_KEY.into(), self.arch());
        if let Some(p) = &self.recorded_preset {
            meta.insert(PRESET_KEY.into(), p.clone());
        }
        vidlrp_io::write_safetensors_with_metadata(path, &self.tensors, &meta)?;
        Ok(())
    }
}

fn build_arch<B: Backend>(
    be: &B,
    architecture: &Architecture,
    weights: TensorMap,
    input: [usize; 4],
    path: &Path,
) -> Result<Sequential<B>> {
    match architecture {
        Architecture::C3d { pool5, .. } => Ok(vidlrp_c3d::build(be, weights, *pool5, input)?.0),
        Architecture::VideoResNet(_) => vidlrp_video_resnet::build(be, weights, input)
            .map(|(net, _)| net)
            .map_err(|cause| ModelError::Network {
                path: path.to_path_buf(),
                cause,
            }),
    }
}
