//! `vidlrp init`: seeded untrained weights, C3D (He-normal) or a torchvision video ResNet
//! (initialised as torchvision does): the untrained baseline DTD-u of any supported model.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use vidlrp_c3d::{init_weights, C3dSpec, Pool5};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp init --seed 1 --out c3d-u.safetensors                  # full C3D, 80M parameters\n  \
    vidlrp init --widths 8,16,32,32,64,64,64,64 --fc 256,256 --classes 10 --out small.npz\n  \
    vidlrp init --input-size 16x128x171 --pool5 caffe --out wide.safetensors\n  \
    vidlrp init --arch r3d_18 --seed 1 --out r3d_18-u.safetensors   # Kinetics-400 head\n  \
    vidlrp init --arch r2plus1d_18 --classes 101 --out r2plus1d-u.safetensors\n\n\
    --widths, --fc, --input-size and --pool5 shape a C3D; a video ResNet takes any input size\n\
    and has torchvision's widths.")]
pub struct Args {
    /// The architecture: c3d, r3d_18, mc3_18 or r2plus1d_18.
    #[arg(long, default_value = "c3d")]
    arch: String,
    /// Output channels of conv1, conv2, conv3a, conv3b, conv4a, conv4b, conv5a, conv5b.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "64,128,256,256,512,512,512,512"
    )]
    widths: Vec<usize>,
    /// Outputs of fc6 and fc7.
    #[arg(long, value_delimiter = ',', default_value = "4096,4096")]
    fc: Vec<usize>,
    /// Number of classes (the last layer's outputs). Default: 487 (Sports-1M) for C3D, 400
    /// (Kinetics-400) for a video ResNet.
    #[arg(long)]
    classes: Option<usize>,
    /// Input extent T x H x W that fc6 is sized for.
    #[arg(long, default_value = "16x112x112", value_parser = parse_extent)]
    input_size: [usize; 3],
    /// pool5 variant fc6 is sized for: port (padding 0,1,1) or caffe (ceil mode).
    #[arg(long, default_value = "port")]
    pool5: Pool5,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file: .safetensors or .npz.
    #[arg(long)]
    out: PathBuf,
}

/// Parses `T x H x W` written as `16x112x112`.
fn parse_extent(s: &str) -> Result<[usize; 3]> {
    let parts: Vec<usize> = s
        .split(['x', 'X'])
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!("cannot parse input size {s:?}; write it as TxHxW, e.g. 16x112x112")
        })?;
    match parts.as_slice() {
        [t, h, w] if *t > 0 && *h > 0 && *w > 0 => Ok([*t, *h, *w]),
        _ => bail!("input size {s:?} must be three positive numbers TxHxW, e.g. 16x112x112"),
    }
}

/// `vidlrp init`.
pub fn run(a: Args) -> Result<crate::summary::Finished> {
    if a.arch != "c3d" {
        return write_video_resnet(&a);
    }
    let widths: [usize; 8] = a.widths.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "--widths needs 8 values (conv1 .. conv5b), got {}",
            a.widths.len()
        )
    })?;
    let fc: [usize; 2] =
        a.fc.as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("--fc needs 2 values (fc6, fc7), got {}", a.fc.len()))?;
    let classes = a.classes.unwrap_or(487);
    let spec = C3dSpec::with_widths(widths, fc, classes, a.input_size, a.pool5)?;
    write(&spec, a.input_size, a.pool5, a.seed, &a.out)
}

/// `vidlrp init --arch r3d_18` (or another video ResNet).
fn write_video_resnet(a: &Args) -> Result<crate::summary::Finished> {
    let c3d_only = [
        (
            a.widths != [64, 128, 256, 256, 512, 512, 512, 512],
            "--widths",
        ),
        (a.fc != [4096, 4096], "--fc"),
        (a.input_size != [16, 112, 112], "--input-size"),
        (a.pool5 != Pool5::Port, "--pool5"),
    ];
    if let Some((_, flag)) = c3d_only.iter().find(|(given, _)| *given) {
        bail!(
            "{flag} shapes a C3D; --arch {} has torchvision's widths and takes any input size",
            a.arch
        );
    }
    let classes = a.classes.unwrap_or(400);
    anyhow::ensure!(classes > 0, "--classes must be positive");
    let spec = vidlrp_video_resnet::VideoResNetSpec::named(&a.arch, classes)
        .map_err(|e| anyhow::anyhow!("--arch {}: {e} (or c3d)", a.arch))?;
    let mut outputs = vidlrp_io::Outputs::new();
    let staged = outputs.file(&a.out)?;
    let weights = vidlrp_video_resnet::init_weights(&spec, a.seed);
    let path = a.out.clone();
    match a.out.extension().and_then(|e| e.to_str()) {
        // Recorded as torchvision's, so that `preset_of` and `inspect` know it without
        // reading the tensors.
        Some("safetensors") => {
            vidlrp_model::Model::from_tensors(weights, &path, None)?.save(&staged)?;
        }
        _ => write_weights(&staged, &a.out, &weights)?,
    }
    outputs.publish()?;
    Ok(crate::summary::Finished::summary(serde_json::json!({
        "out": a.out,
        "seed": a.seed,
        "architecture": spec.arch(),
        "parameters": spec.num_params(),
        "widths": spec.widths(),
        "classes": spec.classes,
    })))
}

/// Writes He-normal weights of `spec` (sized for inputs of `extent` under `pool5`) drawn
/// from `seed` at `out`, published whole.
pub fn write(
    spec: &C3dSpec,
    extent: [usize; 3],
    pool5: Pool5,
    seed: u64,
    out: &Path,
) -> Result<crate::summary::Finished> {
    let mut outputs = vidlrp_io::Outputs::new();
    let staged = outputs.file(out)?;
    let weights = init_weights(spec, seed);
    write_weights(&staged, out, &weights)?;
    outputs.publish()?;
    let [t, h, w] = extent;
    let summary = serde_json::json!({
        "out": out,
        "seed": seed,
        "parameters": spec.num_params(),
        "conv_widths": spec.conv_widths,
        "fc_widths": spec.fc_widths,
        "classes": spec.classes,
        "fc6_inputs": spec.fc6_inputs,
        "input_size": format!("{t}x{h}x{w}"),
        "pool5": pool5.to_string(),
    });
    Ok(crate::summary::Finished::summary(summary))
}

/// Writes weights at `path` as safetensors or npz by the extension of `target` (the file
/// `path` will be published as).
pub fn write_weights(
    path: &std::path::Path,
    target: &std::path::Path,
    w: &vidlrp_c3d::TensorMap,
) -> Result<()> {
    match target.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => vidlrp_io::write_safetensors(path, w)?,
        Some("npz") => vidlrp_io::write_npz(path, w)?,
        _ => bail!(
            "{}: the weight file must end in .safetensors or .npz",
            target.display()
        ),
    }
    Ok(())
}
