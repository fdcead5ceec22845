//! `vidlrp evaluate`: how faithful is each explanation? Region (or frame) perturbation and
//! AOPC through `vidlrp-evaluate`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vidlrp_c3d::Pool5;
use vidlrp_core::{Backend, Composite, HostTensor, Method, PresetOptions, Target};
use vidlrp_dataset::{Manifest, Shard};
use vidlrp_evaluate::{Order, Region, Replace, Tiling};
use vidlrp_io::Outputs;
use vidlrp_snippet::{Preprocess, ShortPolicy, SnippetSpec};

/// An explanation method, or `random`: the baseline ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranker {
    /// Regions ranked by this method's relevance.
    Explain(Method),
    /// A seeded random ranking.
    Random,
}

impl FromStr for Ranker {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "random" {
            return Ok(Ranker::Random);
        }
        s.parse::<Method>()
            .map(Ranker::Explain)
            .map_err(|e| format!("{e} (or random, the baseline)"))
    }
}

impl fmt::Display for Ranker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ranker::Explain(m) => f.write_str(m.name()),
            Ranker::Random => f.write_str("random"),
        }
    }
}

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
    methods: Vec<Ranker>,
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

/// One clip to evaluate: its name (file, or file#sample) and input `[1, 3, T, H, W]`.
struct Clip {
    name: String,
    x: HostTensor,
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
    let paths: Vec<(String, PathBuf)> = match &a.manifest {
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
                .map(|it| (it.path, it.resolved))
                .collect()
        }
        None => a
            .video
            .iter()
            .map(|p| (p.display().to_string(), p.clone()))
            .collect(),
    };
    let spec = SnippetSpec {
        length: a.length,
        offset: a.offset,
        step: a.step,
    };
    let (mut ok, mut missed) = (Vec::new(), Vec::new());
    for (name, path) in paths {
        let snippet = vidlrp_snippet::open(&path)
            .and_then(|mut src| vidlrp_snippet::load_snippet(src.as_mut(), &spec, a.short, preset));
        match snippet {
            Ok(s) => {
                let shape = s.input.shape().to_vec();
                ok.push(Clip {
                    name,
                    x: s.input.reshape([&[1], &shape[..]].concat())?,
                });
            }
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
    let methods: Vec<Method> = a
        .methods
        .iter()
        .filter_map(|r| match r {
            Ranker::Explain(m) => Some(*m),
            Ranker::Random => None,
        })
        .collect();
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
    // curves[(method, order)] = one curve per clip.
    let mut curves: std::collections::BTreeMap<(String, Order), Vec<Vec<f32>>> = Default::default();
    let mut rows = String::from("method,order,clip,k,score\n");
    let started = std::time::Instant::now();
    let (explain_s, forward_s) = crate::device::with_backend!(&a.device, |be| {
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
            let logits = be.download(&net.forward(be, &xb)?)?;
            let class = vidlrp_core::top_k(logits.data(), 1)[0].0;
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
                let sums = match ranker {
                    Ranker::Explain(m) => {
                        let i = methods.iter().position(|x| x == m).expect("listed");
                        Some(tiling.sums(explained[i].relevance.data(), s[1])?)
                    }
                    Ranker::Random => None,
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
                    for (k, v) in c.iter().enumerate() {
                        rows.push_str(&format!("{ranker},{order},{},{k},{v}\n", clip.name));
                    }
                    curves
                        .entry((ranker.to_string(), order))
                        .or_default()
                        .push(c);
                }
            }
            forward_s += start.elapsed().as_secs_f64();
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok::<_, anyhow::Error>((explain_s, forward_s))
    })?;
    if curves.is_empty() {
        bail!("no clip could be evaluated: {missed:?}");
    }
    let mut results = Vec::new();
    for ((method, order), cs) in &curves {
        let s = vidlrp_evaluate::summarize(cs, a.bootstrap, a.seed)?;
        results.push(json!({"method": method, "order": order, "aopc": s.aopc,
            "interval": s.interval, "clips": s.clips, "mean_drop": s.mean_drop}));
    }
    std::fs::write(staged.join("curves.csv"), &rows)?;
    let mut figures = Vec::new();
    for order in &a.order {
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
            "{} perturbation, regions {} ({})",
            order.to_string().to_uppercase(),
            a.region,
            a.replace
        );
        for p in vidlrp_viz::plots::xy_figure(
            &staged.join(format!("perturbation_{order}")),
            &title,
            "regions removed k",
            "mean score drop f(x0) - f(xk)",
            &series,
            false,
        )? {
            figures.push(p.file_name().map(|f| f.to_string_lossy().into_owned()));
        }
    }
    let summary = json!({
        "weights": a.weights, "preset": preset.to_string(), "region": a.region.to_string(),
        "regions": tiling.len(), "steps": a.steps, "replace": a.replace.to_string(),
        "seed": a.seed, "bootstrap": a.bootstrap,
        "clips": curves.values().next().map_or(0, Vec::len),
        "missed": missed.iter().map(|(n, r)| json!({"clip": n, "reason": r})).collect::<Vec<Value>>(),
        "results": results,
        "timing": {"explain_s": explain_s, "perturbation_s": forward_s,
                   "wall_s": started.elapsed().as_secs_f64()},
    });
    std::fs::write(
        staged.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    outputs.publish()?;
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
        for (n, r) in &missed {
            eprintln!("    {n}: {r}");
        }
    }
    crate::emit(&json!({"out": a.out, "summary": a.out.join("summary.json"), "figures": figures}));
    Ok(())
}
