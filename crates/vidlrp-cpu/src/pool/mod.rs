//! 3-d pooling kernels over clipped windows, one `(n, c)` plane per task.

#[cfg(target_arch = "x86_64")]
mod avx512;

use rayon::prelude::*;
use vidlrp_core::{BinaryOp, Pool3dGeometry};

#[derive(Debug, Clone, Copy)]
pub(crate) struct PoolDims {
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub g: Pool3dGeometry,
}

/// A clipped window: input ranges along `t`, `h`, `w`, and the row strides of the input plane.
#[derive(Clone, Copy)]
struct Window {
    t: (usize, usize),
    h: (usize, usize),
    w: (usize, usize),
    h_in: usize,
    w_in: usize,
}

impl Window {
    /// Calls `f(flat input index)` for every element in scan order (`t`, then `h`, then `w`).
    #[inline]
    fn for_each(&self, mut f: impl FnMut(usize)) {
        for t in self.t.0..self.t.1 {
            for h in self.h.0..self.h.1 {
                let row = (t * self.h_in + h) * self.w_in;
                for i in row + self.w.0..row + self.w.1 {
                    f(i);
                }
            }
        }
    }
}

impl PoolDims {
    fn in_len(&self) -> usize {
        self.input.iter().product()
    }
    fn out_len(&self) -> usize {
        self.output.iter().product()
    }

    /// The clipped window of every output position along each axis.
    fn windows(&self) -> [Vec<(usize, usize)>; 3] {
        std::array::from_fn(|a| {
            (0..self.output[a])
                .map(|o| self.g.window(a, o, self.input[a]))
                .collect()
        })
    }

    /// Calls `f(j, window)` for every output position `j` in order (`wins` from
    /// [`Self::windows`]).
    #[inline]
    fn for_each_window(&self, wins: &[Vec<(usize, usize)>; 3], mut f: impl FnMut(usize, Window)) {
        let [_, h_in, w_in] = self.input;
        let mut j = 0;
        for &t in &wins[0] {
            for &h in &wins[1] {
                for &w in &wins[2] {
                    f(
                        j,
                        Window {
                            t,
                            h,
                            w,
                            h_in,
                            w_in,
                        },
                    );
                    j += 1;
                }
            }
        }
    }
}

/// Index of the first maximum in scan order (NaN wins, as in PyTorch); `None` if empty.
#[inline]
fn argmax(x: &[f32], window: Window) -> Option<usize> {
    let mut best_i = usize::MAX;
    let mut best = f32::NEG_INFINITY;
    for t in window.t.0..window.t.1 {
        for h in window.h.0..window.h.1 {
            let row = (t * window.h_in + h) * window.w_in;
            for (i, &v) in x[row + window.w.0..row + window.w.1].iter().enumerate() {
                if best_i == usize::MAX || v > best || v.is_nan() {
                    best = v;
                    best_i = row + window.w.0 + i;
                }
            }
        }
    }
    (best_i != usize::MAX).then_some(best_i)
}

impl PoolDims {
    /// [`Self::tiled_2x2`] where the windows cover the whole input (no rows or columns left
    /// over at the far edges).
    fn tiled_2x2_exact(&self) -> Option<usize> {
        self.tiled_2x2().filter(|&kt| {
            let k = [kt, 2, 2];
            (0..3).all(|a| self.output[a] * k[a] == self.input[a])
        })
    }

    /// `Some(kT)` for `[kT, 2, 2]` windows (`kT` 1 or 2) with stride = kernel, no padding and
    /// no window clipped (C3D's pool1 to pool4): those take [`tiled`].
    fn tiled_2x2(&self) -> Option<usize> {
        let kt = self.g.kernel[0];
        let k = [kt, 2, 2];
        ((kt == 1 || kt == 2)
            && self.g.kernel == k
            && self.g.stride == k
            && self.g.padding == [0; 3]
            && (0..3).all(|a| self.output[a] * k[a] <= self.input[a]))
        .then_some(kt)
    }
}

/// The `[KT, 2, 2]` windows along one output row: each window's maximum into `best` and its
/// winner's code `a * 4 + b * 2 + e` (offsets along t, h, w) into `code`: the first maximum in
/// scan order, NaN winning, by the same comparisons as [`argmax`]. `rows[a][b]` is input row
/// `(2 ho + b)` of frame `KT to + a`, `2 best.len()` values long. Branch-free, so it vectorizes.
#[inline(always)]
fn row_winners<const KT: usize>(rows: &[[&[f32]; 2]; KT], best: &mut [f32], code: &mut [u8]) {
    let n = best.len();
    let rows = rows.map(|r| r.map(|row| &row[..2 * n]));
    for (wo, (bv, cv)) in best.iter_mut().zip(code.iter_mut()).enumerate() {
        let mut m = rows[0][0][2 * wo];
        let mut c = 0u8;
        for (a, ra) in rows.iter().enumerate() {
            for (b, row) in ra.iter().enumerate() {
                for e in 0..2 {
                    let v = row[2 * wo + e];
                    let take = (v > m) | v.is_nan();
                    m = if take { v } else { m };
                    c = if take { (a * 4 + b * 2 + e) as u8 } else { c };
                }
            }
        }
        *bv = m;
        *cv = c;
    }
}

/// The sum of window `wo` of a `[KT, 2, 2]` row of windows (`rows` as in [`row_winners`]), in
/// scan order: the one order [`Tiled::Sum`] and [`Tiled::Proportional`] share, so their sums
/// are the same bits.
#[inline(always)]
fn window_sum<const KT: usize>(rows: &[[&[f32]; 2]; KT], wo: usize) -> f32 {
    let mut sum = 0.0f32;
    for row in rows.iter().flatten() {
        sum += row[2 * wo];
        sum += row[2 * wo + 1];
    }
    sum
}

/// What a tiled pass over one plane computes.
enum Tiled<'a> {
    /// `y` = each window's maximum.
    Max { y: &'a mut [f32] },
    /// `dx[winner] += g` (winner-take-all), `dx` zeros on entry.
    Route { g: &'a [f32], dx: &'a mut [f32] },
    /// `y` = each window's sum (in scan order, as [`sum_pool`]).
    Sum { y: &'a mut [f32] },
    /// `dx[i] += g` for every element `i` of each window.
    Spread { g: &'a [f32], dx: &'a mut [f32] },
    /// `dx[i] = (0 + r / stab(s, eps)) x[i]` for every element `i` of each window, `s` the
    /// window's sum as [`Tiled::Sum`] adds it: what spreading `r / stab(s)` onto zeros and
    /// multiplying by `x` gives, bit for bit, in one pass.
    Proportional {
        r: &'a [f32],
        eps: f32,
        dx: &'a mut [f32],
    },
}

/// One plane with `[KT, 2, 2]` windows, output row by output row (`x` is the input plane, unused
/// by [`Tiled::Spread`]). Each input row of a window is read or written as `2 wo` contiguous
/// values, so the loops vectorize.
#[inline(always)]
fn tiled_plane<const KT: usize>(d: &PoolDims, x: &[f32], mut job: Tiled<'_>) {
    let [_, h_in, w_in] = d.input;
    let [to_n, ho_n, wo_n] = d.output;
    let mut best = vec![0.0f32; wo_n];
    let mut code = vec![0u8; wo_n];
    for to in 0..to_n {
        for ho in 0..ho_n {
            let start = |a: usize, b: usize| ((to * KT + a) * h_in + 2 * ho + b) * w_in;
            let out = (to * ho_n + ho) * wo_n..(to * ho_n + ho + 1) * wo_n;
            let input_rows = || -> [[&[f32]; 2]; KT] {
                std::array::from_fn(|a| {
                    std::array::from_fn(|b| &x[start(a, b)..start(a, b) + w_in])
                })
            };
            match &mut job {
                Tiled::Max { y } => row_winners::<KT>(&input_rows(), &mut y[out], &mut code),
                Tiled::Route { g, dx } => {
                    row_winners::<KT>(&input_rows(), &mut best, &mut code);
                    for a in 0..KT {
                        for b in 0..2 {
                            let row = &mut dx[start(a, b)..start(a, b) + 2 * wo_n];
                            let win = (a * 4 + b * 2) as u8;
                            for (pair, (&g, &c)) in row
                                .chunks_exact_mut(2)
                                .zip(g[out.clone()].iter().zip(&code))
                            {
                                pair[0] += if c == win { g } else { 0.0 };
                                pair[1] += if c == win + 1 { g } else { 0.0 };
                            }
                        }
                    }
                }
                Tiled::Sum { y } => {
                    let rows = input_rows();
                    for (wo, yv) in y[out].iter_mut().enumerate() {
                        *yv = window_sum(&rows, wo);
                    }
                }
                Tiled::Proportional { r, eps, dx } => {
                    let rows = input_rows();
                    for (wo, sv) in best.iter_mut().enumerate() {
                        let sum = window_sum(&rows, wo);
                        // `0 +` as the spread onto zeros adds it (turns -0 into +0).
                        *sv = 0.0 + BinaryOp::StabDiv(*eps).apply(r[out.start + wo], sum);
                    }
                    for a in 0..KT {
                        for b in 0..2 {
                            let xs = &x[start(a, b)..start(a, b) + 2 * wo_n];
                            let row = &mut dx[start(a, b)..start(a, b) + 2 * wo_n];
                            for ((pair, xp), &s) in
                                row.chunks_exact_mut(2).zip(xs.chunks_exact(2)).zip(&best)
                            {
                                pair[0] = s * xp[0];
                                pair[1] = s * xp[1];
                            }
                        }
                    }
                }
                Tiled::Spread { g, dx } => {
                    for a in 0..KT {
                        for b in 0..2 {
                            let row = &mut dx[start(a, b)..start(a, b) + 2 * wo_n];
                            for (pair, &g) in row.chunks_exact_mut(2).zip(&g[out.clone()]) {
                                pair[0] += g;
                                pair[1] += g;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// [`tiled_plane`] for `kT` 1 or 2, compiled for AVX-512F where the CPU has it.
fn tiled(kt: usize, d: &PoolDims, x: &[f32], mut job: Tiled<'_>) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        let winners = match &mut job {
            Tiled::Max { y } => Some(avx512::Job::Max { y: y.as_mut_ptr() }),
            Tiled::Route { g, dx } => Some(avx512::Job::Route {
                g: g.as_ptr(),
                dx: dx.as_mut_ptr(),
            }),
            _ => None,
        };
        if let Some(w) = winners {
            // SAFETY: the CPU has AVX-512F; `tiled_2x2` holds (the callers check it); `y` and
            // `g` are the plane's outputs, `dx` its inputs.
            unsafe { avx512_plane(kt, d, x, w) };
            return;
        }
        #[target_feature(enable = "avx512f")]
        unsafe fn wide(kt: usize, d: &PoolDims, x: &[f32], job: Tiled<'_>) {
            match kt {
                1 => tiled_plane::<1>(d, x, job),
                _ => tiled_plane::<2>(d, x, job),
            }
        }
        // SAFETY: the CPU has AVX-512F.
        unsafe { wide(kt, d, x, job) };
        return;
    }
    match kt {
        1 => tiled_plane::<1>(d, x, job),
        _ => tiled_plane::<2>(d, x, job),
    }
}

/// [`avx512::plane`] for `kT` 1 or 2.
///
/// # Safety
/// As [`avx512::plane`].
#[cfg(target_arch = "x86_64")]
unsafe fn avx512_plane(kt: usize, d: &PoolDims, x: &[f32], job: avx512::Job) {
    match kt {
        1 => avx512::plane::<1>(d, x, job),
        _ => avx512::plane::<2>(d, x, job),
    }
}

/// Winner-take-all routing (`dx[winner] = g`, every other input `+0`) into a new buffer, each
/// input written once without zero-filling it first, where the windows tile the input exactly
/// and the CPU has AVX-512F; `None` elsewhere (then [`max_pool_transposed`] onto zeros).
pub(crate) fn max_pool_transposed_fresh(d: &PoolDims, x: &[f32], g: &[f32]) -> Option<Vec<f32>> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        let kt = d.tiled_2x2_exact()?;
        let len = x.len();
        let mut dx = Vec::with_capacity(len);
        dx.spare_capacity_mut()[..len]
            .par_chunks_mut(d.in_len())
            .zip(x.par_chunks(d.in_len()))
            .zip(g.par_chunks(d.out_len()))
            .for_each(|((dxp, xp), gp)| {
                let job = avx512::Job::Route {
                    g: gp.as_ptr(),
                    dx: dxp.as_mut_ptr().cast::<f32>(),
                };
                // SAFETY: the CPU has AVX-512F; the windows tile the plane exactly; `gp` is
                // the plane's outputs, `dxp` its inputs (written, never read).
                unsafe { avx512_plane(kt, d, xp, job) };
            });
        // SAFETY: the windows tile every plane exactly, so each input was written once.
        unsafe { dx.set_len(len) };
        return Some(dx);
    }
    let _ = (d, x, g);
    None
}

pub(crate) fn max_pool(d: &PoolDims, x: &[f32], y: &mut [f32]) {
    if let Some(kt) = d.tiled_2x2() {
        y.par_chunks_mut(d.out_len())
            .zip(x.par_chunks(d.in_len()))
            .for_each(|(y, xp)| tiled(kt, d, xp, Tiled::Max { y }));
        return;
    }
    let wins = d.windows();
    y.par_chunks_mut(d.out_len())
        .zip(x.par_chunks(d.in_len()))
        .for_each(|(yp, xp)| {
            d.for_each_window(&wins, |j, w| {
                yp[j] = argmax(xp, w).map_or(f32::NEG_INFINITY, |i| xp[i]);
            });
        });
}

pub(crate) fn max_pool_transposed(d: &PoolDims, x: &[f32], g: &[f32], dx: &mut [f32]) {
    if let Some(kt) = d.tiled_2x2() {
        dx.par_chunks_mut(d.in_len())
            .zip(x.par_chunks(d.in_len()))
            .zip(g.par_chunks(d.out_len()))
            .for_each(|((dx, xp), g)| tiled(kt, d, xp, Tiled::Route { g, dx }));
        return;
    }
    let wins = d.windows();
    dx.par_chunks_mut(d.in_len())
        .zip(x.par_chunks(d.in_len()))
        .zip(g.par_chunks(d.out_len()))
        .for_each(|((dxp, xp), gp)| {
            d.for_each_window(&wins, |j, w| {
                if let Some(i) = argmax(xp, w) {
                    dxp[i] += gp[j];
                }
            });
        });
}

pub(crate) fn sum_pool(d: &PoolDims, x: &[f32], y: &mut [f32]) {
    if let Some(kt) = d.tiled_2x2() {
        y.par_chunks_mut(d.out_len())
            .zip(x.par_chunks(d.in_len()))
            .for_each(|(y, xp)| tiled(kt, d, xp, Tiled::Sum { y }));
        return;
    }
    let wins = d.windows();
    y.par_chunks_mut(d.out_len())
        .zip(x.par_chunks(d.in_len()))
        .for_each(|(yp, xp)| {
            d.for_each_window(&wins, |j, w| {
                let mut s = 0.0f32;
                w.for_each(|i| s += xp[i]);
                yp[j] = s;
            });
        });
}

pub(crate) fn sum_pool_transposed(d: &PoolDims, g: &[f32], dx: &mut [f32]) {
    if let Some(kt) = d.tiled_2x2() {
        dx.par_chunks_mut(d.in_len())
            .zip(g.par_chunks(d.out_len()))
            .for_each(|(dx, g)| tiled(kt, d, &[], Tiled::Spread { g, dx }));
        return;
    }
    let wins = d.windows();
    dx.par_chunks_mut(d.in_len())
        .zip(g.par_chunks(d.out_len()))
        .for_each(|(dxp, gp)| {
            d.for_each_window(&wins, |j, w| w.for_each(|i| dxp[i] += gp[j]));
        });
}

/// Proportional relevance through sum pooling, `dx[i] = x[i] sum_{j : i in pool(j)} r[j] /
/// stab(s[j], eps)` (`s` the window sums), the same values as [`sum_pool`], `StabDiv`,
/// [`sum_pool_transposed`] and `Mul` one after the other, bit for bit: one pass per plane
/// where the `[kT, 2, 2]` windows tile the input exactly, else spread then multiply, each
/// plane while it is in cache. `dx` is zeros on entry.
pub(crate) fn sum_pool_proportional(d: &PoolDims, x: &[f32], r: &[f32], eps: f32, dx: &mut [f32]) {
    if let Some(kt) = d.tiled_2x2_exact() {
        dx.par_chunks_mut(d.in_len())
            .zip(x.par_chunks(d.in_len()))
            .zip(r.par_chunks(d.out_len()))
            .for_each(|((dx, xp), r)| tiled(kt, d, xp, Tiled::Proportional { r, eps, dx }));
        return;
    }
    let wins = d.windows();
    dx.par_chunks_mut(d.in_len())
        .zip(x.par_chunks(d.in_len()))
        .zip(r.par_chunks(d.out_len()))
        .for_each(|((dxp, xp), rp)| {
            d.for_each_window(&wins, |j, w| {
                let mut sum = 0.0f32;
                w.for_each(|i| sum += xp[i]);
                let s = BinaryOp::StabDiv(eps).apply(rp[j], sum);
                w.for_each(|i| dxp[i] += s);
            });
            for (v, &xv) in dxp.iter_mut().zip(xp) {
                *v *= xv;
            }
        });
}
