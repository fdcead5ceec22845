//! [`HostExecutor`]: the CUDA kernels compiled as C++ and run on the CPU, GEMMs by the reference
//! [`plan::reference_gemm`]. Slow, single-threaded and exact: it checks kernel indexing, launch
//! plans and GEMM layouts on machines without a GPU. Every launch is bounds-checked first.

use crate::exec::{Executor, Kernel};
use crate::plan::{self, ConvDims, GemmCall, PoolDims};
use vidlrp_core::{Error, ErrorKind, Result};

extern "C" {
    fn vidlrp_unary(x: *const f32, y: *mut f32, n: i64, op: i32, k: f32);
    fn vidlrp_binary(a: *const f32, b: *const f32, y: *mut f32, n: i64, op: i32, eps: f32);
    fn vidlrp_channels(
        y: *mut f32,
        values: *const f32,
        n: i64,
        channels: i64,
        inner: i64,
        accumulate: i32,
    );
    fn vidlrp_partial_sums(x: *const f32, partial: *mut f64, samples: i64, per: i64, chunk: i64);
    fn vidlrp_partial_min(x: *const f32, partial: *mut f32, n: i64, chunk: i64);
    fn vidlrp_vol2col(x: *const f32, x_offset: i64, cols: *mut f32, d: ConvDims, p0: i64, pt: i64);
    fn vidlrp_col2vol(cols: *const f32, x: *mut f32, x_offset: i64, d: ConvDims, p0: i64, pt: i64);
    fn vidlrp_pool(x: *const f32, y: *mut f32, planes: i64, d: PoolDims, mode: i32);
    fn vidlrp_pool_transposed(
        x: *const f32,
        g: *const f32,
        y: *mut f32,
        planes: i64,
        d: PoolDims,
        mode: i32,
    );
}

/// Runs [`crate::GpuBackend`] plans with the kernel source compiled for the host.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostExecutor;

fn fits(name: &str, what: &str, len: usize, needed: i64) -> Result<()> {
    if needed < 0 || needed as u64 > len as u64 {
        return Err(Error::new(
            ErrorKind::Backend,
            format!(
                "host emulation: {name} would touch {needed} values of {what}, which holds {len}"
            ),
        ));
    }
    Ok(())
}

impl Executor for HostExecutor {
    type Buffer = Vec<f32>;

    fn name(&self) -> String {
        "cuda kernels emulated on the host".into()
    }

    fn zeros(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }

    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }

    fn download(&self, buffer: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(buffer.clone())
    }

    fn launch(&self, kernel: Kernel<'_, Vec<f32>>) -> Result<()> {
        let name = kernel.name();
        // SAFETY (every arm): the lengths are checked against the kernel's index range first.
        match kernel {
            Kernel::Unary { x, y, n, op, k } => {
                fits(name, "x", x.len(), n)?;
                fits(name, "y", y.len(), n)?;
                unsafe { vidlrp_unary(x.as_ptr(), y.as_mut_ptr(), n, op, k) }
            }
            Kernel::Binary {
                a,
                b,
                y,
                n,
                op,
                eps,
            } => {
                fits(name, "a", a.len(), n)?;
                fits(name, "b", b.len(), n)?;
                fits(name, "y", y.len(), n)?;
                unsafe { vidlrp_binary(a.as_ptr(), b.as_ptr(), y.as_mut_ptr(), n, op, eps) }
            }
            Kernel::Channels {
                y,
                values,
                n,
                channels,
                inner,
                accumulate,
            } => {
                fits(name, "y", y.len(), n)?;
                fits(name, "values", values.len(), channels)?;
                if channels <= 0 || inner <= 0 {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        "host emulation: empty channel layout",
                    ));
                }
                unsafe {
                    vidlrp_channels(
                        y.as_mut_ptr(),
                        values.as_ptr(),
                        n,
                        channels,
                        inner,
                        accumulate,
                    );
                }
            }
            Kernel::Vol2Col {
                x,
                x_offset,
                cols,
                d,
                p0,
                pt,
            } => {
                fits(name, "x", x.len(), x_offset + d.input_len() as i64)?;
                fits(name, "cols", cols.len(), d.rows() as i64 * pt)?;
                fits(name, "positions", d.positions(), p0 + pt)?;
                unsafe { vidlrp_vol2col(x.as_ptr(), x_offset, cols.as_mut_ptr(), d, p0, pt) }
            }
            Kernel::Col2Vol {
                cols,
                x,
                x_offset,
                d,
                p0,
                pt,
            } => {
                fits(name, "x", x.len(), x_offset + d.input_len() as i64)?;
                fits(name, "cols", cols.len(), d.rows() as i64 * pt)?;
                fits(name, "positions", d.positions(), p0 + pt)?;
                unsafe { vidlrp_col2vol(cols.as_ptr(), x.as_mut_ptr(), x_offset, d, p0, pt) }
            }
            Kernel::Pool {
                x,
                y,
                planes,
                d,
                mode,
            } => {
                fits(name, "x", x.len(), planes * d.input_len() as i64)?;
                fits(name, "y", y.len(), planes * d.output_len() as i64)?;
                unsafe { vidlrp_pool(x.as_ptr(), y.as_mut_ptr(), planes, d, mode) }
            }
            Kernel::PoolTransposed {
                x,
                g,
                y,
                planes,
                d,
                mode,
            } => {
                if mode == 0 {
                    fits(name, "x", x.len(), planes * d.input_len() as i64)?;
                }
                fits(name, "g", g.len(), planes * d.output_len() as i64)?;
                fits(name, "y", y.len(), planes * d.input_len() as i64)?;
                unsafe {
                    vidlrp_pool_transposed(x.as_ptr(), g.as_ptr(), y.as_mut_ptr(), planes, d, mode);
                }
            }
        }
        Ok(())
    }

    fn gemm(&self, call: &GemmCall, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) -> Result<()> {
        let extent = |rows: usize, cols: usize, ld: usize| {
            if rows == 0 || cols == 0 {
                0
            } else {
                (cols - 1) * ld + rows
            }
        };
        let (ar, ac) = if call.transa {
            (call.k, call.m)
        } else {
            (call.m, call.k)
        };
        let (br, bc) = if call.transb {
            (call.n, call.k)
        } else {
            (call.k, call.n)
        };
        fits(
            "sgemm",
            "A",
            a.len(),
            (call.a_offset + extent(ar, ac, call.lda)) as i64,
        )?;
        fits(
            "sgemm",
            "B",
            b.len(),
            (call.b_offset + extent(br, bc, call.ldb)) as i64,
        )?;
        fits(
            "sgemm",
            "C",
            c.len(),
            (call.c_offset + extent(call.m, call.n, call.ldc)) as i64,
        )?;
        plan::reference_gemm(call, a, b, c);
        Ok(())
    }

    fn partial_sums(
        &self,
        x: &Vec<f32>,
        samples: usize,
        per: usize,
        chunk: usize,
    ) -> Result<Vec<f64>> {
        fits("vidlrp_partial_sums", "x", x.len(), (samples * per) as i64)?;
        let mut out = vec![0.0f64; samples * per.div_ceil(chunk)];
        // SAFETY: x holds samples * per values, out one value per chunk.
        unsafe {
            vidlrp_partial_sums(
                x.as_ptr(),
                out.as_mut_ptr(),
                samples as i64,
                per as i64,
                chunk as i64,
            );
        };
        Ok(out)
    }

    fn partial_min(&self, x: &Vec<f32>, n: usize, chunk: usize) -> Result<Vec<f32>> {
        fits("vidlrp_partial_min", "x", x.len(), n as i64)?;
        let mut out = vec![0.0f32; n.div_ceil(chunk)];
        // SAFETY: x holds n values, out one value per chunk.
        unsafe { vidlrp_partial_min(x.as_ptr(), out.as_mut_ptr(), n as i64, chunk as i64) };
        Ok(out)
    }
}
