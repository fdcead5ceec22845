//! The report's Table 1 and step table, pooled over the models (`vidlrp_experiment`'s
//! two-level bootstrap) with each model's value beside.

use anyhow::Result;
use vidlrp_dataset::Summary;
use vidlrp_experiment::{pooled, Bootstrap, ConditionRef, ModelRuns, Paired, Quantity, Run};

use crate::report_doc::Block;

/// The pooled mean of one per-item quantity over the models with its interval, and each
/// model's mean, as table cells: `(pooled, per model)`.
fn pooled_cells(
    runs: &[ModelRuns],
    c: &ConditionRef,
    resamples: usize,
) -> Result<(String, String)> {
    let paired: Vec<Paired> = runs
        .iter()
        .map(|r| Ok(Paired::new(&[&r.values(c)?])?))
        .collect::<Result<_>>()?;
    let b = Bootstrap {
        resamples,
        level: 0.95,
        seed: 0,
    };
    let e = pooled(&paired, &vidlrp_experiment::Statistic::Mean, b)?;
    let per_model: Vec<String> = paired
        .iter()
        .map(|p| format!("{:.4}", p.means()[0]))
        .collect();
    Ok((
        format!(
            "{:.4} [{:.4}, {:.4}]",
            e.value, e.interval.lo, e.interval.hi
        ),
        per_model.join(", "),
    ))
}

fn condition(run: Run, method: &str, step: Option<usize>, quantity: Quantity) -> ConditionRef {
    ConditionRef {
        run,
        method: method.into(),
        step,
        offset: None,
        quantity,
    }
}

/// Table 1: border and lookahead strengths of DTD, SA and DTD-u, pooled and per model.
pub fn table1(runs: &[ModelRuns], first: &Summary, resamples: usize) -> Result<Vec<Block>> {
    let mut rows = Vec::new();
    for (key, name) in [("dtd", "DTD"), ("sa", "SA"), ("dtd-u", "DTD-u")] {
        if first.condition(key).is_none() {
            continue;
        }
        let (a, a_each) = pooled_cells(
            runs,
            &condition(Run::Profile, key, None, Quantity::Border),
            resamples,
        )?;
        let (b, b_each) = pooled_cells(
            runs,
            &condition(Run::Profile, key, None, Quantity::Lookahead),
            resamples,
        )?;
        rows.push(vec![name.to_string(), a, a_each, b, b_each]);
    }
    Ok(vec![
        Block::Heading(2, "Table 1: border and lookahead strengths".into()),
        Block::Table(
            vec![
                "method".into(),
                "border a, pooled [95 % interval]".into(),
                "a per model".into(),
                "lookahead b', pooled [95 % interval]".into(),
                "b' per model".into(),
            ],
            rows,
        ),
        Block::Para(
            "Pooled: the mean of the models' estimates, with the two-level bootstrap interval \
             (models, then test videos). Each model's `a` and `b'` are the fits of its mean \
             share vector over the test snippets (offset 0, the training step)."
                .into(),
        ),
    ])
}

/// The step table: DTD's and SA's border strength per step pooled over the models, and the
/// models' mean top-1 and top-5 accuracy.
pub fn steps_table(runs: &[ModelRuns], first: &Summary, resamples: usize) -> Result<Vec<Block>> {
    let dtd = vidlrp_dataset::AnalysisMethod::Explain(vidlrp_core::Method::Dtd);
    let mut rows = Vec::new();
    for c in first.of_method(dtd) {
        let step = Some(c.step);
        let (d, _) = pooled_cells(
            runs,
            &condition(Run::Steps, "dtd", step, Quantity::Border),
            resamples,
        )?;
        let (s, _) = pooled_cells(
            runs,
            &condition(Run::Steps, "sa", step, Quantity::Border),
            resamples,
        )?;
        let accuracy = |q| -> Result<String> {
            let c = condition(Run::Steps, "dtd", step, q);
            let per: Vec<f64> = runs
                .iter()
                .map(|r| {
                    let v = r.values(&c)?;
                    Ok(v.values().sum::<f64>() / v.len().max(1) as f64)
                })
                .collect::<Result<_>>()?;
            Ok(format!(
                "{:.1} %",
                100.0 * per.iter().sum::<f64>() / per.len() as f64
            ))
        };
        rows.push(vec![
            c.step.to_string(),
            d,
            s,
            accuracy(Quantity::Top1)?,
            accuracy(Quantity::Top5)?,
        ]);
    }
    Ok(vec![
        Block::Heading(2, "Step size and offset".into()),
        Block::Table(
            vec![
                "step".into(),
                "DTD border a, pooled".into(),
                "SA border a, pooled".into(),
                "top-1, mean of models".into(),
                "top-5, mean of models".into(),
            ],
            rows,
        ),
    ])
}
