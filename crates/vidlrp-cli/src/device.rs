//! `--device cpu | reference | cuda | cuda:N` and [`with_backend!`], which runs a block once per
//! backend type.

pub use vidlrp_model::Device;

/// `--device` and `--threads`, shared by every command that runs the model.
#[derive(clap::Args, Clone, Debug)]
pub struct DeviceArgs {
    /// Where the model runs: cpu, reference (plain f64 loops: slow, the oracle), cuda or cuda:N
    /// (CUDA needs a build with `--features cuda` and an NVIDIA driver).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// CPU worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// The error for `--device cuda` in a build without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub fn no_cuda(n: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "--device cuda:{n}: this vidlrp was built without CUDA support; rebuild it with \
         `cargo install --path crates/vidlrp-cli --features cuda`"
    )
}

/// Runs `$body` with `$be` bound to a reference to the backend that `$args: &DeviceArgs` names
/// (the block is compiled once per backend type, so it may be generic code over `Backend`).
macro_rules! with_backend {
    ($args:expr, |$be:ident| $body:block) => {{
        let args: &$crate::device::DeviceArgs = $args;
        match args.device {
            $crate::device::Device::Cpu => {
                let backend = vidlrp_cpu::Cpu::new(args.threads)?;
                let $be = &backend;
                $body
            }
            $crate::device::Device::Reference => {
                let backend = vidlrp_reference::Reference::<f64>::new();
                let $be = &backend;
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::device::Device::Cuda(n) => {
                let backend = vidlrp_cuda::Cuda::new(n)?;
                let $be = &backend;
                $body
            }
            #[cfg(not(feature = "cuda"))]
            $crate::device::Device::Cuda(n) => Err($crate::device::no_cuda(n)),
        }
    }};
}
pub(crate) use with_backend;
