//! `vidlrp demo`: the main job on built-in data, so a fresh machine can see it work.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;
use vidlrp_c3d::{init_weights, C3dSpec, Pool5, Rng};
use vidlrp_core::{Backend, Composite, HostTensor, Target};
use vidlrp_io::Outputs;
use vidlrp_snippet::Preprocess;

use crate::report::{frame_shares, summary, timed_explain};

#[derive(Clone, Copy, clap::ValueEnum)]
enum Size {
    /// The published C3D widths (80M parameters).
    Full,
    /// Quarter widths (fast, for a first look).
    Small,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp demo                         # full-width seeded C3D, writes ./vidlrp-demo/\n  \
    vidlrp demo --size small --out /tmp/demo --seed 3\n\n\
    Writes clip.npy (the synthetic clip, caffe-preprocessed), dtd.npy, sa.npy, summary.json\n\
    (the explain summaries plus each method's frame-wise relevance shares r_t), sheet.png\n\
    (input, DTD and SA rows) and dtd/ (per-frame heatmaps, overlays, heatmap.gif), all at\n\
    once when the run succeeds.")]
pub struct Args {
    /// Output directory (created if missing; files of the same names are replaced).
    #[arg(long, default_value = "vidlrp-demo")]
    out: PathBuf,
    /// Seed of the model and the clip.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Model size.
    #[arg(long, value_enum, default_value = "full")]
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
                    data[((c * t_n + t) * h_n + h) * w_n + w] = v - p.mean[c];
                }
            }
        }
    }
    HostTensor::new(vec![1, 3, t_n, h_n, w_n], data).expect("shape")
}

pub fn run(a: Args) -> Result<()> {
    let mut outputs = Outputs::new();
    let dir = outputs.dir(&a.out)?;
    let spec = match a.size {
        Size::Full => C3dSpec::full(),
        Size::Small => C3dSpec::with_widths(
            [16, 32, 64, 64, 128, 128, 128, 128],
            [1024, 1024],
            487,
            [16, 112, 112],
            Pool5::Port,
        )?,
    };
    eprintln!(
        "vidlrp demo: seeded C3D ({} parameters, seed {}), synthetic 16x112x112 clip",
        spec.num_params(),
        a.seed
    );
    let weights = init_weights(&spec, a.seed);
    crate::device::with_backend!(&a.device, |be| {
        let (net, _) = vidlrp_c3d::build(be, weights, Pool5::Port, [3, 16, 112, 112])?;
        let clip = synthetic_clip(a.seed);
        vidlrp_io::write_npy(
            &dir.join("clip.npy"),
            &clip.clone().reshape(vec![3, 16, 112, 112])?,
        )?;
        let caffe = Preprocess::caffe();
        let methods = [
            ("dtd", Composite::dtd(caffe.low(), caffe.high())),
            ("sa", Composite::sensitivity()),
        ];
        let mut results = serde_json::Map::new();
        let bwr = vidlrp_viz::Palette::new("bwr").map_err(anyhow::Error::msg)?;
        let clip4 = clip.clone().reshape(vec![3, 16, 112, 112])?;
        let mut rows = vec![(
            "input".to_string(),
            vidlrp_viz::input_frames(&clip4, &caffe)?,
        )];
        for (name, composite) in methods {
            let (e, wall) = timed_explain(be, &net, &clip, &Target::TopOne, &composite)?;
            let shares = frame_shares(&e.relevance)?;
            let file = format!("{name}.npy");
            let r4 = e.relevance.clone().reshape(vec![3, 16, 112, 112])?;
            vidlrp_io::write_npy(&dir.join(&file), &r4)?;
            rows.push((
                name.to_uppercase(),
                vidlrp_viz::heatmaps(&r4, vidlrp_viz::Norm::Symmetric, &bwr)?,
            ));
            if name == "dtd" {
                let c = crate::clip::Clip {
                    x: clip.clone(),
                    shape: vec![3, 16, 112, 112],
                    preset: caffe.clone(),
                    about: json!({}),
                    frame_indices: (0..16).collect(),
                };
                let p = crate::clip::PictureArgs {
                    cmap: "bwr".into(),
                    norm: vidlrp_viz::Norm::Symmetric,
                    zoom: 2,
                };
                let pictures = dir.join("dtd");
                std::fs::create_dir(&pictures)?;
                crate::clip::write_pictures(&pictures, &c, &r4, "dtd", &p)?;
            }
            let mut s = summary(&e, &composite, None);
            let obj = s.as_object_mut().expect("object");
            obj.insert("output".into(), json!(a.out.join(&file)));
            obj.insert("frame_shares".into(), json!(shares));
            obj.insert("wall_time_s".into(), json!(wall));
            eprintln!(
                "  {name:>3}: class {} logit {:.4} sum R / logit {:.6}  {:.2} s  frame shares {}",
                e.classes[0],
                e.scores[0],
                e.conservation()[0],
                wall,
                shares
                    .iter()
                    .map(|v| format!("{v:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            results.insert(name.into(), s);
        }
        let sheet = vidlrp_viz::contact_sheet(
            &rows,
            &crate::clip::labels(&(0..16).collect::<Vec<_>>()),
            1,
        )?;
        vidlrp_viz::write_png(&dir.join("sheet.png"), &sheet)?;
        let out = json!({
            "model": {"parameters": spec.num_params(), "seed": a.seed, "widths": spec.conv_widths},
            "backend": be.name(),
            "clip": a.out.join("clip.npy"),
            "methods": results,
        });
        let text = serde_json::to_string_pretty(&out)? + "\n";
        vidlrp_io::atomic_write(&dir.join("summary.json"), |w| {
            std::io::Write::write_all(w, text.as_bytes())
        })?;
        outputs.publish()?;
        eprintln!("  wrote {}", a.out.display());
        println!("{out}");
        Ok(())
    })
}
