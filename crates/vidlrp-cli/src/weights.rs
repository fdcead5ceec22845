//! Weights from any file (`--weights` of every command): C3D or one of torchvision's video
//! ResNets ([`vidlrp_model`]), with the defaults their family implies, and the `convert` and
//! `inspect` commands.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use vidlrp_c3d::{C3dSpec, Pool5};
use vidlrp_io::Outputs;
use vidlrp_model::{Architecture, Model};
use vidlrp_snippet::Preprocess;

/// Loads `path` (any supported format and network) with C3D's pool5 variant `pool5`, if given.
pub fn load(path: &Path, pool5: Option<Pool5>) -> Result<Model> {
    vidlrp_model::load(path, pool5)
        .with_context(|| format!("cannot load a model from {}", path.display()))
}

/// What a JSON summary says about a model's weights.
pub fn describe(m: &Model) -> Value {
    let mut j = json!({
        "weights": m.path,
        "weights_format": m.format.to_string(),
        "origin": m.origin(),
        "architecture": m.arch(),
    });
    if let Architecture::C3d {
        pool5, pool5_from, ..
    } = &m.architecture
    {
        j["pool5"] = json!(pool5.to_string());
        j["pool5_from"] = json!(if *pool5_from == "given" {
            "--pool5"
        } else {
            pool5_from
        });
    }
    j
}

/// The preset a command uses: `given` (`--preset`) if any, else the one recorded in the
/// weights' safetensors metadata (models from `vidlrp train`, e.g. `caffe@64`), else the
/// network family's (`caffe` for C3D, `kinetics` for video ResNets).
pub fn resolve_preset(given: Option<&Preprocess>, weights: &Path) -> Result<Preprocess> {
    Ok(vidlrp_dataset::resolve_preset(given, weights)?)
}

/// The preset of a loaded model: `given`, else its recorded or family preset.
pub fn model_preset(given: Option<&Preprocess>, m: &Model) -> Result<Preprocess> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let name = m.preset_name();
    name.parse()
        .with_context(|| format!("{}: recorded preset {name:?}", m.path.display()))
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp convert c3d.pickle --out c3d.safetensors\n  \
    vidlrp convert conv3d_deepnetA_sport1m_iter_1900000 --out c3d-caffe.safetensors\n  \
    vidlrp convert c3d_sports1m_16x1x1_45e_ucf101_rgb.pth --out c3d-ucf101.safetensors\n  \
    vidlrp convert r3d_18-b3b3357e.pth --out r3d_18.safetensors\n\n\
    Reads any weight file vidlrp reads (PyTorch zip or legacy pickle, MMAction2 checkpoint,\n\
    Caffe model, safetensors, .npz), checks it is a C3D or a torchvision video ResNet, and\n\
    writes safetensors: C3D with the PyTorch port's names (conv1.weight ... fc8.bias), a\n\
    ResNet with torchvision's (batch-norm statistics included). The origin (pytorch-port,\n\
    mmaction2, caffe, torchvision) and the architecture are kept in the file's metadata, so\n\
    the converted file keeps the origin's defaults (pool5, preset). Prints a JSON summary.")]
pub struct ConvertArgs {
    /// The weight file to convert.
    input: PathBuf,
    /// The safetensors file to write.
    #[arg(long)]
    out: PathBuf,
}

/// `vidlrp convert`.
pub fn convert(a: ConvertArgs) -> Result<crate::summary::Finished> {
    let mut outputs = Outputs::new();
    let staged = outputs.file(&a.out)?;
    let m = load(&a.input, None)?;
    m.save(&staged)?;
    outputs.publish()?;
    Ok(crate::summary::Finished::summary(json!({
        "input": a.input,
        "output": a.out,
        "format": m.format.to_string(),
        "origin": m.origin(),
        "architecture": m.arch(),
        "tensors": m.tensors.len(),
        "parameters": m.num_params(),
        "unwrapped": m.unwrapped,
        "skipped": m.skipped,
    })))
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp inspect c3d.pickle\n  \
    vidlrp inspect conv3d_deepnetA_sport1m_iter_1900000 --json\n  \
    vidlrp inspect r2plus1d_18-91a641e6.pth\n\n\
    Prints the format, the origin, every tensor, the architecture read from the names and\n\
    shapes (C3D: widths, classes, parameters and the input sizes fc6 fits; a video ResNet:\n\
    r3d_18, mc3_18, r2plus1d_18 or another depth, stage widths and blocks, classes) and the\n\
    defaults it implies (pool5, preset). Exits 1 if the file is neither.")]
pub struct InspectArgs {
    /// The weight file.
    weights: PathBuf,
}

/// Square frame sizes `S` (and the frame count) for which fc6 fits a `T x S x S` input.
fn fitting_inputs(spec: &C3dSpec, pool5: Pool5) -> Option<(usize, usize, usize)> {
    for t in [16, 8, 32, 4, 1, 2, 64] {
        let fits: Vec<usize> = (1..=1024)
            .filter(|&s| {
                spec.features_shape([t, s, s], pool5)
                    .is_ok_and(|f| f.iter().product::<usize>() == spec.fc6_inputs)
            })
            .collect();
        if let (Some(&lo), Some(&hi)) = (fits.first(), fits.last()) {
            return Some((t, lo, hi));
        }
    }
    None
}

/// `vidlrp inspect`.
pub fn inspect(a: InspectArgs) -> Result<crate::summary::Finished> {
    let m = load(&a.weights, None)?;
    let preset = model_preset(None, &m)?;
    let tensors: Vec<Value> = m
        .tensors
        .iter()
        .map(|(k, t)| json!({"name": k, "shape": t.shape()}))
        .collect();
    let mut text = String::new();
    writeln!(text, "file:     {}", a.weights.display())?;
    writeln!(text, "format:   {}", m.format)?;
    writeln!(text, "origin:   {}", m.origin())?;
    if !m.unwrapped.is_empty() {
        writeln!(text, "unwrapped: {}", m.unwrapped.join(", "))?;
    }
    writeln!(text, "tensors:  {}", m.tensors.len())?;
    let width = m.tensors.keys().map(String::len).max().unwrap_or(0).max(14);
    for (k, t) in &m.tensors {
        writeln!(text, "  {k:<width$} {:?}", t.shape())?;
    }
    if !m.skipped.is_empty() {
        writeln!(text, "skipped:  {}", m.skipped.len())?;
        for s in &m.skipped {
            writeln!(text, "  {s}")?;
        }
    }
    let (architecture, input, defaults) = match &m.architecture {
        Architecture::C3d { spec, pool5, .. } => c3d_inspection(spec, *pool5, &preset, &mut text)?,
        Architecture::VideoResNet(spec) => {
            let blocks: Vec<usize> = spec.stages.iter().map(|s| s.blocks.len()).collect();
            writeln!(
                text,
                "architecture: {} (torchvision video ResNet), widths {:?} (stem, stages), \
                 blocks {blocks:?}, {} classes, {} parameters",
                spec.arch(),
                spec.widths(),
                spec.classes,
                spec.num_params()
            )?;
            writeln!(
                text,
                "input:    {} x T x H x W, any size (global average pooling); the {preset} \
                 preset gives {} x 16 x {} x {}",
                spec.in_channels,
                spec.in_channels,
                preset.input_size()[0],
                preset.input_size()[1]
            )?;
            writeln!(
                text,
                "defaults: --preset {preset} (options given on a command win)"
            )?;
            (
                json!({
                    "name": spec.arch(), "family": "video-resnet", "widths": spec.widths(),
                    "blocks": blocks, "classes": spec.classes, "parameters": spec.num_params(),
                }),
                json!({"frames": null, "size_min": 1, "size_max": null, "channels": spec.in_channels}),
                json!({"preset": preset.to_string()}),
            )
        }
    };
    let j = json!({
        "file": a.weights,
        "format": m.format.to_string(),
        "origin": m.origin(),
        "unwrapped": m.unwrapped,
        "skipped": m.skipped,
        "tensors": tensors,
        "architecture": architecture,
        "input": input,
        "defaults": defaults,
    });
    Ok(crate::summary::Finished::with_text(j, text))
}

/// `inspect`'s architecture, input and defaults of a C3D (JSON), its lines added to `text`.
fn c3d_inspection(
    spec: &C3dSpec,
    pool5: Pool5,
    preset: &Preprocess,
    text: &mut String,
) -> Result<(Value, Value, Value)> {
    let input = fitting_inputs(spec, pool5);
    writeln!(
        text,
        "architecture: C3D, conv widths {:?}, fc {:?}, {} classes, {} parameters",
        spec.conv_widths,
        spec.fc_widths,
        spec.classes,
        spec.num_params()
    )?;
    match input {
        Some((t, lo, hi)) if lo == hi => writeln!(
            text,
            "input:    {} x {t} x {lo} x {lo} (C x T x H x W)",
            spec.in_channels
        )?,
        Some((t, lo, hi)) => writeln!(
            text,
            "input:    {} x {t} x S x S with S in {lo}..={hi} (C x T x H x W; fc6 takes {})",
            spec.in_channels, spec.fc6_inputs
        )?,
        None => writeln!(
            text,
            "input:    no square input of 1..64 frames fits fc6's {} inputs under pool5 {}",
            spec.fc6_inputs, pool5
        )?,
    }
    writeln!(
        text,
        "defaults: --pool5 {pool5} --preset {preset} (from the origin; options given on a command win)"
    )?;
    Ok((
        json!({
            "name": "c3d",
            "family": "c3d",
            "conv_widths": spec.conv_widths,
            "kernels": spec.kernels,
            "fc_widths": spec.fc_widths,
            "classes": spec.classes,
            "fc6_inputs": spec.fc6_inputs,
            "parameters": spec.num_params(),
        }),
        json!(input.map(|(t, lo, hi)| json!({"frames": t, "size_min": lo, "size_max": hi, "channels": spec.in_channels}))),
        json!({"pool5": pool5.to_string(), "preset": preset.to_string()}),
    ))
}
