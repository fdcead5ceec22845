//! The options that choose and parameterise the rules (`explain`, `sheet`), parsed once into
//! typed values.

use std::str::FromStr;

use anyhow::Result;
use vidlrp_core::{Composite, Method, PoolRule, PresetOptions};
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
        Ok((Composite::preset(method, &opts)?, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
