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
