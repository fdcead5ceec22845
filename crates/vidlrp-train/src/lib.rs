//! vidlrp-train: training networks of a model description (C3D's from `vidlrp-c3d`) on any
//! [`Backend`](vidlrp_core::Backend): [`fit`] runs the epochs on labelled videos
//! ([`TrainData`]) with a checkpoint after each, from which a run resumes; [`TrainNet`] is
//! the network with its backward pass.
//!
//! The backward pass of a layer with input `x`, output gradient `g` is
//!
//! | layer | parameter gradients | input gradient |
//! |---|---|---|
//! | conv3d | `dW = g ⋆ x` ([`Backend::conv3d_weight_gradient`](vidlrp_core::Backend::conv3d_weight_gradient)), `db_c = sum g[:, c]` | transposed convolution of `g` |
//! | linear | `dW = g^T x`, `db = sum_n g[n]` | `g W` |
//! | ReLU | | `g [x > 0]` |
//! | max pool | | `g` routed to each window's first maximum |
//! | dropout (train) | | `g m / (1 - p)`, the forward mask |
//!
//! and the loss is the mean softmax cross-entropy ([`softmax_cross_entropy`]). Optimisers
//! ([`Sgd`], [`Adam`]) follow `torch.optim`'s update formulas and work on host copies of the
//! parameters, which are uploaded after each step.

mod data;
mod fit;
mod log;
mod loss;
mod net;
mod optim;

pub use data::{LabelledVideo, TrainData};
pub use fit::{
    fit, fold_input_scale, CheckpointAt, EpochRecord, Progress, TestRecord, TrainConfig, Trained,
    INPUT_SCALE,
};
pub use log::{TrainFiles, TrainLog, TRAIN_LOG_FORMAT};
pub use loss::softmax_cross_entropy;
pub use net::{Tape, TrainNet};
pub use optim::{Adam, Optimizer, OptimizerKind, Sgd, StepSchedule};

/// What went wrong in training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A backend op failed or shapes did not fit.
    #[error(transparent)]
    Core(#[from] vidlrp_core::Error),
    /// The weights are not a C3D fitting the input.
    #[error(transparent)]
    Model(#[from] vidlrp_c3d::C3dError),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] vidlrp_io::IoError),
    /// A value is out of range (a label, a dropout probability, ...).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
