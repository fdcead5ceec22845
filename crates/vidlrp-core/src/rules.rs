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
    /// The z^B rule for inputs bounded by `l_c <= x <= h_c` per input channel `c`:
    /// `R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) / stab(sum_i' (x_i' w_i'j - l_i' w+_i'j - h_i' w-_i'j)) R_j`.
    /// Padding is constant zero: padded voxels carry no bound and get no relevance.
    ZBox {
        /// Lower bound per input channel (one value broadcasts).
        low: Vec<f32>,
        /// Upper bound per input channel (one value broadcasts).
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
        }
    }

    fn unsupported(&self, layer: &str) -> Error {
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
}

/// The input split into `x+` and, if any value is negative, `x-`.
struct SignSplit<T> {
    pos: T,
    neg: Option<T>,
}

fn split_signs<B: Backend>(be: &B, x: &B::Tensor) -> Result<SignSplit<B::Tensor>> {
    Ok(if be.min_value(x)? < 0.0 {
        SignSplit {
            pos: be.unary(x, UnaryOp::Positive)?,
            neg: Some(be.unary(x, UnaryOp::Negative)?),
        }
    } else {
        SignSplit {
            pos: x.clone(),
            neg: None,
        }
    })
}

fn per_channel(values: &[f32], channels: usize, what: &str, layer: &str) -> Result<Vec<f32>> {
    match values.len() {
        1 => Ok(vec![values[0]; channels]),
        n if n == channels => Ok(values.to_vec()),
        n => Err(Error::new(
            ErrorKind::Rule,
            format!(
                "z^B {what} bound has {n} values but layer {layer} has {channels} input channels"
            ),
        )),
    }
}

/// Relevance of an affine layer's input under `rule` (see [`Rule`] for each formula).
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
    use BinaryOp::{Add, Mul, StabDiv, Sub};
    let shape = be.shape(x);
    let w = layer.weight();
    let fwd = |x: &B::Tensor, w: &B::Tensor, b: Option<&B::Tensor>| layer.apply(be, x, w, b);
    let tr = |g: &B::Tensor, w: &B::Tensor| layer.apply_transposed(be, g, w, &shape);
    let stab_div = |r: &B::Tensor, z: &B::Tensor| be.binary(r, z, StabDiv(STABILIZER));
    match rule {
        Rule::Gradient => tr(r, w),
        Rule::ZPlus { positive_bias } => {
            let xs = split_signs(be, x)?;
            let wp = be.unary(w, UnaryOp::Positive)?;
            let bp = match (positive_bias, layer.bias()) {
                (true, Some(b)) => Some(be.unary(b, UnaryOp::Positive)?),
                _ => None,
            };
            let mut z = fwd(&xs.pos, &wp, bp.as_ref())?;
            let wn = match xs.neg {
                Some(_) => Some(be.unary(w, UnaryOp::Negative)?),
                None => None,
            };
            if let (Some(xn), Some(wn)) = (&xs.neg, &wn) {
                z = be.binary(&z, &fwd(xn, wn, None)?, Add)?;
            }
            let s = stab_div(r, &z)?;
            drop(z);
            let mut out = be.binary(&xs.pos, &tr(&s, &wp)?, Mul)?;
            if let (Some(xn), Some(wn)) = (&xs.neg, &wn) {
                out = be.binary(&out, &be.binary(xn, &tr(&s, wn)?, Mul)?, Add)?;
            }
            Ok(out)
        }
        Rule::ZBox { low, high } => {
            let channels = shape.get(1).copied().unwrap_or(1);
            let name = layer.affine_name();
            let lo = be.fill_channels(&shape, &per_channel(low, channels, "low", name)?)?;
            let hi = be.fill_channels(&shape, &per_channel(high, channels, "high", name)?)?;
            let wp = be.unary(w, UnaryOp::Positive)?;
            let wn = be.unary(w, UnaryOp::Negative)?;
            let z = be.binary(&fwd(x, w, None)?, &fwd(&lo, &wp, None)?, Sub)?;
            let z = be.binary(&z, &fwd(&hi, &wn, None)?, Sub)?;
            let s = stab_div(r, &z)?;
            drop(z);
            let out = be.binary(x, &tr(&s, w)?, Mul)?;
            let out = be.binary(&out, &be.binary(&lo, &tr(&s, &wp)?, Mul)?, Sub)?;
            be.binary(&out, &be.binary(&hi, &tr(&s, &wn)?, Mul)?, Sub)
        }
        Rule::Epsilon { epsilon } => {
            let z = fwd(x, w, layer.bias())?;
            let s = be.binary(r, &z, StabDiv(*epsilon))?;
            be.binary(x, &tr(&s, w)?, Mul)
        }
        Rule::WSquare => {
            let w2 = be.unary(w, UnaryOp::Square)?;
            let b2 = layer
                .bias()
                .map(|b| be.unary(b, UnaryOp::Square))
                .transpose()?;
            let z = fwd(&be.unary(x, UnaryOp::One)?, &w2, b2.as_ref())?;
            tr(&stab_div(r, &z)?, &w2)
        }
        Rule::Flat => {
            let w1 = be.unary(w, UnaryOp::One)?;
            let z = fwd(&be.unary(x, UnaryOp::One)?, &w1, None)?;
            tr(&stab_div(r, &z)?, &w1)
        }
        Rule::AlphaBeta { alpha, beta } => {
            let xs = split_signs(be, x)?;
            let wp = be.unary(w, UnaryOp::Positive)?;
            let wn = be.unary(w, UnaryOp::Negative)?;
            let bp = layer
                .bias()
                .map(|b| be.unary(b, UnaryOp::Positive))
                .transpose()?;
            let bn = layer
                .bias()
                .map(|b| be.unary(b, UnaryOp::Negative))
                .transpose()?;
            // Positive part: x+ w+ + x- w- (+ b+); negative part: x+ w- + x- w+ (+ b-).
            let part =
                |wa: &B::Tensor, wb: &B::Tensor, b: Option<&B::Tensor>| -> Result<B::Tensor> {
                    let mut z = fwd(&xs.pos, wa, b)?;
                    if let Some(xn) = &xs.neg {
                        z = be.binary(&z, &fwd(xn, wb, None)?, Add)?;
                    }
                    let s = stab_div(r, &z)?;
                    let mut out = be.binary(&xs.pos, &tr(&s, wa)?, Mul)?;
                    if let Some(xn) = &xs.neg {
                        out = be.binary(&out, &be.binary(xn, &tr(&s, wb)?, Mul)?, Add)?;
                    }
                    Ok(out)
                };
            let pos = be.unary(&part(&wp, &wn, bp.as_ref())?, UnaryOp::Scale(*alpha))?;
            if *beta == 0.0 {
                return Ok(pos);
            }
            let neg = be.unary(&part(&wn, &wp, bn.as_ref())?, UnaryOp::Scale(*beta))?;
            be.binary(&pos, &neg, Sub)
        }
        Rule::Gamma { gamma } => {
            let xs = split_signs(be, x)?;
            let wgp = be.unary(w, UnaryOp::AddPositive(*gamma))?;
            let wgn = be.unary(w, UnaryOp::AddNegative(*gamma))?;
            let bgp = layer
                .bias()
                .map(|b| be.unary(b, UnaryOp::AddPositive(*gamma)))
                .transpose()?;
            let bgn = layer
                .bias()
                .map(|b| be.unary(b, UnaryOp::AddNegative(*gamma)))
                .transpose()?;
            let z = fwd(x, w, layer.bias())?;
            // For outputs z > 0: x+ (w + g w+) + x- (w + g w-); for z < 0 the mirror image.
            let part = |mask: UnaryOp, wa: &B::Tensor, wb: &B::Tensor, b: Option<&B::Tensor>| {
                let mut d = fwd(&xs.pos, wa, b)?;
                if let Some(xn) = &xs.neg {
                    d = be.binary(&d, &fwd(xn, wb, None)?, Add)?;
                }
                let g = be.binary(
                    &be.binary(&be.unary(&z, mask)?, r, Mul)?,
                    &d,
                    StabDiv(STABILIZER),
                )?;
                let mut out = be.binary(&xs.pos, &tr(&g, wa)?, Mul)?;
                if let Some(xn) = &xs.neg {
                    out = be.binary(&out, &be.binary(xn, &tr(&g, wb)?, Mul)?, Add)?;
                }
                Ok::<_, Error>(out)
            };
            let pos = part(UnaryOp::StepPositive, &wgp, &wgn, bgp.as_ref())?;
            let neg = part(UnaryOp::StepNegative, &wgn, &wgp, bgn.as_ref())?;
            be.binary(&pos, &neg, Add)
        }
        other => Err(other.unsupported(layer.affine_name())),
    }
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
        Rule::PoolProportional => {
            let sums = be.sum_pool3d(x, geometry)?;
            let s = be.binary(r, &sums, BinaryOp::StabDiv(STABILIZER))?;
            drop(sums);
            let spread = be.sum_pool3d_transposed(&s, geometry, &be.shape(x))?;
            be.binary(x, &spread, BinaryOp::Mul)
        }
        other => Err(other.unsupported(name)),
    }
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
        Rule::Gradient => be.binary(r, &be.unary(x, UnaryOp::StepPositive)?, BinaryOp::Mul),
        other => Err(other.unsupported(name)),
    }
}
