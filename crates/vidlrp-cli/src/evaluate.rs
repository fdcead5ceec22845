//! `vidlrp evaluate`: how faithful is each explanation? Region (or frame) perturbation and
//! AOPC through `vidlrp-evaluate`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vidlrp_c3d::Pool5;
use vidlrp_core::{Backend, Composite, HostTensor, Method, PresetOptions, Target};
use vidlrp_dataset::{AnalysisMethod, Manifest, Network, Shard};
use vidlrp_evaluate::{Order, Region, Replace, Tiling};
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
    Writes summary.json (AOPC per method and order with bootstrap intervals), curves.csv and\n\
    perturbation_morf.png/.svg (and _lerf) into --out.")]
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
    /// Preprocessing preset (and input range): caffe, port, or NAME@SIZE. Default: the weights'.
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
    /// Output directory: summary.json, curves.csv, perturbation_*.png/.svg.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

/// One clip to evaluate: its position (manifest row, sample, or `--video` index), its name
/// (file, or file#sample) and input `[1, 3, T, H, W]`.
struct Clip {
    item: usize,
    name: String,
    x: HostTensor,
}

/// One perturbation curve of one clip.
struct CurveRow {
    method: String,
    order: Order,
    item: usize,
    clip: String,
    scores: Vec<f32>,
}

/// Clips that could not be evaluated: `(name, reason)`, counted and reported.
type Missed = Vec<(String, String)>;

/// The clips of `--input`, `--video` or `--manifest`, and the ones that cannot be read.
fn clips(a: &Args, preset: &Preprocess) -> Result<(Vec<Clip>, Missed)> {
    if let Some(input) = &a.input {
        let (x, _) = crate::clip::read_clip(input)?;
        let s = x.shape().to_vec();
        let one = s[1..].iter().product::<usize>();
        let clips = (0..s[0])
            .map(|i| -> Result<Clip> {
                Ok(Clip {
                    item: i,
                    name: if s[0] == 1 {
                        input.display().to_string()
                    } else {
                        format!("{}#{i}", input.display())
                    },
                    x: HostTensor::new(
                        [&[1], &s[1..]].concat(),
                        x.data()[i * one..(i + 1) * one].to_vec(),
                    )?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok((clips, Vec::new()));
    }
    let paths: Vec<(usize, String, PathBuf)> = match &a.manifest {
        Some(m) => {
            let manifest = Manifest::read(m, None).context("cannot use the manifest")?;
            let shard = match a.shard {
                Some(s) => s,
                None => Shard::from_env()?.unwrap_or(Shard::WHOLE),
            };
            manifest
                .items
                .into_iter()
                .filter(|it| shard.contains(it.index))
                .map(|it| (it.index, it.path, it.resolved))
                .collect()
        }
        None => a
            .video
            .iter()
            .enumerate()
            .map(|(i, p)| (i, p.display().to_string(), p.clone()))
            .collect(),
    };
    let spec = SnippetSpec {
        length: a.length,
        offset: a.offset,
        step: a.step,
    };
    let (mut ok, mut missed) = (Vec::new(), Vec::new());
    for (item, name, path) in paths {
        match vidlrp_snippet::read_snippet(&path, &spec, a.short, preset) {
            Ok(s) => ok.push(Clip {
                item,
                name,
                x: s.into_batched_input(),
            }),
            Err(e) => missed.push((name, e.to_string())),
        }
    }
    Ok((ok, missed))
}

/// Stable per-clip seeds, so a clip's noise does not depend on which shard it ran in.
fn clip_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn run(a: Args) -> Result<()> {
    if a.order.is_empty() || a.methods.is_empty() {
        bail!("nothing to evaluate: give at least one method and one order");
    }
    let preset = crate::weights::resolve_preset(a.preset.as_ref(), &a.weights)?;
    let options = PresetOptions {
        low: preset.low(),
        high: preset.high(),
        ..PresetOptions::default()
    };
    if let Some(m) = a.methods.iter().find(|m| m.network() != Network::Trained) {
        bail!("{m} explains another network than the one evaluated; use dtd, sa, ... or random");
    }
    let methods: Vec<Method> = a.methods.iter().filter_map(|r| r.method()).collect();
    let composites = methods
        .iter()
        .map(|&m| Composite::preset(m, &options))
        .collect::<Result<Vec<_>, _>>()?;
    let mut outputs = Outputs::new();
    let staged = outputs.dir(&a.out)?;
    let (clips, mut missed) = clips(&a, &preset)?;
    if clips.is_empty() {
        bail!(
            "no clip could be read ({} tried: {})",
            missed.len(),
            missed
                .iter()
                .map(|(n, r)| format!("{n}: {r}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let s = clips[0].x.shape().to_vec();
    let tiling = Tiling::new([s[2], s[3], s[4]], a.region)?;
    if a.steps > tiling.len() {
        bail!(
            "--steps {} is larger than the number of regions ({} of {} in a {}x{}x{} clip); use \
             --steps {} or smaller regions",
            a.steps,
            tiling.len(),
            a.region,
            s[2],
            s[3],
            s[4],
            tiling.len()
        );
    }
    let model = crate::weights::load(&a.weights, a.pool5)?;
    let pool5 = model.pool5;
    let weights = model.weights.tensors;
    let mut rows: Vec<CurveRow> = Vec::new();
    let started = std::time::Instant::now();
    let (explain_s, forward_s, forward_only_s) = crate::device::with_backend!(&a.device, |be| {
        let (net, _) = vidlrp_c3d::build(be, weights, pool5, [s[1], s[2], s[3], s[4]])
            .with_context(|| format!("cannot build C3D from {}", a.weights.display()))?;
        for c in &composites {
            net.rules(c)?;
        }
        let bar = crate::progress::bar("evaluate", clips.len() as u64, "clips");
        let (mut explain_s, mut forward_s) = (0.0, 0.0);
        let refs: Vec<&Composite> = composites.iter().collect();
        for clip in &clips {
            bar.set_message(clip.name.clone());
            if clip.x.shape() != s.as_slice() {
                missed.push((
                    clip.name.clone(),
                    format!(
                        "shape {:?} differs from the first clip's {s:?}",
                        clip.x.shape()
                    ),
                ));
                bar.inc(1);
                continue;
            }
            let start = std::time::Instant::now();
            let xb = be.upload(&clip.x)?;
            let explained = match net.explain_each(be, &xb, &Target::TopOne, &refs) {
                Ok(e) => e,
                Err(e) => {
                    missed.push((clip.name.clone(), e.to_string()));
                    bar.inc(1);
                    continue;
                }
            };
            explain_s += start.elapsed().as_secs_f64();
            // The explained class is the top-1 one; the explanations carry it. Only a run
            // of the random baseline alone needs a forward pass for it.
            let class = match explained.first() {
                Some(e) => e.classes[0],
                None => {
                    let logits = be.download(&net.forward(be, &xb)?)?;
                    vidlrp_core::top_k(logits.data(), 1)[0].0
                }
            };
            let seed = clip_seed(a.seed, &clip.name);
            let fill = vidlrp_evaluate::replacement(
                clip.x.data(),
                [s[1], s[2], s[3], s[4]],
                a.replace,
                &preset.low(),
                &preset.high(),
                a.region,
                seed,
            )?;
            let start = std::time::Instant::now();
            for ranker in &a.methods {
                let sums = match ranker.method() {
                    Some(m) => {
                        let i = methods.iter().position(|&x| x == m).expect("listed");
                        Some(tiling.sums(explained[i].relevance.data(), s[1])?)
                    }
                    None => None,
                };
                let mut baseline: Option<Vec<f32>> = None;
                for &order in &a.order {
                    let c = match (&sums, &baseline) {
                        // The baseline has no order: one random ranking serves both.
                        (None, Some(c)) => c.clone(),
                        _ => {
                            let ranking = match &sums {
                                Some(sums) => vidlrp_evaluate::ranking(sums, order),
                                None => vidlrp_evaluate::random_ranking(tiling.len(), seed),
                            };
                            vidlrp_evaluate::curve(
                                be, &net, &clip.x, class, &tiling, &ranking, a.steps, &fill,
                                a.batch,
                            )?
                        }
                    };
                    if sums.is_none() {
                        baseline = Some(c.clone());
                    }
                    rows.push(CurveRow {
                        method: ranker.to_string(),
                        order,
                        item: clip.item,
                        clip: clip.name.clone(),
                        scores: c,
                    });
                }
            }
            forward_s += start.elapsed().as_secs_f64();
            bar.inc(1);
        }
        bar.finish_and_clear();
        let forward_only_s = if a.measure_overhead {
            let samples: usize = rows.iter().map(|r| r.scores.len()).sum();
            let batch = a.batch.max(1);
            let one = clips[0].x.data();
            let start = std::time::Instant::now();
            let mut left = samples;
            while left > 0 {
                let n = left.min(batch);
                let x = HostTensor::new(
                    [&[n], &s[1..]].concat(),
                    one.iter().copied().cycle().take(n * one.len()).collect(),
                )?;
                be.download(&net.forward(be, &be.upload_owned(x)?)?)?;
                left -= n;
            }
            Some(start.elapsed().as_secs_f64())
        } else {
            None
        };
        Ok::<_, anyhow::Error>((explain_s, forward_s, forward_only_s))
    })?;
    if rows.is_empty() {
        bail!("no clip could be evaluated: {missed:?}");
    }
    let shard = match (&a.manifest, a.shard) {
        (None, _) => Shard::WHOLE,
        (Some(_), Some(s)) => s,
        (Some(_), None) => Shard::from_env()?.unwrap_or(Shard::WHOLE),
    };
    let manifest_sha256 = match &a.manifest {
        Some(m) => Some(vidlrp_dataset::sha256_file(m)?),
        None => None,
    };
    // What a merge must find equal in every shard.
    let run = json!({
        "command": "evaluate",
        "weights_sha256": vidlrp_dataset::sha256_file(&a.weights)?,
        "manifest_sha256": manifest_sha256,
        "preset": preset.to_string(), "region": a.region.to_string(), "regions": tiling.len(),
        "steps": a.steps, "replace": a.replace.to_string(), "seed": a.seed,
        "bootstrap": a.bootstrap,
        "methods": a.methods.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "orders": a.order.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "offset": a.offset, "step": a.step, "length": a.length,
    });
    if let Some(f) = forward_only_s {
        eprintln!(
            "evaluate: explaining {explain_s:.2} s + perturbation curves {forward_s:.2} s = \
             {:.2}x the {f:.2} s of the same number of plain forward passes",
            (explain_s + forward_s) / f
        );
    }
    let timing = json!({"explain_s": explain_s, "perturbation_s": forward_s,
                        "forward_only_s": forward_only_s,
                        "wall_s": started.elapsed().as_secs_f64()});
    let figures = write_outputs(&staged, &run, &[shard], rows, &missed, timing)?;
    outputs.publish()?;
    crate::emit(&json!({"out": a.out, "summary": a.out.join("summary.json"), "figures": figures}));
    Ok(())
}

/// Writes summary.json, curves.csv and the figures of `rows` into `dir` (`rows` in any
/// order: they are put in item order, so shards merge to the unsharded result), prints the
/// AOPC lines, and returns the figure names.
fn write_outputs(
    dir: &std::path::Path,
    run: &Value,
    shards: &[Shard],
    mut rows: Vec<CurveRow>,
    missed: &[(String, String)],
    timing: Value,
) -> Result<Vec<String>> {
    let bootstrap = run["bootstrap"].as_u64().unwrap_or(0) as usize;
    let seed = run["seed"].as_u64().unwrap_or(0);
    let region = run["region"].as_str().unwrap_or("?");
    let replace = run["replace"].as_str().unwrap_or("?");
    // Method and order as the run listed them, then items in order.
    let rank = |list: &str, v: &str| {
        run[list]
            .as_array()
            .and_then(|l| l.iter().position(|x| x == v))
            .unwrap_or(usize::MAX)
    };
    rows.sort_by_key(|r| {
        (
            rank("methods", &r.method),
            rank("orders", &r.order.to_string()),
            r.item,
        )
    });
    let mut csv = String::from("method,order,item,clip,k,score\n");
    // ((method, order), one curve per clip), in the run's order.
    type Group = ((String, Order), Vec<Vec<f32>>);
    let mut groups: Vec<Group> = Vec::new();
    for r in &rows {
        for (k, v) in r.scores.iter().enumerate() {
            csv.push_str(&format!(
                "{},{},{},{},{k},{v}\n",
                r.method,
                r.order,
                r.item,
                csv_field(&r.clip)
            ));
        }
        match groups.last_mut() {
            Some((key, cs)) if key.0 == r.method && key.1 == r.order => cs.push(r.scores.clone()),
            _ => groups.push(((r.method.clone(), r.order), vec![r.scores.clone()])),
        }
    }
    let mut results = Vec::new();
    for ((method, order), cs) in &groups {
        let s = vidlrp_evaluate::summarize(cs, bootstrap, seed)?;
        results.push(json!({"method": method, "order": order, "aopc": s.aopc,
            "interval": s.interval, "clips": s.clips, "mean_drop": s.mean_drop}));
    }
    std::fs::write(dir.join("curves.csv"), &csv)?;
    let mut figures = Vec::new();
    let orders: Vec<Order> = groups.iter().map(|g| g.0 .1).fold(Vec::new(), |mut v, o| {
        if !v.contains(&o) {
            v.push(o);
        }
        v
    });
    for order in orders {
        let series: Vec<vidlrp_viz::plots::Series> = results
            .iter()
            .filter(|r| r["order"] == json!(order))
            .map(|r| vidlrp_viz::plots::Series {
                label: format!(
                    "{} (AOPC {:.3})",
                    r["method"].as_str().unwrap_or("?"),
                    r["aopc"].as_f64().unwrap_or(f64::NAN)
                ),
                points: r["mean_drop"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(k, d)| (k as f64, d.as_f64().unwrap_or(f64::NAN)))
                    .collect(),
            })
            .collect();
        let title = format!(
            "{} perturbation, regions {region} ({replace})",
            order.to_string().to_uppercase()
        );
        for p in vidlrp_viz::plots::xy_figure(
            &dir.join(format!("perturbation_{order}")),
            &title,
            "regions removed k",
            "mean score drop f(x0) - f(xk)",
            &series,
            false,
        )? {
            figures.extend(p.file_name().map(|f| f.to_string_lossy().into_owned()));
        }
    }
    let summary = json!({
        "run": run,
        "shards": shards.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "clips": groups.first().map_or(0, |g| g.1.len()),
        "missed": missed.iter().map(|(n, r)| json!({"clip": n, "reason": r})).collect::<Vec<Value>>(),
        "results": results,
        "timing": timing,
    });
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    for r in &results {
        let i = &r["interval"];
        eprintln!(
            "  {:<18} {:<4} AOPC {:>9.4}  [{}, {}]  ({} clips)",
            r["method"].as_str().unwrap_or("?"),
            r["order"].as_str().unwrap_or("?"),
            r["aopc"].as_f64().unwrap_or(f64::NAN),
            i["lo"].as_f64().map_or("-".into(), |v| format!("{v:.4}")),
            i["hi"].as_f64().map_or("-".into(), |v| format!("{v:.4}")),
            r["clips"]
        );
    }
    if !missed.is_empty() {
        eprintln!("  {} clip(s) not evaluated:", missed.len());
        for (n, r) in missed {
            eprintln!("    {n}: {r}");
        }
    }
    Ok(figures)
}

/// A CSV field, quoted when it holds a comma, quote or newline.
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// Whether `dir` holds the outputs of `vidlrp evaluate` (for `vidlrp merge`).
pub fn is_evaluation(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v["run"]["command"] == "evaluate")
}

/// `vidlrp merge` of evaluation shards: the same run (weights and manifest by content and every
/// setting), every shard of one count exactly once; writes what one unsharded run writes.
pub fn merge(dirs: &[PathBuf], out: &std::path::Path) -> Result<()> {
    let mut run: Option<Value> = None;
    let mut shards: Vec<Shard> = Vec::new();
    let mut rows = Vec::new();
    let mut missed = Vec::new();
    for d in dirs {
        let summary: Value = serde_json::from_str(
            &std::fs::read_to_string(d.join("summary.json"))
                .with_context(|| format!("{}: no summary.json", d.display()))?,
        )
        .with_context(|| format!("{}: summary.json is not JSON", d.display()))?;
        match &run {
            None => run = Some(summary["run"].clone()),
            Some(r) if *r != summary["run"] => bail!(
                "{} is from another evaluation (other weights, manifest or settings) than {}",
                d.display(),
                dirs[0].display()
            ),
            Some(_) => {}
        }
        if summary["run"]["manifest_sha256"].is_null() {
            bail!("{}: only evaluations of a --manifest merge", d.display());
        }
        for sh in summary["shards"].as_array().into_iter().flatten() {
            let sh: Shard = sh
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| anyhow::anyhow!("{}: shard {sh}: {e}", d.display()))?;
            shards.push(sh);
        }
        for m in summary["missed"].as_array().into_iter().flatten() {
            missed.push((
                m["clip"].as_str().unwrap_or("?").to_string(),
                m["reason"].as_str().unwrap_or("?").to_string(),
            ));
        }
        rows.extend(read_curves(&d.join("curves.csv"))?);
    }
    let run = run.context("nothing to merge")?;
    let n = shards[0].count;
    let mut seen: Vec<usize> = shards
        .iter()
        .map(|s| {
            if s.count == n {
                Ok(s.index)
            } else {
                Err(anyhow::anyhow!(
                    "shards of {n} and of {} do not merge",
                    s.count
                ))
            }
        })
        .collect::<Result<_>>()?;
    seen.sort_unstable();
    if seen != (0..n).collect::<Vec<_>>() {
        bail!("the shards {seen:?} are not each of 0..{n} exactly once");
    }
    let mut outputs = Outputs::new();
    let staged = outputs.dir(out)?;
    write_outputs(
        &staged,
        &run,
        &[Shard::WHOLE],
        rows,
        &missed,
        json!({"merged_shards": n}),
    )?;
    outputs.publish()?;
    crate::emit(&json!({"out": out, "summary": out.join("summary.json")}));
    Ok(())
}

/// The curves of a `curves.csv` (rows `method,order,item,clip,k,score`, `k` from 0 per curve).
fn read_curves(path: &std::path::Path) -> Result<Vec<CurveRow>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut rows: Vec<CurveRow> = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let r = record.with_context(|| format!("{}: row {}", path.display(), line + 2))?;
        let bad = || anyhow::anyhow!("{}: row {} is malformed", path.display(), line + 2);
        let (method, order, item, clip, k, score) = (
            r.get(0).ok_or_else(bad)?,
            r.get(1)
                .ok_or_else(bad)?
                .parse::<Order>()
                .map_err(|_| bad())?,
            r.get(2)
                .ok_or_else(bad)?
                .parse::<usize>()
                .map_err(|_| bad())?,
            r.get(3).ok_or_else(bad)?,
            r.get(4)
                .ok_or_else(bad)?
                .parse::<usize>()
                .map_err(|_| bad())?,
            r.get(5)
                .ok_or_else(bad)?
                .parse::<f32>()
                .map_err(|_| bad())?,
        );
        match rows.last_mut() {
            Some(c) if k > 0 && c.method == method && c.order == order && c.item == item => {
                if c.scores.len() != k {
                    return Err(bad());
                }
                c.scores.push(score);
            }
            _ if k == 0 => rows.push(CurveRow {
                method: method.to_string(),
                order,
                item,
                clip: clip.to_string(),
                scores: vec![score],
            }),
            _ => return Err(bad()),
        }
    }
    Ok(rows)
}
