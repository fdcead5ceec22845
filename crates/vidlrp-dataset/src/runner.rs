//! [`run`]: one snippet per video and condition, explained on any backend.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use vidlrp_c3d::{init_weights, C3dSpec, Pool5};
use vidlrp_core::{Backend, Composite, PresetOptions, Sequential, Target};
use vidlrp_snippet::{Preprocess, ShortPolicy, SnippetError, SnippetSpec};
use vidlrp_stats::{Accumulator, Observation};

use crate::{
    AnalysisMethod, Condition, DatasetError, Item, Manifest, Outcome, Records, Result, RunConfig,
    Shard, Status, RECORDS_FORMAT,
};

/// The options of a data-set run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The videos.
    pub manifest: Manifest,
    /// The C3D weight file.
    pub weights: PathBuf,
    /// Preprocessing preset (and the z^B bounds of DTD).
    pub preset: Preprocess,
    /// pool5 variant; `None`: the weights' origin's ([`vidlrp_c3d::Origin::pool5`]).
    pub pool5: Option<Pool5>,
    /// Frames per snippet.
    pub length: usize,
    /// What to do with videos too short for a snippet.
    pub short: ShortPolicy,
    /// The part of the manifest this run takes.
    pub shard: Shard,
    /// Bootstrap resamples of the summaries (recorded with the options).
    pub bootstrap: usize,
    /// Seed of the bootstrap and of the DTD-u weights.
    pub seed: u64,
    /// Where to journal finished videos ([`crate::Journal`]), if anywhere.
    pub journal: Option<PathBuf>,
    /// Continue the journal of an interrupted run of the same options instead of starting over.
    pub resume: bool,
}

/// The preset's name, and with a per-voxel mean the SHA-256 of its values (so shards with
/// different means do not merge).
fn preset_id(p: &Preprocess) -> String {
    use sha2::Digest;
    match &p.voxel_mean {
        None => p.to_string(),
        Some(m) => {
            let mut h = sha2::Sha256::new();
            for v in m.data() {
                h.update(v.to_le_bytes());
            }
            let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            format!("{}+voxel-mean:{}", p.name, &hex[..16])
        }
    }
}

/// Where a run stands, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Snippets done (explained, skipped or failed).
    pub done: usize,
    /// Snippets in this shard.
    pub total: usize,
    /// The video being worked on.
    pub item: &'a Item,
    /// Videos taken from the journal of an interrupted run so far (not computed again).
    pub resumed: usize,
}

/// Why one video gave no observation under one condition.
enum Miss {
    Skipped(String),
    Failed(String),
}

/// An error that makes the video count as failed.
fn failed(e: impl Into<DatasetError>) -> Miss {
    Miss::Failed(e.into().to_string())
}

/// Runs every condition on every video of the options' shard, on backend `be`, calling
/// `progress` after each snippet. A video that cannot be read or explained is recorded as
/// failed (too short: skipped) and the run goes on.
///
/// **Errors** before any video is read if the conditions are empty or share a key, the weights
/// cannot be read or do not fit the preset's input, or a method does not fit the network.
pub fn run<B: Backend>(
    be: &B,
    command: &str,
    opts: &RunOptions,
    conditions: Vec<Condition>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Records> {
    if conditions.is_empty() {
        return Err(DatasetError::Empty(
            "nothing to measure: the list of conditions is empty".into(),
        ));
    }
    let keys: BTreeSet<&str> = conditions.iter().map(|c| c.key.as_str()).collect();
    if keys.len() != conditions.len() {
        return Err(DatasetError::Records("two conditions share a key".into()));
    }
    if opts.length == 0 {
        return Err(DatasetError::Empty(
            "snippets need at least one frame".into(),
        ));
    }
    let [h, w] = opts.preset.input_size();
    let input = [3, opts.length, h, w];
    let weights_sha256 = crate::sha256_file(&opts.weights)?;
    let loaded = vidlrp_c3d::load_weights(&opts.weights)?;
    let origin = loaded.origin;
    let pool5 = opts.pool5.unwrap_or(origin.pool5());
    let weights = loaded.tensors;
    let spec = C3dSpec::from_weights(&weights)?;
    let (net, _) = vidlrp_c3d::build(be, weights, pool5, input)?;
    let untrained = if conditions
        .iter()
        .any(|c| c.method == AnalysisMethod::DtdUntrained)
    {
        Some(vidlrp_c3d::build(be, init_weights(&spec, opts.seed), pool5, input)?.0)
    } else {
        None
    };
    let preset_options = PresetOptions {
        low: opts.preset.low(),
        high: opts.preset.high(),
        ..PresetOptions::default()
    };
    let mut composites = BTreeMap::new();
    for c in &conditions {
        let (model, method) = match c.method {
            AnalysisMethod::Explain(m) => (&net, m),
            AnalysisMethod::DtdUntrained => {
                (untrained.as_ref().unwrap_or(&net), vidlrp_core::Method::Dtd)
            }
        };
        let composite = Composite::preset(method, &preset_options)?;
        model.rules(&composite)?;
        composites.insert(c.key.clone(), composite);
    }

    let config = RunConfig {
        manifest: opts.manifest.path.clone(),
        manifest_sha256: opts.manifest.sha256.clone(),
        weights: opts.weights.clone(),
        weights_sha256,
        preset: preset_id(&opts.preset),
        pool5: pool5.to_string(),
        origin: origin.to_string(),
        length: opts.length,
        short: match opts.short {
            ShortPolicy::Skip => "skip".into(),
            ShortPolicy::Clamp => "clamp".into(),
        },
        bootstrap: opts.bootstrap,
        seed: opts.seed,
    };
    let (mut journal, resumed) = match &opts.journal {
        Some(path) => {
            let run = serde_json::json!({
                "command": command, "config": config.comparable(), "conditions": conditions,
                "shard": opts.shard,
            });
            let (j, done) = crate::Journal::open(path, &run, opts.resume)?;
            (Some(j), done)
        }
        None => (None, Vec::new()),
    };
    let mut resumed: BTreeMap<usize, crate::ItemRecord> =
        resumed.into_iter().map(|r| (r.item, r)).collect();

    let mine: Vec<&Item> = opts
        .manifest
        .items
        .iter()
        .filter(|it| opts.shard.contains(it.index))
        .collect();
    let total = mine.len() * conditions.len();
    let mut accumulators: BTreeMap<String, Accumulator> = conditions
        .iter()
        .map(|c| (c.key.clone(), Accumulator::default()))
        .collect();
    let mut outcomes = Vec::with_capacity(total);
    let mut done = 0;
    let mut from_journal = 0;
    for item in mine {
        let record = match resumed.remove(&item.index) {
            Some(r) => {
                let keys: Vec<&str> = r.outcomes.iter().map(|o| o.condition.as_str()).collect();
                let expected: Vec<&str> = conditions.iter().map(|c| c.key.as_str()).collect();
                if keys != expected {
                    return Err(DatasetError::Records(format!(
                        "the journal's record of item {} does not hold the run's conditions",
                        item.index
                    )));
                }
                done += conditions.len();
                from_journal += 1;
                progress(Progress {
                    done,
                    total,
                    item,
                    resumed: from_journal,
                });
                r
            }
            None => {
                let r = observe_item(
                    be,
                    item,
                    &conditions,
                    &net,
                    untrained.as_ref(),
                    &composites,
                    opts,
                    &mut |d| {
                        progress(Progress {
                            done: done + d,
                            total,
                            item,
                            resumed: from_journal,
                        });
                    },
                );
                done += conditions.len();
                if let Some(j) = journal.as_mut() {
                    j.append(&r)?;
                }
                r
            }
        };
        for (key, o) in record.observations {
            accumulators
                .get_mut(&key)
                .ok_or_else(|| {
                    DatasetError::Records(format!("the journal names an unknown condition {key}"))
                })?
                .push(o);
        }
        outcomes.extend(record.outcomes);
    }
    Ok(Records {
        format: RECORDS_FORMAT,
        command: command.into(),
        config,
        conditions,
        manifest_items: opts.manifest.items.len(),
        shards: vec![opts.shard],
        accumulators,
        outcomes,
    })
}

/// Every condition on one video: its outcomes and observations. `progress(d)` is called
/// after the `d`-th condition.
#[allow(clippy::too_many_arguments)]
fn observe_item<B: Backend>(
    be: &B,
    item: &Item,
    conditions: &[Condition],
    net: &Sequential<B>,
    untrained: Option<&Sequential<B>>,
    composites: &BTreeMap<String, Composite>,
    opts: &RunOptions,
    progress: &mut dyn FnMut(usize),
) -> crate::ItemRecord {
    let mut source =
        vidlrp_snippet::open(&item.resolved).and_then(|src| prefetch(src, item, conditions, opts));
    let mut record = crate::ItemRecord {
        item: item.index,
        outcomes: Vec::with_capacity(conditions.len()),
        observations: Vec::new(),
    };
    for (d, c) in conditions.iter().enumerate() {
        let model: &Sequential<B> = match c.method {
            AnalysisMethod::Explain(_) => net,
            AnalysisMethod::DtdUntrained => untrained.unwrap_or(net),
        };
        let result = match &mut source {
            Ok(src) => observe(be, model, &composites[&c.key], src.as_mut(), item, c, opts),
            Err(e) => Err(Miss::Failed(e.to_string())),
        };
        let (status, reason) = match result {
            Ok(o) => {
                record.observations.push((c.key.clone(), o));
                (Status::Ok, None)
            }
            Err(Miss::Skipped(r)) => (Status::Skipped, Some(r)),
            Err(Miss::Failed(r)) => (Status::Failed, Some(r)),
        };
        record.outcomes.push(Outcome {
            item: item.index,
            path: item.path.clone(),
            condition: c.key.clone(),
            status,
            reason,
        });
        progress(d + 1);
    }
    record
}

/// The most frame bytes read ahead per video (beyond it, each condition decodes its own).
const PREFETCH_BYTES: usize = 1 << 30;

/// `src` with the frames of every condition read ahead in one pass (each video is decoded
/// once, not once per condition; the frames are the same). A video that cannot be read ahead
/// is opened again and read per condition, so each condition reports its own error as before.
fn prefetch(
    src: Box<dyn vidlrp_snippet::FrameSource>,
    item: &Item,
    conditions: &[Condition],
    opts: &RunOptions,
) -> vidlrp_snippet::Result<Box<dyn vidlrp_snippet::FrameSource>> {
    let n = src.info().frames;
    let wanted: Vec<usize> = conditions
        .iter()
        .filter_map(|c| {
            SnippetSpec {
                length: opts.length,
                offset: c.offset,
                step: c.step,
            }
            .indices(n, opts.short)
            .ok()
        })
        .flatten()
        .collect();
    match vidlrp_snippet::Prefetched::new(src, &wanted, PREFETCH_BYTES) {
        Ok(p) => Ok(Box::new(p)),
        Err(_) => vidlrp_snippet::open(&item.resolved),
    }
}

/// One video under one condition: its share vector and, if labelled, its top-1/top-5 hits.
fn observe<B: Backend>(
    be: &B,
    model: &Sequential<B>,
    composite: &Composite,
    source: &mut dyn vidlrp_snippet::FrameSource,
    item: &Item,
    c: &Condition,
    opts: &RunOptions,
) -> std::result::Result<Observation, Miss> {
    let spec = SnippetSpec {
        length: opts.length,
        offset: c.offset,
        step: c.step,
    };
    let snippet = match vidlrp_snippet::load_snippet(source, &spec, opts.short, &opts.preset) {
        Err(e @ SnippetError::TooShort { .. }) => return Err(Miss::Skipped(e.to_string())),
        Err(e) => return Err(Miss::Failed(e.to_string())),
        Ok(s) => s,
    };
    let s = snippet.input.shape().to_vec();
    let x = snippet
        .input
        .reshape([&[1], &s[..]].concat())
        .map_err(failed)?;
    let x = be.upload(&x).map_err(failed)?;
    let e = model
        .explain(be, &x, &Target::TopOne, composite)
        .map_err(failed)?;
    let shares =
        vidlrp_stats::frame_shares(e.relevance.data(), e.relevance.shape()).map_err(failed)?;
    // Accuracy is the explained model's (for dtd-u: the untrained one's).
    let logits = &e.logits.data()[..e.logits.shape()[1]];
    let hit = |k| item.label.map(|l| vidlrp_stats::top_k_hit(logits, l, k));
    Ok(Observation {
        item: item.index,
        shares,
        top1: hit(1),
        top5: hit(5),
    })
}
