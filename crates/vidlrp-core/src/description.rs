//! A model description: the layers of a network as data, independent of any backend.
//!
//! One description serves every consumer of a topology: [`Sequential::from_description`]
//! builds the inference network on a backend, a trainer runs the same list with its own
//! backward pass. A model family (C3D) writes its topology once, as a description.

use crate::{
    AvgPool3d, AvgWindows, Backend, BatchNorm, Conv3d, Error, ErrorKind, Flatten, HostTensor,
    Linear, MaxPool3d, Pool3dGeometry, Relu, Residual, Result, Sequential,
};

/// The weights of a description, by parameter name.
type Weights = std::collections::BTreeMap<String, HostTensor>;

/// One layer of a model description. Parameters are named after the layer:
/// `{name}.weight` and, where present, `{name}.bias`; a convolution's kernel size is its
/// weight's shape `[C_out, C_in, kT, kH, kW]`.
#[derive(Debug, Clone, PartialEq)]
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
    /// Batch normalisation in inference form, `y = (x - mean) / sqrt(var + eps) gamma + beta`,
    /// with parameters `{name}.weight` (gamma), `{name}.bias` (beta), `{name}.running_mean`,
    /// `{name}.running_var` (and PyTorch's `{name}.num_batches_tracked`, unused). It must
    /// follow a convolution or dense layer, into which it is folded when the network is
    /// built ([`BatchNorm::fold`]): the built network has no batch normalisation layer.
    BatchNorm {
        /// Layer name (and parameter prefix).
        name: String,
        /// Added to the variance (PyTorch: 1e-5).
        eps: f32,
    },
    /// 3-d average pooling.
    AvgPool3d {
        /// Layer name.
        name: String,
        /// Fixed or adaptive windows.
        windows: AvgWindows,
    },
    /// A residual block `main(x) + shortcut(x)` (an empty shortcut is the identity).
    Residual {
        /// The block's name (its sum's, in reports).
        name: String,
        /// The main branch.
        main: Vec<LayerSpec>,
        /// The shortcut branch.
        shortcut: Vec<LayerSpec>,
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
            | LayerSpec::Flatten { name }
            | LayerSpec::BatchNorm { name, .. }
            | LayerSpec::AvgPool3d { name, .. }
            | LayerSpec::Residual { name, .. } => name,
        }
    }

    /// Whether the layer has parameters (`{name}.weight`, `{name}.bias`).
    pub fn is_affine(&self) -> bool {
        matches!(self, LayerSpec::Conv3d { .. } | LayerSpec::Linear { .. })
    }

    /// The names of the parameters this layer (with the layers of its branches) reads.
    pub fn parameter_names(&self) -> Vec<String> {
        match self {
            LayerSpec::Conv3d { name, .. } | LayerSpec::Linear { name } => {
                vec![format!("{name}.weight"), format!("{name}.bias")]
            }
            LayerSpec::BatchNorm { name, .. } => [
                "weight",
                "bias",
                "running_mean",
                "running_var",
                "num_batches_tracked",
            ]
            .iter()
            .map(|p| format!("{name}.{p}"))
            .collect(),
            LayerSpec::Residual { main, shortcut, .. } => main
                .iter()
                .chain(shortcut)
                .flat_map(LayerSpec::parameter_names)
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Takes `{name}.weight` and `{name}.bias` (if present) out of `weights`.
fn take_params(weights: &mut Weights, name: &str) -> Result<(HostTensor, Option<HostTensor>)> {
    let w = take(weights, name, "weight")?;
    Ok((w, weights.remove(&format!("{name}.bias"))))
}

/// Takes `{name}.{param}` out of `weights`; **Errors** if it is not there.
fn take(weights: &mut Weights, name: &str, param: &str) -> Result<HostTensor> {
    weights.remove(&format!("{name}.{param}")).ok_or_else(|| {
        Error::new(
            ErrorKind::Argument,
            format!("no {name}.{param} for layer {name}"),
        )
    })
}

/// Takes the batch normalisation `name` out of `weights`.
fn take_batch_norm(weights: &mut Weights, name: &str, eps: f32) -> Result<BatchNorm> {
    let mut vector = |param: &str| -> Result<Vec<f32>> {
        let t = take(weights, name, param)?;
        if t.shape().len() != 1 {
            return Err(Error::shape(format!(
                "{name}.{param} has shape {:?}, expected one value per channel",
                t.shape()
            )));
        }
        Ok(t.into_parts().1)
    };
    let gamma = vector("weight")?;
    let beta = vector("bias")?;
    let mean = vector("running_mean")?;
    let var = vector("running_var")?;
    weights.remove(&format!("{name}.num_batches_tracked"));
    BatchNorm::new(gamma, beta, mean, var, eps)
        .map_err(|e| Error::new(e.kind(), format!("layer {name}: {e}")))
}

/// An affine layer's parameters, kept on the host until the next spec is seen (a batch
/// normalisation after it is folded in first).
enum Pending {
    Conv {
        name: String,
        w: HostTensor,
        b: Option<HostTensor>,
        stride: [usize; 3],
        padding: [usize; 3],
    },
    Linear {
        name: String,
        w: HostTensor,
        b: Option<HostTensor>,
    },
}

impl Pending {
    fn fold(&mut self, bn: &BatchNorm, bn_name: &str) -> Result<()> {
        let (name, w, b) = match self {
            Pending::Conv { name, w, b, .. } | Pending::Linear { name, w, b } => (name, w, b),
        };
        let (w2, b2) = bn
            .fold(w, b.as_ref())
            .map_err(|e| Error::new(e.kind(), format!("folding {bn_name} into {name}: {e}")))?;
        *w = w2;
        *b = Some(b2);
        Ok(())
    }

    fn build<B: Backend>(self, be: &B, net: &mut Sequential<B>) -> Result<()> {
        match self {
            Pending::Conv {
                name,
                w,
                b,
                stride,
                padding,
            } => net.push(Conv3d::from_host(be, &name, w, b, stride, padding)?),
            Pending::Linear { name, w, b } => net.push(Linear::from_host(be, &name, w, b)?),
        }
        Ok(())
    }
}

/// The network of `layers`, its parameters taken out of `weights`.
fn build_list<B: Backend>(
    be: &B,
    layers: &[LayerSpec],
    weights: &mut Weights,
) -> Result<Sequential<B>> {
    let mut net = Sequential::new(Vec::new());
    let mut pending: Option<Pending> = None;
    for spec in layers {
        if let LayerSpec::BatchNorm { name, eps } = spec {
            let bn = take_batch_norm(weights, name, *eps)?;
            match pending.as_mut() {
                Some(p) => p.fold(&bn, name)?,
                None => {
                    return Err(Error::new(
                        ErrorKind::Argument,
                        format!(
                            "batch normalisation {name} does not follow a convolution or dense \
                             layer, so it cannot be folded"
                        ),
                    ))
                }
            }
            continue;
        }
        if let Some(p) = pending.take() {
            p.build(be, &mut net)?;
        }
        match spec {
            LayerSpec::Conv3d {
                name,
                stride,
                padding,
            } => {
                let (w, b) = take_params(weights, name)?;
                pending = Some(Pending::Conv {
                    name: name.clone(),
                    w,
                    b,
                    stride: *stride,
                    padding: *padding,
                });
            }
            LayerSpec::Linear { name } => {
                let (w, b) = take_params(weights, name)?;
                pending = Some(Pending::Linear {
                    name: name.clone(),
                    w,
                    b,
                });
            }
            LayerSpec::MaxPool3d { name, geometry } => {
                net.push(MaxPool3d::new(name, *geometry));
            }
            LayerSpec::AvgPool3d { name, windows } => net.push(match windows {
                AvgWindows::Fixed(g) => AvgPool3d::new(name, *g)?,
                AvgWindows::Adaptive(out) => AvgPool3d::adaptive(name, *out),
            }),
            LayerSpec::Relu { name } => net.push(Relu::new(name)),
            LayerSpec::Flatten { name } => net.push(Flatten::new(name)),
            LayerSpec::Residual {
                name,
                main,
                shortcut,
            } => {
                let main = build_list(be, main, weights)?;
                let shortcut = build_list(be, shortcut, weights)?;
                net.push_residual(Residual::new(name, main, shortcut));
            }
            LayerSpec::BatchNorm { .. } => unreachable!("handled above"),
        }
    }
    if let Some(p) = pending.take() {
        p.build(be, &mut net)?;
    }
    Ok(net)
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
    /// assert_eq!(net.leaves().len(), 3);
    /// ```
    pub fn from_description(
        be: &B,
        layers: &[LayerSpec],
        mut weights: std::collections::BTreeMap<String, HostTensor>,
    ) -> Result<Self> {
        let net = build_list(be, layers, &mut weights)?;
        if let Some(k) = weights.keys().next() {
            return Err(Error::new(
                ErrorKind::Argument,
                format!("{k} belongs to no layer of the model description"),
            ));
        }
        Ok(net)
    }
}
