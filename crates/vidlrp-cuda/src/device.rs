//! [`CudaExecutor`]: buffers in GPU memory, kernels compiled by NVRTC, GEMMs by cuBLAS.
//!
//! Every CUDA library is loaded at run time (cudarc's dynamic loading), so this compiles and
//! links on machines without CUDA; each library's presence is checked before first use, because
//! cudarc panics on a missing library instead of returning an error.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::{sys::cublasOperation_t, CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::{CompileError, Ptx};

use crate::exec::{Executor, Kernel, KERNEL_NAMES};
use crate::plan::{ConvDims, GemmCall, PoolDims};
use vidlrp_core::{Error, ErrorKind, Result};

// SAFETY: both are `#[repr(C)]` structs of `i32`s, laid out as `struct ConvDims` / `struct
// PoolDims` in kernels.cu, and passed to kernels by value.
unsafe impl DeviceRepr for ConvDims {}
unsafe impl DeviceRepr for PoolDims {}

/// The CUDA C source of every kernel.
pub const KERNELS_SOURCE: &str = include_str!("kernels.cu");

/// Threads per block of every launch.
const BLOCK: u32 = 256;
/// Most blocks per launch; the kernels' grid-stride loops cover the rest.
const MAX_BLOCKS: u32 = 1 << 20;

fn backend_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Backend, format!("cuda: {what}: {e}"))
}

/// Whether the NVIDIA driver library (`libcuda`) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the shared library.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether NVRTC (`libnvrtc`) can be loaded.
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the shared library.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Whether cuBLAS (`libcublas`) can be loaded.
pub fn cublas_present() -> bool {
    // SAFETY: only tries to open the shared library.
    unsafe { cudarc::cublas::sys::is_culib_present() }
}

/// Number of CUDA devices: 0 without a driver or without a GPU; never panics.
pub fn device_count() -> usize {
    if !driver_present() {
        return 0;
    }
    if cudarc::driver::result::init().is_err() {
        return 0;
    }
    CudaContext::device_count().map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// The CUDA versions this process sees, as `(major, minor)`: the driver's (the newest CUDA it
/// runs) and NVRTC's (the CUDA its PTX is written for). `None` where a library is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// The driver's CUDA version (`cuDriverGetVersion`).
    pub driver: Option<(i32, i32)>,
    /// NVRTC's version (`nvrtcVersion`).
    pub nvrtc: Option<(i32, i32)>,
}

impl Versions {
    /// Whether NVRTC is newer than the driver: then the driver cannot load the PTX it writes
    /// (`CUDA_ERROR_UNSUPPORTED_PTX_VERSION`); use an NVRTC no newer than the driver.
    pub fn nvrtc_newer_than_driver(&self) -> bool {
        matches!((self.driver, self.nvrtc), (Some(d), Some(n)) if n > d)
    }
}

impl std::fmt::Display for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |v: Option<(i32, i32)>| v.map_or("absent".to_string(), |(a, b)| format!("{a}.{b}"));
        write!(f, "driver CUDA {}, NVRTC {}", v(self.driver), v(self.nvrtc))
    }
}

/// The driver's and NVRTC's CUDA versions; never panics.
pub fn versions() -> Versions {
    let driver = driver_present()
        .then(|| {
            let mut v = 0;
            // SAFETY: the library is present; the call writes one int.
            let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
            (r == cudarc::driver::sys::CUresult::CUDA_SUCCESS)
                .then_some((v / 1000, (v % 1000) / 10))
        })
        .flatten();
    let nvrtc = nvrtc_present()
        .then(|| {
            let (mut major, mut minor) = (0, 0);
            // SAFETY: the library is present; the call writes two ints.
            let r = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
            (r == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS).then_some((major, minor))
        })
        .flatten();
    Versions { driver, nvrtc }
}

/// Compiles [`KERNELS_SOURCE`] with NVRTC (no GPU needed, only `libnvrtc`).
///
/// **Errors** if NVRTC is missing or the source does not compile (the log is in the message).
pub fn compile_kernels() -> Result<Ptx> {
    if !nvrtc_present() {
        return Err(Error::new(
            ErrorKind::Backend,
            "cuda: NVRTC (libnvrtc.so) not found: install the CUDA runtime compiler \
             (e.g. `pip install nvidia-cuda-nvrtc`) and add its lib folder to LD_LIBRARY_PATH",
        ));
    }
    cudarc::nvrtc::compile_ptx(KERNELS_SOURCE).map_err(|e| match e {
        CompileError::CompileError { log, .. } => {
            backend_error("compiling kernels.cu", log.to_string_lossy())
        }
        e => backend_error("compiling kernels.cu", e),
    })
}

/// Runs [`crate::GpuBackend`] plans on one CUDA device.
pub struct CudaExecutor {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
    name: String,
}

impl std::fmt::Debug for CudaExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaExecutor")
            .field("name", &self.name)
            .finish()
    }
}

impl CudaExecutor {
    /// Opens device `ordinal`, compiles the kernels and starts cuBLAS.
    ///
    /// **Errors** (never panics) if the driver, the device, NVRTC or cuBLAS is missing.
    pub fn new(ordinal: usize) -> Result<Self> {
        if !driver_present() {
            return Err(Error::new(
                ErrorKind::Backend,
                "cuda: the NVIDIA driver library (libcuda.so) is not installed on this machine",
            ));
        }
        let count = device_count();
        if ordinal >= count {
            return Err(Error::new(
                ErrorKind::Backend,
                format!("cuda: device {ordinal} requested, {count} CUDA device(s) present"),
            ));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| backend_error("opening the device", e))?;
        let stream = ctx.default_stream();
        let ptx = compile_kernels()?;
        let module = ctx.load_module(ptx).map_err(|e| {
            let v = versions();
            let hint = if v.nvrtc_newer_than_driver() {
                " (NVRTC is newer than the driver: its PTX cannot be loaded; put an NVRTC no \
                 newer than the driver first on LD_LIBRARY_PATH)"
            } else {
                ""
            };
            backend_error(&format!("loading the kernels ({v}){hint}"), e)
        })?;
        let mut functions = HashMap::new();
        for name in KERNEL_NAMES {
            let f = module
                .load_function(name)
                .map_err(|e| backend_error(name, e))?;
            functions.insert(name, f);
        }
        if !cublas_present() {
            return Err(Error::new(
                ErrorKind::Backend,
                "cuda: cuBLAS (libcublas.so) not found: install it (e.g. `pip install \
                 nvidia-cublas`) and add its lib folder to LD_LIBRARY_PATH",
            ));
        }
        let blas =
            CudaBlas::new(stream.clone()).map_err(|e| backend_error("starting cuBLAS", e))?;
        let device = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        Ok(Self {
            ctx,
            stream,
            blas,
            functions,
            name: format!("cuda:{ordinal} ({device})"),
        })
    }

    /// Device memory in use on the whole GPU, in bytes (`total - free`: this process's
    /// allocations, its memory pool, its context, and any other process's).
    pub fn memory_in_use(&self) -> Result<usize> {
        let (free, total) = self
            .ctx
            .mem_get_info()
            .map_err(|e| backend_error("memory info", e))?;
        Ok(total.saturating_sub(free))
    }

    /// Waits for all queued work (for timing).
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| backend_error("synchronize", e))
    }

    fn function(&self, name: &str) -> &CudaFunction {
        &self.functions[name]
    }

    fn config(work: i64) -> LaunchConfig {
        let blocks = u64::try_from(work).unwrap_or(0).div_ceil(u64::from(BLOCK));
        LaunchConfig {
            grid_dim: (blocks.clamp(1, u64::from(MAX_BLOCKS)) as u32, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

fn op(transpose: bool) -> cublasOperation_t {
    if transpose {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    }
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::shape(format!("GEMM extent {v} exceeds cuBLAS' range")))
}

impl Executor for CudaExecutor {
    type Buffer = CudaSlice<f32>;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn zeros(&self, len: usize) -> Result<CudaSlice<f32>> {
        self.stream
            .alloc_zeros::<f32>(len.max(1))
            .map_err(|e| backend_error(&format!("allocating {len} floats"), e))
    }

    fn upload(&self, data: &[f32]) -> Result<CudaSlice<f32>> {
        if data.is_empty() {
            return self.zeros(0);
        }
        self.stream
            .clone_htod(data)
            .map_err(|e| backend_error("upload", e))
    }

    fn download(&self, buffer: &CudaSlice<f32>) -> Result<Vec<f32>> {
        self.stream
            .clone_dtoh(buffer)
            .map_err(|e| backend_error("download", e))
    }

    fn launch(&self, kernel: Kernel<'_, CudaSlice<f32>>) -> Result<()> {
        let work = kernel.work();
        if work <= 0 {
            return Ok(());
        }
        let name = kernel.name();
        let f = self.function(name);
        let mut b = self.stream.launch_builder(f);
        match kernel {
            Kernel::Unary { x, y, n, op, k } => {
                b.arg(x).arg(y).arg(&n).arg(&op).arg(&k);
                // SAFETY: argument order and types match vidlrp_unary; y holds n values.
                unsafe { b.launch(Self::config(work)) }
            }
            Kernel::Binary {
                a,
                b: bb,
                y,
                n,
                op,
                eps,
            } => {
                b.arg(a).arg(bb).arg(y).arg(&n).arg(&op).arg(&eps);
                // SAFETY: as vidlrp_binary; all three hold n values.
                unsafe { b.launch(Self::config(work)) }
            }
            Kernel::Channels {
                y,
                values,
                n,
                channels,
                inner,
                accumulate,
            } => {
                b.arg(y)
                    .arg(values)
                    .arg(&n)
                    .arg(&channels)
                    .arg(&inner)
                    .arg(&accumulate);
                // SAFETY: as vidlrp_channels; values holds `channels` values.
                unsafe { b.launch(Self::config(work)) }
            }
            Kernel::Vol2Col {
                x,
                x_offset,
                cols,
                d,
                p0,
                pt,
            } => {
                b.arg(x).arg(&x_offset).arg(cols).arg(&d).arg(&p0).arg(&pt);
                // SAFETY: as vidlrp_vol2col; cols holds rows * pt values.
                unsafe { b.launch(Self::config(work)) }
            }
            Kernel::Col2Vol {
                cols,
                x,
                x_offset,
                d,
                p0,
                pt,
            } => {
                b.arg(cols).arg(x).arg(&x_offset).arg(&d).arg(&p0).arg(&pt);
                // SAFETY: as vidlrp_col2vol.
                unsafe { b.launch(Self::config(work)) }
            }
            Kernel::Pool {
                x,
                y,
                planes,
                d,
                mode,
            } => {
                b.arg(x).arg(y).arg(&planes).arg(&d).arg(&mode);
                // SAFETY: as vidlrp_pool.
                unsafe { b.launch(Self::config(work)) }
            }
            Kernel::PoolTransposed {
                x,
                g,
                y,
                planes,
                d,
                mode,
            } => {
                b.arg(x).arg(g).arg(y).arg(&planes).arg(&d).arg(&mode);
                // SAFETY: as vidlrp_pool_transposed.
                unsafe { b.launch(Self::config(work)) }
            }
        }
        .map(|_| ())
        .map_err(|e| backend_error(name, e))
    }

    fn gemm(
        &self,
        call: &GemmCall,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        c: &mut CudaSlice<f32>,
    ) -> Result<()> {
        if call.m == 0 || call.n == 0 {
            return Ok(());
        }
        let cfg = GemmConfig {
            transa: op(call.transa),
            transb: op(call.transb),
            m: int(call.m)?,
            n: int(call.n)?,
            k: int(call.k)?,
            alpha: 1.0f32,
            lda: int(call.lda)?,
            ldb: int(call.ldb)?,
            beta: if call.accumulate { 1.0 } else { 0.0 },
            ldc: int(call.ldc)?,
        };
        let av = a.slice(call.a_offset..);
        let bv = b.slice(call.b_offset..);
        let mut cv = c.slice_mut(call.c_offset..);
        // SAFETY: the plan's extents and leading dimensions stay inside the buffers
        // (checked by the plan tests against the reference GEMM).
        unsafe { self.blas.gemm(cfg, &av, &bv, &mut cv) }.map_err(|e| backend_error("sgemm", e))
    }

    fn partial_sums(
        &self,
        x: &CudaSlice<f32>,
        samples: usize,
        per: usize,
        chunk: usize,
    ) -> Result<Vec<f64>> {
        let count = samples * per.div_ceil(chunk);
        let mut out = self
            .stream
            .alloc_zeros::<f64>(count.max(1))
            .map_err(|e| backend_error("allocating partial sums", e))?;
        let (samples, per, chunk) = (samples as i64, per as i64, chunk as i64);
        let f = self.function("vidlrp_partial_sums");
        let mut b = self.stream.launch_builder(f);
        b.arg(x).arg(&mut out).arg(&samples).arg(&per).arg(&chunk);
        // SAFETY: as vidlrp_partial_sums; out holds samples * ceil(per / chunk) values.
        unsafe { b.launch(Self::config(count as i64)) }
            .map_err(|e| backend_error("partial sums", e))?;
        let mut v = self
            .stream
            .clone_dtoh(&out)
            .map_err(|e| backend_error("download", e))?;
        v.truncate(count);
        Ok(v)
    }

    fn partial_min(&self, x: &CudaSlice<f32>, n: usize, chunk: usize) -> Result<Vec<f32>> {
        let count = n.div_ceil(chunk);
        let mut out = self.zeros(count)?;
        let (n, chunk) = (n as i64, chunk as i64);
        let f = self.function("vidlrp_partial_min");
        let mut b = self.stream.launch_builder(f);
        b.arg(x).arg(&mut out).arg(&n).arg(&chunk);
        // SAFETY: as vidlrp_partial_min; out holds ceil(n / chunk) values.
        unsafe { b.launch(Self::config(count as i64)) }
            .map_err(|e| backend_error("partial min", e))?;
        let mut v = self.download(&out)?;
        v.truncate(count);
        Ok(v)
    }
}

impl Drop for CudaExecutor {
    fn drop(&mut self) {
        // Let queued work finish before buffers and the context go.
        let _ = self.ctx.synchronize();
    }
}
