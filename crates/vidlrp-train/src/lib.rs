//! vidlrp-train: training C3D-shaped networks on any [`Backend`].
//!
//! The backward pass of a layer with input `x`, output gradient `g` is
//!
//! | layer | parameter gradients | input gradient |
//! |---|---|---|
//! | conv3d | `dW = g ⋆ x` ([`Backend::conv3d_weight_gradient`]), `db_c = sum g[:, c]` | transposed convolution of `g` |
//! | linear | `dW = g^T x`, `db = sum_n g[n]` | `g W` |
//! | ReLU | | `g [x > 0]` |
//! | max pool | | `g` routed to each window's first maximum |
//! | dropout (train) | | `g m / (1 - p)`, the forward mask |
//!
//! and the loss is the mean softmax cross-entropy ([`softmax_cross_entropy`]). Optimisers
//! ([`Sgd`], [`Adam`]) follow `torch.optim`'s update formulas and work on host copies of the
//! parameters, which are uploaded after each step.

mod loss;
mod optim;

pub use loss::softmax_cross_entropy;
pub use optim::{Adam, Optimizer, Sgd, StepSchedule};

use vidlrp_c3d::{C3dSpec, Pool5, Rng, TensorMap, CONV_NAMES, FC_NAMES};
use vidlrp_core::{Backend, BinaryOp, Conv3dGeometry, HostTensor, Pool3dGeometry, UnaryOp};

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
    /// A value is out of range (a label, a dropout probability, ...).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// One step of the network.
#[derive(Debug, Clone)]
enum Op {
    Conv {
        name: &'static str,
        geometry: Conv3dGeometry,
    },
    Relu,
    Pool(Pool3dGeometry),
    Flatten,
    Linear {
        name: &'static str,
    },
    Dropout(f32),
}

/// What the forward pass keeps for the backward pass: each op's input and dropout masks.
pub struct Tape<B: Backend> {
    inputs: Vec<B::Tensor>,
    masks: Vec<Option<B::Tensor>>,
}

/// A C3D-shaped network being trained: its ops, host master copies of the parameters
/// (PyTorch-port names) and their copies on the backend.
pub struct TrainNet<B: Backend> {
    ops: Vec<Op>,
    params: TensorMap,
    device: std::collections::BTreeMap<String, B::Tensor>,
    spec: C3dSpec,
}

impl<B: Backend> TrainNet<B> {
    /// The C3D of `weights` (port names) for inputs `[C, T, H, W]`, with dropout `p` after
    /// fc6 and fc7 (C3D trains with 0.5; 0 disables it).
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
        if !(0.0..1.0).contains(&dropout) {
            return Err(TrainError::Invalid(format!(
                "dropout must be in [0, 1), got {dropout}"
            )));
        }
        let spec = C3dSpec::from_weights(&weights)?;
        spec.check_input(input, pool5)?;
        let mut ops = Vec::new();
        for (i, name) in CONV_NAMES.iter().enumerate() {
            let k = spec.kernels[i];
            ops.push(Op::Conv {
                name,
                geometry: Conv3dGeometry {
                    kernel: k,
                    stride: [1; 3],
                    padding: [k[0] / 2, k[1] / 2, k[2] / 2],
                },
            });
            ops.push(Op::Relu);
            if let Some((_, g)) = vidlrp_c3d::pooling_after(name, pool5) {
                ops.push(Op::Pool(g));
            }
        }
        ops.push(Op::Flatten);
        for name in FC_NAMES {
            ops.push(Op::Linear { name });
            if name != "fc8" {
                ops.push(Op::Relu);
                if dropout > 0.0 {
                    ops.push(Op::Dropout(dropout));
                }
            }
        }
        let mut device = std::collections::BTreeMap::new();
        for (k, t) in &weights {
            device.insert(k.clone(), be.upload(t)?);
        }
        Ok(Self {
            ops,
            params: weights,
            device,
            spec,
        })
    }

    /// The parameters (host copies, port names): what `vidlrp_io::write_safetensors` saves.
    pub fn weights(&self) -> &TensorMap {
        &self.params
    }

    /// The architecture read from the weights.
    pub fn spec(&self) -> &C3dSpec {
        &self.spec
    }

    fn param(&self, name: &str) -> &B::Tensor {
        &self.device[name]
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
        let mut rng = dropout_seed.map(Rng::new);
        let mut h = be.upload(x)?;
        let mut tape = Tape {
            inputs: Vec::with_capacity(self.ops.len()),
            masks: Vec::with_capacity(self.ops.len()),
        };
        for op in &self.ops {
            let mut mask = None;
            let out = match op {
                Op::Conv { name, geometry } => be.conv3d(
                    &h,
                    self.param(&format!("{name}.weight")),
                    Some(self.param(&format!("{name}.bias"))),
                    geometry,
                )?,
                Op::Relu => be.unary(&h, UnaryOp::Positive)?,
                Op::Pool(g) => be.max_pool3d(&h, g)?,
                Op::Flatten => {
                    let s = be.shape(&h);
                    be.reshape(&h, &[s[0], s[1..].iter().product()])?
                }
                Op::Linear { name } => be.linear(
                    &h,
                    self.param(&format!("{name}.weight")),
                    Some(self.param(&format!("{name}.bias"))),
                )?,
                Op::Dropout(p) => match rng.as_mut() {
                    None => h.clone(),
                    Some(rng) => {
                        // Inverted dropout: kept values scaled by 1 / (1 - p).
                        let shape = be.shape(&h);
                        let n = shape.iter().product();
                        let scale = 1.0 / (1.0 - p);
                        let m: Vec<f32> = (0..n)
                            .map(|_| {
                                if rng.uniform() >= f64::from(*p) {
                                    scale
                                } else {
                                    0.0
                                }
                            })
                            .collect();
                        let m = be.upload(&HostTensor::new(shape, m)?)?;
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
                    grads.insert(format!("{name}.bias"), be.download(&be.sum_channels(&g)?)?);
                    if need_input {
                        g = be.conv3d_transposed(&g, w, geometry, &be.shape(x))?;
                    }
                }
                Op::Linear { name } => {
                    let w = self.param(&format!("{name}.weight"));
                    let dw = be.linear_weight_gradient(x, &g)?;
                    grads.insert(format!("{name}.weight"), be.download(&dw)?);
                    grads.insert(format!("{name}.bias"), be.download(&be.sum_channels(&g)?)?);
                    if need_input {
                        g = be.linear_transposed(&g, w)?;
                    }
                }
                Op::Relu => {
                    g = be.binary(&g, &be.unary(x, UnaryOp::StepPositive)?, BinaryOp::Mul)?;
                }
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
    pub fn apply(&mut self, be: &B, opt: &mut dyn Optimizer, grads: &TensorMap) -> Result<()> {
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
