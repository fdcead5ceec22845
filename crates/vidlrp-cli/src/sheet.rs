//! `vidlrp sheet`: a contact sheet like the paper's Fig. 1/6: input frames, then one row of
//! heatmaps per method, columns labelled with source frame indices.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;
use vidlrp_c3d::Pool5;
use vidlrp_core::{Backend, Method, Target};
use vidlrp_io::Outputs;

use crate::clip::{labels, ClipArgs, PictureArgs};
use crate::methods::RuleArgs;
use crate::report::{frame_shares, input_label, row_label, summary, timed_explain};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp sheet --weights c3d.safetensors --video match.mp4 --offset 64 --out sheet.png\n  \
    vidlrp sheet --weights c3d.safetensors --video frames/ --methods dtd,sa,epsilon-plus --cmap coldnhot --out sheet.png\n  \
    vidlrp sheet --weights c3d.safetensors --input clip.npy --preset port --out sheet.png\n\n\
    vidlrp sheet --weights m.safetensors --video v.mp4 --labels labels.txt --true-class 3 --out sheet.png

    Each heatmap row is labelled with the method, the explained class (named with --labels)
    and its logit; the input row with the true class if --true-class is given. Prints each
    method's class, logit, conservation and frame shares (--json: all of it).")]
pub struct Args {
    /// C3D weights: safetensors, .npz, PyTorch .pt/.pth/.pickle or a Caffe model.
    #[arg(long)]
    pub weights: PathBuf,
    #[command(flatten)]
    pub clip: ClipArgs,
    /// Methods, one row each: any of dtd, sa, gradient, gradient-x-input, epsilon-plus,
    /// epsilon-gamma-box, epsilon-plus-flat, epsilon-alpha2-beta1, epsilon-alpha2-beta1-flat,
    /// zplus, epsilon, alpha-beta, gamma, wsquare.
    #[arg(long, value_delimiter = ',', default_value = "dtd,sa")]
    pub methods: Vec<Method>,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub pictures: PictureArgs,
    /// Class to explain (default: top-1).
    #[arg(long)]
    pub class: Option<usize>,
    /// Class names, one per line (e.g. the Sports-1M labels.txt), to name the classes.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// The clip's true class (index), shown on the input row.
    #[arg(long)]
    pub true_class: Option<usize>,
    /// pool5 variant: port or caffe. Default: the weights' origin's.
    #[arg(long)]
    pub pool5: Option<Pool5>,
    #[command(flatten)]
    pub device: crate::device::DeviceArgs,
    /// The contact sheet (.png).
    #[arg(long)]
    pub out: PathBuf,
}

/// `vidlrp sheet`: the contact sheet `a` describes, written whole.
pub fn run(a: Args) -> Result<crate::summary::Finished> {
    let palette = &a.pictures.cmap;
    let model = crate::weights::load(&a.weights, a.pool5)?;
    let preset = a.clip.resolved_preset(&model)?;
    let composites = a
        .methods
        .iter()
        .map(|&m| a.rules.composite(m, &preset).map(|c| c.0))
        .collect::<Result<Vec<_>>>()?;
    let names = a
        .labels
        .as_deref()
        .map(vidlrp_dataset::read_labels)
        .transpose()?;
    let names = names.as_deref();
    let mut outputs = Outputs::new();
    let staged = outputs.file(&a.out)?;
    let clip = a.clip.load(preset.clone())?;
    let s = clip.x.shape().to_vec();
    anyhow::ensure!(
        s[0] == 1,
        "a contact sheet shows one clip; the input holds {}",
        s[0]
    );
    let described = crate::weights::describe(&model);
    let (rows, results, backend) = crate::device::with_backend!(&a.device, |be| {
        let net = model
            .into_network(be, [s[1], s[2], s[3], s[4]])
            .with_context(|| format!("cannot build the network of {}", a.weights.display()))?;
        for c in &composites {
            net.rules(c)?;
        }
        let zoom = a.pictures.zoom.max(1);
        let x4 = clip.x.clone().reshape(s[1..].to_vec())?;
        let frames = vidlrp_viz::input_frames(&x4, &clip.preset)?
            .iter()
            .map(|f| vidlrp_viz::upscale(f, zoom))
            .collect();
        let mut rows = vec![(input_label(a.true_class, names), frames)];
        let mut results = serde_json::Map::new();
        let target = a.class.map_or(Target::TopOne, Target::Class);
        for c in &composites {
            let (e, wall) = timed_explain(be, &net, &clip.x, &target, c)?;
            let r4 = e.relevance.clone().reshape(s[1..].to_vec())?;
            let heat = vidlrp_viz::heatmaps(&r4, a.pictures.norm, palette)?;
            let mut j = summary(&e, c, names);
            let o = j.as_object_mut().expect("object");
            o.insert("frame_shares".into(), json!(frame_shares(&e.relevance)?));
            o.insert("wall_time_s".into(), json!(wall));
            results.insert(c.name.clone(), j);
            rows.push((
                row_label(&c.name.to_uppercase(), &e, names),
                heat.iter().map(|h| vidlrp_viz::upscale(h, zoom)).collect(),
            ));
        }
        Ok::<_, anyhow::Error>((rows, results, be.name()))
    })?;
    let sheet = vidlrp_viz::contact_sheet(&rows, &labels(&clip.frame_indices), 1)?;
    vidlrp_viz::write_png(&staged, &sheet)?;
    outputs.publish()?;
    let mut out = json!({"sheet": a.out, "backend": backend, "methods": results});
    if let (Some(o), Some(about)) = (out.as_object_mut(), clip.about.as_object()) {
        o.extend(about.clone());
    }
    if let (Some(o), Some(d)) = (out.as_object_mut(), described.as_object()) {
        o.extend(d.clone());
    }
    Ok(crate::summary::Finished::summary(out))
}
