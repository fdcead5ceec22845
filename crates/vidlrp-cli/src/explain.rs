//! `vidlrp explain`: one clip (or batch) in, relevance `.npy` and a JSON summary out.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;
use vidlrp_c3d::Pool5;
use vidlrp_core::{Backend, Method, Target};
use vidlrp_io::Outputs;

use crate::clip::{ClipArgs, PictureArgs};
use crate::methods::RuleArgs;
use crate::report::{summary, timed_explain};

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
    (sum R / logit), per layer the relevance sum and the seconds of its forward and relevance\n\
    steps (a profile), and wall time. Outputs appear only if the whole command succeeds.")]
pub struct Args {
    /// C3D weights: safetensors, .npz, PyTorch .pt/.pth/.pickle (zip or legacy; port or
    /// MMAction2 names) or a Caffe model, recognised by content.
    #[arg(long)]
    weights: PathBuf,
    #[command(flatten)]
    clip: ClipArgs,
    /// Where to write the relevance (.npy, float32, the input's shape).
    #[arg(long)]
    out: PathBuf,
    /// Explanation method: dtd, sa, gradient, gradient-x-input, epsilon-plus, epsilon-gamma-box,
    /// epsilon-plus-flat, epsilon-alpha2-beta1, epsilon-alpha2-beta1-flat, zplus, epsilon,
    /// alpha-beta, gamma, wsquare.
    #[arg(long, default_value = "dtd")]
    method: Method,
    #[command(flatten)]
    rules: RuleArgs,
    /// Class to explain (default: each sample's top-1 class).
    #[arg(long)]
    class: Option<usize>,
    /// pool5 variant: port (padding 0,1,1) or caffe (ceil mode). Default: the weights'
    /// origin's (caffe for Caffe models, port otherwise).
    #[arg(long)]
    pool5: Option<Pool5>,
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
    pictures: PictureArgs,
}

pub fn run(a: Args) -> Result<crate::summary::Finished> {
    let model = crate::weights::load(&a.weights, a.pool5)?;
    let preset = a.clip.resolved_preset(&model)?;
    let (composite, bounds_source) = a.rules.composite(a.method, &preset)?;
    let mut outputs = Outputs::new();
    let out_staged = outputs.file(&a.out)?;
    let pics_staged = a.heatmaps.as_ref().map(|d| outputs.dir(d)).transpose()?;
    let clip = a.clip.load(preset.clone())?;
    let labels = a
        .labels
        .as_deref()
        .map(vidlrp_dataset::read_labels)
        .transpose()?;
    let s = clip.x.shape().to_vec();
    let described = crate::weights::describe(&model);
    let parameters = model.num_params();
    let out = crate::device::with_backend!(&a.device, |be| {
        let net = model
            .into_network(be, [s[1], s[2], s[3], s[4]])
            .with_context(|| format!("cannot build the network of {}", a.weights.display()))?;
        net.rules(&composite)?;
        let target = a.class.map_or(Target::TopOne, Target::Class);
        let (e, wall) = timed_explain(be, &net, &clip.x, &target, &composite)?;
        let relevance = e.relevance.clone().reshape(clip.shape.clone())?;
        let pictures = match (&pics_staged, &a.heatmaps) {
            (Some(staged), Some(dir)) => crate::clip::write_pictures(
                staged,
                &clip,
                &relevance,
                &composite.name,
                &a.pictures,
            )?
            .into_iter()
            .map(|name| dir.join(name))
            .collect(),
            _ => Vec::new(),
        };
        vidlrp_io::write_npy(&out_staged, &relevance)?;
        let mut out = summary(&e, &composite, labels.as_deref());
        let obj = out.as_object_mut().expect("object");
        if let Some(about) = clip.about.as_object() {
            obj.extend(about.clone());
        }
        obj.insert("input_shape".into(), json!(clip.shape));
        if let Some(d) = described.as_object() {
            obj.extend(d.clone());
        }
        obj.insert("preset".into(), json!(preset.to_string()));
        if let Some(mean) = &a.clip.mean {
            obj.insert("mean".into(), json!(mean));
        }
        obj.insert("parameters".into(), json!(parameters));
        obj.insert("bounds".into(), json!(bounds_source));
        obj.insert("backend".into(), json!(be.name()));
        obj.insert("output".into(), json!(a.out));
        if !pictures.is_empty() {
            obj.insert("pictures".into(), json!(pictures));
        }
        obj.insert("wall_time_s".into(), json!(wall));
        Ok::<_, anyhow::Error>(out)
    })?;
    outputs.publish()?;
    Ok(crate::summary::Finished::summary(out))
}
