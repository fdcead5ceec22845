//! The report's sections on the paper's claims (judged per model and pooled by
//! `vidlrp_experiment`, one rule for all) and on faithfulness.

use std::path::Path;

use vidlrp_core::Method;
use vidlrp_dataset::{AnalysisMethod, EvaluationSummary};
use vidlrp_experiment::{ClaimResult, Judged};

use crate::report_doc::Block;

/// A share as a percentage with one decimal (`-` if unknown).
pub fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1} %", 100.0 * v))
}

/// `value [lo, hi]` of an estimate.
fn show_judged(j: &Judged) -> String {
    let e = &j.estimate;
    format!(
        "{:.4} [{:.4}, {:.4}]",
        e.value, e.interval.lo, e.interval.hi
    )
}

/// The claims table (pooled verdicts, holds in k of N), the per-model table and the rule.
pub fn claims_section(results: &[ClaimResult], seeds: usize, resamples: usize) -> Vec<Block> {
    let verdict = |c: &ClaimResult, j: &Judged| match &c.claim.not_judged {
        Some(_) => format!("not judged ({})", j.verdict.word()),
        None => format!("**{}**", j.verdict.word()),
    };
    let mut doc = vec![Block::Heading(2, "The paper's claims, measured".into())];
    doc.push(Block::Table(
        vec![
            "#".into(),
            "claim".into(),
            "statistic (claimed side)".into(),
            format!("pooled over {seeds} models [95 % interval]"),
            "verdict".into(),
            "holds in".into(),
        ],
        results
            .iter()
            .map(|c| {
                vec![
                    c.claim.id.clone(),
                    c.claim.statement.clone(),
                    format!("{} ({})", c.claim.statistic_text, c.claim.side.symbol()),
                    show_judged(&c.pooled),
                    verdict(c, &c.pooled),
                    format!("{} of {seeds}", c.holds_in),
                ]
            })
            .collect(),
    ));
    let not_judged: Vec<String> = (results.iter())
        .filter_map(|c| Some(format!("{}: {}", c.claim.id, c.claim.not_judged.as_ref()?)))
        .collect();
    doc.push(Block::Para(format!(
        "**The rule, the same for every claim, stated before the run:** a claim *holds* if the \
         95 % bootstrap interval of its statistic lies wholly on the claimed side of 0, *does \
         not hold* if it lies wholly on the other side, and is *inconclusive* if it contains 0. \
         Each statistic compares conditions measured on the same test snippets, and every \
         bootstrap replicate draws test videos with replacement and takes all conditions of a \
         drawn video together (paired; {resamples} replicates). Per model, the interval is the \
         percentile interval over test videos; pooled, the estimate is the mean of the \
         per-model estimates and the interval a two-level bootstrap (models with replacement, \
         then test videos within each drawn model; deviations scaled by sqrt(k/(k-1)) for k \
         models). C6 picks the best step: its interval is simultaneous over the steps (each \
         step's difference to the training step within its own bound at once, the best picked \
         anew in every replicate), so picking the best is paid for. On 200 simulated data sets \
         without any effect, no claim came out *holds* on more than 8 % of them, for one model \
         and for three pooled (`crates/vidlrp-experiment/tests/verdicts.rs`; where the three \
         models differ by a random offset, up to 8 %). \"Holds in k of N\" counts the models \
         whose own interval lies on the claimed side.{}",
        if not_judged.is_empty() {
            String::new()
        } else {
            format!(" Shown but not judged: {}.", not_judged.join("; "))
        }
    )));
    doc.push(Block::Heading(3, "Per model".into()));
    let mut header = vec!["#".into()];
    header.extend((1..=seeds).map(|k| format!("model {k} [95 % interval]: verdict")));
    doc.push(Block::Table(
        header,
        results
            .iter()
            .map(|c| {
                let mut row = vec![c.claim.id.clone()];
                row.extend(
                    (c.per_model.iter())
                        .map(|j| format!("{}: {}", show_judged(j), j.verdict.word())),
                );
                row
            })
            .collect(),
    ));
    doc
}

/// The faithfulness section: AOPC (MoRF) of DTD and SA against the random baseline, from the
/// evaluations under `dir` (`eval-regions`, `eval-frames`; one missing is left out) written
/// under the name `shown` (relative to the report), and whether their intervals separate.
pub fn faithfulness(dir: &Path, shown: &str) -> Vec<Block> {
    let out = dir;
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
        format!("{shown}/eval-regions/perturbation_morf.png"),
        "Mean score drop after removing k regions of 8x8 pixels (MoRF).".into(),
    ));
    doc.push(Block::Figure(
        format!("{shown}/eval-frames/perturbation_morf.png"),
        "Mean score drop after removing k frames (frame flipping, MoRF).".into(),
    ));

    doc
}
