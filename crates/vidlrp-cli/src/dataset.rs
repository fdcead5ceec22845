//! Data sets for the temporal analysis: the manifest, shards, the per-video runner, the records
//! every data-set command writes, and the summaries, tables and figures made from them.
//!
//! Every statistic is computed from `records.json` (per-video share vectors and hits, in
//! manifest order), so `vidlrp merge` of shards gives exactly the statistics of one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use vidlrp_c3d::{init_weights, C3dSpec, Pool5, Preprocess};
use vidlrp_core::{Backend, Composite, Sequential, Target};
use vidlrp_snippet::{ShortPolicy, SnippetError, SnippetSpec};
use vidlrp_stats::{Accumulator, Observation};

/// Options every data-set command takes.
#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// CSV manifest `path,label` (label: class index, or a name from --labels); paths relative
    /// to the manifest's directory; an optional header row `path,label`.
    #[arg(long)]
    pub manifest: PathBuf,
    /// C3D weights (.safetensors or .npz).
    #[arg(long)]
    pub weights: PathBuf,
    /// Output directory: summary.json, CSV tables, figures (PNG and SVG), records.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Class names, one per line (e.g. the Sports-1M labels.txt), for named labels.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Preprocessing preset (and z^B bounds): caffe or port.
    #[arg(long, default_value = "caffe")]
    pub preset: String,
    /// pool5 variant: port or caffe.
    #[arg(long, default_value = "port")]
    pub pool5: Pool5,
    /// Frames per snippet.
    #[arg(long, default_value_t = 16)]
    pub length: usize,
    /// Videos too short for a snippet: skip (counted and named) or clamp (repeat the last frame).
    #[arg(long, default_value = "skip")]
    pub short: ShortPolicy,
    /// This run's shard `i/n` (0-based): items `k` with `k % n == i`. Also read from
    /// SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX/VIDLRP_SHARD_COUNT.
    #[arg(long)]
    pub shard: Option<String>,
    /// Bootstrap resamples for the confidence intervals (0: none).
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap (and of the DTD-u weights).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
}

/// One manifest row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// Row index (0-based, header excluded).
    pub index: usize,
    /// The video as written in the manifest.
    pub path: String,
    /// Resolved path.
    pub resolved: PathBuf,
    /// True class, if given.
    pub label: Option<usize>,
}

/// Reads a manifest. **Errors** on an empty manifest, a malformed row or an unknown label.
pub fn read_manifest(path: &Path, labels: Option<&[String]>) -> Result<Vec<Item>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    for (row, rec) in rdr.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: row {}", path.display(), row + 1))?;
        let Some(p) = rec.get(0).filter(|p| !p.is_empty()) else {
            continue;
        };
        if row == 0 && p == "path" {
            continue;
        }
        let label = match rec.get(1).filter(|l| !l.is_empty()) {
            None => None,
            Some(l) => Some(match l.parse::<usize>() {
                Ok(c) => c,
                Err(_) => labels
                    .and_then(|names| names.iter().position(|n| n.eq_ignore_ascii_case(l)))
                    .with_context(|| {
                        format!(
                            "{}: row {}: unknown label {l:?}{}",
                            path.display(),
                            row + 1,
                            if labels.is_none() {
                                " (give --labels to use class names)"
                            } else {
                                ""
                            }
                        )
                    })?,
            }),
        };
        let resolved = if Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            base.join(p)
        };
        items.push(Item {
            index: items.len(),
            path: p.to_string(),
            resolved,
            label,
        });
    }
    if items.is_empty() {
        bail!("{}: the manifest lists no videos", path.display());
    }
    Ok(items)
}

/// The shard `(i, n)` from `--shard i/n` or the environment; `(0, 1)` when none.
pub fn shard(arg: Option<&str>) -> Result<(usize, usize)> {
    let parse = |s: &str, what: &str| {
        s.trim()
            .parse::<usize>()
            .with_context(|| format!("{what}: {s:?} is not a number"))
    };
    let (i, n) = if let Some(s) = arg {
        let (i, n) = s
            .split_once('/')
            .with_context(|| format!("--shard {s:?}: write it as i/n, e.g. 0/4"))?;
        (parse(i, "--shard")?, parse(n, "--shard")?)
    } else if let (Ok(i), Ok(n)) = (
        std::env::var("SLURM_ARRAY_TASK_ID"),
        std::env::var("SLURM_ARRAY_TASK_COUNT"),
    ) {
        (
            parse(&i, "SLURM_ARRAY_TASK_ID")?,
            parse(&n, "SLURM_ARRAY_TASK_COUNT")?,
        )
    } else if let Ok(i) = std::env::var("JOB_COMPLETION_INDEX") {
        let n = std::env::var("VIDLRP_SHARD_COUNT")
            .context("JOB_COMPLETION_INDEX is set: set VIDLRP_SHARD_COUNT to the number of completions (or pass --shard i/n)")?;
        (
            parse(&i, "JOB_COMPLETION_INDEX")?,
            parse(&n, "VIDLRP_SHARD_COUNT")?,
        )
    } else {
        (0, 1)
    };
    if n == 0 || i >= n {
        bail!("shard {i}/{n} is out of range (need 0 <= i < n)");
    }
    Ok((i, n))
}

/// One measured condition: a method at an offset and step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Condition {
    /// Table key (`dtd`, `step=4`, `offset=16`).
    pub key: String,
    /// `dtd`, `sa` or `dtd-u`.
    pub method: String,
    /// Snippet offset.
    pub offset: usize,
    /// Snippet step.
    pub step: usize,
}

/// What happened to one video under one condition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Manifest row.
    pub item: usize,
    /// Manifest path.
    pub path: String,
    /// Condition key.
    pub condition: String,
    /// `ok`, `skipped` (too short) or `failed`.
    pub status: String,
    /// Why, if not ok.
    pub reason: Option<String>,
}

/// Everything a data-set run measured; what `merge` combines.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Records {
    /// `profile`, `sweep-steps` or `sweep-offsets`.
    pub command: String,
    /// The options that must agree for shards to merge.
    pub config: Value,
    /// The conditions in table order.
    pub conditions: Vec<Condition>,
    /// Items in the whole manifest.
    pub manifest_items: usize,
    /// Shards included `(i, n)`.
    pub shards: Vec<(usize, usize)>,
    /// Observations per condition key.
    pub accumulators: BTreeMap<String, Accumulator>,
    /// Share vectors are in the accumulators; this lists what was skipped or failed, and what
    /// succeeded.
    pub outcomes: Vec<Outcome>,
}

/// Frame-wise relevance shares `r_t = R_t / sum_t' R_t'` of a `(1, C, T, H, W)` relevance map,
/// `R_t` summed over channels and pixels.
pub fn frame_shares(r: &vidlrp_core::HostTensor) -> Result<Vec<f64>> {
    let s = r.shape();
    let (c, t, plane) = (s[1], s[2], s[3] * s[4]);
    let mut frames = vec![0f64; t];
    for ch in 0..c {
        for (ti, f) in frames.iter_mut().enumerate() {
            let off = (ch * t + ti) * plane;
            *f += r.data()[off..off + plane]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>();
        }
    }
    Ok(vidlrp_stats::shares(&frames)?)
}

/// Runs every condition on every item of this shard.
pub fn run(
    command: &str,
    a: &DataArgs,
    conditions: Vec<Condition>,
    extra_config: Value,
) -> Result<Records> {
    let labels = a
        .labels
        .as_deref()
        .map(crate::explain::read_labels)
        .transpose()?;
    let items = read_manifest(&a.manifest, labels.as_deref())?;
    let (si, sn) = shard(a.shard.as_deref())?;
    let preset = Preprocess::by_name(&a.preset)
        .with_context(|| format!("--preset {:?}: expected caffe or port", a.preset))?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let (bar, accumulators, outcomes) = crate::device::with_backend!(&a.device, |be| {
        let input = [3, a.length, preset.crop.1[0], preset.crop.1[1]];
        let weights = vidlrp_io::read_tensors(&a.weights)?;
        let spec = C3dSpec::from_weights(&weights)?;
        let (net, _) = vidlrp_c3d::build(be, weights, a.pool5, input)
            .with_context(|| format!("cannot build C3D from {}", a.weights.display()))?;
        let untrained = if conditions.iter().any(|c| c.method == "dtd-u") {
            Some(vidlrp_c3d::build(be, init_weights(&spec, a.seed), a.pool5, input)?.0)
        } else {
            None
        };
        let dtd = Composite::dtd(preset.low(), preset.high());
        let sa = Composite::sensitivity();
        let mine: Vec<&Item> = items.iter().filter(|it| it.index % sn == si).collect();
        let bar = indicatif::ProgressBar::new((mine.len() * conditions.len()) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} snippets  {per_sec}  ETA {eta}  {msg}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        bar.set_prefix(command.to_string());
        let mut accumulators: BTreeMap<String, Accumulator> = conditions
            .iter()
            .map(|c| (c.key.clone(), Accumulator::default()))
            .collect();
        let mut outcomes = Vec::new();
        for item in mine {
            bar.set_message(item.path.clone());
            let mut source = vidlrp_snippet::open(&item.resolved);
            for c in &conditions {
                let mut outcome = |status: &str, reason: Option<String>| {
                    outcomes.push(Outcome {
                        item: item.index,
                        path: item.path.clone(),
                        condition: c.key.clone(),
                        status: status.into(),
                        reason,
                    });
                };
                let src = match &mut source {
                    Ok(s) => s,
                    Err(e) => {
                        outcome("failed", Some(e.to_string()));
                        bar.inc(1);
                        continue;
                    }
                };
                let spec = SnippetSpec {
                    length: a.length,
                    offset: c.offset,
                    step: c.step,
                };
                let result = (|| -> Result<Option<Observation>> {
                    let snippet =
                        match vidlrp_snippet::load_snippet(src.as_mut(), &spec, a.short, &preset) {
                            Err(e @ SnippetError::TooShort { .. }) => {
                                return Err(anyhow::Error::new(e).context("skipped"))
                            }
                            other => other?,
                        };
                    let s = snippet.input.shape().to_vec();
                    let x = be.upload(&snippet.input.reshape([&[1], &s[..]].concat())?)?;
                    let (model, composite): (&Sequential<_>, &Composite) = match c.method.as_str() {
                        "dtd" => (&net, &dtd),
                        "sa" => (&net, &sa),
                        "dtd-u" => (untrained.as_ref().expect("built"), &dtd),
                        other => bail!("unknown method {other}"),
                    };
                    let e = model.explain(be, &x, &Target::TopOne, composite)?;
                    let shares = frame_shares(&e.relevance)?;
                    // Accuracy is the trained model's: for dtd-u the logits are the untrained one's.
                    let logits = &e.logits.data()[..e.logits.shape()[1]];
                    let hit = |k| item.label.map(|l| vidlrp_stats::top_k_hit(logits, l, k));
                    Ok(Some(Observation {
                        item: item.index,
                        shares,
                        top1: hit(1),
                        top5: hit(5),
                    }))
                })();
                match result {
                    Ok(Some(o)) => {
                        accumulators.get_mut(&c.key).expect("condition").push(o);
                        outcome("ok", None);
                    }
                    Ok(None) => {}
                    Err(e) if e.to_string() == "skipped" => outcome(
                        "skipped",
                        Some(format!("{:#}", e).replacen("skipped: ", "", 1)),
                    ),
                    Err(e) => outcome("failed", Some(format!("{e:#}"))),
                }
                bar.inc(1);
            }
        }
        Ok::<_, anyhow::Error>((bar, accumulators, outcomes))
    })?;
    bar.finish_and_clear();
    let mut config = json!({
        "weights": a.weights, "preset": a.preset, "pool5": a.pool5.to_string(), "length": a.length,
        "short": format!("{:?}", a.short), "bootstrap": a.bootstrap, "seed": a.seed,
        "manifest": a.manifest,
    });
    if let (Some(o), Some(extra)) = (config.as_object_mut(), extra_config.as_object()) {
        o.extend(extra.clone());
    }
    Ok(Records {
        command: command.into(),
        config,
        conditions,
        manifest_items: items.len(),
        shards: vec![(si, sn)],
        accumulators,
        outcomes,
    })
}

/// Combines shard records. **Errors** if commands or options differ or shards overlap.
pub fn merge(parts: Vec<Records>) -> Result<Records> {
    let mut it = parts.into_iter();
    let mut all = it.next().context("nothing to merge")?;
    for r in it {
        if r.command != all.command || r.config != all.config || r.conditions != all.conditions {
            bail!(
                "cannot merge a {} run into a {} run with other options",
                r.command,
                all.command
            );
        }
        for (k, acc) in &r.accumulators {
            all.accumulators.entry(k.clone()).or_default().merge(acc)?;
        }
        all.outcomes.extend(r.outcomes);
        all.shards.extend(r.shards);
    }
    all.shards.sort();
    all.outcomes
        .sort_by(|a, b| (a.item, &a.condition).cmp(&(b.item, &b.condition)));
    Ok(all)
}

/// Writes records.json, summary.json, the CSV tables and the figures into `dir`.
pub fn summarize(dir: &Path, rec: &Records) -> Result<Value> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bootstrap = rec.config["bootstrap"].as_u64().unwrap_or(0) as usize;
    let seed = rec.config["seed"].as_u64().unwrap_or(0);
    let mut conditions = Vec::new();
    let mut warnings = Vec::new();
    let mut effects = BTreeMap::new();
    for c in &rec.conditions {
        let acc = &rec.accumulators[&c.key];
        let listed = |status: &str| -> Vec<Value> {
            rec.outcomes
                .iter()
                .filter(|o| o.condition == c.key && o.status == status)
                .map(|o| json!({"item": o.item, "path": o.path, "reason": o.reason}))
                .collect()
        };
        let (skipped, failed) = (listed("skipped"), listed("failed"));
        let e = match acc.effects(bootstrap, seed) {
            Ok(e) => Some(e),
            Err(err) => {
                warnings.push(format!("{}: {err}", c.key));
                None
            }
        };
        if !skipped.is_empty() || !failed.is_empty() {
            warnings.push(format!(
                "{}: {} video(s) skipped, {} failed",
                c.key,
                skipped.len(),
                failed.len()
            ));
        }
        conditions.push(json!({
            "key": c.key, "method": c.method, "offset": c.offset, "step": c.step,
            "n": acc.count(), "effects": e, "top1": acc.accuracy(1), "top5": acc.accuracy(5),
            "hits_top1": acc.hits(1), "hits_top5": acc.hits(5),
            "skipped": skipped, "failed": failed,
        }));
        if let Some(e) = e {
            effects.insert(c.key.clone(), e);
        }
    }
    if effects.is_empty() {
        bail!(
            "no video could be analysed (every one was skipped or failed): {}",
            warnings.join("; ")
        );
    }
    let summary = json!({
        "command": rec.command, "config": rec.config, "manifest_items": rec.manifest_items,
        "shards": rec.shards, "conditions": conditions, "warnings": warnings,
    });
    let write = |name: &str, text: String| {
        vidlrp_io::atomic_write(&dir.join(name), |w| {
            std::io::Write::write_all(w, text.as_bytes())
        })
    };
    write("records.json", serde_json::to_string(rec)?)?;
    write(
        "summary.json",
        serde_json::to_string_pretty(&summary)? + "\n",
    )?;
    // Table of the conditions.
    let mut table = String::from("condition,method,offset,step,n,border,border_lo,border_hi,lookahead,lookahead_lo,lookahead_hi,top1,top5,skipped,failed\n");
    for (c, s) in rec.conditions.iter().zip(&conditions) {
        let e = effects.get(&c.key);
        let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        table += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            c.key,
            c.method,
            c.offset,
            c.step,
            s["n"],
            f(e.map(|e| e.border)),
            f(e.and_then(|e| e.border_ci).map(|i| i.lo)),
            f(e.and_then(|e| e.border_ci).map(|i| i.hi)),
            f(e.map(|e| e.lookahead)),
            f(e.and_then(|e| e.lookahead_ci).map(|i| i.lo)),
            f(e.and_then(|e| e.lookahead_ci).map(|i| i.hi)),
            f(s["top1"].as_f64()),
            f(s["top5"].as_f64()),
            s["skipped"].as_array().map_or(0, Vec::len),
            s["failed"].as_array().map_or(0, Vec::len),
        );
    }
    write("conditions.csv", table)?;
    // Every share vector, one row per video and condition.
    let t = effects.values().next().map_or(0, |e| e.mean.len());
    let mut shares = format!(
        "condition,item,path,{}\n",
        (0..t)
            .map(|i| format!("r{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let paths: BTreeMap<usize, &str> = rec
        .outcomes
        .iter()
        .map(|o| (o.item, o.path.as_str()))
        .collect();
    for c in &rec.conditions {
        for o in rec.accumulators[&c.key].observations() {
            let p = paths.get(&o.item).copied().unwrap_or("");
            let vals: Vec<String> = o.shares.iter().map(|v| v.to_string()).collect();
            shares += &format!("{},{},{},{}\n", c.key, o.item, csv_field(p), vals.join(","));
        }
    }
    write("shares.csv", shares)?;
    figures(dir, rec, &effects)?;
    Ok(summary)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn figures(
    dir: &Path,
    rec: &Records,
    effects: &BTreeMap<String, vidlrp_stats::Effects>,
) -> Result<()> {
    use vidlrp_viz::plots::{share_figure, xy_figure, Series, SharePanel};
    match rec.command.as_str() {
        "profile" => {
            let panels: Vec<SharePanel> = rec
                .conditions
                .iter()
                .filter_map(|c| {
                    let e = effects.get(&c.key)?;
                    Some(SharePanel {
                        tau: vidlrp_stats::tau(e.mean.len()),
                        title: format!(
                            "{} (n={}): a={:.4}, b'={:.4}",
                            c.method.to_uppercase(),
                            e.n,
                            e.border,
                            e.lookahead
                        ),
                        samples: rec.accumulators[&c.key]
                            .observations()
                            .iter()
                            .map(|o| o.shares.clone())
                            .collect(),
                        mean: e.mean.clone(),
                        quadratic: e.quadratic,
                        linear: e.linear,
                    })
                })
                .collect();
            share_figure(&dir.join("fig2_shares"), &panels)?;
        }
        "sweep-steps" => {
            let pts: Vec<(f64, f64)> = rec
                .conditions
                .iter()
                .filter_map(|c| effects.get(&c.key).map(|e| (c.step as f64, e.border)))
                .collect();
            xy_figure(
                &dir.join("fig3_border_vs_step"),
                "Border strength against step size",
                "step size s",
                "border strength a",
                &[Series {
                    label: "DTD".into(),
                    points: pts,
                }],
                true,
            )?;
            let acc: Vec<(f64, f64)> = rec
                .conditions
                .iter()
                .filter_map(|c| {
                    Some((
                        effects.get(&c.key)?.border,
                        rec.accumulators[&c.key].accuracy(5)?,
                    ))
                })
                .collect();
            if !acc.is_empty() {
                xy_figure(
                    &dir.join("fig5_top5_vs_border"),
                    "Top-5 accuracy against border strength",
                    "border strength a",
                    "top-5 accuracy",
                    &[Series {
                        label: "steps".into(),
                        points: acc,
                    }],
                    false,
                )?;
            }
        }
        "sweep-offsets" => {
            let pts: Vec<(f64, f64)> = rec
                .conditions
                .iter()
                .filter_map(|c| effects.get(&c.key).map(|e| (c.offset as f64, e.lookahead)))
                .collect();
            xy_figure(
                &dir.join("fig4_lookahead_vs_offset"),
                "Lookahead strength against offset",
                "offset (frames)",
                "lookahead strength b'",
                &[Series {
                    label: "DTD".into(),
                    points: pts,
                }],
                false,
            )?;
        }
        _ => {}
    }
    Ok(())
}

/// Reads a run's records from its output directory.
pub fn read_records(dir: &Path) -> Result<Records> {
    let p = dir.join("records.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "cannot read {} (is {} a vidlrp output directory?)",
            p.display(),
            dir.display()
        )
    })?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid vidlrp records", p.display()))
}

/// Default offsets of the offset sweep: 0, 8, ..., 256.
pub fn default_offsets() -> Vec<usize> {
    (0..=256).step_by(8).collect()
}

/// The summary line for stderr.
pub fn report(summary: &Value) {
    for c in summary["conditions"].as_array().into_iter().flatten() {
        let e = &c["effects"];
        eprintln!(
            "  {:<12} n={:<4} border a={:<10} lookahead b'={:<10} top-5={}",
            c["key"].as_str().unwrap_or("?"),
            c["n"],
            e["border"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.5}")),
            e["lookahead"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.5}")),
            c["top5"].as_f64().map_or("-".into(), |v| format!("{v:.3}")),
        );
    }
    for w in summary["warnings"].as_array().into_iter().flatten() {
        eprintln!("  warning: {}", w.as_str().unwrap_or(""));
    }
}
