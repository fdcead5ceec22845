//! [`fit`]: the training loop (epochs of shuffled random snippets, validation, the test),
//! its checkpoint and resumption.

use std::path::Path;

use serde::{Deserialize, Serialize};
use vidlrp_c3d::TensorMap;
use vidlrp_core::{Backend, HostTensor, LayerSpec};
use vidlrp_rng::Rng;
use vidlrp_snippet::Preprocess;

use crate::data::{Cutter, FrameCache, LabelledVideo, TrainData};
use crate::{
    softmax_cross_entropy, Optimizer, OptimizerKind, Result, StepSchedule, TrainError, TrainNet,
};

/// The network trains on the preset's pixels times this (inputs of about unit scale, as He's
/// initialisation assumes, and Adam's steps of the same relative size in conv1 as elsewhere);
/// [`fit`] returns the parameters with it folded into the first layer's weights
/// ([`fold_input_scale`]), so the trained model takes the preset's pixels.
pub const INPUT_SCALE: f32 = 1.0 / 64.0;

/// Parameters trained on inputs times [`INPUT_SCALE`] as a model that takes the preset's
/// pixels: `first_layer.weight` times the scale (`conv(s x, w) = conv(x, s w)`), where
/// `first_layer` is the first layer with parameters.
pub fn fold_input_scale(mut w: TensorMap, first_layer: &str) -> TensorMap {
    if let Some(c1) = w.get_mut(&format!("{first_layer}.weight")) {
        c1.data_mut().iter_mut().for_each(|v| *v *= INPUT_SCALE);
    }
    w
}

/// How to train: snippets, epochs, batches, the optimiser and its schedule, dropout, seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Frames per snippet.
    pub frames: usize,
    /// Source frames between snippet frames.
    pub step: usize,
    /// Input size in pixels (square): the caffe preset scaled to it (`Preprocess::at_size`).
    pub size: usize,
    /// Epochs.
    pub epochs: usize,
    /// Snippets per batch.
    pub batch: usize,
    /// Random snippets taken from each training video per epoch.
    pub snippets_per_video: usize,
    /// The optimiser.
    pub optimizer: OptimizerKind,
    /// Learning rate of the first epochs.
    pub lr: f32,
    /// Epochs between learning-rate decays (0: constant).
    pub lr_step: usize,
    /// The decay factor.
    pub lr_gamma: f32,
    /// Dropout after each ReLU that follows a dense layer.
    pub dropout: f32,
    /// Seed of the order, the snippets, the crops and dropout.
    pub seed: u64,
    /// Decoded videos kept in memory up to this many MiB (0: decode every snippet).
    pub cache_mb: usize,
}

impl Default for TrainConfig {
    /// `vidlrp train`'s defaults: 16 frames at step 1, 112 pixels, 8 epochs of batches of 8,
    /// Adam at 5e-4, dropout 0.5, seed 0, a 4 GiB cache.
    fn default() -> Self {
        Self {
            frames: 16,
            step: 1,
            size: 112,
            epochs: 8,
            batch: 8,
            snippets_per_video: 1,
            optimizer: OptimizerKind::Adam,
            lr: 5e-4,
            lr_step: 0,
            lr_gamma: 0.1,
            dropout: 0.5,
            seed: 0,
            cache_mb: 4096,
        }
    }
}

impl TrainConfig {
    /// **Errors** if a count is 0 or the dropout is not in `[0, 1)`.
    pub fn check(&self) -> Result<()> {
        if self.batch == 0 || self.frames == 0 || self.step == 0 || self.epochs == 0 {
            return Err(TrainError::Invalid(
                "batch, frames, step and epochs must be positive".into(),
            ));
        }
        if self.snippets_per_video == 0 {
            return Err(TrainError::Invalid(
                "snippets per video must be positive".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(TrainError::Invalid(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }

    /// The preprocessing of the inputs: the caffe preset at [`TrainConfig::size`].
    ///
    /// **Errors** on a size the preset cannot take.
    pub fn preset(&self) -> Result<Preprocess> {
        Preprocess::caffe()
            .at_size(self.size)
            .map_err(|e| TrainError::Invalid(format!("size {}: {e}", self.size)))
    }

    /// The metadata of a C3D trained under this config: its preset
    /// (`vidlrp_c3d::PRESET_KEY`, so other commands preprocess as it was trained) and origin
    /// (the port's names and pool5).
    ///
    /// **Errors** on a size the preset cannot take.
    pub fn c3d_model_metadata(&self) -> Result<vidlrp_io::Metadata> {
        let mut meta = vidlrp_io::Metadata::new();
        meta.insert(vidlrp_c3d::PRESET_KEY.into(), self.preset()?.to_string());
        meta.insert(
            vidlrp_c3d::ORIGIN_KEY.into(),
            vidlrp_c3d::Origin::Port.to_string(),
        );
        Ok(meta)
    }

    /// The network's input `[3, frames, size, size]`.
    pub fn input(&self) -> [usize; 4] {
        [3, self.frames, self.size, self.size]
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// The learning rate.
    pub lr: f32,
    /// Mean training loss per snippet.
    pub loss: f64,
    /// Training top-1 accuracy (with dropout, on the random snippets).
    pub train_accuracy: f64,
    /// Training snippets used.
    pub snippets: usize,
    /// Training snippets skipped: video too short.
    pub skipped_short: usize,
    /// Training snippets skipped: video unreadable.
    pub failed: usize,
    /// Validation top-1 accuracy (centre snippets; 0 without validation videos).
    pub val_top1: f64,
    /// Validation top-5 accuracy.
    pub val_top5: f64,
    /// Validation videos.
    pub val_videos: usize,
    /// Validation videos skipped (too short or unreadable).
    pub val_skipped_short: usize,
    /// Wall time of the epoch's training steps (reading the snippets included, validation
    /// not), in seconds; 0 in logs written before it was recorded.
    #[serde(default)]
    pub train_seconds: f64,
    /// Training snippets per second of `train_seconds`.
    #[serde(default)]
    pub snippets_per_s: f64,
}

/// The held-out test after the last epoch (centre snippets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestRecord {
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy.
    pub top5: f64,
    /// Test videos.
    pub videos: usize,
    /// Test videos skipped (too short or unreadable).
    pub skipped: usize,
    /// Top-1 accuracy of guessing, `1 / classes`.
    pub chance_top1: f64,
    /// Top-5 accuracy of guessing, `min(5, classes) / classes`.
    pub chance_top5: f64,
}

/// What [`fit`] reports while it runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// An epoch (1-based) of `snippets` snippets begins.
    EpochStarted {
        /// 1-based epoch.
        epoch: usize,
        /// Epochs in all.
        epochs: usize,
        /// Snippets of this epoch.
        snippets: usize,
    },
    /// A training batch is done: `done` snippets of the epoch so far, mean loss and accuracy.
    Batch {
        /// Snippets of the epoch done.
        done: usize,
        /// Mean loss so far.
        loss: f64,
        /// Accuracy so far.
        accuracy: f64,
    },
    /// A video could not be read and was skipped (counted in the records).
    Skipped {
        /// `training`, `validation` or `test`.
        stage: &'static str,
        /// Why.
        message: String,
    },
    /// An epoch is done and checkpointed: every record so far, the last one new.
    EpochDone(&'a [EpochRecord]),
    /// The test is done.
    Tested(&'a TestRecord),
}

/// A finished training run.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The parameters, taking the preset's pixels ([`fold_input_scale`] applied).
    pub weights: TensorMap,
    /// Every epoch, including those of the run a resumption continued.
    pub epochs: Vec<EpochRecord>,
    /// The test, if test videos were given.
    pub test: Option<TestRecord>,
}

/// Where a run keeps its checkpoint, and whether it continues from it.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointAt<'a> {
    /// The checkpoint, written atomically after every epoch.
    pub path: &'a Path,
    /// Continue from `path` if it exists (else start afresh).
    pub resume: bool,
}

const CHECKPOINT_FORMAT: &str = "1";

/// Writes the checkpoint of the epoch (0-based) just done: the parameters, the optimiser's
/// state as 1-d tensors `optimizer.{key}`, and metadata `epoch`, `seed`, `log` (the epoch
/// records as JSON) and `vidlrp.checkpoint.format`.
fn write_checkpoint(
    path: &Path,
    net_weights: &TensorMap,
    opt: &dyn Optimizer,
    epoch: usize,
    seed: u64,
    log: &[EpochRecord],
) -> Result<()> {
    let mut ck = net_weights.clone();
    for (k, v) in opt.state() {
        let n = v.len();
        ck.insert(format!("optimizer.{k}"), HostTensor::new(vec![n], v)?);
    }
    let mut meta = vidlrp_io::Metadata::new();
    meta.insert("epoch".into(), epoch.to_string());
    meta.insert("seed".into(), seed.to_string());
    meta.insert(
        "log".into(),
        serde_json::to_string(log).expect("records serialise"),
    );
    meta.insert("vidlrp.checkpoint.format".into(), CHECKPOINT_FORMAT.into());
    vidlrp_io::write_safetensors_with_metadata(path, &ck, &meta)?;
    Ok(())
}

/// A run restored from its checkpoint: parameters, the next epoch, the records so far.
struct Restored {
    weights: TensorMap,
    next_epoch: usize,
    log: Vec<EpochRecord>,
}

/// Reads a checkpoint of [`write_checkpoint`], loading the optimiser state into `opt`.
fn read_checkpoint(path: &Path, seed: u64, opt: &mut dyn Optimizer) -> Result<Restored> {
    let bad = |m: &str| TrainError::Invalid(format!("{}: {m}", path.display()));
    let (mut t, meta) = vidlrp_io::read_safetensors_with_metadata(path)?;
    let epoch: usize = meta
        .get("epoch")
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| bad("a checkpoint without an epoch"))?;
    if meta.get("seed").map(String::as_str) != Some(&seed.to_string()) {
        return Err(bad("written with another seed"));
    }
    let log: Vec<EpochRecord> = match meta.get("log") {
        Some(l) => serde_json::from_str(l).map_err(|e| bad(&format!("its log: {e}")))?,
        None => Vec::new(),
    };
    let state: Vec<(String, Vec<f32>)> = t
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("optimizer.")
                .map(|n| (n.to_string(), v.data().to_vec()))
        })
        .collect();
    opt.load_state(state).map_err(|e| bad(&e))?;
    t.retain(|k, _| !k.starts_with("optimizer."));
    Ok(Restored {
        weights: t,
        next_epoch: epoch + 1,
        log,
    })
}

/// The order of one epoch's snippets: each training video `snippets_per_video` times,
/// shuffled (Fisher-Yates with `next_u64 % (i + 1)`).
fn epoch_order(videos: usize, per_video: usize, rng: &mut Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..videos * per_video).map(|i| i % videos).collect();
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// A run in progress: the network and what feeds it.
struct Session<'a, B: Backend> {
    be: &'a B,
    config: &'a TrainConfig,
    data: &'a TrainData,
    net: TrainNet<B>,
    cut: Cutter<'a>,
    cache: FrameCache,
}

impl<B: Backend> Session<'_, B> {
    /// Top-1 and top-5 accuracy on `videos` (centre snippets), and how many were skipped (too
    /// short or unreadable; each unreadable one is reported as skipped in `stage`).
    fn accuracy(
        &mut self,
        videos: &[LabelledVideo],
        stage: &'static str,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(f64, f64, usize)> {
        let (mut top1, mut top5, mut n, mut skipped) = (0usize, 0usize, 0usize, 0usize);
        for chunk in videos.chunks(self.config.batch.max(1)) {
            let b = self
                .cut
                .batch(chunk.iter(), None, &mut self.cache, &mut |message| {
                    progress(Progress::Skipped { stage, message });
                })?;
            skipped += b.short + b.failed;
            let Some(x) = b.x else { continue };
            let logits = self.net.forward(self.be, &x)?;
            let c = logits.shape()[1];
            for (row, &l) in logits.data().chunks(c).zip(&b.labels) {
                top1 += usize::from(vidlrp_stats::top_k_hit(row, l, 1));
                top5 += usize::from(vidlrp_stats::top_k_hit(row, l, 5));
                n += 1;
            }
        }
        let d = n.max(1) as f64;
        Ok((top1 as f64 / d, top5 as f64 / d, skipped))
    }

    /// One epoch (0-based) of training batches with `opt`, then validation.
    fn epoch(
        &mut self,
        epoch: usize,
        opt: &mut dyn Optimizer,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<EpochRecord> {
        let (config, data) = (self.config, self.data);
        let mut rng = Rng::new(config.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9));
        let order = epoch_order(data.train.len(), config.snippets_per_video, &mut rng);
        progress(Progress::EpochStarted {
            epoch: epoch + 1,
            epochs: config.epochs,
            snippets: order.len(),
        });
        let mut rec = EpochRecord {
            epoch: epoch + 1,
            lr: opt.lr(),
            loss: 0.0,
            train_accuracy: 0.0,
            snippets: 0,
            skipped_short: 0,
            failed: 0,
            val_top1: 0.0,
            val_top5: 0.0,
            val_videos: data.val.len(),
            val_skipped_short: 0,
            train_seconds: 0.0,
            snippets_per_s: 0.0,
        };
        let started = std::time::Instant::now();
        let (mut loss_sum, mut correct, mut done) = (0.0f64, 0usize, 0usize);
        for (b, chunk) in order.chunks(config.batch).enumerate() {
            let batch = self.cut.batch(
                chunk.iter().map(|&i| &data.train[i]),
                Some(&mut rng),
                &mut self.cache,
                &mut |message| {
                    progress(Progress::Skipped {
                        stage: "training",
                        message,
                    });
                },
            )?;
            rec.skipped_short += batch.short;
            rec.failed += batch.failed;
            done += chunk.len();
            let Some(x) = batch.x else { continue };
            let seed = config.seed ^ ((epoch as u64) << 32) ^ b as u64;
            let (logits, tape) = self.net.forward_train(self.be, &x, Some(seed))?;
            let (loss, dlogits) = softmax_cross_entropy(&logits, &batch.labels)?;
            let grads = self.net.backward(self.be, tape, &dlogits)?;
            self.net.apply(self.be, opt, &grads)?;
            let c = logits.shape()[1];
            correct += logits
                .data()
                .chunks(c)
                .zip(&batch.labels)
                .filter(|(row, l)| vidlrp_stats::top_k_hit(row, **l, 1))
                .count();
            loss_sum += loss * batch.labels.len() as f64;
            rec.snippets += batch.labels.len();
            progress(Progress::Batch {
                done,
                loss: loss_sum / rec.snippets as f64,
                accuracy: correct as f64 / rec.snippets as f64,
            });
        }
        if rec.snippets == 0 {
            return Err(TrainError::Invalid(format!(
                "no training video is long enough for {} frames at step {}",
                config.frames, config.step
            )));
        }
        rec.train_seconds = started.elapsed().as_secs_f64();
        rec.snippets_per_s = rec.snippets as f64 / rec.train_seconds.max(1e-9);
        (rec.val_top1, rec.val_top5, rec.val_skipped_short) =
            self.accuracy(&data.val, "validation", progress)?;
        rec.loss = loss_sum / rec.snippets as f64;
        rec.train_accuracy = correct as f64 / rec.snippets as f64;
        Ok(rec)
    }

    /// The held-out test of `videos`.
    fn test(
        &mut self,
        videos: &[LabelledVideo],
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<TestRecord> {
        let (top1, top5, skipped) = self.accuracy(videos, "test", progress)?;
        let k = self.data.classes as f64;
        Ok(TestRecord {
            top1,
            top5,
            videos: videos.len(),
            skipped,
            chance_top1: 1.0 / k,
            chance_top5: 5.0f64.min(k) / k,
        })
    }
}

/// Trains the network of `layers` on `data` under `config`, from the parameters `init()`
/// (called only when the run does not resume from its checkpoint).
///
/// Each epoch `e` (0-based) draws from `Rng::new(seed ^ e * 0x9e37_79b9)`: the order of
/// the snippets (a Fisher–Yates shuffle), then per snippet its crop rows, crop columns and offset;
/// batch `b`'s dropout is seeded `seed ^ (e << 32) ^ b`. The inputs are the preset's pixels
/// times [`INPUT_SCALE`]. After each epoch the validation videos are scored and the
/// checkpoint written; with `checkpoint.resume` a run continues from it and ends with the
/// same parameters as one never interrupted. The result is deterministic for a seed and a
/// backend (thread count).
///
/// **Errors** on an invalid config, no usable training video, a checkpoint of another seed,
/// backend failures and write failures. Unreadable videos are skipped and counted.
pub fn fit<B: Backend>(
    be: &B,
    config: &TrainConfig,
    data: &TrainData,
    layers: &[LayerSpec],
    init: impl FnOnce() -> TensorMap,
    checkpoint: CheckpointAt<'_>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Trained> {
    config.check()?;
    if data.train.is_empty() || data.classes < 2 {
        return Err(TrainError::Invalid(
            "training needs labelled videos of at least 2 classes".into(),
        ));
    }
    let preset = config.preset()?;
    let schedule = StepSchedule {
        base: config.lr,
        every: config.lr_step,
        gamma: config.lr_gamma,
    };
    let mut opt = config.optimizer.build(config.lr);
    let restored = if checkpoint.resume && checkpoint.path.exists() {
        read_checkpoint(checkpoint.path, config.seed, opt.as_mut())?
    } else {
        Restored {
            weights: init(),
            next_epoch: 0,
            log: Vec::new(),
        }
    };
    let mut log = restored.log;
    let mut run = Session {
        be,
        config,
        data,
        net: TrainNet::new(be, layers, restored.weights, config.dropout)?,
        cut: Cutter {
            preset: &preset,
            frames: config.frames,
            step: config.step,
            scale: INPUT_SCALE,
        },
        cache: FrameCache::new(config.cache_mb),
    };
    for epoch in restored.next_epoch..config.epochs {
        opt.set_lr(schedule.lr(epoch));
        log.push(run.epoch(epoch, opt.as_mut(), progress)?);
        write_checkpoint(
            checkpoint.path,
            run.net.weights(),
            opt.as_ref(),
            epoch,
            config.seed,
            &log,
        )?;
        progress(Progress::EpochDone(&log));
    }
    let test = match &data.test {
        Some(videos) => {
            let t = run.test(videos, progress)?;
            progress(Progress::Tested(&t));
            Some(t)
        }
        None => None,
    };
    // Positive scaling passes unchanged through ReLUs, pooling and reshapes to the first
    // layer with parameters.
    let first_layer = layers
        .iter()
        .find(|l| l.is_affine())
        .map_or("", LayerSpec::name);
    Ok(Trained {
        weights: fold_input_scale(run.net.into_weights(), first_layer),
        epochs: log,
        test,
    })
}
