//! Where a clip comes from (`--input` array or `--video` file/frames) and the pictures drawn
//! from an explanation; shared by `explain`, `sheet` and `demo`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::{json, Value};
use vidlrp_core::HostTensor;
use vidlrp_snippet::{Preprocess, ShortPolicy, SnippetSpec};
use vidlrp_viz::{Norm, Palette};

/// The clip to explain.
#[derive(clap::Args, Clone, Debug)]
pub struct ClipArgs {
    /// Preprocessed clip: float32 .npy of shape (3,T,H,W) or (N,3,T,H,W).
    #[arg(long, required_unless_present = "video", conflicts_with = "video")]
    pub input: Option<PathBuf>,
    /// A video file, a directory of PNG/JPEG frames (name order) or an .npy of frames (T,H,W,3).
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// Preprocessing preset for --video (and the z^B bounds unless given): caffe, port or kinetics, or
    /// NAME@SIZE for a square input of SIZE pixels (caffe@64). Default: the one recorded in
    /// the weights (models from `vidlrp train`), else caffe.
    #[arg(long)]
    pub preset: Option<Preprocess>,
    /// Caffe's per-voxel mean (.binaryproto, 1x3x16x128x171, BGR): the caffe preset subtracts
    /// it (cropped like the frames) instead of the per-channel means; the z^B bounds follow
    /// (0 - mean .. 255 - mean per voxel).
    #[arg(long)]
    pub mean: Option<PathBuf>,
    /// First source frame of the snippet.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Source frames between snippet frames (0 repeats one frame).
    #[arg(long, default_value_t = 1)]
    pub step: usize,
    /// Frames per snippet.
    #[arg(long, default_value_t = 16)]
    pub length: usize,
    /// Videos too short for offset + (length-1) * step: skip (error) or clamp (repeat the last frame).
    #[arg(long, default_value = "skip")]
    pub short: ShortPolicy,
}

impl Default for ClipArgs {
    /// No source yet; the options' defaults (as clap's; tested).
    fn default() -> Self {
        Self {
            input: None,
            video: None,
            preset: None,
            mean: None,
            offset: 0,
            step: 1,
            length: 16,
            short: ShortPolicy::Skip,
        }
    }
}

/// A loaded clip: network input `[1, 3, T, H, W]`, displayable frames, and where it came from.
pub struct Clip {
    /// Network input, 5-d.
    pub x: HostTensor,
    /// The shape as given (for `--input`), to write relevance back in it.
    pub shape: Vec<usize>,
    /// The preset (for display and bounds).
    pub preset: Preprocess,
    /// JSON describing the source and frame indices.
    pub about: Value,
    /// Source frame index of each snippet frame (display labels).
    pub frame_indices: Vec<usize>,
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

/// `preset` with the per-voxel mean read from `mean` (a Caffe `.binaryproto`), if given,
/// checked against snippets of `length` frames (`None`: not sampled here, e.g. an `--input`
/// clip, whose frames the z^B bounds check).
pub fn preset_with_mean(
    preset: &Preprocess,
    mean: Option<&Path>,
    length: Option<usize>,
) -> Result<Preprocess> {
    let Some(mean) = mean else {
        return Ok(preset.clone());
    };
    let blob = vidlrp_checkpoint::read_blob(mean)?;
    let preset = preset
        .clone()
        .with_voxel_mean(&blob)
        .map_err(|e| anyhow::anyhow!("{}: {e}", mean.display()))?;
    if let (Some(t), Some(n)) = (preset.frames(), length) {
        if t != n {
            bail!(
                "{}: the mean has {t} frames; use --length {t} (snippets of {n} frames were asked for)",
                mean.display()
            );
        }
    }
    Ok(preset)
}

impl ClipArgs {
    /// The preset (`--preset`, else the one recorded in the model's file, else its family's:
    /// caffe for C3D, kinetics for video ResNets), with the per-voxel mean of `--mean` if given.
    pub fn resolved_preset(&self, model: &vidlrp_model::Model) -> Result<Preprocess> {
        let length = self.video.as_ref().map(|_| self.length);
        let preset = crate::weights::model_preset(self.preset.as_ref(), model)?;
        preset_with_mean(&preset, self.mean.as_deref(), length)
    }

    /// Loads the clip, preprocessed with `preset` (from [`ClipArgs::resolved_preset`]).
    pub fn load(&self, preset: Preprocess) -> Result<Clip> {
        if let Some(input) = &self.input {
            let (x, shape) = read_clip(input)?;
            let t = x.shape()[2];
            return Ok(Clip {
                x,
                shape,
                preset,
                about: json!({"input": input}),
                frame_indices: (0..t).collect(),
            });
        }
        let path = self
            .video
            .as_ref()
            .expect("clap requires --input or --video");
        let spec = SnippetSpec {
            length: self.length,
            offset: self.offset,
            step: self.step,
        };
        let s = vidlrp_snippet::read_snippet(path, &spec, self.short, &preset)?;
        let shape = s.input.shape().to_vec();
        let x = s.batched_input();
        let about = json!({
            "source": {
                "path": s.info.path, "kind": s.info.kind, "frames": s.info.frames, "fps": s.info.fps,
                "width": s.info.width, "height": s.info.height,
            },
            "preset": preset.to_string(),
            "offset": self.offset, "step": self.step, "length": self.length,
            "frame_indices": s.frame_indices,
        });
        Ok(Clip {
            x,
            shape,
            preset,
            about,
            frame_indices: s.frame_indices,
        })
    }
}

/// Options of the pictures.
#[derive(clap::Args, Clone, Debug)]
pub struct PictureArgs {
    /// Colour map: bwr, coldnhot, hot, gray, seismic, france, wred, wblue, cold, coolio, coleus, or a
    /// Zennit colour-map source such as "000,f00,fff".
    #[arg(long, default_value = "bwr", value_parser = Palette::new)]
    pub cmap: Palette,
    /// Normalisation over the clip: symmetric (0 at the centre), absolute (|R|), unaligned (min..max).
    #[arg(long, default_value = "symmetric")]
    pub norm: Norm,
    /// Enlarge every frame by this factor (nearest neighbour).
    #[arg(long, default_value_t = 2)]
    pub zoom: u32,
}

impl Default for PictureArgs {
    /// The options' defaults (as clap's; tested).
    fn default() -> Self {
        Self {
            cmap: Palette::new("bwr").expect("a built-in colour map"),
            norm: Norm::Symmetric,
            zoom: 2,
        }
    }
}

/// Draws per-frame heatmaps and overlays, a GIF (and an mp4 with the `video` feature) of the
/// heatmaps, and a two-row contact sheet into `dir` (a staged directory: the command publishes
/// it with its other outputs). Returns the file names written.
pub fn write_pictures(
    dir: &Path,
    clip: &Clip,
    relevance: &HostTensor,
    method: &str,
    p: &PictureArgs,
) -> Result<Vec<String>> {
    let palette = &p.cmap;
    let one = |t: &HostTensor| -> Result<HostTensor> {
        let s = t.shape();
        if s.len() == 5 && s[0] != 1 {
            bail!(
                "pictures are drawn for a single clip; the batch has {} clips",
                s[0]
            );
        }
        let s4 = if s.len() == 5 {
            s[1..].to_vec()
        } else {
            s.to_vec()
        };
        Ok(t.clone().reshape(s4)?)
    };
    let zoom = p.zoom.max(1);
    let heat: Vec<_> = vidlrp_viz::heatmaps(&one(relevance)?, p.norm, palette)?
        .iter()
        .map(|h| vidlrp_viz::upscale(h, zoom))
        .collect();
    let frames: Vec<_> = vidlrp_viz::input_frames(&one(&clip.x)?, &clip.preset)?
        .iter()
        .map(|f| vidlrp_viz::upscale(f, zoom))
        .collect();
    let mut written: Vec<PathBuf> = Vec::new();
    for (t, (h, f)) in heat.iter().zip(&frames).enumerate() {
        let hp = dir.join(format!("heatmap_{t:02}.png"));
        vidlrp_viz::write_png(&hp, h)?;
        let op = dir.join(format!("overlay_{t:02}.png"));
        vidlrp_viz::write_png(&op, &vidlrp_viz::overlay(f, h, 0.6))?;
        written.extend([hp, op]);
    }
    let gif = dir.join("heatmap.gif");
    vidlrp_viz::write_gif(&gif, &heat, 125)?;
    written.push(gif);
    #[cfg(feature = "video")]
    {
        let mp4 = dir.join("heatmap.mp4");
        let vframes: Vec<_> = heat
            .iter()
            .map(|h| vidlrp_snippet::RgbFrame {
                width: h.width() as usize,
                height: h.height() as usize,
                data: h.as_raw().clone(),
            })
            .collect();
        vidlrp_snippet::write_video(&mp4, &vframes, 8, 16)?;
        written.push(mp4);
    }
    let columns = labels(&clip.frame_indices);
    let sheet = vidlrp_viz::contact_sheet(
        &[("input".into(), frames), (method.to_uppercase(), heat)],
        &columns,
        1,
    )?;
    let sp = dir.join("sheet.png");
    vidlrp_viz::write_png(&sp, &sheet)?;
    written.push(sp);
    Ok(written
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect())
}

/// Column labels `t=<source frame>`.
pub fn labels(indices: &[usize]) -> Vec<String> {
    indices.iter().map(|i| format!("{i}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A command line of one option group.
    #[derive(Parser)]
    struct Group<T: clap::Args> {
        #[command(flatten)]
        inner: T,
    }

    /// The `Default`s that `reproduce` builds its stages from are the command line's defaults.
    #[test]
    fn defaults_are_the_command_lines() {
        let clip = Group::<ClipArgs>::parse_from(["x", "--video", "v.mp4"]).inner;
        let expected = ClipArgs {
            video: Some("v.mp4".into()),
            ..ClipArgs::default()
        };
        assert_eq!(format!("{clip:?}"), format!("{expected:?}"));
        let pictures = Group::<PictureArgs>::parse_from(["x"]).inner;
        assert_eq!(
            format!("{pictures:?}"),
            format!("{:?}", PictureArgs::default())
        );
        let rules = Group::<crate::methods::RuleArgs>::parse_from(["x"]).inner;
        let expected = crate::methods::RuleArgs::default();
        assert_eq!(format!("{rules:?}"), format!("{expected:?}"));
    }
}
