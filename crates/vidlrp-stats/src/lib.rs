//! vidlrp-stats: the temporal statistics of method.md §3.
//!
//! - frame-wise relevance `R_t = sum_p R_{t,p}` and share vectors `r_t = R_t / sum_t' R_t'`;
//! - the coordinate `tau_t = (t - (T-1)/2) / ((T-1)/2)`, from -1 (first frame) to +1 (last);
//! - least-squares fits of the mean share vector: `r(tau) ~ a tau^2 + b tau + c` (border
//!   strength `a`) and `r(tau) ~ b' tau + c'` (lookahead strength `b'`);
//! - bootstrap confidence intervals over videos;
//! - an [`Accumulator`] of per-video observations that merges shards exactly: every statistic is
//!   computed from the observations in item order, whatever the order they arrived in.

use ndarray::{Array1, Array2};
use ndarray_linalg::LeastSquaresSvd;
use serde::{Deserialize, Serialize};
use vidlrp_rng::SplitMix64;

/// Errors of the statistics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// No observation to compute a statistic from.
    #[error("no data: {0}")]
    Empty(String),
    /// The fit has fewer points than parameters, or the design is singular.
    #[error("degenerate fit: {0}")]
    Degenerate(String),
    /// A value is NaN/infinite, or relevance sums to 0.
    #[error("invalid values: {0}")]
    Invalid(String),
    /// Merging shards that overlap or disagree.
    #[error("cannot merge: {0}")]
    Merge(String),
}

/// Result alias of this crate.
pub type Result<T, E = StatsError> = std::result::Result<T, E>;

/// `tau_t = (t - (T-1)/2) / ((T-1)/2)` for `t = 0..T` (`[0]` for `T = 1`).
///
/// ```
/// let tau = vidlrp_stats::tau(5);
/// assert_eq!(tau, vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
/// ```
pub fn tau(t: usize) -> Vec<f64> {
    if t <= 1 {
        return vec![0.0; t];
    }
    let half = (t - 1) as f64 / 2.0;
    (0..t).map(|i| (i as f64 - half) / half).collect()
}

/// Frame-wise relevance `R_t = sum_{c,h,w} R[c,t,h,w]` of one relevance map given as row-major
/// `values` of shape `[C, T, H, W]` or `[1, C, T, H, W]`, summed in `f64`.
///
/// **Errors** on any other shape, or if `values` does not hold the shape's count.
///
/// ```
/// // Two channels, three frames of one pixel each.
/// let r = vidlrp_stats::frame_relevance(&[1.0, 2.0, 3.0, 1.0, 0.0, -1.0], &[2, 3, 1, 1]).unwrap();
/// assert_eq!(r, vec![2.0, 2.0, 2.0]);
/// ```
pub fn frame_relevance(values: &[f32], shape: &[usize]) -> Result<Vec<f64>> {
    let s = match shape {
        [1, rest @ ..] if rest.len() == 4 => rest,
        s if s.len() == 4 => s,
        _ => {
            return Err(StatsError::Invalid(format!(
                "a relevance map must be [C, T, H, W] or [1, C, T, H, W], got {shape:?}"
            )))
        }
    };
    let (c, t, plane) = (s[0], s[1], s[2] * s[3]);
    if values.len() != c * t * plane {
        return Err(StatsError::Invalid(format!(
            "{} values for shape {shape:?}",
            values.len()
        )));
    }
    let mut frames = vec![0f64; t];
    for ch in 0..c {
        for (ti, f) in frames.iter_mut().enumerate() {
            let off = (ch * t + ti) * plane;
            *f += values[off..off + plane]
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>();
        }
    }
    Ok(frames)
}

/// Share vector of a relevance map: [`shares`] of [`frame_relevance`].
///
/// **Errors** as those two.
pub fn frame_shares(values: &[f32], shape: &[usize]) -> Result<Vec<f64>> {
    shares(&frame_relevance(values, shape)?)
}

/// Share vector `r_t = R_t / sum_t' R_t'`.
///
/// **Errors** if a value is not finite or the total is 0.
///
/// ```
/// use approx::assert_abs_diff_eq;
/// let r = vidlrp_stats::shares(&[1.0, 2.0, 1.0]).unwrap();
/// assert_abs_diff_eq!(r[1], 0.5, epsilon = 1e-12);
/// ```
pub fn shares(frame_relevance: &[f64]) -> Result<Vec<f64>> {
    if frame_relevance.is_empty() {
        return Err(StatsError::Empty("no frames".into()));
    }
    if frame_relevance.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::Invalid("frame relevance is not finite".into()));
    }
    let total: f64 = frame_relevance.iter().sum();
    if total == 0.0 {
        return Err(StatsError::Invalid(
            "relevance sums to 0 over the frames".into(),
        ));
    }
    Ok(frame_relevance.iter().map(|v| v / total).collect())
}

/// Least squares `y ~ X beta` for a design of columns `tau^p`, `p` in `powers`.
fn fit_powers(y: &[f64], powers: &[i32]) -> Result<Vec<f64>> {
    let n = y.len();
    if n < powers.len() {
        return Err(StatsError::Degenerate(format!(
            "{} parameters from {n} frame(s): need at least {} frames",
            powers.len(),
            powers.len()
        )));
    }
    if y.iter().any(|v| !v.is_finite()) {
        return Err(StatsError::Invalid("share vector is not finite".into()));
    }
    let t = tau(n);
    let x = Array2::from_shape_fn((n, powers.len()), |(i, j)| t[i].powi(powers[j]));
    let b = Array1::from(y.to_vec());
    let sol = x
        .least_squares(&b)
        .map_err(|e| StatsError::Degenerate(e.to_string()))?;
    if sol.rank < powers.len() as i32 {
        return Err(StatsError::Degenerate(format!(
            "the design has rank {} < {}",
            sol.rank,
            powers.len()
        )));
    }
    Ok(sol.solution.to_vec())
}

/// Quadratic fit `r(tau) ~ a tau^2 + b tau + c` minimising `sum_t (r_t - a tau_t^2 - b tau_t - c)^2`;
/// returns `[a, b, c]`. `a` is the border strength.
///
/// **Errors** with fewer than 3 frames or non-finite values.
///
/// ```
/// use approx::assert_abs_diff_eq;
/// let t = vidlrp_stats::tau(16);
/// let r: Vec<f64> = t.iter().map(|x| 0.02 * x * x + 0.01 * x + 0.06).collect();
/// let [a, b, c] = vidlrp_stats::fit_quadratic(&r).unwrap();
/// assert_abs_diff_eq!(a, 0.02, epsilon = 1e-12);
/// assert_abs_diff_eq!(b, 0.01, epsilon = 1e-12);
/// assert_abs_diff_eq!(c, 0.06, epsilon = 1e-12);
/// ```
pub fn fit_quadratic(r: &[f64]) -> Result<[f64; 3]> {
    let s = fit_powers(r, &[2, 1, 0])?;
    Ok([s[0], s[1], s[2]])
}

/// Linear fit `r(tau) ~ b' tau + c'`; returns `[b', c']`. `b'` is the lookahead strength.
///
/// **Errors** with fewer than 2 frames or non-finite values.
pub fn fit_linear(r: &[f64]) -> Result<[f64; 2]> {
    let s = fit_powers(r, &[1, 0])?;
    Ok([s[0], s[1]])
}

/// The element-wise mean of share vectors (all of one length).
pub fn mean_shares(vectors: &[&[f64]]) -> Result<Vec<f64>> {
    let Some(first) = vectors.first() else {
        return Err(StatsError::Empty("no share vectors".into()));
    };
    let t = first.len();
    if vectors.iter().any(|v| v.len() != t) {
        return Err(StatsError::Invalid("share vectors differ in length".into()));
    }
    let mut mean = vec![0.0; t];
    for v in vectors {
        for (m, x) in mean.iter_mut().zip(v.iter()) {
            *m += x;
        }
    }
    Ok(mean.into_iter().map(|m| m / vectors.len() as f64).collect())
}

/// A confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// Percentile bootstrap over videos: `resamples` times, draw `n` share vectors with replacement
/// (seeded), compute `stat` of their mean; the interval holds the central `level` of the values.
///
/// **Errors** without vectors or resamples, or if `stat` fails on the full sample.
pub fn bootstrap(
    vectors: &[&[f64]],
    stat: impl Fn(&[f64]) -> Result<f64>,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Result<Interval> {
    if vectors.is_empty() || resamples == 0 {
        return Err(StatsError::Empty(
            "bootstrap needs share vectors and resamples".into(),
        ));
    }
    stat(&mean_shares(vectors)?)?;
    let mut rng = SplitMix64(seed);
    let n = vectors.len();
    let mut values = Vec::with_capacity(resamples);
    let mut pick: Vec<&[f64]> = Vec::with_capacity(n);
    for _ in 0..resamples {
        pick.clear();
        pick.extend((0..n).map(|_| vectors[(rng.next_u64() % n as u64) as usize]));
        values.push(stat(&mean_shares(&pick)?)?);
    }
    values.sort_by(f64::total_cmp);
    let q = |p: f64| values[((p * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    let alpha = (1.0 - level) / 2.0;
    Ok(Interval {
        lo: q(alpha),
        hi: q(1.0 - alpha),
    })
}

/// Whether `label` is among the `k` largest `logits` (ties: lower index first).
pub fn top_k_hit(logits: &[f32], label: usize, k: usize) -> bool {
    let Some(&v) = logits.get(label) else {
        return false;
    };
    let better = logits
        .iter()
        .enumerate()
        .filter(|&(i, &x)| x > v || (x == v && i < label))
        .count();
    better < k
}

/// One video's contribution to a statistic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The item's index in the data set (its manifest row).
    pub item: usize,
    /// Its share vector `r_t`.
    pub shares: Vec<f64>,
    /// Whether the true label was the top-1 class (when a label is known).
    pub top1: Option<bool>,
    /// Whether the true label was among the top-5 classes.
    pub top5: Option<bool>,
}

/// Border and lookahead effects of a set of share vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Effects {
    /// Number of videos.
    pub n: usize,
    /// The mean share vector.
    pub mean: Vec<f64>,
    /// `[a, b, c]` of the quadratic fit.
    pub quadratic: [f64; 3],
    /// `[b', c']` of the linear fit.
    pub linear: [f64; 2],
    /// Border strength `a`.
    pub border: f64,
    /// Its bootstrap interval.
    pub border_ci: Option<Interval>,
    /// Lookahead strength `b'`.
    pub lookahead: f64,
    /// Its bootstrap interval.
    pub lookahead_ci: Option<Interval>,
}

/// Observations of one condition (method, step, offset) over a data set; shards merge exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    observations: Vec<Observation>,
}

impl Accumulator {
    /// Adds one video's observation.
    pub fn push(&mut self, o: Observation) {
        self.observations.push(o);
    }

    /// Adds another shard's observations, keeping them in item order. **Errors** if an item
    /// appears in both.
    pub fn merge(&mut self, other: &Accumulator) -> Result<()> {
        let mut seen: std::collections::BTreeSet<usize> =
            self.observations.iter().map(|o| o.item).collect();
        for o in &other.observations {
            if !seen.insert(o.item) {
                return Err(StatsError::Merge(format!(
                    "item {} is in two shards",
                    o.item
                )));
            }
        }
        self.observations.extend(other.observations.iter().cloned());
        // Item order: merged shards hold exactly what one run over the whole data set holds.
        self.observations.sort_by_key(|o| o.item);
        Ok(())
    }

    /// The observations in item order.
    pub fn observations(&self) -> Vec<&Observation> {
        let mut v: Vec<&Observation> = self.observations.iter().collect();
        v.sort_by_key(|o| o.item);
        v
    }

    /// Number of observations.
    pub fn count(&self) -> usize {
        self.observations.len()
    }

    /// `(hits, labelled)` for top-1 (`k = 1`) or top-5 (`k = 5`).
    pub fn hits(&self, k: usize) -> (usize, usize) {
        let get = |o: &Observation| if k == 1 { o.top1 } else { o.top5 };
        let labelled = self
            .observations
            .iter()
            .filter(|o| get(o).is_some())
            .count();
        let hits = self
            .observations
            .iter()
            .filter(|o| get(o) == Some(true))
            .count();
        (hits, labelled)
    }

    /// Top-k accuracy over the labelled observations (`None` without labels).
    pub fn accuracy(&self, k: usize) -> Option<f64> {
        let (h, n) = self.hits(k);
        (n > 0).then(|| h as f64 / n as f64)
    }

    /// Border and lookahead effects, with bootstrap intervals (`resamples` = 0: none).
    ///
    /// **Errors** without observations or on a degenerate fit.
    pub fn effects(&self, resamples: usize, seed: u64) -> Result<Effects> {
        let obs = self.observations();
        let vectors: Vec<&[f64]> = obs.iter().map(|o| o.shares.as_slice()).collect();
        let mean = mean_shares(&vectors)?;
        let quadratic = fit_quadratic(&mean)?;
        let linear = fit_linear(&mean)?;
        let (border_ci, lookahead_ci) = if resamples > 0 {
            (
                Some(bootstrap(
                    &vectors,
                    |m| fit_quadratic(m).map(|f| f[0]),
                    resamples,
                    0.95,
                    seed,
                )?),
                Some(bootstrap(
                    &vectors,
                    |m| fit_linear(m).map(|f| f[0]),
                    resamples,
                    0.95,
                    seed ^ 1,
                )?),
            )
        } else {
            (None, None)
        };
        Ok(Effects {
            n: obs.len(),
            mean,
            quadratic,
            linear,
            border: quadratic[0],
            border_ci,
            lookahead: linear[0],
            lookahead_ci,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    fn uniforms(seed: u64, n: usize) -> Vec<f64> {
        let mut r = SplitMix64(seed);
        (0..n).map(|_| r.uniform()).collect()
    }

    /// With symmetric `tau` (sum tau = sum tau^3 = 0) the normal equations decouple:
    /// `b = sum tau r / sum tau^2`, and `[S4 S2; S2 S0] [a; c] = [sum tau^2 r; sum r]`.
    #[test]
    fn fits_match_closed_forms() {
        for (seed, t) in [(1u64, 16usize), (2, 7), (3, 3), (4, 32)] {
            let r = uniforms(seed, t);
            let tau = tau(t);
            let s = |p: i32| tau.iter().map(|x| x.powi(p)).sum::<f64>();
            let sr = |p: i32| tau.iter().zip(&r).map(|(x, y)| x.powi(p) * y).sum::<f64>();
            let b = sr(1) / s(2);
            let det = s(4) * s(0) - s(2) * s(2);
            let a = (sr(2) * s(0) - s(2) * sr(0)) / det;
            let c = (s(4) * sr(0) - s(2) * sr(2)) / det;
            let q = fit_quadratic(&r).unwrap();
            assert_abs_diff_eq!(q[0], a, epsilon = 1e-10);
            assert_abs_diff_eq!(q[1], b, epsilon = 1e-10);
            assert_abs_diff_eq!(q[2], c, epsilon = 1e-10);
            let l = fit_linear(&r).unwrap();
            assert_abs_diff_eq!(l[0], b, epsilon = 1e-10);
            assert_abs_diff_eq!(l[1], sr(0) / t as f64, epsilon = 1e-10);
        }
    }

    #[test]
    fn synthetic_effects_are_recovered_with_intervals_around_them() {
        let t = tau(16);
        let (a, b) = (0.03, 0.012);
        let mut acc = Accumulator::default();
        for (i, noise) in (0..200).map(|i| (i, uniforms(100 + i as u64, 16))) {
            let raw: Vec<f64> = t
                .iter()
                .zip(&noise)
                .map(|(x, e)| a * x * x + b * x + 0.0525 + 0.01 * (e - 0.5))
                .collect();
            let total: f64 = raw.iter().sum();
            acc.push(Observation {
                item: i,
                shares: raw.iter().map(|v| v / total).collect(),
                top1: None,
                top5: None,
            });
        }
        let e = acc.effects(300, 7).unwrap();
        assert_abs_diff_eq!(e.border, a, epsilon = 2e-3);
        assert_abs_diff_eq!(e.lookahead, b, epsilon = 1e-3);
        let ci = e.border_ci.unwrap();
        assert!(
            ci.lo < e.border && e.border < ci.hi && ci.hi - ci.lo < 0.01,
            "{ci:?}"
        );
        let ci = e.lookahead_ci.unwrap();
        assert!(ci.lo < e.lookahead && e.lookahead < ci.hi, "{ci:?}");
    }

    #[test]
    fn shards_merge_to_exactly_the_unsharded_statistics() {
        let obs: Vec<Observation> = (0..37)
            .map(|i| {
                let raw = uniforms(i as u64, 16);
                let total: f64 = raw.iter().sum();
                Observation {
                    item: i,
                    shares: raw.iter().map(|v| v / total).collect(),
                    top1: Some(i % 3 == 0),
                    top5: Some(i % 2 == 0),
                }
            })
            .collect();
        let mut whole = Accumulator::default();
        obs.iter().cloned().for_each(|o| whole.push(o));
        let mut shards = vec![Accumulator::default(); 4];
        for o in obs.iter().rev() {
            shards[(o.item * 7) % 4].push(o.clone());
        }
        let mut merged = Accumulator::default();
        for s in shards.iter().rev() {
            merged.merge(s).unwrap();
        }
        assert_eq!(
            merged.effects(100, 3).unwrap(),
            whole.effects(100, 3).unwrap()
        );
        assert_eq!(merged.hits(5), whole.hits(5));
        assert_eq!(merged.accuracy(1), Some(13.0 / 37.0));
        assert!(
            merged.merge(&shards[0]).is_err(),
            "overlapping shards must not merge"
        );
    }

    #[test]
    fn bad_input_is_reported() {
        assert!(matches!(
            Accumulator::default().effects(10, 0),
            Err(StatsError::Empty(_))
        ));
        assert!(matches!(
            fit_quadratic(&[0.5, 0.5]),
            Err(StatsError::Degenerate(_))
        ));
        assert!(matches!(shares(&[0.0, 0.0]), Err(StatsError::Invalid(_))));
        assert!(matches!(
            shares(&[f64::NAN, 1.0]),
            Err(StatsError::Invalid(_))
        ));
        assert!(top_k_hit(&[0.1, 0.9, 0.5], 2, 2));
        assert!(!top_k_hit(&[0.1, 0.9, 0.5], 0, 2));
        assert!(!top_k_hit(&[0.1], 4, 5));
    }
}
