//! `vidlrp profile`, `sweep-steps`, `sweep-offsets` and `merge`: the paper's Section 3 on any
//! data set (method.md §3).

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::json;

use crate::dataset::{self, Condition, DataArgs};

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
    /// Methods: dtd, sa, dtd-u.
    #[arg(long, value_delimiter = ',', default_value = "dtd,sa,dtd-u")]
    methods: Vec<String>,
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
    Figs. 3 and 5: the DTD border strength for each step size, and top-5 accuracy (labelled\n\
    videos) against border strength. Writes summary.json, conditions.csv, shares.csv,\n\
    fig3_border_vs_step.png/.svg, fig5_top5_vs_border.png/.svg and records.json.")]
pub struct StepsArgs {
    #[command(flatten)]
    data: DataArgs,
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
    Fig. 4: the DTD lookahead strength for each snippet offset (default 0, 8, ..., 256). Writes\n\
    summary.json, conditions.csv, shares.csv, fig4_lookahead_vs_offset.png/.svg, records.json.")]
pub struct OffsetsArgs {
    #[command(flatten)]
    data: DataArgs,
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
    Combines the records of shards of one command into the same summary.json, tables and\n\
    figures a single unsharded run would have written.")]
pub struct MergeArgs {
    /// Output directories of the shards.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where to write the merged results.
    #[arg(long)]
    out: PathBuf,
}

fn finish(
    command: &str,
    a: &DataArgs,
    conditions: Vec<Condition>,
    extra: serde_json::Value,
) -> Result<()> {
    if conditions.is_empty() {
        bail!("nothing to measure: the list of conditions is empty");
    }
    let rec = dataset::run(command, a, conditions, extra)?;
    let summary = dataset::summarize(&a.out, &rec)?;
    eprintln!(
        "{command}: {} of {} manifest items in this shard",
        rec.outcomes
            .iter()
            .map(|o| o.item)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        rec.manifest_items
    );
    dataset::report(&summary);
    println!(
        "{}",
        json!({"out": a.out, "summary": a.out.join("summary.json")})
    );
    Ok(())
}

pub fn profile(a: ProfileArgs) -> Result<()> {
    for m in &a.methods {
        if !["dtd", "sa", "dtd-u"].contains(&m.as_str()) {
            bail!("--methods: unknown method {m:?} (expected dtd, sa, dtd-u)");
        }
    }
    let conditions = a
        .methods
        .iter()
        .map(|m| Condition {
            key: m.clone(),
            method: m.clone(),
            offset: a.offset,
            step: a.step,
        })
        .collect();
    finish(
        "profile",
        &a.data,
        conditions,
        json!({"offset": a.offset, "step": a.step}),
    )
}

pub fn sweep_steps(a: StepsArgs) -> Result<()> {
    let conditions = a
        .steps
        .iter()
        .map(|&s| Condition {
            key: format!("step={s}"),
            method: "dtd".into(),
            offset: a.offset,
            step: s,
        })
        .collect();
    finish(
        "sweep-steps",
        &a.data,
        conditions,
        json!({"offset": a.offset}),
    )
}

pub fn sweep_offsets(a: OffsetsArgs) -> Result<()> {
    let offsets = a.offsets.clone().unwrap_or_else(dataset::default_offsets);
    let conditions = offsets
        .iter()
        .map(|&o| Condition {
            key: format!("offset={o}"),
            method: "dtd".into(),
            offset: o,
            step: a.step,
        })
        .collect();
    finish(
        "sweep-offsets",
        &a.data,
        conditions,
        json!({"step": a.step}),
    )
}

pub fn merge(a: MergeArgs) -> Result<()> {
    let parts = a
        .dirs
        .iter()
        .map(|d| dataset::read_records(d))
        .collect::<Result<Vec<_>>>()?;
    let rec = dataset::merge(parts)?;
    let summary = dataset::summarize(&a.out, &rec)?;
    eprintln!(
        "merge: {} shard(s) of a {} run",
        rec.shards.len(),
        rec.command
    );
    dataset::report(&summary);
    println!(
        "{}",
        json!({"out": a.out, "summary": a.out.join("summary.json")})
    );
    Ok(())
}
