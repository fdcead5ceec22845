//! Training data: labelled videos, the in-memory frame cache and batches of snippets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vidlrp_core::HostTensor;
use vidlrp_rng::Rng;
use vidlrp_snippet::{FrameSource, Prefetched, Preprocess, ShortPolicy, SnippetError, SnippetSpec};

use crate::Result;

/// A labelled video: its path and class index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledVideo {
    /// The video (any source `vidlrp_snippet::open` reads).
    pub path: PathBuf,
    /// Its class.
    pub label: usize,
}

/// The videos a model is trained on, validated on after each epoch and tested on once.
#[derive(Debug, Clone, Default)]
pub struct TrainData {
    /// Training videos.
    pub train: Vec<LabelledVideo>,
    /// Validation videos (may be empty).
    pub val: Vec<LabelledVideo>,
    /// Held-out test videos, evaluated after the last epoch.
    pub test: Option<Vec<LabelledVideo>>,
    /// Number of classes.
    pub classes: usize,
}

impl TrainData {
    /// The data of labelled `(path, class)` lists; `classes` defaults to the largest training
    /// label + 1.
    pub fn new(
        train: Vec<(PathBuf, usize)>,
        val: Vec<(PathBuf, usize)>,
        test: Option<Vec<(PathBuf, usize)>>,
        classes: Option<usize>,
    ) -> Self {
        let videos = |v: Vec<(PathBuf, usize)>| -> Vec<LabelledVideo> {
            v.into_iter()
                .map(|(path, label)| LabelledVideo { path, label })
                .collect()
        };
        let largest = train.iter().map(|v| v.1 + 1).max().unwrap_or(0);
        Self {
            train: videos(train),
            val: videos(val),
            test: test.map(videos),
            classes: classes.unwrap_or(largest),
        }
    }
}

/// Decoded videos kept in memory across epochs: each video is read ahead whole, once, while
/// the budget lasts (the same frames a seek-and-decode gives); past it, snippets are decoded
/// from the file each time.
pub(crate) struct FrameCache {
    videos: HashMap<PathBuf, Prefetched>,
    bytes: usize,
    limit: usize,
}

/// A video's frames: from the cache, or from the file.
enum CachedOrOpen<'a> {
    Cached(&'a mut Prefetched),
    Open(Box<dyn FrameSource>),
}

impl CachedOrOpen<'_> {
    fn get(&mut self) -> &mut dyn FrameSource {
        match self {
            CachedOrOpen::Cached(p) => *p,
            CachedOrOpen::Open(s) => s.as_mut(),
        }
    }
}

impl FrameCache {
    /// An empty cache holding up to `limit_mb` MiB of decoded frames.
    pub(crate) fn new(limit_mb: usize) -> Self {
        Self {
            videos: HashMap::new(),
            bytes: 0,
            limit: limit_mb << 20,
        }
    }

    /// The source of `video`: held in memory if it is or now fits, else opened afresh.
    fn source(&mut self, video: &Path) -> Result<CachedOrOpen<'_>, SnippetError> {
        if !self.videos.contains_key(video) {
            let src = vidlrp_snippet::open(video)?;
            let info = src.info();
            let size = info.width * info.height * 3 * info.frames;
            if self.bytes + size > self.limit {
                return Ok(CachedOrOpen::Open(src));
            }
            let all: Vec<usize> = (0..info.frames).collect();
            let held = Prefetched::new(src, &all, size)?;
            self.bytes += size;
            self.videos.insert(video.to_path_buf(), held);
        }
        Ok(CachedOrOpen::Cached(
            self.videos.get_mut(video).expect("inserted above"),
        ))
    }
}

/// How snippets are cut from a video.
pub(crate) struct Cutter<'a> {
    /// The preset (resize, crop, mean) of the network's input.
    pub preset: &'a Preprocess,
    /// Frames per snippet.
    pub frames: usize,
    /// Source frames between snippet frames.
    pub step: usize,
    /// Multiplies every input value (the trainer's input scale).
    pub scale: f32,
}

impl Cutter<'_> {
    /// One preprocessed snippet of `video` (`None` if it is too short): with `rng` a random
    /// crop (rows, then columns) and offset, in that order of draws; without, the centre ones.
    fn snippet(
        &self,
        video: &Path,
        rng: Option<&mut Rng>,
        cache: &mut FrameCache,
    ) -> Result<Option<HostTensor>, SnippetError> {
        let mut source = cache.source(video)?;
        let source = source.get();
        let n = source.info().frames;
        let span = (self.frames - 1) * self.step + 1;
        if n < span {
            return Ok(None);
        }
        let mut preset = self.preset.clone();
        let [rh, rw] = preset.resize;
        let [ch, cw] = preset.crop.1;
        let offset = match rng {
            Some(rng) => {
                let pick = |rng: &mut Rng, k: usize| (rng.uniform() * k as f64) as usize % k;
                preset.crop.0 = [pick(rng, rh - ch + 1), pick(rng, rw - cw + 1)];
                pick(rng, n - span + 1)
            }
            None => (n - span) / 2,
        };
        let spec = SnippetSpec {
            length: self.frames,
            offset,
            step: self.step,
        };
        Ok(Some(
            vidlrp_snippet::load_snippet(source, &spec, ShortPolicy::Skip, &preset)?.input,
        ))
    }

    /// One snippet of each video (random with `rng`, the centre one without), stacked
    /// `[N, 3, T, H, W]` and scaled; each unreadable video is passed to `report` and counted.
    pub(crate) fn batch<'v>(
        &self,
        videos: impl Iterator<Item = &'v LabelledVideo>,
        mut rng: Option<&mut Rng>,
        cache: &mut FrameCache,
        report: &mut dyn FnMut(String),
    ) -> Result<Batch> {
        let mut batch = Batch::default();
        let mut clips = Vec::new();
        for v in videos {
            match self.snippet(&v.path, rng.as_deref_mut(), cache) {
                Ok(Some(c)) => {
                    clips.push(c);
                    batch.labels.push(v.label);
                }
                Ok(None) => batch.short += 1,
                Err(e) => {
                    report(e.to_string());
                    batch.failed += 1;
                }
            }
        }
        if !clips.is_empty() {
            let mut x = HostTensor::stack(&clips)?;
            x.data_mut().iter_mut().for_each(|v| *v *= self.scale);
            batch.x = Some(x);
        }
        Ok(batch)
    }
}

/// The snippets of one batch, stacked `[N, 3, T, H, W]` (`None` if none could be used), their
/// labels, and how many videos were too short or unreadable.
#[derive(Default)]
pub(crate) struct Batch {
    pub x: Option<HostTensor>,
    pub labels: Vec<usize>,
    pub short: usize,
    pub failed: usize,
}
