//! Frame sources: video files, image directories, `.npy` arrays.

use std::path::{Path, PathBuf};

use crate::{Result, SnippetError};

/// One decoded frame: 8-bit RGB, interleaved, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `height * width * 3` bytes, `R, G, B` per pixel.
    pub data: Vec<u8>,
}

/// What a source holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Where it is.
    pub path: PathBuf,
    /// `video`, `images` or `npy`.
    pub kind: &'static str,
    /// Number of frames.
    pub frames: usize,
    /// Frames per second, where known.
    pub fps: Option<f64>,
    /// Frame width.
    pub width: usize,
    /// Frame height.
    pub height: usize,
}

/// A sequence of frames that can be read selectively.
pub trait FrameSource {
    /// Frame count, rate and size.
    fn info(&self) -> &SourceInfo;
    /// The frames at `indices` (ascending, repeats allowed), in that order. Only what is needed
    /// is decoded.
    fn read(&mut self, indices: &[usize]) -> Result<Vec<RgbFrame>>;
    /// Frames decoded so far (to check that seeking works).
    fn decoded_frames(&self) -> usize;
}

pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> SnippetError {
    SnippetError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The largest frame (width x height) a source may have by default: 8192 x 8192 pixels (an 8K
/// UHD frame is 33 million). A header can declare any size; decoding it would allocate that
/// much per frame.
pub const DEFAULT_MAX_FRAME_PIXELS: usize = 8192 * 8192;

/// The frame-size cap in force: `VIDLRP_MAX_FRAME_PIXELS` (a positive number of pixels) if
/// set, else [`DEFAULT_MAX_FRAME_PIXELS`].
pub fn max_frame_pixels() -> usize {
    std::env::var("VIDLRP_MAX_FRAME_PIXELS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_MAX_FRAME_PIXELS)
}

/// **Errors** if a `width x height` frame is empty or larger than [`max_frame_pixels`].
fn check_frame_size(path: &Path, width: usize, height: usize) -> Result<()> {
    let cap = max_frame_pixels();
    match width.checked_mul(height) {
        Some(0) => Err(invalid(
            path,
            format!("frames of {width}x{height} pixels are empty"),
        )),
        Some(n) if n <= cap => Ok(()),
        _ => Err(invalid(
            path,
            format!(
                "frames of {width}x{height} pixels are larger than the cap of {cap} pixels \
                 (set VIDLRP_MAX_FRAME_PIXELS to allow more)"
            ),
        )),
    }
}

/// Opens a frame source by what `path` is: a directory of images, a `.npy` array, or (with the
/// `video` feature) a video file. Frames larger than [`max_frame_pixels`] are refused from the
/// header, before any is decoded.
///
/// **Errors** on a missing path, an unreadable or corrupt source, and a source without frames.
pub fn open(path: &Path) -> Result<Box<dyn FrameSource>> {
    if !path.exists() {
        return Err(SnippetError::Open {
            path: path.to_path_buf(),
            message: "no such file or directory".into(),
        });
    }
    if path.is_dir() {
        return Ok(Box::new(ImageDir::open(path)?));
    }
    if path.extension().is_some_and(|e| e == "npy") {
        return Ok(Box::new(NpyFrames::open(path)?));
    }
    open_video(path)
}

#[cfg(feature = "video")]
fn open_video(path: &Path) -> Result<Box<dyn FrameSource>> {
    Ok(Box::new(video::VideoFile::open(path)?))
}

#[cfg(not(feature = "video"))]
fn open_video(path: &Path) -> Result<Box<dyn FrameSource>> {
    Err(invalid(path, "video files need the `video` feature of vidlrp-snippet (FFmpeg); use a directory of frames or an .npy array"))
}

/// A directory of PNG/JPEG frames, in file-name order.
pub struct ImageDir {
    info: SourceInfo,
    files: Vec<PathBuf>,
    decoded: usize,
}

impl ImageDir {
    /// Lists the directory and checks every file is an image of one size (headers only).
    pub fn open(dir: &Path) -> Result<Self> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| SnippetError::Open {
                path: dir.to_path_buf(),
                message: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(invalid(dir, "the directory holds no frames"));
        }
        let mut size = None;
        for f in &files {
            let ext = f
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if !["png", "jpg", "jpeg"].contains(&ext.as_str()) {
                return Err(invalid(
                    dir,
                    format!("{} is not a PNG or JPEG frame", f.display()),
                ));
            }
            let dims = image::image_dimensions(f).map_err(|e| {
                invalid(dir, format!("{} is not a readable image: {e}", f.display()))
            })?;
            match size {
                None => size = Some(dims),
                Some(s) if s != dims => {
                    return Err(invalid(
                        dir,
                        format!(
                            "frames differ in size: {} is {}x{} but {} is {}x{}",
                            files[0].display(),
                            s.0,
                            s.1,
                            f.display(),
                            dims.0,
                            dims.1
                        ),
                    ))
                }
                _ => {}
            }
        }
        let (w, h) = size.expect("non-empty");
        check_frame_size(dir, w as usize, h as usize)?;
        let info = SourceInfo {
            path: dir.to_path_buf(),
            kind: "images",
            frames: files.len(),
            fps: None,
            width: w as usize,
            height: h as usize,
        };
        Ok(Self {
            info,
            files,
            decoded: 0,
        })
    }
}

impl FrameSource for ImageDir {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    fn read(&mut self, indices: &[usize]) -> Result<Vec<RgbFrame>> {
        let mut out: Vec<RgbFrame> = Vec::with_capacity(indices.len());
        for (k, &i) in indices.iter().enumerate() {
            if k > 0 && indices[k - 1] == i {
                out.push(out[k - 1].clone());
                continue;
            }
            let f = self
                .files
                .get(i)
                .ok_or_else(|| invalid(&self.info.path, format!("frame {i} is out of range")))?;
            let img = image::open(f)
                .map_err(|e| invalid(&self.info.path, format!("{}: {e}", f.display())))?
                .to_rgb8();
            self.decoded += 1;
            out.push(RgbFrame {
                width: img.width() as usize,
                height: img.height() as usize,
                data: img.into_raw(),
            });
        }
        Ok(out)
    }
    fn decoded_frames(&self) -> usize {
        self.decoded
    }
}

/// Frames in an `.npy` array `(T, H, W, 3)`, RGB, `uint8` or float on 0..255.
pub struct NpyFrames {
    info: SourceInfo,
    frames: Vec<RgbFrame>,
    decoded: usize,
}

impl NpyFrames {
    /// Reads the whole array.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| SnippetError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let size = file.metadata().map_or(0, |m| m.len());
        let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
            .map_err(|e| invalid(path, format!("not a readable .npy file ({e})")))?;
        let declared = npy.shape().to_vec();
        if declared.len() != 4 || declared[3] != 3 || declared[..3].contains(&0) {
            return Err(invalid(
                path,
                format!("frames must have shape (T, H, W, 3), got {declared:?}"),
            ));
        }
        // Checked against the file's size before the reader reserves room for it all: a
        // header may declare any shape (at least one byte per value, uint8).
        let shape: Vec<usize> = declared
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect();
        let values = vidlrp_core::checked_len(&shape)
            .ok()
            .filter(|&n| (n as u64) <= size);
        if values.is_none() {
            return Err(invalid(
                path,
                format!(
                    "the header declares frames of shape {declared:?}, more than the file's \
                     {size} bytes hold; is it corrupt?"
                ),
            ));
        }
        check_frame_size(path, shape[2], shape[1])?;
        let bytes: Vec<u8> = match npy.dtype().descr().as_str() {
            "'|u1'" => npy.into_vec::<u8>(),
            "'<f4'" => npy.into_vec::<f32>().map(|v| {
                v.into_iter()
                    .map(|x| x.round().clamp(0.0, 255.0) as u8)
                    .collect()
            }),
            other => {
                return Err(invalid(
                    path,
                    format!("dtype {other} is not supported (uint8 or float32)"),
                ))
            }
        }
        .map_err(|e| {
            invalid(
                path,
                format!("cannot read the array ({e}); is it truncated?"),
            )
        })?;
        let (t, h, w) = (shape[0], shape[1], shape[2]);
        let frames = bytes
            .chunks(h * w * 3)
            .map(|c| RgbFrame {
                width: w,
                height: h,
                data: c.to_vec(),
            })
            .collect();
        let info = SourceInfo {
            path: path.to_path_buf(),
            kind: "npy",
            frames: t,
            fps: None,
            width: w,
            height: h,
        };
        Ok(Self {
            info,
            frames,
            decoded: 0,
        })
    }
}

impl FrameSource for NpyFrames {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    fn read(&mut self, indices: &[usize]) -> Result<Vec<RgbFrame>> {
        indices
            .iter()
            .map(|&i| {
                self.decoded += 1;
                self.frames
                    .get(i)
                    .cloned()
                    .ok_or_else(|| invalid(&self.info.path, format!("frame {i} is out of range")))
            })
            .collect()
    }
    fn decoded_frames(&self) -> usize {
        self.decoded
    }
}

#[cfg(feature = "video")]
mod video {
    use super::*;
    use video_rs::{Decoder, Location};

    /// A video file decoded through FFmpeg, with seeking.
    pub struct VideoFile {
        info: SourceInfo,
        decoder: Decoder,
        /// Timestamp of the first frame, in seconds.
        t0: f64,
        decoded: usize,
        /// Frames decoded since the decoder was (re)opened.
        since_open: usize,
    }

    fn ff(path: &Path, what: &str, e: impl std::fmt::Display) -> SnippetError {
        invalid(path, format!("{what}: {e}"))
    }

    impl VideoFile {
        /// Opens the file, reads its stream metadata and decodes the first frame.
        pub fn open(path: &Path) -> Result<Self> {
            video_rs::init().map_err(|e| ff(path, "cannot initialise FFmpeg", e))?;
            let mut decoder = Decoder::new(Location::File(path.to_path_buf())).map_err(|e| {
                ff(
                    path,
                    "cannot open as a video (corrupt file or unsupported container/codec)",
                    e,
                )
            })?;
            let (w, h) = decoder.size();
            super::check_frame_size(path, w as usize, h as usize)?;
            let fps = f64::from(decoder.frame_rate());
            if !(fps.is_finite() && fps > 0.0) {
                return Err(invalid(path, "the video stream reports no frame rate"));
            }
            let (t0, _) = decoder
                .decode()
                .map_err(|e| ff(path, "the video has no decodable frame", e))?;
            // The header's count, unless the stream's duration says fewer: an mp4 edit list can
            // leave its last packet (counted in the header) out of the decoded stream.
            let by_time = decoder
                .duration()
                .map_or(0, |d| (d.as_secs_f64() * fps).round() as usize);
            let mut frames = decoder.frames().unwrap_or(0) as usize;
            if frames == 0 || (by_time > 0 && by_time < frames) {
                frames = by_time;
            }
            if frames == 0 {
                return Err(invalid(path, "the video has no frames"));
            }
            let t0 = t0.as_secs_f64();
            decoder
                .seek_to_start()
                .map_err(|e| ff(path, "cannot rewind", e))?;
            let info = SourceInfo {
                path: path.to_path_buf(),
                kind: "video",
                frames,
                fps: Some(fps),
                width: w as usize,
                height: h as usize,
            };
            Ok(Self {
                info,
                decoder,
                t0,
                decoded: 1,
                since_open: 1,
            })
        }

        fn index_of(&self, secs: f64) -> usize {
            ((secs - self.t0) * self.info.fps.unwrap_or(1.0))
                .round()
                .max(0.0) as usize
        }

        /// Positions the decoder at or before frame `first`.
        fn seek_before(&mut self, first: usize) -> Result<()> {
            let fps = self.info.fps.unwrap_or(1.0);
            let ms = ((first as f64 / fps + self.t0) * 1000.0) as i64 - 1000;
            if ms <= 0 || self.decoder.seek(ms).is_err() {
                self.decoder
                    .seek_to_start()
                    .map_err(|e| ff(&self.info.path, "cannot rewind", e))?;
            }
            Ok(())
        }
    }

    impl FrameSource for VideoFile {
        fn info(&self) -> &SourceInfo {
            &self.info
        }

        fn read(&mut self, indices: &[usize]) -> Result<Vec<RgbFrame>> {
            match self.read_once(indices) {
                // Once FFmpeg has flushed the last frames out of the decoder it stays drained,
                // seeks included: a used decoder that ran dry is reopened and the read retried.
                Err(_) if self.since_open > 1 => {
                    let path = self.info.path.clone();
                    self.decoder = Decoder::new(Location::File(path.clone()))
                        .map_err(|e| ff(&path, "cannot reopen", e))?;
                    self.since_open = 0;
                    self.read_once(indices)
                }
                other => other,
            }
        }

        fn decoded_frames(&self) -> usize {
            self.decoded
        }
    }

    impl VideoFile {
        fn read_once(&mut self, indices: &[usize]) -> Result<Vec<RgbFrame>> {
            let Some(&first) = indices.first() else {
                return Ok(Vec::new());
            };
            let path = self.info.path.clone();
            self.seek_before(first)?;
            let mut out: Vec<RgbFrame> = Vec::with_capacity(indices.len());
            let mut k = 0;
            let mut rewound = false;
            let mut last_index = None;
            while k < indices.len() {
                let (ts, frame) = match self.decoder.decode() {
                    Ok(f) => f,
                    Err(e) => {
                        return Err(invalid(
                            &path,
                            format!(
                                "decoding stopped before frame {} ({e}); the video is damaged or shorter than its header says ({} frames)",
                                indices[k], self.info.frames
                            ),
                        ))
                    }
                };
                self.decoded += 1;
                self.since_open += 1;
                // A frame without a usable timestamp follows the previous one.
                let secs = ts.as_secs_f64();
                let idx = match last_index {
                    Some(l) if !(secs.is_finite() && secs >= self.t0) => l + 1,
                    _ => self.index_of(secs),
                };
                if out.is_empty() && idx > indices[k] && !rewound {
                    // The seek landed past the frame we need: start over from the beginning.
                    self.decoder
                        .seek_to_start()
                        .map_err(|e| ff(&path, "cannot rewind", e))?;
                    rewound = true;
                    continue;
                }
                if last_index.is_some_and(|l| idx <= l) {
                    continue;
                }
                last_index = Some(idx);
                if indices[k] > idx {
                    // Not wanted (a step skips it): decoded only to reach the next one.
                    continue;
                }
                let (h, w, _) = frame.dim();
                let data = match frame.as_slice() {
                    Some(bytes) => bytes.to_vec(),
                    None => frame.iter().copied().collect(),
                };
                let rgb = RgbFrame {
                    width: w,
                    height: h,
                    data,
                };
                while k < indices.len() && indices[k] <= idx {
                    out.push(rgb.clone());
                    k += 1;
                }
            }
            Ok(out)
        }
    }
}

/// A source whose frames are read ahead once, in one pass, for several snippets of the same
/// video: the conditions of a data-set run read from memory instead of seeking and decoding
/// again. Frames not read ahead come from the inner source as before.
pub struct Prefetched {
    inner: Box<dyn FrameSource>,
    frames: std::collections::BTreeMap<usize, RgbFrame>,
}

impl Prefetched {
    /// Wraps `inner` and reads the frames at `indices` (any order, repeats allowed) in one
    /// pass, unless they would take more than `max_bytes`: then nothing is read ahead.
    ///
    /// **Errors** if reading fails (a damaged video: the caller can fall back to `inner`'s own
    /// reads, which then report the frame they stopped at).
    pub fn new(inner: Box<dyn FrameSource>, indices: &[usize], max_bytes: usize) -> Result<Self> {
        let mut wanted: Vec<usize> = indices.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let info = inner.info();
        let bytes = wanted.len() * info.width * info.height * 3;
        let mut me = Self {
            inner,
            frames: Default::default(),
        };
        if !wanted.is_empty() && bytes <= max_bytes {
            let got = me.inner.read(&wanted)?;
            me.frames = wanted.into_iter().zip(got).collect();
        }
        Ok(me)
    }

    /// The frames held in memory.
    pub fn held(&self) -> usize {
        self.frames.len()
    }
}

impl FrameSource for Prefetched {
    fn info(&self) -> &SourceInfo {
        self.inner.info()
    }

    fn read(&mut self, indices: &[usize]) -> Result<Vec<RgbFrame>> {
        let mut missing: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|i| !self.frames.contains_key(i))
            .collect();
        missing.dedup();
        let mut fetched = std::collections::BTreeMap::new();
        if !missing.is_empty() {
            fetched.extend(missing.iter().copied().zip(self.inner.read(&missing)?));
        }
        Ok(indices
            .iter()
            .map(|i| {
                self.frames
                    .get(i)
                    .or_else(|| fetched.get(i))
                    .cloned()
                    .expect("every index was read")
            })
            .collect())
    }

    fn decoded_frames(&self) -> usize {
        self.inner.decoded_frames()
    }
}
