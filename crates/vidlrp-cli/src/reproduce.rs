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

use anyhow::Result;
use serde_json::json;
use vidlrp_c3d::{C3dSpec, Pool5};
use vidlrp_dataset::{Condition, EvaluationOptions, RunOptions};
use vidlrp_experiment::document::Block;
use vidlrp_experiment::run::{Lab, Models, RunClaims, SheetRequest, StageResult, TrainRequest};
use vidlrp_experiment::study::{expected_seconds, level_dir, level_plans, level_text, Vary};
use vidlrp_experiment::{ClaimResult, Judged, Plan};
use vidlrp_snippet::Preprocess;
use vidlrp_synth::SynthSpec;

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
    #[arg(long, conflicts_with = "weights", value_parser = vidlrp_experiment::study::parse_vary)]
    pub vary: Option<Vary>,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

/// The CLI's lab: each stage runs what its `vidlrp` command runs, on `--device`, with the
/// commands' progress on stderr.
struct CliLab<'a> {
    device: &'a crate::device::DeviceArgs,
}

impl Lab for CliLab<'_> {
    fn synth(&self, spec: &SynthSpec, dir: &Path) -> StageResult {
        crate::synth::write(spec, dir)?;
        Ok(())
    }

    fn train(&self, r: &TrainRequest) -> StageResult {
        crate::train::train(&crate::train::Request {
            manifest: r.manifest.clone(),
            val: Some(r.val.clone()),
            test: Some(r.test.clone()),
            labels: None,
            out: r.out.clone(),
            width: r.width,
            config: r.config.clone(),
            // A training interrupted mid-way continues from its checkpoint.
            resume: true,
            device: self.device.clone(),
        })?;
        Ok(())
    }

    fn init(&self, spec: &C3dSpec, extent: [usize; 3], seed: u64, out: &Path) -> StageResult {
        crate::init::write(spec, extent, Pool5::Port, seed, out)?;
        Ok(())
    }

    fn analyse(
        &self,
        command: &str,
        options: &RunOptions,
        conditions: Vec<Condition>,
        dir: &Path,
    ) -> StageResult {
        crate::analysis::analyse(command, options, conditions, dir, self.device)?;
        Ok(())
    }

    fn sheet(&self, r: &SheetRequest) -> StageResult {
        crate::sheet::run(crate::sheet::Args {
            weights: r.weights.clone(),
            clip: crate::clip::ClipArgs {
                video: Some(r.video.clone()),
                offset: r.offset,
                preset: Some(r.preset.clone()),
                ..Default::default()
            },
            methods: vec![vidlrp_core::Method::Dtd, vidlrp_core::Method::Sa],
            rules: Default::default(),
            pictures: Default::default(),
            class: None,
            labels: r.labels.clone(),
            true_class: r.true_class,
            pool5: None,
            device: self.device.clone(),
            out: r.out.clone(),
        })?;
        Ok(())
    }

    fn evaluate(&self, options: &EvaluationOptions, dir: &Path) -> StageResult {
        crate::evaluate::evaluate(options, dir, self.device)?;
        Ok(())
    }

    fn stage(&self, index: usize, total: usize, name: &str, output: &str, kept: bool) {
        if kept {
            eprintln!("[{index}/{total}] {name}: done earlier, kept");
        } else {
            eprintln!("[{index}/{total}] {name} -> {output}");
        }
    }

    fn note(&self, text: &str) {
        eprintln!("== {text} ==");
    }

    fn footer(&self) -> Vec<Block> {
        vec![
            Block::Heading(2, "On real weights and videos".into()),
            Block::Para(
                "The same claims and report on any C3D (Caffe, PyTorch, MMAction2 or \
                 safetensors) and a manifest of real test videos, without synthesis or \
                 training; or the analyses one by one:"
                    .into(),
            ),
            Block::Code(
                "vidlrp reproduce --out repro-c3d --weights c3d.pickle --manifest videos.csv --labels labels.txt\n\
                 vidlrp profile --manifest videos.csv --labels labels.txt --weights c3d.pickle --out profile/\n\
                 vidlrp sweep-steps --manifest videos.csv --labels labels.txt --weights c3d.pickle --out steps/\n\
                 vidlrp sweep-offsets --manifest videos.csv --weights c3d.pickle --out offsets/"
                    .into(),
            ),
        ]
    }
}

/// `vidlrp reproduce`.
pub fn run(a: Args) -> Result<Finished> {
    let mut plan = if a.quick { Plan::quick() } else { Plan::full() };
    if let Some(n) = a.seeds {
        plan.seeds = n as usize;
    }
    let lab = CliLab { device: &a.device };
    let started = Instant::now();
    if let Some(vary) = &a.vary {
        return study(&a, &lab, &plan, vary, started);
    }
    let models = match &a.manifest {
        Some(manifest) if !a.weights.is_empty() => Models::Given {
            weights: a.weights.clone(),
            manifest: manifest.clone(),
            labels: a.labels.clone(),
            train_step: a.train_step,
            preset: a.preset.clone(),
        },
        _ => Models::Trained,
    };
    let claims = vidlrp_experiment::run::run_one(&lab, plan, &models, a.seed, a.quick, &a.out)?;
    let out = &a.out;
    let mut text = format!(
        "report: {}\nhtml:   {}\nclaims, pooled over {} models (holds in k of {}):\n",
        out.join("REPORT.md").display(),
        out.join("report.html").display(),
        claims.seeds,
        claims.seeds
    );
    for c in &claims.results {
        text += &format!(
            "{:<12} {:<14} {}/{}  {}\n",
            c.claim.id,
            c.verdict_word(),
            c.holds_in,
            claims.seeds,
            c.claim.statement
        );
    }
    let json = json!({"report": out.join("REPORT.md"), "html": out.join("report.html"),
                      "seeds": claims.seeds,
                      "claims": claims.results.iter().map(claim_json).collect::<Vec<_>>(),
                      "seconds": started.elapsed().as_secs_f64()});
    Ok(Finished::with_text(json, text))
}

/// `vidlrp reproduce --vary`: the expected time first, then every level, then STUDY.md.
fn study(a: &Args, lab: &CliLab, plan: &Plan, vary: &Vary, started: Instant) -> Result<Finished> {
    let name = vary.factor.name();
    let expected: f64 = level_plans(plan, vary).iter().map(expected_seconds).sum();
    let levels_text: Vec<String> = vary.levels.iter().map(|&v| level_text(v)).collect();
    eprintln!(
        "study: {name} at {} levels ({}), {} models each; expected about {:.0} min on a 2-core \
         machine (finished levels in {} are kept)",
        vary.levels.len(),
        levels_text.join(", "),
        plan.seeds,
        expected / 60.0,
        a.out.display()
    );
    let levels: Vec<(f64, RunClaims)> =
        vidlrp_experiment::study::study(lab, plan, vary, a.seed, a.quick, &a.out)?;
    let mut text = format!("study: {}\n", a.out.join("STUDY.md").display());
    for (v, r) in &levels {
        text += &format!("{name} = {}:", level_text(*v));
        for c in &r.results {
            text += &format!(" {} {};", c.claim.id, c.verdict_word());
        }
        text += "\n";
    }
    let json_levels: Vec<_> = (levels.iter())
        .map(|(v, r)| {
            json!({"level": v, "dir": level_dir(&a.out, vary, *v),
                   "claims": r.results.iter().map(claim_json).collect::<Vec<_>>()})
        })
        .collect();
    let json = json!({"study": a.out.join("STUDY.md"), "factor": name, "levels": json_levels,
                      "seconds": started.elapsed().as_secs_f64()});
    Ok(Finished::with_text(json, text))
}

/// A judged claim as the command's JSON reports it.
fn claim_json(c: &ClaimResult) -> serde_json::Value {
    let judged = |j: &Judged| {
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
        "verdict": c.verdict_word(),
        "holds_in": c.holds_in,
        "per_seed": c.per_model.iter().map(judged).collect::<Vec<_>>(),
    })
}
