//! DTD's conservation checked layer by layer, exactly: each rule keeps
//! `sum_i R_i = sum_j R_j z_j / stab(z_j)` of the relevance above it (the stabiliser is the only
//! leak), so in `f64` the two sides agree to rounding, far below the leak itself.

use vidlrp_core::rules::STABILIZER;
use vidlrp_core::{Backend, BinaryOp, Composite, Rule, Sequential, UnaryOp};

/// One layer's relevance sums: what it passed down and what the rule's formula keeps.
#[derive(Debug, Clone)]
pub struct LayerConservation {
    /// The layer.
    pub layer: String,
    /// The rule it ran.
    pub rule: String,
    /// `sum_i R_i` at the layer's input (sample 0).
    pub got: f64,
    /// `sum_j R_j z_j / stab(z_j)` (or `sum_j R_j` for rules that move relevance unchanged).
    pub kept: f64,
    /// `sum_j |R_j|` at the layer's output, the scale of the comparison.
    pub scale: f64,
}

impl LayerConservation {
    /// `|got - kept| / scale`.
    pub fn relative(&self) -> f64 {
        (self.got - self.kept).abs() / self.scale.max(f64::MIN_POSITIVE)
    }
}

fn err(e: vidlrp_core::Error) -> String {
    e.to_string()
}

/// `sum_j r_j num_j / stab(den_j)` for sample 0.
fn kept_sum<B: Backend>(
    be: &B,
    r: &B::Tensor,
    num: &B::Tensor,
    den: &B::Tensor,
) -> Result<f64, String> {
    let s = be
        .binary(r, den, BinaryOp::StabDiv(STABILIZER))
        .map_err(err)?;
    let k = be.binary(&s, num, BinaryOp::Mul).map_err(err)?;
    Ok(be.sum_per_sample(&k).map_err(err)?[0])
}

/// Explains the top class of the first sample of `x` with `composite` (z+, z^B, proportional
/// pooling and passing rules) layer by layer and returns each layer's sums.
///
/// **Errors** if the composite uses another rule, the score is not positive, or a backend op
/// fails.
pub fn layerwise<B: Backend>(
    be: &B,
    net: &Sequential<B>,
    x: &B::Tensor,
    composite: &Composite,
) -> Result<Vec<LayerConservation>, String> {
    use BinaryOp::{Add, Sub};
    if !net.is_flat() {
        return Err(
            "layer-wise conservation is computed for chains of layers; a network with \
                    residual blocks reports its per-layer sums in its explanation"
                .to_string(),
        );
    }
    let rules = net.rules(composite).map_err(err)?;
    let leaves = net.leaves();
    let mut acts = vec![x.clone()];
    for layer in &leaves {
        let next = layer
            .forward(be, acts.last().expect("input"))
            .map_err(err)?;
        acts.push(next);
    }
    let logits = be.download(acts.last().expect("output")).map_err(err)?;
    let k = logits.shape()[1];
    let (c, score) = vidlrp_core::top_k(&logits.data()[..k], 1)[0];
    if score <= 0.0 {
        return Err(format!("the top logit {score} is not positive"));
    }
    let n = logits.shape()[0];
    let mut seed = vidlrp_core::HostTensor::zeros(vec![n, k]);
    seed.data_mut()[c] = score;
    let mut r = be.upload(&seed).map_err(err)?;
    let mut out = Vec::new();
    for (i, layer) in leaves.iter().enumerate().rev() {
        let xi = &acts[i];
        let rule = &rules[i];
        let abs = be.unary(&r, UnaryOp::Positive).map_err(err)?;
        let neg = be.unary(&r, UnaryOp::Negative).map_err(err)?;
        let scale = be
            .sum_per_sample(&be.binary(&abs, &neg, Sub).map_err(err)?)
            .map_err(err)?[0];
        let kept = match (rule, layer.affine(), layer.pooling()) {
            (Rule::ZPlus { positive_bias }, Some(a), _) => {
                let w = a.weight();
                let wp = be.unary(w, UnaryOp::Positive).map_err(err)?;
                let wn = be.unary(w, UnaryOp::Negative).map_err(err)?;
                let xp = be.unary(xi, UnaryOp::Positive).map_err(err)?;
                let xn = be.unary(xi, UnaryOp::Negative).map_err(err)?;
                let zx = be
                    .binary(
                        &a.apply(be, &xp, &wp, None).map_err(err)?,
                        &a.apply(be, &xn, &wn, None).map_err(err)?,
                        Add,
                    )
                    .map_err(err)?;
                let z = match (positive_bias, a.bias()) {
                    (true, Some(b)) => {
                        let bp = be.unary(b, UnaryOp::Positive).map_err(err)?;
                        let zero = be.unary(&xp, UnaryOp::Scale(0.0)).map_err(err)?;
                        let bias = a.apply(be, &zero, &wp, Some(&bp)).map_err(err)?;
                        be.binary(&zx, &bias, Add).map_err(err)?
                    }
                    _ => zx.clone(),
                };
                kept_sum(be, &r, &zx, &z)?
            }
            (Rule::ZBox { low, high }, Some(a), _) => {
                let shape = be.shape(xi);
                let per = |v: &[f32]| {
                    if v.len() == 1 {
                        vec![v[0]; shape[1]]
                    } else {
                        v.to_vec()
                    }
                };
                let lo = be.fill_channels(&shape, &per(low)).map_err(err)?;
                let hi = be.fill_channels(&shape, &per(high)).map_err(err)?;
                let w = a.weight();
                let wp = be.unary(w, UnaryOp::Positive).map_err(err)?;
                let wn = be.unary(w, UnaryOp::Negative).map_err(err)?;
                let z = a.apply(be, xi, w, None).map_err(err)?;
                let z = be
                    .binary(&z, &a.apply(be, &lo, &wp, None).map_err(err)?, Sub)
                    .map_err(err)?;
                let z = be
                    .binary(&z, &a.apply(be, &hi, &wn, None).map_err(err)?, Sub)
                    .map_err(err)?;
                kept_sum(be, &r, &z, &z)?
            }
            (Rule::PoolProportional, _, Some(g)) => {
                let s = be.sum_pool3d(xi, g).map_err(err)?;
                kept_sum(be, &r, &s, &s)?
            }
            (Rule::Pass | Rule::PoolWinnerTakeAll, _, _) => be.sum_per_sample(&r).map_err(err)?[0],
            (other, _, _) => {
                return Err(format!(
                    "layer {}: rule {} is not checked here",
                    layer.name(),
                    other.name()
                ))
            }
        };
        r = layer.relevance(be, xi, &r, rule).map_err(err)?;
        let got = be.sum_per_sample(&r).map_err(err)?[0];
        out.push(LayerConservation {
            layer: layer.name().to_string(),
            rule: rule.name(),
            got,
            kept,
            scale,
        });
    }
    Ok(out)
}
