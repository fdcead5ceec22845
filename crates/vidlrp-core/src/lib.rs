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
//! This crate knows nothing about CUDA, files or C3D, and about ndarray only behind its
//! `ndarray` feature (conversions of [`HostTensor`]).
//!
//! # Example
//!
//! A two-layer network explained with deep Taylor decomposition (z^B on the first layer, z+
//! above), on any backend; here the reference backend:
//!
//! ```
//! use vidlrp_core::{Backend, Composite, HostTensor, Linear, Relu, Sequential, Target};
//! use vidlrp_reference::Reference;
//!
//! let be = Reference::<f32>::new();
//! let w1 = HostTensor::new(vec![2, 3], vec![1.0, -0.5, 0.25, 0.5, 1.0, -1.0]).unwrap();
//! let w2 = HostTensor::new(vec![1, 2], vec![1.0, 0.5]).unwrap();
//! let mut net = Sequential::new(Vec::new());
//! net.push(Linear::new(&be, "fc1", &w1, None).unwrap());
//! net.push(Relu::new("relu"));
//! net.push(Linear::new(&be, "fc2", &w2, None).unwrap());
//!
//! let x = be.upload(&HostTensor::new(vec![1, 3], vec![0.5, 0.25, 1.0]).unwrap()).unwrap();
//! let dtd = Composite::dtd(vec![0.0], vec![1.0]); // inputs lie in [0, 1]
//! let e = net.explain(&be, &x, &Target::TopOne, &dtd).unwrap();
//! // Relevance of each input; it sums to the explained logit f_c(x) (conservation).
//! assert_eq!(e.relevance.shape(), &[1, 3]);
//! assert!((e.conservation()[0] - 1.0).abs() < 1e-5);
//! ```

pub mod backend;
mod batch_norm;
pub mod composite;
mod description;
mod error;
mod geometry;
mod layer;
mod model;
pub mod operands;
pub mod rules;
mod tensor;

pub use backend::{Backend, BinaryOp, UnaryOp};
pub use batch_norm::BatchNorm;
pub use composite::{Composite, Finish, Method, PoolRule, PresetOptions, Seed, PRESETS};
pub use description::LayerSpec;
pub use error::{Error, ErrorKind, Result};
pub use geometry::{Conv3dGeometry, Pool3dGeometry};
pub use layer::{
    AvgPool3d, AvgWindows, Conv3d, Flatten, Layer, LayerKind, Linear, MaxPool3d, Relu, Role,
};
pub use model::{top_k, Explanation, LayerRelevance, Node, Residual, Sequential, Target};
pub use rules::{Affine, Rule};
pub use tensor::{checked_len, HostTensor};
