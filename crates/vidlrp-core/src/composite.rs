//! [`Composite`]: which rule each layer of a network gets, plus how the explanation is seeded and
//! finished. Named presets reproduce the paper's methods and the composites Zennit users know.

use std::fmt;
use std::str::FromStr;

use crate::{Error, ErrorKind, LayerKind, Result, Role, Rule};

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

/// The pooling rules a preset's pooling can be switched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolRule {
    /// [`Rule::PoolProportional`]: `R_i = x_i / stab(sum_{i' in pool(j)} x_i') R_j` (the paper).
    Proportional,
    /// [`Rule::PoolWinnerTakeAll`]: all of `R_j` to the pool's first maximum (Zennit's default).
    WinnerTakeAll,
}

impl PoolRule {
    /// The rule.
    pub fn rule(self) -> Rule {
        match self {
            PoolRule::Proportional => Rule::PoolProportional,
            PoolRule::WinnerTakeAll => Rule::PoolWinnerTakeAll,
        }
    }
}

impl FromStr for PoolRule {
    type Err = Error;

    /// `proportional`, or `wta` / `winner-take-all`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "proportional" => Ok(PoolRule::Proportional),
            "wta" | "winner-take-all" => Ok(PoolRule::WinnerTakeAll),
            other => Err(Error::new(
                ErrorKind::Argument,
                format!("unknown pooling rule {other:?} (known: proportional, wta)"),
            )),
        }
    }
}

impl fmt::Display for PoolRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolRule::Proportional => "proportional",
            PoolRule::WinnerTakeAll => "wta",
        })
    }
}

/// The named explanation methods ([`Composite::preset`]), parsed once from their names.
///
/// ```
/// use vidlrp_core::Method;
/// let m: Method = "epsilon-plus".parse().unwrap();
/// assert_eq!(m, Method::EpsilonPlus);
/// assert_eq!(m.to_string(), "epsilon-plus");
/// assert!("lrp-magic".parse::<Method>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// Deep Taylor decomposition as in the paper.
    Dtd,
    /// Sensitivity analysis.
    Sa,
    /// The plain gradient.
    Gradient,
    /// Gradient times input.
    GradientXInput,
    /// Zennit's `EpsilonPlus`.
    EpsilonPlus,
    /// Zennit's `EpsilonGammaBox`.
    EpsilonGammaBox,
    /// Zennit's `EpsilonPlusFlat`.
    EpsilonPlusFlat,
    /// Zennit's `EpsilonAlpha2Beta1`.
    EpsilonAlpha2Beta1,
    /// Zennit's `EpsilonAlpha2Beta1Flat`.
    EpsilonAlpha2Beta1Flat,
    /// z+ on every affine layer.
    ZPlus,
    /// epsilon on every affine layer.
    Epsilon,
    /// alpha-beta on every affine layer.
    AlphaBeta,
    /// gamma on every affine layer.
    Gamma,
    /// w^2 on the first layer, z+ above.
    WSquare,
}

impl Method {
    /// Every method, in the order of [`PRESETS`].
    pub const ALL: [Method; 14] = [
        Method::Dtd,
        Method::Sa,
        Method::Gradient,
        Method::GradientXInput,
        Method::EpsilonPlus,
        Method::EpsilonGammaBox,
        Method::EpsilonPlusFlat,
        Method::EpsilonAlpha2Beta1,
        Method::EpsilonAlpha2Beta1Flat,
        Method::ZPlus,
        Method::Epsilon,
        Method::AlphaBeta,
        Method::Gamma,
        Method::WSquare,
    ];

    /// The method's name (`dtd`, `sa`, `epsilon-plus`, ...).
    pub fn name(self) -> &'static str {
        PRESETS[self as usize].0
    }

    /// A one-line description.
    pub fn description(self) -> &'static str {
        PRESETS[self as usize].1
    }
}

impl FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
                Error::new(
                    ErrorKind::Argument,
                    format!("unknown method {s:?}; known: {}", names.join(", ")),
                )
            })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
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
    pub pool: Option<PoolRule>,
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
    /// Rule of residual sums: [`Rule::SumProportional`] for the LRP presets, [`Rule::Gradient`]
    /// (each branch gets `R`) for the gradient ones.
    pub sum: Rule,
    /// The output relevance.
    pub seed: Seed,
    /// The final map of the input relevance.
    pub finish: Finish,
    /// Whether the explained score must be positive (DTD is defined for `f_c(x) > 0` only).
    pub requires_positive_score: bool,
    /// Rules for steps by name, over the choice by role ([`Composite::with_rule`]); the last
    /// one given for a name wins. A name that is no step of the network is an error of
    /// [`crate::Sequential::rules`].
    pub overrides: Vec<(String, Rule)>,
}

/// The names of [`Method`], with a one-line description each, in [`Method::ALL`] order.
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
            sum: Rule::SumProportional,
            seed: Seed::Score,
            finish: Finish::Identity,
            requires_positive_score: false,
            overrides: Vec::new(),
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
            sum: Rule::Gradient,
            seed: Seed::Unit,
            finish,
            requires_positive_score: false,
            overrides: Vec::new(),
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

    /// A named preset (see [`Method`]).
    ///
    /// ```
    /// use vidlrp_core::{Composite, Method, PresetOptions, PoolRule, Rule};
    /// let o = PresetOptions { pool: Some(PoolRule::WinnerTakeAll), ..Default::default() };
    /// let c = Composite::preset(Method::Dtd, &o).unwrap();
    /// assert_eq!(c.pool, Rule::PoolWinnerTakeAll);
    /// ```
    ///
    /// **Errors** on invalid parameters (e.g. alpha - beta != 1, z^B bounds with low > high).
    pub fn preset(method: Method, o: &PresetOptions) -> Result<Self> {
        let name = method.name();
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
        let mut c = match method {
            Method::Dtd => {
                let mut c = Self::dtd(o.low.clone(), o.high.clone());
                let zplus = Rule::ZPlus {
                    positive_bias: o.zplus_bias,
                };
                c.conv = zplus.clone();
                c.linear = zplus;
                c
            }
            Method::Sa => Self::sensitivity(),
            Method::Gradient => Self::gradient("gradient", Finish::Identity),
            Method::GradientXInput => Self::gradient("gradient-x-input", Finish::TimesInput),
            Method::EpsilonPlus => Self::lrp(name, None, zplus_b, eps, wta),
            Method::EpsilonGammaBox => {
                Self::lrp(name, Some(zbox()), Rule::Gamma { gamma: o.gamma }, eps, wta)
            }
            Method::EpsilonPlusFlat => Self::lrp(name, Some(Rule::Flat), zplus_b, eps, wta),
            Method::EpsilonAlpha2Beta1 => Self::lrp(name, None, ab, eps, wta),
            Method::EpsilonAlpha2Beta1Flat => Self::lrp(name, Some(Rule::Flat), ab, eps, wta),
            Method::ZPlus => {
                let z = Rule::ZPlus {
                    positive_bias: o.zplus_bias,
                };
                let mut c = Self::lrp(name, None, z.clone(), z, wta);
                c.requires_positive_score = true;
                c
            }
            Method::Epsilon => Self::lrp(name, None, eps.clone(), eps, wta),
            Method::AlphaBeta => Self::lrp(name, None, ab.clone(), ab, wta),
            Method::Gamma => {
                let g = Rule::Gamma { gamma: o.gamma };
                Self::lrp(name, None, g.clone(), g, wta)
            }
            Method::WSquare => Self::lrp(name, Some(Rule::WSquare), zplus_b.clone(), zplus_b, wta),
        };
        if let Some(pool) = o.pool {
            if c.seed == Seed::Score {
                c.pool = pool.rule();
            }
        }
        c.validate()?;
        Ok(c)
    }

    /// **Errors** if a rule is given for a role it cannot act on (e.g. a pooling rule for the
    /// convolutions) or a parameter is out of its domain.
    pub fn validate(&self) -> Result<()> {
        let roles = [
            (self.first.as_ref(), Role::Convolution, "first layer"),
            (Some(&self.conv), Role::Convolution, "convolutions"),
            (Some(&self.linear), Role::Dense, "dense layers"),
            (Some(&self.pool), Role::Pooling, "pooling layers"),
            (Some(&self.activation), Role::Activation, "activations"),
        ];
        for (rule, role, what) in roles {
            if let Some(rule) = rule.filter(|r| !role.accepts(r)) {
                return Err(Error::new(
                    ErrorKind::Rule,
                    format!(
                        "composite {}: rule {} cannot act on the {what}",
                        self.name,
                        rule.name()
                    ),
                ));
            }
        }
        let rules = [Some(&self.conv), Some(&self.linear), self.first.as_ref()];
        let overrides = self.overrides.iter().map(|(_, r)| r);
        for rule in rules.into_iter().flatten().chain(overrides) {
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

    /// This composite with `rule` on the step (layer or residual sum) named `layer`, whatever
    /// its role would choose:
    ///
    /// ```
    /// use vidlrp_core::{Composite, Rule};
    /// let c = Composite::dtd(vec![-1.0], vec![1.0]).with_rule("fc8", Rule::Epsilon { epsilon: 0.25 });
    /// assert_eq!(c.overrides, vec![("fc8".to_string(), Rule::Epsilon { epsilon: 0.25 })]);
    /// ```
    pub fn with_rule(mut self, layer: impl Into<String>, rule: Rule) -> Self {
        self.overrides.push((layer.into(), rule));
        self
    }

    /// The rule of each layer, given the layers' kinds in forward order: the first affine layer
    /// gets `first` (if set), the others the rule of their [`Role`] (names' overrides are
    /// applied by [`crate::Sequential::rules`]).
    pub fn assign(&self, kinds: &[LayerKind]) -> Vec<Rule> {
        let first_affine = kinds.iter().position(|k| k.is_affine());
        kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| match (&self.first, kind.role()) {
                (Some(first), _) if Some(i) == first_affine => first.clone(),
                (_, Role::Convolution) => self.conv.clone(),
                (_, Role::Dense) => self.linear.clone(),
                (_, Role::Pooling) => self.pool.clone(),
                (_, Role::Activation) => self.activation.clone(),
                (_, Role::Reshape) => Rule::Pass,
                (_, Role::Sum) => self.sum.clone(),
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
        for m in Method::ALL {
            let c = Composite::preset(m, &PresetOptions::default()).unwrap();
            assert_eq!(c.name, m.name());
            assert_eq!(m.name().parse::<Method>().unwrap(), m);
        }
        let e = "lrp-magic".parse::<Method>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Argument);
        let bad = PresetOptions {
            alpha: 3.0,
            beta: 1.0,
            ..Default::default()
        };
        assert!(Composite::preset(Method::AlphaBeta, &bad).is_err());
    }

    #[test]
    fn a_rule_for_the_wrong_role_is_rejected() {
        let mut c = Composite::dtd(vec![0.0], vec![1.0]);
        c.pool = Rule::WSquare;
        let e = c.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Rule);
        assert!(e.message().contains("pooling"), "{e}");
        let mut c = Composite::sensitivity();
        c.conv = Rule::PoolProportional;
        assert!(c.validate().is_err());
        for p in ["proportional", "wta", "winner-take-all"] {
            assert!(p.parse::<PoolRule>().is_ok());
        }
        assert!("zplus".parse::<PoolRule>().is_err());
    }
}
