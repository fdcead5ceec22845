//! `vidlrp explain`: one clip (or batch) in, relevance `.npy` and a JSON summary out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vidlrp_c3d::{Pool5, Preprocess};
use vidlrp_core::{
    Backend, Composite, Explanation, HostTensor, PresetOptions, Rule, Sequential, Target,
};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PoolArg {
    /// R_i = x_i / stab(sum of the pool) R_j (the paper).
    Proportional,
    /// All of R_j to the pool's maximum (the gradient; Zennit's default).
    Wta,
}

/// Options that choose and parameterise the rules; shared with `demo`.
#[derive(clap::Args, Clone)]
pub struct MethodArgs {
    /// Explanation method: dtd, sa, gradient, gradient-x-input, epsilon-plus, epsilon-gamma-box,
    /// epsilon-plus-flat, epsilon-alpha2-beta1, epsilon-alpha2-beta1-flat, zplus, epsilon,
    /// alpha-beta, gamma, wsquare.
    #[arg(long, default_value = "dtd")]
    pub method: String,
    /// Pooling rule (default: proportional for dtd, wta for the Zennit composites).
    #[arg(long, value_enum)]
    pub pool: Option<PoolArg>,
    /// z^B lower input bound: one value or one per channel, comma-separated (e.g. -1 or
    /// -90.25,-97.66,-101.41).
    #[arg(long, allow_hyphen_values = true, requires = "high")]
    pub low: Option<String>,
    /// z^B upper input bound: one value or one per channel.
    #[arg(long, allow_hyphen_values = true, requires = "low")]
    pub high: Option<String>,
    /// z^B bounds from a preprocessing preset: caffe (0 - mean .. 255 - mean, BGR) or port
    /// (0 .. 255). Default: the --preset's bounds.
    #[arg(long, conflicts_with_all = ["low", "high"])]
    pub bounds: Option<String>,
    /// Epsilon of the epsilon rule.
    #[arg(long, default_value_t = 1e-6)]
    pub epsilon: f32,
    /// Gamma of the gamma rule.
    #[arg(long, default_value_t = 0.25)]
    pub gamma: f32,
    /// Alpha of the alpha-beta rule (alpha - beta = 1).
    #[arg(long, default_value_t = 2.0)]
    pub alpha: f32,
    /// Beta of the alpha-beta rule.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f32,
    /// Add the positive bias to z+ denominators in dtd/zplus (Zennit's ZPlus default).
    #[arg(long)]
    pub zplus_bias: bool,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp explain --weights c3d.safetensors --input clip.npy --out dtd.npy\n  \
    vidlrp explain --weights c3d.safetensors --input clip.npy --method sa --out sa.npy\n  \
    vidlrp explain --weights w.npz --input clip.npy --method dtd --pool wta --low -1 --high 1 --class 3 --out r.npy\n  \
    vidlrp explain --weights w.npz --input clip.npy --method epsilon-gamma-box --bounds port --out r.npy\n  \
    vidlrp explain --weights c3d.safetensors --video match.mp4 --offset 32 --step 2 --preset caffe --out r.npy --heatmaps pics\n  \
    vidlrp explain --weights c3d.safetensors --video frames/ --method sa --cmap hot --norm absolute --heatmaps pics --out sa.npy\n\n\
    The input is a float32 .npy of shape (3,T,H,W) or (N,3,T,H,W), already preprocessed, or\n\
    --video: a video file, a directory of frames or an .npy of frames (T,H,W,3), sampled at\n\
    offset + i * step and preprocessed with --preset.\n\
    The relevance has the input's shape (for sa: the squared gradient per channel).\n\
    One JSON object goes to stdout: class, logit, top-5, relevance sum, conservation\n\
    (sum R / logit), per-layer relevance sums and wall time.")]
pub struct Args {
    /// C3D weights (.safetensors or .npz, PyTorch port parameter names).
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    clip: crate::clip::ClipArgs,
    /// Where to write the relevance (.npy, float32, the input's shape).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    method: MethodArgs,
    /// Class to explain (default: each sample's top-1 class).
    #[arg(long)]
    class: Option<usize>,
    /// pool5 variant: port (padding 0,1,1) or caffe (ceil mode).
    #[arg(long, default_value = "port")]
    pool5: Pool5,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
    /// Class names, one per line (e.g. the Sports-1M labels.txt), to name the top-5.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Also draw pictures into this directory: per-frame heatmaps and overlays, heatmap.gif,
    /// heatmap.mp4 and sheet.png (input and relevance rows).
    #[arg(long)]
    heatmaps: Option<PathBuf>,
    #[command(flatten)]
    pictures: crate::clip::PictureArgs,
}

fn parse_floats(s: &str, what: &str) -> Result<Vec<f32>> {
    let v: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--{what} {s:?}: expected a number or comma-separated numbers"))?;
    if v.iter().any(|x| !x.is_finite()) {
        bail!("--{what} {s:?}: bounds must be finite");
    }
    Ok(v)
}

impl MethodArgs {
    /// The composite these options describe, and where its bounds came from (`preset` unless
    /// `--bounds` or `--low/--high` say otherwise).
    pub fn composite(&self, preset: &str) -> Result<(Composite, String)> {
        let (low, high, source) = match (&self.low, &self.high) {
            (Some(l), Some(h)) => (
                parse_floats(l, "low")?,
                parse_floats(h, "high")?,
                "--low/--high".to_string(),
            ),
            _ => {
                let name = self.bounds.as_deref().unwrap_or(preset);
                let p = Preprocess::by_name(name).with_context(|| {
                    format!("--bounds {name:?}: unknown preset (expected caffe or port)")
                })?;
                (p.low(), p.high(), format!("preset {}", p.name))
            }
        };
        let opts = PresetOptions {
            low,
            high,
            epsilon: self.epsilon,
            gamma: self.gamma,
            alpha: self.alpha,
            beta: self.beta,
            pool: self.pool.map(|p| match p {
                PoolArg::Proportional => Rule::PoolProportional,
                PoolArg::Wta => Rule::PoolWinnerTakeAll,
            }),
            zplus_bias: self.zplus_bias,
        };
        Ok((Composite::preset(&self.method, &opts)?, source))
    }
}

/// Reads a preprocessed clip: `(3,T,H,W)` or `(N,3,T,H,W)`, finite. Returns it as 5-d, with
/// the shape it had in the file.
pub fn read_clip(path: &Path) -> Result<(HostTensor, Vec<usize>)> {
    let t = vidlrp_io::read_npy(path)?;
    let shape = t.shape().to_vec();
    let t = match shape.len() {
        4 => t.reshape([&[1], &shape[..]].concat())?,
        5 => t,
        _ => bail!(
            "{}: the clip must have shape (3,T,H,W) or (N,3,T,H,W), got {shape:?}",
            path.display()
        ),
    };
    if t.shape()[0] == 0 || t.is_empty() {
        bail!("{}: the clip is empty (shape {shape:?})", path.display());
    }
    t.check_finite(&format!("{}", path.display()))?;
    Ok((t, shape))
}

/// Reads class names, one per line.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read labels {}", path.display()))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

/// Checks that `out`'s directory exists before any work is done.
pub fn check_out_dir(out: &Path) -> Result<()> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "{}: the output directory {} does not exist",
            out.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Runs an explanation and returns it with its wall time in seconds.
pub fn timed_explain<B: Backend>(
    be: &B,
    net: &Sequential<B>,
    x: &HostTensor,
    target: &Target,
    composite: &Composite,
) -> Result<(Explanation, f64)> {
    let start = Instant::now();
    let xb = be.upload(x)?;
    let e = net.explain(be, &xb, target, composite)?;
    Ok((e, start.elapsed().as_secs_f64()))
}

/// The JSON summary of an explanation.
pub fn summary(e: &Explanation, composite: &Composite, labels: Option<&[String]>) -> Value {
    let name = |c: usize| labels.and_then(|l| l.get(c)).map(String::as_str);
    let conservation = e.conservation();
    let samples: Vec<Value> = (0..e.classes.len())
        .map(|n| {
            let top5: Vec<Value> = e
                .top_k(n, 5)
                .into_iter()
                .map(|(c, v)| json!({"class": c, "label": name(c), "logit": v}))
                .collect();
            json!({
                "class": e.classes[n],
                "label": name(e.classes[n]),
                "logit": e.scores[n],
                "top5": top5,
                "relevance_sum": e.input_sums[n],
                "conservation": conservation[n],
            })
        })
        .collect();
    let layers: Vec<Value> = e
        .layers
        .iter()
        .map(|l| json!({"layer": l.layer, "kind": l.kind, "rule": l.rule, "relevance_sum": l.input_sum}))
        .collect();
    json!({
        "method": composite.name,
        "samples": samples,
        "layers": layers,
    })
}

pub fn run(a: Args) -> Result<()> {
    check_out_dir(&a.out)?;
    let (composite, bounds_source) = a.method.composite(&a.clip.preset)?;
    if a.heatmaps.is_some() {
        a.pictures.palette()?; // A bad --cmap fails before any work.
    }
    let clip = a.clip.load()?;
    let labels = a.labels.as_deref().map(read_labels).transpose()?;
    let s = clip.x.shape().to_vec();
    let weights = vidlrp_io::read_tensors(&a.weights)?;
    let out = crate::device::with_backend!(&a.device, |be| {
        let (net, spec) = vidlrp_c3d::build(be, weights, a.pool5, [s[1], s[2], s[3], s[4]])
            .with_context(|| format!("cannot build C3D from {}", a.weights.display()))?;
        let target = a.class.map_or(Target::TopOne, Target::Class);
        let (e, wall) = timed_explain(be, &net, &clip.x, &target, &composite)?;
        let relevance = e.relevance.clone().reshape(clip.shape.clone())?;
        let pictures = match &a.heatmaps {
            Some(dir) => {
                crate::clip::write_pictures(dir, &clip, &relevance, &composite.name, &a.pictures)?
            }
            None => Vec::new(),
        };
        vidlrp_io::write_npy(&a.out, &relevance)?;
        let mut out = summary(&e, &composite, labels.as_deref());
        let obj = out.as_object_mut().expect("object");
        if let Some(about) = clip.about.as_object() {
            obj.extend(about.clone());
        }
        obj.insert("input_shape".into(), json!(clip.shape));
        obj.insert("weights".into(), json!(a.weights));
        obj.insert("parameters".into(), json!(spec.num_params()));
        obj.insert("pool5".into(), json!(a.pool5.to_string()));
        obj.insert("bounds".into(), json!(bounds_source));
        obj.insert("backend".into(), json!(be.name()));
        obj.insert("output".into(), json!(a.out));
        if !pictures.is_empty() {
            obj.insert("pictures".into(), json!(pictures));
        }
        obj.insert("wall_time_s".into(), json!(wall));
        Ok::<_, anyhow::Error>(out)
    })?;
    println!("{out}");
    Ok(())
}
