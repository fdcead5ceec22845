//! Faithfulness of explanations by perturbation (Samek et al., "Evaluating the visualization of
//! what a deep neural network has learned", 2017), for video clips.
//!
//! A clip `[C, T, H, W]` is tiled into regions of `T_r x H_r x W_r` voxels ([`Tiling`]); each
//! region's relevance is the sum over its voxels and channels. Regions are removed in the
//! order of a [`ranking`] (most relevant first, *MoRF*, or least relevant first, *LeRF*; a
//! seeded [`random_ranking`] is the baseline) by copying in the voxels of a [`replacement`]
//! clip, and the class score is recorded after each removal ([`curve`]):
//!
//! ```text
//! x^(0) = x,   x^(k) = x^(k-1) with region r_k replaced,   k = 1..L
//! AOPC  = 1/(L+1) * sum_{k=0..L} ( f_c(x^(0)) - f_c(x^(k)) )      (one clip: [`aopc`])
//! ```
//!
//! averaged over clips ([`summarize`], with a bootstrap interval). The faster the score falls
//! under MoRF, the larger the AOPC and the better the explanation finds what the model uses.
//!
//! ```
//! use vidlrp_evaluate::{aopc, ranking, Order, Region, Tiling};
//! // A 2-frame clip of 2x2 pixels, one region per frame (frame flipping).
//! let tiling = Tiling::new([2, 2, 2], "1,2,2".parse::<Region>().unwrap()).unwrap();
//! let relevance = [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 1.0]; // one channel
//! let sums = tiling.sums(&relevance, 1).unwrap();
//! assert_eq!(sums, vec![0.0, 4.0]);
//! assert_eq!(ranking(&sums, Order::Morf), vec![1, 0]);
//! // Scores 3, 1, 0 after removing 0, 1, 2 regions: drops 0, 2, 3.
//! assert!((aopc(&[3.0, 1.0, 0.0]) - 5.0 / 3.0).abs() < 1e-12);
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vidlrp_core::{Backend, HostTensor, Sequential};
use vidlrp_rng::SplitMix64;
use vidlrp_stats::Interval;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// An argument does not fit (regions that do not tile the clip, too many steps, ...).
    #[error("{0}")]
    Argument(String),
    /// The network failed.
    #[error(transparent)]
    Core(#[from] vidlrp_core::Error),
    /// A statistic failed.
    #[error(transparent)]
    Stats(#[from] vidlrp_stats::StatsError),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, EvalError>;

fn argument<T>(message: impl Into<String>) -> Result<T> {
    Err(EvalError::Argument(message.into()))
}

/// The size of one region `[T, H, W]` in voxels; written `T,H,W` (`1,8,8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region(pub [usize; 3]);

impl Default for Region {
    /// One frame by 8 x 8 pixels.
    fn default() -> Self {
        Region([1, 8, 8])
    }
}

impl FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let v: Vec<usize> = s
            .split(',')
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("{s:?}: expected T,H,W, three positive integers (1,8,8)"))?;
        match v[..] {
            [t, h, w] if t > 0 && h > 0 && w > 0 => Ok(Region([t, h, w])),
            _ => Err(format!(
                "{s:?}: expected T,H,W, three positive integers (1,8,8)"
            )),
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [t, h, w] = self.0;
        write!(f, "{t},{h},{w}")
    }
}

/// The regions that tile a clip of `[T, H, W]` voxels, numbered in `(t, h, w)` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    clip: [usize; 3],
    region: [usize; 3],
    grid: [usize; 3],
}

impl Tiling {
    /// **Errors** unless every extent of `region` divides the clip's.
    pub fn new(clip: [usize; 3], region: Region) -> Result<Self> {
        let mut grid = [0; 3];
        for (i, name) in ["frames", "rows", "columns"].iter().enumerate() {
            let (c, r) = (clip[i], region.0[i]);
            if r == 0 || c == 0 || c % r != 0 {
                return argument(format!(
                    "regions of {region} (T,H,W) do not tile a clip of {}x{}x{}: {r} does not \
                     divide its {c} {name}",
                    clip[0], clip[1], clip[2]
                ));
            }
            grid[i] = c / r;
        }
        Ok(Self {
            clip,
            region: region.0,
            grid,
        })
    }

    /// The number of regions.
    pub fn len(&self) -> usize {
        self.grid.iter().product()
    }

    /// Whether there are no regions (never: a tiling has at least one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The voxel ranges `[t, h, w]` of region `r`.
    fn ranges(&self, r: usize) -> [std::ops::Range<usize>; 3] {
        let [_, gh, gw] = self.grid;
        let idx = [r / (gh * gw), (r / gw) % gh, r % gw];
        std::array::from_fn(|i| idx[i] * self.region[i]..(idx[i] + 1) * self.region[i])
    }

    /// Calls `f(offset)` for every voxel offset of region `r` in a `[C, T, H, W]` sample.
    fn for_each_voxel(&self, r: usize, channels: usize, mut f: impl FnMut(usize)) {
        let [ts, hs, ws] = self.ranges(r);
        let [t, h, w] = self.clip;
        for c in 0..channels {
            for ti in ts.clone() {
                for hi in hs.clone() {
                    let row = ((c * t + ti) * h + hi) * w;
                    for wi in ws.clone() {
                        f(row + wi);
                    }
                }
            }
        }
    }

    /// The relevance of each region: `sum` over its voxels and all channels of one sample's
    /// relevance `[C, T, H, W]`.
    ///
    /// **Errors** if `relevance` is not `channels x T x H x W` values.
    pub fn sums(&self, relevance: &[f32], channels: usize) -> Result<Vec<f64>> {
        self.check(relevance.len(), channels)?;
        Ok((0..self.len())
            .map(|r| {
                let mut s = 0.0;
                self.for_each_voxel(r, channels, |i| s += f64::from(relevance[i]));
                s
            })
            .collect())
    }

    /// Copies region `r` of `src` into `dst` (both one sample `[C, T, H, W]`).
    pub fn replace(&self, r: usize, channels: usize, src: &[f32], dst: &mut [f32]) {
        self.for_each_voxel(r, channels, |i| dst[i] = src[i]);
    }

    fn check(&self, len: usize, channels: usize) -> Result<()> {
        let want = channels * self.clip.iter().product::<usize>();
        if len != want {
            return argument(format!(
                "{len} values do not make a {channels}x{}x{}x{} sample",
                self.clip[0], self.clip[1], self.clip[2]
            ));
        }
        Ok(())
    }
}

/// The order regions are removed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Most relevant first.
    Morf,
    /// Least relevant first.
    Lerf,
}

impl Order {
    /// Both orders.
    pub const ALL: [Order; 2] = [Order::Morf, Order::Lerf];
}

impl FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "morf" => Ok(Order::Morf),
            "lerf" => Ok(Order::Lerf),
            _ => Err(format!("{s:?}: expected morf or lerf")),
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Order::Morf => "morf",
            Order::Lerf => "lerf",
        })
    }
}

/// Region indices by relevance: largest first for MoRF, smallest first for LeRF; ties by index.
pub fn ranking(sums: &[f64], order: Order) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..sums.len()).collect();
    idx.sort_by(|&a, &b| {
        let by = match order {
            Order::Morf => sums[b].total_cmp(&sums[a]),
            Order::Lerf => sums[a].total_cmp(&sums[b]),
        };
        by.then(a.cmp(&b))
    });
    idx
}

/// A uniformly random order of `n` regions (Fisher-Yates on a seeded SplitMix64 stream): the
/// same seed gives the same order everywhere.
pub fn random_ranking(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        idx.swap(i, j);
    }
    idx
}

/// What a removed region's voxels become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replace {
    /// Uniform noise in each channel's input range `[low_c, high_c]` (seeded).
    Uniform,
    /// Each channel's mean over the clip.
    Mean,
    /// Zero (for mean-subtracted input: the mean colour).
    Zero,
    /// The clip blurred frame by frame (Gaussian, sigma = half the region's larger side).
    Blur,
}

impl FromStr for Replace {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "uniform" => Ok(Replace::Uniform),
            "mean" => Ok(Replace::Mean),
            "zero" => Ok(Replace::Zero),
            "blur" => Ok(Replace::Blur),
            _ => Err(format!("{s:?}: expected uniform, mean, zero or blur")),
        }
    }
}

impl fmt::Display for Replace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Replace::Uniform => "uniform",
            Replace::Mean => "mean",
            Replace::Zero => "zero",
            Replace::Blur => "blur",
        })
    }
}

/// The replacement clip of one sample `x` `[C, T, H, W]` (`shape`): a removed region takes
/// its voxels from here. `low`/`high` are the input range per channel (for `uniform`); `seed`
/// makes the noise reproducible; `region` sets the blur's width.
///
/// **Errors** if `x` does not have `shape` or the ranges are not one per channel.
pub fn replacement(
    x: &[f32],
    shape: [usize; 4],
    how: Replace,
    low: &[f32],
    high: &[f32],
    region: Region,
    seed: u64,
) -> Result<Vec<f32>> {
    let [c, t, h, w] = shape;
    if x.len() != c * t * h * w {
        return argument(format!("{} values do not make a {shape:?} sample", x.len()));
    }
    let plane = t * h * w;
    Ok(match how {
        Replace::Zero => vec![0.0; x.len()],
        Replace::Mean => x
            .chunks(plane)
            .flat_map(|ch| {
                let m = ch.iter().map(|&v| f64::from(v)).sum::<f64>() / plane as f64;
                std::iter::repeat_n(m as f32, plane)
            })
            .collect(),
        Replace::Uniform => {
            if low.len() != c || high.len() != c {
                return argument(format!(
                    "uniform replacement needs one input range per channel ({c}), got {} and {}",
                    low.len(),
                    high.len()
                ));
            }
            let mut rng = SplitMix64(seed);
            (0..x.len())
                .map(|i| {
                    let ch = i / plane;
                    low[ch] + (high[ch] - low[ch]) * rng.uniform() as f32
                })
                .collect()
        }
        Replace::Blur => {
            let sigma = region.0[1].max(region.0[2]) as f64 / 2.0;
            blur(x, c * t, h, w, sigma)
        }
    })
}

/// Separable Gaussian blur of `planes` images of `h x w` (edges clamped), in `f64`.
fn blur(x: &[f32], planes: usize, h: usize, w: usize, sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = kernel.iter().sum();
    let at = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    let mut out = vec![0f32; x.len()];
    let mut rows = vec![0f64; h * w];
    for p in 0..planes {
        let img = &x[p * h * w..(p + 1) * h * w];
        for y in 0..h {
            for xi in 0..w {
                rows[y * w + xi] = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, g)| {
                        g * f64::from(img[y * w + at(xi as isize + k as isize - radius, w)])
                    })
                    .sum::<f64>()
                    / total;
            }
        }
        for y in 0..h {
            for xi in 0..w {
                let v = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, g)| g * rows[at(y as isize + k as isize - radius, h) * w + xi])
                    .sum::<f64>()
                    / total;
                out[p * h * w + y * w + xi] = v as f32;
            }
        }
    }
    out
}

/// The perturbation curve of one clip `x` (`[1, C, T, H, W]`): the score `f_class(x^(k))` for
/// `k = 0..=steps`, where `x^(k)` has the regions `order[..k]` replaced by `replacement`'s
/// voxels. The perturbed clips run through `net` in batches of `batch`.
///
/// **Errors** if `steps` exceeds the regions, `order` is too short, shapes do not fit, or the
/// network fails.
#[allow(clippy::too_many_arguments)]
pub fn curve<B: Backend>(
    be: &B,
    net: &Sequential<B>,
    x: &HostTensor,
    class: usize,
    tiling: &Tiling,
    order: &[usize],
    steps: usize,
    replacement: &[f32],
    batch: usize,
) -> Result<Vec<f32>> {
    let s = x.shape();
    if s.len() != 5 || s[0] != 1 {
        return argument(format!(
            "the clip must be one sample [1, C, T, H, W], got {s:?}"
        ));
    }
    let channels = s[1];
    tiling.check(x.len(), channels)?;
    if replacement.len() != x.len() {
        return argument("the replacement clip does not have the clip's shape");
    }
    if steps > tiling.len() || order.len() < steps {
        return argument(format!(
            "{steps} perturbation steps, but the clip has {} regions (use at most that many \
             steps, or smaller regions)",
            tiling.len()
        ));
    }
    let batch = batch.max(1);
    let n = x.len();
    let mut current = x.data().to_vec();
    let mut scores = Vec::with_capacity(steps + 1);
    let mut buffer: Vec<f32> = Vec::with_capacity(batch * n);
    for k in 0..=steps {
        if k > 0 {
            tiling.replace(order[k - 1], channels, replacement, &mut current);
        }
        buffer.extend_from_slice(&current);
        let filled = buffer.len() / n;
        if filled == batch || k == steps {
            let shape = [&[filled], &s[1..]].concat();
            let input = HostTensor::new(shape, std::mem::take(&mut buffer))?;
            let logits = be.download(&net.forward(be, &be.upload_owned(input)?)?)?;
            let classes = logits.shape()[1];
            if class >= classes {
                return argument(format!(
                    "class {class} is out of range: the model has {classes} classes"
                ));
            }
            scores.extend((0..filled).map(|i| logits.data()[i * classes + class]));
            buffer = Vec::with_capacity(batch * n);
        }
    }
    Ok(scores)
}

/// AOPC of one curve: `1/(L+1) * sum_k (f(x^(0)) - f(x^(k)))`; 0 for an empty curve.
pub fn aopc(curve: &[f32]) -> f64 {
    let Some(&first) = curve.first() else {
        return 0.0;
    };
    curve
        .iter()
        .map(|&f| f64::from(first) - f64::from(f))
        .sum::<f64>()
        / curve.len() as f64
}

/// AOPC over clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aopc {
    /// Mean AOPC over the clips.
    pub aopc: f64,
    /// Percentile bootstrap interval (95 %) over clips; `None` without resamples.
    pub interval: Option<Interval>,
    /// Clips.
    pub clips: usize,
    /// The mean drop `f(x^(0)) - f(x^(k))` over clips, per `k`.
    pub mean_drop: Vec<f64>,
}

/// The mean AOPC of `curves` (one per clip, all of one length) with a bootstrap interval over
/// clips (`resamples` draws, seeded).
///
/// **Errors** without curves or if their lengths differ.
pub fn summarize(curves: &[Vec<f32>], resamples: usize, seed: u64) -> Result<Aopc> {
    let drops: Vec<Vec<f64>> = curves
        .iter()
        .map(|c| {
            let first = c.first().map_or(0.0, |&f| f64::from(f));
            c.iter().map(|&f| first - f64::from(f)).collect()
        })
        .collect();
    let views: Vec<&[f64]> = drops.iter().map(Vec::as_slice).collect();
    let mean_drop = vidlrp_stats::mean_shares(&views)?;
    let mean =
        |d: &[f64]| -> vidlrp_stats::Result<f64> { Ok(d.iter().sum::<f64>() / d.len() as f64) };
    let interval = if resamples > 0 {
        Some(vidlrp_stats::bootstrap(
            &views, mean, resamples, 0.95, seed,
        )?)
    } else {
        None
    };
    Ok(Aopc {
        aopc: mean(&mean_drop)?,
        interval,
        clips: curves.len(),
        mean_drop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_that_do_not_tile_are_refused() {
        let e = Tiling::new([16, 112, 112], Region([1, 8, 5])).unwrap_err();
        assert!(
            e.to_string().contains("5 does not divide its 112 columns"),
            "{e}"
        );
        assert!("1,8".parse::<Region>().is_err());
        assert!("0,8,8".parse::<Region>().is_err());
        assert_eq!(
            Tiling::new([16, 112, 112], Region([1, 112, 112]))
                .unwrap()
                .len(),
            16
        );
        assert_eq!(
            Tiling::new([16, 112, 112], Region::default())
                .unwrap()
                .len(),
            16 * 14 * 14
        );
    }

    #[test]
    fn sums_and_replacement_cover_each_region_once() {
        let tiling = Tiling::new([2, 4, 4], Region([1, 2, 2])).unwrap();
        let x: Vec<f32> = (0..2 * 2 * 4 * 4).map(|i| i as f32).collect();
        let sums = tiling.sums(&x, 2).unwrap();
        assert_eq!(sums.len(), 8);
        assert_eq!(
            sums.iter().sum::<f64>(),
            x.iter().map(|&v| f64::from(v)).sum::<f64>()
        );
        // Region 0: frame 0, rows 0..2, columns 0..2, of both channels.
        assert_eq!(sums[0], f64::from(1 + 4 + 5 + 32 + 33 + 36 + 37)); // and voxel 0 (value 0)
        let mut y = x.clone();
        for r in 0..tiling.len() {
            tiling.replace(r, 2, &vec![-1.0; x.len()], &mut y);
        }
        assert!(y.iter().all(|&v| v == -1.0));
    }

    #[test]
    fn rankings_order_by_relevance_and_random_is_a_seeded_permutation() {
        let sums = [1.0, 3.0, -2.0, 3.0];
        assert_eq!(ranking(&sums, Order::Morf), vec![1, 3, 0, 2]);
        assert_eq!(ranking(&sums, Order::Lerf), vec![2, 0, 1, 3]);
        let r = random_ranking(100, 7);
        assert_eq!(r, random_ranking(100, 7));
        assert_ne!(r, random_ranking(100, 8));
        let mut sorted = r.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn replacements() {
        let shape = [2, 1, 2, 2];
        let x = [0.0, 2.0, 4.0, 6.0, 1.0, 1.0, 1.0, 1.0];
        let r = Region([1, 1, 1]);
        assert_eq!(
            replacement(&x, shape, Replace::Mean, &[], &[], r, 0).unwrap(),
            vec![3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(
            replacement(&x, shape, Replace::Zero, &[], &[], r, 0).unwrap(),
            vec![0.0; 8]
        );
        let u = replacement(&x, shape, Replace::Uniform, &[-1.0, 5.0], &[1.0, 6.0], r, 3).unwrap();
        assert!(u[..4].iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(u[4..].iter().all(|v| (5.0..=6.0).contains(v)));
        assert_eq!(
            u,
            replacement(&x, shape, Replace::Uniform, &[-1.0, 5.0], &[1.0, 6.0], r, 3).unwrap()
        );
        // A blur keeps a constant image and each plane's range.
        let b = replacement(&x, shape, Replace::Blur, &[], &[], Region([1, 2, 2]), 0).unwrap();
        assert!(b[4..].iter().all(|&v| (v - 1.0).abs() < 1e-6));
        assert!(b[..4].iter().all(|&v| (0.0..=6.0).contains(&v)));
        assert!(replacement(&x, shape, Replace::Uniform, &[0.0], &[1.0], r, 0).is_err());
    }

    #[test]
    fn aopc_by_hand() {
        // Drops 0, 1, 3, 3: sum 7 over 4 steps.
        assert!((aopc(&[5.0, 4.0, 2.0, 2.0]) - 7.0 / 4.0).abs() < 1e-12);
        let s = summarize(
            &[vec![5.0, 4.0, 2.0, 2.0], vec![1.0, 1.0, 1.0, 1.0]],
            200,
            1,
        )
        .unwrap();
        assert!((s.aopc - 7.0 / 8.0).abs() < 1e-12);
        assert_eq!(s.mean_drop, vec![0.0, 0.5, 1.5, 1.5]);
        let i = s.interval.unwrap();
        assert!(i.lo <= s.aopc && s.aopc <= i.hi && i.lo >= 0.0 && i.hi <= 1.75);
    }
}
