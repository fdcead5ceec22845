//! `vidlrp train`: arguments mapped onto [`vidlrp_train::fit`]; the model, its log and its
//! curves written through [`vidlrp_io::Outputs`].

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::json;
use vidlrp_c3d::{init_weights, C3dSpec, Pool5};
use vidlrp_dataset::Manifest;
use vidlrp_train::{
    CheckpointAt, OptimizerKind, Progress, TrainConfig, TrainData, TrainFiles, TrainLog,
};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp train --manifest synth/train.csv --val synth/val.csv --out model.safetensors\n  \
    vidlrp train --manifest synth/train.csv --val synth/val.csv --width 0.25 --epochs 20 --optimizer sgd --lr 0.003 --out m.safetensors\n  \
    vidlrp train --manifest synth/train.csv --out m.safetensors --resume   # continue after an interruption\n\n\
    Each epoch takes --snippets-per-video random snippets of each training video (random offset, the given --step,\n\
    a random 112x112 crop of the caffe preset's 128x171 frames), in a seeded random order;\n\
    validation uses the centre snippet and crop. Writes the model (PyTorch-port names, so every\n\
    other command loads it), OUT.checkpoint.safetensors after every epoch (parameters and\n\
    optimiser state; --resume continues from it), OUT.log.json (loss, accuracy, top-1/top-5\n\
    per epoch) and OUT-curves.png/svg. Deterministic for a seed and thread count.")]
pub struct Args {
    /// Training manifest (`path,label`).
    #[arg(long)]
    manifest: PathBuf,
    /// Validation manifest.
    #[arg(long)]
    val: Option<PathBuf>,
    /// Held-out test manifest: evaluated once after the last epoch (centre snippets), reported
    /// in the log as test top-1/top-5.
    #[arg(long)]
    test: Option<PathBuf>,
    /// Class names, one per line (default: labels.txt next to the manifest if present, else
    /// the largest label + 1 classes).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The trained model (.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Width relative to C3D (1 = 64..512 channels, fc 4096), in (0, 4].
    #[arg(long, default_value_t = 0.125)]
    width: f64,
    /// Input size in pixels (square): the caffe preset scaled to it (resize 128x171 and crop
    /// 112 at 112; `caffe@64` at 64). Recorded in the model, so other commands use it.
    #[arg(long, default_value_t = 112)]
    size: usize,
    /// Frames per snippet.
    #[arg(long, default_value_t = 16)]
    frames: usize,
    /// Source frames between snippet frames.
    #[arg(long, default_value_t = 1)]
    step: usize,
    /// Epochs.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Snippets per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Random snippets taken from each training video per epoch.
    #[arg(long, default_value_t = 1)]
    snippets_per_video: usize,
    /// adam or sgd (momentum 0.9, weight decay 5e-4, as the paper).
    #[arg(long, default_value_t = OptimizerKind::Adam)]
    optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 5e-4)]
    lr: f32,
    /// Multiply the learning rate by --lr-gamma every this many epochs (0: constant).
    #[arg(long, default_value_t = 0)]
    lr_step: usize,
    /// The learning-rate decay factor.
    #[arg(long, default_value_t = 0.1)]
    lr_gamma: f32,
    /// Dropout after fc6 and fc7.
    #[arg(long, default_value_t = 0.5)]
    dropout: f32,
    /// Seed of the initial weights, the order, the snippets and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue from OUT.checkpoint.safetensors.
    #[arg(long)]
    resume: bool,
    /// Keep decoded videos in memory up to this many MiB (each decoded once, not once per
    /// snippet); 0 decodes every snippet from its file.
    #[arg(long, default_value_t = 4096)]
    cache_mb: usize,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

/// A training run: the data, the model's width, the training settings and where the model
/// goes (what `vidlrp train`'s options say, typed).
pub struct Request {
    /// Training manifest.
    pub manifest: PathBuf,
    /// Validation manifest.
    pub val: Option<PathBuf>,
    /// Held-out test manifest.
    pub test: Option<PathBuf>,
    /// Class names (default: labels.txt beside the manifest).
    pub labels: Option<PathBuf>,
    /// The trained model (.safetensors); its log, checkpoint and curves go beside it.
    pub out: PathBuf,
    /// Width relative to C3D.
    pub width: f64,
    /// The training settings.
    pub config: TrainConfig,
    /// Continue from the checkpoint beside `out`.
    pub resume: bool,
    /// Where the model runs.
    pub device: crate::device::DeviceArgs,
}

/// The videos of the three manifests; the classes are the labels file's names, or the
/// largest training label + 1.
fn data(a: &Request) -> Result<TrainData> {
    let names = vidlrp_dataset::labels_for(&a.manifest, a.labels.as_deref())?;
    let read = |p: &Path| Manifest::read(p, names.as_deref())?.labelled();
    let val = a.val.as_deref().map(read).transpose()?;
    let test = a.test.as_deref().map(read).transpose()?;
    let classes = names.as_ref().map(Vec::len);
    Ok(TrainData::new(
        read(&a.manifest)?,
        val.unwrap_or_default(),
        test,
        classes,
    ))
}

/// The training settings of `a`.
fn config(a: &Args) -> TrainConfig {
    TrainConfig {
        frames: a.frames,
        step: a.step,
        size: a.size,
        epochs: a.epochs,
        batch: a.batch,
        snippets_per_video: a.snippets_per_video,
        optimizer: a.optimizer,
        lr: a.lr,
        lr_step: a.lr_step,
        lr_gamma: a.lr_gamma,
        dropout: a.dropout,
        seed: a.seed,
        cache_mb: a.cache_mb,
    }
}

/// `vidlrp train`.
pub fn run(a: Args) -> Result<crate::summary::Finished> {
    let config = config(&a);
    train(&Request {
        manifest: a.manifest,
        val: a.val,
        test: a.test,
        labels: a.labels,
        out: a.out,
        width: a.width,
        config,
        resume: a.resume,
        device: a.device,
    })
}

/// Trains the model `a` describes and writes it, its log and its curves, all at once.
pub fn train(a: &Request) -> Result<crate::summary::Finished> {
    let config = &a.config;
    config.check()?;
    let data = data(a)?;
    let spec = C3dSpec::scaled(
        a.width,
        data.classes,
        [config.frames, config.size, config.size],
        Pool5::Port,
    )?;
    let (val, test) = (a.val.as_deref(), a.test.as_deref());
    let mut log = TrainLog::c3d(&a.manifest, val, test, &spec, a.width, config);
    let files = TrainFiles::beside(&a.out);
    let mut console = crate::progress::TrainConsole::default();
    let mut failed_write = None;
    let mut progress = |p: Progress<'_>| {
        if let Some(epochs) = console.show(&p) {
            // For a person watching; --resume reads the checkpoint's own copy.
            log.epochs = epochs.to_vec();
            if let Err(e) = log.write(&files.log) {
                failed_write.get_or_insert(e);
            }
        }
    };
    let trained = crate::device::with_backend!(&a.device, |be| {
        vidlrp_train::fit(
            be,
            config,
            &data,
            &vidlrp_c3d::layers(&spec, Pool5::Port),
            // He-normal on inputs of unit scale (see vidlrp_train::INPUT_SCALE).
            || init_weights(&spec, config.seed),
            CheckpointAt {
                path: &files.checkpoint,
                resume: a.resume,
            },
            &mut progress,
        )
        .map_err(anyhow::Error::from)
    })?;
    if let Some(e) = failed_write {
        return Err(e.into());
    }
    log.epochs = trained.epochs;
    log.test = trained.test;

    let mut meta = config.c3d_model_metadata()?;
    // A synthetic data set's spec travels with the model, so its videos can be regenerated
    // (`vidlrp demo` does).
    if let Some(d) = vidlrp_synth::Description::find(a.manifest.parent().unwrap_or(Path::new(".")))?
    {
        meta.insert(vidlrp_synth::SPEC_KEY.into(), d.spec_metadata());
    }
    let mut outputs = vidlrp_io::Outputs::new();
    vidlrp_io::write_safetensors_with_metadata(&outputs.file(&a.out)?, &trained.weights, &meta)?;
    log.write(&outputs.file(&files.log)?)?;
    let series: Vec<_> = (log.curves().into_iter())
        .map(|(label, points)| vidlrp_viz::plots::Series {
            label: label.into(),
            points,
            intervals: Vec::new(),
        })
        .collect();
    let (png, svg) = (
        outputs.file(&files.curves_png)?,
        outputs.file(&files.curves_svg)?,
    );
    let axes = ["epoch", "loss / accuracy"];
    vidlrp_viz::plots::xy_figure_at([&png, &svg], "Training", axes, &series, false)?;
    outputs.publish()?;
    Ok(crate::summary::Finished::summary(
        json!({"model": a.out, "classes": log.classes, "parameters": log.parameters,
                        "epochs": log.epochs, "test": log.test}),
    ))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Train {
        #[command(flatten)]
        args: super::Args,
    }

    /// `reproduce` starts from `TrainConfig::default()`: it is what `vidlrp train` defaults to.
    #[test]
    fn defaults_are_the_command_lines() {
        let a = Train::parse_from(["x", "--manifest", "m.csv", "--out", "m.safetensors"]).args;
        assert_eq!(super::config(&a), vidlrp_train::TrainConfig::default());
    }
}
