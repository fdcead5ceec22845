//! `vidlrp profile`, `sweep-steps`, `sweep-offsets` and `merge`: the paper's Section 3 on any
//! data set (method.md §3), through `vidlrp-dataset`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::json;
use vidlrp_c3d::Pool5;
use vidlrp_dataset::{
    AnalysisMethod, AnyRecords, BatchSize, Condition, Manifest, RunOptions, Shard,
};
use vidlrp_io::Outputs;
use vidlrp_snippet::{Preprocess, ShortPolicy};

/// Options every data-set command takes.
#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// CSV manifest `path,label` (label: class index, or a name from --labels); paths relative
    /// to the manifest's directory; an optional header row `path,label`.
    #[arg(long)]
    pub manifest: PathBuf,
    /// C3D weights: safetensors, .npz, PyTorch .pt/.pth/.pickle or a Caffe model.
    #[arg(long)]
    pub weights: PathBuf,
    /// Output directory: summary.json, CSV tables, figures (PNG and SVG), records.json. Written
    /// all at once when the run succeeds.
    #[arg(long)]
    pub out: PathBuf,
    /// Class names, one per line (e.g. the Sports-1M labels.txt), for named labels.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Preprocessing preset (and z^B bounds): caffe, port or kinetics, or NAME@SIZE for a square input
    /// of SIZE pixels (caffe@64). Default: the one recorded in the weights, else caffe.
    #[arg(long)]
    pub preset: Option<Preprocess>,
    /// Caffe's per-voxel mean (.binaryproto, 1x3x16x128x171): the caffe preset subtracts it
    /// (cropped like the frames) instead of the per-channel means; z^B bounds follow.
    #[arg(long)]
    pub mean: Option<PathBuf>,
    /// pool5 variant: port or caffe. Default: the weights' origin's (caffe for Caffe models).
    #[arg(long)]
    pub pool5: Option<Pool5>,
    /// Frames per snippet.
    #[arg(long, default_value_t = 16)]
    pub length: usize,
    /// Videos too short for a snippet: skip (counted and named) or clamp (repeat the last frame).
    #[arg(long, default_value = "skip")]
    pub short: ShortPolicy,
    /// This run's shard `i/n` (0-based): items `k` with `k % n == i`. Also read from
    /// SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX/VIDLRP_SHARD_COUNT.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Bootstrap resamples for the confidence intervals (0: none).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap (and of the DTD-u weights).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue an interrupted run with the same options and --out: videos it finished (kept
    /// in OUT.journal.jsonl, written as each video finishes) are not computed again; the
    /// outputs are those of an uninterrupted run.
    #[arg(long)]
    pub resume: bool,
    /// Snippets of one video explained as one batch: auto (from the model's size: batches of
    /// up to 8 for small models, where they run faster per snippet on the CPU too (DTD 1.3x);
    /// 1 for full C3D) or a number. The same results up to float rounding; memory grows with
    /// it.
    #[arg(long, default_value = "auto")]
    pub batch: BatchSize,
    /// With DTD-u and other methods, only one network is kept in memory: the videos are taken
    /// in chunks of at most this many MiB of network inputs, each chunk explained by one
    /// network, then by the other (the same results; an interrupted run recomputes at most
    /// one chunk).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub chunk_mb: u64,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp profile --manifest videos.csv --weights c3d.safetensors --out profile/\n  \
    vidlrp profile --manifest videos.csv --labels labels.txt --weights c3d.safetensors --shard 0/4 --out part0/\n\n\
    Table 1 and Fig. 2 of the paper: for DTD, SA and DTD-u (the same architecture re-initialised\n\
    with --seed) every snippet's share vector r_t, the mean, the quadratic and linear fits, and the\n\
    border (a) and lookahead (b') strengths with bootstrap intervals. Writes summary.json,\n\
    conditions.csv, shares.csv, fig2_shares.png/.svg and records.json into --out.")]
pub struct ProfileArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Methods: dtd-u (DTD of the re-initialised model) or any explanation method (dtd, sa,
    /// gradient, epsilon-plus, ...).
    #[arg(long, value_delimiter = ',', default_value = "dtd,sa,dtd-u")]
    methods: Vec<AnalysisMethod>,
    /// Snippet offset.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Snippet step (the training step of C3D is 1).
    #[arg(long, default_value_t = 1)]
    step: usize,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp sweep-steps --manifest videos.csv --labels labels.txt --weights c3d.safetensors --out steps/\n  \
    vidlrp sweep-steps --manifest videos.csv --weights c3d.safetensors --steps 0,1,2,4 --out steps/\n\n\
    Figs. 3 and 5: the border strength for each step size (one curve per method; default DTD\n\
    and SA, as the paper), and top-5 accuracy (labelled videos) against border strength. Writes summary.json, conditions.csv, shares.csv,\n\
    fig3_border_vs_step.png/.svg, fig5_top5_vs_border.png/.svg and records.json.")]
pub struct StepsArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Methods, one curve each: dtd-u or any explanation method (dtd, sa, ...).
    #[arg(long, value_delimiter = ',', default_value = "dtd,sa")]
    methods: Vec<AnalysisMethod>,
    /// Step sizes.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,4,8,16,32")]
    steps: Vec<usize>,
    /// Snippet offset.
    #[arg(long, default_value_t = 0)]
    offset: usize,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp sweep-offsets --manifest videos.csv --weights c3d.safetensors --out offsets/\n  \
    vidlrp sweep-offsets --manifest videos.csv --weights c3d.safetensors --offsets 0,8,16 --out offsets/\n\n\
    Fig. 4: the lookahead strength for each snippet offset (default 0, 8, ..., 256; one curve\n\
    per method, default DTD and SA). Writes\n\
    summary.json, conditions.csv, shares.csv, fig4_lookahead_vs_offset.png/.svg, records.json.")]
pub struct OffsetsArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Methods, one curve each: dtd-u or any explanation method (dtd, sa, ...).
    #[arg(long, value_delimiter = ',', default_value = "dtd,sa")]
    methods: Vec<AnalysisMethod>,
    /// Offsets (default 0, 8, ..., 256).
    #[arg(long, value_delimiter = ',')]
    offsets: Option<Vec<usize>>,
    /// Snippet step.
    #[arg(long, default_value_t = 1)]
    step: usize,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp merge part0/ part1/ part2/ part3/ --out profile/\n\n\
    Combines the records of all shards of one run into the same summary.json, tables and\n\
    figures a single unsharded run would have written. Refuses shards of different runs\n\
    (manifest or weights of other content, other options, other shard counts), missing or\n\
    repeated shards, and records that were edited or cut short.")]
pub struct MergeArgs {
    /// Output directories of the shards.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where to write the merged results.
    #[arg(long)]
    out: PathBuf,
}

/// The run options `a` names: the manifest read, the preset resolved, the shard chosen, the
/// journal beside `--out`.
fn options(a: &DataArgs) -> Result<RunOptions> {
    let labels = a
        .labels
        .as_deref()
        .map(vidlrp_dataset::read_labels)
        .transpose()?;
    let shard = match a.shard {
        Some(s) => s,
        None => Shard::from_env()?.unwrap_or(Shard::WHOLE),
    };
    Ok(RunOptions {
        manifest: Manifest::read(&a.manifest, labels.as_deref()).with_context(|| {
            if a.labels.is_none() {
                "cannot use the manifest (class names in it need --labels FILE)"
            } else {
                "cannot use the manifest"
            }
        })?,
        weights: a.weights.clone(),
        preset: crate::clip::preset_with_mean(
            &crate::weights::resolve_preset(a.preset.as_ref(), &a.weights)?,
            a.mean.as_deref(),
            Some(a.length),
        )?,
        pool5: a.pool5,
        length: a.length,
        short: a.short,
        shard,
        bootstrap: a.bootstrap,
        seed: a.seed,
        journal: Some(vidlrp_dataset::Journal::beside(&a.out)),
        resume: a.resume,
        batch: a.batch,
        chunk_bytes: usize::try_from(a.chunk_mb << 20).unwrap_or(usize::MAX),
    })
}

/// Runs `conditions` over the data set of `options`, then writes the summary, tables and
/// figures into `out`, publishing them together.
pub fn analyse(
    command: &str,
    options: &RunOptions,
    conditions: Vec<Condition>,
    out: &Path,
    device: &crate::device::DeviceArgs,
) -> Result<crate::summary::Finished> {
    let mut outputs = Outputs::new();
    let staged = outputs.dir(out)?;
    let shard = options.shard;
    let started = std::time::Instant::now();
    let mut timing = (0.0, 0.0);
    let records = crate::device::with_backend!(device, |be| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} snippets  {per_sec}  ETA {eta}  {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(command.to_string());
        let mut resumed = 0;
        let records = vidlrp_dataset::run(be, command, options, conditions, &mut |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(p.item.path.clone());
            resumed = p.resumed;
            timing = (p.explain_s, p.wait_s);
        })
        .with_context(|| format!("cannot run {command} with {}", options.weights.display()))?;
        bar.finish_and_clear();
        if options.resume {
            eprintln!(
                "{command}: {resumed} video(s) taken from the journal of the interrupted run"
            );
        }
        Ok::<_, anyhow::Error>(records)
    })?;
    let summary = vidlrp_dataset::summarize(&staged, &records)?;
    outputs.publish()?;
    // The outputs are complete: the journal has served.
    let _ = std::fs::remove_file(vidlrp_dataset::Journal::beside(out));
    eprintln!(
        "{command}: shard {shard}, {} of {} manifest items",
        shard.len_of(records.manifest_items),
        records.manifest_items
    );
    report(&summary);
    let wall_s = started.elapsed().as_secs_f64();
    eprintln!(
        "{command}: {wall_s:.1} s in all, {:.1} s explaining, {:.1} s waiting for frames",
        timing.0, timing.1
    );
    Ok(crate::summary::Finished::summary(json!({
        "out": out,
        "summary": out.join("summary.json"),
        "timing": {"wall_s": wall_s, "explain_s": timing.0, "wait_for_frames_s": timing.1},
    })))
}

/// One data-set command's run with the options of `a`.
fn run_data_command(
    command: &str,
    a: &DataArgs,
    conditions: Vec<Condition>,
) -> Result<crate::summary::Finished> {
    analyse(command, &options(a)?, conditions, &a.out, &a.device)
}

/// `vidlrp profile`.
pub fn profile(a: ProfileArgs) -> Result<crate::summary::Finished> {
    let conditions = Condition::profile(&a.methods, a.offset, a.step);
    run_data_command("profile", &a.data, conditions)
}

pub fn sweep_steps(a: StepsArgs) -> Result<crate::summary::Finished> {
    run_data_command(
        "sweep-steps",
        &a.data,
        Condition::step_sweep(&a.methods, &a.steps, a.offset),
    )
}

pub fn sweep_offsets(a: OffsetsArgs) -> Result<crate::summary::Finished> {
    let offsets = a.offsets.clone().unwrap_or_else(default_offsets);
    let conditions = Condition::offset_sweep(&a.methods, &offsets, a.step);
    run_data_command("sweep-offsets", &a.data, conditions)
}

pub fn merge(a: MergeArgs) -> Result<crate::summary::Finished> {
    let mut data_sets = Vec::new();
    let mut evaluations = Vec::new();
    for d in &a.dirs {
        match AnyRecords::read(d)? {
            AnyRecords::DataSet(r) => data_sets.push(r),
            AnyRecords::Evaluation(r) => evaluations.push(r),
        }
    }
    if !data_sets.is_empty() && !evaluations.is_empty() {
        bail!("the directories hold both evaluations and other data-set runs; merge each kind on its own");
    }
    if !evaluations.is_empty() {
        return crate::evaluate::merge(evaluations, &a.out);
    }
    let mut outputs = Outputs::new();
    let staged = outputs.dir(&a.out)?;
    let parts = data_sets;
    let rec = vidlrp_dataset::merge(parts)?;
    let summary = vidlrp_dataset::summarize(&staged, &rec)?;
    outputs.publish()?;
    eprintln!(
        "merge: {} shard(s) of a {} run",
        rec.shards.len(),
        rec.command
    );
    report(&summary);
    Ok(crate::summary::Finished::summary(
        json!({"out": a.out, "summary": a.out.join("summary.json")}),
    ))
}

/// Default offsets of the offset sweep: 0, 8, ..., 256.
fn default_offsets() -> Vec<usize> {
    (0..=256).step_by(8).collect()
}

/// The summary lines for stderr.
fn report(summary: &vidlrp_dataset::Summary) {
    let f = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    for c in &summary.conditions {
        let e = c.effects.as_ref();
        eprintln!(
            "  {:<12} n={:<4} border a={:<10} lookahead b'={:<10} top-5={}",
            c.key,
            c.n,
            f(e.map(|e| e.border), 5),
            f(e.map(|e| e.lookahead), 5),
            f(c.top5, 3),
        );
    }
    for w in &summary.warnings {
        eprintln!("  warning: {w}");
    }
}
