//! C3D weights from any file (`--weights` of every command), with the defaults their origin
//! implies, and the `convert` and `inspect` commands.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use vidlrp_c3d::{C3dSpec, C3dWeights, Origin, Pool5};
use vidlrp_io::Outputs;
use vidlrp_snippet::Preprocess;

/// Weights ready to build, and the pool5 they will be built with.
pub struct Model {
    /// The file.
    pub path: PathBuf,
    /// Tensors under the port's names, origin and format.
    pub weights: C3dWeights,
    /// The pool5 variant: `--pool5` if given, else the origin's.
    pub pool5: Pool5,
    /// Where `pool5` came from.
    pub pool5_from: &'static str,
}

/// Loads `path` (any supported format) and resolves pool5.
pub fn load(path: &Path, pool5: Option<Pool5>) -> Result<Model> {
    let weights = vidlrp_c3d::load_weights(path)
        .with_context(|| format!("cannot load C3D weights from {}", path.display()))?;
    let (pool5, pool5_from) = match pool5 {
        Some(p) => (p, "--pool5"),
        None => (weights.origin.pool5(), "origin"),
    };
    Ok(Model {
        path: path.to_path_buf(),
        weights,
        pool5,
        pool5_from,
    })
}

impl Model {
    /// What a JSON summary says about the weights.
    pub fn describe(&self) -> Value {
        json!({
            "weights": self.path,
            "weights_format": self.weights.format.to_string(),
            "origin": self.weights.origin.to_string(),
            "pool5": self.pool5.to_string(),
            "pool5_from": self.pool5_from,
        })
    }
}

/// The preprocessing preset of weights without a recorded one: the paper's Caffe pipeline for
/// every origin (MMAction2's C3D also resizes to 128x171 and crops 112; c3d-pytorch's
/// `c3d.pickle` is the Caffe model converted). `--preset port` selects the port's `predict.py`
/// pipeline.
pub fn default_preset(_origin: Origin) -> Preprocess {
    Preprocess::caffe()
}

/// The preset a command uses: `given` (`--preset`) if any, else the one recorded in the
/// weights' safetensors metadata (models from `vidlrp train`, e.g. `caffe@64`), else `caffe`.
pub fn resolve_preset(given: Option<&Preprocess>, weights: &Path) -> Result<Preprocess> {
    Ok(vidlrp_dataset::resolve_preset(given, weights)?)
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp convert c3d.pickle --out c3d.safetensors\n  \
    vidlrp convert conv3d_deepnetA_sport1m_iter_1900000 --out c3d-caffe.safetensors\n  \
    vidlrp convert c3d_sports1m_16x1x1_45e_ucf101_rgb.pth --out c3d-ucf101.safetensors\n\n\
    Reads any weight file vidlrp reads (PyTorch zip or legacy pickle, MMAction2 checkpoint,\n\
    Caffe model, safetensors, .npz), checks it is a C3D, and writes safetensors with the\n\
    PyTorch port's names (conv1.weight ... fc8.bias). The origin (pytorch-port, mmaction2,\n\
    caffe) is kept in the file's metadata, so the converted file keeps the origin's defaults\n\
    (pool5). Prints a JSON summary.")]
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
    let spec = C3dSpec::from_weights(&m.weights.tensors)
        .with_context(|| format!("{} is not a C3D", a.input.display()))?;
    vidlrp_c3d::save_weights(&staged, &m.weights)?;
    outputs.publish()?;
    Ok(crate::summary::Finished::summary(json!({
        "input": a.input,
        "output": a.out,
        "format": m.weights.format.to_string(),
        "origin": m.weights.origin.to_string(),
        "tensors": m.weights.tensors.len(),
        "parameters": spec.num_params(),
        "unwrapped": m.weights.unwrapped,
        "skipped": m.weights.skipped,
    })))
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp inspect c3d.pickle\n  \
    vidlrp inspect conv3d_deepnetA_sport1m_iter_1900000 --json\n\n\
    Prints the format, the origin, every tensor, the architecture read from the shapes\n\
    (widths, classes, parameters), the input sizes fc6 fits and the defaults the origin\n\
    implies (pool5, preset). Exits 1 if the file is not a C3D.")]
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
    let spec = C3dSpec::from_weights(&m.weights.tensors)
        .with_context(|| format!("{} is not a C3D", a.weights.display()))?;
    let origin = m.weights.origin;
    let preset = match &m.weights.preset {
        Some(p) => p
            .parse()
            .with_context(|| format!("recorded preset {p:?}"))?,
        None => default_preset(origin),
    };
    let input = fitting_inputs(&spec, m.pool5);
    let tensors: Vec<Value> = m
        .weights
        .tensors
        .iter()
        .map(|(k, t)| json!({"name": k, "shape": t.shape()}))
        .collect();
    let j = json!({
        "file": a.weights,
        "format": m.weights.format.to_string(),
        "origin": origin.to_string(),
        "unwrapped": m.weights.unwrapped,
        "skipped": m.weights.skipped,
        "tensors": tensors,
        "architecture": {
            "conv_widths": spec.conv_widths,
            "kernels": spec.kernels,
            "fc_widths": spec.fc_widths,
            "classes": spec.classes,
            "fc6_inputs": spec.fc6_inputs,
            "parameters": spec.num_params(),
        },
        "input": input.map(|(t, lo, hi)| json!({"frames": t, "size_min": lo, "size_max": hi, "channels": spec.in_channels})),
        "defaults": {"pool5": m.pool5.to_string(), "preset": preset.to_string()},
    });
    let mut text = String::new();
    writeln!(text, "file:     {}", a.weights.display())?;
    writeln!(text, "format:   {}", m.weights.format)?;
    writeln!(text, "origin:   {origin}")?;
    if !m.weights.unwrapped.is_empty() {
        writeln!(text, "unwrapped: {}", m.weights.unwrapped.join(", "))?;
    }
    writeln!(text, "tensors:  {}", m.weights.tensors.len())?;
    for (k, t) in &m.weights.tensors {
        writeln!(text, "  {k:<14} {:?}", t.shape())?;
    }
    if !m.weights.skipped.is_empty() {
        writeln!(text, "skipped:  {}", m.weights.skipped.len())?;
        for s in &m.weights.skipped {
            writeln!(text, "  {s}")?;
        }
    }
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
            spec.fc6_inputs, m.pool5
        )?,
    }
    writeln!(
        text,
        "defaults: --pool5 {} --preset {} (from the origin; options given on a command win)",
        m.pool5, preset
    )?;
    Ok(crate::summary::Finished::with_text(j, text))
}
