//! The [`Executor`] seam: where buffers live and how kernels and GEMMs run.
//!
//! [`crate::GpuBackend`] plans every op once against this trait; [`crate::CudaExecutor`] runs the
//! plans on a GPU (NVRTC kernels, cuBLAS), and, with the `host-emulation` feature,
//! [`crate::HostExecutor`] runs the very same kernel source compiled as C++ on the CPU.

use crate::plan::{ConvDims, GemmCall, PoolDims};
use vidlrp_core::Result;

/// One kernel launch with its arguments, in the order of the `kernels.cu` signature.
///
/// The fields are the kernel's parameters under the names `kernels.cu` gives them (each
/// variant's doc shows the signature), so they carry no docs of their own.
#[allow(missing_docs)]
#[derive(Debug)]
pub enum Kernel<'a, B> {
    /// `vidlrp_unary(x, y, n, op, k)`.
    Unary {
        x: &'a B,
        y: &'a mut B,
        n: i64,
        op: i32,
        k: f32,
    },
    /// `vidlrp_binary(a, b, y, n, op, eps)`.
    Binary {
        a: &'a B,
        b: &'a B,
        y: &'a mut B,
        n: i64,
        op: i32,
        eps: f32,
    },
    /// `vidlrp_channels(y, values, n, channels, inner, accumulate)`.
    Channels {
        y: &'a mut B,
        values: &'a B,
        n: i64,
        channels: i64,
        inner: i64,
        accumulate: i32,
    },
    /// `vidlrp_vol2col(x, x_offset, cols, d, p0, pt)`.
    Vol2Col {
        x: &'a B,
        x_offset: i64,
        cols: &'a mut B,
        d: ConvDims,
        p0: i64,
        pt: i64,
    },
    /// `vidlrp_col2vol(cols, x, x_offset, d, p0, pt)`.
    Col2Vol {
        cols: &'a B,
        x: &'a mut B,
        x_offset: i64,
        d: ConvDims,
        p0: i64,
        pt: i64,
    },
    /// `vidlrp_pool(x, y, planes, d, mode)`.
    Pool {
        x: &'a B,
        y: &'a mut B,
        planes: i64,
        d: PoolDims,
        mode: i32,
    },
    /// `vidlrp_pool_transposed(x, g, y, planes, d, mode)`.
    PoolTransposed {
        x: &'a B,
        g: &'a B,
        y: &'a mut B,
        planes: i64,
        d: PoolDims,
        mode: i32,
    },
}

impl<B> Kernel<'_, B> {
    /// The kernel's name in `kernels.cu`.
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::Unary { .. } => "vidlrp_unary",
            Kernel::Binary { .. } => "vidlrp_binary",
            Kernel::Channels { .. } => "vidlrp_channels",
            Kernel::Vol2Col { .. } => "vidlrp_vol2col",
            Kernel::Col2Vol { .. } => "vidlrp_col2vol",
            Kernel::Pool { .. } => "vidlrp_pool",
            Kernel::PoolTransposed { .. } => "vidlrp_pool_transposed",
        }
    }

    /// How many loop iterations (threads' worth of work) the launch covers.
    pub fn work(&self) -> i64 {
        match self {
            Kernel::Unary { n, .. } | Kernel::Binary { n, .. } | Kernel::Channels { n, .. } => *n,
            Kernel::Vol2Col { d, pt, .. } => d.rows() as i64 * pt,
            Kernel::Col2Vol { d, .. } => d.input_len() as i64,
            Kernel::Pool { planes, d, .. } => planes * d.output_len() as i64,
            Kernel::PoolTransposed { planes, d, .. } => planes * d.input_len() as i64,
        }
    }
}

/// The kernel names, for loading a compiled module.
pub const KERNEL_NAMES: [&str; 9] = [
    "vidlrp_unary",
    "vidlrp_binary",
    "vidlrp_channels",
    "vidlrp_partial_sums",
    "vidlrp_partial_min",
    "vidlrp_vol2col",
    "vidlrp_col2vol",
    "vidlrp_pool",
    "vidlrp_pool_transposed",
];

/// Values per partial in the reductions.
pub const REDUCE_CHUNK: usize = 4096;

/// Storage plus execution of the planned ops.
pub trait Executor: Send + Sync + 'static {
    /// An `f32` buffer.
    type Buffer: Send + Sync + 'static;

    /// A short name for reports.
    fn name(&self) -> String;
    /// A zeroed buffer of `len` values.
    fn zeros(&self, len: usize) -> Result<Self::Buffer>;
    /// A buffer holding `data`.
    fn upload(&self, data: &[f32]) -> Result<Self::Buffer>;
    /// The buffer's values.
    fn download(&self, buffer: &Self::Buffer) -> Result<Vec<f32>>;
    /// Runs one kernel over all of its work.
    fn launch(&self, kernel: Kernel<'_, Self::Buffer>) -> Result<()>;
    /// `C = op(A) op(B) (+ C)`, column-major, as planned in `call`.
    fn gemm(
        &self,
        call: &GemmCall,
        a: &Self::Buffer,
        b: &Self::Buffer,
        c: &mut Self::Buffer,
    ) -> Result<()>;
    /// `vidlrp_partial_sums`: per sample, the `f64` sums of consecutive chunks of `chunk` values.
    fn partial_sums(
        &self,
        x: &Self::Buffer,
        samples: usize,
        per: usize,
        chunk: usize,
    ) -> Result<Vec<f64>>;
    /// `vidlrp_partial_min`: the minima of consecutive chunks of `chunk` values.
    fn partial_min(&self, x: &Self::Buffer, n: usize, chunk: usize) -> Result<Vec<f32>>;
}
