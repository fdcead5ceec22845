//! The report of one run: REPORT.md and report.html (figures inline) from the stages'
//! outputs, with the paper's claims judged per model and pooled.

use std::path::PathBuf;

use serde_json::Value;
use vidlrp_dataset::Records;

use crate::document::{html, markdown, Block};
use crate::run::{SeedRun, StageRun};
use crate::{ClaimResult, ModelRuns, Result};

/// The models and videos of a run on given weights.
pub struct Given {
    /// The test manifest.
    pub manifest: PathBuf,
    /// Its videos.
    pub videos: usize,
}

/// What the report is made from.
pub struct Inputs {
    /// The run's directory.
    pub out: PathBuf,
    /// The experiment's settings.
    pub plan: crate::plan::Plan,
    /// The models, in order.
    pub seeds: Vec<SeedRun>,
    /// Chance top-1 and top-5 accuracy.
    pub chance: (f64, f64),
    /// The stages, in order.
    pub stages: Vec<StageRun>,
    /// Wall time of this invocation.
    pub total_seconds: f64,
    /// Whether this is the small CI run.
    pub quick: bool,
    /// Set when the models were given, not trained on synthetic data.
    pub given: Option<Given>,
    /// Blocks appended at the end (e.g. how to run the same on other data).
    pub footer: Vec<Block>,
}

/// The three analysis runs of each model, read back.
fn model_runs(inp: &Inputs) -> Result<Vec<ModelRuns>> {
    inp.seeds
        .iter()
        .map(|s| {
            Ok(ModelRuns {
                profile: Records::read(&s.dir.join("profile"))?,
                steps: Records::read(&s.dir.join("steps"))?,
                offsets: Records::read(&s.dir.join("offsets"))?,
            })
        })
        .collect()
}

/// The paper's claims judged on every model and pooled.
fn judged(inp: &Inputs, runs: &[ModelRuns]) -> Result<Vec<ClaimResult>> {
    let plan = &inp.plan;
    let design = crate::Design {
        steps: plan.steps.clone(),
        offsets: plan.offsets.clone(),
        train_step: plan.train_step,
        classes: plan.classes,
    };
    let claims = crate::claims(&design)?;
    let b = crate::Bootstrap {
        resamples: plan.bootstrap,
        level: 0.95,
        seed: 0,
    };
    crate::judge(&claims, runs, b)
}

/// Writes REPORT.md and report.html; returns the judged claims.
pub fn write(inp: &Inputs) -> Result<Vec<ClaimResult>> {
    let out = &inp.out;
    let first = &inp.seeds[0];
    let plan = &inp.plan;
    let runs = model_runs(inp)?;
    let claims = judged(inp, &runs)?;
    let n = inp.seeds.len();

    let mut doc = vec![Block::Heading(
        1,
        "Reproducing the paper's experiment on trained C3Ds".into(),
    )];
    doc.push(Block::Para(format!(
        "This report was written by `vidlrp reproduce`{}. {n} C3D-shaped networks were trained \
         on random 16-frame snippets of the same synthetic videos, whose class is a motion (the \
         way the paper's C3D was trained on Sports-1M), each from its own seed (training seeds \
         {}), and the paper's analyses were run on the held-out test videos for each model and \
         for each model's untrained twin. Every number below was measured in this run; each \
         claim is judged per model and pooled over the models by one rule (below). Stages took \
         {:.0} s in this invocation.",
        if inp.quick {
            " in its quick form (a small smoke run: too little data and training for the claims to \
             mean much)"
        } else {
            ""
        },
        inp.seeds
            .iter()
            .map(|s| s.seed.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        inp.total_seconds
    )));
    doc.extend(crate::report::claims_section(&claims, n, plan.bootstrap));

    match &inp.given {
        Some(g) => doc.extend(crate::report_data::given(g, inp)),
        None => doc.extend(crate::report_data::synthetic(inp)?),
    }
    doc.extend(crate::report::table1(&runs, plan.bootstrap)?);
    doc.push(Block::Figure(
        "seed-1/profile/fig2_shares.png".into(),
        "Fig. 2 (model 1): frame-wise relevance shares of every test snippet (offset 0, the \
         training step), their mean, and the quadratic (border) and linear (lookahead) fits."
            .into(),
    ));
    doc.extend(crate::report::steps_table(&runs, plan.bootstrap)?);
    doc.push(Block::Figure(
        "seed-1/steps/fig3_border_vs_step.png".into(),
        "Fig. 3 (model 1): border strength against the snippet step size, DTD and SA.".into(),
    ));
    doc.push(Block::Figure(
        "seed-1/steps/fig5_top5_vs_border.png".into(),
        "Fig. 5 (model 1): top-5 accuracy against border strength, one point per step size.".into(),
    ));
    doc.push(Block::Figure(
        "seed-1/offsets/fig4_lookahead_vs_offset.png".into(),
        "Fig. 4 (model 1): DTD lookahead strength against the snippet offset.".into(),
    ));
    doc.push(Block::Heading(
        2,
        "Heatmaps: trained against untrained (model 1)".into(),
    ));
    doc.push(Block::Para(format!(
        "The same test snippet explained with DTD and SA by model 1 and by its untrained twin \
         (the DTD-u baseline: the same architecture, He-initialised with seed {}). Red is \
         positive relevance, blue negative.",
        first.seed
    )));
    doc.push(Block::Figure(
        "seed-1/sheets/trained.png".into(),
        "The trained model.".into(),
    ));
    doc.push(Block::Figure(
        "seed-1/sheets/untrained.png".into(),
        "The untrained model.".into(),
    ));
    doc.extend(crate::report_data::faithfulness(&first.dir, "seed-1"));

    if inp.given.is_none() {
        doc.extend(crate::report_data::how_chosen());
    }
    doc.push(Block::Table(
        vec!["setting".into(), "value".into()],
        // Every setting, by name.
        match serde_json::to_value(plan)? {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| vec![k.clone(), v.to_string()])
                .collect(),
            _ => Vec::new(),
        },
    ));
    doc.push(Block::Heading(2, "Stages".into()));
    doc.push(Block::Table(
        vec!["stage".into(), "seconds".into(), "output".into()],
        inp.stages
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    if s.ran {
                        format!("{:.1}", s.seconds)
                    } else {
                        "kept from an earlier run".into()
                    },
                    format!("`{}`", s.output),
                ]
            })
            .collect(),
    ));
    doc.extend(inp.footer.iter().cloned());

    let md = markdown(&doc);
    let html = html(&doc, out);
    let mut outputs = vidlrp_io::Outputs::new();
    let md_path = outputs.file(&out.join("REPORT.md"))?;
    let html_path = outputs.file(&out.join("report.html"))?;
    std::fs::write(&md_path, md)?;
    std::fs::write(&html_path, html)?;
    outputs.publish()?;
    Ok(claims)
}
