//! The paper's five claims, each judged by one rule on the measured estimates and their
//! bootstrap intervals.

use std::path::Path;

use vidlrp_core::Method;
use vidlrp_dataset::{AnalysisMethod, ConditionSummary, EvaluationSummary, Summary};

use crate::report_doc::Block;

/// A verdict on a claim.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Holds,
    DoesNotHold,
    Inconclusive,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// A value with its bootstrap interval, from a summary's `effects`.
#[derive(Clone, Copy)]
pub struct Estimate {
    value: f64,
    lo: Option<f64>,
    hi: Option<f64>,
}

impl Estimate {
    fn new(value: f64, ci: Option<vidlrp_stats::Interval>) -> Self {
        Self {
            value,
            lo: ci.map(|i| i.lo),
            hi: ci.map(|i| i.hi),
        }
    }

    /// The border strength `a` of a condition, with its interval.
    pub fn border(c: &ConditionSummary) -> Option<Self> {
        let e = c.effects.as_ref()?;
        Some(Self::new(e.border, e.border_ci))
    }

    /// The lookahead strength `b'` of a condition, with its interval.
    pub fn lookahead(c: &ConditionSummary) -> Option<Self> {
        let e = c.effects.as_ref()?;
        Some(Self::new(e.lookahead, e.lookahead_ci))
    }

    /// `> 0` with the whole interval above 0 holds, the whole interval below does not.
    fn sign(self, positive: bool) -> Verdict {
        let (lo, hi) = (self.lo.unwrap_or(self.value), self.hi.unwrap_or(self.value));
        let (lo, hi) = if positive { (lo, hi) } else { (-hi, -lo) };
        if lo > 0.0 {
            Verdict::Holds
        } else if hi < 0.0 {
            Verdict::DoesNotHold
        } else {
            Verdict::Inconclusive
        }
    }

    pub fn show(self) -> String {
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) => format!("{:.4} [{lo:.4}, {hi:.4}]", self.value),
            _ => format!("{:.4}", self.value),
        }
    }
}

pub fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1} %", 100.0 * v))
}

/// One claim: what it says, what was measured, and the verdict.
pub struct Claim {
    /// The claim, in words.
    pub claim: String,
    /// The measured values with their intervals.
    pub measured: String,
    /// Its verdict under the claim's rule.
    pub verdict: Verdict,
}

/// The five claims on the profile, step and offset summaries.
pub fn judge(profile: &Summary, steps: &Summary, offsets: &Summary) -> Vec<Claim> {
    let border = |s: &Summary, k: &str| s.condition(k).and_then(Estimate::border);
    let mut claims: Vec<Claim> = Vec::new();
    // 1. Border a > 0 for trained DTD and SA.
    {
        let d = border(profile, "dtd");
        let s = border(profile, "sa");
        let verdict = match (d, s) {
            (Some(d), Some(s)) => match (d.sign(true), s.sign(true)) {
                (Verdict::Holds, Verdict::Holds) => Verdict::Holds,
                (Verdict::DoesNotHold, _) | (_, Verdict::DoesNotHold) => Verdict::DoesNotHold,
                _ => Verdict::Inconclusive,
            },
            _ => Verdict::Inconclusive,
        };
        claims.push(Claim::from((
            "Border effect: a > 0 for the trained model under DTD and SA".into(),
            format!(
                "DTD a = {}; SA a = {}",
                d.map_or("-".into(), Estimate::show),
                s.map_or("-".into(), Estimate::show)
            ),
            verdict,
        )));
    }
    // 2. a < 0 for DTD-u.
    {
        let u = border(profile, "dtd-u");
        claims.push(Claim::from((
            "No border effect without training: a < 0 for DTD-u".into(),
            format!("DTD-u a = {}", u.map_or("-".into(), Estimate::show)),
            u.map_or(Verdict::Inconclusive, |u| u.sign(false)),
        )));
    }
    // 3. The border effect shrinks as the step grows.
    let dtd = AnalysisMethod::Explain(Method::Dtd);
    let step_rows: Vec<(usize, Estimate, Option<f64>, Option<f64>)> = steps
        .of_method(dtd)
        .filter_map(|c| Some((c.step, Estimate::border(c)?, c.top1, c.top5)))
        .collect();
    {
        let moving: Vec<&(usize, Estimate, Option<f64>, Option<f64>)> =
            step_rows.iter().filter(|r| r.0 >= 1).collect();
        let slope = {
            let xs: Vec<f64> = moving.iter().map(|r| (r.0 as f64).log2()).collect();
            let ys: Vec<f64> = moving.iter().map(|r| r.1.value).collect();
            least_squares_slope(&xs, &ys)
        };
        let first = moving.first();
        let last = moving.last();
        let verdict = match (first, last, slope) {
            (Some(f), Some(l), Some(slope)) if f.0 != l.0 => {
                let (f_lo, l_hi) = (f.1.lo.unwrap_or(f.1.value), l.1.hi.unwrap_or(l.1.value));
                if slope >= 0.0 {
                    Verdict::DoesNotHold
                } else if l_hi < f_lo {
                    Verdict::Holds
                } else {
                    Verdict::Inconclusive
                }
            }
            _ => Verdict::Inconclusive,
        };
        claims.push(Claim::from((
            "The border effect shrinks as the step size grows".into(),
            format!(
                "a at step {}: {}; at step {}: {}; least-squares slope of a on log2(step): {}",
                first.map_or(0, |r| r.0),
                first.map_or("-".into(), |r| r.1.show()),
                last.map_or(0, |r| r.0),
                last.map_or("-".into(), |r| r.1.show()),
                slope.map_or("-".into(), |s| format!("{s:.5}"))
            ),
            verdict,
        )));
    }
    // 4. Lookahead highest at the first offsets.
    let offset_rows: Vec<(usize, Estimate)> = offsets
        .of_method(dtd)
        .filter_map(|c| Some((c.offset, Estimate::lookahead(c)?)))
        .collect();
    {
        let best = offset_rows
            .iter()
            .max_by(|a, b| a.1.value.total_cmp(&b.1.value));
        let first: Vec<f64> = offset_rows.iter().take(3).map(|r| r.1.value).collect();
        let rest: Vec<f64> = offset_rows.iter().skip(3).map(|r| r.1.value).collect();
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let (m_first, m_rest) = (mean(&first), mean(&rest));
        let first_offsets: Vec<usize> = offset_rows.iter().take(3).map(|r| r.0).collect();
        let verdict = match (best, m_first, m_rest) {
            (Some(b), Some(f), Some(r)) => {
                if first_offsets.contains(&b.0) && f > r {
                    Verdict::Holds
                } else if f <= r {
                    Verdict::DoesNotHold
                } else {
                    Verdict::Inconclusive
                }
            }
            _ => Verdict::Inconclusive,
        };
        claims.push(Claim::from((
            format!("Lookahead b' is highest at the first offsets ({first_offsets:?})"),
            format!(
                "largest b' at offset {} ({}); mean b' over the first three offsets {}, over the \
                 others {}",
                best.map_or(0, |b| b.0),
                best.map_or("-".into(), |b| b.1.show()),
                m_first.map_or("-".into(), |v| format!("{v:.4}")),
                m_rest.map_or("-".into(), |v| format!("{v:.4}"))
            ),
            verdict,
        )));
    }
    // 5. The best step for top-5 accuracy differs from the training step (1).
    {
        let score = |r: &(usize, Estimate, Option<f64>, Option<f64>)| {
            (r.3.unwrap_or(0.0), r.2.unwrap_or(0.0))
        };
        let best = step_rows.iter().max_by(|a, b| {
            let (a, b) = (score(a), score(b));
            a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))
        });
        let train = step_rows.iter().find(|r| r.0 == 1);
        let verdict = match (best, train) {
            (Some(b), Some(t)) if b.0 != 1 && score(b).0 > score(t).0 => Verdict::Holds,
            (Some(b), Some(t)) if b.0 != 1 && score(b) > score(t) => Verdict::Inconclusive,
            (Some(_), Some(_)) => Verdict::DoesNotHold,
            _ => Verdict::Inconclusive,
        };
        claims.push(Claim::from((
            "The best step size for top-5 accuracy differs from the training step (1)".into(),
            format!(
                "best step {} (top-5 {}, top-1 {}); step 1: top-5 {}, top-1 {} (over {} test \
                 snippets; top-1 breaks ties)",
                best.map_or(0, |b| b.0),
                pct(best.and_then(|b| b.3)),
                pct(best.and_then(|b| b.2)),
                pct(train.and_then(|t| t.3)),
                pct(train.and_then(|t| t.2)),
                steps
                    .condition("dtd step=1")
                    .map_or("?".into(), |c| c.n.to_string())
            ),
            verdict,
        )));
    }
    claims
}

impl From<(String, String, Verdict)> for Claim {
    fn from((claim, measured, verdict): (String, String, Verdict)) -> Self {
        Self {
            claim,
            measured,
            verdict,
        }
    }
}

/// The least-squares slope of `ys` on `xs` (`None` for fewer than two distinct `xs`).
fn least_squares_slope(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return None;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// The faithfulness section: AOPC (MoRF) of DTD and SA against the random baseline, from the
/// evaluations under `out` (`eval-regions`, `eval-frames`; one missing is left out), and
/// whether their intervals separate.
pub fn faithfulness(out: &Path) -> Vec<Block> {
    let mut doc = Vec::new();
    // --- Faithfulness: the paper's "more focused" claim as a measured number ----------------
    doc.push(Block::Heading(
        2,
        "Faithfulness: DTD against SA by perturbation".into(),
    ));
    doc.push(Block::Para(
        "The paper calls DTD \"less noisy and more focused on the class-relevant features than \
         sensitivity analysis\", judged by eye. Perturbation analysis measures it (Samek et \
         al. 2017): the test clips are tiled into regions, the most relevant regions by each \
         method are replaced by uniform noise first (MoRF), and the class score is recorded \
         after each removal; AOPC is the mean score drop over the removals (larger: the \
         explanation found what the model uses sooner). A seeded random order is the \
         baseline. Regions of 8x8 pixels of one frame (50 removals), and whole frames (frame \
         flipping, 16 removals); 95 % bootstrap intervals over clips."
            .into(),
    ));
    // Each evaluation's summary, read once.
    let evaluations: Vec<(&str, EvaluationSummary)> =
        [("eval-regions", "8x8 regions"), ("eval-frames", "frames")]
            .into_iter()
            .filter_map(|(dir, what)| Some((what, EvaluationSummary::read(&out.join(dir)).ok()?)))
            .collect();
    let mut rows = Vec::new();
    for (what, summary) in &evaluations {
        for r in &summary.results {
            rows.push(vec![
                what.to_string(),
                r.method.to_string(),
                format!("{:.4}", r.aopc.aopc),
                r.aopc
                    .interval
                    .map_or("-".into(), |i| format!("[{:.4}, {:.4}]", i.lo, i.hi)),
                r.aopc.clips.to_string(),
            ]);
        }
    }
    // (AOPC, interval low, interval high) of `method`'s first result in one summary.
    let aopc = |summary: &EvaluationSummary, method: Method| -> Option<(f64, f64, f64)> {
        let r = summary
            .results
            .iter()
            .find(|r| r.method == AnalysisMethod::Explain(method))?;
        let i = r.aopc.interval?;
        Some((r.aopc.aopc, i.lo, i.hi))
    };
    doc.push(Block::Table(
        vec![
            "regions".into(),
            "method".into(),
            "AOPC (MoRF)".into(),
            "95 % interval".into(),
            "clips".into(),
        ],
        rows,
    ));
    for (what, summary) in &evaluations {
        if let (Some(d), Some(sa)) = (aopc(summary, Method::Dtd), aopc(summary, Method::Sa)) {
            let verdict = if d.1 > sa.2 {
                "DTD's AOPC is larger than SA's (the intervals do not overlap)"
            } else if d.2 < sa.1 {
                "SA's AOPC is larger than DTD's (the intervals do not overlap)"
            } else {
                "the intervals of DTD and SA overlap: no difference shown"
            };
            doc.push(Block::Para(format!(
                "{what}: DTD {:.4}, SA {:.4}: {verdict}.",
                d.0, sa.0
            )));
        }
    }
    doc.push(Block::Figure(
        "eval-regions/perturbation_morf.png".into(),
        "Mean score drop after removing k regions of 8x8 pixels (MoRF).".into(),
    ));
    doc.push(Block::Figure(
        "eval-frames/perturbation_morf.png".into(),
        "Mean score drop after removing k frames (frame flipping, MoRF).".into(),
    ));

    doc
}
