//! vidlrp-snippet: from video files, image directories or arrays to preprocessed C3D snippets.
//!
//! - [`source`]: frame sources ([`open`]): video files through video-rs/FFmpeg (cargo feature
//!   `video`, on by default), directories of PNG/JPEG frames in name order, `.npy` arrays
//!   `(T, H, W, 3)`; each reports frame count, frame rate and size, and decodes only the frames
//!   asked for;
//! - [`sampling`]: snippet frame indices `offset + i * step` and the policy for videos that
//!   are too short;
//! - [`preset`]: the `caffe` and `port` presets ([`Preprocess`]: resize, crop, channel order,
//!   mean, and the z^B bounds they imply);
//! - [`preprocess`](mod@preprocess): the presets applied to frames;
//! - [`encode`]: frames to H.264 `.mp4` ([`write_video`], feature `video`), the same bytes on
//!   every run and CPU, through our own RGB to YUV 4:2:0 conversion ([`rgb_to_yuv420`]).

pub mod encode;
pub mod preprocess;
pub mod preset;
pub mod sampling;
pub mod source;

#[cfg(feature = "video")]
pub use encode::write_video;
pub use encode::{rgb_to_yuv420, Yuv420};
pub use preprocess::{preprocess, resize_bilinear};
pub use preset::{ChannelOrder, Preprocess, UnknownPreset};
pub use sampling::{ShortPolicy, SnippetSpec};
pub use source::{
    max_frame_pixels, open, FrameSource, Prefetched, RgbFrame, SourceInfo, DEFAULT_MAX_FRAME_PIXELS,
};

use std::path::PathBuf;

use vidlrp_core::HostTensor;

/// Errors of reading frames and sampling snippets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnippetError {
    /// The source could not be opened or read (missing, unreadable).
    #[error("{path}: {message}")]
    Open {
        /// The source.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The source is damaged or not what it claims to be (corrupt video, non-image file, mixed
    /// frame sizes, unsupported codec, no frames).
    #[error("{path}: {message}")]
    Invalid {
        /// The source.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The video is too short for the snippet under the `skip` policy.
    #[error("{path}: too short for this snippet: needs frame {needed} but has {available} frame(s) (offset {offset}, step {step}, length {length}); the clamp policy repeats the last frame instead")]
    TooShort {
        /// The source.
        path: PathBuf,
        /// The last frame index the snippet needs.
        needed: usize,
        /// Frames in the source.
        available: usize,
        /// Snippet offset.
        offset: usize,
        /// Snippet step.
        step: usize,
        /// Snippet length.
        length: usize,
    },
    /// An invalid argument (zero length, unknown preset, ...).
    #[error("{0}")]
    Argument(String),
}

/// Result alias of this crate.
pub type Result<T, E = SnippetError> = std::result::Result<T, E>;

/// A snippet ready for the network.
#[derive(Debug, Clone)]
pub struct Snippet {
    /// Preprocessed input `[3, L, H, W]`.
    pub input: HostTensor,
    /// The source frame index of every snippet frame.
    pub frame_indices: Vec<usize>,
    /// The decoded frames, before preprocessing (for pictures).
    pub frames: Vec<RgbFrame>,
    /// What the source is.
    pub info: SourceInfo,
}

impl Snippet {
    /// The preprocessed input as a batch of one, `[1, 3, L, H, W]`: what a network takes.
    pub fn batched_input(&self) -> HostTensor {
        with_batch_axis(self.input.clone())
    }

    /// [`Snippet::batched_input`], consuming the snippet (no copy of the input).
    pub fn into_batched_input(self) -> HostTensor {
        with_batch_axis(self.input)
    }
}

/// `t` with a leading axis of length 1.
fn with_batch_axis(t: HostTensor) -> HostTensor {
    let shape = [&[1], t.shape()].concat();
    t.reshape(shape)
        .expect("a leading axis of 1 keeps the number of elements")
}

/// Opens the video, image folder or `.npy` at `path` ([`open`]) and reads one snippet of it
/// ([`load_snippet`]); [`Snippet::into_batched_input`] makes it a network's input.
///
/// **Errors** if the file cannot be opened or decoded, or as [`load_snippet`].
pub fn read_snippet(
    path: &std::path::Path,
    spec: &SnippetSpec,
    policy: ShortPolicy,
    preset: &Preprocess,
) -> Result<Snippet> {
    load_snippet(open(path)?.as_mut(), spec, policy, preset)
}

/// Reads the frames of one snippet from `source` and preprocesses them.
///
/// **Errors** if the source is too short under [`ShortPolicy::Skip`], or reading fails.
pub fn load_snippet(
    source: &mut dyn FrameSource,
    spec: &SnippetSpec,
    policy: ShortPolicy,
    preset: &Preprocess,
) -> Result<Snippet> {
    let info = source.info().clone();
    let frame_indices = spec.indices(info.frames, policy).map_err(|e| match e {
        sampling::SampleError::TooShort { needed, available } => SnippetError::TooShort {
            path: info.path.clone(),
            needed,
            available,
            offset: spec.offset,
            step: spec.step,
            length: spec.length,
        },
        sampling::SampleError::Invalid(m) => SnippetError::Argument(m),
    })?;
    let frames = source.read(&frame_indices)?;
    let input = preprocess(&frames, preset).map_err(SnippetError::Argument)?;
    Ok(Snippet {
        input,
        frame_indices,
        frames,
        info,
    })
}
