//! The transposed convolution onto a few input channels (a video's RGB planes), computed
//! directly: `dx[i, t, h, w] = sum_{o, a, b, d} w[o, i, a, b, d] g[o, t + pT - a, h + pH - b,
//! w + pW - d]` (stride 1, out-of-range gradient positions left out).
//!
//! With three input channels neither GEMM formulation fills the registers: `w^T g` has only
//! `3 kvol` rows and leaves a `3 kvol`-row col2im behind, the flipped convolution has 3 output
//! rows. Here each task holds a stretch of [`VECS`] 16-lane vectors of one row of `dx`, for
//! every input channel, in registers and streams the gradient rows over it: each loaded
//! gradient vector feeds one FMA per input channel; where two samples' accumulators fit in the
//! registers, a task holds the same stretch of two samples, so each broadcast weight feeds
//! twice the FMAs (one sample onto three channels is bound by the loads of weights and
//! gradients, not by the FMAs). Every value of `dx` is written once by one task and sums its
//! terms in the order `o, a, b, d`, whatever the number of threads or of samples per task.
//!
//! z^B's relevance with bounds constant per channel, `x ⊙ conv^T(g; w) − conv^T(g; k)`, runs
//! both transposes as one ([`conv_transposed_bounded_sample`]): `2 C_in` channels of
//! accumulators over one pass of `g`, each sum in the same order as alone, and the product
//! and difference rounded separately at the store, so the bits are those of the composition.

use crate::conv::ConvDims;
use crate::gemm::SendPtr;
use rayon::prelude::*;

/// The most input channels this path takes.
pub(crate) const MAX_CHANNELS: usize = 3;

/// 16-lane vectors of one `dx` row held per input channel (3 x 7 accumulators of 32 registers).
const VECS: usize = 7;

/// Whether the direct path computes this transposed convolution: stride 1, 1 to
/// [`MAX_CHANNELS`] input channels, and the AVX-512 kernels on ([`crate::gemm::fast`] on a CPU
/// with AVX-512F). An AVX2 port of this kernel (3 x 3 eight-lane accumulators) ran 3x slower
/// than `w^T g` + col2im on an AMD EPYC without AVX-512, so AVX2 CPUs take that path.
pub(crate) fn applies(dims: &ConvDims) -> bool {
    (1..=MAX_CHANNELS).contains(&dims.c_in)
        && dims.g.stride == [1, 1, 1]
        && crate::gemm::fast()
        && crate::gemm::avx512()
}

/// `dx = conv^T(g)` for `n` samples (`dx` overwritten); `g` is `[N][C_out][P]`, `w`
/// `[C_out][C_in][kvol]`, `dx` `[N][C_in][input]`. Call only where [`applies`] holds.
pub(crate) fn conv_transposed_direct(
    dims: &ConvDims,
    n: usize,
    c_out: usize,
    g: &[f32],
    w: &[f32],
    dx: &mut [f32],
) {
    transpose(dims, n, c_out, g, &[w], None, dx);
}

/// `out = x ⊙ conv^T(g; w) − conv^T(g; k)` for `n` samples (`out` overwritten; `x` and `out`
/// `[N][C_in][input]`, `w` and `k` `[C_out][C_in][kvol]`): the two transposes summed in one
/// pass over `g`, each value the bits of [`conv_transposed_direct`], then `(a x) − b` as two
/// roundings. Call only where [`applies`] holds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_transposed_bounded(
    dims: &ConvDims,
    n: usize,
    c_out: usize,
    g: &[f32],
    w: &[f32],
    k: &[f32],
    x: &[f32],
    out: &mut [f32],
) {
    assert_eq!(x.len(), n * dims.input_len(), "x of the batch");
    transpose(dims, n, c_out, g, &[w, k], Some(x), out);
}

/// The transposes of `g` with each of `kernels` (`[C_out][C_in][kvol]` each) as one set of
/// `kernels.len() C_in` accumulator channels; written to `dx` as they are (one kernel), or
/// as `x ⊙ first − second` (two kernels and `x`). Where the accumulators of two samples fit
/// in the registers, a task computes its stretch for two samples at once: each tap's
/// broadcast weights then feed twice the FMAs (onto three channels the loads, not the FMAs,
/// bound one sample). Each value's terms are summed in the same order either way.
fn transpose(
    dims: &ConvDims,
    n: usize,
    c_out: usize,
    g: &[f32],
    kernels: &[&[f32]],
    x: Option<&[f32]>,
    dx: &mut [f32],
) {
    let _timer = crate::phases::Timer::new(crate::phases::Phase::Arithmetic);
    assert!(
        applies(dims),
        "direct transposed convolution does not apply"
    );
    let kvol = dims.g.kernel.iter().product::<usize>();
    let c_in = dims.c_in;
    let channels = kernels.len() * c_in;
    assert!(
        g.len() == n * c_out * dims.positions()
            && kernels.iter().all(|w| w.len() == c_out * c_in * kvol)
            && dx.len() == n * dims.input_len()
            && x.is_none_or(|x| x.len() == dx.len())
            && x.is_some() == (kernels.len() == 2)
    );
    // The kernels re-laid [o][a][b][d][j][i]: one tap's channels side by side, kernel j's
    // input channel i at j C_in + i.
    let mut taps = vec![0.0f32; channels * c_out * kvol];
    for (j, w) in kernels.iter().enumerate() {
        for o in 0..c_out {
            for i in 0..c_in {
                for t in 0..kvol {
                    taps[(o * kvol + t) * channels + j * c_in + i] = w[(o * c_in + i) * kvol + t];
                }
            }
        }
    }
    let [t_in, h_in, w_in] = dims.input;
    // As many vectors per stretch as a row needs, up to VECS and up to what leaves the
    // accumulators, tap broadcasts and the loaded vector in the 32 registers: a 48-column row
    // holds 3, and FMAs of vectors past the row's end would be work on masked-out lanes.
    let fit = ((31 - channels) / channels).min(VECS);
    let vecs = w_in.div_ceil(16).clamp(1, fit);
    let chunks = w_in.div_ceil(16 * vecs);
    // Two samples per task where both sets of accumulators, the broadcasts and the loaded
    // vector fit (one kernel only: the bounded store's x is read per sample, kept to one).
    let per_task = if x.is_none() && n > 1 && 2 * channels * vecs + channels < 31 {
        2
    } else {
        1
    };
    let groups = n.div_ceil(per_task);
    let job = Job {
        dims,
        c_out,
        g,
        taps: &taps,
        x,
    };
    let ptr = SendPtr(dx.as_mut_ptr());
    let rows = t_in * h_in;
    // One task per stretch of a dx row of one or two samples; each writes only its own
    // stretches, for every channel.
    (0..groups * rows * chunks)
        .into_par_iter()
        .for_each(|task| {
            let (group, rest) = (task / (rows * chunks), task % (rows * chunks));
            let (row, chunk) = (rest / chunks, rest % chunks);
            let first = group * per_task;
            let samples = per_task.min(n - first);
            let at = Stretch {
                sample: first,
                t: row / h_in,
                h: row % h_in,
                chunk,
            };
            // SAFETY: fast() (AVX-512F present) held in applies(); the task's stretches lie in dx
            // and no other task writes them.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                job.dispatch(channels, vecs, samples, &at, ptr);
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (samples, &at, &job, ptr);
        });
}

/// Where a task writes: rows `(t, h)`, stretch `chunk`, of samples `sample..`.
struct Stretch {
    sample: usize,
    t: usize,
    h: usize,
    chunk: usize,
}

/// What every task reads.
struct Job<'a> {
    dims: &'a ConvDims,
    c_out: usize,
    /// The gradient of every sample, `[N][C_out][P]`.
    g: &'a [f32],
    taps: &'a [f32],
    /// The layer's input of every sample where the store writes `x ⊙ first − second` (two
    /// kernels).
    x: Option<&'a [f32]>,
}

impl Job<'_> {
    /// [`Job::stretch`] for `channels` accumulator channels, `vecs` vectors per stretch and
    /// `samples` (1 or 2) samples.
    ///
    /// # Safety
    /// As [`Job::stretch`]; `channels` is 1 to [`MAX_CHANNELS`], or twice that with `x`;
    /// `1 <= vecs <= VECS`, `samples * channels * vecs + channels < 32`, and `samples` is 1
    /// with `x`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dispatch(
        &self,
        channels: usize,
        vecs: usize,
        samples: usize,
        at: &Stretch,
        dx: SendPtr,
    ) {
        macro_rules! by_vecs {
            ($c:literal, $s:literal) => {
                match vecs {
                    1 => self.stretch::<$c, 1, $s>(at, dx),
                    2 => self.stretch::<$c, 2, $s>(at, dx),
                    3 => self.stretch::<$c, 3, $s>(at, dx),
                    4 => self.stretch::<$c, 4, $s>(at, dx),
                    5 => self.stretch::<$c, 5, $s>(at, dx),
                    6 => self.stretch::<$c, 6, $s>(at, dx),
                    _ => self.stretch::<$c, VECS, $s>(at, dx),
                }
            };
        }
        match (channels, samples) {
            (1, 1) => by_vecs!(1, 1),
            (2, 1) => by_vecs!(2, 1),
            (3, 1) => by_vecs!(3, 1),
            (4, 1) => by_vecs!(4, 1),
            (1, _) => by_vecs!(1, 2),
            (2, _) => by_vecs!(2, 2),
            (3, _) => by_vecs!(3, 2),
            _ => match vecs {
                1 => self.stretch::<6, 1, 1>(at, dx),
                2 => self.stretch::<6, 2, 1>(at, dx),
                3 => self.stretch::<6, 3, 1>(at, dx),
                _ => self.stretch::<6, 4, 1>(at, dx),
            },
        }
    }

    /// `dx[s, .., t, h, w]` for `w` in stretch `chunk` (`16 V` columns) of the row, all `C`
    /// input channels, for the `S` samples from `at.sample`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `dx` must point at the batch's `dx`, of which this call
    /// alone writes these stretches; samples `at.sample..at.sample + S` exist.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn stretch<const C: usize, const V: usize, const S: usize>(
        &self,
        at: &Stretch,
        dx: SendPtr,
    ) {
        use std::arch::x86_64::*;
        let d = self.dims;
        let (t, h, chunk) = (at.t, at.h, at.chunk);
        let [t_in, h_in, w_in] = d.input;
        let [t_out, h_out, w_out] = d.output;
        let [kt, kh, kw] = d.g.kernel;
        let [pt, ph, pw] = d.g.padding;
        let kvol = kt * kh * kw;
        let positions = d.positions();
        let w0 = chunk * 16 * V;
        // Per tap column e and vector v: the offset of lane 0 in a gradient row, and the lanes
        // whose column w0 + 16 v + l is in dx and reads a gradient column inside the row.
        let mut loads = vec![(0isize, 0u16); kw * V];
        for e in 0..kw {
            for v in 0..V {
                let first = (w0 + 16 * v + pw) as isize - e as isize;
                let mut mask = 0u16;
                for l in 0..16 {
                    let (x, src) = (w0 + 16 * v + l, first + l as isize);
                    if x < w_in && (0..w_out as isize).contains(&src) {
                        mask |= 1 << l;
                    }
                }
                loads[e * V + v] = (first, mask);
            }
        }
        let per_g = self.c_out * positions;
        let g: [*const f32; S] =
            std::array::from_fn(|s| self.g.as_ptr().add((at.sample + s) * per_g));
        let mut acc = [[[_mm512_setzero_ps(); V]; C]; S];
        for o in 0..self.c_out {
            for a in 0..kt {
                let Some(to) = (t + pt).checked_sub(a).filter(|&v| v < t_out) else {
                    continue;
                };
                for b in 0..kh {
                    let Some(ho) = (h + ph).checked_sub(b).filter(|&v| v < h_out) else {
                        continue;
                    };
                    let offset = o * positions + (to * h_out + ho) * w_out;
                    let tap0 = (o * kvol + (a * kh + b) * kw) * C;
                    let taps = &self.taps[tap0..tap0 + kw * C];
                    for (tap, lanes) in taps.chunks_exact(C).zip(loads.chunks_exact(V)) {
                        let wt: [__m512; C] = std::array::from_fn(|i| _mm512_set1_ps(tap[i]));
                        let lanes: &[(isize, u16); V] = lanes.try_into().expect("V loads");
                        for (v, &(first, mask)) in lanes.iter().enumerate() {
                            for (acc_s, g_s) in acc.iter_mut().zip(&g) {
                                // Only the mask's lanes, all inside this gradient row, are
                                // read.
                                let row = g_s.add(offset);
                                let x = _mm512_maskz_loadu_ps(mask, row.wrapping_offset(first));
                                for (acc_i, &w_i) in acc_s.iter_mut().zip(&wt) {
                                    acc_i[v] = _mm512_fmadd_ps(w_i, x, acc_i[v]);
                                }
                            }
                        }
                    }
                }
            }
        }
        let plane = t_in * h_in * w_in;
        let row0 = (t * h_in + h) * w_in;
        let mask_of = |start: usize| ((1u32 << (w_in - start).min(16)) - 1) as u16;
        if let Some(x) = self.x {
            // x ⊙ a − b, rounded as the composition rounds it: a product, then a difference.
            let half = C / 2;
            let sample = at.sample * d.input_len();
            for i in 0..half {
                let base = dx.0.add(sample + i * plane + row0);
                let xs = x.as_ptr().add(sample + i * plane + row0);
                for (v, (&a, &b)) in acc[0][i].iter().zip(&acc[0][half + i]).enumerate() {
                    let start = w0 + 16 * v;
                    if start >= w_in {
                        break;
                    }
                    let mask = mask_of(start);
                    let xv = _mm512_maskz_loadu_ps(mask, xs.add(start));
                    let r = _mm512_sub_ps(_mm512_mul_ps(a, xv), b);
                    _mm512_mask_storeu_ps(base.add(start), mask, r);
                }
            }
            return;
        }
        for (s, acc_s) in acc.iter().enumerate() {
            let sample = (at.sample + s) * d.input_len();
            for (i, acc_i) in acc_s.iter().enumerate() {
                let base = dx.0.add(sample + i * plane + row0);
                for (v, &a) in acc_i.iter().enumerate() {
                    let start = w0 + 16 * v;
                    if start >= w_in {
                        break;
                    }
                    _mm512_mask_storeu_ps(base.add(start), mask_of(start), a);
                }
            }
        }
    }
}
