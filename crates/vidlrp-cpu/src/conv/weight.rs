//! The weight gradient of a convolution with `kH = kW = 3` and stride 1, computed directly:
//! `dW[o, c, a, b, e] = sum_{n, t, h, w} g[n, o, t, h, w] x[n, c, t + a - pT, h + b - pH,
//! w + e - pW]` (out-of-range input positions are zero), without an im2col matrix.
//!
//! The im2col formulation (`dW = G col^T`) writes and packs `C_in kvol` values per output
//! position, each used only `C_out` times: with a video's few channels (C3D's conv1: 81 rows,
//! 8 output channels) it is bound by that copying, not by arithmetic. Here the gradient is
//! re-laid position-major (`g^T[n, p, o]`), and each task owns one block of 16 or 32 output
//! channels, one input channel `c` and one frame tap `a`: its `9 x (1 or 2)` accumulators
//! (16-lane vectors over `o`) stay in registers while it streams over every position, each
//! position's gradient vector meeting the nine input values around it (one broadcast load
//! each). The input frame is first copied into a zero-bordered plane, so no position needs a
//! bounds check.
//!
//! Sums are exact in order: each frame's terms are summed in `f32` in position order, the
//! frames' sums in `f64` in sample and frame order, and every value of `dW` belongs to one
//! task: the result does not depend on the number of threads (tested in `tests/kernels.rs`).

use crate::conv::ConvDims;
use rayon::prelude::*;

/// Output channels of one vector.
const LANES: usize = 16;

/// Whether the direct path computes this weight gradient: `kH = kW = 3`, stride 1, padding
/// below the kernel, and the AVX-512 kernels on ([`crate::gemm::fast`] on a CPU with
/// AVX-512F). Elsewhere the im2col GEMM computes it.
pub(crate) fn applies(dims: &ConvDims) -> bool {
    let g = &dims.g;
    g.kernel[1] == 3
        && g.kernel[2] == 3
        && g.kernel[0] >= 1
        && g.stride == [1, 1, 1]
        && (0..3).all(|i| g.padding[i] < g.kernel[i])
        && crate::gemm::fast()
        && crate::gemm::avx512()
}

/// `dw` (`[C_out, C_in, kT, 3, 3]`, overwritten) of `n` samples of `x` (`[N, C_in, input]`)
/// and `g` (`[N, C_out, output]`). Call only where [`applies`] holds.
pub(crate) fn conv_weight_gradient_direct(
    dims: &ConvDims,
    n: usize,
    c_out: usize,
    x: &[f32],
    g: &[f32],
    dw: &mut [f32],
) {
    let _timer = crate::phases::Timer::new(crate::phases::Phase::Arithmetic);
    assert!(applies(dims), "direct weight gradient does not apply");
    let (p, c_in, kt) = (dims.positions(), dims.c_in, dims.g.kernel[0]);
    assert!(
        x.len() == n * dims.input_len()
            && g.len() == n * c_out * p
            && dw.len() == c_out * dims.rows()
    );
    // Tasks: (block of output channels, input channel, frame tap).
    let vecs = if c_out > LANES { 2 } else { 1 };
    let block = vecs * LANES;
    let blocks = c_out.div_ceil(block);
    // g^T[s][p][o], rows padded to whole blocks (zeros), so each position's block of output
    // channels is whole vectors; made for a few samples at a time (about GT_FLOATS floats, in
    // storage kept between calls, so that it costs no page faults).
    let co_pad = blocks * block;
    let per_sample = p * co_pad;
    let chunk = (GT_FLOATS / per_sample.max(1)).clamp(1, n.max(1));
    let tasks: Vec<(usize, usize, usize)> = (0..blocks)
        .flat_map(|ob| (0..c_in).flat_map(move |c| (0..kt).map(move |a| (ob, c, a))))
        .collect();
    let mut sums = vec![[[0.0f64; 32]; 9]; tasks.len()];
    let mut store = GT_STORE
        .try_lock()
        .map(|mut kept| std::mem::take(&mut *kept))
        .unwrap_or_default();
    let mut s0 = 0;
    while s0 < n {
        let s1 = (s0 + chunk).min(n);
        if store.len() < (s1 - s0) * per_sample {
            store.resize((s1 - s0) * per_sample, 0.0);
        }
        let gt = &mut store[..(s1 - s0) * per_sample];
        transpose_gradient(&g[s0 * c_out * p..s1 * c_out * p], c_out, p, co_pad, gt);
        let job = Job {
            dims,
            samples: s0..s1,
            co_pad,
            x,
            gt,
        };
        sums.par_iter_mut()
            .zip(&tasks)
            .for_each(|(sum, &(ob, c, a))| {
                // SAFETY: applies() saw AVX-512F.
                unsafe {
                    if vecs == 2 {
                        job.task::<2, 3>(ob * block, c, a, sum);
                    } else {
                        job.task::<1, 4>(ob * block, c, a, sum);
                    }
                }
            });
        s0 = s1;
    }
    if store.len() <= GT_FLOATS {
        if let Ok(mut kept) = GT_STORE.try_lock() {
            *kept = store;
        }
    }
    let kvol = kt * 9;
    for (&(ob, c, a), s) in tasks.iter().zip(&sums) {
        for (tap, lanes) in s.iter().enumerate() {
            for (l, &v) in lanes.iter().enumerate().take(block) {
                let o = ob * block + l;
                if o < c_out {
                    dw[(o * c_in + c) * kvol + a * 9 + tap] = v as f32;
                }
            }
        }
    }
}

/// Floats of transposed gradient made at a time (4 MB; at least one sample's).
const GT_FLOATS: usize = 1 << 20;

/// Storage of the transposed gradient, kept between calls up to [`GT_FLOATS`] floats.
static GT_STORE: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

/// `gt[s][q][o] = g[s][o][q]` for `q < p`, `o < c_out`, zero for `c_out <= o < co_pad`: each
/// task a stretch of one sample's positions, in blocks of 64 (a block of `gt` stays in the L1
/// cache while every `o` is written into it).
fn transpose_gradient(g: &[f32], c_out: usize, p: usize, co_pad: usize, gt: &mut [f32]) {
    const Q: usize = 64;
    const TASK: usize = 64 * Q;
    gt.par_chunks_mut(p * co_pad)
        .zip(g.par_chunks(c_out * p))
        .flat_map(|(dst, src)| {
            dst.par_chunks_mut(TASK * co_pad)
                .enumerate()
                .map(move |(i, d)| (i, d, src))
        })
        .for_each(|(i, dst, src)| {
            if c_out < co_pad {
                dst.fill(0.0);
            }
            for (b, block) in dst.chunks_mut(Q * co_pad).enumerate() {
                let q0 = i * TASK + b * Q;
                let q1 = (q0 + Q).min(p);
                for o in 0..c_out {
                    for (q, &v) in src[o * p + q0..o * p + q1].iter().enumerate() {
                        block[q * co_pad + o] = v;
                    }
                }
            }
        });
}

/// One call's operands.
struct Job<'a> {
    dims: &'a ConvDims,
    samples: std::ops::Range<usize>,
    co_pad: usize,
    x: &'a [f32],
    gt: &'a [f32],
}

impl Job<'_> {
    /// Adds the sums of the task (output channels `o0..o0 + 16 VECS`, input channel `c`, frame
    /// tap `a`) over this job's samples to `sums` (`[tap b * 3 + e][o - o0]`).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn task<const VECS: usize, const U: usize>(
        &self,
        o0: usize,
        c: usize,
        a: usize,
        sums: &mut [[f64; 32]; 9],
    ) {
        use std::arch::x86_64::*;
        let d = self.dims;
        let [t_in, h_in, w_in] = d.input;
        let [t_out, h_out, w_out] = d.output;
        let [pt, ph, pw] = d.g.padding;
        let (p, plane_in) = (d.positions(), h_in * w_in);
        // The zero-bordered input frame: (h_out + 2) rows of (w_out + 2), the input at
        // (ph, pw) clipped to what the outputs read.
        let wp = w_out + 2;
        let mut padded = vec![0.0f32; (h_out + 2) * wp];
        let mut frame = [[0.0f32; 32]; 9];
        for (k, s) in self.samples.clone().enumerate() {
            let xs = &self.x[(s * d.c_in + c) * t_in * plane_in..][..t_in * plane_in];
            let gs = &self.gt[k * p * self.co_pad..][..p * self.co_pad];
            for t in 0..t_out {
                let ti = (t + a) as isize - pt as isize;
                if ti < 0 || ti >= t_in as isize {
                    continue;
                }
                let src = &xs[ti as usize * plane_in..][..plane_in];
                // Columns j of a padded row hold input column j - pw where that is inside.
                let (j0, j1) = (pw.min(wp), (w_in + pw).min(wp));
                for (r, row) in padded.chunks_exact_mut(wp).enumerate() {
                    let hi = r as isize - ph as isize;
                    if (0..h_in as isize).contains(&hi) && j0 < j1 {
                        let line = &src[hi as usize * w_in..][..w_in];
                        row[..j0].fill(0.0);
                        row[j0..j1].copy_from_slice(&line[..j1 - j0]);
                        row[j1..].fill(0.0);
                    } else {
                        row.fill(0.0);
                    }
                }
                let mut acc = [[_mm512_setzero_ps(); VECS]; 9];
                let gp = gs.as_ptr().add(t * h_out * w_out * self.co_pad + o0);
                let xp = padded.as_ptr();
                for h in 0..h_out {
                    let gh = gp.add(h * w_out * self.co_pad);
                    let xh = xp.add(h * wp);
                    let mut w = 0;
                    while w + U <= w_out {
                        self.positions::<VECS, U>(gh.add(w * self.co_pad), xh.add(w), wp, &mut acc);
                        w += U;
                    }
                    while w < w_out {
                        self.positions::<VECS, 1>(gh.add(w * self.co_pad), xh.add(w), wp, &mut acc);
                        w += 1;
                    }
                }
                for (tap, accs) in acc.iter().enumerate() {
                    for (v, &vec) in accs.iter().enumerate() {
                        _mm512_storeu_ps(frame[tap].as_mut_ptr().add(v * LANES), vec);
                    }
                    for (sum, &f) in sums[tap].iter_mut().zip(&frame[tap]).take(VECS * LANES) {
                        *sum += f64::from(f);
                    }
                }
            }
        }
    }

    /// `U` consecutive positions of one output row: `acc[b * 3 + e][v] += g[i][v] x[b][i + e]`
    /// for `i < U` in order, `g` at `gq` (`co_pad` floats per position), the padded input rows
    /// at `xq + b wp`. Each input value is loaded once and meets every position that reads it.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `gq` and `xq` must point into the task's operands as
    /// [`Job::task`] computes them.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn positions<const VECS: usize, const U: usize>(
        &self,
        gq: *const f32,
        xq: *const f32,
        wp: usize,
        acc: &mut [[std::arch::x86_64::__m512; VECS]; 9],
    ) {
        use std::arch::x86_64::*;
        let mut gv = [[_mm512_setzero_ps(); VECS]; U];
        for (i, g) in gv.iter_mut().enumerate() {
            for (v, g) in g.iter_mut().enumerate() {
                *g = _mm512_loadu_ps(gq.add(i * self.co_pad + v * LANES));
            }
        }
        for b in 0..3 {
            let xr = xq.add(b * wp);
            for (i, g) in gv.iter().enumerate() {
                for e in 0..3 {
                    let xv = _mm512_set1_ps(*xr.add(i + e));
                    for (v, &g) in g.iter().enumerate() {
                        acc[b * 3 + e][v] = _mm512_fmadd_ps(g, xv, acc[b * 3 + e][v]);
                    }
                }
            }
        }
    }

    /// Never called: [`applies`] is false off x86-64.
    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn task<const VECS: usize, const U: usize>(
        &self,
        _: usize,
        _: usize,
        _: usize,
        _: &mut [[f64; 32]; 9],
    ) {
        unreachable!("the direct weight gradient needs AVX-512F")
    }
}
