//! The options that choose and parameterise the rules (`explain`, `sheet`), parsed once into
//! typed values.

use std::str::FromStr;

use anyhow::Result;
use vidlrp_core::{Composite, Method, PoolRule, PresetOptions, Rule};
use vidlrp_snippet::Preprocess;

/// One z^B bound per input channel, or one for all: `-1` or `-90.25,-97.66,-101.41`.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundValues(pub Vec<f32>);

impl FromStr for BoundValues {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let v: Vec<f32> = s
            .split(',')
            .map(|p| p.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{s:?}: expected a number or comma-separated numbers"))?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("{s:?}: bounds must be finite"));
        }
        Ok(Self(v))
    }
}

/// A rule given for one layer by name (`--rule fc8=epsilon:0.25`): `LAYER=RULE[:PARAM]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOverride {
    /// The layer (or residual sum) name, as in the JSON's per-layer list.
    pub layer: String,
    /// The rule's name.
    pub rule: String,
    /// Its parameter (epsilon, gamma, alpha), if given.
    pub param: Option<f32>,
}

/// The rule names `--rule` takes; the parameterised ones take `:VALUE`.
const OVERRIDE_RULES: &str = "zplus, zplus-bias, zb, epsilon[:E], gamma[:G], alpha-beta[:ALPHA], \
     wsquare, flat, gradient, pass, proportional, wta, sum";

impl FromStr for RuleOverride {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (layer, rule) = s
            .split_once('=')
            .filter(|(l, r)| !l.is_empty() && !r.is_empty())
            .ok_or_else(|| format!("{s:?}: expected LAYER=RULE, e.g. fc8=epsilon:0.25"))?;
        let (name, param) = match rule.split_once(':') {
            Some((n, p)) => {
                let v: f32 = p
                    .parse()
                    .map_err(|_| format!("{s:?}: {p:?} is not a number"))?;
                (n, Some(v))
            }
            None => (rule, None),
        };
        let takes_param = matches!(name, "epsilon" | "gamma" | "alpha-beta");
        let known = takes_param
            || [
                "zplus",
                "zplus-bias",
                "zb",
                "wsquare",
                "flat",
                "gradient",
                "pass",
                "proportional",
                "wta",
                "sum",
            ]
            .contains(&name);
        if !known {
            return Err(format!(
                "{s:?}: unknown rule {name:?}; known: {OVERRIDE_RULES}"
            ));
        }
        if param.is_some() && !takes_param {
            return Err(format!("{s:?}: {name} takes no parameter"));
        }
        Ok(Self {
            layer: layer.to_string(),
            rule: name.to_string(),
            param,
        })
    }
}

impl RuleOverride {
    /// The engine's rule, parameters not given taken from `opts` (`--epsilon`, `--gamma`,
    /// `--alpha`; z^B's bounds as the composite's).
    fn rule(&self, opts: &PresetOptions) -> Rule {
        let p = self.param;
        match self.rule.as_str() {
            "zplus" => Rule::ZPlus {
                positive_bias: false,
            },
            "zplus-bias" => Rule::ZPlus {
                positive_bias: true,
            },
            "zb" => Rule::ZBox {
                low: opts.low.clone(),
                high: opts.high.clone(),
            },
            "epsilon" => Rule::Epsilon {
                epsilon: p.unwrap_or(opts.epsilon),
            },
            "gamma" => Rule::Gamma {
                gamma: p.unwrap_or(opts.gamma),
            },
            "alpha-beta" => {
                let alpha = p.unwrap_or(opts.alpha);
                Rule::AlphaBeta {
                    alpha,
                    beta: if p.is_some() { alpha - 1.0 } else { opts.beta },
                }
            }
            "wsquare" => Rule::WSquare,
            "flat" => Rule::Flat,
            "gradient" => Rule::Gradient,
            "pass" => Rule::Pass,
            "proportional" => Rule::PoolProportional,
            "wta" => Rule::PoolWinnerTakeAll,
            _ => Rule::SumProportional,
        }
    }
}

/// Parameters of the rules; the method itself is chosen by each command.
#[derive(clap::Args, Clone, Debug)]
pub struct RuleArgs {
    /// Pooling rule: proportional (the paper) or wta (winner-take-all, Zennit's default).
    /// Default: proportional for dtd, wta for the Zennit composites.
    #[arg(long)]
    pub pool: Option<PoolRule>,
    /// z^B lower input bound: one value or one per channel, comma-separated (e.g. -1 or
    /// -90.25,-97.66,-101.41).
    #[arg(long, allow_hyphen_values = true, requires = "high")]
    pub low: Option<BoundValues>,
    /// z^B upper input bound: one value or one per channel.
    #[arg(long, allow_hyphen_values = true, requires = "low")]
    pub high: Option<BoundValues>,
    /// z^B bounds from a preprocessing preset: caffe (0 - mean .. 255 - mean, BGR) or port
    /// (0 .. 255). Default: the --preset's bounds.
    #[arg(long, conflicts_with_all = ["low", "high"])]
    pub bounds: Option<Preprocess>,
    /// Epsilon of the epsilon rule.
    #[arg(long, default_value_t = 1e-6)]
    pub epsilon: f32,
    /// Gamma of the gamma rule.
    #[arg(long, default_value_t = 0.25)]
    pub gamma: f32,
    /// Alpha of the alpha-beta rule (alpha - beta = 1).
    #[arg(long, default_value_t = 2.0)]
    pub alpha: f32,
    /// Beta of the alpha-beta rule.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f32,
    /// Add the positive bias to z+ denominators in dtd/zplus (Zennit's ZPlus default).
    #[arg(long)]
    pub zplus_bias: bool,
    /// A rule for one layer by name, over the method's choice, as LAYER=RULE or
    /// LAYER=RULE:PARAM (repeatable; names as in the JSON's per-layer list). Rules: zplus,
    /// zplus-bias, zb, epsilon:E, gamma:G, alpha-beta:ALPHA (beta = alpha - 1; the parameters
    /// default to --epsilon, --gamma, --alpha), wsquare, flat, gradient, pass, proportional,
    /// wta, sum. E.g. --rule fc8=epsilon:0.25 --rule pool1=wta.
    #[arg(long = "rule", value_name = "LAYER=RULE")]
    pub rules: Vec<RuleOverride>,
}

impl Default for RuleArgs {
    /// The options' defaults (as clap's; tested in `clip.rs`).
    fn default() -> Self {
        Self {
            pool: None,
            low: None,
            high: None,
            bounds: None,
            epsilon: 1e-6,
            gamma: 0.25,
            alpha: 2.0,
            beta: 1.0,
            zplus_bias: false,
            rules: Vec::new(),
        }
    }
}

impl RuleArgs {
    /// The composite of `method` under these options, and where its z^B bounds came from:
    /// `--low/--high`, else `--bounds`, else `preset`.
    ///
    /// **Errors** on invalid rule parameters (e.g. alpha - beta != 1).
    pub fn composite(&self, method: Method, preset: &Preprocess) -> Result<(Composite, String)> {
        let (low, high, source) = match (&self.low, &self.high) {
            (Some(l), Some(h)) => (l.0.clone(), h.0.clone(), "--low/--high".to_string()),
            _ => {
                let p = self.bounds.as_ref().unwrap_or(preset);
                (p.low(), p.high(), format!("preset {p}"))
            }
        };
        let opts = PresetOptions {
            low,
            high,
            epsilon: self.epsilon,
            gamma: self.gamma,
            alpha: self.alpha,
            beta: self.beta,
            pool: self.pool,
            zplus_bias: self.zplus_bias,
        };
        let mut composite = Composite::preset(method, &opts)?;
        for o in &self.rules {
            composite = composite.with_rule(o.layer.clone(), o.rule(&opts));
        }
        Ok((composite, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_overrides_parse() {
        let o: RuleOverride = "fc8=epsilon:0.25".parse().unwrap();
        assert_eq!(
            (o.layer.as_str(), o.rule.as_str(), o.param),
            ("fc8", "epsilon", Some(0.25))
        );
        let opts = PresetOptions::default();
        assert_eq!(o.rule(&opts), Rule::Epsilon { epsilon: 0.25 });
        let o: RuleOverride = "conv1=alpha-beta:3".parse().unwrap();
        assert_eq!(
            o.rule(&opts),
            Rule::AlphaBeta {
                alpha: 3.0,
                beta: 2.0
            }
        );
        let o: RuleOverride = "layer1.0=sum".parse().unwrap();
        assert_eq!(o.rule(&opts), Rule::SumProportional);
        for bad in [
            "fc8",
            "=zplus",
            "fc8=",
            "fc8=magic",
            "fc8=zplus:1",
            "fc8=epsilon:x",
        ] {
            assert!(bad.parse::<RuleOverride>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_parse() {
        assert_eq!("-1".parse::<BoundValues>().unwrap().0, vec![-1.0]);
        assert_eq!(
            "1, 2,3".parse::<BoundValues>().unwrap().0,
            vec![1.0, 2.0, 3.0]
        );
        assert!("x".parse::<BoundValues>().is_err());
        assert!("inf".parse::<BoundValues>().is_err());
    }
}
