//! 3-d pooling kernels over clipped windows, one `(n, c)` plane per task.

use rayon::prelude::*;
use vidlrp_core::Pool3dGeometry;

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

pub(crate) fn max_pool(d: &PoolDims, x: &[f32], y: &mut [f32]) {
    let wins = d.windows();
    y.par_chunks_mut(d.out_len())
        .zip(x.par_chunks(d.in_len()))
        .for_each(|(yp, xp)| {
            d.for_each_window(&wins, |j, w| {
                yp[j] = argmax(xp, w).map_or(f32::NEG_INFINITY, |i| xp[i])
            });
        });
}

pub(crate) fn max_pool_transposed(d: &PoolDims, x: &[f32], g: &[f32], dx: &mut [f32]) {
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
    let wins = d.windows();
    dx.par_chunks_mut(d.in_len())
        .zip(g.par_chunks(d.out_len()))
        .for_each(|(dxp, gp)| {
            d.for_each_window(&wins, |j, w| w.for_each(|i| dxp[i] += gp[j]));
        });
}
