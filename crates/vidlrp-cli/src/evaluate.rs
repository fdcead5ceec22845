//! `vidlrp evaluate`: how faithful is each explanation? Region (or frame) perturbation and
//! AOPC, run by `vidlrp_dataset::evaluate` (journal, resume, shards) on `vidlrp-evaluate`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::json;
use vidlrp_c3d::Pool5;
use vidlrp_dataset::{
    AnalysisMethod, ClipSource, EvaluationOptions, EvaluationRecords, EvaluationSummary, Manifest,
    Shard,
};
use vidlrp_evaluate::{Order, Region, Replace};
use vidlrp_io::Outputs;
use vidlrp_snippet::{Preprocess, ShortPolicy, SnippetSpec};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp evaluate --weights c3d.safetensors --video match.mp4 --out eval/\n  \
    vidlrp evaluate --weights c3d.safetensors --manifest test.csv --methods dtd,sa,random --steps 50 --out eval/\n  \
    vidlrp evaluate --weights c3d.safetensors --input clip.npy --region 1,112,112 --steps 16 --out frames/\n\n\
    Perturbation analysis (Samek et al. 2017): the clip is tiled into regions (--region T,H,W;\n\
    1,H,W is frame flipping), regions are ranked by summed relevance and removed in that order\n\
    (morf: most relevant first; lerf: least relevant first) by --replace, and the class score is\n\
    recorded after each of --steps removals. AOPC = 1/(L+1) * mean over clips of\n\
    sum_k (f(x0) - f(xk)): under morf, larger is more faithful; random is the baseline.\n\
    Writes summary.json (AOPC per method and order with bootstrap intervals), records.json,\n\
    curves.csv and perturbation_morf.png/.svg (and _lerf) into --out. A killed run continues\n\
    with --resume; shards of a --manifest (--shard i/n) merge with `vidlrp merge`.")]
pub struct Args {
    /// C3D weights: safetensors, .npz, PyTorch .pt/.pth/.pickle or a Caffe model.
    #[arg(long)]
    weights: PathBuf,
    /// Preprocessed clips: float32 .npy of shape (3,T,H,W) or (N,3,T,H,W) (each sample a clip).
    #[arg(long, conflicts_with_all = ["video", "manifest"], required_unless_present_any = ["video", "manifest"])]
    input: Option<PathBuf>,
    /// Video files, directories of frames or .npy frame arrays (repeat for several).
    #[arg(long, conflicts_with = "manifest")]
    video: Vec<PathBuf>,
    /// A CSV manifest `path,label` of videos (one snippet each).
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// This run's shard `i/n` of the manifest.
    #[arg(long)]
    shard: Option<Shard>,
    /// Methods whose relevance ranks the regions, and `random` (the baseline).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "dtd,sa,gradient-x-input,epsilon-plus,random"
    )]
    methods: Vec<AnalysisMethod>,
    /// Region size T,H,W in voxels (1,112,112: one frame per region, frame flipping).
    #[arg(long, default_value = "1,8,8")]
    region: Region,
    /// Perturbation steps L (regions removed); at most the number of regions.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// What removed voxels become: uniform (noise in the input range), mean (each channel's
    /// mean over the clip), zero, blur (the clip blurred per frame).
    #[arg(long, default_value = "uniform")]
    replace: Replace,
    /// Orders: morf (most relevant first), lerf (least relevant first), or both.
    #[arg(long, value_delimiter = ',', default_value = "morf,lerf")]
    order: Vec<Order>,
    /// Seed of the noise, the random ranking and the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bootstrap resamples for the intervals over clips (0: none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Perturbed clips per forward pass.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Also time as many plain forward passes (batches of the unperturbed first clip) as the
    /// curves took, and report the whole evaluation's time as a multiple of it.
    #[arg(long)]
    measure_overhead: bool,
    /// Preprocessing preset (and input range): caffe, port, kinetics, or NAME@SIZE. Default: the weights'.
    #[arg(long)]
    preset: Option<Preprocess>,
    /// pool5 variant: port or caffe. Default: the weights' origin's.
    #[arg(long)]
    pool5: Option<Pool5>,
    /// First source frame of each snippet (videos).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Source frames between snippet frames (videos).
    #[arg(long, default_value_t = 1)]
    step: usize,
    /// Frames per snippet (videos).
    #[arg(long, default_value_t = 16)]
    length: usize,
    /// Videos too short for a snippet: skip (counted and named) or clamp.
    #[arg(long, default_value = "skip")]
    short: ShortPolicy,
    /// Output directory: summary.json, records.json, curves.csv, perturbation_*.png/.svg.
    /// Finished clips are journaled in OUT.journal.jsonl until the outputs are written.
    #[arg(long)]
    out: PathBuf,
    /// Continue an interrupted run from its journal (same options), instead of starting over.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

/// The options of `a` as the library's.
fn options(a: &Args, preset: Preprocess) -> Result<EvaluationOptions> {
    let (source, shard) = if let Some(input) = &a.input {
        let (x, _) = crate::clip::read_clip(input)?;
        let name = input.display().to_string();
        (ClipSource::Tensor { name, x }, Shard::WHOLE)
    } else if let Some(m) = &a.manifest {
        let manifest = Manifest::read(m, None).context("cannot use the manifest")?;
        let shard = match a.shard {
            Some(s) => s,
            None => Shard::from_env()?.unwrap_or(Shard::WHOLE),
        };
        (ClipSource::Manifest(manifest), shard)
    } else {
        (ClipSource::Videos(a.video.clone()), Shard::WHOLE)
    };
    Ok(EvaluationOptions {
        source,
        shard,
        weights: a.weights.clone(),
        preset,
        pool5: a.pool5,
        snippet: SnippetSpec {
            length: a.length,
            offset: a.offset,
            step: a.step,
        },
        short: a.short,
        region: a.region,
        steps: a.steps,
        replace: a.replace,
        seed: a.seed,
        bootstrap: a.bootstrap,
        methods: a.methods.clone(),
        orders: a.order.clone(),
        batch: a.batch,
        journal: Some(vidlrp_dataset::Journal::beside(&a.out)),
        resume: a.resume,
        measure_overhead: a.measure_overhead,
    })
}

/// `vidlrp evaluate`.
pub fn run(a: Args) -> Result<crate::summary::Finished> {
    let preset = crate::weights::resolve_preset(a.preset.as_ref(), &a.weights)?;
    evaluate(&options(&a, preset)?, &a.out, &a.device)
}

/// Evaluates the explanations `opts` names and writes the summary, records, curves and
/// figures into `out`, publishing them together.
pub fn evaluate(
    opts: &EvaluationOptions,
    out: &Path,
    device: &crate::device::DeviceArgs,
) -> Result<crate::summary::Finished> {
    let started = std::time::Instant::now();
    let mut outputs = Outputs::new();
    let staged = outputs.dir(out)?;
    let mut resumed = 0;
    let (records, timing) = crate::device::with_backend!(device, |be| {
        let bar = crate::progress::bar("evaluate", 0, "clips");
        let r = vidlrp_dataset::evaluate(be, opts, &mut |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(p.clip.to_string());
            resumed = p.resumed;
        });
        bar.finish_and_clear();
        Ok::<_, anyhow::Error>(r?)
    })?;
    if resumed > 0 {
        eprintln!("evaluate: {resumed} clip(s) taken from the journal of the interrupted run");
    }
    let (summary, figures) = vidlrp_dataset::summarize_evaluation(&staged, &records)?;
    outputs.publish()?;
    // The outputs are complete: the journal has served.
    let _ = std::fs::remove_file(vidlrp_dataset::Journal::beside(out));
    report(&summary);
    if let Some(f) = timing.forward_only_s {
        eprintln!(
            "evaluate: explaining {:.2} s + perturbation curves {:.2} s = {:.2}x the {f:.2} s of \
             the same number of plain forward passes",
            timing.explain_s,
            timing.perturbation_s,
            (timing.explain_s + timing.perturbation_s) / f
        );
    }
    Ok(crate::summary::Finished::summary(json!({
        "out": out, "summary": out.join("summary.json"), "figures": figures,
        "timing": {"explain_s": timing.explain_s, "perturbation_s": timing.perturbation_s,
                   "forward_only_s": timing.forward_only_s,
                   "wall_s": started.elapsed().as_secs_f64()},
    })))
}

/// The AOPC lines and the missed clips, on stderr.
fn report(summary: &EvaluationSummary) {
    for r in &summary.results {
        let i = r.aopc.interval;
        eprintln!(
            "  {:<18} {:<4} AOPC {:>9.4}  [{}, {}]  ({} clips)",
            r.method.to_string(),
            r.order.to_string(),
            r.aopc.aopc,
            i.map_or("-".into(), |i| format!("{:.4}", i.lo)),
            i.map_or("-".into(), |i| format!("{:.4}", i.hi)),
            r.aopc.clips
        );
    }
    if !summary.missed.is_empty() {
        eprintln!("  {} clip(s) not evaluated:", summary.missed.len());
        for m in &summary.missed {
            eprintln!("    {}: {}", m.path, m.reason.as_deref().unwrap_or("?"));
        }
    }
}

/// `vidlrp merge` of evaluation shards: what one unsharded run writes.
pub fn merge(parts: Vec<EvaluationRecords>, out: &Path) -> Result<crate::summary::Finished> {
    let rec = vidlrp_dataset::merge_evaluations(parts)?;
    let mut outputs = Outputs::new();
    let staged = outputs.dir(out)?;
    let (summary, _) = vidlrp_dataset::summarize_evaluation(&staged, &rec)?;
    outputs.publish()?;
    report(&summary);
    Ok(crate::summary::Finished::summary(
        json!({"out": out, "summary": out.join("summary.json")}),
    ))
}
