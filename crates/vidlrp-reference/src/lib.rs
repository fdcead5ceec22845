//! vidlrp-reference: the [`Backend`] ops as plain loops over `ndarray` arrays, generic over the
//! element type, written to be read.
//!
//! Every op below is its formula in the order it is written down: no packing, no SIMD, no
//! threads, no special cases. It is slow by design; it is the oracle the fast backends are held
//! against (`cargo xtask conformance`), and in `f64` it makes rounding small enough to check
//! conservation to 1e-10.
//!
//! ```
//! use vidlrp_core::{Backend, Composite, HostTensor, Linear, Relu, Sequential, Target};
//! use vidlrp_reference::Reference;
//!
//! let be = Reference::<f64>::new();
//! let w = HostTensor::new(vec![2, 3], vec![1.0, -1.0, 0.5, 0.25, 2.0, -1.0]).unwrap();
//! let mut net = Sequential::new(vec![]);
//! net.push(Linear::new(&be, "fc1", &w, None).unwrap());
//! net.push(Relu::new("relu1"));
//! net.push(Linear::new(&be, "fc2", &HostTensor::new(vec![1, 2], vec![1.0, 1.0]).unwrap(), None).unwrap());
//! let x = be.upload(&HostTensor::new(vec![1, 3], vec![1.0, 0.5, 2.0]).unwrap()).unwrap();
//! let e = net.explain(&be, &x, &Target::TopOne, &Composite::dtd(vec![0.0], vec![2.0])).unwrap();
//! // DTD conserves: the input relevance sums to the explained logit, up to what the
//! // stabiliser (eps = 1e-6 in every denominator) keeps back.
//! assert!((e.conservation()[0] - 1.0).abs() < 1e-5);
//! ```
//!
//! # Shapes
//! As [`Backend`]: volumes `[N, C, T, H, W]`, conv weights `[C_out, C_in, kT, kH, kW]`, dense
//! inputs `[N, D_in]`, dense weights `[D_out, D_in]`.

use std::marker::PhantomData;

use ndarray::{ArrayD, ArrayView5, Ix5, IxDyn};
use num_traits::Float;
use vidlrp_core::{
    operands, Backend, BinaryOp, Conv3dGeometry, Error, HostTensor, Pool3dGeometry, Result, UnaryOp,
};

/// The reference backend, computing in `E` (`f32` or `f64`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Reference<E> {
    element: PhantomData<E>,
}

impl<E: Float> Reference<E> {
    /// A reference backend computing in `E`.
    pub fn new() -> Self {
        Self {
            element: PhantomData,
        }
    }
}

/// `v` as `E` (exact for `f32` and `f64`).
fn cast<E: Float>(v: f32) -> E {
    E::from(v).unwrap_or_else(E::nan)
}

/// A 5-d view of a volume whose rank was checked by [`operands`].
fn volume<E>(t: &ArrayD<E>) -> ArrayView5<'_, E> {
    t.view()
        .into_dimensionality::<Ix5>()
        .expect("rank checked by operands")
}

/// `stab(b) = b + eps sign(b)` with `sign(0) = +1`.
fn stabilize<E: Float>(b: E, eps: E) -> E {
    if b >= E::zero() {
        b + eps
    } else {
        b - eps
    }
}

/// One elementwise map, as [`UnaryOp`] documents it.
fn unary<E: Float>(x: E, op: UnaryOp) -> E {
    let (zero, one) = (E::zero(), E::one());
    match op {
        UnaryOp::Positive => x.max(zero),
        UnaryOp::Negative => x.min(zero),
        UnaryOp::Square => x * x,
        UnaryOp::One => one,
        UnaryOp::Scale(k) => cast::<E>(k) * x,
        UnaryOp::StepPositive => {
            if x > zero {
                one
            } else {
                zero
            }
        }
        UnaryOp::StepNegative => {
            if x < zero {
                one
            } else {
                zero
            }
        }
        UnaryOp::AddPositive(g) => x + cast::<E>(g) * x.max(zero),
        UnaryOp::AddNegative(g) => x + cast::<E>(g) * x.min(zero),
    }
}

/// One elementwise combination, as [`BinaryOp`] documents it.
fn binary<E: Float>(a: E, b: E, op: BinaryOp) -> E {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::StabDiv(eps) => a / stabilize(b, cast(eps)),
        BinaryOp::GatePositive => a * if b > E::zero() { E::one() } else { E::zero() },
    }
}

/// The input index `o s + a - p` that kernel tap `a` of output position `o` reads, if it lies
/// inside `0..len`.
fn tap(o: usize, a: usize, stride: usize, padding: usize, len: usize) -> Option<usize> {
    (o * stride + a).checked_sub(padding).filter(|&i| i < len)
}

/// The output position `o` whose kernel tap `a` reads input index `i`, if there is one:
/// `o s + a - p = i`.
fn source(i: usize, a: usize, stride: usize, padding: usize, len: usize) -> Option<usize> {
    let s = (i + padding).checked_sub(a)?;
    (s % stride == 0 && s / stride < len).then_some(s / stride)
}

impl<E: Float + Send + Sync + 'static> Backend for Reference<E> {
    type Tensor = ArrayD<E>;

    fn name(&self) -> String {
        format!("reference ({})", std::any::type_name::<E>())
    }

    fn upload(&self, t: &HostTensor) -> Result<ArrayD<E>> {
        let data = t.data().iter().map(|&v| cast(v)).collect();
        ArrayD::from_shape_vec(IxDyn(t.shape()), data).map_err(|e| Error::shape(e.to_string()))
    }

    fn download(&self, t: &ArrayD<E>) -> Result<HostTensor> {
        let data = t.iter().map(|v| v.to_f32().unwrap_or(f32::NAN)).collect();
        HostTensor::new(t.shape().to_vec(), data)
    }

    fn shape(&self, t: &ArrayD<E>) -> Vec<usize> {
        t.shape().to_vec()
    }

    fn reshape(&self, t: &ArrayD<E>, shape: &[usize]) -> Result<ArrayD<E>> {
        let values: Vec<E> = t.iter().copied().collect();
        ArrayD::from_shape_vec(IxDyn(shape), values)
            .map_err(|_| Error::shape(format!("cannot reshape {:?} to {shape:?}", t.shape())))
    }

    fn fill_channels(&self, shape: &[usize], values: &[f32]) -> Result<ArrayD<E>> {
        if shape.len() < 2 || shape[1] != values.len() {
            return Err(Error::shape(format!(
                "{} channel values for shape {shape:?}",
                values.len()
            )));
        }
        Ok(ArrayD::from_shape_fn(IxDyn(shape), |i| cast(values[i[1]])))
    }

    fn unary(&self, x: &ArrayD<E>, op: UnaryOp) -> Result<ArrayD<E>> {
        Ok(x.mapv(|v| unary(v, op)))
    }

    fn binary(&self, a: &ArrayD<E>, b: &ArrayD<E>, op: BinaryOp) -> Result<ArrayD<E>> {
        if a.shape() != b.shape() {
            return Err(Error::shape(format!(
                "elementwise {op:?}: shapes {:?} and {:?} differ",
                a.shape(),
                b.shape()
            )));
        }
        Ok(ndarray::Zip::from(a)
            .and(b)
            .map_collect(|&x, &y| binary(x, y, op)))
    }

    /// `sum_i x[n, i]` in `f64`, in row-major order.
    fn sum_per_sample(&self, x: &ArrayD<E>) -> Result<Vec<f64>> {
        Ok(x.outer_iter()
            .map(|s| s.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).sum())
            .collect())
    }

    fn min_value(&self, x: &ArrayD<E>) -> Result<f32> {
        let m = x.iter().fold(E::infinity(), |m, &v| m.min(v));
        Ok(m.to_f32().unwrap_or(f32::NAN))
    }

    /// `z[n,o,t,h,w] = sum_{i,a,b,c} x[n,i,t s_t + a - p_t, h s_h + b - p_h, w s_w + c - p_w] w[o,i,a,b,c] + bias[o]`.
    fn conv3d(
        &self,
        x: &ArrayD<E>,
        w: &ArrayD<E>,
        bias: Option<&ArrayD<E>>,
        g: &Conv3dGeometry,
    ) -> Result<ArrayD<E>> {
        let [to, ho, wo] = operands::conv3d(x.shape(), w.shape(), g)?;
        let (n, c_out) = (x.shape()[0], w.shape()[0]);
        operands::bias("conv3d", bias.map(ArrayD::shape), c_out)?;
        let (xv, wv) = (volume(x), volume(w));
        let (c_in, [ti, hi, wi]) = (x.shape()[1], operands::extent(x.shape()));
        let [kt, kh, kw] = g.kernel;
        let (s, p) = (g.stride, g.padding);
        let out = ArrayD::from_shape_fn(IxDyn(&[n, c_out, to, ho, wo]), |idx| {
            let (b, o, t, h, ww) = (idx[0], idx[1], idx[2], idx[3], idx[4]);
            let mut z = bias.map_or(E::zero(), |bias| bias[[o]]);
            for i in 0..c_in {
                for a in 0..kt {
                    let Some(xt) = tap(t, a, s[0], p[0], ti) else {
                        continue;
                    };
                    for bb in 0..kh {
                        let Some(xh) = tap(h, bb, s[1], p[1], hi) else {
                            continue;
                        };
                        for c in 0..kw {
                            let Some(xw) = tap(ww, c, s[2], p[2], wi) else {
                                continue;
                            };
                            z = z + xv[[b, i, xt, xh, xw]] * wv[[o, i, a, bb, c]];
                        }
                    }
                }
            }
            z
        });
        Ok(out)
    }

    /// `dx[n,i,t,h,w] = sum_{o,a,b,c : t = t' s_t + a - p_t, ...} g[n,o,t',h',w'] w[o,i,a,b,c]`:
    /// each input value gathers from the outputs whose windows read it.
    fn conv3d_transposed(
        &self,
        gy: &ArrayD<E>,
        w: &ArrayD<E>,
        g: &Conv3dGeometry,
        input_shape: &[usize],
    ) -> Result<ArrayD<E>> {
        let output = operands::conv3d(input_shape, w.shape(), g)?;
        operands::conv3d_gradient(input_shape, w.shape(), gy.shape(), output)?;
        let (gv, wv) = (volume(gy), volume(w));
        let c_out = w.shape()[0];
        let [to, ho, wo] = output;
        let [kt, kh, kw] = g.kernel;
        let (s, p) = (g.stride, g.padding);
        Ok(ArrayD::from_shape_fn(IxDyn(input_shape), |idx| {
            let (b, i, t, h, ww) = (idx[0], idx[1], idx[2], idx[3], idx[4]);
            let mut dx = E::zero();
            for o in 0..c_out {
                for a in 0..kt {
                    let Some(ot) = source(t, a, s[0], p[0], to) else {
                        continue;
                    };
                    for bb in 0..kh {
                        let Some(oh) = source(h, bb, s[1], p[1], ho) else {
                            continue;
                        };
                        for c in 0..kw {
                            let Some(ow) = source(ww, c, s[2], p[2], wo) else {
                                continue;
                            };
                            dx = dx + gv[[b, o, ot, oh, ow]] * wv[[o, i, a, bb, c]];
                        }
                    }
                }
            }
            dx
        }))
    }

    /// `z[n,o] = sum_i x[n,i] w[o,i] + bias[o]`.
    fn linear(&self, x: &ArrayD<E>, w: &ArrayD<E>, bias: Option<&ArrayD<E>>) -> Result<ArrayD<E>> {
        let (n, d_in, d_out) = operands::linear(x.shape(), w.shape())?;
        operands::bias("linear", bias.map(ArrayD::shape), d_out)?;
        Ok(ArrayD::from_shape_fn(IxDyn(&[n, d_out]), |idx| {
            let (b, o) = (idx[0], idx[1]);
            let mut z = bias.map_or(E::zero(), |bias| bias[[o]]);
            for i in 0..d_in {
                z = z + x[[b, i]] * w[[o, i]];
            }
            z
        }))
    }

    /// `dx[n,i] = sum_o g[n,o] w[o,i]`.
    fn linear_transposed(&self, g: &ArrayD<E>, w: &ArrayD<E>) -> Result<ArrayD<E>> {
        let (n, d_out, d_in) = operands::linear_gradient(g.shape(), w.shape())?;
        Ok(ArrayD::from_shape_fn(IxDyn(&[n, d_in]), |idx| {
            let (b, i) = (idx[0], idx[1]);
            let mut dx = E::zero();
            for o in 0..d_out {
                dx = dx + g[[b, o]] * w[[o, i]];
            }
            dx
        }))
    }

    /// `y[j] = max_{i in pool(j)} x[i]` over the clipped window.
    fn max_pool3d(&self, x: &ArrayD<E>, g: &Pool3dGeometry) -> Result<ArrayD<E>> {
        let [to, ho, wo] = operands::pool3d(x.shape(), g)?;
        let xv = volume(x);
        let [ti, hi, wi] = operands::extent(x.shape());
        let (n, c) = (x.shape()[0], x.shape()[1]);
        Ok(ArrayD::from_shape_fn(IxDyn(&[n, c, to, ho, wo]), |idx| {
            let window = Window::new(g, [idx[2], idx[3], idx[4]], [ti, hi, wi]);
            let (b, ch) = (idx[0], idx[1]);
            let first = xv[[b, ch, window.t.0, window.h.0, window.w.0]];
            window.positions().fold(first, |m, [t, h, w]| {
                let v = xv[[b, ch, t, h, w]];
                if v > m {
                    v
                } else {
                    m
                }
            })
        }))
    }

    /// Each `g[j]` to the first maximum of window `j` in scan order (`t`, then `h`, then `w`).
    fn max_pool3d_transposed(
        &self,
        x: &ArrayD<E>,
        gy: &ArrayD<E>,
        g: &Pool3dGeometry,
    ) -> Result<ArrayD<E>> {
        let output = operands::pool3d(x.shape(), g)?;
        operands::pool3d_gradient(x.shape(), gy.shape(), output)?;
        let (xv, gv) = (volume(x), volume(gy));
        let extent = operands::extent(x.shape());
        let mut dx = ArrayD::zeros(x.shape());
        for ((b, ch, t, h, w), &gj) in gv.indexed_iter() {
            let window = Window::new(g, [t, h, w], extent);
            let mut best = [window.t.0, window.h.0, window.w.0];
            for pos in window.positions() {
                if xv[[b, ch, pos[0], pos[1], pos[2]]] > xv[[b, ch, best[0], best[1], best[2]]] {
                    best = pos;
                }
            }
            let slot = &mut dx[[b, ch, best[0], best[1], best[2]].as_slice()];
            *slot = *slot + gj;
        }
        Ok(dx)
    }

    /// `s[j] = sum_{i in pool(j)} x[i]` over the clipped window.
    fn sum_pool3d(&self, x: &ArrayD<E>, g: &Pool3dGeometry) -> Result<ArrayD<E>> {
        let [to, ho, wo] = operands::pool3d(x.shape(), g)?;
        let xv = volume(x);
        let extent = operands::extent(x.shape());
        let (n, c) = (x.shape()[0], x.shape()[1]);
        Ok(ArrayD::from_shape_fn(IxDyn(&[n, c, to, ho, wo]), |idx| {
            let window = Window::new(g, [idx[2], idx[3], idx[4]], extent);
            window
                .positions()
                .fold(E::zero(), |s, [t, h, w]| s + xv[[idx[0], idx[1], t, h, w]])
        }))
    }

    /// `y[i] = sum_{j : i in pool(j)} g[j]`.
    fn sum_pool3d_transposed(
        &self,
        gy: &ArrayD<E>,
        g: &Pool3dGeometry,
        input_shape: &[usize],
    ) -> Result<ArrayD<E>> {
        let output = operands::pool3d(input_shape, g)?;
        operands::pool3d_gradient(input_shape, gy.shape(), output)?;
        let gv = volume(gy);
        let extent = operands::extent(input_shape);
        let mut dx = ArrayD::zeros(input_shape);
        for ((b, ch, t, h, w), &gj) in gv.indexed_iter() {
            for [it, ih, iw] in Window::new(g, [t, h, w], extent).positions() {
                let slot = &mut dx[[b, ch, it, ih, iw].as_slice()];
                *slot = *slot + gj;
            }
        }
        Ok(dx)
    }

    /// `dw[o,i,a,b,c] = sum_{n,t,h,w} g[n,o,t,h,w] x[n,i,t s + a - p, ...]`: each weight
    /// gathers over every output position whose window tap reads an input value.
    fn conv3d_weight_gradient(
        &self,
        x: &ArrayD<E>,
        gy: &ArrayD<E>,
        g: &Conv3dGeometry,
        weight_shape: &[usize],
    ) -> Result<ArrayD<E>> {
        let [to, ho, wo] =
            operands::conv3d_weight_gradient(x.shape(), gy.shape(), weight_shape, g)?;
        let (xv, gv) = (volume(x), volume(gy));
        let [ti, hi, wi] = operands::extent(x.shape());
        let (s, p) = (g.stride, g.padding);
        let n = x.shape()[0];
        Ok(ArrayD::from_shape_fn(IxDyn(weight_shape), |idx| {
            let (o, i, a, bb, c) = (idx[0], idx[1], idx[2], idx[3], idx[4]);
            let mut dw = E::zero();
            for b in 0..n {
                for t in 0..to {
                    let Some(xt) = tap(t, a, s[0], p[0], ti) else {
                        continue;
                    };
                    for h in 0..ho {
                        let Some(xh) = tap(h, bb, s[1], p[1], hi) else {
                            continue;
                        };
                        for w in 0..wo {
                            let Some(xw) = tap(w, c, s[2], p[2], wi) else {
                                continue;
                            };
                            dw = dw + gv[[b, o, t, h, w]] * xv[[b, i, xt, xh, xw]];
                        }
                    }
                }
            }
            dw
        }))
    }

    /// `dw[o,i] = sum_n g[n,o] x[n,i]`.
    fn linear_weight_gradient(&self, x: &ArrayD<E>, gy: &ArrayD<E>) -> Result<ArrayD<E>> {
        let (n, d_in, d_out) = operands::linear_weight_gradient(x.shape(), gy.shape())?;
        Ok(ArrayD::from_shape_fn(IxDyn(&[d_out, d_in]), |idx| {
            let mut dw = E::zero();
            for b in 0..n {
                dw = dw + gy[[b, idx[0]]] * x[[b, idx[1]]];
            }
            dw
        }))
    }

    /// `b[c] = sum_{n, ...} g[n, c, ...]`.
    fn sum_channels(&self, gy: &ArrayD<E>) -> Result<ArrayD<E>> {
        if gy.ndim() < 2 {
            return Err(vidlrp_core::Error::shape(format!(
                "sum_channels needs at least 2 axes, got shape {:?}",
                gy.shape()
            )));
        }
        let c = gy.shape()[1];
        let mut out = ArrayD::zeros(IxDyn(&[c]));
        for (idx, &v) in gy.indexed_iter() {
            out[[idx[1]]] = out[[idx[1]]] + v;
        }
        Ok(out)
    }
}

/// The clipped input ranges `[start, end)` of one pooling window.
struct Window {
    t: (usize, usize),
    h: (usize, usize),
    w: (usize, usize),
}

impl Window {
    fn new(g: &Pool3dGeometry, out: [usize; 3], extent: [usize; 3]) -> Self {
        Self {
            t: g.window(0, out[0], extent[0]),
            h: g.window(1, out[1], extent[1]),
            w: g.window(2, out[2], extent[2]),
        }
    }

    /// The window's positions in scan order: `t`, then `h`, then `w`.
    fn positions(&self) -> impl Iterator<Item = [usize; 3]> + '_ {
        (self.t.0..self.t.1).flat_map(move |t| {
            (self.h.0..self.h.1).flat_map(move |h| (self.w.0..self.w.1).map(move |w| [t, h, w]))
        })
    }
}
