//! vidlrp-cuda: the CUDA [`Backend`](vidlrp_core::Backend) of vidlrp.
//!
//! [`GpuBackend`] plans every backend op once (im2col + cuBLAS GEMM convolutions over bounded
//! column tiles, gather kernels for pooling and its two relevance routings, elementwise ops and
//! the stabilised division) against the [`Executor`] seam:
//!
//! - [`CudaExecutor`] runs the plans on an NVIDIA GPU: kernels from `kernels.cu` compiled at run
//!   time by NVRTC, GEMMs by cuBLAS, all libraries loaded dynamically (this crate builds on any
//!   machine; [`Cuda::new`] errs, never panics, where CUDA is missing);
//! - `HostExecutor` (feature `host-emulation`) runs the same kernel source compiled as C++ on
//!   the CPU, so kernel indexing and GEMM layouts are tested where no GPU exists.
//!
//! Every kernel is a gather (one thread per output value, no atomics): results are identical
//! from run to run.

mod backend;
mod device;
#[cfg(feature = "host-emulation")]
mod emulated;
mod exec;
pub mod plan;

pub use backend::{GpuBackend, GpuTensor};
pub use device::{
    compile_kernels, cublas_present, device_count, driver_present, nvrtc_present, versions,
    CudaExecutor, Versions, KERNELS_SOURCE,
};
#[cfg(feature = "host-emulation")]
pub use emulated::HostExecutor;
pub use exec::{Executor, Kernel};

use vidlrp_core::Result;

/// The CUDA backend on one device.
pub type Cuda = GpuBackend<CudaExecutor>;

impl Cuda {
    /// The backend on device `ordinal` (`cuda:N`).
    ///
    /// **Errors** if there is no driver, no such device, or NVRTC/cuBLAS are missing.
    pub fn new(ordinal: usize) -> Result<Self> {
        Ok(GpuBackend::with_executor(CudaExecutor::new(ordinal)?))
    }

    /// Waits until queued work is done (for timing).
    pub fn synchronize(&self) -> Result<()> {
        self.executor().synchronize()
    }

    /// Device memory in use on the GPU, in bytes ([`CudaExecutor::memory_in_use`]).
    pub fn memory_in_use(&self) -> Result<usize> {
        self.executor().memory_in_use()
    }
}

/// The kernels emulated on the host (feature `host-emulation`).
#[cfg(feature = "host-emulation")]
pub type Emulated = GpuBackend<HostExecutor>;

#[cfg(feature = "host-emulation")]
impl Emulated {
    /// The emulated backend.
    pub fn new() -> Self {
        GpuBackend::with_executor(HostExecutor)
    }
}

#[cfg(feature = "host-emulation")]
impl Default for Emulated {
    fn default() -> Self {
        Self::new()
    }
}
