//! DTD's conservation checked layer by layer, exactly: each rule keeps
//! `sum_i R_i = sum_j R_j z_j / stab(z_j)` of the relevance above it (the stabiliser is the only
//! leak), so in `f64` the two sides agree to rounding, far below the leak itself.

use vidlrp_core::rules::STABILIZER;
use vidlrp_core::{
    Backend, BinaryOp, Composite, Layer, LayerKind, Node, Residual, Rule, Sequential, UnaryOp,
};

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

/// How far a step's sums may differ in `f64`, relative to [`LayerConservation::scale`]: far
/// above `f64` rounding (~1e-14 measured) and far below the stabiliser's leak in `f32`.
pub const EXACT: f64 = 1e-10;

impl LayerConservation {
    /// `|got - kept| / scale`.
    pub fn relative(&self) -> f64 {
        (self.got - self.kept).abs() / self.scale.max(f64::MIN_POSITIVE)
    }

    /// Whether the step conserves to [`EXACT`].
    pub fn holds(&self) -> bool {
        self.relative() <= EXACT
    }
}

/// `LAYER (RULE): kept K but passed down G (rel E)`, the message of a step that does not hold.
impl std::fmt::Display for LayerConservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): kept {} but passed down {} (rel {:.2e})",
            self.layer,
            self.rule,
            self.kept,
            self.got,
            self.relative()
        )
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
/// pooling, proportional residual sums and passing rules) layer by layer and returns each
/// step's sums, from the output down. A residual block reports its sum (`got`: `sum R_a + sum
/// R_b`), then its shortcut's layers, then its main branch's, as [`Sequential::explain`]
/// does; the two branches' relevance meets again at the block's input as a sum.
///
/// **Errors** if the composite uses another rule, the score is not positive, or a backend op
/// fails.
pub fn layerwise<B: Backend>(
    be: &B,
    net: &Sequential<B>,
    x: &B::Tensor,
    composite: &Composite,
) -> Result<Vec<LayerConservation>, String> {
    let rules = net.rules(composite).map_err(err)?;
    let logits = be
        .download(&net.forward(be, x).map_err(err)?)
        .map_err(err)?;
    let k = logits.shape()[1];
    let (c, score) = vidlrp_core::top_k(&logits.data()[..k], 1)[0];
    if score <= 0.0 {
        return Err(format!("the top logit {score} is not positive"));
    }
    let n = logits.shape()[0];
    let mut seed = vidlrp_core::HostTensor::zeros(vec![n, k]);
    seed.data_mut()[c] = score;
    let r = be.upload(&seed).map_err(err)?;
    let mut out = Vec::new();
    walk(be, net, x, r, &rules, &mut out)?;
    Ok(out)
}

/// The number of layers and residual sums of `net` (its share of [`Sequential::rules`]).
fn steps<B: Backend>(net: &Sequential<B>) -> usize {
    net.nodes()
        .iter()
        .map(|node| match node {
            Node::Layer(_) => 1,
            Node::Residual(b) => steps(b.main()) + steps(b.shortcut()) + 1,
        })
        .sum()
}

/// `sum_j |R_j|` of sample 0.
fn abs_sum<B: Backend>(be: &B, r: &B::Tensor) -> Result<f64, String> {
    let abs = be.unary(r, UnaryOp::Positive).map_err(err)?;
    let neg = be.unary(r, UnaryOp::Negative).map_err(err)?;
    Ok(be
        .sum_per_sample(&be.binary(&abs, &neg, BinaryOp::Sub).map_err(err)?)
        .map_err(err)?[0])
}

/// Carries `r` (the relevance at `net`'s output) down to `net`'s input `x`, pushing each
/// step's sums; `rules` are `net`'s, in forward order.
fn walk<B: Backend>(
    be: &B,
    net: &Sequential<B>,
    x: &B::Tensor,
    mut r: B::Tensor,
    rules: &[Rule],
    out: &mut Vec<LayerConservation>,
) -> Result<B::Tensor, String> {
    // The input of every node (then the output), where its rules start, and a residual
    // block's two summands (their sum is the next node's input).
    let mut inputs = vec![x.clone()];
    let mut first_rule = Vec::new();
    let mut summands = Vec::new();
    let mut at = 0;
    for node in net.nodes() {
        let h = inputs.last().expect("input");
        first_rule.push(at);
        let (next, pair) = match node {
            Node::Layer(l) => {
                at += 1;
                (l.forward(be, h).map_err(err)?, None)
            }
            Node::Residual(b) => {
                at += steps(b.main()) + steps(b.shortcut()) + 1;
                let (main, short) = branch_outputs(be, b, h)?;
                let sum = be.binary(&main, &short, BinaryOp::Add).map_err(err)?;
                (sum, Some((main, short)))
            }
        };
        inputs.push(next);
        summands.push(pair);
    }
    for (i, node) in net.nodes().iter().enumerate().rev() {
        let xi = &inputs[i];
        let from = first_rule[i];
        r = match node {
            Node::Layer(layer) => {
                let rule = &rules[from];
                let scale = abs_sum(be, &r)?;
                let kept = layer_kept(be, layer.as_ref(), xi, &r, rule)?;
                let down = layer.relevance(be, xi, &r, rule).map_err(err)?;
                out.push(LayerConservation {
                    layer: layer.name().to_string(),
                    rule: rule.name(),
                    got: be.sum_per_sample(&down).map_err(err)?[0],
                    kept,
                    scale,
                });
                down
            }
            Node::Residual(b) => {
                let (m, s) = (steps(b.main()), steps(b.shortcut()));
                let sum_rule = &rules[from + m + s];
                if !matches!(sum_rule, Rule::SumProportional) {
                    return Err(format!(
                        "residual sum {}: rule {} is not checked here",
                        b.name(),
                        sum_rule.name()
                    ));
                }
                let (a, c) = summands[i].as_ref().expect("a block's summands");
                let z = &inputs[i + 1];
                let kept = kept_sum(be, &r, z, z)?;
                let scale = abs_sum(be, &r)?;
                let (ra, rc) = vidlrp_core::rules::sum_relevance(be, a, c, &r).map_err(err)?;
                out.push(LayerConservation {
                    layer: b.name().to_string(),
                    rule: sum_rule.name(),
                    got: be.sum_per_sample(&ra).map_err(err)?[0]
                        + be.sum_per_sample(&rc).map_err(err)?[0],
                    kept,
                    scale,
                });
                let short = walk(
                    be,
                    b.shortcut(),
                    xi,
                    rc,
                    &rules[from + m..from + m + s],
                    out,
                )?;
                let main = walk(be, b.main(), xi, ra, &rules[from..from + m], out)?;
                be.binary(&main, &short, BinaryOp::Add).map_err(err)?
            }
        };
    }
    Ok(r)
}

/// A residual block's two summands at input `x` (the shortcut of an identity block is `x`).
fn branch_outputs<B: Backend>(
    be: &B,
    b: &Residual<B>,
    x: &B::Tensor,
) -> Result<(B::Tensor, B::Tensor), String> {
    let main = b.main().forward(be, x).map_err(err)?;
    let short = if b.shortcut().nodes().is_empty() {
        x.clone()
    } else {
        b.shortcut().forward(be, x).map_err(err)?
    };
    Ok((main, short))
}

/// What `rule` keeps of `r` at `layer` with input `xi`: `sum_j R_j num_j / stab(den_j)`.
fn layer_kept<B: Backend>(
    be: &B,
    layer: &dyn Layer<B>,
    xi: &B::Tensor,
    r: &B::Tensor,
    rule: &Rule,
) -> Result<f64, String> {
    use BinaryOp::{Add, Sub};
    Ok(match (rule, layer.affine(), pooling_of(be, layer, xi)) {
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
            kept_sum(be, r, &zx, &z)?
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
            kept_sum(be, r, &z, &z)?
        }
        (Rule::PoolProportional, _, Some(g)) => {
            let s = be.sum_pool3d(xi, &g).map_err(err)?;
            kept_sum(be, r, &s, &s)?
        }
        (Rule::Pass | Rule::PoolWinnerTakeAll, _, _) => be.sum_per_sample(r).map_err(err)?[0],
        (other, _, _) => {
            return Err(format!(
                "layer {}: rule {} is not checked here",
                layer.name(),
                other.name()
            ))
        }
    })
}

/// The windows of a pooling layer at input `xi`: its fixed geometry, or for an adaptive
/// average pooling to one value per channel (the video ResNets' head) one window over the
/// whole input.
fn pooling_of<B: Backend>(
    be: &B,
    layer: &dyn Layer<B>,
    xi: &B::Tensor,
) -> Option<vidlrp_core::Pool3dGeometry> {
    if let Some(g) = layer.pooling() {
        return Some(*g);
    }
    let shape = be.shape(xi);
    let out = layer.output_shape(&shape).ok()?;
    (layer.kind() == LayerKind::AvgPool3d && shape.len() == 5 && out[2..] == [1, 1, 1]).then(|| {
        let extent = [shape[2], shape[3], shape[4]];
        vidlrp_core::Pool3dGeometry {
            kernel: extent,
            stride: extent,
            padding: [0; 3],
            ceil_mode: false,
        }
    })
}
