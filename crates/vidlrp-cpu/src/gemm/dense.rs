//! Matrix products split over the backend's threads.
//!
//! The kernel is matrixmultiply's `sgemm`, called directly rather than through
//! `ndarray::linalg::general_mat_mul`: another crate in a build (ndarray-linalg) may turn on
//! ndarray's `blas` feature, which would silently route products to a BLAS library (or fail to
//! link) and change results; this backend computes the same way in every build.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// `c = alpha a b + beta c` for any strides, single-threaded.
fn general_mat_mul(
    alpha: f32,
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    beta: f32,
    c: &mut ArrayViewMut2<'_, f32>,
) {
    let _timer = crate::phases::Timer::new(crate::phases::Phase::Arithmetic);
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(k == k2 && c.dim() == (m, n), "gemm shapes");
    if m == 0 || n == 0 {
        return;
    }
    let (sa, sb) = (a.strides(), b.strides());
    let sc = [c.strides()[0], c.strides()[1]];
    // SAFETY: the pointers and strides come from live views of the stated shapes, and `c` is
    // borrowed mutably for the call, so no other access aliases it.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            sa[0],
            sa[1],
            b.as_ptr(),
            sb[0],
            sb[1],
            beta,
            c.as_mut_ptr(),
            sc[0],
            sc[1],
        );
    }
}

/// `c = alpha a b + beta c`, with `c`'s longer axis split into one block per rayon thread.
///
/// Every element of `c` is computed by exactly one thread in the same order whatever the split,
/// so results are identical for a fixed thread count.
pub(crate) fn par_gemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
) {
    let threads = rayon::current_num_threads().max(1);
    let (m, n) = c.dim();
    let work = m * n * a.ncols();
    if threads == 1 || work < (1 << 18) {
        let mut c = c;
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        return;
    }
    split(alpha, a, b, beta, c, threads);
}

fn split(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
    parts: usize,
) {
    let (m, n) = c.dim();
    if parts <= 1 || (m < 16 && n < 16) {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        return;
    }
    let left = parts / 2;
    if n >= m {
        // Split columns; keep blocks a multiple of 16 wide for the micro-kernels.
        let mid = ((n * left / parts) / 16 * 16).clamp(1, n - 1);
        let (c1, c2) = c.split_at(Axis(1), mid);
        let (b1, b2) = b.split_at(Axis(1), mid);
        rayon::join(
            || split(alpha, a, b1, beta, c1, left),
            || split(alpha, a, b2, beta, c2, parts - left),
        );
    } else {
        let mid = ((m * left / parts) / 8 * 8).clamp(1, m - 1);
        let (c1, c2) = c.split_at(Axis(0), mid);
        let (a1, a2) = a.split_at(Axis(0), mid);
        rayon::join(
            || split(alpha, a1, b, beta, c1, left),
            || split(alpha, a2, b, beta, c2, parts - left),
        );
    }
}

/// Batches up to this size take the dense-layer paths below instead of a GEMM: with few rows
/// a GEMM spends its time packing the weight matrix, while these read it once, in place.
pub(crate) const SMALL_BATCH: usize = 8;

/// `sum_i a[i] b[i]` with eight independent accumulators (vectorises; fixed order).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `y[n, o] += x[n, :] . w[o, :]` for a small batch (`x` `[N, K]`, `w` `[M, K]`, `y` `[N, M]`,
/// all row-major), in parallel over blocks of `o`: each weight row is read once for all samples.
pub(crate) fn small_batch_linear(x: &[f32], w: &[f32], y: &mut [f32], n: usize, k: usize) {
    use rayon::prelude::*;
    let m = w.len().checked_div(k).unwrap_or(0);
    if m == 0 || n == 0 {
        return;
    }
    // Transposed output blocks [o][n] so each task owns a contiguous slice.
    let block = 64;
    let mut yt = vec![0.0f32; m * n];
    yt.par_chunks_mut(block * n)
        .zip(w.par_chunks(block * k))
        .for_each(|(yb, wb)| {
            let _timer = crate::phases::Timer::new(crate::phases::Phase::Arithmetic);
            for (wo, yo) in wb.chunks_exact(k).zip(yb.chunks_exact_mut(n)) {
                for (s, v) in yo.iter_mut().enumerate() {
                    *v = dot(&x[s * k..(s + 1) * k], wo);
                }
            }
        });
    for s in 0..n {
        for o in 0..m {
            y[s * m + o] += yt[o * n + s];
        }
    }
}

/// `dx[n, :] = sum_o g[n, o] w[o, :]` for a small batch (`g` `[N, M]`, `w` `[M, K]`, `dx`
/// `[N, K]`), in parallel over column blocks of `dx`; zero entries of `g` are skipped.
pub(crate) fn small_batch_linear_transposed(
    g: &[f32],
    w: &[f32],
    dx: &mut [f32],
    n: usize,
    k: usize,
) {
    use rayon::prelude::*;
    let m = g.len().checked_div(n).unwrap_or(0);
    if k == 0 || n == 0 {
        return;
    }
    let block = 1024.min(k);
    let blocks = k.div_ceil(block);
    // Work on [block][n][cols] so each task owns one contiguous region.
    let mut parts = vec![0.0f32; blocks * n * block];
    parts
        .par_chunks_mut(n * block)
        .enumerate()
        .for_each(|(bi, part)| {
            let _timer = crate::phases::Timer::new(crate::phases::Phase::Arithmetic);
            let (c0, c1) = (bi * block, ((bi + 1) * block).min(k));
            for o in 0..m {
                let wr = &w[o * k + c0..o * k + c1];
                for s in 0..n {
                    let go = g[s * m + o];
                    if go == 0.0 {
                        continue;
                    }
                    for (d, &wv) in part[s * block..s * block + (c1 - c0)].iter_mut().zip(wr) {
                        *d += go * wv;
                    }
                }
            }
        });
    for bi in 0..blocks {
        let (c0, c1) = (bi * block, ((bi + 1) * block).min(k));
        for s in 0..n {
            let src = &parts[(bi * n + s) * block..(bi * n + s) * block + (c1 - c0)];
            dx[s * k + c0..s * k + c1].copy_from_slice(src);
        }
    }
}
