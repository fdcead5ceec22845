//! The stages of `vidlrp reproduce`: the data set, then per model its training, untrained twin
//! and analyses, then the example heatmaps and faithfulness of the first model. Each calls
//! what its `vidlrp` command calls, with typed settings from the [`Plan`], writing into its own
//! directory; a stage whose output exists is not run again.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
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
use crate::reproduce::{Args, SeedRun};
use crate::reproduce_plan::Plan;
use crate::reproduce_report::StageRun;
use crate::summary::Finished;

/// Regions removed in the spatial perturbation (of 16 x (size/8)^2).
const EVAL_REGION_STEPS: usize = 50;
/// Frames per snippet: C3D's 16, throughout.
const FRAMES: usize = 16;

/// The stages run so far, in order.
pub struct Stages {
    pub runs: Vec<StageRun>,
    /// Stages of the whole run.
    pub total: usize,
}

impl Stages {
    /// Runs one stage unless `done_when` exists; records its wall time. `output` names what
    /// it writes (relative to `--out`).
    pub fn run(
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
            eprintln!("[{index}/{}] {name}: done earlier, kept", self.total);
        } else {
            eprintln!("[{index}/{}] {name} -> {output}", self.total);
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

/// The training of `plan` on the data set in `out/data`, from `seed`.
fn train_request(
    plan: &Plan,
    seed: u64,
    out: &Path,
    weights: &Path,
    a: &Args,
) -> crate::train::Request {
    crate::train::Request {
        manifest: out.join("data/train.csv"),
        val: Some(out.join("data/val.csv")),
        test: Some(out.join("data/test.csv")),
        labels: None,
        out: weights.to_path_buf(),
        width: plan.width,
        config: TrainConfig {
            frames: FRAMES,
            step: plan.train_step,
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

/// What every model's stages share.
pub struct Shared<'a> {
    /// The settings.
    pub plan: &'a Plan,
    /// The run's directory.
    pub out: &'a Path,
    /// The test videos.
    pub test: &'a Manifest,
    /// Class names (`None`: numbers).
    pub labels: Option<PathBuf>,
    /// The models' preset (`None`: each model's recorded one, else caffe).
    pub preset: Option<Preprocess>,
    /// The command's arguments (device).
    pub args: &'a Args,
}

/// Stages run for every model: training (not for given weights), its untrained twin and three
/// analyses.
pub fn stages_per_model(given: bool) -> usize {
    if given {
        4
    } else {
        5
    }
}

/// Trains model `s` on the synthetic data set.
pub fn train(stages: &mut Stages, sh: &Shared, s: &SeedRun) -> Result<()> {
    let training = train_request(sh.plan, s.seed, sh.out, &s.weights, sh.args);
    stages.run(
        &format!("train (seed {})", s.index),
        &format!("seed-{}/model/model.safetensors", s.index),
        &s.weights,
        || crate::train::train(&training),
    )
}

/// The stages of one model after training: its untrained twin, and the three analyses on the
/// test videos (profile and offset sweep at the training step, step sweep).
pub fn model_stages(stages: &mut Stages, sh: &Shared, s: &SeedRun) -> Result<()> {
    let (plan, weights) = (sh.plan, &s.weights);
    let p = |rel: &str| s.dir.join(rel);
    let rel = |what: &str| format!("seed-{}/{what}", s.index);
    let name = |stage: &str| format!("{stage} (seed {})", s.index);
    let model_preset = crate::weights::resolve_preset(sh.preset.as_ref(), weights)?;
    // The untrained twin: the model's architecture, He-normal from the model's seed.
    let untrained = p("model/untrained.safetensors");
    let [h, w] = model_preset.input_size();
    let extent = [FRAMES, h, w];
    stages.run(
        &name("init"),
        &rel("model/untrained.safetensors"),
        &untrained,
        || {
            let model = C3dSpec::from_weights(&vidlrp_c3d::load_weights(weights)?.tensors)?;
            let spec = C3dSpec::with_widths(
                array(&model.conv_widths)?,
                array(&model.fc_widths)?,
                model.classes,
                extent,
                Pool5::Port,
            )?;
            crate::init::write(&spec, extent, Pool5::Port, s.seed, &untrained)
        },
    )?;
    let dtd = AnalysisMethod::Explain(Method::Dtd);
    let sa = AnalysisMethod::Explain(Method::Sa);
    // The analyses on the test videos, each resuming from its journal. The run's seed is the
    // seed of DTD-u's re-initialisation and of the bootstrap.
    let analysis = |dir: &Path| RunOptions {
        manifest: sh.test.clone(),
        weights: weights.clone(),
        preset: model_preset.clone(),
        pool5: None,
        length: FRAMES,
        short: ShortPolicy::Skip,
        shard: Shard::WHOLE,
        bootstrap: plan.bootstrap,
        seed: s.seed,
        journal: Some(journal_path(dir)),
        resume: true,
        batch: vidlrp_dataset::BatchSize::Auto,
        chunk_bytes: RunOptions::DEFAULT_CHUNK_BYTES,
    };
    let analyse = |command: &str, dir: &str, conditions| -> Result<Finished> {
        let dir = p(dir);
        crate::analysis::analyse(command, &analysis(&dir), conditions, &dir, &sh.args.device)
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
            let conditions = Condition::step_sweep(&[dtd, sa], &plan.steps, 0);
            analyse("sweep-steps", "steps", conditions)
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
pub fn examples(stages: &mut Stages, sh: &Shared, s: &SeedRun) -> Result<()> {
    let plan = sh.plan;
    let p = |rel: &str| s.dir.join(rel);
    let rel = |what: &str| format!("seed-{}/{what}", s.index);
    let weights = &s.weights;
    let untrained = p("model/untrained.safetensors");
    let model_preset = crate::weights::resolve_preset(sh.preset.as_ref(), weights)?;
    let (offset, clip_video, true_class) = sheet_clip(sh)?;
    let [size, _] = model_preset.input_size();
    let sheet = |weights: PathBuf, target: &Path| -> Result<Finished> {
        crate::sheet::run(crate::sheet::Args {
            weights,
            clip: crate::clip::ClipArgs {
                video: Some(clip_video.clone()),
                offset,
                preset: Some(model_preset.clone()),
                ..Default::default()
            },
            methods: vec![Method::Dtd, Method::Sa],
            rules: Default::default(),
            pictures: Default::default(),
            class: None,
            labels: sh.labels.clone(),
            true_class,
            pool5: None,
            device: sh.args.device.clone(),
            out: target.to_path_buf(),
        })
    };
    for (name, model, target) in [
        ("sheet (trained)", weights, "sheets/trained.png"),
        ("sheet (untrained)", &untrained, "sheets/untrained.png"),
    ] {
        stages.run(name, &rel(target), &p(target), || {
            sheet(model.clone(), &p(target))
        })?;
    }
    let dtd = AnalysisMethod::Explain(Method::Dtd);
    let sa = AnalysisMethod::Explain(Method::Sa);
    let evaluate = |region: [usize; 3], steps: usize, dir: &str| -> Result<Finished> {
        let dir = p(dir);
        let opts = EvaluationOptions {
            source: ClipSource::Manifest(sh.test.clone()),
            shard: Shard::WHOLE,
            weights: weights.clone(),
            preset: model_preset.clone(),
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
            methods: vec![dtd, sa, AnalysisMethod::Random],
            orders: vec![Order::Morf],
            batch: 8,
            journal: Some(journal_path(&dir)),
            resume: true,
            measure_overhead: false,
        };
        crate::evaluate::evaluate(&opts, &dir, &sh.args.device)
    };
    let done = p("eval-regions/summary.json");
    stages.run("evaluate (regions)", &rel("eval-regions/"), &done, || {
        evaluate([1, 8, 8], EVAL_REGION_STEPS, "eval-regions")
    })?;
    let done = p("eval-frames/summary.json");
    let frame = [1, size, size];
    stages.run("evaluate (frames)", &rel("eval-frames/"), &done, || {
        evaluate(frame, FRAMES, "eval-frames")
    })
}

/// `widths` as an array of `N`.
fn array<const N: usize>(widths: &[usize]) -> Result<[usize; N]> {
    widths
        .try_into()
        .map_err(|_| anyhow::anyhow!("the model has {} widths, not {N}", widths.len()))
}

/// The clip of the example sheets: the first test video, from the first frame after its title
/// card (if the synthetic data set says it has one), and its label.
fn sheet_clip(sh: &Shared) -> Result<(usize, PathBuf, Option<usize>)> {
    let data = sh.out.join("data");
    if let Some(synth) = vidlrp_synth::Description::find(&data)? {
        let Some(v) = synth.summary.videos.iter().find(|v| v.split == "test") else {
            bail!("the data set has no test video");
        };
        return Ok((v.title_frames, data.join(&v.path), Some(v.label)));
    }
    let Some(item) = sh.test.items.first() else {
        bail!("the test manifest has no video");
    };
    Ok((0, item.resolved.clone(), item.label))
}
