//! `vidlrp reproduce`: the paper's experiment end to end, in one command. A synthetic data set
//! where motion decides the class, C3D-shaped models trained on random snippets of it from
//! several seeds (as the paper's model was trained), the paper's analyses on the held-out
//! videos for each, and a report that judges each of the paper's claims per model and pooled
//! (`vidlrp_experiment`).
//!
//! Every stage calls what its `vidlrp` command calls (`synth::write`, `train::train`,
//! `analysis::analyse`, ...) with typed settings from the [`Plan`], writing into its own
//! directory under `--out`; a stage whose output exists is not run again, and the analyses
//! resume from their journals, so an interrupted run continues where it stopped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;
use vidlrp_c3d::C3dSpec;
use vidlrp_dataset::{read_labels, Manifest};
use vidlrp_snippet::Preprocess;

use crate::reproduce_plan::Plan;
use crate::reproduce_stages::{
    examples, model_stages, stages_per_model, synth_spec, train, Shared, Stages,
};
use crate::summary::Finished;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp reproduce --out repro            # the default run: 3 models (under 10 minutes on 2 cores)\n  \
    vidlrp reproduce --out repro --seeds 5  # five models on the same data set\n  \
    vidlrp reproduce --out repro-quick --quick   # a small run (under 2 minutes), what CI runs\n\n\
    Stages, each what a vidlrp command runs, writing into OUT: synth (data/), then for each model k\n\
    train (seed-k/model/), init (its untrained twin), profile (seed-k/profile/: Table 1, Fig. 2),\n\
    sweep-steps (seed-k/steps/: Figs. 3, 5), sweep-offsets (seed-k/offsets/: Fig. 4); for the\n\
    first model sheet (seed-1/sheets/) and evaluate (seed-1/eval-*/); then OUT/REPORT.md and\n\
    OUT/report.html: the data set, the training, Table 1, the figures and the paper's claims,\n\
    each a statistic with a paired 95 % bootstrap interval per model and pooled over the models,\n\
    judged by one rule: holds if the interval lies on the claimed side of 0, does not hold if on\n\
    the other, inconclusive otherwise. A rerun on the same OUT skips the finished stages.")]
pub struct Args {
    /// Output directory (created if missing; finished stages in it are kept).
    #[arg(long)]
    pub out: PathBuf,
    /// A small run for CI: 4 classes, 24 short videos, 2 epochs, steps up to 4.
    #[arg(long)]
    pub quick: bool,
    /// Seed of the data set and of the first model's training; model k trains from SEED + k - 1.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Models trained on the same data set, each from its own seed with its own untrained twin
    /// (default: 3; 2 with --quick). Every claim is judged per model and pooled.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=20), conflicts_with = "weights")]
    pub seeds: Option<u64>,
    /// Judge the claims on these models instead of training on synthetic data: repeat for
    /// several (each one model, with its own untrained twin); needs --manifest.
    #[arg(long = "weights", value_name = "WEIGHTS", requires = "manifest")]
    pub weights: Vec<PathBuf>,
    /// The test videos (`path,label`) the given --weights are analysed on.
    #[arg(long, requires = "weights")]
    pub manifest: Option<PathBuf>,
    /// Class names of the given --weights, one per line.
    #[arg(long, requires = "weights")]
    pub labels: Option<PathBuf>,
    /// The step the given --weights were trained at: the profile's and offset sweep's step,
    /// and the reference of the best-step claim.
    #[arg(long, default_value_t = 1, requires = "weights")]
    pub train_step: usize,
    /// Preprocessing of the given --weights (default: the preset recorded in the weights, else
    /// caffe).
    #[arg(long, requires = "weights")]
    pub preset: Option<Preprocess>,
    /// A study: the whole run (data set, models, analyses, claims) at each level of one factor,
    /// FACTOR=v1,v2,... with FACTOR action-share, train-step or title-share; each level in
    /// OUT/FACTOR=v/, the claims per level in OUT/STUDY.md.
    #[arg(long, conflicts_with = "weights", value_parser = crate::reproduce_study::parse_vary)]
    pub vary: Option<crate::reproduce_study::Vary>,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

/// One model of the run: its number (1-based), seed, directory and weights.
pub struct SeedRun {
    /// 1, 2, ...
    pub index: usize,
    /// The seed of its training and of its untrained twin.
    pub seed: u64,
    /// `OUT/seed-<index>`.
    pub dir: PathBuf,
    /// Its weights: trained into `dir/model/model.safetensors`, or given.
    pub weights: PathBuf,
}

/// `vidlrp reproduce`.
pub fn run(a: Args) -> Result<Finished> {
    let mut plan = if a.quick { Plan::quick() } else { Plan::full() };
    if let Some(n) = a.seeds {
        plan.seeds = n as usize;
    }
    if let Some(vary) = &a.vary {
        return crate::reproduce_study::study(&a, &plan, vary);
    }
    let started = Instant::now();
    let claims = run_one(&a, plan.clone(), &a.out)?;
    let out = &a.out;
    let mut text = format!(
        "report: {}\nhtml:   {}\nclaims, pooled over {} models (holds in k of {}):\n",
        out.join("REPORT.md").display(),
        out.join("report.html").display(),
        claims.seeds,
        claims.seeds
    );
    for c in &claims.results {
        let verdict = match &c.claim.not_judged {
            Some(_) => "not judged".to_string(),
            None => c.pooled.verdict.word().to_string(),
        };
        text += &format!(
            "{:<12} {:<14} {}/{}  {}\n",
            c.claim.id, verdict, c.holds_in, claims.seeds, c.claim.statement
        );
    }
    let json = json!({"report": out.join("REPORT.md"), "html": out.join("report.html"),
                      "seeds": claims.seeds,
                      "claims": claims.results.iter().map(claim_json).collect::<Vec<_>>(),
                      "seconds": started.elapsed().as_secs_f64()});
    Ok(Finished::with_text(json, text))
}

/// The judged claims of one run and its number of models.
pub struct RunClaims {
    /// Models.
    pub seeds: usize,
    /// The claims, judged per model and pooled.
    pub results: Vec<vidlrp_experiment::ClaimResult>,
}

/// One whole run with `plan` into `out`: every stage (kept where finished), then the report.
pub fn run_one(a: &Args, mut plan: Plan, out: &Path) -> Result<RunClaims> {
    let given = !a.weights.is_empty();
    if given {
        plan.seeds = a.weights.len();
        plan.train_step = a.train_step;
        if !plan.steps.contains(&a.train_step) {
            plan.steps.push(a.train_step);
            plan.steps.sort_unstable();
        }
        for w in &a.weights {
            let spec = C3dSpec::from_weights(&vidlrp_c3d::load_weights(w)?.tensors)
                .with_context(|| format!("{}: not a C3D vidlrp reads", w.display()))?;
            plan.classes = spec.classes;
        }
    }
    let seeds: Vec<SeedRun> = (1..=plan.seeds)
        .map(|index| {
            let dir = out.join(format!("seed-{index}"));
            SeedRun {
                index,
                seed: a.seed + index as u64 - 1,
                weights: match a.weights.get(index - 1) {
                    Some(w) => w.clone(),
                    None => dir.join("model/model.safetensors"),
                },
                dir,
            }
        })
        .collect();
    let dirs = std::iter::once(out.to_path_buf())
        .chain(seeds.iter().map(|s| s.dir.join("model")))
        .chain(std::iter::once(seeds[0].dir.join("sheets")));
    for d in dirs {
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    // The settings of the run the directory holds: finished stages are kept only for the same.
    let settings = json!({"plan": &plan, "seed": a.seed, "weights": &a.weights,
                          "manifest": &a.manifest, "labels": &a.labels,
                          "preset": a.preset.as_ref().map(ToString::to_string)});
    let settings = serde_json::to_string_pretty(&settings)? + "\n";
    let recorded = out.join("settings.json");
    match std::fs::read_to_string(&recorded) {
        Ok(old) if old != settings => bail!(
            "{} holds a run with other settings ({}); choose another output directory",
            out.display(),
            recorded.display()
        ),
        Ok(_) => {}
        Err(_) => vidlrp_io::atomic_write(&recorded, |w| {
            std::io::Write::write_all(w, settings.as_bytes())
        })?,
    }
    let started = Instant::now();
    let mut stages = Stages {
        runs: Vec::new(),
        total: usize::from(!given) + stages_per_model(given) * seeds.len() + 4,
    };
    let data = out.join("data");
    let (test, labels) = match &a.manifest {
        Some(m) if given => {
            let names = a.labels.as_deref().map(read_labels).transpose()?;
            (Manifest::read(m, names.as_deref())?, a.labels.clone())
        }
        _ => {
            let spec = synth_spec(&plan, a.seed);
            stages.run("synth", "data/", &data.join("synth.json"), || {
                crate::synth::write(&spec, &data)
            })?;
            let labels = Some(data.join("labels.txt"));
            (Manifest::read(&data.join("test.csv"), None)?, labels)
        }
    };
    let shared = Shared {
        plan: &plan,
        out,
        test: &test,
        labels,
        preset: a.preset.clone(),
        args: a,
    };
    for s in &seeds {
        if !given {
            train(&mut stages, &shared, s)?;
        }
        model_stages(&mut stages, &shared, s)?;
    }
    // Heatmaps and faithfulness of the first model.
    examples(&mut stages, &shared, &seeds[0])?;

    let report = crate::reproduce_report::Inputs {
        out: out.to_path_buf(),
        plan: plan.clone(),
        seeds,
        chance: plan.chance(),
        stages: stages.runs,
        total_seconds: started.elapsed().as_secs_f64(),
        quick: a.quick,
        given: given.then(|| crate::reproduce_report::Given {
            manifest: a.manifest.clone().unwrap_or_default(),
            videos: test.items.len(),
        }),
    };
    let results = crate::reproduce_report::write(&report)?;
    Ok(RunClaims {
        seeds: report.seeds.len(),
        results,
    })
}

/// A judged claim as the command's JSON reports it.
pub fn claim_json(c: &vidlrp_experiment::ClaimResult) -> serde_json::Value {
    let judged = |j: &vidlrp_experiment::Judged| {
        json!({"value": j.estimate.value, "lo": j.estimate.interval.lo,
               "hi": j.estimate.interval.hi, "verdict": j.verdict.word()})
    };
    json!({
        "id": c.claim.id,
        "claim": c.claim.statement,
        "statistic": c.claim.statistic_text,
        "side": c.claim.side.symbol(),
        "judged": c.claim.not_judged.is_none(),
        "not_judged": c.claim.not_judged,
        "pooled": judged(&c.pooled),
        "verdict": if c.claim.not_judged.is_some() { "not judged" } else { c.pooled.verdict.word() },
        "holds_in": c.holds_in,
        "per_seed": c.per_model.iter().map(judged).collect::<Vec<_>>(),
    })
}
