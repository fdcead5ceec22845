//! vidlrp-cpu: the pure-ndarray CPU [`Backend`] of vidlrp.
//!
//! Tensors are [`CpuTensor`]s, `f32` values in row-major order. Convolutions run on [`gemm`],
//! a packed GEMM (AVX-512F or AVX2+FMA register kernels) that gathers im2col columns straight
//! from the input (tiled im2col + matrixmultiply on CPUs with neither); 3x3x3 stride-1 convolutions with
//! mixed-sign operands by Winograd's `F(2x2x2, 3x3x3)` on the same GEMM (sums of non-negative
//! products, the `z+` rule's, by direct summation, for relative precision); stride-1 transposes
//! run as convolutions with the flipped kernel, onto 1-3 input channels (AVX-512F) as direct
//! register-blocked loops, mostly-zero
//! gradients as gathers over their nonzeros; inputs whose channel planes are constants (z^B's
//! bounds) as one sum per pattern of kernel taps inside the input. Work is split over a private rayon pool of
//! [`Cpu::threads`] threads; results are identical across runs for a fixed thread count.
//! ndarray arrays of any layout convert into tensors (`CpuTensor::from`).
//!
//! ```
//! use ndarray::{ArrayD, IxDyn};
//! use vidlrp_core::{Backend, Conv3dGeometry};
//! use vidlrp_cpu::Cpu;
//!
//! let cpu = Cpu::new(2).unwrap();
//! // z[n,o,t,h,w] = sum_{i,a,b,c} x[n,i,t+a-1,h+b-1,w+c-1] w[o,i,a,b,c]: a 3x3x3 box filter.
//! let x = ArrayD::<f32>::ones(IxDyn(&[1, 1, 4, 4, 4])).into();
//! let w = ArrayD::<f32>::ones(IxDyn(&[1, 1, 3, 3, 3])).into();
//! let g = Conv3dGeometry { kernel: [3; 3], stride: [1; 3], padding: [1; 3] };
//! let z = cpu.conv3d(&x, &w, None, &g).unwrap();
//! assert_eq!(z.view()[[0, 0, 1, 1, 1]], 27.0); // an interior voxel sees all 27 taps
//! assert_eq!(z.view()[[0, 0, 0, 0, 0]], 8.0); // a corner sees 2 x 2 x 2
//! ```

mod conv;
mod elementwise;
pub mod gemm;
pub mod phases;
mod pool;
mod tensor;

pub use tensor::CpuTensor;

use conv::{ConvDims, Direction};
use gemm::dense::par_gemm;
use ndarray::{ArrayView2, ArrayViewMut2};
use pool::PoolDims;
use rayon::prelude::*;
use vidlrp_core::{
    operands, Backend, BinaryOp, Conv3dGeometry, Error, ErrorKind, HostTensor, Pool3dGeometry,
    Result, UnaryOp,
};

/// Values per task of [`Cpu`]'s per-sample sums.
const SUM_BLOCK: usize = 1 << 14;

/// The CPU backend: its tensor type ([`CpuTensor`]) and a thread pool.
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

    /// [`Backend::conv3d`], rectified (`max(y, 0)`) with `relu`.
    fn conv3d_forward(
        &self,
        x: &CpuTensor,
        w: &CpuTensor,
        bias: Option<&CpuTensor>,
        g: &Conv3dGeometry,
        relu: bool,
    ) -> Result<CpuTensor> {
        let dims = conv_dims(x.shape(), w.shape(), g)?;
        let (n, c_out) = (x.shape()[0], w.shape()[0]);
        operands::bias("conv3d", bias.map(CpuTensor::shape), c_out)?;
        let (x, w, b) = (x.as_slice(), w.as_slice(), bias.map(CpuTensor::as_slice));
        let u = &self.winograd_kernels;
        let out = self.run(|| conv::forward(&dims, n, c_out, x, w, b, relu, u));
        let [to, ho, wo] = dims.output;
        Ok(CpuTensor::owned(&[n, c_out, to, ho, wo], out))
    }

    /// `op(owned, other)` if `OWNED_FIRST`, else `op(other, owned)`, written into `owned`'s
    /// buffer (made first where `owned` shares or borrows its values).
    fn binary_into<const OWNED_FIRST: bool>(
        &self,
        mut owned: CpuTensor,
        other: &CpuTensor,
        op: BinaryOp,
    ) -> Result<CpuTensor> {
        if OWNED_FIRST {
            same_shape(&owned, other, op)?;
        } else {
            same_shape(other, &owned, op)?;
        }
        let out = owned.make_mut();
        self.run(|| elementwise::binary_in_place::<OWNED_FIRST>(out, other.as_slice(), op));
        Ok(owned)
    }
}

/// **Errors** unless the operands `a`, `b` of the elementwise `op` have one shape.
fn same_shape(a: &CpuTensor, b: &CpuTensor, op: BinaryOp) -> Result<()> {
    if a.shape() == b.shape() {
        return Ok(());
    }
    Err(Error::shape(format!(
        "elementwise {op:?}: shapes {:?} and {:?} differ",
        a.shape(),
        b.shape()
    )))
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
    type Tensor = CpuTensor;

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

    fn upload(&self, t: &HostTensor) -> Result<CpuTensor> {
        Ok(CpuTensor::owned(t.shape(), t.data().to_vec()))
    }

    fn upload_owned(&self, t: HostTensor) -> Result<CpuTensor> {
        let (shape, data) = t.into_parts();
        Ok(CpuTensor::owned(&shape, data))
    }

    fn download(&self, t: &CpuTensor) -> Result<HostTensor> {
        HostTensor::new(t.shape().to_vec(), t.as_slice().to_vec())
    }

    fn shape(&self, t: &CpuTensor) -> Vec<usize> {
        t.shape().to_vec()
    }

    fn reshape(&self, t: &CpuTensor, shape: &[usize]) -> Result<CpuTensor> {
        if t.len() != shape.iter().product::<usize>() {
            return Err(Error::shape(format!(
                "cannot reshape {:?} to {shape:?}",
                t.shape()
            )));
        }
        Ok(t.reshaped(shape))
    }

    fn fill_channels(&self, shape: &[usize], values: &[f32]) -> Result<CpuTensor> {
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
        Ok(CpuTensor::owned(shape, data))
    }

    fn unary(&self, x: &CpuTensor, op: UnaryOp) -> Result<CpuTensor> {
        Ok(CpuTensor::owned(
            x.shape(),
            self.run(|| elementwise::unary(x.as_slice(), op)),
        ))
    }

    fn binary(&self, a: &CpuTensor, b: &CpuTensor, op: BinaryOp) -> Result<CpuTensor> {
        same_shape(a, b, op)?;
        Ok(CpuTensor::owned(
            a.shape(),
            self.run(|| elementwise::binary(a.as_slice(), b.as_slice(), op)),
        ))
    }

    fn binary_owned(&self, a: CpuTensor, b: &CpuTensor, op: BinaryOp) -> Result<CpuTensor> {
        self.binary_into::<true>(a, b, op)
    }

    fn binary_owned_rhs(&self, a: &CpuTensor, b: CpuTensor, op: BinaryOp) -> Result<CpuTensor> {
        self.binary_into::<false>(b, a, op)
    }

    fn sum_per_sample(&self, x: &CpuTensor) -> Result<Vec<f64>> {
        let n = x.shape().first().copied().unwrap_or(0);
        if n == 0 {
            return Ok(Vec::new());
        }
        let per = x.len() / n;
        // Each sample in fixed-size blocks, every block of every sample one task of a single
        // parallel loop, then each sample's blocks added in order: the same result for every
        // thread count.
        let blocks = per.div_ceil(SUM_BLOCK).max(1);
        let x = x.as_slice();
        let parts: Vec<f64> = self.run(|| {
            (0..n * blocks)
                .into_par_iter()
                .map(|k| {
                    let start = (k / blocks) * per + (k % blocks) * SUM_BLOCK;
                    let end = ((k / blocks + 1) * per).min(start + SUM_BLOCK);
                    elementwise::sum_f64(&x[start..end])
                })
                .collect()
        });
        Ok(parts.chunks(blocks).map(|p| p.iter().sum()).collect())
    }

    fn min_value(&self, x: &CpuTensor) -> Result<f32> {
        Ok(self.run(|| {
            x.as_slice()
                .par_iter()
                .copied()
                .reduce(|| f32::INFINITY, f32::min)
        }))
    }

    fn conv3d(
        &self,
        x: &CpuTensor,
        w: &CpuTensor,
        bias: Option<&CpuTensor>,
        g: &Conv3dGeometry,
    ) -> Result<CpuTensor> {
        self.conv3d_forward(x, w, bias, g, false)
    }

    fn conv3d_relu(
        &self,
        x: &CpuTensor,
        w: &CpuTensor,
        bias: Option<&CpuTensor>,
        g: &Conv3dGeometry,
    ) -> Result<CpuTensor> {
        self.conv3d_forward(x, w, bias, g, true)
    }

    fn conv3d_weight_gradient(
        &self,
        x: &CpuTensor,
        gy: &CpuTensor,
        g: &Conv3dGeometry,
        weight_shape: &[usize],
    ) -> Result<CpuTensor> {
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
                    x.as_slice(),
                    gy.as_slice(),
                    &mut dw,
                );
            } else {
                conv::im2col::conv_weight_gradient(
                    &dims,
                    n,
                    c_out,
                    x.as_slice(),
                    gy.as_slice(),
                    &mut dw,
                );
            }
        });
        Ok(CpuTensor::owned(weight_shape, dw))
    }

    fn linear_weight_gradient(&self, x: &CpuTensor, gy: &CpuTensor) -> Result<CpuTensor> {
        let (n, d_in, d_out) = operands::linear_weight_gradient(x.shape(), gy.shape())?;
        let xv = ArrayView2::from_shape((n, d_in), x.as_slice()).expect("input shape");
        let gv = ArrayView2::from_shape((n, d_out), gy.as_slice()).expect("gradient shape");
        let mut dw = vec![0.0f32; d_out * d_in];
        self.run(|| {
            let dv = ArrayViewMut2::from_shape((d_out, d_in), &mut dw[..]).expect("shape");
            par_gemm(1.0, gv.t(), xv, 0.0, dv);
        });
        Ok(CpuTensor::owned(&[d_out, d_in], dw))
    }

    fn sum_channels(&self, gy: &CpuTensor) -> Result<CpuTensor> {
        let shape = gy.shape();
        if shape.len() < 2 {
            return Err(vidlrp_core::Error::shape(format!(
                "sum_channels needs at least 2 axes, got shape {shape:?}"
            )));
        }
        let (n, c) = (shape[0], shape[1]);
        let inner: usize = shape[2..].iter().product();
        let data = gy.as_slice();
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
        Ok(CpuTensor::owned(&[c], sums))
    }

    fn conv3d_transposed(
        &self,
        gy: &CpuTensor,
        w: &CpuTensor,
        g: &Conv3dGeometry,
        input_shape: &[usize],
    ) -> Result<CpuTensor> {
        let dims = conv_dims(input_shape, w.shape(), g)?;
        operands::conv3d_gradient(input_shape, w.shape(), gy.shape(), dims.output)?;
        let (n, c_out) = (input_shape[0], w.shape()[0]);
        let len = n * dims.input_len();
        let mut dx = self.run(|| elementwise::zeros(len));
        let (gy, w) = (gy.as_slice(), w.as_slice());
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
        Ok(CpuTensor::owned(input_shape, dx))
    }

    fn conv3d_bounded(
        &self,
        x: &CpuTensor,
        w: &CpuTensor,
        k: &CpuTensor,
        g: &Conv3dGeometry,
    ) -> Result<CpuTensor> {
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
                ones.as_slice(),
                k.as_slice()
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
        let b = bound.as_slice();
        let zs = z.make_mut();
        self.run(|| {
            for zs in zs.chunks_mut(b.len()) {
                elementwise::binary_in_place::<true>(zs, b, BinaryOp::Sub);
            }
        });
        Ok(z)
    }

    fn conv3d_transposed_bounded(
        &self,
        s: &CpuTensor,
        w: &CpuTensor,
        k: &CpuTensor,
        x: &CpuTensor,
        g: &Conv3dGeometry,
    ) -> Result<CpuTensor> {
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
        operands::conv3d_gradient(&shape, w.shape(), s.shape(), dims.output)?;
        let (n, c_out) = (shape[0], w.shape()[0]);
        let per = dims.input_len();
        let mut out = self.run(|| elementwise::zeros(n * per));
        let (s, w, k, x) = (s.as_slice(), w.as_slice(), k.as_slice(), x.as_slice());
        self.run(|| conv::direct::conv_transposed_bounded(&dims, n, c_out, s, w, k, x, &mut out));
        Ok(CpuTensor::owned(&shape, out))
    }

    fn linear(&self, x: &CpuTensor, w: &CpuTensor, bias: Option<&CpuTensor>) -> Result<CpuTensor> {
        let (n, d_in, d_out) = operands::linear(x.shape(), w.shape())?;
        operands::bias("linear", bias.map(CpuTensor::shape), d_out)?;
        let xv = ArrayView2::from_shape((n, d_in), x.as_slice()).expect("shape");
        let wv = ArrayView2::from_shape((d_out, d_in), w.as_slice()).expect("shape");
        let mut out = match bias {
            Some(b) => {
                let row = b.as_slice();
                (0..n)
                    .flat_map(|_| row.iter().copied())
                    .collect::<Vec<f32>>()
            }
            None => vec![0.0; n * d_out],
        };
        self.run(|| {
            if n <= gemm::dense::SMALL_BATCH {
                gemm::dense::small_batch_linear(x.as_slice(), w.as_slice(), &mut out, n, d_in);
            } else {
                let ov = ArrayViewMut2::from_shape((n, d_out), &mut out[..]).expect("shape");
                par_gemm(1.0, xv, wv.t(), 1.0, ov);
            }
        });
        Ok(CpuTensor::owned(&[n, d_out], out))
    }

    fn linear_transposed(&self, g: &CpuTensor, w: &CpuTensor) -> Result<CpuTensor> {
        let (n, d_out, d_in) = operands::linear_gradient(g.shape(), w.shape())?;
        let gv = ArrayView2::from_shape((n, d_out), g.as_slice()).expect("shape");
        let wv = ArrayView2::from_shape((d_out, d_in), w.as_slice()).expect("shape");
        let mut out = vec![0.0f32; n * d_in];
        self.run(|| {
            if n <= gemm::dense::SMALL_BATCH {
                gemm::dense::small_batch_linear_transposed(
                    g.as_slice(),
                    w.as_slice(),
                    &mut out,
                    n,
                    d_in,
                );
            } else {
                let ov = ArrayViewMut2::from_shape((n, d_in), &mut out[..]).expect("shape");
                par_gemm(1.0, gv, wv, 0.0, ov);
            }
        });
        Ok(CpuTensor::owned(&[n, d_in], out))
    }

    fn max_pool3d(&self, x: &CpuTensor, g: &Pool3dGeometry) -> Result<CpuTensor> {
        let d = pool_dims(x.shape(), g)?;
        let len = x.shape()[0] * x.shape()[1] * d.output.iter().product::<usize>();
        let mut y = self.run(|| elementwise::zeros(len));
        self.run(|| pool::max_pool(&d, x.as_slice(), &mut y));
        let [to, ho, wo] = d.output;
        Ok(CpuTensor::owned(
            &[x.shape()[0], x.shape()[1], to, ho, wo],
            y,
        ))
    }

    fn max_pool3d_transposed(
        &self,
        x: &CpuTensor,
        gy: &CpuTensor,
        g: &Pool3dGeometry,
    ) -> Result<CpuTensor> {
        let d = pool_dims(x.shape(), g)?;
        operands::pool3d_gradient(x.shape(), gy.shape(), d.output)?;
        if let Some(dx) =
            self.run(|| pool::max_pool_transposed_fresh(&d, x.as_slice(), gy.as_slice()))
        {
            return Ok(CpuTensor::owned(x.shape(), dx));
        }
        let len = x.len();
        let mut dx = self.run(|| elementwise::zeros(len));
        self.run(|| pool::max_pool_transposed(&d, x.as_slice(), gy.as_slice(), &mut dx));
        Ok(CpuTensor::owned(x.shape(), dx))
    }

    fn sum_pool3d(&self, x: &CpuTensor, g: &Pool3dGeometry) -> Result<CpuTensor> {
        let d = pool_dims(x.shape(), g)?;
        let len = x.shape()[0] * x.shape()[1] * d.output.iter().product::<usize>();
        let mut y = self.run(|| elementwise::zeros(len));
        self.run(|| pool::sum_pool(&d, x.as_slice(), &mut y));
        let [to, ho, wo] = d.output;
        Ok(CpuTensor::owned(
            &[x.shape()[0], x.shape()[1], to, ho, wo],
            y,
        ))
    }

    fn sum_pool3d_transposed(
        &self,
        gy: &CpuTensor,
        g: &Pool3dGeometry,
        input_shape: &[usize],
    ) -> Result<CpuTensor> {
        let d = pool_dims(input_shape, g)?;
        operands::pool3d_gradient(input_shape, gy.shape(), d.output)?;
        let len = input_shape.iter().product();
        let mut dx = self.run(|| elementwise::zeros(len));
        self.run(|| pool::sum_pool_transposed(&d, gy.as_slice(), &mut dx));
        Ok(CpuTensor::owned(input_shape, dx))
    }

    fn sum_pool3d_proportional(
        &self,
        x: &CpuTensor,
        r: &CpuTensor,
        g: &Pool3dGeometry,
        eps: f32,
    ) -> Result<CpuTensor> {
        let d = pool_dims(x.shape(), g)?;
        operands::pool3d_gradient(x.shape(), r.shape(), d.output)?;
        let len = x.len();
        let mut dx = self.run(|| elementwise::zeros(len));
        self.run(|| pool::sum_pool_proportional(&d, x.as_slice(), r.as_slice(), eps, &mut dx));
        Ok(CpuTensor::owned(x.shape(), dx))
    }
}
