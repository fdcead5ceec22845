//! `vidlrp synth`: a synthetic data set where motion decides the class.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::json;
use vidlrp_synth::{SynthSpec, VideoFormat};

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp synth --out synth --classes 4 --videos 48 --frames 96\n  \
    vidlrp synth --out tiny --classes 2 --videos 8 --frames 40 --size 64x48 --format npy\n  \
    vidlrp synth --out sparse --classes 24 --videos 480 --action-share 0.4   # label not local\n\n\
    Writes videos/NNNNN.mp4 (or .npy frames), train.csv, val.csv, test.csv (split by video,\n\
    --split per class), labels.txt and synth.json. The class is a motion of one bar\n\
    (up to 24: rightward, leftward, downward, upward, expanding, contracting, clockwise,\n\
    counter-clockwise, the four diagonals, the eight directions fast, horizontal and vertical\n\
    oscillation, pulsing, wobbling); with --action-share P < 1 the motion happens in bursts\n\
    covering about P of the frames; backgrounds pan, distractors move, and a share of the videos open\n\
    with a static title card. The same seed writes the same bytes.")]
pub struct Args {
    /// Output directory (created; must not exist yet).
    #[arg(long)]
    out: PathBuf,
    /// Number of classes (2..24; the first K of the motions listed below).
    #[arg(long, default_value_t = 4)]
    classes: usize,
    /// Number of videos.
    #[arg(long, default_value_t = 48)]
    videos: usize,
    /// Frames per video (training and validation videos).
    #[arg(long, default_value_t = 96)]
    frames: usize,
    /// Frames per test video (default: --frames); e.g. 512 for step sweeps up to 32.
    #[arg(long)]
    test_frames: Option<usize>,
    /// Frame size WxH, even for mp4 (the caffe preset resizes to 171x128).
    #[arg(long, default_value = "172x128", value_parser = parse_frame_size)]
    size: (usize, usize),
    /// Frames per second.
    #[arg(long, default_value_t = 25)]
    fps: usize,
    /// Share of videos that open with a title card.
    #[arg(long, default_value_t = 0.3)]
    title_share: f64,
    /// Share of each video's frames in which the class motion happens, in bursts of 8-24
    /// frames with the bar at rest between them (1: every frame); in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    action_share: f64,
    /// Distractor discs per video (0..4), moving on random straight paths.
    #[arg(long, default_value_t = 2)]
    distractors: usize,
    /// Percentages of each class's videos for training, validation and test.
    #[arg(long, value_delimiter = ',', default_value = "70,15,15")]
    split: Vec<usize>,
    /// mp4 (H.264) or npy (float32 frames).
    #[arg(long, default_value = "mp4")]
    format: VideoFormat,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// `WxH` as `(W, H)`.
pub fn parse_frame_size(s: &str) -> Result<(usize, usize), String> {
    s.split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| format!("expected WxH, e.g. 171x128, got {s:?}"))
}

/// `vidlrp synth`.
pub fn run(a: Args) -> Result<crate::summary::Finished> {
    let spec = SynthSpec {
        classes: a.classes,
        videos: a.videos,
        frames: a.frames,
        test_frames: a.test_frames,
        width: a.size.0,
        height: a.size.1,
        fps: a.fps,
        seed: a.seed,
        title_share: a.title_share,
        distractors: a.distractors,
        split: <[usize; 3]>::try_from(a.split.as_slice())
            .map_err(|_| anyhow::anyhow!("--split takes three percentages, e.g. 70,15,15"))?,
        format: a.format,
        action_share: a.action_share,
    };
    write(&spec, &a.out)
}

/// Writes the data set `spec` describes into the new directory `out`, all at once.
pub fn write(spec: &SynthSpec, out: &Path) -> Result<crate::summary::Finished> {
    spec.check()?;
    if out.exists() {
        bail!(
            "{} exists; synth writes a new directory (remove it or choose another --out)",
            out.display()
        );
    }
    let mut outputs = vidlrp_io::Outputs::new();
    let staged = outputs.dir(out)?;
    let bar = crate::progress::bar("synth", spec.videos as u64, "videos");
    let summary = vidlrp_synth::write(spec, &staged, &mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    outputs.publish()?;
    Ok(crate::summary::Finished::summary(
        json!({"out": out, "videos": spec.videos, "train": summary.train, "val": summary.val, "test": summary.test,
               "classes": &vidlrp_synth::CLASS_NAMES[..spec.classes]}),
    ))
}
