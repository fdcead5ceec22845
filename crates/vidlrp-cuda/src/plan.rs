//! Pure launch planning: kernel argument structs, op codes, and the column-major GEMM calls that
//! compute row-major products. Nothing here touches a device, so all of it is tested on the host.

use vidlrp_core::{BinaryOp, Conv3dGeometry, Error, Pool3dGeometry, Result, UnaryOp};

/// Geometry of one convolution as the kernels read it (`struct ConvDims` in `kernels.cu`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvDims {
    /// Input channels.
    pub c_in: i32,
    /// Input extent `[T, H, W]`.
    pub input: [i32; 3],
    /// Kernel extent `[kT, kH, kW]`.
    pub kernel: [i32; 3],
    /// Stride per axis.
    pub stride: [i32; 3],
    /// Zero padding per axis.
    pub padding: [i32; 3],
    /// Output extent `[T', H', W']`.
    pub output: [i32; 3],
}

/// Geometry of one pooling as the kernels read it (`struct PoolDims` in `kernels.cu`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolDims {
    /// Input extent `[T, H, W]`.
    pub input: [i32; 3],
    /// Window extent.
    pub kernel: [i32; 3],
    /// Stride per axis.
    pub stride: [i32; 3],
    /// Implicit padding per axis.
    pub padding: [i32; 3],
    /// Output extent.
    pub output: [i32; 3],
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| Error::shape(format!("extent {v} exceeds the CUDA kernels' range")))
}

fn ints(v: [usize; 3]) -> Result<[i32; 3]> {
    Ok([int(v[0])?, int(v[1])?, int(v[2])?])
}

impl ConvDims {
    /// The dims of `geometry` applied to one `[C_in, T, H, W]` sample.
    pub fn new(c_in: usize, input: [usize; 3], geometry: &Conv3dGeometry) -> Result<Self> {
        let output = geometry.output_extent(input)?;
        Ok(Self {
            c_in: int(c_in)?,
            input: ints(input)?,
            kernel: ints(geometry.kernel)?,
            stride: ints(geometry.stride)?,
            padding: ints(geometry.padding)?,
            output: ints(output)?,
        })
    }

    /// Rows of the column matrix: `C_in kT kH kW`.
    pub fn rows(&self) -> usize {
        self.c_in as usize * self.kernel.iter().map(|&k| k as usize).product::<usize>()
    }

    /// Output positions per channel: `T' H' W'`.
    pub fn positions(&self) -> usize {
        self.output.iter().map(|&k| k as usize).product()
    }

    /// Input values per sample: `C_in T H W`.
    pub fn input_len(&self) -> usize {
        self.c_in as usize * self.input.iter().map(|&k| k as usize).product::<usize>()
    }
}

impl PoolDims {
    /// The dims of `geometry` applied to `[T, H, W]` planes.
    pub fn new(input: [usize; 3], geometry: &Pool3dGeometry) -> Result<Self> {
        let output = geometry.output_extent(input)?;
        Ok(Self {
            input: ints(input)?,
            kernel: ints(geometry.kernel)?,
            stride: ints(geometry.stride)?,
            padding: ints(geometry.padding)?,
            output: ints(output)?,
        })
    }

    /// Values per input plane.
    pub fn input_len(&self) -> usize {
        self.input.iter().map(|&k| k as usize).product()
    }

    /// Values per output plane.
    pub fn output_len(&self) -> usize {
        self.output.iter().map(|&k| k as usize).product()
    }
}

/// The kernel's code for a unary op and its parameter (`apply_unary` in `kernels.cu`).
pub fn unary_code(op: UnaryOp) -> (i32, f32) {
    match op {
        UnaryOp::Positive => (0, 0.0),
        UnaryOp::Negative => (1, 0.0),
        UnaryOp::Square => (2, 0.0),
        UnaryOp::One => (3, 0.0),
        UnaryOp::Scale(k) => (4, k),
        UnaryOp::StepPositive => (5, 0.0),
        UnaryOp::StepNegative => (6, 0.0),
        UnaryOp::AddPositive(g) => (7, g),
        UnaryOp::AddNegative(g) => (8, g),
    }
}

/// The kernel's code for a binary op and its stabiliser (`vidlrp_binary` in `kernels.cu`).
pub fn binary_code(op: BinaryOp) -> (i32, f32) {
    match op {
        BinaryOp::Add => (0, 0.0),
        BinaryOp::Sub => (1, 0.0),
        BinaryOp::Mul => (2, 0.0),
        BinaryOp::StabDiv(eps) => (3, eps),
        BinaryOp::GatePositive => (4, 0.0),
    }
}

/// One column-major `C = op(A) op(B) + beta C` call (BLAS `sgemm` conventions), with element
/// offsets into the three buffers. `alpha` is always 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmCall {
    /// Use `A^T`.
    pub transa: bool,
    /// Use `B^T`.
    pub transb: bool,
    /// Rows of `op(A)` and `C`.
    pub m: usize,
    /// Columns of `op(B)` and `C`.
    pub n: usize,
    /// Columns of `op(A)`, rows of `op(B)`.
    pub k: usize,
    /// Leading dimension of `A`.
    pub lda: usize,
    /// Leading dimension of `B`.
    pub ldb: usize,
    /// Leading dimension of `C`.
    pub ldc: usize,
    /// First element of `A` in its buffer.
    pub a_offset: usize,
    /// First element of `B` in its buffer.
    pub b_offset: usize,
    /// First element of `C` in its buffer.
    pub c_offset: usize,
    /// `0` overwrites `C`, `1` accumulates.
    pub accumulate: bool,
}

/// The default bound on the floats of one convolution column tile (128 MiB).
pub const TILE_FLOATS: usize = 32 << 20;

/// Output-column tiles `[p0, p0 + pt)` covering `positions`, each with `rows pt <= budget`
/// (at least one column per tile).
pub fn column_tiles(rows: usize, positions: usize, budget: usize) -> Vec<(usize, usize)> {
    let width = (budget / rows.max(1)).clamp(1, positions.max(1));
    (0..positions)
        .step_by(width)
        .map(|p0| (p0, width.min(positions - p0)))
        .collect()
}

/// Row-major `out[C_out, P] (sample n, columns p0..p0+pt) = W[C_out, K] cols[K, pt]`.
///
/// Column-major, that is `out^T (pt x C_out, ld P) = cols^T (pt x K, ld pt) W^T (K x C_out,
/// ld K)`: A = the column tile, B = the weights, both untransposed.
pub fn conv_forward_gemm(
    d: &ConvDims,
    c_out: usize,
    sample: usize,
    p0: usize,
    pt: usize,
) -> GemmCall {
    let (k, p) = (d.rows(), d.positions());
    GemmCall {
        transa: false,
        transb: false,
        m: pt,
        n: c_out,
        k,
        lda: pt,
        ldb: k,
        ldc: p,
        a_offset: 0,
        b_offset: 0,
        c_offset: sample * c_out * p + p0,
        accumulate: false,
    }
}

/// Row-major `cols[K, pt] = W^T[K, C_out] g[C_out, p0..p0+pt]` (sample n).
///
/// Column-major: `cols^T (pt x K, ld pt) = g^T (pt x C_out, ld P) W (C_out x K)`, where the
/// stored weights read column-major are `W^T (K x C_out, ld K)`, hence `transb`.
pub fn conv_transposed_gemm(
    d: &ConvDims,
    c_out: usize,
    sample: usize,
    p0: usize,
    pt: usize,
) -> GemmCall {
    let (k, p) = (d.rows(), d.positions());
    GemmCall {
        transa: false,
        transb: true,
        m: pt,
        n: k,
        k: c_out,
        lda: p,
        ldb: k,
        ldc: pt,
        a_offset: sample * c_out * p + p0,
        b_offset: 0,
        c_offset: 0,
        accumulate: false,
    }
}

/// Row-major `dW[C_out, K] += g[C_out, p0..p0+pt] cols[K, pt]^T` (sample n), column-major
/// `dW^T (K x C_out, ld K) += op(cols) g^T` with the column tile read transposed (its buffer is
/// `cols^T`, pt x K, ld pt) and the gradient's rows `p0..` of `g_n^T` (P x C_out, ld P).
pub fn conv_weight_gemm(
    d: &ConvDims,
    c_out: usize,
    sample: usize,
    p0: usize,
    pt: usize,
) -> GemmCall {
    let (k, p) = (d.rows(), d.positions());
    GemmCall {
        transa: true,
        transb: false,
        m: k,
        n: c_out,
        k: pt,
        lda: pt,
        ldb: p,
        ldc: k,
        a_offset: 0,
        b_offset: sample * c_out * p + p0,
        c_offset: 0,
        accumulate: true,
    }
}

/// Row-major `dW[D_out, D_in] = g[N, D_out]^T x[N, D_in]`, column-major
/// `dW^T (D_in x D_out) = x^T g` with `x^T (D_in x N, ld D_in)` and `g` read transposed from
/// its buffer `g^T (D_out x N, ld D_out)`.
pub fn linear_weight_gemm(batch: usize, d_in: usize, d_out: usize) -> GemmCall {
    GemmCall {
        transa: false,
        transb: true,
        m: d_in,
        n: d_out,
        k: batch,
        lda: d_in,
        ldb: d_out,
        ldc: d_in,
        a_offset: 0,
        b_offset: 0,
        c_offset: 0,
        accumulate: false,
    }
}

/// `b[C] += g_n[C, P] 1[P]` for sample n: column-major with `g_n`'s buffer `g_n^T` (P x C,
/// ld P) read transposed, a column of ones (P x 1), `b` (C x 1).
pub fn channel_sum_gemm(channels: usize, inner: usize, sample: usize) -> GemmCall {
    GemmCall {
        transa: true,
        transb: false,
        m: channels,
        n: 1,
        k: inner,
        lda: inner,
        ldb: inner,
        ldc: channels,
        a_offset: sample * channels * inner,
        b_offset: 0,
        c_offset: 0,
        accumulate: true,
    }
}

/// Row-major `y[N, D_out] = x[N, D_in] W^T`, column-major `y^T = W x^T` with `W` read as
/// `(W^T)^T` (transa, ld D_in) and `x^T (D_in x N, ld D_in)`.
pub fn linear_gemm(batch: usize, d_in: usize, d_out: usize) -> GemmCall {
    GemmCall {
        transa: true,
        transb: false,
        m: d_out,
        n: batch,
        k: d_in,
        lda: d_in,
        ldb: d_in,
        ldc: d_out,
        a_offset: 0,
        b_offset: 0,
        c_offset: 0,
        accumulate: false,
    }
}

/// Row-major `dx[N, D_in] = g[N, D_out] W[D_out, D_in]`, column-major `dx^T = W^T g^T` with
/// `W^T (D_in x D_out, ld D_in)` and `g^T (D_out x N, ld D_out)`.
pub fn linear_transposed_gemm(batch: usize, d_in: usize, d_out: usize) -> GemmCall {
    GemmCall {
        transa: false,
        transb: false,
        m: d_in,
        n: batch,
        k: d_out,
        lda: d_in,
        ldb: d_out,
        ldc: d_in,
        a_offset: 0,
        b_offset: 0,
        c_offset: 0,
        accumulate: false,
    }
}

/// The reference semantics of a [`GemmCall`] (BLAS `sgemm` with `alpha = 1`), accumulated in
/// `f64`: what cuBLAS computes, for checking plans on the host.
pub fn reference_gemm(call: &GemmCall, a: &[f32], b: &[f32], c: &mut [f32]) {
    let a = &a[call.a_offset..];
    let b = &b[call.b_offset..];
    let c = &mut c[call.c_offset..];
    let mut acc = vec![0.0f64; call.m];
    for j in 0..call.n {
        acc.fill(0.0);
        for l in 0..call.k {
            let bv = f64::from(if call.transb {
                b[j + l * call.ldb]
            } else {
                b[l + j * call.ldb]
            });
            for (i, s) in acc.iter_mut().enumerate() {
                let av = if call.transa {
                    a[l + i * call.lda]
                } else {
                    a[i + l * call.lda]
                };
                *s += f64::from(av) * bv;
            }
        }
        for (i, &s) in acc.iter().enumerate() {
            let out = &mut c[i + j * call.ldc];
            *out = if call.accumulate {
                *out + s as f32
            } else {
                s as f32
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize, seed: u32) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 17) as f32 - 8.0)
            .collect()
    }

    fn row_major_product(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn linear_plans_compute_row_major_products() {
        let (batch, d_in, d_out) = (3, 5, 4);
        let x = matrix(batch, d_in, 1);
        let w = matrix(d_out, d_in, 2);
        let mut y = vec![0.0; batch * d_out];
        reference_gemm(&linear_gemm(batch, d_in, d_out), &w, &x, &mut y);
        let wt: Vec<f32> = (0..d_in * d_out)
            .map(|i| w[(i % d_out) * d_in + i / d_out])
            .collect();
        assert_eq!(y, row_major_product(&x, &wt, batch, d_in, d_out));

        let g = matrix(batch, d_out, 3);
        let mut dx = vec![0.0; batch * d_in];
        reference_gemm(&linear_transposed_gemm(batch, d_in, d_out), &w, &g, &mut dx);
        assert_eq!(dx, row_major_product(&g, &w, batch, d_out, d_in));
    }

    #[test]
    fn conv_plans_compute_tiles_of_row_major_products() {
        let d = ConvDims {
            c_in: 2,
            input: [2, 3, 3],
            kernel: [1, 2, 1],
            stride: [1, 1, 1],
            padding: [0, 0, 0],
            output: [2, 2, 3],
        };
        let (k, p, c_out) = (d.rows(), d.positions(), 3);
        let w = matrix(c_out, k, 4);
        let cols = matrix(k, p, 5);
        let full = row_major_product(&w, &cols, c_out, k, p);
        // sample 1 of 2, in two tiles
        let mut out = vec![0.0; 2 * c_out * p];
        for (p0, pt) in [(0, 5), (5, p - 5)] {
            let tile: Vec<f32> = (0..k)
                .flat_map(|r| cols[r * p + p0..r * p + p0 + pt].to_vec())
                .collect();
            reference_gemm(
                &conv_forward_gemm(&d, c_out, 1, p0, pt),
                &tile,
                &w,
                &mut out,
            );
        }
        assert_eq!(&out[c_out * p..], &full[..]);
        assert!(out[..c_out * p].iter().all(|&v| v == 0.0));

        let g = matrix(c_out, p, 6);
        let mut g2 = vec![0.0; c_out * p];
        g2.extend_from_slice(&g);
        let wt: Vec<f32> = (0..k * c_out)
            .map(|i| w[(i % c_out) * k + i / c_out])
            .collect();
        let full_t = row_major_product(&wt, &g, k, c_out, p);
        for (p0, pt) in [(0, 7), (7, p - 7)] {
            let mut tile = vec![0.0; k * pt];
            reference_gemm(
                &conv_transposed_gemm(&d, c_out, 1, p0, pt),
                &g2,
                &w,
                &mut tile,
            );
            for r in 0..k {
                assert_eq!(
                    &tile[r * pt..(r + 1) * pt],
                    &full_t[r * p + p0..r * p + p0 + pt]
                );
            }
        }
    }

    #[test]
    fn tiles_cover_positions_within_the_budget() {
        for (rows, positions) in [(1728, 50176), (27, 200704), (13824, 98), (5, 3)] {
            let tiles = column_tiles(rows, positions, TILE_FLOATS);
            assert_eq!(tiles.first().unwrap().0, 0);
            assert_eq!(tiles.iter().map(|t| t.1).sum::<usize>(), positions);
            assert!(tiles.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
            assert!(tiles.iter().all(|t| t.1 * rows <= TILE_FLOATS.max(rows)));
        }
    }
}
