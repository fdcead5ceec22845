//! `vidlrp reproduce`: the paper's experiment end to end, in one command. A synthetic data set
//! where motion decides the class, a C3D-shaped model trained on random snippets of it (as the
//! paper's model was), the paper's analyses on its held-out videos, and a report that marks
//! each of the paper's claims as holding or not for this model.
//!
//! Every stage calls what its `vidlrp` command calls (`synth::write`, `train::train`,
//! `analysis::analyse`, ...) with typed settings from the [`Plan`], writing into its own
//! directory under `--out`; a stage whose output exists is not run again, and the analyses
//! resume from their journals, so an interrupted run continues where it stopped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;
use vidlrp_c3d::{C3dSpec, Pool5};
use vidlrp_core::Method;
use vidlrp_dataset::{
    AnalysisMethod, ClipSource, Condition, EvaluationOptions, Manifest, RunOptions, Shard,
};
use vidlrp_evaluate::{Order, Region, Replace};
use vidlrp_snippet::{Preprocess, ShortPolicy, SnippetSpec};
use vidlrp_synth::{SynthSpec, VideoFormat};
use vidlrp_train::TrainConfig;

use crate::analysis::journal_path;
use crate::reproduce_plan::Plan;
use crate::reproduce_report::StageRun;
use crate::summary::Finished;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp reproduce --out repro            # the default run (about 10 minutes on 2 cores)\n  \
    vidlrp reproduce --out repro-quick --quick   # a small run (under 2 minutes), what CI runs\n\n\
    Stages, each what a vidlrp command runs, writing into OUT: synth (data/), train (model/), init (the\n\
    untrained baseline), profile (profile/: Table 1, Fig. 2), sweep-steps (steps/: Figs. 3, 5),\n\
    sweep-offsets (offsets/: Fig. 4), sheet (sheets/: trained vs untrained heatmaps), then\n\
    OUT/REPORT.md and OUT/report.html: the data set, the training, Table 1, the figures and the\n\
    paper's five claims, each marked holds / does not hold / inconclusive with the measured\n\
    value and its bootstrap interval. A rerun on the same OUT skips the finished stages.")]
pub struct Args {
    /// Output directory (created if missing; finished stages in it are kept).
    #[arg(long)]
    out: PathBuf,
    /// A small run for CI: 4 classes, 24 short videos, 2 epochs, steps up to 4.
    #[arg(long)]
    quick: bool,
    /// Seed of the data set and of the training.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

/// Regions removed in the spatial perturbation (of 16 x (size/8)^2).
const EVAL_REGION_STEPS: usize = 50;
/// Frames per snippet: C3D's 16, throughout.
const FRAMES: usize = 16;
/// The number of stages.
const STAGES: usize = 10;

/// The stages run so far, in order.
struct Stages {
    runs: Vec<StageRun>,
}

impl Stages {
    /// Runs one stage unless `done_when` exists; records its wall time. `output` names what
    /// it writes (relative to `--out`).
    fn run(
        &mut self,
        name: &str,
        output: &str,
        done_when: &Path,
        stage: impl FnOnce() -> Result<Finished>,
    ) -> Result<()> {
        let index = self.runs.len() + 1;
        let mut run = StageRun {
            name: name.to_string(),
            output: output.to_string(),
            seconds: 0.0,
            ran: false,
        };
        if done_when.exists() {
            eprintln!("[{index}/{STAGES}] {name}: done earlier, kept");
        } else {
            eprintln!("[{index}/{STAGES}] {name} -> {output}");
            let t = Instant::now();
            stage().with_context(|| format!("stage {name} failed"))?;
            run.seconds = t.elapsed().as_secs_f64();
            run.ran = true;
        }
        self.runs.push(run);
        Ok(())
    }
}

/// The data set of `plan`, drawn from `seed`.
fn synth_spec(plan: &Plan, seed: u64) -> SynthSpec {
    SynthSpec {
        classes: plan.classes,
        videos: plan.videos,
        frames: plan.frames,
        test_frames: Some(plan.test_frames),
        width: plan.frame_size.0,
        height: plan.frame_size.1,
        fps: 25,
        seed,
        title_share: plan.title_share,
        distractors: plan.distractors,
        split: plan.split,
        format: VideoFormat::Mp4,
    }
}

/// The training of `plan` on the data set in `out/data`, from `seed`.
fn train_request(plan: &Plan, seed: u64, out: &Path, a: &Args) -> crate::train::Request {
    crate::train::Request {
        manifest: out.join("data/train.csv"),
        val: Some(out.join("data/val.csv")),
        test: Some(out.join("data/test.csv")),
        labels: None,
        out: out.join("model/model.safetensors"),
        width: plan.width,
        config: TrainConfig {
            frames: FRAMES,
            size: plan.input_size,
            epochs: plan.epochs,
            batch: plan.batch,
            snippets_per_video: plan.snippets_per_video,
            optimizer: plan.optimizer,
            // As `--lr 0.001` is read: the nearest f32 of the decimal.
            lr: plan.lr as f32,
            dropout: plan.dropout as f32,
            seed,
            ..TrainConfig::default()
        },
        // A training interrupted mid-way continues from its checkpoint.
        resume: true,
        device: a.device.clone(),
    }
}

/// `vidlrp reproduce`.
pub fn run(a: Args) -> Result<Finished> {
    let plan = if a.quick { Plan::quick() } else { Plan::full() };
    let out = &a.out;
    for d in ["", "model", "sheets"] {
        let d = out.join(d);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    // The settings of the run the directory holds: finished stages are kept only for the same.
    let settings = serde_json::to_string_pretty(&json!({"plan": &plan, "seed": a.seed}))? + "\n";
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
    let p = |rel: &str| out.join(rel);
    let started = Instant::now();
    let mut stages = Stages { runs: Vec::new() };
    let spec = synth_spec(&plan, a.seed);
    stages.run("synth", "data/", &p("data/synth.json"), || {
        crate::synth::write(&spec, &p("data"))
    })?;
    let weights = p("model/model.safetensors");
    let training = train_request(&plan, a.seed, out, &a);
    stages.run("train", "model/model.safetensors", &weights, || {
        crate::train::train(&training)
    })?;

    // The untrained baseline: the trained model's architecture, He-normal from seed 0.
    let untrained = p("model/untrained.safetensors");
    let extent = [FRAMES, plan.input_size, plan.input_size];
    stages.run("init", "model/untrained.safetensors", &untrained, || {
        let trained = C3dSpec::from_weights(&vidlrp_c3d::load_weights(&weights)?.tensors)?;
        let spec = C3dSpec::with_widths(
            array(&trained.conv_widths)?,
            array(&trained.fc_widths)?,
            trained.classes,
            extent,
            Pool5::Port,
        )?;
        crate::init::write(&spec, extent, Pool5::Port, 0, &untrained)
    })?;

    // The test videos and the trained model's preset, shared by the analyses and evaluations.
    let test = Manifest::read(&p("data/test.csv"), None)?;
    let model_preset = crate::weights::resolve_preset(None, &weights)?;
    let dtd = AnalysisMethod::Explain(Method::Dtd);
    let sa = AnalysisMethod::Explain(Method::Sa);
    // The analyses on the test videos, each resuming from its journal.
    let analysis = |dir: &Path| RunOptions {
        manifest: test.clone(),
        weights: weights.clone(),
        preset: model_preset.clone(),
        pool5: None,
        length: FRAMES,
        short: ShortPolicy::Skip,
        shard: Shard::WHOLE,
        bootstrap: plan.bootstrap,
        seed: 0,
        journal: Some(journal_path(dir)),
        resume: true,
        batch: vidlrp_dataset::BatchSize::Auto,
        chunk_bytes: RunOptions::DEFAULT_CHUNK_BYTES,
    };
    let analyse = |command: &str, dir: &str, conditions| -> Result<Finished> {
        let dir = p(dir);
        crate::analysis::analyse(command, &analysis(&dir), conditions, &dir, &a.device)
    };
    stages.run("profile", "profile/", &p("profile/summary.json"), || {
        let methods = [dtd, sa, AnalysisMethod::DtdUntrained];
        analyse("profile", "profile", Condition::profile(&methods, 0, 1))
    })?;
    stages.run("sweep-steps", "steps/", &p("steps/summary.json"), || {
        let conditions = Condition::step_sweep(&[dtd, sa], &plan.steps, 0);
        analyse("sweep-steps", "steps", conditions)
    })?;
    stages.run(
        "sweep-offsets",
        "offsets/",
        &p("offsets/summary.json"),
        || {
            let conditions = Condition::offset_sweep(&[dtd], &plan.offsets, 1);
            analyse("sweep-offsets", "offsets", conditions)
        },
    )?;

    // Heatmaps of DTD and SA of the trained and the untrained model on one test clip.
    let (offset, clip_video, true_class) = sheet_clip(out)?;
    let preset = Preprocess::caffe()
        .at_size(plan.input_size)
        .map_err(anyhow::Error::msg)?;
    let sheet = |weights: PathBuf, target: &str| -> Result<Finished> {
        crate::sheet::run(crate::sheet::Args {
            weights,
            clip: crate::clip::ClipArgs {
                video: Some(clip_video.clone()),
                offset,
                preset: Some(preset.clone()),
                ..Default::default()
            },
            methods: vec![Method::Dtd, Method::Sa],
            rules: Default::default(),
            pictures: Default::default(),
            class: None,
            labels: Some(p("data/labels.txt")),
            true_class: Some(true_class),
            pool5: None,
            device: a.device.clone(),
            out: p(target),
        })
    };
    for (name, model, target) in [
        ("sheet (trained)", &weights, "sheets/trained.png"),
        ("sheet (untrained)", &untrained, "sheets/untrained.png"),
    ] {
        stages.run(name, target, &p(target), || sheet(model.clone(), target))?;
    }

    // Faithfulness (AOPC, MoRF) of DTD and SA against the random baseline on the test clips.
    let evaluate = |region: [usize; 3], steps: usize, dir: &str| -> Result<Finished> {
        let dir = p(dir);
        let opts = EvaluationOptions {
            source: ClipSource::Manifest(test.clone()),
            shard: Shard::WHOLE,
            weights: weights.clone(),
            preset: model_preset.clone(),
            pool5: None,
            snippet: SnippetSpec {
                length: FRAMES,
                offset: 0,
                step: 1,
            },
            short: ShortPolicy::Skip,
            region: Region(region),
            steps,
            replace: Replace::Uniform,
            seed: a.seed,
            bootstrap: plan.bootstrap,
            methods: vec![dtd, sa, AnalysisMethod::Random],
            orders: vec![Order::Morf],
            batch: 8,
            journal: Some(journal_path(&dir)),
            resume: true,
            measure_overhead: false,
        };
        crate::evaluate::evaluate(&opts, &dir, &a.device)
    };
    let done = p("eval-regions/summary.json");
    stages.run("evaluate (regions)", "eval-regions/", &done, || {
        evaluate([1, 8, 8], EVAL_REGION_STEPS, "eval-regions")
    })?;
    let done = p("eval-frames/summary.json");
    let frame = [1, plan.input_size, plan.input_size];
    stages.run("evaluate (frames)", "eval-frames/", &done, || {
        evaluate(frame, FRAMES, "eval-frames")
    })?;

    let report = crate::reproduce_report::Inputs {
        out: out.clone(),
        plan: plan.clone(),
        chance: plan.chance(),
        stages: stages.runs,
        total_seconds: started.elapsed().as_secs_f64(),
        quick: a.quick,
    };
    let claims = crate::reproduce_report::write(&report)?;
    let mut text = format!(
        "report: {}\nhtml:   {}\n",
        out.join("REPORT.md").display(),
        out.join("report.html").display()
    );
    for c in &claims {
        text += &format!("{:<14} {}\n", c.verdict.word(), c.claim);
    }
    let claims: Vec<_> = (claims.iter())
        .map(|c| json!({"claim": c.claim, "measured": c.measured, "verdict": c.verdict.word()}))
        .collect();
    let json = json!({"report": out.join("REPORT.md"), "html": out.join("report.html"),
                      "claims": claims, "seconds": started.elapsed().as_secs_f64()});
    Ok(Finished::with_text(json, text))
}

/// `widths` as an array of `N`.
fn array<const N: usize>(widths: &[usize]) -> Result<[usize; N]> {
    widths
        .try_into()
        .map_err(|_| anyhow::anyhow!("the trained model has {} widths, not {N}", widths.len()))
}

/// The clip of the example sheets: the first test video, from the first frame after its title
/// card (if any).
fn sheet_clip(out: &Path) -> Result<(usize, PathBuf, usize)> {
    let synth = vidlrp_synth::Description::read(&out.join("data"))?;
    let Some(v) = synth.summary.videos.iter().find(|v| v.split == "test") else {
        bail!("the data set has no test video");
    };
    let path = out.join("data").join(&v.path);
    Ok((v.title_frames, path, v.label))
}
