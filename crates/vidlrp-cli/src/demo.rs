//! `vidlrp demo`: the main job on built-in data, so a fresh machine can see it work.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;
use vidlrp_c3d::{init_weights, C3dSpec, Pool5, TensorMap};
use vidlrp_core::{Backend, Composite, HostTensor, Target};
use vidlrp_io::Outputs;
use vidlrp_rng::Rng;
use vidlrp_snippet::Preprocess;
use vidlrp_synth::SynthSpec;

use crate::report::{frame_shares, summary, timed_explain};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Size {
    /// The trained model built into vidlrp (`fixtures/demo/`: made by `vidlrp reproduce`) on a
    /// held-out synthetic video, next to its untrained twin: the difference the paper is about.
    Trained,
    /// A seeded, untrained C3D of the published widths (80M parameters) on a synthetic clip.
    Full,
    /// A seeded, untrained C3D of quarter widths (fast, for a first look).
    Small,
}

/// The trained demo model (`fixtures/demo/README.md` says how it was made).
const DEMO_MODEL: &[u8] = include_bytes!("../../../fixtures/demo/model.safetensors");

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp demo                         # the built-in trained model vs untrained, ./vidlrp-demo/\n  \
    vidlrp demo --size full             # full-width seeded C3D (80M parameters), untrained\n  \
    vidlrp demo --size small --out /tmp/demo --seed 3\n\n\
    Writes clip.npy (the clip, preprocessed), dtd.npy, sa.npy, summary.json (the explain\n\
    summaries plus each method's frame-wise relevance shares r_t), sheet.png (input, DTD and\n\
    SA rows) and dtd/ (per-frame heatmaps, overlays, heatmap.gif), all at once when the run\n\
    succeeds. With the trained model (the default) also dtd-u.npy and sa-u.npy, the\n\
    untrained twin's relevance, as rows of sheet.png and under \"untrained\" in summary.json.")]
pub struct Args {
    /// Output directory (created if missing; files of the same names are replaced).
    #[arg(long, default_value = "vidlrp-demo")]
    out: PathBuf,
    /// Seed of the model and the clip.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which model.
    #[arg(long, value_enum, default_value = "trained")]
    size: Size,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

/// A synthetic 16x112x112 clip, caffe-preprocessed (BGR minus mean): a bright disc moving left
/// to right over a shaded background, with a little noise.
pub fn synthetic_clip(seed: u64) -> HostTensor {
    let (t_n, h_n, w_n) = (16, 112, 112);
    let p = Preprocess::caffe();
    let mut rng = Rng::new(seed ^ 0xc11f);
    let mut data = vec![0.0f32; 3 * t_n * h_n * w_n];
    for t in 0..t_n {
        let cx = 20.0 + 72.0 * t as f32 / (t_n - 1) as f32;
        let cy = 56.0 + 10.0 * (t as f32 * 0.6).sin();
        for h in 0..h_n {
            for w in 0..w_n {
                let d2 = (w as f32 - cx).powi(2) + (h as f32 - cy).powi(2);
                let disc = (1.0 - d2 / 196.0).max(0.0);
                // RGB on 0..255: green field, white-yellow disc.
                let rgb = [
                    60.0 + 190.0 * disc,
                    120.0 + 0.4 * h as f32 + 120.0 * disc,
                    50.0 + 80.0 * disc,
                ];
                for (c, &v) in [rgb[2], rgb[1], rgb[0]].iter().enumerate() {
                    let noise = (rng.uniform() as f32 - 0.5) * 8.0;
                    let v = (v + noise).clamp(0.0, 255.0);
                    data[((c * t_n + t) * h_n + h) * w_n + w] = (v - p.mean[c]) / p.std[c];
                }
            }
        }
    }
    HostTensor::new(vec![1, 3, t_n, h_n, w_n], data).expect("shape")
}

/// The demo's model, clip and what is known about the clip.
struct Setup {
    spec: C3dSpec,
    weights: TensorMap,
    /// The untrained twin (same architecture, He-initialised with seed 0), for a trained model.
    untrained: Option<TensorMap>,
    /// `[1, 3, 16, S, S]`, preprocessed with `preset`.
    clip: HostTensor,
    preset: Preprocess,
    labels: Option<Vec<String>>,
    about: serde_json::Value,
}

/// The built-in trained model and a held-out video of the data set it was trained on
/// (regenerated from the data set's spec, which the model records): the first test video
/// without a title card, its first 16 frames.
fn trained_setup(seed: u64) -> Result<Setup> {
    let (weights, meta) = vidlrp_io::parse_safetensors(
        DEMO_MODEL,
        std::path::Path::new("fixtures/demo/model.safetensors"),
    )?;
    let spec = C3dSpec::from_weights(&weights)?;
    let preset: Preprocess = meta
        .get(vidlrp_c3d::PRESET_KEY)
        .map_or("caffe", String::as_str)
        .parse()?;
    let data: SynthSpec = serde_json::from_str(
        meta.get(vidlrp_synth::SPEC_KEY)
            .context("the built-in model does not record its data set")?,
    )?;
    let (index, frames) = (seed as usize..data.videos)
        .chain(0..seed as usize)
        .filter(|&i| vidlrp_synth::split_of(&data, i) == "test")
        .find_map(
            |i| match vidlrp_synth::render(&data, i, i % data.classes, 16) {
                (frames, 0) => Some((i, frames)),
                _ => None,
            },
        )
        .context("the data set has no test video without a title card")?;
    let label = index % data.classes;
    let x = vidlrp_snippet::preprocess(&frames, &preset).map_err(anyhow::Error::msg)?;
    let shape = [&[1], x.shape()].concat();
    let clip = x.reshape(shape)?;
    let names: Vec<String> = vidlrp_synth::CLASS_NAMES[..data.classes]
        .iter()
        .map(ToString::to_string)
        .collect();
    let untrained = init_weights(&spec, 0);
    Ok(Setup {
        about: json!({"model": "built-in trained model (fixtures/demo)", "video": index,
                      "true_class": label, "true_label": names[label], "preset": preset.to_string()}),
        spec,
        weights,
        untrained: Some(untrained),
        clip,
        preset,
        labels: Some(names),
    })
}

/// A seeded, untrained C3D and the synthetic disc clip.
fn seeded_setup(size: Size, seed: u64) -> Result<Setup> {
    let spec = match size {
        Size::Small => C3dSpec::with_widths(
            [16, 32, 64, 64, 128, 128, 128, 128],
            [1024, 1024],
            487,
            [16, 112, 112],
            Pool5::Port,
        )?,
        _ => C3dSpec::full(),
    };
    Ok(Setup {
        weights: init_weights(&spec, seed),
        about: json!({"model": "seeded, untrained", "seed": seed}),
        spec,
        untrained: None,
        clip: synthetic_clip(seed),
        preset: Preprocess::caffe(),
        labels: None,
    })
}

pub fn run(a: Args) -> Result<crate::summary::Finished> {
    let mut outputs = Outputs::new();
    let dir = outputs.dir(&a.out)?;
    let setup = match a.size {
        Size::Trained => trained_setup(a.seed)?,
        size => seeded_setup(size, a.seed)?,
    };
    let spec = &setup.spec;
    let x4 = {
        let s = setup.clip.shape();
        setup.clip.clone().reshape(s[1..].to_vec())?
    };
    let input = [3, x4.shape()[1], x4.shape()[2], x4.shape()[3]];
    eprintln!(
        "vidlrp demo: {} ({} parameters), clip {:?}{}",
        setup.about["model"].as_str().unwrap_or("C3D"),
        spec.num_params(),
        &input[1..],
        setup.about["true_label"]
            .as_str()
            .map_or(String::new(), |l| format!(
                " of held-out video {} (class: {l})",
                setup.about["video"]
            ))
    );
    crate::device::with_backend!(&a.device, |be| {
        vidlrp_io::write_npy(&dir.join("clip.npy"), &x4)?;
        let preset = &setup.preset;
        let bwr = vidlrp_viz::Palette::new("bwr").map_err(anyhow::Error::msg)?;
        let true_class = setup.about["true_class"].as_u64().map(|c| c as usize);
        let input_row = crate::report::input_label(true_class, setup.labels.as_deref());
        let mut rows = vec![(input_row, vidlrp_viz::input_frames(&x4, preset)?)];
        let mut models = vec![("", setup.weights.clone())];
        if let Some(u) = &setup.untrained {
            models.push(("-u", u.clone()));
        }
        let mut results = serde_json::Map::new();
        let mut untrained = serde_json::Map::new();
        for (suffix, weights) in models {
            let (net, _) = vidlrp_c3d::build(be, weights, Pool5::Port, input)?;
            let methods = [
                ("dtd", Composite::dtd(preset.low(), preset.high())),
                ("sa", Composite::sensitivity()),
            ];
            for (name, composite) in methods {
                let (e, wall) = timed_explain(be, &net, &setup.clip, &Target::TopOne, &composite)?;
                let shares = frame_shares(&e.relevance)?;
                let file = format!("{name}{suffix}.npy");
                let r4 = e.relevance.clone().reshape(input.to_vec())?;
                vidlrp_io::write_npy(&dir.join(&file), &r4)?;
                let row = if suffix.is_empty() && setup.untrained.is_some() {
                    format!("{} trained", name.to_uppercase())
                } else if suffix.is_empty() {
                    name.to_uppercase()
                } else {
                    format!("{} untrained", name.to_uppercase())
                };
                rows.push((
                    crate::report::row_label(&row, &e, setup.labels.as_deref()),
                    vidlrp_viz::heatmaps(&r4, vidlrp_viz::Norm::Symmetric, &bwr)?,
                ));
                if name == "dtd" && suffix.is_empty() {
                    let c = crate::clip::Clip {
                        x: setup.clip.clone(),
                        shape: input.to_vec(),
                        preset: preset.clone(),
                        about: json!({}),
                        frame_indices: (0..input[1]).collect(),
                    };
                    let p = crate::clip::PictureArgs::default();
                    let pictures = dir.join("dtd");
                    std::fs::create_dir(&pictures)?;
                    crate::clip::write_pictures(&pictures, &c, &r4, "dtd", &p)?;
                }
                let mut s = summary(&e, &composite, setup.labels.as_deref());
                let obj = s.as_object_mut().expect("object");
                obj.insert("output".into(), json!(a.out.join(&file)));
                obj.insert("frame_shares".into(), json!(shares));
                obj.insert("wall_time_s".into(), json!(wall));
                eprintln!(
                    "  {:>14}: class {} logit {:.4} sum R / logit {:.6}  {:.2} s  frame shares {}",
                    format!(
                        "{name}{}",
                        if suffix.is_empty() { "" } else { " untrained" }
                    ),
                    match setup.labels.as_ref().and_then(|l| l.get(e.classes[0])) {
                        Some(l) => format!("{} ({l})", e.classes[0]),
                        None => e.classes[0].to_string(),
                    },
                    e.scores[0],
                    e.conservation()[0],
                    wall,
                    shares
                        .iter()
                        .map(|v| format!("{v:.3}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                if suffix.is_empty() {
                    results.insert(name.into(), s);
                } else {
                    untrained.insert(name.into(), s);
                }
            }
        }
        let sheet = vidlrp_viz::contact_sheet(
            &rows,
            &crate::clip::labels(&(0..input[1]).collect::<Vec<_>>()),
            1,
        )?;
        vidlrp_viz::write_png(&dir.join("sheet.png"), &sheet)?;
        let mut out = json!({
            "model": {"parameters": spec.num_params(), "seed": a.seed, "widths": spec.conv_widths, "about": setup.about},
            "backend": be.name(),
            "clip": a.out.join("clip.npy"),
            "methods": results,
        });
        if !untrained.is_empty() {
            out["untrained"] = serde_json::Value::Object(untrained);
        }
        let text = serde_json::to_string_pretty(&out)? + "\n";
        vidlrp_io::atomic_write(&dir.join("summary.json"), |w| {
            std::io::Write::write_all(w, text.as_bytes())
        })?;
        outputs.publish()?;
        eprintln!("  wrote {}", a.out.display());
        out["summary"] = json!(a.out.join("summary.json"));
        Ok(crate::summary::Finished::summary(out))
    })
}
