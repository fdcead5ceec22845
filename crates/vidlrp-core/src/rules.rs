//! The LRP rules, written once against [`Backend`] and [`Affine`].
//!
//! Notation for one layer: inputs `x_i`, weights `w_ij`, `z_j = sum_i x_i w_ij + b_j`,
//! `w+ = max(w, 0)`, `w- = min(w, 0)`, `x+`, `x-` likewise, and the stabiliser
//! `stab(z) = z + eps sign(z)` with `sign(0) = +1` and `eps = 1e-6` (Zennit's convention).
//! Every rule redistributes the relevance `R_j` of the layer's outputs onto its inputs; they
//! follow method.md §2 and, where it is silent, Zennit's definitions (`zennit.rules`).

use crate::backend::{Backend, BinaryOp, UnaryOp};
use crate::{Error, ErrorKind, Pool3dGeometry, Result};

/// The stabiliser `eps` of every rule except the epsilon rule's own parameter.
pub const STABILIZER: f32 = 1e-6;

/// A rule: how one layer maps output relevance to input relevance.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Rule {
    /// Relevance passes unchanged (activations under LRP).
    Pass,
    /// The chain rule: `R_i = sum_j dz_j/dx_i R_j` (sensitivity analysis, gradient x input;
    /// winner-take-all on max pooling, ReLU masks by `x > 0`).
    Gradient,
    /// `R_i = sum_j x_i w+_ij / stab(sum_i' x_i' w+_i'j [+ b+_j]) R_j`.
    ///
    /// For inputs of either sign this is Zennit's generalisation (alpha = 1, beta = 0):
    /// `R_i = sum_j (x+_i w+_ij + x-_i w-_ij) / stab(sum_i' x+_i' w+_i'j + x-_i' w-_i'j [+ b+_j]) R_j`.
    /// `positive_bias` adds `b+` to the denominator (Zennit's `ZPlus` default); without it the
    /// bias is ignored (method.md, Zennit `zero_params='bias'`).
    ZPlus {
        /// Add the positive part of the bias to the denominator.
        positive_bias: bool,
    },
    /// The z^B rule for inputs bounded by `l_i <= x_i <= h_i` (bounds per input channel, or per
    /// input element of a sample, e.g. under a per-voxel mean):
    /// `R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) / stab(sum_i' (x_i' w_i'j - l_i' w+_i'j - h_i' w-_i'j)) R_j`.
    /// Padding is constant zero: padded voxels carry no bound and get no relevance.
    ZBox {
        /// Lower bound: one value, one per input channel, or one per input element of a sample.
        low: Vec<f32>,
        /// Upper bound, in the same form as `low`.
        high: Vec<f32>,
    },
    /// `R_i = sum_j x_i w_ij / (z_j + epsilon sign(z_j)) R_j`, bias included in `z_j`.
    Epsilon {
        /// The stabiliser, usually small (1e-6) or a damping constant (0.25).
        epsilon: f32,
    },
    /// `R_i = sum_j w_ij^2 / stab(sum_i' w_i'j^2 + b_j^2) R_j` (Zennit squares the bias too).
    WSquare,
    /// `R_i = sum_j 1 / stab(sum_i' 1) R_j` over the inputs each output sees.
    Flat,
    /// `R_i = sum_j (alpha (x w)+_ij / stab(z+_j) - beta (x w)-_ij / stab(z-_j)) R_j`, with
    /// `(x w)+ = x+ w+ + x- w-`, `z+_j = sum_i (x w)+_ij + b+_j`, and the negative parts alike
    /// (`b-`). Zennit requires `alpha - beta = 1`.
    AlphaBeta {
        /// Weight of the positive contributions.
        alpha: f32,
        /// Weight of the negative contributions.
        beta: f32,
    },
    /// The generalised gamma rule with `w^g = w + gamma w+` for positive outputs `z_j > 0`:
    /// `R_i = sum_j (x+_i w^g+_ij + x-_i w^g-_ij) / stab(z^g+_j) R_j` (and the mirrored
    /// expression with `w + gamma w-` for `z_j < 0`), as Zennit's `Gamma`.
    Gamma {
        /// Weight of the added positive (or negative) parts.
        gamma: f32,
    },
    /// Pooling: `R_i = x_i / stab(sum_{i' in pool(j)} x_i') R_j` (the paper's choice).
    PoolProportional,
    /// Pooling: all of `R_j` to the first maximum of its pool (the gradient; Zennit's default).
    PoolWinnerTakeAll,
    /// A residual sum `y = a + b`: `R_a = a / stab(a + b) R`, `R_b = b / stab(a + b) R`
    /// ([`sum_relevance`]; the z rule of a sum, Zennit's `Norm`).
    SumProportional,
}

impl Rule {
    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            Rule::Pass => "pass".into(),
            Rule::Gradient => "gradient".into(),
            Rule::ZPlus {
                positive_bias: false,
            } => "z+".into(),
            Rule::ZPlus {
                positive_bias: true,
            } => "z+ (bias+)".into(),
            Rule::ZBox { .. } => "z^B".into(),
            Rule::Epsilon { epsilon } => format!("epsilon({epsilon})"),
            Rule::WSquare => "w^2".into(),
            Rule::Flat => "flat".into(),
            Rule::AlphaBeta { alpha, beta } => format!("alpha{alpha}-beta{beta}"),
            Rule::Gamma { gamma } => format!("gamma({gamma})"),
            Rule::PoolProportional => "proportional".into(),
            Rule::PoolWinnerTakeAll => "winner-take-all".into(),
            Rule::SumProportional => "proportional (sum)".into(),
        }
    }

    /// Whether the rule acts on affine layers (convolutions, dense layers).
    pub fn is_affine_rule(&self) -> bool {
        matches!(
            self,
            Rule::Gradient
                | Rule::ZPlus { .. }
                | Rule::ZBox { .. }
                | Rule::Epsilon { .. }
                | Rule::WSquare
                | Rule::Flat
                | Rule::AlphaBeta { .. }
                | Rule::Gamma { .. }
        )
    }

    pub(crate) fn unsupported(&self, layer: &str) -> Error {
        Error::new(
            ErrorKind::Rule,
            format!("rule {} cannot be applied to layer {layer}", self.name()),
        )
    }
}

/// An affine map `z = A(x; w) + b`, linear in `x` and in `w` (convolution, dense layer), with its
/// transpose `A^T(g; w)`: the rules need nothing else of a layer.
pub trait Affine<B: Backend> {
    /// The layer's name, for errors.
    fn affine_name(&self) -> &str;
    /// The weight tensor.
    fn weight(&self) -> &B::Tensor;
    /// The bias, if any.
    fn bias(&self) -> Option<&B::Tensor>;
    /// `A(x; w) + b`.
    fn apply(
        &self,
        be: &B,
        x: &B::Tensor,
        w: &B::Tensor,
        b: Option<&B::Tensor>,
    ) -> Result<B::Tensor>;
    /// `A^T(g; w)`, shaped like the layer's input `input_shape`.
    fn apply_transposed(
        &self,
        be: &B,
        g: &B::Tensor,
        w: &B::Tensor,
        input_shape: &[usize],
    ) -> Result<B::Tensor>;
    /// `A(x; w) − A(1; k)`, z^B's contribution sums where the bounds are constant per input
    /// channel (`k = l w+ + h w-`, `1` the input's shape filled with ones). The default
    /// composes [`Affine::apply`]; a convolution asks its backend
    /// ([`Backend::conv3d_bounded`], which may sum the bound term once per batch).
    fn apply_bounded(
        &self,
        be: &B,
        x: &B::Tensor,
        w: &B::Tensor,
        k: &B::Tensor,
    ) -> Result<B::Tensor> {
        bounded_sums(be, x, w, k, |input, kernel| {
            self.apply(be, input, kernel, None)
        })
    }
    /// `x ⊙ A^T(g; w) − A^T(g; k)`, z^B's relevance at the input `x` where the bounds are
    /// constant per input channel (`k = l w+ + h w-`). The default composes
    /// [`Affine::apply_transposed`] twice, a product and a difference; a convolution asks its
    /// backend ([`Backend::conv3d_transposed_bounded`], which may fuse them).
    fn apply_transposed_bounded(
        &self,
        be: &B,
        g: &B::Tensor,
        w: &B::Tensor,
        k: &B::Tensor,
        x: &B::Tensor,
    ) -> Result<B::Tensor> {
        let shape = be.shape(x);
        bounded_relevance(
            be,
            x,
            |kernel| self.apply_transposed(be, g, kernel, &shape),
            w,
            k,
        )
    }
}

/// z^B's contribution sums with bounds constant per input channel, composed:
/// `A(x; w) − A(1; k)` (`1` the input's shape filled with ones), `apply(input, kernel)` the
/// affine map without bias. The default of [`Affine::apply_bounded`] and
/// [`Backend::conv3d_bounded`], and what a backend computes where it fuses nothing.
///
/// **Errors** as the operations it composes.
pub fn bounded_sums<B: Backend + ?Sized>(
    be: &B,
    x: &B::Tensor,
    w: &B::Tensor,
    k: &B::Tensor,
    apply: impl Fn(&B::Tensor, &B::Tensor) -> Result<B::Tensor>,
) -> Result<B::Tensor> {
    let shape = be.shape(x);
    let ones = be.fill_channels(&shape, &vec![1.0; shape.get(1).copied().unwrap_or(0)])?;
    let bound = apply(&ones, k)?;
    drop(ones);
    be.binary_owned(apply(x, w)?, &bound, BinaryOp::Sub)
}

/// z^B's relevance with bounds constant per input channel, composed: `x ⊙ A^T(s; w) −
/// A^T(s; k)`, `transpose(kernel)` the transposed map of the relevance quotient `s`. The
/// default of [`Affine::apply_transposed_bounded`] and [`Backend::conv3d_transposed_bounded`],
/// and what a backend computes where it fuses nothing.
///
/// **Errors** as the operations it composes.
pub fn bounded_relevance<B: Backend + ?Sized>(
    be: &B,
    x: &B::Tensor,
    transpose: impl Fn(&B::Tensor) -> Result<B::Tensor>,
    w: &B::Tensor,
    k: &B::Tensor,
) -> Result<B::Tensor> {
    let out = be.binary_owned(transpose(w)?, x, BinaryOp::Mul)?;
    be.binary_owned(out, &transpose(k)?, BinaryOp::Sub)
}

/// The input split into `x+` and, if any value is negative, `x-`. A non-negative input is
/// its own `x+`, borrowed: `Tensor::clone` is a deep copy on the ndarray backends, a full
/// pass over an input that is often the largest tensor of the layer.
struct SignSplit<'a, T: Clone> {
    pos: std::borrow::Cow<'a, T>,
    neg: Option<T>,
}

fn split_signs<'a, B: Backend>(be: &B, x: &'a B::Tensor) -> Result<SignSplit<'a, B::Tensor>> {
    use std::borrow::Cow;
    Ok(if be.min_value(x)? < 0.0 {
        SignSplit {
            pos: Cow::Owned(be.unary(x, UnaryOp::Positive)?),
            neg: Some(be.unary(x, UnaryOp::Negative)?),
        }
    } else {
        SignSplit {
            pos: Cow::Borrowed(x),
            neg: None,
        }
    })
}

/// A z^B bound as one value per input channel (axis 1 of the input's `shape`), if it is
/// one: one value for all, one per channel, or one per input element of a sample that is
/// constant over each channel (so that the same bounds, however written, give the same).
fn channel_bounds(shape: &[usize], values: &[f32]) -> Option<Vec<f32>> {
    let channels = shape.get(1).copied().unwrap_or(1);
    let per_sample: usize = shape.iter().skip(1).product();
    match values.len() {
        1 => Some(vec![values[0]; channels]),
        n if n == channels => Some(values.to_vec()),
        n if n == per_sample && channels > 0 => {
            let planes: Vec<&[f32]> = values.chunks(per_sample / channels).collect();
            (planes.iter().all(|p| p.iter().all(|&b| b == p[0])))
                .then(|| planes.iter().map(|p| p[0]).collect())
        }
        _ => None,
    }
}

/// A z^B bound as a tensor of the input's `shape`: one value for all, one per channel (axis
/// 1), or one per input element of a sample (`shape[1..]`, e.g. Caffe's per-voxel mean),
/// repeated over the batch.
fn bound_tensor<B: Backend>(
    be: &B,
    shape: &[usize],
    values: &[f32],
    what: &str,
    layer: &str,
) -> Result<B::Tensor> {
    if let Some(per_channel) = channel_bounds(shape, values) {
        return be.fill_channels(shape, &per_channel);
    }
    let channels = shape.get(1).copied().unwrap_or(1);
    let per_sample: usize = shape.iter().skip(1).product();
    match values.len() {
        n if n == per_sample => {
            let batch = shape.first().copied().unwrap_or(1);
            let data = values.repeat(batch);
            be.upload(&crate::HostTensor::new(shape.to_vec(), data)?)
        }
        n => Err(Error::new(
            ErrorKind::Rule,
            format!(
                "z^B {what} bound has {n} values but layer {layer} has {channels} input channels \
                 and {per_sample} input values per sample (give 1, {channels} or {per_sample})"
            ),
        )),
    }
}

/// Relevance of an affine layer's input under `rule` (see [`Rule`] for each formula): one
/// function per rule below, chosen here.
///
/// # Shapes
/// `x` is the layer's input, `r` has the shape of its output; the result has the shape of `x`.
pub fn affine_relevance<B: Backend, A: Affine<B> + ?Sized>(
    layer: &A,
    be: &B,
    x: &B::Tensor,
    r: &B::Tensor,
    rule: &Rule,
) -> Result<B::Tensor> {
    let op = AffineOp {
        layer,
        be,
        shape: be.shape(x),
    };
    match rule {
        Rule::Gradient => op.tr(r, layer.weight()),
        Rule::ZPlus { positive_bias } => zplus(&op, x, r, *positive_bias),
        Rule::ZBox { low, high } => zbox(&op, x, r, low, high),
        Rule::Epsilon { epsilon } => epsilon_rule(&op, x, r, *epsilon),
        Rule::WSquare => wsquare(&op, x, r),
        Rule::Flat => flat(&op, x, r),
        Rule::AlphaBeta { alpha, beta } => alpha_beta(&op, x, r, *alpha, *beta),
        Rule::Gamma { gamma } => gamma_rule(&op, x, r, *gamma),
        other => Err(other.unsupported(layer.affine_name())),
    }
}

/// An affine layer on a backend, with the input shape its transposes produce.
struct AffineOp<'a, B: Backend, A: Affine<B> + ?Sized> {
    layer: &'a A,
    be: &'a B,
    shape: Vec<usize>,
}

impl<B: Backend, A: Affine<B> + ?Sized> AffineOp<'_, B, A> {
    /// `A(x; w) + b`.
    fn fwd(&self, x: &B::Tensor, w: &B::Tensor, b: Option<&B::Tensor>) -> Result<B::Tensor> {
        self.layer.apply(self.be, x, w, b)
    }
    /// `A^T(g; w)`.
    fn tr(&self, g: &B::Tensor, w: &B::Tensor) -> Result<B::Tensor> {
        self.layer.apply_transposed(self.be, g, w, &self.shape)
    }
    fn unary(&self, x: &B::Tensor, op: UnaryOp) -> Result<B::Tensor> {
        self.be.unary(x, op)
    }
    fn binary(&self, a: &B::Tensor, b: &B::Tensor, op: BinaryOp) -> Result<B::Tensor> {
        self.be.binary(a, b, op)
    }
    /// `op(a, b)` into `a`'s memory ([`Backend::binary_owned`]).
    fn owned(&self, a: B::Tensor, b: &B::Tensor, op: BinaryOp) -> Result<B::Tensor> {
        self.be.binary_owned(a, b, op)
    }
    /// `r / stab(z)` with the rules' stabiliser.
    fn stab_div(&self, r: &B::Tensor, z: &B::Tensor) -> Result<B::Tensor> {
        self.be.binary(r, z, BinaryOp::StabDiv(STABILIZER))
    }
    /// [`AffineOp::stab_div`] written over `z` ([`Backend::binary_owned_rhs`]).
    fn stab_div_owned(&self, r: &B::Tensor, z: B::Tensor) -> Result<B::Tensor> {
        self.be
            .binary_owned_rhs(r, z, BinaryOp::StabDiv(STABILIZER))
    }
    /// The bias mapped by `op`, if there is a bias.
    fn bias_map(&self, op: UnaryOp) -> Result<Option<B::Tensor>> {
        self.layer.bias().map(|b| self.unary(b, op)).transpose()
    }
    /// The sign-split contribution sum `z = A(x+; wa) [+ b] + A(x-; wb)` and its relevance
    /// `x+ A^T(s; wa) + x- A^T(s; wb)` with `s = numerator / stab(z)`: the common core of z+,
    /// alpha-beta and gamma.
    fn split_pass(
        &self,
        xs: &SignSplit<'_, B::Tensor>,
        wa: &B::Tensor,
        wb: Option<&B::Tensor>,
        b: Option<&B::Tensor>,
        numerator: &B::Tensor,
    ) -> Result<B::Tensor> {
        let mut z = self.fwd(&xs.pos, wa, b)?;
        let neg = match (&xs.neg, wb) {
            (Some(xn), Some(wb)) => Some((xn, wb)),
            _ => None,
        };
        if let Some((xn, wb)) = neg {
            z = self.owned(z, &self.fwd(xn, wb, None)?, BinaryOp::Add)?;
        }
        let s = self.stab_div_owned(numerator, z)?;
        let mut out = self.owned(self.tr(&s, wa)?, &xs.pos, BinaryOp::Mul)?;
        if let Some((xn, wb)) = neg {
            let neg = self.owned(self.tr(&s, wb)?, xn, BinaryOp::Mul)?;
            out = self.owned(out, &neg, BinaryOp::Add)?;
        }
        Ok(out)
    }
}

/// z+: `R_i = sum_j (x+_i w+_ij + x-_i w-_ij) / stab(sum_i' x+_i' w+_i'j + x-_i' w-_i'j [+ b+_j]) R_j`.
fn zplus<B: Backend, A: Affine<B> + ?Sized>(
    op: &AffineOp<'_, B, A>,
    x: &B::Tensor,
    r: &B::Tensor,
    positive_bias: bool,
) -> Result<B::Tensor> {
    let xs = split_signs(op.be, x)?;
    let w = op.layer.weight();
    let wp = op.unary(w, UnaryOp::Positive)?;
    let bp = if positive_bias {
        op.bias_map(UnaryOp::Positive)?
    } else {
        None
    };
    // w- is only needed (and only computed) when the input has negative values.
    let wn = match xs.neg {
        Some(_) => Some(op.unary(w, UnaryOp::Negative)?),
        None => None,
    };
    op.split_pass(&xs, &wp, wn.as_ref(), bp.as_ref(), r)
}

/// z^B: `R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) / stab(sum_i' (x_i' w_i'j - l_i' w+_i'j - h_i' w-_i'j)) R_j`.
fn zbox<B: Backend, A: Affine<B> + ?Sized>(
    op: &AffineOp<'_, B, A>,
    x: &B::Tensor,
    r: &B::Tensor,
    low: &[f32],
    high: &[f32],
) -> Result<B::Tensor> {
    use BinaryOp::{Add, Mul, Sub};
    let (be, shape, w) = (op.be, &op.shape, op.layer.weight());
    let name = op.layer.affine_name();
    if let (Some(l), Some(h)) = (channel_bounds(shape, low), channel_bounds(shape, high)) {
        // Bounds constant over each input channel c: l_c w+ + h_c w- is one kernel K, so
        // sum_i (l_i w+_ij + h_i w-_ij) = A(1; K)_j and, channel by channel, l (A^T(s; w+)) +
        // h (A^T(s; w-)) = A^T(s; K): four passes instead of six, the same sums up to rounding.
        let w_shape = be.shape(w);
        let k = op.owned(
            op.unary(w, UnaryOp::Positive)?,
            &be.fill_channels(&w_shape, &l)?,
            Mul,
        )?;
        let k_neg = op.owned(
            op.unary(w, UnaryOp::Negative)?,
            &be.fill_channels(&w_shape, &h)?,
            Mul,
        )?;
        let k = op.owned(k, &k_neg, Add)?;
        drop(k_neg);
        let z = op.layer.apply_bounded(be, x, w, &k)?;
        let s = op.stab_div_owned(r, z)?;
        return op.layer.apply_transposed_bounded(be, &s, w, &k, x);
    }
    let lo = bound_tensor(be, shape, low, "low", name)?;
    let hi = bound_tensor(be, shape, high, "high", name)?;
    let wp = op.unary(w, UnaryOp::Positive)?;
    let wn = op.unary(w, UnaryOp::Negative)?;
    // Each step writes into an operand's memory (`binary_owned`, `binary_owned_rhs`): at most
    // two output-sized tensors besides `r` are alive at once (three before).
    let z = op.owned(op.fwd(x, w, None)?, &op.fwd(&lo, &wp, None)?, Sub)?;
    let z = op.owned(z, &op.fwd(&hi, &wn, None)?, Sub)?;
    let s = op.stab_div_owned(r, z)?;
    let out = op.owned(op.tr(&s, w)?, x, Mul)?;
    let out = op.owned(out, &op.owned(op.tr(&s, &wp)?, &lo, Mul)?, Sub)?;
    op.owned(out, &op.owned(op.tr(&s, &wn)?, &hi, Mul)?, Sub)
}

/// epsilon: `R_i = sum_j x_i w_ij / (z_j + epsilon sign(z_j)) R_j`, bias included in `z_j`.
fn epsilon_rule<B: Backend, A: Affine<B> + ?Sized>(
    op: &AffineOp<'_, B, A>,
    x: &B::Tensor,
    r: &B::Tensor,
    epsilon: f32,
) -> Result<B::Tensor> {
    let w = op.layer.weight();
    let z = op.fwd(x, w, op.layer.bias())?;
    let s = op.binary(r, &z, BinaryOp::StabDiv(epsilon))?;
    op.binary(x, &op.tr(&s, w)?, BinaryOp::Mul)
}

/// w^2: `R_i = sum_j w_ij^2 / stab(sum_i' w_i'j^2 + b_j^2) R_j`.
fn wsquare<B: Backend, A: Affine<B> + ?Sized>(
    op: &AffineOp<'_, B, A>,
    x: &B::Tensor,
    r: &B::Tensor,
) -> Result<B::Tensor> {
    let w2 = op.unary(op.layer.weight(), UnaryOp::Square)?;
    let b2 = op.bias_map(UnaryOp::Square)?;
    let z = op.fwd(&op.unary(x, UnaryOp::One)?, &w2, b2.as_ref())?;
    op.tr(&op.stab_div(r, &z)?, &w2)
}

/// flat: `R_i = sum_j 1 / stab(sum_i' 1) R_j` over the inputs each output sees.
fn flat<B: Backend, A: Affine<B> + ?Sized>(
    op: &AffineOp<'_, B, A>,
    x: &B::Tensor,
    r: &B::Tensor,
) -> Result<B::Tensor> {
    let w1 = op.unary(op.layer.weight(), UnaryOp::One)?;
    let z = op.fwd(&op.unary(x, UnaryOp::One)?, &w1, None)?;
    op.tr(&op.stab_div(r, &z)?, &w1)
}

/// alpha-beta: `R_i = sum_j (alpha (x w)+_ij / stab(z+_j) - beta (x w)-_ij / stab(z-_j)) R_j`
/// with `(x w)+ = x+ w+ + x- w-` (`+ b+`) and `(x w)- = x+ w- + x- w+` (`+ b-`).
fn alpha_beta<B: Backend, A: Affine<B> + ?Sized>(
    op: &AffineOp<'_, B, A>,
    x: &B::Tensor,
    r: &B::Tensor,
    alpha: f32,
    beta: f32,
) -> Result<B::Tensor> {
    let xs = split_signs(op.be, x)?;
    let w = op.layer.weight();
    let wp = op.unary(w, UnaryOp::Positive)?;
    let wn = op.unary(w, UnaryOp::Negative)?;
    let bp = op.bias_map(UnaryOp::Positive)?;
    let positive = op.split_pass(&xs, &wp, Some(&wn), bp.as_ref(), r)?;
    let pos = op.unary(&positive, UnaryOp::Scale(alpha))?;
    if beta == 0.0 {
        return Ok(pos);
    }
    let bn = op.bias_map(UnaryOp::Negative)?;
    let negative = op.split_pass(&xs, &wn, Some(&wp), bn.as_ref(), r)?;
    let neg = op.unary(&negative, UnaryOp::Scale(beta))?;
    op.binary(&pos, &neg, BinaryOp::Sub)
}

/// gamma: for outputs `z_j > 0`, `R_i = sum_j (x+_i w^g+_ij + x-_i w^g-_ij) / stab(z^g+_j) R_j`
/// with `w^g+ = w + gamma w+`, `w^g- = w + gamma w-`; for `z_j < 0` the mirrored expression.
fn gamma_rule<B: Backend, A: Affine<B> + ?Sized>(
    op: &AffineOp<'_, B, A>,
    x: &B::Tensor,
    r: &B::Tensor,
    gamma: f32,
) -> Result<B::Tensor> {
    let xs = split_signs(op.be, x)?;
    let w = op.layer.weight();
    let wgp = op.unary(w, UnaryOp::AddPositive(gamma))?;
    let wgn = op.unary(w, UnaryOp::AddNegative(gamma))?;
    let bgp = op.bias_map(UnaryOp::AddPositive(gamma))?;
    let bgn = op.bias_map(UnaryOp::AddNegative(gamma))?;
    let z = op.fwd(x, w, op.layer.bias())?;
    // The relevance of the outputs of one sign, each handled with its own weights.
    let masked = |mask: UnaryOp| op.binary(&op.unary(&z, mask)?, r, BinaryOp::Mul);
    let pos = op.split_pass(
        &xs,
        &wgp,
        Some(&wgn),
        bgp.as_ref(),
        &masked(UnaryOp::StepPositive)?,
    )?;
    let neg = op.split_pass(
        &xs,
        &wgn,
        Some(&wgp),
        bgn.as_ref(),
        &masked(UnaryOp::StepNegative)?,
    )?;
    op.binary(&pos, &neg, BinaryOp::Add)
}

/// Relevance of a max-pooling layer's input under `rule`:
/// [`Rule::PoolProportional`] `R_i = x_i / stab(sum_{i' in pool(j)} x_i') R_j`, or
/// [`Rule::PoolWinnerTakeAll`] / [`Rule::Gradient`] (all of `R_j` to the first maximum).
pub fn pool_relevance<B: Backend>(
    be: &B,
    name: &str,
    geometry: &Pool3dGeometry,
    x: &B::Tensor,
    r: &B::Tensor,
    rule: &Rule,
) -> Result<B::Tensor> {
    match rule {
        Rule::PoolWinnerTakeAll | Rule::Gradient => be.max_pool3d_transposed(x, r, geometry),
        Rule::PoolProportional => be.sum_pool3d_proportional(x, r, geometry, STABILIZER),
        other => Err(other.unsupported(name)),
    }
}

/// Relevance at a sum `y = a + b` (a residual block's join, method.md §5), split in proportion
/// to the summands: `R_a = a / stab(a + b) R` and `R_b = b / stab(a + b) R`, so `R_a + R_b = R`
/// up to the stabiliser. Returns `(R_a, R_b)`.
///
/// **Errors** if the shapes of `a`, `b` and `r` differ.
pub fn sum_relevance<B: Backend>(
    be: &B,
    a: &B::Tensor,
    b: &B::Tensor,
    r: &B::Tensor,
) -> Result<(B::Tensor, B::Tensor)> {
    let sum = be.binary(a, b, BinaryOp::Add)?;
    let s = be.binary_owned_rhs(r, sum, BinaryOp::StabDiv(STABILIZER))?;
    let ra = be.binary(a, &s, BinaryOp::Mul)?;
    let rb = be.binary_owned(s, b, BinaryOp::Mul)?;
    Ok((ra, rb))
}

/// Relevance through a ReLU: [`Rule::Pass`] returns `R` unchanged, [`Rule::Gradient`] masks it
/// by `x > 0`.
pub fn activation_relevance<B: Backend>(
    be: &B,
    name: &str,
    x: &B::Tensor,
    r: &B::Tensor,
    rule: &Rule,
) -> Result<B::Tensor> {
    match rule {
        Rule::Pass => Ok(r.clone()),
        Rule::Gradient => be.binary(r, x, BinaryOp::GatePositive),
        other => Err(other.unsupported(name)),
    }
}
