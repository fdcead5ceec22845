//! The report's section on faithfulness, and percentages.

use std::path::Path;

use vidlrp_core::Method;
use vidlrp_dataset::{AnalysisMethod, EvaluationSummary};

use vidlrp_experiment::document::Block;

/// A share as a percentage with one decimal (`-` if unknown).
pub fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1} %", 100.0 * v))
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
