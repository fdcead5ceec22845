//! vidlrp-cpu: the pure-ndarray CPU [`Backend`] of vidlrp.
//!
//! Tensors are standard-layout `ndarray::ArrayD<f32>`. Convolutions run on [`gemm`], a packed
//! GEMM (AVX-512F or AVX2+FMA register kernels) that gathers im2col columns straight from the
//! input (tiled im2col + matrixmultiply on CPUs with neither); 3x3x3 stride-1 convolutions with
//! mixed-sign operands by Winograd's `F(2x2x2, 3x3x3)` on the same GEMM (sums of non-negative
//! products, the `z+` rule's, by direct summation, for relative precision); stride-1 transposes
//! run as convolutions with the flipped kernel, onto 1-3 input channels (AVX-512F) as direct
//! register-blocked loops, mostly-zero
//! gradients as gathers over their nonzeros; inputs whose channel planes are constants (z^B's
//! bounds) as one sum per pattern of kernel taps inside the input. Work is split over a private rayon pool of
//! [`Cpu::threads`] threads; results are identical across runs for a fixed thread count.
//! Tensors of any other layout are accepted (copied into standard layout first).
//!
//! ```
//! use ndarray::{ArrayD, IxDyn};
//! use vidlrp_core::{Backend, Conv3dGeometry};
//! use vidlrp_cpu::Cpu;
//!
//! let cpu = Cpu::new(2).unwrap();
//! // z[n,o,t,h,w] = sum_{i,a,b,c} x[n,i,t+a-1,h+b-1,w+c-1] w[o,i,a,b,c]: a 3x3x3 box filter.
//! let x = ArrayD::<f32>::ones(IxDyn(&[1, 1, 4, 4, 4]));
//! let w = ArrayD::<f32>::ones(IxDyn(&[1, 1, 3, 3, 3]));
//! let g = Conv3dGeometry { kernel: [3; 3], stride: [1; 3], padding: [1; 3] };
//! let z = cpu.conv3d(&x, &w, None, &g).unwrap();
//! assert_eq!(z[[0, 0, 1, 1, 1]], 27.0); // an interior voxel sees all 27 taps
//! assert_eq!(z[[0, 0, 0, 0, 0]], 8.0); // a corner sees 2 x 2 x 2
//! ```

mod conv;
mod elementwise;
pub mod gemm;
pub mod phases;
mod pool;

use std::borrow::Cow;

use conv::{ConvDims, Direction};
use gemm::dense::par_gemm;
use ndarray::{ArrayD, ArrayView2, ArrayViewMut2, IxDyn};
use pool::PoolDims;
use rayon::prelude::*;
use vidlrp_core::{
    operands, Backend, BinaryOp, Conv3dGeometry, Error, ErrorKind, HostTensor, Pool3dGeometry,
    Result, UnaryOp,
};

/// The CPU backend: an ndarray tensor type and a thread pool.
pub struct Cpu {
    pool: rayon::ThreadPool,
    threads: usize,
    /// Storage of the Winograd-transformed kernels, refilled by every such convolution (kept so
    /// that refilling costs no page faults).
    winograd_kernels: std::sync::Mutex<Vec<f32>>,
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpu")
            .field("threads", &self.threads)
            .finish()
    }
}

impl Cpu {
    /// A backend with `threads` worker threads (0: one per available core).
    ///
    /// **Errors** if the thread pool cannot be created.
    pub fn new(threads: usize) -> Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        } else {
            threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("vidlrp-cpu-{i}"))
            .build()
            .map_err(|e| Error::new(ErrorKind::Backend, format!("cannot start threads: {e}")))?;
        Ok(Self {
            pool,
            threads,
            winograd_kernels: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    /// `op(owned, other)` if `OWNED_FIRST`, else `op(other, owned)`, written into `owned`'s
    /// buffer where it is in standard layout (else computed as [`Backend::binary`] does).
    fn binary_into<const OWNED_FIRST: bool>(
        &self,
        owned: ArrayD<f32>,
        other: &ArrayD<f32>,
        op: BinaryOp,
    ) -> Result<ArrayD<f32>> {
        if !owned.is_standard_layout() {
            return if OWNED_FIRST {
                self.binary(&owned, other, op)
            } else {
                self.binary(other, &owned, op)
            };
        }
        let other = standard(other);
        let other: &ArrayD<f32> = &other;
        if OWNED_FIRST {
            same_shape(&owned, other, op)?;
        } else {
            same_shape(other, &owned, op)?;
        }
        let mut owned = owned;
        let out = owned.as_slice_mut().expect("standard layout");
        self.run(|| elementwise::binary_in_place::<OWNED_FIRST>(out, slice(other), op));
        Ok(owned)
    }
}

/// **Errors** unless the operands `a`, `b` of the elementwise `op` have one shape.
fn same_shape(a: &ArrayD<f32>, b: &ArrayD<f32>, op: BinaryOp) -> Result<()> {
    if a.shape() == b.shape() {
        return Ok(());
    }
    Err(Error::shape(format!(
        "elementwise {op:?}: shapes {:?} and {:?} differ",
        a.shape(),
        b.shape()
    )))
}

/// Borrows `t` if it is in standard (row-major, contiguous) layout, else copies it into one:
/// tensors built by hand (transposed or sliced views made owned) are accepted, not a panic.
fn standard(t: &ArrayD<f32>) -> Cow<'_, ArrayD<f32>> {
    if t.is_standard_layout() && t.as_slice().is_some() {
        Cow::Borrowed(t)
    } else {
        Cow::Owned(t.as_standard_layout().into_owned())
    }
}

/// Rebinds each tensor argument to a standard-layout version of itself.
macro_rules! standard {
    ($($t:ident),+) => {
        $(
            let $t = standard($t);
            let $t: &ArrayD<f32> = &$t;
        )+
    };
}

fn slice(t: &ArrayD<f32>) -> &[f32] {
    t.as_slice()
        .expect("vidlrp-cpu tensors are in standard layout")
}

fn from_vec(shape: &[usize], data: Vec<f32>) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("length matches shape")
}

/// The checked extents of one convolution (see [`operands::conv3d`]).
fn conv_dims(x_shape: &[usize], w_shape: &[usize], g: &Conv3dGeometry) -> Result<ConvDims> {
    let output = operands::conv3d(x_shape, w_shape, g)?;
    Ok(ConvDims {
        c_in: x_shape[1],
        input: operands::extent(x_shape),
        output,
        g: *g,
    })
}

/// The checked extents of one pooling (see [`operands::pool3d`]).
fn pool_dims(x_shape: &[usize], g: &Pool3dGeometry) -> Result<PoolDims> {
    let output = operands::pool3d(x_shape, g)?;
    Ok(PoolDims {
        input: operands::extent(x_shape),
        output,
        g: *g,
    })
}

impl Backend for Cpu {
    type Tensor = ArrayD<f32>;

    fn name(&self) -> String {
        format!(
            "cpu ({} thread{})",
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        )
    }

    fn within<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }

    fn upload(&self, t: &HostTensor) -> Result<ArrayD<f32>> {
        Ok(from_vec(t.shape(), t.data().to_vec()))
    }

    fn upload_owned(&self, t: HostTensor) -> Result<ArrayD<f32>> {
        let (shape, data) = t.into_parts();
        Ok(from_vec(&shape, data))
    }

    fn download(&self, t: &ArrayD<f32>) -> Result<HostTensor> {
        standard!(t);
        HostTensor::new(t.shape().to_vec(), slice(t).to_vec())
    }

    fn shape(&self, t: &ArrayD<f32>) -> Vec<usize> {
        t.shape().to_vec()
    }

    fn reshape(&self, t: &ArrayD<f32>, shape: &[usize]) -> Result<ArrayD<f32>> {
        standard!(t);
        if t.len() != shape.iter().product::<usize>() {
            return Err(Error::shape(format!(
                "cannot reshape {:?} to {shape:?}",
                t.shape()
            )));
        }
        Ok(from_vec(shape, slice(t).to_vec()))
    }

    fn fill_channels(&self, shape: &[usize], values: &[f32]) -> Result<ArrayD<f32>> {
        if shape.len() < 2 || shape[1] != values.len() {
            return Err(Error::shape(format!(
                "{} channel values for shape {shape:?}",
                values.len()
            )));
        }
        let inner: usize = shape[2..].iter().product();
        let mut data = Vec::with_capacity(shape.iter().product());
        for _ in 0..shape[0] {
            for &v in values {
                data.extend(std::iter::repeat_n(v, inner));
            }
        }
        Ok(from_vec(shape, data))
    }

    fn unary(&self, x: &ArrayD<f32>, op: UnaryOp) -> Result<ArrayD<f32>> {
        standard!(x);
        Ok(from_vec(
            x.shape(),
            self.run(|| elementwise::unary(slice(x), op)),
        ))
    }

    fn binary(&self, a: &ArrayD<f32>, b: &ArrayD<f32>, op: BinaryOp) -> Result<ArrayD<f32>> {
        standard!(a, b);
        same_shape(a, b, op)?;
        Ok(from_vec(
            a.shape(),
            self.run(|| elementwise::binary(slice(a), slice(b), op)),
        ))
    }

    fn binary_owned(&self, a: ArrayD<f32>, b: &ArrayD<f32>, op: BinaryOp) -> Result<ArrayD<f32>> {
        self.binary_into::<true>(a, b, op)
    }

    fn binary_owned_rhs(
        &self,
        a: &ArrayD<f32>,
        b: ArrayD<f32>,
        op: BinaryOp,
    ) -> Result<ArrayD<f32>> {
        self.binary_into::<false>(b, a, op)
    }

    fn sum_per_sample(&self, x: &ArrayD<f32>) -> Result<Vec<f64>> {
        standard!(x);
        let n = x.shape().first().copied().unwrap_or(0);
        if n == 0 {
            return Ok(Vec::new());
        }
        let per = x.len() / n;
        Ok(slice(x)
            .chunks(per.max(1))
            .map(|s| {
                // Fixed-size blocks, each summed in 8 interleaved lanes (independent additions
                // the CPU can overlap and vectorise) then in order: the same result for every
                // thread count.
                let parts: Vec<f64> = self.run(|| {
                    s.par_chunks(1 << 14)
                        .map(|c| {
                            let mut lanes = [0.0f64; 8];
                            let blocks = c.chunks_exact(8);
                            let tail: f64 = blocks.remainder().iter().map(|&v| f64::from(v)).sum();
                            for b in blocks {
                                for (l, &v) in lanes.iter_mut().zip(b) {
                                    *l += f64::from(v);
                                }
                            }
                            lanes.iter().sum::<f64>() + tail
                        })
                        .collect()
                });
                parts.iter().sum()
            })
            .collect::<Vec<f64>>())
    }

    fn min_value(&self, x: &ArrayD<f32>) -> Result<f32> {
        standard!(x);
        Ok(self.run(|| {
            slice(x)
                .par_iter()
                .copied()
                .reduce(|| f32::INFINITY, f32::min)
        }))
    }

    fn conv3d(
        &self,
        x: &ArrayD<f32>,
        w: &ArrayD<f32>,
        bias: Option<&ArrayD<f32>>,
        g: &Conv3dGeometry,
    ) -> Result<ArrayD<f32>> {
        standard!(x, w);
        let bias = bias.map(standard);
        let bias = bias.as_deref();
        let dims = conv_dims(x.shape(), w.shape(), g)?;
        let (n, c_out) = (x.shape()[0], w.shape()[0]);
        operands::bias("conv3d", bias.map(ndarray::ArrayBase::shape), c_out)?;
        let len = n * c_out * dims.positions();
        let mut out = self.run(|| elementwise::zeros(len));
        let (x, w, b) = (slice(x), slice(w), bias.map(slice));
        self.run(|| {
            let path = conv::choose(Direction::Forward, &dims, n, c_out, x, w);
            let u = &self.winograd_kernels;
            conv::run(
                &path,
                Direction::Forward,
                &dims,
                n,
                c_out,
                x,
                w,
                b,
                u,
                &mut out,
            );
        });
        let [to, ho, wo] = dims.output;
        Ok(from_vec(&[n, c_out, to, ho, wo], out))
    }

    fn conv3d_weight_gradient(
        &self,
        x: &ArrayD<f32>,
        gy: &ArrayD<f32>,
        g: &Conv3dGeometry,
        weight_shape: &[usize],
    ) -> Result<ArrayD<f32>> {
        standard!(x, gy);
        operands::conv3d_weight_gradient(x.shape(), gy.shape(), weight_shape, g)?;
        let dims = conv_dims(x.shape(), weight_shape, g)?;
        let (n, c_out) = (x.shape()[0], weight_shape[0]);
        let mut dw = vec![0.0f32; c_out * dims.rows()];
        self.run(|| {
            if conv::weight::applies(&dims) {
                conv::weight::conv_weight_gradient_direct(
                    &dims,
                    n,
                    c_out,
                    slice(x),
                    slice(gy),
                    &mut dw,
                );
            } else {
                conv::im2col::conv_weight_gradient(&dims, n, c_out, slice(x), slice(gy), &mut dw);
            }
        });
        Ok(from_vec(weight_shape, dw))
    }

    fn linear_weight_gradient(&self, x: &ArrayD<f32>, gy: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        standard!(x, gy);
        let (n, d_in, d_out) = operands::linear_weight_gradient(x.shape(), gy.shape())?;
        let xv = ArrayView2::from_shape((n, d_in), slice(x)).expect("input shape");
        let gv = ArrayView2::from_shape((n, d_out), slice(gy)).expect("gradient shape");
        let mut dw = vec![0.0f32; d_out * d_in];
        self.run(|| {
            let dv = ArrayViewMut2::from_shape((d_out, d_in), &mut dw[..]).expect("shape");
            par_gemm(1.0, gv.t(), xv, 0.0, dv);
        });
        Ok(from_vec(&[d_out, d_in], dw))
    }

    fn sum_channels(&self, gy: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        standard!(gy);
        let shape = gy.shape();
        if shape.len() < 2 {
            return Err(vidlrp_core::Error::shape(format!(
                "sum_channels needs at least 2 axes, got shape {shape:?}"
            )));
        }
        let (n, c) = (shape[0], shape[1]);
        let inner: usize = shape[2..].iter().product();
        let data = slice(gy);
        let sums: Vec<f32> = self.run(|| {
            (0..c)
                .into_par_iter()
                .map(|ch| {
                    let mut s = 0.0f32;
                    for b in 0..n {
                        let at = (b * c + ch) * inner;
                        s += data[at..at + inner].iter().sum::<f32>();
                    }
                    s
                })
                .collect()
        });
        Ok(from_vec(&[c], sums))
    }

    fn conv3d_transposed(
        &self,
        gy: &ArrayD<f32>,
        w: &ArrayD<f32>,
        g: &Conv3dGeometry,
        input_shape: &[usize],
    ) -> Result<ArrayD<f32>> {
        standard!(gy, w);
        let dims = conv_dims(input_shape, w.shape(), g)?;
        operands::conv3d_gradient(input_shape, w.shape(), gy.shape(), dims.output)?;
        let (n, c_out) = (input_shape[0], w.shape()[0]);
        let len = n * dims.input_len();
        let mut dx = self.run(|| elementwise::zeros(len));
        let (gy, w) = (slice(gy), slice(w));
        self.run(|| {
            let path = conv::choose(Direction::Transposed, &dims, n, c_out, gy, w);
            let u = &self.winograd_kernels;
            conv::run(
                &path,
                Direction::Transposed,
                &dims,
                n,
                c_out,
                gy,
                w,
                None,
                u,
                &mut dx,
            );
        });
        Ok(from_vec(input_shape, dx))
    }

    fn conv3d_bounded(
        &self,
        x: &ArrayD<f32>,
        w: &ArrayD<f32>,
        k: &ArrayD<f32>,
        g: &Conv3dGeometry,
    ) -> Result<ArrayD<f32>> {
        let shape = x.shape().to_vec();
        let dims = conv_dims(&shape, k.shape(), g)?;
        let (n, c_out) = (shape[0], k.shape()[0]);
        let one: Vec<usize> = [&[1], &shape[1..]].concat();
        let ones = self.fill_channels(&one, &vec![1.0; shape[1]])?;
        // The bound term is one sample's, the same for all: summed once and subtracted from
        // each where the batch would take the constant-plane path for it (so the bits are the
        // composition's); elsewhere (Winograd for the whole batch) the composition itself.
        let constant = matches!(
            conv::choose(
                Direction::Forward,
                &dims,
                1,
                c_out,
                slice(&ones),
                slice(&standard(k))
            ),
            conv::Path::Constant(_)
        ) && !conv::winograd::applies(&dims, c_out, n);
        if !constant || n == 0 {
            return vidlrp_core::rules::bounded_sums(self, x, w, k, |input, kernel| {
                self.conv3d(input, kernel, None, g)
            });
        }
        let bound = self.conv3d(&ones, k, None, g)?;
        let mut z = self.conv3d(x, w, None, g)?;
        let b = slice(&bound);
        let zs = z.as_slice_mut().expect("standard layout");
        self.run(|| {
            for zs in zs.chunks_mut(b.len()) {
                elementwise::binary_in_place::<true>(zs, b, BinaryOp::Sub);
            }
        });
        Ok(z)
    }

    fn conv3d_transposed_bounded(
        &self,
        s: &ArrayD<f32>,
        w: &ArrayD<f32>,
        k: &ArrayD<f32>,
        x: &ArrayD<f32>,
        g: &Conv3dGeometry,
    ) -> Result<ArrayD<f32>> {
        let shape = x.shape().to_vec();
        let dims = conv_dims(&shape, w.shape(), g)?;
        if w.shape() != k.shape() || !conv::direct::applies(&dims) {
            return vidlrp_core::rules::bounded_relevance(
                self,
                x,
                |kernel| self.conv3d_transposed(s, kernel, g, &shape),
                w,
                k,
            );
        }
        standard!(s, w, k, x);
        operands::conv3d_gradient(&shape, w.shape(), s.shape(), dims.output)?;
        let (n, c_out) = (shape[0], w.shape()[0]);
        let per = dims.input_len();
        let mut out = self.run(|| elementwise::zeros(n * per));
        let (s, w, k, x) = (slice(s), slice(w), slice(k), slice(x));
        self.run(|| conv::direct::conv_transposed_bounded(&dims, n, c_out, s, w, k, x, &mut out));
        Ok(from_vec(&shape, out))
    }

    fn linear(
        &self,
        x: &ArrayD<f32>,
        w: &ArrayD<f32>,
        bias: Option<&ArrayD<f32>>,
    ) -> Result<ArrayD<f32>> {
        standard!(x, w);
        let bias = bias.map(standard);
        let bias = bias.as_deref();
        let (n, d_in, d_out) = operands::linear(x.shape(), w.shape())?;
        operands::bias("linear", bias.map(ndarray::ArrayBase::shape), d_out)?;
        let xv = ArrayView2::from_shape((n, d_in), slice(x)).expect("shape");
        let wv = ArrayView2::from_shape((d_out, d_in), slice(w)).expect("shape");
        let mut out = match bias {
            Some(b) => {
                let row = slice(b);
                (0..n)
                    .flat_map(|_| row.iter().copied())
                    .collect::<Vec<f32>>()
            }
            None => vec![0.0; n * d_out],
        };
        self.run(|| {
            if n <= gemm::dense::SMALL_BATCH {
                gemm::dense::small_batch_linear(slice(x), slice(w), &mut out, n, d_in);
            } else {
                let ov = ArrayViewMut2::from_shape((n, d_out), &mut out[..]).expect("shape");
                par_gemm(1.0, xv, wv.t(), 1.0, ov);
            }
        });
        Ok(from_vec(&[n, d_out], out))
    }

    fn linear_transposed(&self, g: &ArrayD<f32>, w: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        standard!(g, w);
        let (n, d_out, d_in) = operands::linear_gradient(g.shape(), w.shape())?;
        let gv = ArrayView2::from_shape((n, d_out), slice(g)).expect("shape");
        let wv = ArrayView2::from_shape((d_out, d_in), slice(w)).expect("shape");
        let mut out = vec![0.0f32; n * d_in];
        self.run(|| {
            if n <= gemm::dense::SMALL_BATCH {
                gemm::dense::small_batch_linear_transposed(slice(g), slice(w), &mut out, n, d_in);
            } else {
                let ov = ArrayViewMut2::from_shape((n, d_in), &mut out[..]).expect("shape");
                par_gemm(1.0, gv, wv, 0.0, ov);
            }
        });
        Ok(from_vec(&[n, d_in], out))
    }

    fn max_pool3d(&self, x: &ArrayD<f32>, g: &Pool3dGeometry) -> Result<ArrayD<f32>> {
        standard!(x);
        let d = pool_dims(x.shape(), g)?;
        let len = x.shape()[0] * x.shape()[1] * d.output.iter().product::<usize>();
        let mut y = self.run(|| elementwise::zeros(len));
        self.run(|| pool::max_pool(&d, slice(x), &mut y));
        let [to, ho, wo] = d.output;
        Ok(from_vec(&[x.shape()[0], x.shape()[1], to, ho, wo], y))
    }

    fn max_pool3d_transposed(
        &self,
        x: &ArrayD<f32>,
        gy: &ArrayD<f32>,
        g: &Pool3dGeometry,
    ) -> Result<ArrayD<f32>> {
        standard!(x, gy);
        let d = pool_dims(x.shape(), g)?;
        operands::pool3d_gradient(x.shape(), gy.shape(), d.output)?;
        let len = x.len();
        let mut dx = self.run(|| elementwise::zeros(len));
        self.run(|| pool::max_pool_transposed(&d, slice(x), slice(gy), &mut dx));
        Ok(from_vec(x.shape(), dx))
    }

    fn sum_pool3d(&self, x: &ArrayD<f32>, g: &Pool3dGeometry) -> Result<ArrayD<f32>> {
        standard!(x);
        let d = pool_dims(x.shape(), g)?;
        let len = x.shape()[0] * x.shape()[1] * d.output.iter().product::<usize>();
        let mut y = self.run(|| elementwise::zeros(len));
        self.run(|| pool::sum_pool(&d, slice(x), &mut y));
        let [to, ho, wo] = d.output;
        Ok(from_vec(&[x.shape()[0], x.shape()[1], to, ho, wo], y))
    }

    fn sum_pool3d_transposed(
        &self,
        gy: &ArrayD<f32>,
        g: &Pool3dGeometry,
        input_shape: &[usize],
    ) -> Result<ArrayD<f32>> {
        standard!(gy);
        let d = pool_dims(input_shape, g)?;
        operands::pool3d_gradient(input_shape, gy.shape(), d.output)?;
        let len = input_shape.iter().product();
        let mut dx = self.run(|| elementwise::zeros(len));
        self.run(|| pool::sum_pool_transposed(&d, slice(gy), &mut dx));
        Ok(from_vec(input_shape, dx))
    }

    fn sum_pool3d_proportional(
        &self,
        x: &ArrayD<f32>,
        r: &ArrayD<f32>,
        g: &Pool3dGeometry,
        eps: f32,
    ) -> Result<ArrayD<f32>> {
        standard!(x, r);
        let d = pool_dims(x.shape(), g)?;
        operands::pool3d_gradient(x.shape(), r.shape(), d.output)?;
        let len = x.len();
        let mut dx = self.run(|| elementwise::zeros(len));
        self.run(|| pool::sum_pool_proportional(&d, slice(x), slice(r), eps, &mut dx));
        Ok(from_vec(x.shape(), dx))
    }
}
