//! [`Composite`]: which rule each layer of a network gets, plus how the explanation is seeded and
//! finished. Named presets reproduce the paper's methods and the composites Zennit users know.

use crate::{Error, ErrorKind, LayerKind, Result, Rule};

/// What the output relevance holds at the explained neuron `c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seed {
    /// `R_c = f_c(x)` (LRP: the relevance sums to the score).
    Score,
    /// `R_c = 1` (gradients: `d f_c / d x`).
    Unit,
}

/// What is done to the propagated input relevance at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Keep it.
    Identity,
    /// Square it elementwise (sensitivity analysis: `(d f_c / d x)^2`).
    Square,
    /// Multiply by the input (gradient x input).
    TimesInput,
}

/// Parameters of the named presets; defaults are Zennit's.
#[derive(Debug, Clone, PartialEq)]
pub struct PresetOptions {
    /// Lower input bound per channel for z^B (one value broadcasts).
    pub low: Vec<f32>,
    /// Upper input bound per channel for z^B.
    pub high: Vec<f32>,
    /// The epsilon rule's stabiliser.
    pub epsilon: f32,
    /// The gamma rule's factor.
    pub gamma: f32,
    /// Alpha of the alpha-beta rule (`alpha - beta = 1`).
    pub alpha: f32,
    /// Beta of the alpha-beta rule.
    pub beta: f32,
    /// Pooling rule override (`None`: the preset's own).
    pub pool: Option<Rule>,
    /// Add `b+` to z+ denominators (Zennit's `ZPlus` default) in `dtd`.
    pub zplus_bias: bool,
}

impl Default for PresetOptions {
    fn default() -> Self {
        Self {
            low: vec![0.0],
            high: vec![1.0],
            epsilon: 1e-6,
            gamma: 0.25,
            alpha: 2.0,
            beta: 1.0,
            pool: None,
            zplus_bias: false,
        }
    }
}

/// A rule assignment for a sequential network.
#[derive(Debug, Clone, PartialEq)]
pub struct Composite {
    /// The preset's name.
    pub name: String,
    /// Rule of the first affine layer (`None`: as the others of its kind).
    pub first: Option<Rule>,
    /// Rule of the other convolutions.
    pub conv: Rule,
    /// Rule of the other dense layers.
    pub linear: Rule,
    /// Rule of the pooling layers.
    pub pool: Rule,
    /// Rule of the activations.
    pub activation: Rule,
    /// The output relevance.
    pub seed: Seed,
    /// The final map of the input relevance.
    pub finish: Finish,
    /// Whether the explained score must be positive (DTD is defined for `f_c(x) > 0` only).
    pub requires_positive_score: bool,
}

/// The names [`Composite::preset`] accepts, with a one-line description each.
pub const PRESETS: &[(&str, &str)] = &[
    (
        "dtd",
        "deep Taylor: z^B on the first layer, z+ above, proportional pooling (the paper)",
    ),
    (
        "sa",
        "sensitivity analysis: squared gradient per input value",
    ),
    ("gradient", "plain gradient d f_c / d x"),
    ("gradient-x-input", "gradient times input"),
    (
        "epsilon-plus",
        "Zennit EpsilonPlus: z+ (with b+) on convolutions, epsilon on dense layers",
    ),
    (
        "epsilon-gamma-box",
        "Zennit EpsilonGammaBox: z^B first, gamma on convolutions, epsilon on dense",
    ),
    (
        "epsilon-plus-flat",
        "Zennit EpsilonPlusFlat: flat first, then as epsilon-plus",
    ),
    (
        "epsilon-alpha2-beta1",
        "Zennit EpsilonAlpha2Beta1: alpha-beta on convolutions, epsilon on dense",
    ),
    (
        "epsilon-alpha2-beta1-flat",
        "Zennit EpsilonAlpha2Beta1Flat: flat first, then as epsilon-alpha2-beta1",
    ),
    ("zplus", "z+ on every affine layer"),
    ("epsilon", "epsilon on every affine layer"),
    ("alpha-beta", "alpha-beta on every affine layer"),
    ("gamma", "gamma on every affine layer"),
    ("wsquare", "w^2 on the first layer, z+ above"),
];

impl Composite {
    fn lrp(name: &str, first: Option<Rule>, conv: Rule, linear: Rule, pool: Rule) -> Self {
        Self {
            name: name.into(),
            first,
            conv,
            linear,
            pool,
            activation: Rule::Pass,
            seed: Seed::Score,
            finish: Finish::Identity,
            requires_positive_score: false,
        }
    }

    fn gradient(name: &str, finish: Finish) -> Self {
        Self {
            name: name.into(),
            first: None,
            conv: Rule::Gradient,
            linear: Rule::Gradient,
            pool: Rule::Gradient,
            activation: Rule::Gradient,
            seed: Seed::Unit,
            finish,
            requires_positive_score: false,
        }
    }

    /// Deep Taylor decomposition as in the paper: z^B (bounds `low`, `high` per input channel) on
    /// the first layer, z+ on every other affine layer, proportional pooling.
    pub fn dtd(low: Vec<f32>, high: Vec<f32>) -> Self {
        let zplus = Rule::ZPlus {
            positive_bias: false,
        };
        let mut c = Self::lrp(
            "dtd",
            Some(Rule::ZBox { low, high }),
            zplus.clone(),
            zplus,
            Rule::PoolProportional,
        );
        c.requires_positive_score = true;
        c
    }

    /// Sensitivity analysis: `R = (d f_c / d x)^2`.
    pub fn sensitivity() -> Self {
        Self::gradient("sa", Finish::Square)
    }

    /// A named preset (see [`PRESETS`]).
    ///
    /// **Errors** on an unknown name or invalid parameters.
    pub fn preset(name: &str, o: &PresetOptions) -> Result<Self> {
        let zbox = || Rule::ZBox {
            low: o.low.clone(),
            high: o.high.clone(),
        };
        let eps = Rule::Epsilon { epsilon: o.epsilon };
        let zplus_b = Rule::ZPlus {
            positive_bias: true,
        };
        let ab = Rule::AlphaBeta {
            alpha: o.alpha,
            beta: o.beta,
        };
        let wta = Rule::PoolWinnerTakeAll;
        let mut c = match name {
            "dtd" => {
                let mut c = Self::dtd(o.low.clone(), o.high.clone());
                let zplus = Rule::ZPlus {
                    positive_bias: o.zplus_bias,
                };
                c.conv = zplus.clone();
                c.linear = zplus;
                c
            }
            "sa" => Self::sensitivity(),
            "gradient" => Self::gradient("gradient", Finish::Identity),
            "gradient-x-input" => Self::gradient("gradient-x-input", Finish::TimesInput),
            "epsilon-plus" => Self::lrp(name, None, zplus_b, eps, wta),
            "epsilon-gamma-box" => {
                Self::lrp(name, Some(zbox()), Rule::Gamma { gamma: o.gamma }, eps, wta)
            }
            "epsilon-plus-flat" => Self::lrp(name, Some(Rule::Flat), zplus_b, eps, wta),
            "epsilon-alpha2-beta1" => Self::lrp(name, None, ab, eps, wta),
            "epsilon-alpha2-beta1-flat" => Self::lrp(name, Some(Rule::Flat), ab, eps, wta),
            "zplus" => {
                let z = Rule::ZPlus {
                    positive_bias: o.zplus_bias,
                };
                let mut c = Self::lrp(name, None, z.clone(), z, wta);
                c.requires_positive_score = true;
                c
            }
            "epsilon" => Self::lrp(name, None, eps.clone(), eps, wta),
            "alpha-beta" => Self::lrp(name, None, ab.clone(), ab, wta),
            "gamma" => {
                let g = Rule::Gamma { gamma: o.gamma };
                Self::lrp(name, None, g.clone(), g, wta)
            }
            "wsquare" => Self::lrp(name, Some(Rule::WSquare), zplus_b.clone(), zplus_b, wta),
            other => {
                let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
                return Err(Error::new(
                    ErrorKind::Argument,
                    format!("unknown method {other:?}; known: {}", names.join(", ")),
                ));
            }
        };
        if let Some(pool) = &o.pool {
            if c.seed == Seed::Score {
                c.pool = pool.clone();
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// **Errors** if a parameter is out of its domain.
    pub fn validate(&self) -> Result<()> {
        let rules = [Some(&self.conv), Some(&self.linear), self.first.as_ref()];
        for rule in rules.into_iter().flatten() {
            match rule {
                Rule::AlphaBeta { alpha, beta }
                    if *alpha < 0.0 || *beta < 0.0 || (alpha - beta - 1.0).abs() > 1e-6 =>
                {
                    return Err(Error::new(
                        ErrorKind::Rule,
                        format!("alpha-beta needs alpha, beta >= 0 and alpha - beta = 1, got {alpha}, {beta}"),
                    ));
                }
                Rule::Epsilon { epsilon } if !(epsilon.is_finite() && *epsilon >= 0.0) => {
                    return Err(Error::new(
                        ErrorKind::Rule,
                        format!("epsilon must be >= 0, got {epsilon}"),
                    ));
                }
                Rule::Gamma { gamma } if !(gamma.is_finite() && *gamma >= 0.0) => {
                    return Err(Error::new(
                        ErrorKind::Rule,
                        format!("gamma must be >= 0, got {gamma}"),
                    ));
                }
                Rule::ZBox { low, high } => {
                    if low.is_empty() || low.len() != high.len() {
                        return Err(Error::new(
                            ErrorKind::Rule,
                            format!(
                                "z^B needs as many low as high bounds, got {} and {}",
                                low.len(),
                                high.len()
                            ),
                        ));
                    }
                    if low
                        .iter()
                        .zip(high)
                        .any(|(l, h)| !(l.is_finite() && h.is_finite() && l <= h))
                    {
                        return Err(Error::new(
                            ErrorKind::Rule,
                            format!("z^B bounds must be finite with low <= high, got {low:?} and {high:?}"),
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The rule of each layer, given the layers' kinds in forward order.
    pub fn assign(&self, kinds: &[LayerKind]) -> Vec<Rule> {
        let first_affine = kinds.iter().position(|k| k.is_affine());
        kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| match kind {
                _ if Some(i) == first_affine && self.first.is_some() => {
                    self.first.clone().unwrap_or(Rule::Pass)
                }
                LayerKind::Conv3d => self.conv.clone(),
                LayerKind::Linear => self.linear.clone(),
                LayerKind::MaxPool3d => self.pool.clone(),
                LayerKind::Relu => self.activation.clone(),
                LayerKind::Flatten => Rule::Pass,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtd_assigns_zbox_first_then_zplus_and_proportional_pooling() {
        use LayerKind::*;
        let c = Composite::dtd(vec![-1.0], vec![1.0]);
        let rules = c.assign(&[Conv3d, Relu, MaxPool3d, Conv3d, Relu, Flatten, Linear]);
        assert!(matches!(rules[0], Rule::ZBox { .. }));
        assert_eq!(rules[1], Rule::Pass);
        assert_eq!(rules[2], Rule::PoolProportional);
        assert_eq!(
            rules[3],
            Rule::ZPlus {
                positive_bias: false
            }
        );
        assert_eq!(
            rules[6],
            Rule::ZPlus {
                positive_bias: false
            }
        );
    }

    #[test]
    fn every_listed_preset_builds_and_unknown_ones_fail() {
        for (name, _) in PRESETS {
            Composite::preset(name, &PresetOptions::default()).unwrap();
        }
        let e = Composite::preset("lrp-magic", &PresetOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Argument);
        let bad = PresetOptions {
            alpha: 3.0,
            beta: 1.0,
            ..Default::default()
        };
        assert!(Composite::preset("alpha-beta", &bad).is_err());
    }
}
