//! One whole run of the experiment as typed stages: the data set, then per model its training,
//! its untrained twin and three analyses, then the example heatmaps and faithfulness of the
//! first model, then the report. Each stage writes into its own directory under the run's and
//! is not run again when its output exists; the analyses resume from their journals.
//!
//! The work of a stage is done by a [`Lab`]: the caller's implementation with its machine and
//! its console (the `vidlrp` CLI runs its commands' functions on the chosen device, with
//! progress bars). This module decides what runs, in what order, with which settings.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vidlrp_c3d::C3dSpec;
use vidlrp_dataset::{
    read_labels, AnalysisMethod, ClipSource, Condition, EvaluationOptions, Manifest, RunOptions,
    Shard,
};
use vidlrp_evaluate::{Order, Region, Replace};
use vidlrp_snippet::{Preprocess, ShortPolicy, SnippetSpec};
use vidlrp_synth::{SynthSpec, VideoFormat};
use vidlrp_train::TrainConfig;

use crate::plan::Plan;
use crate::{ClaimResult, ExperimentError, Result};

/// What a stage returns: nothing, or why it failed.
pub type StageResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A training stage's settings.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Training manifest.
    pub manifest: PathBuf,
    /// Validation manifest.
    pub val: PathBuf,
    /// Held-out test manifest (evaluated after the last epoch).
    pub test: PathBuf,
    /// The model to write (.safetensors); an interrupted training continues from the
    /// checkpoint beside it.
    pub out: PathBuf,
    /// Width relative to C3D.
    pub width: f64,
    /// The training settings.
    pub config: TrainConfig,
}

/// A heatmap sheet's settings: DTD and SA of one clip.
#[derive(Debug, Clone)]
pub struct SheetRequest {
    /// The model.
    pub weights: PathBuf,
    /// The video.
    pub video: PathBuf,
    /// The first frame of the clip.
    pub offset: usize,
    /// The model's preprocessing.
    pub preset: Preprocess,
    /// Class names.
    pub labels: Option<PathBuf>,
    /// The clip's true class, if known.
    pub true_class: Option<usize>,
    /// The picture to write (.png).
    pub out: PathBuf,
}

/// Does the work of the stages, on the caller's machine and console.
pub trait Lab {
    /// Writes the synthetic data set `spec` into the new directory `dir`.
    fn synth(&self, spec: &SynthSpec, dir: &Path) -> StageResult;
    /// Trains a model.
    fn train(&self, request: &TrainRequest) -> StageResult;
    /// Writes the untrained twin `spec` (sized for `extent`, He-normal from `seed`) to `out`.
    fn init(&self, spec: &C3dSpec, extent: [usize; 3], seed: u64, out: &Path) -> StageResult;
    /// Runs the data-set analysis `command` (`profile`, `sweep-steps`, `sweep-offsets`) of
    /// `conditions` into `dir`.
    fn analyse(
        &self,
        command: &str,
        options: &RunOptions,
        conditions: Vec<Condition>,
        dir: &Path,
    ) -> StageResult;
    /// Draws a heatmap sheet.
    fn sheet(&self, request: &SheetRequest) -> StageResult;
    /// Runs a perturbation evaluation into `dir`.
    fn evaluate(&self, options: &EvaluationOptions, dir: &Path) -> StageResult;
    /// Called before each stage (`kept`: its output exists, it will not run).
    fn stage(&self, index: usize, total: usize, name: &str, output: &str, kept: bool);
    /// A line of progress (a study's level); ignored by default.
    fn note(&self, _text: &str) {}
    /// Blocks the report ends with (e.g. how to run the same on other data); none by default.
    fn footer(&self) -> Vec<crate::document::Block> {
        Vec::new()
    }
}

/// Where the models of a run come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Models {
    /// Trained here on a synthetic data set, one per seed of the plan.
    Trained,
    /// Given: weight files and the test videos to analyse them on.
    Given {
        /// One weight file per model.
        weights: Vec<PathBuf>,
        /// The test videos (`path,label`).
        manifest: PathBuf,
        /// Class names.
        labels: Option<PathBuf>,
        /// The step the models were trained at.
        train_step: usize,
        /// The models' preprocessing (`None`: each model's recorded one, else caffe).
        preset: Option<Preprocess>,
    },
}

/// One model of the run: its number (1-based), seed, directory and weights.
#[derive(Debug, Clone, PartialEq)]
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

/// What a stage did: what it wrote, its wall time, and whether it ran (or was kept from an
/// earlier run).
#[derive(Debug, Clone, PartialEq)]
pub struct StageRun {
    /// The stage's name.
    pub name: String,
    /// What it writes, relative to the run's directory.
    pub output: String,
    /// Wall time in seconds (0 if kept).
    pub seconds: f64,
    /// Whether it ran in this invocation.
    pub ran: bool,
}

/// The judged claims of one run and its number of models.
#[derive(Debug, Clone)]
pub struct RunClaims {
    /// Models.
    pub seeds: usize,
    /// The claims, judged per model and pooled.
    pub results: Vec<ClaimResult>,
}

/// Regions removed in the spatial perturbation (of 16 x (size/8)^2).
const EVAL_REGION_STEPS: usize = 50;
/// Frames per snippet: C3D's 16, throughout.
const FRAMES: usize = 16;

/// The stages run so far, in order.
struct Stages<'l> {
    runs: Vec<StageRun>,
    total: usize,
    lab: &'l dyn Lab,
}

impl Stages<'_> {
    /// Runs one stage unless `done_when` exists; records its wall time.
    fn run(
        &mut self,
        name: &str,
        output: &str,
        done_when: &Path,
        stage: impl FnOnce() -> StageResult,
    ) -> Result<()> {
        let kept = done_when.exists();
        self.lab
            .stage(self.runs.len() + 1, self.total, name, output, kept);
        let t = Instant::now();
        if !kept {
            stage().map_err(|source| ExperimentError::Stage {
                name: name.to_string(),
                source,
            })?;
        }
        self.runs.push(StageRun {
            name: name.to_string(),
            output: output.to_string(),
            seconds: if kept { 0.0 } else { t.elapsed().as_secs_f64() },
            ran: !kept,
        });
        Ok(())
    }
}

/// The data set of `plan`, drawn from `seed`.
pub fn synth_spec(plan: &Plan, seed: u64) -> SynthSpec {
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
        action_share: plan.action_share,
    }
}

/// What every model's stages share.
struct Shared<'a> {
    plan: &'a Plan,
    out: &'a Path,
    test: &'a Manifest,
    labels: Option<PathBuf>,
    preset: Option<Preprocess>,
}

/// The plan of a run on `models`: given models set the number of models, the training step
/// (added to the step sweep) and the class count.
///
/// **Errors** if a given model cannot be read as a C3D.
pub fn plan_for(mut plan: Plan, models: &Models) -> Result<Plan> {
    if let Models::Given {
        weights,
        train_step,
        ..
    } = models
    {
        plan.seeds = weights.len();
        plan.train_step = *train_step;
        if !plan.steps.contains(train_step) {
            plan.steps.push(*train_step);
            plan.steps.sort_unstable();
        }
        for w in weights {
            let spec = vidlrp_c3d::load_weights(w)
                .and_then(|f| C3dSpec::from_weights(&f.tensors))
                .map_err(|e| ExperimentError::Data(format!("{}: {e}", w.display())))?;
            plan.classes = spec.classes;
        }
    }
    Ok(plan)
}

/// The models of a run of `plan` into `out` from `seed`.
fn seed_runs(plan: &Plan, models: &Models, seed: u64, out: &Path) -> Vec<SeedRun> {
    (1..=plan.seeds)
        .map(|index| {
            let dir = out.join(format!("seed-{index}"));
            let given = match models {
                Models::Given { weights, .. } => weights.get(index - 1).cloned(),
                Models::Trained => None,
            };
            SeedRun {
                index,
                seed: seed + index as u64 - 1,
                weights: given.unwrap_or_else(|| dir.join("model/model.safetensors")),
                dir,
            }
        })
        .collect()
}

/// Records the run's settings in `out/settings.json`, or checks they are those recorded.
///
/// **Errors** if the directory holds a run with other settings.
fn record_settings(out: &Path, settings: &str) -> Result<()> {
    let recorded = out.join("settings.json");
    match std::fs::read_to_string(&recorded) {
        Ok(old) if old != settings => Err(ExperimentError::Data(format!(
            "{} holds a run with other settings ({}); choose another output directory",
            out.display(),
            recorded.display()
        ))),
        Ok(_) => Ok(()),
        Err(_) => Ok(vidlrp_io::atomic_write(&recorded, |w| {
            std::io::Write::write_all(w, settings.as_bytes())
        })?),
    }
}

/// One whole run of `plan` on `models` into `out`, drawn from `seed`: every stage (kept where
/// finished), then REPORT.md and report.html. `quick` marks the small CI run in the report.
///
/// **Errors** if a stage fails (naming it), if `out` holds a run with other settings, or if
/// the outputs cannot be read back.
pub fn run_one(
    lab: &dyn Lab,
    plan: Plan,
    models: &Models,
    seed: u64,
    quick: bool,
    out: &Path,
) -> Result<RunClaims> {
    let plan = plan_for(plan, models)?;
    let given = matches!(models, Models::Given { .. });
    let seeds = seed_runs(&plan, models, seed, out);
    let dirs = std::iter::once(out.to_path_buf())
        .chain(seeds.iter().map(|s| s.dir.join("model")))
        .chain(std::iter::once(seeds[0].dir.join("sheets")));
    for d in dirs {
        std::fs::create_dir_all(&d)
            .map_err(|e| ExperimentError::Data(format!("cannot create {}: {e}", d.display())))?;
    }
    // The settings of the run the directory holds: finished stages are kept only for the same.
    let settings = crate::report_data::settings_json(&plan, seed, models)?;
    record_settings(out, &settings)?;
    let started = Instant::now();
    let per_model = if given { 4 } else { 5 };
    let mut stages = Stages {
        runs: Vec::new(),
        total: usize::from(!given) + per_model * seeds.len() + 4,
        lab,
    };
    let data = out.join("data");
    let (test, labels, preset) = match models {
        Models::Given {
            manifest,
            labels,
            preset,
            ..
        } => {
            let names = labels.as_deref().map(read_labels).transpose()?;
            let test = Manifest::read(manifest, names.as_deref())?;
            (test, labels.clone(), preset.clone())
        }
        Models::Trained => {
            let spec = synth_spec(&plan, seed);
            stages.run("synth", "data/", &data.join("synth.json"), || {
                lab.synth(&spec, &data)
            })?;
            let test = Manifest::read(&data.join("test.csv"), None)?;
            (test, Some(data.join("labels.txt")), None)
        }
    };
    let shared = Shared {
        plan: &plan,
        out,
        test: &test,
        labels,
        preset,
    };
    for s in &seeds {
        if !given {
            train(&mut stages, &shared, s)?;
        }
        model_stages(&mut stages, &shared, s)?;
    }
    // Heatmaps and faithfulness of the first model.
    examples(&mut stages, &shared, &seeds[0])?;
    let inputs = crate::report_run::Inputs {
        out: out.to_path_buf(),
        chance: plan.chance(),
        plan,
        seeds,
        stages: stages.runs,
        total_seconds: started.elapsed().as_secs_f64(),
        quick,
        given: match models {
            Models::Given { manifest, .. } => Some(crate::report_run::Given {
                manifest: manifest.clone(),
                videos: test.items.len(),
            }),
            Models::Trained => None,
        },
        footer: lab.footer(),
    };
    let results = crate::report_run::write(&inputs)?;
    Ok(RunClaims {
        seeds: inputs.seeds.len(),
        results,
    })
}

/// Trains model `s` on the synthetic data set.
fn train(stages: &mut Stages, sh: &Shared, s: &SeedRun) -> Result<()> {
    let plan = sh.plan;
    let data = sh.out.join("data");
    let request = TrainRequest {
        manifest: data.join("train.csv"),
        val: data.join("val.csv"),
        test: data.join("test.csv"),
        out: s.weights.clone(),
        width: plan.width,
        config: TrainConfig {
            frames: FRAMES,
            step: plan.train_step,
            size: plan.input_size,
            epochs: plan.epochs,
            batch: plan.batch,
            snippets_per_video: plan.snippets_per_video,
            optimizer: plan.optimizer,
            // As `0.001` is read from a command line: the nearest f32 of the decimal.
            lr: plan.lr as f32,
            dropout: plan.dropout as f32,
            seed: s.seed,
            ..TrainConfig::default()
        },
    };
    let lab = stages.lab;
    stages.run(
        &format!("train (seed {})", s.index),
        &format!("seed-{}/model/model.safetensors", s.index),
        &s.weights,
        || lab.train(&request),
    )
}

/// The preset of a model: the shared one, else the one recorded in its weights, else caffe.
fn model_preset(sh: &Shared, weights: &Path) -> Result<Preprocess> {
    Ok(vidlrp_dataset::resolve_preset(sh.preset.as_ref(), weights)?)
}

/// The stages of one model after training: its untrained twin, and the three analyses on the
/// test videos (profile and offset sweep at the training step, step sweep).
fn model_stages(stages: &mut Stages, sh: &Shared, s: &SeedRun) -> Result<()> {
    let (plan, weights, lab) = (sh.plan, &s.weights, stages.lab);
    let p = |rel: &str| s.dir.join(rel);
    let rel = |what: &str| format!("seed-{}/{what}", s.index);
    let name = |stage: &str| format!("{stage} (seed {})", s.index);
    let preset = model_preset(sh, weights)?;
    // The untrained twin: the model's architecture, He-normal from the model's seed.
    let untrained = p("model/untrained.safetensors");
    let [h, w] = preset.input_size();
    let extent = [FRAMES, h, w];
    stages.run(
        &name("init"),
        &rel("model/untrained.safetensors"),
        &untrained,
        || {
            let model = C3dSpec::from_weights(&vidlrp_c3d::load_weights(weights)?.tensors)?;
            let spec = C3dSpec::with_widths(
                model.conv_widths,
                model.fc_widths,
                model.classes,
                extent,
                vidlrp_c3d::Pool5::Port,
            )?;
            lab.init(&spec, extent, s.seed, &untrained)
        },
    )?;
    let dtd = AnalysisMethod::Explain(vidlrp_core::Method::Dtd);
    let sa = AnalysisMethod::Explain(vidlrp_core::Method::Sa);
    // The analyses on the test videos, each resuming from its journal. The run's seed is the
    // seed of DTD-u's re-initialisation and of the bootstrap.
    let analysis = |dir: &Path| RunOptions {
        manifest: sh.test.clone(),
        weights: weights.clone(),
        preset: preset.clone(),
        pool5: None,
        length: FRAMES,
        short: ShortPolicy::Skip,
        shard: Shard::WHOLE,
        bootstrap: plan.bootstrap,
        seed: s.seed,
        journal: Some(vidlrp_dataset::Journal::beside(dir)),
        resume: true,
        batch: vidlrp_dataset::BatchSize::Auto,
        chunk_bytes: RunOptions::DEFAULT_CHUNK_BYTES,
    };
    let analyse = |command: &str, dir: &str, conditions| {
        let dir = p(dir);
        lab.analyse(command, &analysis(&dir), conditions, &dir)
    };
    let step = plan.train_step;
    stages.run(
        &name("profile"),
        &rel("profile/"),
        &p("profile/summary.json"),
        || {
            let methods = [dtd, sa, AnalysisMethod::DtdUntrained];
            analyse("profile", "profile", Condition::profile(&methods, 0, step))
        },
    )?;
    stages.run(
        &name("sweep-steps"),
        &rel("steps/"),
        &p("steps/summary.json"),
        || {
            analyse(
                "sweep-steps",
                "steps",
                Condition::step_sweep(&[dtd, sa], &plan.steps, 0),
            )
        },
    )?;
    stages.run(
        &name("sweep-offsets"),
        &rel("offsets/"),
        &p("offsets/summary.json"),
        || {
            let conditions = Condition::offset_sweep(&[dtd], &plan.offsets, step);
            analyse("sweep-offsets", "offsets", conditions)
        },
    )
}

/// The stages shown for one model only: heatmaps of DTD and SA of it and of its untrained twin
/// on one test clip, and faithfulness (AOPC, MoRF) of DTD and SA against the random baseline.
fn examples(stages: &mut Stages, sh: &Shared, s: &SeedRun) -> Result<()> {
    let (plan, lab) = (sh.plan, stages.lab);
    let p = |rel: &str| s.dir.join(rel);
    let rel = |what: &str| format!("seed-{}/{what}", s.index);
    let weights = &s.weights;
    let untrained = p("model/untrained.safetensors");
    let preset = model_preset(sh, weights)?;
    let (offset, video, true_class) = sheet_clip(sh)?;
    let [size, _] = preset.input_size();
    for (name, model, target) in [
        ("sheet (trained)", weights, "sheets/trained.png"),
        ("sheet (untrained)", &untrained, "sheets/untrained.png"),
    ] {
        let request = SheetRequest {
            weights: model.clone(),
            video: video.clone(),
            offset,
            preset: preset.clone(),
            labels: sh.labels.clone(),
            true_class,
            out: p(target),
        };
        stages.run(name, &rel(target), &p(target), || lab.sheet(&request))?;
    }
    let methods = vec![
        AnalysisMethod::Explain(vidlrp_core::Method::Dtd),
        AnalysisMethod::Explain(vidlrp_core::Method::Sa),
        AnalysisMethod::Random,
    ];
    let evaluate = |region: [usize; 3], steps: usize, dir: &str| {
        let dir = p(dir);
        let opts = EvaluationOptions {
            source: ClipSource::Manifest(sh.test.clone()),
            shard: Shard::WHOLE,
            weights: weights.clone(),
            preset: preset.clone(),
            pool5: None,
            snippet: SnippetSpec {
                length: FRAMES,
                offset: 0,
                step: plan.train_step,
            },
            short: ShortPolicy::Skip,
            region: Region(region),
            steps,
            replace: Replace::Uniform,
            seed: s.seed,
            bootstrap: plan.bootstrap,
            methods: methods.clone(),
            orders: vec![Order::Morf],
            batch: 8,
            journal: Some(vidlrp_dataset::Journal::beside(&dir)),
            resume: true,
            measure_overhead: false,
        };
        lab.evaluate(&opts, &dir)
    };
    let done = p("eval-regions/summary.json");
    stages.run("evaluate (regions)", &rel("eval-regions/"), &done, || {
        evaluate([1, 8, 8], EVAL_REGION_STEPS, "eval-regions")
    })?;
    let done = p("eval-frames/summary.json");
    stages.run("evaluate (frames)", &rel("eval-frames/"), &done, || {
        evaluate([1, size, size], FRAMES, "eval-frames")
    })
}

/// The clip of the example sheets: the first test video, from the first frame after its title
/// card (if the synthetic data set says it has one), and its label.
fn sheet_clip(sh: &Shared) -> Result<(usize, PathBuf, Option<usize>)> {
    let data = sh.out.join("data");
    if let Some(synth) = vidlrp_synth::Description::find(&data)? {
        let Some(v) = synth.summary.videos.iter().find(|v| v.split == "test") else {
            return Err(ExperimentError::Data(
                "the data set has no test video".into(),
            ));
        };
        return Ok((v.title_frames, data.join(&v.path), Some(v.label)));
    }
    let Some(item) = sh.test.items.first() else {
        return Err(ExperimentError::Data(
            "the test manifest has no video".into(),
        ));
    };
    Ok((0, item.resolved.clone(), item.label))
}
