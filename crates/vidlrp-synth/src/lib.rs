//! vidlrp-synth: synthetic videos whose class is a motion, for training C3D-shaped models on
//! random snippets as the paper's model was trained.
//!
//! Every frame of every class shows the same scene grammar: a textured background moved by a
//! camera pan, one oriented bar (the "athlete"), distractor discs on random paths, noise.
//! The class is only in how the bar moves over time ([`CLASS_NAMES`], up to 24):
//!
//! | classes | motion of the bar |
//! |---|---|
//! | rightward, leftward, downward, upward, and the four diagonals | translation at 0.6-1.6 px/frame, wrapping at the edges |
//! | the same eight directions, "fast" | translation at 2.6-3.6 px/frame |
//! | expanding, contracting | length and width grow (shrink) as a sawtooth of period 20-40 frames |
//! | clockwise, counter-clockwise | rotation at 3-7 degrees per frame |
//! | horizontal, vertical oscillation | back and forth by 12 % of the frame, period 10-20 frames |
//! | pulsing, wobbling | size (angle) swinging with period 10-20 frames |
//!
//! A share of the videos ([`SynthSpec::title_share`]) open with a static title card of 8-32
//! frames that carries no class information. With [`SynthSpec::action_share`] `P < 1` the
//! class motion happens in bursts of 8-24 frames that cover about the share `P` of a video's
//! frames; between bursts the bar rests, so a random 16-frame snippet may miss the evidence
//! or hold only part of it, as the video-level labels of Sports-1M do.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vidlrp_rng::Rng;
use vidlrp_snippet::RgbFrame;

/// The classes in label order; a data set of `K` classes uses the first `K`.
pub const CLASS_NAMES: [&str; 24] = [
    "rightward",
    "leftward",
    "downward",
    "upward",
    "expanding",
    "contracting",
    "clockwise",
    "counter-clockwise",
    "down-right",
    "down-left",
    "up-right",
    "up-left",
    "fast rightward",
    "fast leftward",
    "fast downward",
    "fast upward",
    "fast down-right",
    "fast down-left",
    "fast up-right",
    "fast up-left",
    "horizontal oscillation",
    "vertical oscillation",
    "pulsing",
    "wobbling",
];

/// How the bar of a class moves, as a function of the active time `tau` (frames of class
/// motion so far).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Motion {
    /// Translation by `(dx, dy)` per frame, in units of the video's speed; `fast` adds 2
    /// px/frame.
    Translate { dx: f64, dy: f64, fast: bool },
    /// Length and width on a sawtooth, growing or shrinking.
    Scale { grow: bool },
    /// Rotation, `+1` clockwise.
    Rotate { sense: f64 },
    /// Back and forth along `(dx, dy)`.
    Oscillate { dx: f64, dy: f64 },
    /// Size swinging.
    Pulse,
    /// Angle swinging.
    Wobble,
}

/// The motion of class `label`.
fn motion(label: usize) -> Motion {
    let d = std::f64::consts::FRAC_1_SQRT_2;
    // The eight directions in the order of CLASS_NAMES' translations (y grows downwards).
    const DIRS: [(f64, f64); 8] = [
        (1.0, 0.0),
        (-1.0, 0.0),
        (0.0, 1.0),
        (0.0, -1.0),
        (1.0, 1.0),
        (-1.0, 1.0),
        (1.0, -1.0),
        (-1.0, -1.0),
    ];
    let dir = |i: usize| {
        let (x, y) = DIRS[i];
        let k = if x != 0.0 && y != 0.0 { d } else { 1.0 };
        (x * k, y * k)
    };
    match label {
        0..=3 | 8..=11 => {
            let (dx, dy) = dir(if label < 4 { label } else { label - 4 });
            Motion::Translate {
                dx,
                dy,
                fast: false,
            }
        }
        4 | 5 => Motion::Scale { grow: label == 4 },
        6 | 7 => Motion::Rotate {
            sense: if label == 6 { 1.0 } else { -1.0 },
        },
        12..=19 => {
            let (dx, dy) = dir(label - 12);
            Motion::Translate { dx, dy, fast: true }
        }
        20 => Motion::Oscillate { dx: 1.0, dy: 0.0 },
        21 => Motion::Oscillate { dx: 0.0, dy: 1.0 },
        22 => Motion::Pulse,
        _ => Motion::Wobble,
    }
}

/// The safetensors metadata key under which `vidlrp train` records the [`SynthSpec`] (JSON) of
/// the synthetic data set a model was trained on, so its videos can be regenerated.
pub const SPEC_KEY: &str = "vidlrp.synth";

/// How videos are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VideoFormat {
    /// H.264 in mp4 (needs the `video` feature).
    Mp4,
    /// Frames as a float32 `.npy` of shape `(T, H, W, 3)` on 0..255.
    Npy,
}

impl std::str::FromStr for VideoFormat {
    type Err = String;
    /// `mp4` or `npy`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mp4" => Ok(VideoFormat::Mp4),
            "npy" => Ok(VideoFormat::Npy),
            f => Err(format!("unknown video format {f:?} (expected mp4 or npy)")),
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthSpec {
    /// Number of classes, 2..=8.
    pub classes: usize,
    /// Number of videos (split 70/15/15 per class into train, validation, test).
    pub videos: usize,
    /// Frames per video of the training and validation splits.
    pub frames: usize,
    /// Frames per test video (`None`: `frames`). Longer test videos let the analysis sweep
    /// large steps and offsets while training videos stay cheap to make.
    pub test_frames: Option<usize>,
    /// Frame width (even).
    pub width: usize,
    /// Frame height (even).
    pub height: usize,
    /// Frames per second written into the files.
    pub fps: usize,
    /// The seed: the same seed gives the same frames.
    pub seed: u64,
    /// Share of videos that open with a title card.
    pub title_share: f64,
    /// Distractor discs per video (0..=4).
    pub distractors: usize,
    /// Percentages of each class's videos for training, validation and test (sum 100; each
    /// split gets at least one video per class).
    pub split: [usize; 3],
    /// Storage format.
    pub format: VideoFormat,
    /// Share of each video's frames (after a title card) in which the class motion happens,
    /// in bursts of 8-24 frames; in `(0, 1]`, 1: every frame (data sets written before this
    /// setting read as 1).
    #[serde(default = "share_one")]
    pub action_share: f64,
}

fn share_one() -> f64 {
    1.0
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// A parameter is out of range.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system error.
        cause: std::io::Error,
    },
    /// Writing a video or an array failed.
    #[error(transparent)]
    Write(#[from] Box<dyn std::error::Error + Send + Sync>),
}

/// Result alias of this crate.
pub type Result<T, E = SynthError> = std::result::Result<T, E>;

impl vidlrp_io::Versioned for Description {
    const FORMAT: u32 = DESCRIPTION_FORMAT;
    const WHAT: &'static str = "synthetic data set's description";
    /// `synth.json` before it named its format.
    const UNVERSIONED: Option<u32> = Some(1);
}

impl SynthSpec {
    /// The frames of a video of `split` (`train`, `val` or `test`).
    pub fn frames_of(&self, split: &str) -> usize {
        match (split, self.test_frames) {
            ("test", Some(t)) => t,
            _ => self.frames,
        }
    }

    /// Checks the parameters.
    ///
    /// **Errors** naming the first value out of range.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(SynthError::Invalid(m));
        if !(2..=CLASS_NAMES.len()).contains(&self.classes) {
            return bad(format!(
                "classes must be 2..={}, got {}",
                CLASS_NAMES.len(),
                self.classes
            ));
        }
        if !(self.action_share > 0.0 && self.action_share <= 1.0) {
            return bad(format!(
                "the action share must be in (0, 1], got {}",
                self.action_share
            ));
        }
        if self.videos < 3 * self.classes {
            return bad(format!(
                "{} videos for {} classes: at least 3 per class are needed for the train, \
                 validation and test splits",
                self.videos, self.classes
            ));
        }
        if self.frames < 16 || self.test_frames.is_some_and(|t| t < 16) {
            return bad(format!(
                "videos need at least 16 frames, got {}",
                self.frames.min(self.test_frames.unwrap_or(self.frames))
            ));
        }
        if self.split.iter().sum::<usize>() != 100 || self.split.contains(&0) {
            return bad(format!(
                "the split must be three positive percentages summing to 100, got {:?}",
                self.split
            ));
        }
        if self.distractors > 4 {
            return bad(format!("at most 4 distractors, got {}", self.distractors));
        }
        if self.width < 32 || self.height < 32 || self.width % 2 == 1 || self.height % 2 == 1 {
            return bad(format!(
                "frames must be even-sized and at least 32x32, got {}x{}",
                self.width, self.height
            ));
        }
        if !(0.0..=1.0).contains(&self.title_share) || self.fps == 0 {
            return bad("title share must be in 0..=1 and fps positive".into());
        }
        Ok(())
    }
}

/// One generated video's description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    /// File name inside the data set directory.
    pub path: String,
    /// Class index.
    pub label: usize,
    /// Frames of title card at the start (0: none).
    pub title_frames: usize,
    /// `train`, `val` or `test`.
    pub split: String,
}

/// What [`write()`] produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Videos in the training split.
    pub train: usize,
    /// Videos in the validation split.
    pub val: usize,
    /// Videos in the test split.
    pub test: usize,
    /// Every video.
    pub videos: Vec<VideoInfo>,
}

/// A small deterministic generator of the scene parameters (uniform in `[lo, hi)`).
struct Draw(Rng);

impl Draw {
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.0.uniform()
    }
    fn colour(&mut self) -> [f64; 3] {
        [
            self.range(0.0, 255.0),
            self.range(0.0, 255.0),
            self.range(0.0, 255.0),
        ]
    }
}

/// The scene of one video, drawn from its seed.
struct Scene {
    label: usize,
    w: f64,
    h: f64,
    waves: Vec<([f64; 2], f64, [f64; 3])>,
    pan: [f64; 2],
    bar: Bar,
    discs: Vec<Disc>,
    noise: f64,
    title: usize,
    title_colour: [f64; 3],
    /// Active time before each frame after the title card (`None`: the motion never stops).
    active: Option<Vec<f64>>,
}

/// A distractor: start, velocity (px/frame), radius, colour.
type Disc = ([f64; 2], [f64; 2], f64, [f64; 3]);

struct Bar {
    centre: [f64; 2],
    length: f64,
    width: f64,
    angle: f64,
    speed: f64,
    period: f64,
    colour: [f64; 3],
}

fn wrap(v: f64, n: f64) -> f64 {
    v.rem_euclid(n)
}

impl Scene {
    fn new(spec: &SynthSpec, index: usize, label: usize, frames: usize) -> Self {
        let mut d = Draw(Rng::new(
            spec.seed
                .wrapping_mul(vidlrp_rng::GOLDEN_GAMMA)
                .wrapping_add(index as u64),
        ));
        let (w, h) = (spec.width as f64, spec.height as f64);
        let s = w.min(h);
        let waves = (0..3)
            .map(|_| {
                let f = d.range(0.02, 0.12);
                let theta = d.range(0.0, std::f64::consts::TAU);
                (
                    [f * theta.cos(), f * theta.sin()],
                    d.range(0.0, 6.3),
                    d.colour(),
                )
            })
            .collect();
        let pan = [d.range(-0.8, 0.8), d.range(-0.5, 0.5)];
        // Every class makes the same draws in the same order, so the scene of video `index`
        // is the same for every class: only the motion differs.
        let centre = [d.range(0.2, 0.8) * w, d.range(0.2, 0.8) * h];
        let (length, width) = (d.range(0.3, 0.45) * s, d.range(0.1, 0.15) * s);
        let angle = d.range(0.0, std::f64::consts::PI);
        let (linear, angular) = (d.range(0.6, 1.6), d.range(3.0, 7.0).to_radians());
        let bar = Bar {
            centre,
            length,
            width,
            angle,
            speed: match motion(label) {
                Motion::Translate { fast: false, .. } => linear,
                Motion::Translate { fast: true, .. } => linear + 2.0,
                Motion::Rotate { .. } => angular,
                _ => 0.0,
            },
            period: d.range(20.0, 40.0),
            colour: {
                // Clearly brighter or darker than the background (grey 96 +- 32 per channel).
                let bright = d.0.uniform() < 0.5;
                let c = [d.range(0.0, 64.0), d.range(0.0, 64.0), d.range(0.0, 64.0)];
                c.map(|v| if bright { 191.0 + v } else { v / 2.0 })
            },
        };
        let discs = (0..spec.distractors)
            .map(|_| {
                let a = d.range(0.0, std::f64::consts::TAU);
                let v = d.range(0.3, 1.5);
                (
                    [d.range(0.0, w), d.range(0.0, h)],
                    [v * a.cos(), v * a.sin()],
                    d.range(0.03, 0.07) * s,
                    d.colour(),
                )
            })
            .collect();
        let title = if d.0.uniform() < spec.title_share {
            (d.range(8.0, 33.0) as usize).min(frames - 16)
        } else {
            0
        };
        let noise = d.range(4.0, 12.0);
        let title_colour = d.colour();
        // Drawn after everything else, so the scenes of data sets without bursts are unchanged.
        let active = (spec.action_share < 1.0).then(|| bursts(&mut d, spec.action_share, frames));
        Self {
            label,
            w,
            h,
            waves,
            pan,
            bar,
            discs,
            noise,
            title,
            title_colour,
            active,
        }
    }

    /// The bar's centre, half-extents and angle at frame `t` (counted after the title card).
    fn bar_at(&self, t: usize) -> ([f64; 2], f64, f64, f64) {
        let b = &self.bar;
        // The class motion advances only in active frames.
        let t = self
            .active
            .as_ref()
            .map_or(t as f64, |a| a[t.min(a.len() - 1)]);
        let (half_l, half_w) = (b.length / 2.0, b.width / 2.0);
        let swing = (std::f64::consts::TAU * t / (b.period / 2.0)).sin();
        let s = self.w.min(self.h);
        match motion(self.label) {
            Motion::Translate { dx, dy, .. } => {
                let c = [
                    wrap(b.centre[0] + dx * b.speed * t, self.w),
                    wrap(b.centre[1] + dy * b.speed * t, self.h),
                ];
                (c, half_l, half_w, b.angle)
            }
            Motion::Scale { grow } => {
                let phase = (t / b.period).fract();
                let k = 0.45 + 1.1 * if grow { phase } else { 1.0 - phase };
                (b.centre, k * half_l, k * half_w, b.angle)
            }
            Motion::Rotate { sense } => (b.centre, half_l, half_w, b.angle + sense * b.speed * t),
            Motion::Oscillate { dx, dy } => {
                let a = 0.12 * s * swing;
                let c = [
                    wrap(b.centre[0] + dx * a, self.w),
                    wrap(b.centre[1] + dy * a, self.h),
                ];
                (c, half_l, half_w, b.angle)
            }
            Motion::Pulse => {
                let k = 1.0 + 0.35 * swing;
                (b.centre, k * half_l, k * half_w, b.angle)
            }
            Motion::Wobble => (b.centre, half_l, half_w, b.angle + 0.45 * swing),
        }
    }

    fn render(&self, t: usize, noise: &mut Draw) -> RgbFrame {
        let (w, h) = (self.w as usize, self.h as usize);
        let mut data = Vec::with_capacity(w * h * 3);
        if t < self.title {
            // A static card: a plain colour with lighter "text" blocks, the same every frame.
            for y in 0..h {
                for x in 0..w {
                    let text = (y / 6) % 4 == 1 && (x / 5) % 3 != 2 && x > w / 6 && x < 5 * w / 6;
                    let c = self.title_colour.map(|v| if text { 255.0 - v } else { v });
                    data.extend(c.map(|v| v.clamp(0.0, 255.0) as u8));
                }
            }
            return RgbFrame {
                width: w,
                height: h,
                data,
            };
        }
        let tt = (t - self.title) as f64;
        let (centre, half_l, half_w, angle) = self.bar_at(t - self.title);
        let (ca, sa) = (angle.cos(), angle.sin());
        let discs: Vec<([f64; 2], f64, [f64; 3])> = self
            .discs
            .iter()
            .map(|(p, v, r, c)| {
                (
                    [
                        wrap(p[0] + v[0] * tt, self.w),
                        wrap(p[1] + v[1] * tt, self.h),
                    ],
                    *r,
                    *c,
                )
            })
            .collect();
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f64, y as f64);
                let (bx, by) = (fx + self.pan[0] * tt, fy + self.pan[1] * tt);
                let mut c = [96.0f64; 3];
                for (k, phase, col) in &self.waves {
                    let s = (k[0] * bx + k[1] * by + phase).sin();
                    for i in 0..3 {
                        c[i] += s * (col[i] - 128.0) * 0.25;
                    }
                }
                for (p, r, col) in &discs {
                    let dx = (fx - p[0] + self.w / 2.0).rem_euclid(self.w) - self.w / 2.0;
                    let dy = (fy - p[1] + self.h / 2.0).rem_euclid(self.h) - self.h / 2.0;
                    if dx * dx + dy * dy <= r * r {
                        c = *col;
                    }
                }
                // The bar, on a torus so a bar crossing an edge reappears on the other side.
                let dx = (fx - centre[0] + self.w / 2.0).rem_euclid(self.w) - self.w / 2.0;
                let dy = (fy - centre[1] + self.h / 2.0).rem_euclid(self.h) - self.h / 2.0;
                let (u, v) = (dx * ca + dy * sa, -dx * sa + dy * ca);
                if u.abs() <= half_l && v.abs() <= half_w {
                    c = self.bar.colour;
                }
                for v in c {
                    let n = noise.range(-self.noise, self.noise);
                    data.push((v + n).clamp(0.0, 255.0) as u8);
                }
            }
        }
        RgbFrame {
            width: w,
            height: h,
            data,
        }
    }
}

/// The active time before each of `frames` frames when the class motion happens in bursts
/// covering about the share `p` of them: bursts of 8-24 frames, rests between them of
/// `(1 - p) / p` times a burst's mean length (0.5-1.5 times that), the first segment a burst
/// with probability `p`. Frame `t`'s entry counts the active frames before it.
fn bursts(d: &mut Draw, p: f64, frames: usize) -> Vec<f64> {
    let mut active = Vec::with_capacity(frames);
    let mut moving = d.0.uniform() < p;
    let mut done = 0.0;
    while active.len() < frames {
        let len = if moving {
            d.range(8.0, 25.0)
        } else {
            d.range(0.5, 1.5) * 16.0 * (1.0 - p) / p
        }
        .round()
        .max(1.0) as usize;
        for _ in 0..len.min(frames - active.len()) {
            active.push(done);
            if moving {
                done += 1.0;
            }
        }
        moving = !moving;
    }
    active
}

/// The `frames` frames of video `index` of class `label`, and its title-card length.
///
/// ```
/// use vidlrp_synth::{render, SynthSpec, VideoFormat};
/// let spec = SynthSpec { classes: 4, videos: 12, frames: 20, test_frames: None, width: 48,
///     height: 32, fps: 25, seed: 3, title_share: 0.0, distractors: 2, split: [70, 15, 15],
///     format: VideoFormat::Npy, action_share: 1.0 };
/// let (frames, title) = render(&spec, 5, 1, 20);
/// assert_eq!((frames.len(), title), (20, 0));
/// assert_eq!(frames, render(&spec, 5, 1, 20).0); // the same seed, the same frames
/// ```
pub fn render(
    spec: &SynthSpec,
    index: usize,
    label: usize,
    frames: usize,
) -> (Vec<RgbFrame>, usize) {
    let scene = Scene::new(spec, index, label, frames);
    let mut noise = Draw(Rng::new(
        spec.seed ^ (index as u64).wrapping_mul(0x2545_f491),
    ));
    let frames = (0..frames).map(|t| scene.render(t, &mut noise)).collect();
    (frames, scene.title)
}

/// The split (`train`, `val` or `test`) of video `index` of a data set made with `spec`.
///
/// ```
/// use vidlrp_synth::{split_of, SynthSpec, VideoFormat};
/// let spec = SynthSpec { classes: 4, videos: 40, frames: 20, test_frames: None, width: 48,
///     height: 32, fps: 25, seed: 3, title_share: 0.0, distractors: 1, split: [70, 15, 15],
///     format: VideoFormat::Npy, action_share: 1.0 };
/// assert_eq!(split_of(&spec, 0), "train");
/// assert_eq!(split_of(&spec, 39), "test");
/// ```
pub fn split_of(spec: &SynthSpec, index: usize) -> &'static str {
    let label = index % spec.classes;
    let n = (0..spec.videos)
        .filter(|i| i % spec.classes == label)
        .count();
    split(index / spec.classes, n, spec.split)
}

/// The split of the `i`-th video of a class with `n` videos under the percentages `shares`
/// (train, validation, test; validation and test rounded up, each at least one).
fn split(i: usize, n: usize, shares: [usize; 3]) -> &'static str {
    let test = (n * shares[2]).div_ceil(100).max(1);
    let val = (n * shares[1]).div_ceil(100).max(1);
    if i < n - val - test {
        "train"
    } else if i < n - test {
        "val"
    } else {
        "test"
    }
}

/// Writes one video's frames as `spec.format`.
fn write_frames(spec: &SynthSpec, path: &Path, frames: &[RgbFrame]) -> Result<()> {
    match spec.format {
        #[cfg(feature = "video")]
        VideoFormat::Mp4 => vidlrp_snippet::write_video(path, frames, spec.fps, 8)
            .map_err(|e| SynthError::Write(Box::new(e))),
        #[cfg(not(feature = "video"))]
        VideoFormat::Mp4 => Err(SynthError::Invalid(
            "mp4 needs the `video` feature (FFmpeg); write .npy frames instead".into(),
        )),
        VideoFormat::Npy => {
            let (h, w) = (spec.height, spec.width);
            let data = frames
                .iter()
                .flat_map(|f| f.data.iter().map(|&v| f32::from(v)))
                .collect();
            let t = vidlrp_core::HostTensor::new(vec![frames.len(), h, w, 3], data)
                .map_err(|e| SynthError::Write(Box::new(e)))?;
            vidlrp_io::write_npy(path, &t).map_err(|e| SynthError::Write(Box::new(e)))
        }
    }
}

/// Writes the data set into `dir`: `videos/NNNN.mp4` (or `.npy`), `train.csv`, `val.csv`,
/// `test.csv` (`path,label`, paths relative to `dir`), `labels.txt` and `synth.json` (the
/// spec and every video's label, split and title-card length). `progress(done, total)` is
/// called after each video.
///
/// **Errors** on invalid parameters and on write failures.
pub fn write(
    spec: &SynthSpec,
    dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Summary> {
    spec.check()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| SynthError::Io { path, cause }
    };
    std::fs::create_dir_all(dir.join("videos")).map_err(io(dir))?;
    let per_class: Vec<usize> = (0..spec.classes)
        .map(|c| (0..spec.videos).filter(|i| i % spec.classes == c).count())
        .collect();
    let ext = match spec.format {
        VideoFormat::Mp4 => "mp4",
        VideoFormat::Npy => "npy",
    };
    // Videos are independent: rendered and written in parallel, in chunks so that progress is
    // reported as they finish; each file's bytes depend only on the spec and its index.
    let one = |i: usize| -> Result<VideoInfo> {
        let label = i % spec.classes;
        let split = split(i / spec.classes, per_class[label], spec.split);
        let (frames, title) = render(spec, i, label, spec.frames_of(split));
        let name = format!("videos/{i:05}.{ext}");
        write_frames(spec, &dir.join(&name), &frames)?;
        Ok(VideoInfo {
            path: name,
            label,
            title_frames: title,
            split: split.to_string(),
        })
    };
    let mut videos = Vec::with_capacity(spec.videos);
    let chunk = 2 * rayon::current_num_threads().max(1);
    for start in (0..spec.videos).step_by(chunk) {
        use rayon::prelude::*;
        let end = (start + chunk).min(spec.videos);
        let done: Vec<Result<VideoInfo>> = (start..end).into_par_iter().map(one).collect();
        for v in done {
            videos.push(v?);
        }
        progress(end, spec.videos);
    }
    for s in ["train", "val", "test"] {
        let mut csv = String::from("path,label\n");
        for v in videos.iter().filter(|v| v.split == s) {
            csv += &format!("{},{}\n", v.path, v.label);
        }
        let p = dir.join(format!("{s}.csv"));
        std::fs::write(&p, csv).map_err(io(&p))?;
    }
    let labels: String = CLASS_NAMES[..spec.classes]
        .iter()
        .map(|n| format!("{n}\n"))
        .collect();
    std::fs::write(dir.join("labels.txt"), labels).map_err(io(&dir.join("labels.txt")))?;
    let count = |s: &str| videos.iter().filter(|v| v.split == s).count();
    let summary = Summary {
        train: count("train"),
        val: count("val"),
        test: count("test"),
        videos,
    };
    let description = Description {
        format: DESCRIPTION_FORMAT,
        spec: spec.clone(),
        classes: CLASS_NAMES[..spec.classes]
            .iter()
            .map(ToString::to_string)
            .collect(),
        summary,
    };
    let json = serde_json::to_string_pretty(&description).expect("a description serialises");
    let path = dir.join(DESCRIPTION_FILE);
    std::fs::write(&path, format!("{json}\n")).map_err(io(&path))?;
    Ok(description.summary)
}

/// The file in a data set's directory that describes it ([`Description`]).
pub const DESCRIPTION_FILE: &str = "synth.json";
/// The version of [`Description`]'s layout.
pub const DESCRIPTION_FORMAT: u32 = 1;

/// A synthetic data set's description, `synth.json`: the spec that regenerates it, the class
/// names and every video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// [`DESCRIPTION_FORMAT`] (files written before it was recorded read as format 1).
    #[serde(default = "format_one")]
    pub format: u32,
    /// What was generated.
    pub spec: SynthSpec,
    /// The class names, in label order.
    pub classes: Vec<String>,
    /// The splits and every video.
    pub summary: Summary,
}

fn format_one() -> u32 {
    1
}

impl Description {
    /// The description of the data set in `dir`, if `dir` holds one.
    ///
    /// **Errors** if `dir/synth.json` exists but cannot be read as a description.
    pub fn find(dir: &Path) -> Result<Option<Self>> {
        if dir.join(DESCRIPTION_FILE).is_file() {
            Self::read(dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The spec as the model metadata value under [`SPEC_KEY`]: compact JSON, keys sorted.
    pub fn spec_metadata(&self) -> String {
        serde_json::to_value(&self.spec)
            .expect("a spec serialises")
            .to_string()
    }

    /// Reads `dir/synth.json`.
    ///
    /// **Errors** if it cannot be read, is not a description, or is of another format.
    pub fn read(dir: &Path) -> Result<Self> {
        vidlrp_io::read_versioned(&dir.join(DESCRIPTION_FILE)).map_err(|e| match e {
            vidlrp_io::IoError::Io { path, cause } => SynthError::Io { path, cause },
            other => SynthError::Invalid(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_cover_the_share_and_leave_snippets_without_motion() {
        for p in [0.25, 0.5, 0.75] {
            let mut d = Draw(Rng::new(5));
            let a = bursts(&mut d, p, 20_000);
            assert_eq!(a.len(), 20_000);
            // The active time starts at 0 and grows by 0 or 1 per frame.
            assert_eq!(a[0], 0.0);
            assert!(a
                .windows(2)
                .all(|w| w[1] - w[0] == 0.0 || w[1] - w[0] == 1.0));
            let share = a[a.len() - 1] / a.len() as f64;
            assert!((share - p).abs() < 0.05, "share {share} for {p}");
            // Some 16-frame snippets show the class motion throughout, others only in part,
            // and with rests as long as bursts (p <= 1/2) some show none at all.
            let moved = |t: usize| a[t + 15] - a[t];
            let windows = 0..a.len() - 16;
            let still = windows.clone().filter(|&t| moved(t) == 0.0).count();
            let partly = windows
                .clone()
                .filter(|&t| (1.0..15.0).contains(&moved(t)))
                .count();
            let moving = windows.filter(|&t| moved(t) == 15.0).count();
            assert!(
                partly > 0 && moving > 0,
                "p {p}: partly {partly}, moving {moving}"
            );
            assert_eq!(
                still > 0,
                p <= 0.5,
                "p {p}: {still} snippets without motion"
            );
        }
    }

    #[test]
    fn the_first_eight_classes_move_as_before() {
        // The motions that data sets of up to 8 classes were made with, unchanged.
        assert_eq!(
            motion(0),
            Motion::Translate {
                dx: 1.0,
                dy: 0.0,
                fast: false
            }
        );
        assert_eq!(
            motion(3),
            Motion::Translate {
                dx: 0.0,
                dy: -1.0,
                fast: false
            }
        );
        assert_eq!(motion(5), Motion::Scale { grow: false });
        assert_eq!(motion(7), Motion::Rotate { sense: -1.0 });
        assert_eq!(CLASS_NAMES.len(), 24);
    }
}
