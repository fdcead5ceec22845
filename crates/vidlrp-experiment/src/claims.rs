//! The paper's claims, each one statistic with a paired bootstrap interval, all judged by one
//! rule ([`verdict`]).
//!
//! | claim | statistic | claimed side |
//! |---|---|---|
//! | C1 (DTD), C1 (SA) | border strength `a` of the trained model | `> 0` |
//! | C2 | `a(DTD) - a(DTD-u)` on the same snippets | `> 0` |
//! | C3 | `a(DTD-u)` | `< 0` |
//! | C4 | Spearman correlation of the step (0, 1, 2, ...) with `a` at that step | `< 0` |
//! | C5 | mean `b'` over the first offsets (0, 8, 16) minus mean `b'` over offsets `>= 32` | `> 0` |
//! | C6 | `max_{k != s_train} acc(k) - acc(s_train)`, top-1 (top-5 judged only where chance top-5 `<= 25 %`) | `> 0` |
//!
//! **Verdict**: *holds* if the 95 % interval lies wholly on the claimed side of 0, *does not
//! hold* if it lies wholly on the other side, *inconclusive* otherwise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vidlrp_dataset::{AnalysisMethod, Records};

use crate::paired::{pooled, Bootstrap, Estimate, Interval, Paired, Statistic};
use crate::{ExperimentError, Result};

/// The side of 0 a claim puts its statistic on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// `> 0`.
    Positive,
    /// `< 0`.
    Negative,
}

impl Side {
    /// `"> 0"` or `"< 0"`.
    pub fn symbol(self) -> &'static str {
        match self {
            Side::Positive => "> 0",
            Side::Negative => "< 0",
        }
    }
}

/// A verdict on a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The interval lies wholly on the claimed side of 0.
    Holds,
    /// The interval lies wholly on the other side.
    DoesNotHold,
    /// The interval contains 0.
    Inconclusive,
}

impl Verdict {
    /// The verdict in words.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The one decision rule of every claim: *holds* if `interval` lies wholly on `side` of 0,
/// *does not hold* if wholly on the other side, *inconclusive* if it contains 0 (an end at
/// exactly 0 counts as containing it).
///
/// ```
/// use vidlrp_experiment::{verdict, Interval, Side, Verdict};
/// let iv = |lo, hi| Interval { lo, hi };
/// assert_eq!(verdict(iv(0.1, 0.3), Side::Positive), Verdict::Holds);
/// assert_eq!(verdict(iv(-0.3, -0.1), Side::Positive), Verdict::DoesNotHold);
/// assert_eq!(verdict(iv(-0.3, -0.1), Side::Negative), Verdict::Holds);
/// assert_eq!(verdict(iv(-0.1, 0.1), Side::Negative), Verdict::Inconclusive);
/// assert_eq!(verdict(iv(0.0, 0.1), Side::Positive), Verdict::Inconclusive);
/// ```
pub fn verdict(interval: Interval, side: Side) -> Verdict {
    let (lo, hi) = match side {
        Side::Positive => (interval.lo, interval.hi),
        Side::Negative => (-interval.hi, -interval.lo),
    };
    if lo > 0.0 {
        Verdict::Holds
    } else if hi < 0.0 {
        Verdict::DoesNotHold
    } else {
        Verdict::Inconclusive
    }
}

/// A per-item quantity of one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quantity {
    /// Border strength `a` of the item's share vector (the quadratic fit's `tau^2` term).
    Border,
    /// Lookahead strength `b'` (the linear fit's slope).
    Lookahead,
    /// 1 if the true class is the top-1 class, else 0.
    Top1,
    /// 1 if the true class is among the top 5, else 0.
    Top5,
}

/// Which run of a model a condition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Run {
    /// `profile`: DTD, SA and DTD-u at offset 0, the training step.
    Profile,
    /// `sweep-steps`: DTD and SA at every step.
    Steps,
    /// `sweep-offsets`: DTD at every offset.
    Offsets,
}

/// One condition a claim reads: a quantity of a method at an offset and step in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionRef {
    /// The run holding it.
    pub run: Run,
    /// The method's name (`dtd`, `sa`, `dtd-u`).
    pub method: String,
    /// Snippet step (`None`: the run's only one).
    pub step: Option<usize>,
    /// Snippet offset (`None`: the run's only one).
    pub offset: Option<usize>,
    /// The per-item quantity.
    pub quantity: Quantity,
}

/// A claim: what it says, its statistic over its conditions and the side it claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// Short label (`C1 (DTD)`).
    pub id: String,
    /// The claim in words.
    pub statement: String,
    /// What the statistic is, in words.
    pub statistic_text: String,
    /// The statistic of the condition means.
    pub statistic: Statistic,
    /// The conditions, in the statistic's order.
    pub conditions: Vec<ConditionRef>,
    /// The claimed side of 0.
    pub side: Side,
    /// Why the claim is shown but not judged (`None`: judged).
    pub not_judged: Option<String>,
}

/// The experiment's design as far as the claims need it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Design {
    /// The steps of the step sweep (0: one frame repeated).
    pub steps: Vec<usize>,
    /// The offsets of the offset sweep.
    pub offsets: Vec<usize>,
    /// The step the models were trained at.
    pub train_step: usize,
    /// Number of classes (chance top-5 is `min(5, classes) / classes`).
    pub classes: usize,
}

/// The offsets C5 calls "first" (the title-card frames of the paper's Fig. 4).
pub const FIRST_OFFSETS: [usize; 3] = [0, 8, 16];
/// C5's later offsets start here.
pub const LATE_OFFSETS_FROM: usize = 32;
/// Top-5 accuracy is judged only where chance top-5 is at most this.
pub const MAX_CHANCE_TOP5: f64 = 0.25;

fn cond(
    run: Run,
    method: &str,
    step: Option<usize>,
    offset: Option<usize>,
    q: Quantity,
) -> ConditionRef {
    ConditionRef {
        run,
        method: method.into(),
        step,
        offset,
        quantity: q,
    }
}

/// The claims of `design`, in order C1 (DTD), C1 (SA), C2, C3, C4, C5, C6 (top-1), C6
/// (top-5).
///
/// **Errors** if the design cannot carry a claim: fewer than two steps, the training step not
/// among them, no first or no late offset.
pub fn claims(design: &Design) -> Result<Vec<Claim>> {
    use Quantity::{Border, Lookahead, Top1, Top5};
    let profile = |method: &str, q| cond(Run::Profile, method, None, None, q);
    let mut out = vec![
        Claim {
            id: "C1 (DTD)".into(),
            statement: "Border effect under DTD: the trained model's relevance piles up at both \
                        ends of the snippet"
                .into(),
            statistic_text: "border strength a of DTD".into(),
            statistic: Statistic::Mean,
            conditions: vec![profile("dtd", Border)],
            side: Side::Positive,
            not_judged: None,
        },
        Claim {
            id: "C1 (SA)".into(),
            statement: "Border effect under SA".into(),
            statistic_text: "border strength a of SA".into(),
            statistic: Statistic::Mean,
            conditions: vec![profile("sa", Border)],
            side: Side::Positive,
            not_judged: None,
        },
        Claim {
            id: "C2".into(),
            statement: "Training moves relevance to the borders".into(),
            statistic_text: "a(DTD) - a(DTD-u), paired on the same snippets".into(),
            statistic: Statistic::Difference,
            conditions: vec![profile("dtd", Border), profile("dtd-u", Border)],
            side: Side::Positive,
            not_judged: None,
        },
        Claim {
            id: "C3".into(),
            statement: "No border effect without training".into(),
            statistic_text: "border strength a of DTD-u".into(),
            statistic: Statistic::Mean,
            conditions: vec![profile("dtd-u", Border)],
            side: Side::Negative,
            not_judged: None,
        },
    ];
    if design.steps.len() < 2 {
        return Err(ExperimentError::Data(
            "C4 and C6 need at least two steps".into(),
        ));
    }
    out.push(Claim {
        id: "C4".into(),
        statement: "The border effect shrinks as the step grows".into(),
        statistic_text: format!(
            "Spearman correlation of the step ({}) with DTD's a at that step",
            join(&design.steps)
        ),
        statistic: Statistic::Spearman {
            x: design.steps.iter().map(|&s| s as f64).collect(),
        },
        conditions: (design.steps.iter())
            .map(|&s| cond(Run::Steps, "dtd", Some(s), None, Border))
            .collect(),
        side: Side::Negative,
        not_judged: None,
    });
    let first: Vec<usize> = (design.offsets.iter().copied())
        .filter(|o| FIRST_OFFSETS.contains(o))
        .collect();
    let late: Vec<usize> = (design.offsets.iter().copied())
        .filter(|&o| o >= LATE_OFFSETS_FROM)
        .collect();
    if first.is_empty() || late.is_empty() {
        return Err(ExperimentError::Data(format!(
            "C5 needs offsets among {FIRST_OFFSETS:?} and offsets from {LATE_OFFSETS_FROM}"
        )));
    }
    out.push(Claim {
        id: "C5".into(),
        statement: "Lookahead is highest at the first offsets".into(),
        statistic_text: format!(
            "mean b' over offsets {} minus mean b' over offsets {}..={}",
            join(&first),
            late[0],
            late[late.len() - 1]
        ),
        statistic: Statistic::GroupDifference { first: first.len() },
        conditions: (first.iter().chain(&late))
            .map(|&o| cond(Run::Offsets, "dtd", None, Some(o), Lookahead))
            .collect(),
        side: Side::Positive,
        not_judged: None,
    });
    let Some(reference) = design.steps.iter().position(|&s| s == design.train_step) else {
        return Err(ExperimentError::Data(format!(
            "the training step {} is not among the steps {}",
            design.train_step,
            join(&design.steps)
        )));
    };
    let chance5 = 5.0f64.min(design.classes as f64) / design.classes as f64;
    for (q, k, not_judged) in [
        (Top1, 1, None),
        (
            Top5,
            5,
            (chance5 > MAX_CHANCE_TOP5).then(|| {
                format!(
                    "with {} classes chance top-5 is {:.0} % (judged only at <= {:.0} %)",
                    design.classes,
                    100.0 * chance5,
                    100.0 * MAX_CHANCE_TOP5
                )
            }),
        ),
    ] {
        out.push(Claim {
            id: format!("C6 (top-{k})"),
            statement: format!(
                "A step other than the training step ({}) gives higher top-{k} accuracy",
                design.train_step
            ),
            statistic_text: format!(
                "max over steps k != {} of acc(k) - acc({}), the best step picked in every \
                 replicate",
                design.train_step, design.train_step
            ),
            statistic: Statistic::BestOverReference { reference },
            conditions: (design.steps.iter())
                .map(|&s| cond(Run::Steps, "dtd", Some(s), None, q))
                .collect(),
            side: Side::Positive,
            not_judged,
        });
    }
    Ok(out)
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The three runs of one model.
#[derive(Debug, Clone)]
pub struct ModelRuns {
    /// `profile` (DTD, SA, DTD-u).
    pub profile: Records,
    /// `sweep-steps`.
    pub steps: Records,
    /// `sweep-offsets`.
    pub offsets: Records,
}

impl ModelRuns {
    /// The per-item values of one condition (items without the quantity, e.g. without a
    /// label, left out).
    ///
    /// **Errors** if the run has no such condition, or none or several match.
    pub fn values(&self, c: &ConditionRef) -> Result<BTreeMap<usize, f64>> {
        let rec = match c.run {
            Run::Profile => &self.profile,
            Run::Steps => &self.steps,
            Run::Offsets => &self.offsets,
        };
        let method: AnalysisMethod = c
            .method
            .parse()
            .map_err(|e| ExperimentError::Data(format!("method {:?}: {e}", c.method)))?;
        let matching: Vec<_> = (rec.conditions.iter())
            .filter(|k| k.method == method)
            .filter(|k| c.step.is_none_or(|s| k.step == s))
            .filter(|k| c.offset.is_none_or(|o| k.offset == o))
            .collect();
        let [found] = matching.as_slice() else {
            return Err(ExperimentError::Data(format!(
                "the {:?} run has {} conditions for {} step {:?} offset {:?} (one needed)",
                c.run,
                matching.len(),
                c.method,
                c.step,
                c.offset
            )));
        };
        let acc = rec.accumulators.get(&found.key).ok_or_else(|| {
            ExperimentError::Data(format!("no observations for condition {}", found.key))
        })?;
        let mut out = BTreeMap::new();
        for o in acc.observations() {
            let v = match c.quantity {
                Quantity::Border => Some(vidlrp_stats::fit_quadratic(&o.shares)?[0]),
                Quantity::Lookahead => Some(vidlrp_stats::fit_linear(&o.shares)?[0]),
                Quantity::Top1 => o.top1.map(f64::from),
                Quantity::Top5 => o.top5.map(f64::from),
            };
            if let Some(v) = v {
                out.insert(o.item, v);
            }
        }
        Ok(out)
    }

    /// The claim's conditions of this model, paired on their shared items.
    pub fn paired(&self, claim: &Claim) -> Result<Paired> {
        let values: Vec<BTreeMap<usize, f64>> = (claim.conditions.iter())
            .map(|c| self.values(c))
            .collect::<Result<_>>()?;
        let refs: Vec<&BTreeMap<usize, f64>> = values.iter().collect();
        Paired::new(&refs).map_err(|e| ExperimentError::Data(format!("{}: {e}", claim.id)))
    }
}

/// A claim's estimate and verdict on one model, or pooled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    /// The estimate with its interval.
    pub estimate: Estimate,
    /// The verdict of [`verdict`] (also given for claims that are not judged, for the
    /// record).
    pub verdict: Verdict,
}

/// A claim judged on every model and pooled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimResult {
    /// The claim.
    pub claim: Claim,
    /// One per model, in the order given.
    pub per_model: Vec<Judged>,
    /// Pooled over the models (two-level bootstrap).
    pub pooled: Judged,
    /// Models whose own verdict is *holds*.
    pub holds_in: usize,
}

impl ClaimResult {
    /// The pooled verdict in words, or `not judged` for a claim that is shown only.
    pub fn verdict_word(&self) -> &'static str {
        match self.claim.not_judged {
            Some(_) => "not judged",
            None => self.pooled.verdict.word(),
        }
    }
}

/// Judges every claim on every model and pooled. The bootstrap of model `m` uses seed
/// `b.seed + m`; the pooled one `b.seed + models`.
///
/// **Errors** without models, or if a model lacks a condition a claim needs.
pub fn judge(claims: &[Claim], models: &[ModelRuns], b: Bootstrap) -> Result<Vec<ClaimResult>> {
    if models.is_empty() {
        return Err(ExperimentError::Data("no model to judge".into()));
    }
    claims
        .iter()
        .map(|claim| {
            let paired: Vec<Paired> = models
                .iter()
                .map(|m| m.paired(claim))
                .collect::<Result<_>>()?;
            judge_paired(claim, &paired, b)
        })
        .collect()
}

/// Judges one claim on its per-model paired values (see [`judge`]).
///
/// **Errors** as [`pooled`].
pub fn judge_paired(claim: &Claim, paired: &[Paired], b: Bootstrap) -> Result<ClaimResult> {
    let judged = |estimate: Estimate| Judged {
        estimate,
        verdict: verdict(estimate.interval, claim.side),
    };
    let per_model: Vec<Judged> = (paired.iter().enumerate())
        .map(|(m, p)| {
            let b = Bootstrap {
                seed: b.seed.wrapping_add(m as u64),
                ..b
            };
            Ok(judged(pooled(
                std::slice::from_ref(p),
                &claim.statistic,
                b,
            )?))
        })
        .collect::<Result<_>>()?;
    let b_pooled = Bootstrap {
        seed: b.seed.wrapping_add(paired.len() as u64),
        ..b
    };
    let pooled = judged(pooled(paired, &claim.statistic, b_pooled)?);
    Ok(ClaimResult {
        claim: claim.clone(),
        holds_in: per_model
            .iter()
            .filter(|j| j.verdict == Verdict::Holds)
            .count(),
        per_model,
        pooled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn design() -> Design {
        Design {
            steps: vec![0, 1, 2, 4, 8, 16, 32],
            offsets: (0..=64).step_by(8).collect(),
            train_step: 1,
            classes: 8,
        }
    }

    #[test]
    fn the_claims_of_the_default_design() {
        let c = claims(&design()).unwrap();
        let ids: Vec<&str> = c.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "C1 (DTD)",
                "C1 (SA)",
                "C2",
                "C3",
                "C4",
                "C5",
                "C6 (top-1)",
                "C6 (top-5)"
            ]
        );
        // C5: offsets 0, 8, 16 against 32..=64.
        assert_eq!(c[5].statistic, Statistic::GroupDifference { first: 3 });
        assert_eq!(c[5].conditions.len(), 3 + 5);
        // C6 against step 1 (index 1); top-5 with 8 classes is not judged.
        assert_eq!(
            c[6].statistic,
            Statistic::BestOverReference { reference: 1 }
        );
        assert!(c[6].not_judged.is_none());
        assert!(c[7].not_judged.as_deref().unwrap().contains("62 %"));
        // With 24 classes chance top-5 is 21 %: judged.
        let c = claims(&Design {
            classes: 24,
            ..design()
        })
        .unwrap();
        assert!(c[7].not_judged.is_none());
    }

    #[test]
    fn designs_that_cannot_carry_a_claim_are_errors() {
        assert!(claims(&Design {
            train_step: 3,
            ..design()
        })
        .is_err());
        assert!(claims(&Design {
            offsets: vec![0, 8],
            ..design()
        })
        .is_err());
        assert!(claims(&Design {
            steps: vec![1],
            ..design()
        })
        .is_err());
    }
}
