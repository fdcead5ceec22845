//! [`TrainNet`]: a network of a model description with host master parameters, a recording
//! forward pass and the backward pass.

use std::collections::BTreeMap;

use vidlrp_c3d::{C3dSpec, Pool5, TensorMap};
use vidlrp_core::UnaryOp;
use vidlrp_core::{Backend, BinaryOp, Conv3dGeometry, HostTensor, LayerSpec, Pool3dGeometry};
use vidlrp_rng::Rng;

use crate::{Result, TrainError};

/// One step of the network, as trained: a layer of the description, or dropout.
#[derive(Debug, Clone)]
enum Op {
    Conv {
        name: String,
        geometry: Conv3dGeometry,
    },
    Relu,
    Pool(Pool3dGeometry),
    Flatten,
    Linear {
        name: String,
    },
    Dropout(f32),
}

/// What the forward pass keeps for the backward pass: each op's input (a ReLU's output where
/// it ran with the convolution before it: the same gate) and dropout masks.
pub struct Tape<B: Backend> {
    inputs: Vec<B::Tensor>,
    masks: Vec<Option<B::Tensor>>,
}

/// A network being trained: the ops of a model description, host master copies of the
/// parameters (`{layer}.weight`, `{layer}.bias`) and their copies on the backend.
pub struct TrainNet<B: Backend> {
    ops: Vec<Op>,
    params: TensorMap,
    device: BTreeMap<String, B::Tensor>,
}

impl<B: Backend> TrainNet<B> {
    /// The network of `layers` with parameters `weights`, and inverted dropout of probability
    /// `dropout` after every ReLU that follows a dense layer (C3D: after fc6 and fc7; C3D
    /// trains with 0.5, 0 disables it). A convolution's kernel is its weight's shape.
    ///
    /// **Errors** if a layer's weight is missing or of the wrong rank, a parameter belongs to
    /// no layer, or `dropout` is not in `[0, 1)`.
    pub fn new(be: &B, layers: &[LayerSpec], weights: TensorMap, dropout: f32) -> Result<Self> {
        if !(0.0..1.0).contains(&dropout) {
            return Err(TrainError::Invalid(format!(
                "dropout must be in [0, 1), got {dropout}"
            )));
        }
        let weight = |name: &str, rank: usize| -> Result<&HostTensor> {
            weights
                .get(&format!("{name}.weight"))
                .filter(|w| w.shape().len() == rank)
                .ok_or_else(|| {
                    TrainError::Invalid(format!("no {name}.weight of rank {rank} for layer {name}"))
                })
        };
        let mut ops = Vec::with_capacity(layers.len() + 2);
        let mut after_linear = false;
        for spec in layers {
            let op = match spec {
                LayerSpec::Conv3d {
                    name,
                    stride,
                    padding,
                } => {
                    let s = weight(name, 5)?.shape();
                    Op::Conv {
                        name: name.clone(),
                        geometry: Conv3dGeometry {
                            kernel: [s[2], s[3], s[4]],
                            stride: *stride,
                            padding: *padding,
                        },
                    }
                }
                LayerSpec::Linear { name } => {
                    weight(name, 2)?;
                    Op::Linear { name: name.clone() }
                }
                LayerSpec::MaxPool3d { geometry, .. } => Op::Pool(*geometry),
                LayerSpec::Relu { .. } => Op::Relu,
                LayerSpec::Flatten { .. } => Op::Flatten,
                other => {
                    return Err(TrainError::Invalid(format!(
                        "layer {} cannot be trained here: training takes convolutions, dense \
                         layers, max pooling, ReLU and flatten (C3D); batch normalisation, \
                         average pooling and residual blocks are explained, not trained",
                        other.name()
                    )))
                }
            };
            let relu_after_linear = matches!(op, Op::Relu) && after_linear;
            after_linear = matches!(op, Op::Linear { .. });
            ops.push(op);
            if relu_after_linear && dropout > 0.0 {
                ops.push(Op::Dropout(dropout));
            }
        }
        let owners: Vec<&str> = layers
            .iter()
            .filter(|l| l.is_affine())
            .map(LayerSpec::name)
            .collect();
        if let Some(k) = weights.keys().find(|k| {
            !owners.iter().any(|o| {
                k.strip_prefix(o)
                    .is_some_and(|r| r == ".weight" || r == ".bias")
            })
        }) {
            return Err(TrainError::Invalid(format!(
                "{k} belongs to no layer of the model description"
            )));
        }
        let mut device = BTreeMap::new();
        for (k, t) in &weights {
            device.insert(k.clone(), be.upload(t)?);
        }
        Ok(Self {
            ops,
            params: weights,
            device,
        })
    }

    /// The C3D of `weights` (port names, [`vidlrp_c3d::layers`]) for inputs `[C, T, H, W]`,
    /// with dropout `p` after fc6 and fc7.
    ///
    /// **Errors** if the weights are not a C3D fitting `input` under `pool5`, or `p` is not in
    /// `[0, 1)`.
    pub fn c3d(
        be: &B,
        weights: TensorMap,
        pool5: Pool5,
        input: [usize; 4],
        dropout: f32,
    ) -> Result<Self> {
        let spec = C3dSpec::from_weights(&weights)?;
        spec.check_input(input, pool5)?;
        Self::new(be, &vidlrp_c3d::layers(&spec, pool5), weights, dropout)
    }

    /// The parameters (host copies): what `vidlrp_io::write_safetensors` saves.
    pub fn weights(&self) -> &TensorMap {
        &self.params
    }

    /// The parameters, consuming the network.
    pub fn into_weights(self) -> TensorMap {
        self.params
    }

    fn param(&self, name: &str) -> &B::Tensor {
        &self.device[name]
    }

    fn bias(&self, layer: &str) -> Option<&B::Tensor> {
        self.device.get(&format!("{layer}.bias"))
    }

    /// The forward pass: logits `[N, classes]` of `x` `[N, C, T, H, W]`, and the tape for
    /// [`TrainNet::backward`]. Dropout is active when `dropout_seed` is given (training),
    /// off otherwise (evaluation).
    ///
    /// **Errors** on shapes that do not fit and backend failures.
    pub fn forward_train(
        &self,
        be: &B,
        x: &HostTensor,
        dropout_seed: Option<u64>,
    ) -> Result<(HostTensor, Tape<B>)> {
        be.within(|| self.forward_within(be, x, dropout_seed))
    }

    /// [`TrainNet::forward_train`] on the backend's workers.
    fn forward_within(
        &self,
        be: &B,
        x: &HostTensor,
        dropout_seed: Option<u64>,
    ) -> Result<(HostTensor, Tape<B>)> {
        let mut rng = dropout_seed.map(Rng::new);
        let mut h = be.upload(x)?;
        let mut tape = Tape {
            inputs: Vec::with_capacity(self.ops.len()),
            masks: Vec::with_capacity(self.ops.len()),
        };
        // A convolution with a ReLU after it runs as one op (`conv3d_relu`); the ReLU's tape
        // then holds its output instead of its input, the same gate for the backward pass
        // (`max(x, 0) > 0` exactly where `x > 0`), and the unrectified output is never made.
        let mut rectified = false;
        for (i, op) in self.ops.iter().enumerate() {
            let mut mask = None;
            let out = match op {
                Op::Conv { name, geometry } => {
                    let (w, b) = (self.param(&format!("{name}.weight")), self.bias(name));
                    if matches!(self.ops.get(i + 1), Some(Op::Relu)) {
                        rectified = true;
                        be.conv3d_relu(&h, w, b, geometry)?
                    } else {
                        be.conv3d(&h, w, b, geometry)?
                    }
                }
                Op::Relu if std::mem::take(&mut rectified) => h.clone(),
                Op::Relu => be.unary(&h, UnaryOp::Positive)?,
                Op::Pool(g) => be.max_pool3d(&h, g)?,
                Op::Flatten => {
                    let s = be.shape(&h);
                    be.reshape(&h, &[s[0], s[1..].iter().product()])?
                }
                Op::Linear { name } => {
                    be.linear(&h, self.param(&format!("{name}.weight")), self.bias(name))?
                }
                Op::Dropout(p) => match rng.as_mut() {
                    None => h.clone(),
                    Some(rng) => {
                        let m = be.upload(&dropout_mask(be.shape(&h), *p, rng)?)?;
                        let out = be.binary(&h, &m, BinaryOp::Mul)?;
                        mask = Some(m);
                        out
                    }
                },
            };
            tape.inputs.push(std::mem::replace(&mut h, out));
            tape.masks.push(mask);
        }
        Ok((be.download(&h)?, tape))
    }

    /// The evaluation forward pass (no dropout): logits `[N, classes]`.
    ///
    /// **Errors** on shapes that do not fit and backend failures.
    pub fn forward(&self, be: &B, x: &HostTensor) -> Result<HostTensor> {
        Ok(self.forward_train(be, x, None)?.0)
    }

    /// The backward pass from `dlogits` (the loss gradient at the logits): the gradient of
    /// every parameter, by name.
    ///
    /// **Errors** on a gradient of the wrong shape and backend failures.
    pub fn backward(&self, be: &B, tape: Tape<B>, dlogits: &HostTensor) -> Result<TensorMap> {
        be.within(|| self.backward_within(be, tape, dlogits))
    }

    /// [`TrainNet::backward`] on the backend's workers.
    fn backward_within(&self, be: &B, tape: Tape<B>, dlogits: &HostTensor) -> Result<TensorMap> {
        let mut g = be.upload(dlogits)?;
        let mut grads = TensorMap::new();
        for (i, op) in self.ops.iter().enumerate().rev() {
            let x = &tape.inputs[i];
            let need_input = i > 0;
            match op {
                Op::Conv { name, geometry } => {
                    let w = self.param(&format!("{name}.weight"));
                    let ws = be.shape(w);
                    let dw = be.conv3d_weight_gradient(x, &g, geometry, &ws)?;
                    grads.insert(format!("{name}.weight"), be.download(&dw)?);
                    if self.bias(name).is_some() {
                        grads.insert(format!("{name}.bias"), be.download(&be.sum_channels(&g)?)?);
                    }
                    if need_input {
                        g = be.conv3d_transposed(&g, w, geometry, &be.shape(x))?;
                    }
                }
                Op::Linear { name } => {
                    let w = self.param(&format!("{name}.weight"));
                    let dw = be.linear_weight_gradient(x, &g)?;
                    grads.insert(format!("{name}.weight"), be.download(&dw)?);
                    if self.bias(name).is_some() {
                        grads.insert(format!("{name}.bias"), be.download(&be.sum_channels(&g)?)?);
                    }
                    if need_input {
                        g = be.linear_transposed(&g, w)?;
                    }
                }
                Op::Relu => g = be.binary_owned(g, x, BinaryOp::GatePositive)?,
                Op::Pool(geometry) => g = be.max_pool3d_transposed(x, &g, geometry)?,
                Op::Flatten => g = be.reshape(&g, &be.shape(x))?,
                Op::Dropout(_) => {
                    if let Some(m) = &tape.masks[i] {
                        g = be.binary(&g, m, BinaryOp::Mul)?;
                    }
                }
            }
        }
        Ok(grads)
    }

    /// One optimiser step: every parameter updated from its gradient on the host, then
    /// uploaded.
    ///
    /// **Errors** if a parameter has no gradient of its shape, or on backend failures.
    pub fn apply(
        &mut self,
        be: &B,
        opt: &mut dyn crate::Optimizer,
        grads: &TensorMap,
    ) -> Result<()> {
        opt.begin_step();
        for (name, p) in &mut self.params {
            let g = grads
                .get(name)
                .filter(|g| g.shape() == p.shape())
                .ok_or_else(|| {
                    TrainError::Invalid(format!("no gradient of shape {:?} for {name}", p.shape()))
                })?;
            opt.update(name, p.data_mut(), g.data());
            self.device.insert(name.clone(), be.upload(p)?);
        }
        Ok(())
    }
}

/// The inverted-dropout mask of a tensor of `shape`: `1 / (1 - p)` where a uniform draw is at
/// least `p`, 0 elsewhere (so kept values are rescaled and the expectation is unchanged).
fn dropout_mask(shape: Vec<usize>, p: f32, rng: &mut Rng) -> Result<HostTensor> {
    let n = shape.iter().product();
    let scale = 1.0 / (1.0 - p);
    let m: Vec<f32> = (0..n)
        .map(|_| {
            if rng.uniform() >= f64::from(p) {
                scale
            } else {
                0.0
            }
        })
        .collect();
    Ok(HostTensor::new(shape, m)?)
}
