//! [`evaluate`]: perturbation faithfulness (vidlrp-evaluate's curves and AOPC) over the clips of
//! a shard, on the same machinery as the other data-set commands: a [`Journal`] of finished
//! clips (resumable after a kill), typed [`EvaluationRecords`] that merge across shards, and
//! [`summarize_evaluation`] for the summary, table and figures.
//!
//! [`Journal`]: crate::Journal

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vidlrp_c3d::Pool5;
use vidlrp_core::{Backend, Composite, HostTensor, Method, PresetOptions, Sequential, Target};
use vidlrp_evaluate::{Aopc, Order, Region, Replace, Tiling};
use vidlrp_snippet::{Preprocess, ShortPolicy, SnippetSpec};

use crate::{AnalysisMethod, DatasetError, Manifest, Missed, Network, Result, Shard};

/// The format of [`EvaluationRecords`] and [`EvaluationSummary`] this build writes and reads.
pub const EVALUATION_FORMAT: u32 = 1;

/// Where the clips of an evaluation come from.
#[derive(Debug, Clone)]
pub enum ClipSource {
    /// The videos of a manifest (the shard's items).
    Manifest(Manifest),
    /// Video files (or frame folders, `.npy` frames), in order.
    Videos(Vec<PathBuf>),
    /// Preprocessed clips `[N, 3, T, H, W]`, named after `name` (`name#i` when `N > 1`).
    Tensor {
        /// The file they came from.
        name: String,
        /// The clips.
        x: HostTensor,
    },
}

/// The options of an evaluation run.
#[derive(Debug, Clone)]
pub struct EvaluationOptions {
    /// The clips.
    pub source: ClipSource,
    /// The part of a manifest this run takes (whole for other sources).
    pub shard: Shard,
    /// The C3D weight file.
    pub weights: PathBuf,
    /// Preprocessing preset (and the z^B bounds of DTD, the uniform noise's range).
    pub preset: Preprocess,
    /// pool5 variant; `None`: the weights' origin's.
    pub pool5: Option<Pool5>,
    /// The snippet of each video.
    pub snippet: SnippetSpec,
    /// What to do with videos too short for it.
    pub short: ShortPolicy,
    /// The size of one region.
    pub region: Region,
    /// Regions removed per curve.
    pub steps: usize,
    /// What a removed region becomes.
    pub replace: Replace,
    /// Seed of the noise, the random rankings and the bootstrap.
    pub seed: u64,
    /// Bootstrap resamples of the AOPC intervals.
    pub bootstrap: usize,
    /// The rankings: explanation methods of the trained network and `random`.
    pub methods: Vec<AnalysisMethod>,
    /// Removal orders.
    pub orders: Vec<Order>,
    /// Perturbed clips per forward pass.
    pub batch: usize,
    /// Where to journal finished clips, if anywhere.
    pub journal: Option<PathBuf>,
    /// Continue the journal of an interrupted run of the same options.
    pub resume: bool,
    /// Also time as many plain forward passes (batches of the first evaluated clip) as the
    /// curves took ([`EvaluationTiming::forward_only_s`]).
    pub measure_overhead: bool,
}

/// What an evaluation measured: every option its curves depend on. Shards merge only when
/// theirs are equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationRun {
    /// SHA-256 of the weight file.
    pub weights_sha256: String,
    /// SHA-256 of the manifest (`None` for videos or clips given directly: those do not merge).
    pub manifest_sha256: Option<String>,
    /// Preprocessing preset.
    pub preset: String,
    /// Region size `T,H,W`.
    pub region: String,
    /// Regions per clip.
    pub regions: usize,
    /// Regions removed per curve.
    pub steps: usize,
    /// What a removed region becomes.
    pub replace: Replace,
    /// Seed.
    pub seed: u64,
    /// Bootstrap resamples.
    pub bootstrap: usize,
    /// The rankings, in the order given.
    pub methods: Vec<AnalysisMethod>,
    /// Removal orders, in the order given.
    pub orders: Vec<Order>,
    /// First source frame of each snippet.
    pub offset: usize,
    /// Source frames between snippet frames.
    pub step: usize,
    /// Frames per snippet.
    pub length: usize,
    /// Perturbed clips per forward pass (float rounding of the scores depends on it).
    pub batch: usize,
}

/// One perturbation curve: the class score after `0..=steps` removals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The ranking.
    pub method: AnalysisMethod,
    /// The order of removal.
    pub order: Order,
    /// `f(x^(0)), ..., f(x^(steps))`.
    pub scores: Vec<f32>,
}

/// One clip of an evaluation: its curves, or why it has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRecord {
    /// Its index (manifest row, video or clip number).
    pub item: usize,
    /// Its name (manifest path, video path, `file#i`).
    pub clip: String,
    /// One curve per method and order, in run order; empty if the clip was missed.
    pub curves: Vec<Curve>,
    /// Why the clip could not be evaluated.
    pub missed: Option<String>,
}

/// Which kind of run a `records.json` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordsKind {
    /// [`crate::Records`] of `profile`, `sweep-steps`, `sweep-offsets` (files without a kind).
    #[default]
    DataSet,
    /// [`EvaluationRecords`].
    Evaluation,
}

/// Everything an evaluation (or several merged shards of one) measured, in item order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecords {
    /// [`EVALUATION_FORMAT`].
    pub format: u32,
    /// Always [`RecordsKind::Evaluation`].
    pub kind: RecordsKind,
    /// What was measured.
    pub run: EvaluationRun,
    /// The shards covered.
    pub shards: Vec<Shard>,
    /// One record per clip, by item.
    pub clips: Vec<ClipRecord>,
}

impl vidlrp_io::Versioned for EvaluationRecords {
    const FORMAT: u32 = EVALUATION_FORMAT;
    const WHAT: &'static str = "evaluation's records";
}

/// The records of either kind of data-set run, as `vidlrp merge` reads them.
#[derive(Debug, Clone)]
pub enum AnyRecords {
    /// A profile or sweep.
    DataSet(crate::Records),
    /// A perturbation evaluation.
    Evaluation(EvaluationRecords),
}

impl AnyRecords {
    /// Reads `dir/records.json`, of the kind it names.
    ///
    /// **Errors** if it is missing, corrupt or of another format.
    pub fn read(dir: &Path) -> Result<Self> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            kind: RecordsKind,
        }
        let path = dir.join("records.json");
        let kind = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Probe>(&t).ok())
            .map_or(RecordsKind::DataSet, |p| p.kind);
        Ok(match kind {
            RecordsKind::DataSet => AnyRecords::DataSet(crate::Records::read(dir)?),
            RecordsKind::Evaluation => AnyRecords::Evaluation(vidlrp_io::read_versioned(&path)?),
        })
    }
}

/// AOPC of one ranking and order over the evaluated clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AopcResult {
    /// The ranking.
    pub method: AnalysisMethod,
    /// The order.
    pub order: Order,
    /// AOPC with its interval, clips and mean drop per step.
    #[serde(flatten)]
    pub aopc: Aopc,
}

/// `summary.json` of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSummary {
    /// [`EVALUATION_FORMAT`].
    pub format: u32,
    /// What was measured.
    pub run: EvaluationRun,
    /// The shards covered.
    pub shards: Vec<Shard>,
    /// Clips evaluated.
    pub clips: usize,
    /// Clips that could not be, and why.
    pub missed: Vec<Missed>,
    /// One result per method and order, in run order.
    pub results: Vec<AopcResult>,
}

impl vidlrp_io::Versioned for EvaluationSummary {
    const FORMAT: u32 = EVALUATION_FORMAT;
    const WHAT: &'static str = "evaluation summary";
}

impl EvaluationSummary {
    /// Reads `dir/summary.json`.
    ///
    /// **Errors** if it is missing, of another format, or not an evaluation summary.
    pub fn read(dir: &Path) -> Result<Self> {
        Ok(vidlrp_io::read_versioned(&dir.join("summary.json"))?)
    }

    /// The result of `method` under `order`.
    pub fn result(&self, method: AnalysisMethod, order: Order) -> Option<&AopcResult> {
        self.results
            .iter()
            .find(|r| r.method == method && r.order == order)
    }
}

/// Where an evaluation stands, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationProgress<'a> {
    /// Clips done (evaluated, missed or taken from the journal).
    pub done: usize,
    /// Clips in this run.
    pub total: usize,
    /// The clip just done.
    pub clip: &'a str,
    /// Clips taken from the journal of an interrupted run so far.
    pub resumed: usize,
}

/// Seconds spent per phase of an evaluation.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct EvaluationTiming {
    /// Explaining the clips.
    pub explain_s: f64,
    /// Computing the perturbation curves.
    pub perturbation_s: f64,
    /// As many plain forward passes as the curves took (with `measure_overhead`).
    pub forward_only_s: Option<f64>,
}

/// Stable per-clip seeds, so a clip's noise does not depend on which shard it ran in.
fn clip_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A clip to evaluate: its index, name and where to read it.
enum Pending<'a> {
    Video(usize, String, PathBuf),
    Slice(usize, String, &'a [f32]),
}

/// The clips of `opts` (the shard's, for a manifest), not yet read.
fn pending(opts: &EvaluationOptions, one: usize) -> Vec<Pending<'_>> {
    match &opts.source {
        ClipSource::Manifest(m) => m
            .items
            .iter()
            .filter(|it| opts.shard.contains(it.index))
            .map(|it| Pending::Video(it.index, it.path.clone(), it.resolved.clone()))
            .collect(),
        ClipSource::Videos(v) => v
            .iter()
            .enumerate()
            .map(|(i, p)| Pending::Video(i, p.display().to_string(), p.clone()))
            .collect(),
        ClipSource::Tensor { name, x } => {
            let n = x.shape()[0];
            (0..n)
                .map(|i| {
                    let label = if n == 1 {
                        name.clone()
                    } else {
                        format!("{name}#{i}")
                    };
                    Pending::Slice(i, label, &x.data()[i * one..(i + 1) * one])
                })
                .collect()
        }
    }
}

/// The input shape `[1, C, T, H, W]` every clip must have.
fn clip_shape(opts: &EvaluationOptions) -> Result<Vec<usize>> {
    match &opts.source {
        ClipSource::Tensor { x, .. } => {
            let s = x.shape();
            if s.len() != 5 || s[0] == 0 {
                return Err(DatasetError::Empty(format!(
                    "clips must be [N, C, T, H, W] with N > 0, got {s:?}"
                )));
            }
            Ok([&[1], &s[1..]].concat())
        }
        _ => {
            let [h, w] = opts.preset.input_size();
            Ok(vec![1, 3, opts.snippet.length, h, w])
        }
    }
}

/// **Errors** unless there is something to evaluate with the trained network's rankings.
fn check(opts: &EvaluationOptions) -> Result<()> {
    if opts.orders.is_empty() || opts.methods.is_empty() {
        return Err(DatasetError::Empty(
            "nothing to evaluate: give at least one method and one order".into(),
        ));
    }
    if let Some(m) = opts
        .methods
        .iter()
        .find(|m| m.network() != Network::Trained)
    {
        return Err(DatasetError::Records(format!(
            "{m} explains another network than the one evaluated; use dtd, sa, ... or random"
        )));
    }
    Ok(())
}

/// Evaluates every clip of `opts` on backend `be`, calling `progress` after each. A clip that
/// cannot be read or explained is recorded as missed and the run goes on; with a journal, a
/// run killed at any point resumes without recomputing finished clips and ends with the
/// records of an uninterrupted run.
///
/// **Errors** before any clip is read if the options do not fit (no method, `dtd-u`, more
/// steps than regions, regions that do not tile the clip), the weights cannot be read, or the
/// journal belongs to another run; later, if a perturbation curve cannot be computed.
pub fn evaluate<B: Backend>(
    be: &B,
    opts: &EvaluationOptions,
    progress: &mut dyn FnMut(EvaluationProgress<'_>),
) -> Result<(EvaluationRecords, EvaluationTiming)> {
    check(opts)?;
    let shape = clip_shape(opts)?;
    let tiling = Tiling::new([shape[2], shape[3], shape[4]], opts.region)?;
    if opts.steps > tiling.len() {
        return Err(DatasetError::Records(format!(
            "{} steps is larger than the number of regions ({} of {} in a {}x{}x{} clip); take \
             fewer steps or smaller regions",
            opts.steps,
            tiling.len(),
            opts.region,
            shape[2],
            shape[3],
            shape[4]
        )));
    }
    let net = vidlrp_model::load(&opts.weights, opts.pool5)?
        .into_network(be, [shape[1], shape[2], shape[3], shape[4]])?;
    let preset_options = PresetOptions {
        low: opts.preset.low(),
        high: opts.preset.high(),
        ..PresetOptions::default()
    };
    let methods: Vec<Method> = opts.methods.iter().filter_map(|m| m.method()).collect();
    let composites = methods
        .iter()
        .map(|&m| Composite::preset(m, &preset_options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for c in &composites {
        net.rules(c)?;
    }
    let run = EvaluationRun {
        weights_sha256: crate::sha256_file(&opts.weights)?,
        manifest_sha256: match &opts.source {
            ClipSource::Manifest(m) => Some(m.sha256.clone()),
            _ => None,
        },
        preset: opts.preset.to_string(),
        region: opts.region.to_string(),
        regions: tiling.len(),
        steps: opts.steps,
        replace: opts.replace,
        seed: opts.seed,
        bootstrap: opts.bootstrap,
        methods: opts.methods.clone(),
        orders: opts.orders.clone(),
        offset: opts.snippet.offset,
        step: opts.snippet.step,
        length: opts.snippet.length,
        batch: opts.batch,
    };
    let (mut journal, done) = match &opts.journal {
        Some(path) => {
            let (j, done) = crate::Journal::open::<ClipRecord>(
                path,
                &(&run, opts.shard, "evaluate"),
                opts.resume,
            )?;
            (Some(j), done)
        }
        None => (None, Vec::new()),
    };
    let mut done: std::collections::BTreeMap<usize, ClipRecord> =
        done.into_iter().map(|r| (r.item, r)).collect();
    let one = shape.iter().product::<usize>();
    let todo = pending(opts, one);
    let total = todo.len();
    let evaluator = ClipEvaluator {
        be,
        net: &net,
        composites: &composites,
        methods: &methods,
        opts,
        shape: &shape,
        tiling: &tiling,
    };
    let mut clips = Vec::with_capacity(total);
    let mut timing = EvaluationTiming::default();
    let mut resumed = 0;
    for p in todo {
        let (item, name) = match &p {
            Pending::Video(i, n, _) | Pending::Slice(i, n, _) => (*i, n.clone()),
        };
        let record = match done.remove(&item) {
            Some(r) if r.clip == name => {
                resumed += 1;
                r
            }
            Some(_) => {
                return Err(DatasetError::Records(format!(
                    "the journal's record of clip {item} names another clip than {name}"
                )))
            }
            None => {
                // A panic while reading or explaining one clip misses that clip, with the
                // message; the run goes on.
                let r =
                    crate::contain_panic(|| evaluator.clip(item, name.clone(), &p, &mut timing))
                        .unwrap_or_else(|message| {
                            Ok(ClipRecord {
                                item,
                                clip: name.clone(),
                                curves: Vec::new(),
                                missed: Some(message),
                            })
                        })?;
                if let Some(j) = journal.as_mut() {
                    j.append(&r)?;
                }
                r
            }
        };
        clips.push(record);
        progress(EvaluationProgress {
            done: clips.len(),
            total,
            clip: &name,
            resumed,
        });
    }
    clips.sort_by_key(|c| c.item);
    if opts.measure_overhead {
        timing.forward_only_s = Some(evaluator.forward_only(&clips)?);
    }
    let records = EvaluationRecords {
        format: EVALUATION_FORMAT,
        kind: RecordsKind::Evaluation,
        run,
        shards: vec![match opts.source {
            ClipSource::Manifest(_) => opts.shard,
            _ => Shard::WHOLE,
        }],
        clips,
    };
    Ok((records, timing))
}

/// What every clip of one run is evaluated with.
struct ClipEvaluator<'a, B: Backend> {
    be: &'a B,
    net: &'a Sequential<B>,
    composites: &'a [Composite],
    methods: &'a [Method],
    opts: &'a EvaluationOptions,
    shape: &'a [usize],
    tiling: &'a Tiling,
}

impl<B: Backend> ClipEvaluator<'_, B> {
    /// Seconds of as many plain forward passes as `clips`' curves hold scores, in batches of
    /// the run's size, of the first evaluated clip repeated.
    fn forward_only(&self, clips: &[ClipRecord]) -> Result<f64> {
        let samples: usize = clips
            .iter()
            .flat_map(|c| &c.curves)
            .map(|c| c.scores.len())
            .sum();
        let Some(first) = clips.iter().find(|c| c.missed.is_none()) else {
            return Ok(0.0);
        };
        let pending = pending(self.opts, self.shape.iter().product());
        let one = pending
            .iter()
            .find(
                |p| matches!(p, Pending::Video(i, ..) | Pending::Slice(i, ..) if *i == first.item),
            )
            .expect("the clip is the run's");
        let x = match one {
            Pending::Slice(_, _, data) => data.to_vec(),
            Pending::Video(_, _, path) => {
                let o = self.opts;
                vidlrp_snippet::read_snippet(path, &o.snippet, o.short, &o.preset)
                    .map_err(|e| DatasetError::Records(e.to_string()))?
                    .input
                    .data()
                    .to_vec()
            }
        };
        let batch = self.opts.batch.max(1);
        let start = std::time::Instant::now();
        let mut left = samples;
        while left > 0 {
            let n = left.min(batch);
            let xs = HostTensor::new(
                [&[n], &self.shape[1..]].concat(),
                x.iter().copied().cycle().take(n * x.len()).collect(),
            )?;
            let y = self.net.forward(self.be, &self.be.upload_owned(xs)?)?;
            self.be.download(&y)?;
            left -= n;
        }
        Ok(start.elapsed().as_secs_f64())
    }

    /// Reads, explains and perturbs one clip. A clip that cannot be read, has another shape or
    /// cannot be explained is missed (with its reason).
    ///
    /// **Errors** if a perturbation curve cannot be computed.
    fn clip(
        &self,
        item: usize,
        clip: String,
        pending: &Pending<'_>,
        timing: &mut EvaluationTiming,
    ) -> Result<ClipRecord> {
        let missed = |reason: String| ClipRecord {
            item,
            clip: clip.clone(),
            curves: Vec::new(),
            missed: Some(reason),
        };
        let x = match pending {
            Pending::Slice(_, _, data) => HostTensor::new(self.shape.to_vec(), data.to_vec())?,
            Pending::Video(_, _, path) => {
                let o = self.opts;
                match vidlrp_snippet::read_snippet(path, &o.snippet, o.short, &o.preset) {
                    Ok(s) => s.into_batched_input(),
                    Err(e) => return Ok(missed(e.to_string())),
                }
            }
        };
        if x.shape() != self.shape {
            return Ok(missed(format!(
                "shape {:?} differs from the {:?} of the run",
                x.shape(),
                self.shape
            )));
        }
        match self.curves(&x, &clip, timing) {
            Ok(curves) => Ok(ClipRecord {
                item,
                clip,
                curves,
                missed: None,
            }),
            Err(CurveError::Explain(reason)) => Ok(missed(reason)),
            Err(CurveError::Fatal(e)) => Err(e),
        }
    }

    /// Every curve of one clip `x`, in run order (methods, then orders).
    fn curves(
        &self,
        x: &HostTensor,
        name: &str,
        timing: &mut EvaluationTiming,
    ) -> std::result::Result<Vec<Curve>, CurveError> {
        let (be, net, o) = (self.be, self.net, self.opts);
        let start = std::time::Instant::now();
        let xb = be
            .upload(x)
            .map_err(|e| CurveError::Explain(e.to_string()))?;
        let refs: Vec<&Composite> = self.composites.iter().collect();
        let explained = net
            .explain_each(be, &xb, &Target::TopOne, &refs)
            .map_err(|e| CurveError::Explain(e.to_string()))?;
        timing.explain_s += start.elapsed().as_secs_f64();
        // The explained class is the top-1 one; the explanations carry it. Only a run of the
        // random baseline alone needs a forward pass for it.
        let class = match explained.first() {
            Some(e) => e.classes[0],
            None => {
                let logits = net
                    .forward(be, &xb)
                    .and_then(|y| be.download(&y))
                    .map_err(|e| CurveError::Explain(e.to_string()))?;
                vidlrp_core::top_k(logits.data(), 1)[0].0
            }
        };
        let start = std::time::Instant::now();
        let s = self.shape;
        let seed = clip_seed(o.seed, name);
        let fill = vidlrp_evaluate::replacement(
            x.data(),
            [s[1], s[2], s[3], s[4]],
            o.replace,
            &o.preset.low(),
            &o.preset.high(),
            o.region,
            seed,
        )
        .map_err(|e| CurveError::Fatal(e.into()))?;
        let mut curves = Vec::new();
        for &method in &o.methods {
            let sums = match method.method() {
                Some(m) => {
                    let i = self.methods.iter().position(|&x| x == m).expect("listed");
                    let r = explained[i].relevance.data();
                    Some(
                        self.tiling
                            .sums(r, s[1])
                            .map_err(|e| CurveError::Fatal(e.into()))?,
                    )
                }
                None => None,
            };
            // The random baseline has no order: one random ranking serves every order.
            let mut baseline: Option<Vec<f32>> = None;
            for &order in &o.orders {
                let scores = match (&sums, &baseline) {
                    (None, Some(c)) => c.clone(),
                    _ => {
                        let ranking = match &sums {
                            Some(sums) => vidlrp_evaluate::ranking(sums, order),
                            None => vidlrp_evaluate::random_ranking(self.tiling.len(), seed),
                        };
                        vidlrp_evaluate::curve(
                            be,
                            net,
                            x,
                            class,
                            self.tiling,
                            &ranking,
                            o.steps,
                            &fill,
                            o.batch,
                        )
                        .map_err(|e| CurveError::Fatal(e.into()))?
                    }
                };
                if sums.is_none() {
                    baseline = Some(scores.clone());
                }
                curves.push(Curve {
                    method,
                    order,
                    scores,
                });
            }
        }
        timing.perturbation_s += start.elapsed().as_secs_f64();
        Ok(curves)
    }
}

/// Why a clip's curves were not computed: the clip could not be explained (it is missed), or
/// the computation failed (the run stops).
enum CurveError {
    Explain(String),
    Fatal(DatasetError),
}

/// The records of several shards of one evaluation as one unsharded run's.
///
/// **Errors** if they are not all of one run (weights, manifest and every option), were not
/// of a manifest, or are not each shard of one count exactly once.
pub fn merge_evaluations(parts: Vec<EvaluationRecords>) -> Result<EvaluationRecords> {
    let first = parts
        .first()
        .ok_or_else(|| DatasetError::Empty("nothing to merge".into()))?;
    let run = first.run.clone();
    if run.manifest_sha256.is_none() {
        return Err(DatasetError::Records(
            "only evaluations of a manifest merge".into(),
        ));
    }
    if parts.iter().any(|p| p.run != run) {
        return Err(DatasetError::Records(
            "the shards are of different evaluations (other weights, manifest or settings)".into(),
        ));
    }
    let shards: Vec<Shard> = parts.iter().flat_map(|p| p.shards.clone()).collect();
    let n = shards[0].count;
    if let Some(s) = shards.iter().find(|s| s.count != n) {
        return Err(DatasetError::Records(format!(
            "shards of {n} and of {} do not merge",
            s.count
        )));
    }
    let mut seen: Vec<usize> = shards.iter().map(|s| s.index).collect();
    seen.sort_unstable();
    if seen != (0..n).collect::<Vec<_>>() {
        return Err(DatasetError::Records(format!(
            "the shards {seen:?} are not each of 0..{n} exactly once"
        )));
    }
    let mut clips: Vec<ClipRecord> = parts.into_iter().flat_map(|p| p.clips).collect();
    clips.sort_by_key(|c| c.item);
    Ok(EvaluationRecords {
        format: EVALUATION_FORMAT,
        kind: RecordsKind::Evaluation,
        run,
        shards: vec![Shard::WHOLE],
        clips,
    })
}

/// Writes `records.json`, `summary.json` (AOPC per method and order with bootstrap intervals
/// over clips), `curves.csv` (one row per clip, curve and step) and `perturbation_ORDER.png`
/// / `.svg` into `dir`, which must exist. Returns the summary and the figures' file names.
///
/// **Errors** if no clip was evaluated, or a file or figure cannot be written.
pub fn summarize_evaluation(
    dir: &Path,
    rec: &EvaluationRecords,
) -> Result<(EvaluationSummary, Vec<String>)> {
    let run = &rec.run;
    let evaluated: Vec<&ClipRecord> = rec.clips.iter().filter(|c| c.missed.is_none()).collect();
    if evaluated.is_empty() {
        let reasons: Vec<String> = rec
            .clips
            .iter()
            .map(|c| format!("{}: {}", c.clip, c.missed.as_deref().unwrap_or("?")))
            .collect();
        return Err(DatasetError::Empty(format!(
            "no clip could be evaluated ({} tried: {})",
            rec.clips.len(),
            reasons.join("; ")
        )));
    }
    let mut csv = String::from("method,order,item,clip,k,score\n");
    let mut results = Vec::new();
    for &method in &run.methods {
        for &order in &run.orders {
            let mut curves = Vec::new();
            for c in &evaluated {
                let curve = c
                    .curves
                    .iter()
                    .find(|k| k.method == method && k.order == order)
                    .ok_or_else(|| {
                        DatasetError::Records(format!(
                            "clip {} has no {method} {order} curve",
                            c.item
                        ))
                    })?;
                for (k, v) in curve.scores.iter().enumerate() {
                    csv.push_str(&format!(
                        "{method},{order},{},{},{k},{v}\n",
                        c.item,
                        crate::report::csv_field(&c.clip)
                    ));
                }
                curves.push(curve.scores.clone());
            }
            let aopc = vidlrp_evaluate::summarize(&curves, run.bootstrap, run.seed)?;
            results.push(AopcResult {
                method,
                order,
                aopc,
            });
        }
    }
    let summary = EvaluationSummary {
        format: EVALUATION_FORMAT,
        run: run.clone(),
        shards: rec.shards.clone(),
        clips: evaluated.len(),
        missed: rec
            .clips
            .iter()
            .filter_map(|c| {
                Some(Missed {
                    item: c.item,
                    path: c.clip.clone(),
                    reason: Some(c.missed.clone()?),
                })
            })
            .collect(),
        results,
    };
    vidlrp_io::write_json(&dir.join("records.json"), rec)?;
    vidlrp_io::write_json(&dir.join("summary.json"), &summary)?;
    vidlrp_io::atomic_write(&dir.join("curves.csv"), |w| {
        std::io::Write::write_all(w, csv.as_bytes())
    })?;
    let figures = figures(dir, &summary)?;
    Ok((summary, figures))
}

/// One figure per order: the mean score drop against regions removed, one line per method.
fn figures(dir: &Path, summary: &EvaluationSummary) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for &order in &summary.run.orders {
        let series: Vec<vidlrp_viz::plots::Series> = summary
            .results
            .iter()
            .filter(|r| r.order == order)
            .map(|r| vidlrp_viz::plots::Series {
                label: format!("{} (AOPC {:.3})", r.method, r.aopc.aopc),
                points: r
                    .aopc
                    .mean_drop
                    .iter()
                    .enumerate()
                    .map(|(k, &d)| (k as f64, d))
                    .collect(),
                intervals: Vec::new(),
            })
            .collect();
        let title = format!(
            "{} perturbation, regions {} ({})",
            order.to_string().to_uppercase(),
            summary.run.region,
            summary.run.replace
        );
        for p in vidlrp_viz::plots::xy_figure(
            &dir.join(format!("perturbation_{order}")),
            &title,
            "regions removed k",
            "mean score drop f(x0) - f(xk)",
            &series,
            false,
        )? {
            names.extend(p.file_name().map(|f| f.to_string_lossy().into_owned()));
        }
    }
    Ok(names)
}
