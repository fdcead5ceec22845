//! A model description: the layers of a network as data, independent of any backend.
//!
//! One description serves every consumer of a topology: [`Sequential::from_description`]
//! builds the inference network on a backend, a trainer runs the same list with its own
//! backward pass. A model family (C3D) writes its topology once, as a description.

use crate::{
    Backend, Conv3d, Error, ErrorKind, Flatten, HostTensor, Linear, MaxPool3d, Pool3dGeometry,
    Relu, Result, Sequential,
};

/// One layer of a model description. Parameters are named after the layer:
/// `{name}.weight` and, where present, `{name}.bias`; a convolution's kernel size is its
/// weight's shape `[C_out, C_in, kT, kH, kW]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSpec {
    /// 3-d convolution `z = conv3d(x, w) + b`.
    Conv3d {
        /// Layer name (and parameter prefix).
        name: String,
        /// Stride `(T, H, W)`.
        stride: [usize; 3],
        /// Zero padding `(T, H, W)`.
        padding: [usize; 3],
    },
    /// Dense layer `z = x W^T + b`.
    Linear {
        /// Layer name (and parameter prefix).
        name: String,
    },
    /// 3-d max pooling.
    MaxPool3d {
        /// Layer name.
        name: String,
        /// The pooling window.
        geometry: Pool3dGeometry,
    },
    /// Rectified linear unit.
    Relu {
        /// Layer name.
        name: String,
    },
    /// Reshape `[N, ...] -> [N, D]`.
    Flatten {
        /// Layer name.
        name: String,
    },
}

impl LayerSpec {
    /// The layer's name.
    pub fn name(&self) -> &str {
        match self {
            LayerSpec::Conv3d { name, .. }
            | LayerSpec::Linear { name }
            | LayerSpec::MaxPool3d { name, .. }
            | LayerSpec::Relu { name }
            | LayerSpec::Flatten { name } => name,
        }
    }

    /// Whether the layer has parameters (`{name}.weight`, `{name}.bias`).
    pub fn is_affine(&self) -> bool {
        matches!(self, LayerSpec::Conv3d { .. } | LayerSpec::Linear { .. })
    }
}

/// Takes `{name}.weight` and `{name}.bias` (if present) out of `weights`.
fn take_params(
    weights: &mut std::collections::BTreeMap<String, HostTensor>,
    name: &str,
) -> Result<(HostTensor, Option<HostTensor>)> {
    let w = weights.remove(&format!("{name}.weight")).ok_or_else(|| {
        Error::new(
            ErrorKind::Argument,
            format!("no {name}.weight for layer {name}"),
        )
    })?;
    Ok((w, weights.remove(&format!("{name}.bias"))))
}

impl<B: Backend> Sequential<B> {
    /// The network of `layers` on `be`, its parameters taken (by value, no second copy) from
    /// `weights`.
    ///
    /// **Errors** on a missing weight, a parameter not used by any layer, or a misshapen or
    /// non-finite one.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use vidlrp_core::{HostTensor, LayerSpec, Sequential};
    /// # use vidlrp_reference::Reference;
    /// let layers = vec![
    ///     LayerSpec::Flatten { name: "flatten".into() },
    ///     LayerSpec::Linear { name: "fc".into() },
    ///     LayerSpec::Relu { name: "relu".into() },
    /// ];
    /// let mut w = BTreeMap::new();
    /// w.insert("fc.weight".to_string(), HostTensor::new(vec![2, 3], vec![1.0; 6]).unwrap());
    /// let net = Sequential::from_description(&Reference::<f32>::new(), &layers, w).unwrap();
    /// assert_eq!(net.layers().len(), 3);
    /// ```
    pub fn from_description(
        be: &B,
        layers: &[LayerSpec],
        mut weights: std::collections::BTreeMap<String, HostTensor>,
    ) -> Result<Self> {
        let mut net = Sequential::new(Vec::new());
        for spec in layers {
            match spec {
                LayerSpec::Conv3d {
                    name,
                    stride,
                    padding,
                } => {
                    let (w, b) = take_params(&mut weights, name)?;
                    net.push(Conv3d::from_host(be, name, w, b, *stride, *padding)?);
                }
                LayerSpec::Linear { name } => {
                    let (w, b) = take_params(&mut weights, name)?;
                    net.push(Linear::from_host(be, name, w, b)?);
                }
                LayerSpec::MaxPool3d { name, geometry } => {
                    net.push(MaxPool3d::new(name, *geometry));
                }
                LayerSpec::Relu { name } => net.push(Relu::new(name)),
                LayerSpec::Flatten { name } => net.push(Flatten::new(name)),
            }
        }
        if let Some(k) = weights.keys().next() {
            return Err(Error::new(
                ErrorKind::Argument,
                format!("{k} belongs to no layer of the model description"),
            ));
        }
        Ok(net)
    }
}
