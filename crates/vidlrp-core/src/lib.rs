//! vidlrp-core: the tensor-agnostic LRP engine.
//!
//! - [`Backend`]: the tensor ops every layer and rule is written against;
//! - [`Layer`]: `forward` and `relevance` of one layer ([`Conv3d`], [`MaxPool3d`], [`Relu`],
//!   [`Flatten`], [`Linear`]);
//! - [`rules`]: the LRP rules (z+, z^B, epsilon, w^2, flat, alpha-beta, gamma, pooling), each
//!   written once;
//! - [`Composite`]: which rule each layer gets (presets `dtd`, `sa`, `epsilon-plus`, ...);
//! - [`Sequential`]: runs a network and returns an [`Explanation`] with per-layer relevance sums.
//!
//! This crate knows nothing about ndarray, CUDA, files or C3D.

pub mod backend;
pub mod composite;
mod error;
mod geometry;
mod layer;
mod model;
pub mod operands;
pub mod rules;
mod tensor;

pub use backend::{Backend, BinaryOp, UnaryOp};
pub use composite::{Composite, Finish, Method, PoolRule, PresetOptions, Seed, PRESETS};
pub use error::{Error, ErrorKind, Result};
pub use geometry::{Conv3dGeometry, Pool3dGeometry};
pub use layer::{Conv3d, Flatten, Layer, LayerKind, Linear, MaxPool3d, Relu, Role};
pub use model::{top_k, Explanation, LayerRelevance, Sequential, Target};
pub use rules::{Affine, Rule};
pub use tensor::HostTensor;
