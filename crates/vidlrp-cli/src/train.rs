//! `vidlrp synth` (a synthetic data set where motion decides the class) and `vidlrp train`
//! (a C3D-shaped model trained on random snippets, as the paper's model was).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vidlrp_c3d::{init_weights, C3dSpec, Pool5, Rng, TensorMap};
use vidlrp_core::{Backend, HostTensor};
use vidlrp_dataset::Manifest;
use vidlrp_snippet::{FrameSource, Preprocess, ShortPolicy, SnippetSpec};
use vidlrp_synth::{SynthSpec, VideoFormat};
use vidlrp_train::{softmax_cross_entropy, Adam, Optimizer, Sgd, StepSchedule, TrainNet};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp synth --out synth --classes 4 --videos 48 --frames 96\n  \
    vidlrp synth --out tiny --classes 2 --videos 8 --frames 40 --size 64x48 --format npy\n\n\
    Writes videos/NNNNN.mp4 (or .npy frames), train.csv, val.csv, test.csv (split by video,\n\
    --split per class), labels.txt and synth.json. The class is a motion of one bar\n\
    (rightward, leftward, downward, upward, expanding, contracting, clockwise,\n\
    counter-clockwise); backgrounds pan, distractors move, and a share of the videos open\n\
    with a static title card. The same seed writes the same bytes.")]
pub struct SynthArgs {
    /// Output directory (created; must not exist yet).
    #[arg(long)]
    out: PathBuf,
    /// Number of classes (2..8).
    #[arg(long, default_value_t = 4)]
    classes: usize,
    /// Number of videos.
    #[arg(long, default_value_t = 48)]
    videos: usize,
    /// Frames per video (training and validation videos).
    #[arg(long, default_value_t = 96)]
    frames: usize,
    /// Frames per test video (default: --frames); e.g. 512 for step sweeps up to 32.
    #[arg(long)]
    test_frames: Option<usize>,
    /// Frame size WxH, even for mp4 (the caffe preset resizes to 171x128).
    #[arg(long, default_value = "172x128")]
    size: String,
    /// Frames per second.
    #[arg(long, default_value_t = 25)]
    fps: usize,
    /// Share of videos that open with a title card.
    #[arg(long, default_value_t = 0.3)]
    title_share: f64,
    /// Distractor discs per video (0..4), moving on random straight paths.
    #[arg(long, default_value_t = 2)]
    distractors: usize,
    /// Percentages of each class's videos for training, validation and test.
    #[arg(long, value_delimiter = ',', default_value = "70,15,15")]
    split: Vec<usize>,
    /// mp4 (H.264) or npy (float32 frames).
    #[arg(long, default_value = "mp4")]
    format: String,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `vidlrp synth`.
pub fn synth(a: SynthArgs) -> Result<()> {
    let (w, h) = a
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .with_context(|| format!("--size {:?}: expected WxH, e.g. 171x128", a.size))?;
    let format = match a.format.as_str() {
        "mp4" => VideoFormat::Mp4,
        "npy" => VideoFormat::Npy,
        f => bail!("--format {f:?}: expected mp4 or npy"),
    };
    let spec = SynthSpec {
        classes: a.classes,
        videos: a.videos,
        frames: a.frames,
        test_frames: a.test_frames,
        width: w,
        height: h,
        fps: a.fps,
        seed: a.seed,
        title_share: a.title_share,
        distractors: a.distractors,
        split: <[usize; 3]>::try_from(a.split.as_slice())
            .map_err(|_| anyhow::anyhow!("--split takes three percentages, e.g. 70,15,15"))?,
        format,
    };
    spec.check()?;
    if a.out.exists() {
        bail!(
            "{} exists; synth writes a new directory (remove it or choose another --out)",
            a.out.display()
        );
    }
    let mut outputs = vidlrp_io::Outputs::new();
    let staged = outputs.dir(&a.out)?;
    let bar = crate::progress::bar("synth", a.videos as u64, "videos");
    let summary =
        vidlrp_synth::write(&spec, &staged, &mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    outputs.publish()?;
    crate::emit(
        &json!({"out": a.out, "videos": a.videos, "train": summary.train, "val": summary.val, "test": summary.test,
               "classes": &vidlrp_synth::CLASS_NAMES[..a.classes]}),
    );
    Ok(())
}

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
pub struct TrainArgs {
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
    /// Width relative to C3D (1 = 64..512 channels, fc 4096).
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
    #[arg(long, default_value = "adam")]
    optimizer: String,
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

/// `OUT` with its extension replaced by `suffix`: `model.safetensors` + `.log.json` ->
/// `model.log.json`.
fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}{suffix}"))
}

/// The labelled items of a manifest.
fn labelled(path: &Path, labels: Option<&[String]>) -> Result<Vec<(PathBuf, usize)>> {
    let m = Manifest::read(path, labels)?;
    m.items
        .into_iter()
        .map(|i| {
            i.label
                .map(|l| (i.resolved.clone(), l))
                .with_context(|| format!("{}: {} has no label", path.display(), i.path))
        })
        .collect()
}

/// The network trains on the preset's pixels times this (inputs of about unit scale, as He's
/// initialisation assumes, and Adam's steps of the same relative size in conv1 as elsewhere);
/// the written model has it folded into conv1's weights, so it takes the preset's pixels.
const INPUT_SCALE: f32 = 1.0 / 64.0;

/// The trainer's parameters as a model that takes the preset's pixels: conv1's weights times
/// [`INPUT_SCALE`] (`conv(s x, w) = conv(x, s w)`).
fn fold_input_scale(mut w: TensorMap) -> TensorMap {
    if let Some(c1) = w.get_mut("conv1.weight") {
        c1.data_mut().iter_mut().for_each(|v| *v *= INPUT_SCALE);
    }
    w
}

/// Decoded videos kept in memory across epochs: each video is read ahead whole, once, while
/// the budget lasts (the same frames a seek-and-decode gives); past it, snippets are decoded
/// from the file each time.
struct FrameCache {
    videos: std::collections::HashMap<PathBuf, vidlrp_snippet::Prefetched>,
    bytes: usize,
    limit: usize,
}

impl FrameCache {
    fn new(limit_mb: usize) -> Self {
        Self {
            videos: Default::default(),
            bytes: 0,
            limit: limit_mb << 20,
        }
    }

    /// The source of `video`: held in memory if it is or now fits, else opened afresh.
    fn source(&mut self, video: &Path) -> Result<CachedOrOpen<'_>> {
        if !self.videos.contains_key(video) {
            let src = vidlrp_snippet::open(video)?;
            let info = src.info();
            let size = info.width * info.height * 3 * info.frames;
            if self.bytes + size > self.limit {
                return Ok(CachedOrOpen::Open(src));
            }
            let all: Vec<usize> = (0..info.frames).collect();
            let held = vidlrp_snippet::Prefetched::new(src, &all, size)?;
            self.bytes += size;
            self.videos.insert(video.to_path_buf(), held);
        }
        Ok(CachedOrOpen::Cached(
            self.videos.get_mut(video).expect("inserted above"),
        ))
    }
}

/// A video's frames: from the cache, or from the file.
enum CachedOrOpen<'a> {
    Cached(&'a mut vidlrp_snippet::Prefetched),
    Open(Box<dyn FrameSource>),
}

impl CachedOrOpen<'_> {
    fn get(&mut self) -> &mut dyn FrameSource {
        match self {
            CachedOrOpen::Cached(p) => *p,
            CachedOrOpen::Open(s) => s.as_mut(),
        }
    }
}

/// One preprocessed snippet: `offset` None takes the centre snippet and crop.
fn snippet(
    video: &Path,
    preset: &Preprocess,
    frames: usize,
    step: usize,
    rng: Option<&mut Rng>,
    cache: &mut FrameCache,
) -> Result<Option<HostTensor>> {
    let mut source = cache.source(video)?;
    let source = source.get();
    let n = source.info().frames;
    let span = (frames - 1) * step + 1;
    if n < span {
        return Ok(None);
    }
    let mut preset = preset.clone();
    let [rh, rw] = preset.resize;
    let [ch, cw] = preset.crop.1;
    let offset = match rng {
        Some(rng) => {
            let pick = |rng: &mut Rng, k: usize| (rng.uniform() * k as f64) as usize % k;
            preset.crop.0 = [pick(rng, rh - ch + 1), pick(rng, rw - cw + 1)];
            pick(rng, n - span + 1)
        }
        None => (n - span) / 2,
    };
    let spec = SnippetSpec {
        length: frames,
        offset,
        step,
    };
    Ok(Some(
        vidlrp_snippet::load_snippet(source, &spec, ShortPolicy::Skip, &preset)?.input,
    ))
}

/// The snippets of one batch, stacked `[N, 3, T, H, W]` (`None` if none could be used), their
/// labels, and how many videos were too short or unreadable.
struct Batch {
    x: Option<HostTensor>,
    labels: Vec<usize>,
    short: usize,
    failed: usize,
}

/// Loads one snippet of each item (random with `rng`, the centre one without), scaled by
/// [`INPUT_SCALE`]; each unreadable video is passed to `report` and counted.
fn load_batch<'a>(
    items: impl Iterator<Item = &'a (PathBuf, usize)>,
    a: &TrainArgs,
    preset: &Preprocess,
    mut rng: Option<&mut Rng>,
    cache: &mut FrameCache,
    report: &dyn Fn(String),
) -> Result<Batch> {
    let (mut clips, mut labels, mut short, mut failed) = (Vec::new(), Vec::new(), 0, 0);
    for (p, l) in items {
        match snippet(p, preset, a.frames, a.step, rng.as_deref_mut(), cache) {
            Ok(Some(c)) => {
                clips.push(c);
                labels.push(*l);
            }
            Ok(None) => short += 1,
            Err(e) => {
                report(format!("{e:#}"));
                failed += 1;
            }
        }
    }
    let x = if clips.is_empty() {
        None
    } else {
        let mut shape = vec![clips.len()];
        shape.extend_from_slice(clips[0].shape());
        let data = clips
            .iter()
            .flat_map(|c| c.data().iter().map(|v| v * INPUT_SCALE))
            .collect();
        Some(HostTensor::new(shape, data)?)
    };
    Ok(Batch {
        x,
        labels,
        short,
        failed,
    })
}

/// Top-1 and top-5 accuracy of `net` on `items` (centre snippets), and how many were skipped
/// (too short or unreadable; each unreadable one is reported on stderr).
fn evaluate<B: Backend>(
    be: &B,
    net: &TrainNet<B>,
    items: &[(PathBuf, usize)],
    a: &TrainArgs,
    preset: &Preprocess,
    cache: &mut FrameCache,
) -> Result<(f64, f64, usize)> {
    let (mut top1, mut top5, mut n, mut short) = (0usize, 0usize, 0usize, 0usize);
    for chunk in items.chunks(a.batch.max(1)) {
        let batch = load_batch(chunk.iter(), a, preset, None, cache, &|m| {
            eprintln!("skipped in validation: {m}");
        })?;
        short += batch.short + batch.failed;
        let (Some(x), labels) = (batch.x, batch.labels) else {
            continue;
        };
        let logits = net.forward(be, &x)?;
        let c = logits.shape()[1];
        for (row, &l) in logits.data().chunks(c).zip(&labels) {
            let top = vidlrp_core::top_k(row, 5);
            top1 += usize::from(top[0].0 == l);
            top5 += usize::from(top.iter().any(|(k, _)| *k == l));
            n += 1;
        }
    }
    let d = n.max(1) as f64;
    Ok((top1 as f64 / d, top5 as f64 / d, short))
}

/// `vidlrp train`.
pub fn train(a: TrainArgs) -> Result<()> {
    if !(a.width > 0.0 && a.width <= 4.0) {
        bail!("--width must be in (0, 4], got {}", a.width);
    }
    if a.batch == 0 || a.frames == 0 || a.epochs == 0 || a.snippets_per_video == 0 {
        bail!("--batch, --frames, --epochs and --snippets-per-video must be positive");
    }
    let labels_file = a.labels.clone().or_else(|| {
        let p = a
            .manifest
            .parent()
            .unwrap_or(Path::new("."))
            .join("labels.txt");
        p.exists().then_some(p)
    });
    let names = labels_file
        .as_deref()
        .map(vidlrp_dataset::read_labels)
        .transpose()?;
    let train_items = labelled(&a.manifest, names.as_deref())?;
    let val_items = a
        .val
        .as_deref()
        .map(|v| labelled(v, names.as_deref()))
        .transpose()?
        .unwrap_or_default();
    let test_items = a
        .test
        .as_deref()
        .map(|v| labelled(v, names.as_deref()))
        .transpose()?;
    let classes = names.as_ref().map_or_else(
        || train_items.iter().map(|i| i.1 + 1).max().unwrap_or(0),
        Vec::len,
    );
    if train_items.is_empty() || classes < 2 {
        bail!(
            "{}: training needs labelled videos of at least 2 classes",
            a.manifest.display()
        );
    }
    let scale = |c: usize| ((c as f64 * a.width).round() as usize).max(1);
    let widths = [64, 128, 256, 256, 512, 512, 512, 512].map(scale);
    let fc = [4096, 4096].map(scale);
    let preset = Preprocess::caffe()
        .at_size(a.size)
        .map_err(|e| anyhow::anyhow!("--size {}: {e}", a.size))?;
    let input = [a.frames, a.size, a.size];
    let spec = C3dSpec::with_widths(widths, fc, classes, input, Pool5::Port)?;
    let schedule = StepSchedule {
        base: a.lr,
        every: a.lr_step,
        gamma: a.lr_gamma,
    };
    let mut opt: Box<dyn Optimizer> = match a.optimizer.as_str() {
        "adam" => Box::new(Adam::new(a.lr)),
        "sgd" => Box::new(Sgd::new(a.lr, 0.9, 5e-4)),
        o => bail!("--optimizer {o:?}: expected adam or sgd"),
    };
    let checkpoint = sibling(&a.out, ".checkpoint.safetensors");
    let log_path = sibling(&a.out, ".log.json");
    let (weights, start, mut log) = if a.resume && checkpoint.exists() {
        let (mut t, meta) = vidlrp_io::read_safetensors_with_metadata(&checkpoint)?;
        let epoch: usize = meta
            .get("epoch")
            .and_then(|e| e.parse().ok())
            .context("checkpoint without an epoch")?;
        if meta.get("seed").map(String::as_str) != Some(&a.seed.to_string()) {
            bail!("{}: written with another --seed", checkpoint.display());
        }
        let state: Vec<(String, Vec<f32>)> = t
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("optimizer.")
                    .map(|n| (n.to_string(), v.data().to_vec()))
            })
            .collect();
        opt.load_state(state).map_err(anyhow::Error::msg)?;
        t.retain(|k, _| !k.starts_with("optimizer."));
        let log: Vec<Value> = std::fs::read_to_string(&log_path)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["epochs"].as_array().cloned())
            .unwrap_or_default();
        (t, epoch + 1, log)
    } else {
        // He-normal on inputs of unit scale (see INPUT_SCALE).
        (init_weights(&spec, a.seed), 0, Vec::new())
    };
    let (weights, test) = crate::device::with_backend!(&a.device, |be| {
        let mut cache = FrameCache::new(a.cache_mb);
        let mut net = TrainNet::c3d(
            be,
            weights,
            Pool5::Port,
            [3, a.frames, a.size, a.size],
            a.dropout,
        )?;
        for epoch in start..a.epochs {
            opt.set_lr(schedule.lr(epoch));
            let mut rng = Rng::new(a.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9));
            let mut order: Vec<usize> = (0..train_items.len() * a.snippets_per_video)
                .map(|i| i % train_items.len())
                .collect();
            for i in (1..order.len()).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let bar = crate::progress::bar(
                &format!("epoch {}/{}", epoch + 1, a.epochs),
                order.len() as u64,
                "snippets",
            );
            let (mut loss_sum, mut correct, mut seen, mut short) = (0.0f64, 0usize, 0usize, 0usize);
            let mut failed = 0usize;
            for (b, chunk) in order.chunks(a.batch).enumerate() {
                let batch = load_batch(
                    chunk.iter().map(|&i| &train_items[i]),
                    &a,
                    &preset,
                    Some(&mut rng),
                    &mut cache,
                    &|m| bar.suspend(|| eprintln!("skipped: {m}")),
                )?;
                (short, failed) = (short + batch.short, failed + batch.failed);
                bar.inc(chunk.len() as u64);
                let (Some(x), labels) = (batch.x, batch.labels) else {
                    continue;
                };
                let seed = a.seed ^ ((epoch as u64) << 32) ^ b as u64;
                let (logits, tape) = net.forward_train(be, &x, Some(seed))?;
                let (loss, dlogits) = softmax_cross_entropy(&logits, &labels)?;
                let grads = net.backward(be, tape, &dlogits)?;
                net.apply(be, opt.as_mut(), &grads)?;
                let c = logits.shape()[1];
                correct += logits
                    .data()
                    .chunks(c)
                    .zip(&labels)
                    .filter(|(row, l)| vidlrp_core::top_k(row, 1)[0].0 == **l)
                    .count();
                loss_sum += loss * labels.len() as f64;
                seen += labels.len();
                bar.set_message(format!(
                    "loss {:.3} acc {:.2}",
                    loss_sum / seen as f64,
                    correct as f64 / seen as f64
                ));
            }
            bar.finish_and_clear();
            if seen == 0 {
                bail!(
                    "no training video is long enough for {} frames at step {}",
                    a.frames,
                    a.step
                );
            }
            let (val1, val5, val_short) = evaluate(be, &net, &val_items, &a, &preset, &mut cache)?;
            let entry = json!({
                "epoch": epoch + 1, "lr": opt.lr(), "loss": loss_sum / seen as f64,
                "train_accuracy": correct as f64 / seen as f64, "snippets": seen, "skipped_short": short, "failed": failed,
                "val_top1": val1, "val_top5": val5, "val_videos": val_items.len(), "val_skipped_short": val_short,
            });
            eprintln!("{entry}");
            log.push(entry);
            // The checkpoint: parameters, optimiser state, the epoch; written atomically.
            let mut ck: TensorMap = net.weights().clone();
            for (k, v) in opt.state() {
                let n = v.len();
                ck.insert(format!("optimizer.{k}"), HostTensor::new(vec![n], v)?);
            }
            let mut meta = vidlrp_io::Metadata::new();
            meta.insert("epoch".into(), epoch.to_string());
            meta.insert("seed".into(), a.seed.to_string());
            vidlrp_io::write_safetensors_with_metadata(&checkpoint, &ck, &meta)?;
            write_log(&log_path, &a, &spec, classes, &log, None)?;
        }
        let test = match &test_items {
            Some(items) => {
                let (top1, top5, skipped) = evaluate(be, &net, items, &a, &preset, &mut cache)?;
                Some(
                    json!({"top1": top1, "top5": top5, "videos": items.len(), "skipped": skipped,
                            "chance_top1": 1.0 / classes as f64, "chance_top5": 5.0f64.min(classes as f64) / classes as f64}),
                )
            }
            None => None,
        };
        if let Some(t) = &test {
            eprintln!("test: {t}");
        }
        write_log(&log_path, &a, &spec, classes, &log, test.as_ref())?;
        Ok::<_, anyhow::Error>((net.weights().clone(), test))
    })?;
    let mut meta = vidlrp_io::Metadata::new();
    meta.insert(vidlrp_c3d::PRESET_KEY.into(), preset.to_string());
    meta.insert(
        vidlrp_c3d::ORIGIN_KEY.into(),
        vidlrp_c3d::Origin::Port.to_string(),
    );
    // A synthetic data set's spec (synth.json next to the manifest) travels with the model, so
    // its videos can be regenerated (`vidlrp demo` does).
    let synth = a
        .manifest
        .parent()
        .unwrap_or(Path::new("."))
        .join("synth.json");
    if let Some(spec) = std::fs::read_to_string(&synth)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map(|j| j["spec"].clone())
        .filter(Value::is_object)
    {
        meta.insert(vidlrp_synth::SPEC_KEY.into(), spec.to_string());
    }
    vidlrp_io::write_safetensors_with_metadata(&a.out, &fold_input_scale(weights), &meta)?;
    write_curves(&sibling(&a.out, "-curves"), &log)?;
    crate::emit(
        &json!({"model": a.out, "classes": classes, "parameters": spec.num_params(), "epochs": log, "test": test}),
    );
    Ok(())
}

fn write_log(
    path: &Path,
    a: &TrainArgs,
    spec: &C3dSpec,
    classes: usize,
    log: &[Value],
    test: Option<&Value>,
) -> Result<()> {
    let j = json!({
        "manifest": a.manifest, "val": a.val, "classes": classes, "width": a.width,
        "conv_widths": spec.conv_widths, "fc_widths": spec.fc_widths, "parameters": spec.num_params(),
        "size": a.size, "frames": a.frames, "step": a.step, "batch": a.batch, "snippets_per_video": a.snippets_per_video, "optimizer": a.optimizer, "lr": a.lr,
        "lr_step": a.lr_step, "lr_gamma": a.lr_gamma, "dropout": a.dropout, "seed": a.seed,
        "epochs": log, "test": test,
    });
    vidlrp_io::atomic_write(path, |w| w.write_all(format!("{j:#}\n").as_bytes()))?;
    Ok(())
}

fn write_curves(stem: &Path, log: &[Value]) -> Result<()> {
    let series = |key: &str, label: &str| vidlrp_viz::plots::Series {
        label: label.into(),
        points: log
            .iter()
            .filter_map(|e| Some((e["epoch"].as_f64()?, e[key].as_f64()?)))
            .collect(),
    };
    vidlrp_viz::plots::xy_figure(
        stem,
        "Training",
        "epoch",
        "loss / accuracy",
        &[
            series("loss", "training loss"),
            series("train_accuracy", "training accuracy"),
            series("val_top1", "validation top-1"),
            series("val_top5", "validation top-5"),
        ],
        false,
    )?;
    Ok(())
}
