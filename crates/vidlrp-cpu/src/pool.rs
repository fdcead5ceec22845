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

    /// Calls `f(j, window)` for every output position `j` in order.
    #[inline]
    fn for_each_window(&self, mut f: impl FnMut(usize, Window)) {
        let [t_in, h_in, w_in] = self.input;
        let [to_n, ho_n, wo_n] = self.output;
        let mut j = 0;
        for to in 0..to_n {
            let t = self.g.window(0, to, t_in);
            for ho in 0..ho_n {
                let h = self.g.window(1, ho, h_in);
                for wo in 0..wo_n {
                    let w = self.g.window(2, wo, w_in);
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
    let mut best: Option<(usize, f32)> = None;
    window.for_each(|i| {
        let v = x[i];
        match best {
            Some((_, b)) if !(v > b || v.is_nan()) => {}
            _ => best = Some((i, v)),
        }
    });
    best.map(|(i, _)| i)
}

pub(crate) fn max_pool(d: &PoolDims, x: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(d.out_len())
        .zip(x.par_chunks(d.in_len()))
        .for_each(|(yp, xp)| {
            d.for_each_window(|j, w| yp[j] = argmax(xp, w).map_or(f32::NEG_INFINITY, |i| xp[i]));
        });
}

pub(crate) fn max_pool_transposed(d: &PoolDims, x: &[f32], g: &[f32], dx: &mut [f32]) {
    dx.par_chunks_mut(d.in_len())
        .zip(x.par_chunks(d.in_len()))
        .zip(g.par_chunks(d.out_len()))
        .for_each(|((dxp, xp), gp)| {
            d.for_each_window(|j, w| {
                if let Some(i) = argmax(xp, w) {
                    dxp[i] += gp[j];
                }
            });
        });
}

pub(crate) fn sum_pool(d: &PoolDims, x: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(d.out_len())
        .zip(x.par_chunks(d.in_len()))
        .for_each(|(yp, xp)| {
            d.for_each_window(|j, w| {
                let mut s = 0.0f32;
                w.for_each(|i| s += xp[i]);
                yp[j] = s;
            });
        });
}

pub(crate) fn sum_pool_transposed(d: &PoolDims, g: &[f32], dx: &mut [f32]) {
    dx.par_chunks_mut(d.in_len())
        .zip(g.par_chunks(d.out_len()))
        .for_each(|(dxp, gp)| {
            d.for_each_window(|j, w| w.for_each(|i| dxp[i] += gp[j]));
        });
}
