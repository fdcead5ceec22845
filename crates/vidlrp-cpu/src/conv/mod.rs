//! The CPU's convolutions and the one place that chooses how each runs: [`choose`] maps a
//! convolution (its direction, extents and operands) to a [`Path`], [`run`] runs it. The table
//! of ARCHITECTURE.md ("CPU convolution routing") is this function's, row by row.
//!
//! Every path computes the same sums; where two paths could both apply, the first in
//! [`choose`]'s order wins, so a convolution always takes the same path for the same input.

pub(crate) mod constant;
pub(crate) mod direct;
pub(crate) mod direct_forward;
pub(crate) mod im2col;
pub(crate) mod sparse;
pub(crate) mod weight;
pub(crate) mod winograd;

pub(crate) use im2col::ConvDims;

use ndarray::ArrayView2;
use rayon::prelude::*;

/// Which convolution: `y = conv(x, w)` or its transpose `dx = conv^T(gy, w)` (the gradient
/// with respect to the input, and the LRP rules' `W^T s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// `y[n, o, p] = sum_{i, tap} x[n, i, p + tap] w[o, i, tap] (+ b[o])`.
    Forward,
    /// `dx[n, i, q] = sum_{o, tap: q = p + tap} gy[n, o, p] w[o, i, tap]`.
    Transposed,
}

/// How one convolution runs on the CPU.
#[derive(Debug, Clone)]
pub(crate) enum Path {
    /// Winograd `F(2x2x2, 3x3x3)` on the packed GEMM ([`winograd`]): 3x3x3, stride 1,
    /// padding 1, 16+ channels each side, 256+ positions, mixed-sign operands.
    Winograd,
    /// Every input channel plane one constant (z^B's bounds `l`, `h`): one sum per pattern of
    /// kernel taps ([`constant`]); holds the constants, per sample and channel.
    Constant(Vec<Vec<f32>>),
    /// Forward onto 1-3 input channels with AVX-512F: output rows of eight channels held in
    /// registers, the taps streamed over them ([`direct_forward`]; the GEMM's bits).
    DirectForward,
    /// The packed GEMM with im2col columns gathered from the input ([`im2col`]; tiled im2col +
    /// matrixmultiply without AVX-512F or AVX2+FMA).
    Im2col,
    /// Transposed onto 1-3 input channels with AVX-512F: rows of the input held in registers
    /// ([`direct`]).
    Direct,
    /// Transposed, a gradient with under [`sparse::sparse_density`] nonzeros and 512+
    /// positions: gathers over the nonzeros ([`sparse`]).
    Sparse,
    /// Transposed, stride 1: the forward convolution of the gradient with the flipped,
    /// transposed kernel, on `dims` ([`im2col::flipped_dims`]).
    Flipped(ConvDims),
    /// Transposed onto few channels, stride 1: the flipped forward convolution
    /// ([`Path::Flipped`]) on the direct kernel ([`direct_forward`]).
    DirectFlipped(ConvDims),
    /// Transposed, anything else: GEMM + col2im over column tiles ([`im2col`]).
    Col2im,
}

/// Whether every value is `>= 0` (stops at the first that is not).
fn non_negative(v: &[f32]) -> bool {
    v.par_iter().all(|&e| e >= 0.0)
}

/// Whether a convolution where [`winograd::applies`] may take that path: not when both operands
/// are non-negative. Then every product is `>= 0` and direct summation gives each output to
/// relative precision, which the `z+` rule needs: its `z` is divided by (`s = R / stab(z)`),
/// and its `s` can span many orders of magnitude (`z = 0` gives `R / eps`), where Winograd's
/// subtractions would spill one large value's rounding error into its tile's neighbours. Plain
/// forward passes and gradients (mixed signs) take Winograd, as in the deep learning libraries.
fn winograd_allowed(a: &[f32], b: &[f32]) -> bool {
    !(non_negative(a) && non_negative(b))
}

/// The extents of `dims`' transpose seen as a convolution: `gy` (`c_out` channels on
/// `dims.output`) in, `dims.input` out.
fn transposed_dims(dims: &ConvDims, c_out: usize) -> ConvDims {
    ConvDims {
        c_in: c_out,
        input: dims.output,
        output: dims.input,
        g: dims.g,
    }
}

/// The path of one convolution of `n` samples with `c_out` output channels: `data` is `x`
/// (forward) or `gy` (transposed), `w` the kernel `[C_out, C_in, kT, kH, kW]`. Runs its
/// checks (signs, constant planes, nonzero counts) on the current rayon pool.
pub(crate) fn choose(
    direction: Direction,
    dims: &ConvDims,
    n: usize,
    c_out: usize,
    data: &[f32],
    w: &[f32],
) -> Path {
    match direction {
        Direction::Forward => {
            if winograd::applies(dims, c_out, n) && winograd_allowed(w, data) {
                return Path::Winograd;
            }
            if crate::gemm::fast() && w.iter().all(|v| v.is_finite()) {
                let plane = dims.input.iter().product::<usize>();
                let consts: Option<Vec<Vec<f32>>> = data
                    .par_chunks(dims.input_len())
                    .map(|xs| constant::planes(xs, dims.c_in, plane))
                    .collect();
                if let Some(consts) = consts {
                    return Path::Constant(consts);
                }
            }
            if direct_forward::applies(dims) {
                return Path::DirectForward;
            }
            Path::Im2col
        }
        Direction::Transposed => {
            if direct::applies(dims) {
                return Path::Direct;
            }
            // Onto 4-8 channels the direct kernel runs the flipped convolution, dense, faster
            // than gathering even a gradient with 1 value in 8 (lanes of 16 channels, half
            // empty) or packing it for a GEMM of 8 rows.
            if dims.c_in <= direct_forward::MAX_CHANNELS {
                if let Some(fd) = im2col::flipped_geometry(dims, c_out) {
                    if direct_forward::kernel_fits(&fd) {
                        return Path::DirectFlipped(fd);
                    }
                }
            }
            // The count is a pass over the gradient: only made where the sparse path could apply.
            if dims.positions() >= sparse::SPARSE_MIN_POSITIONS {
                let nonzero = data.par_iter().filter(|&&v| v != 0.0).count();
                if (nonzero as f64) < sparse::sparse_density() * data.len() as f64 {
                    return Path::Sparse;
                }
            }
            let td = transposed_dims(dims, c_out);
            if winograd::applies(&td, dims.c_in, n) && winograd_allowed(w, data) {
                return Path::Winograd;
            }
            if crate::gemm::fast() {
                if let Some(fd) = im2col::flipped_dims(dims, c_out, n) {
                    return Path::Flipped(fd);
                }
            }
            Path::Col2im
        }
    }
}

/// The forward convolution `y` of `n` samples of `x` into a new buffer, `max(y, 0)` with
/// `relu` (each value as `UnaryOp::Positive` maps it: the bits of the convolution and then that
/// map). On [`Path::DirectForward`] each output is written once, rectified at the store, into
/// a buffer not zero-filled first; the other paths write onto zeros, then rectify in place.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    dims: &ConvDims,
    n: usize,
    c_out: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    winograd_kernels: &std::sync::Mutex<Vec<f32>>,
) -> Vec<f32> {
    let len = n * c_out * dims.positions();
    let path = choose(Direction::Forward, dims, n, c_out, x, w);
    if matches!(path, Path::DirectForward) {
        let mut out = Vec::with_capacity(len);
        let spare = &mut out.spare_capacity_mut()[..len];
        direct_forward::conv_forward_direct(dims, n, c_out, x, w, bias, relu, spare);
        // SAFETY: the direct path wrote every one of the `len` outputs.
        unsafe { out.set_len(len) };
        return out;
    }
    let mut out = crate::elementwise::zeros(len);
    let u = winograd_kernels;
    run(
        &path,
        Direction::Forward,
        dims,
        n,
        c_out,
        x,
        w,
        bias,
        u,
        &mut out,
    );
    if relu {
        crate::elementwise::positive_in_place(&mut out);
    }
    out
}

/// Runs the convolution that [`choose`] gave `path` for (the same arguments), writing `out`
/// (`y`, `[N, C_out, output]`, or `dx`, `[N, C_in, input]`). `winograd_kernels` is the reused
/// storage of the transformed kernels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    path: &Path,
    direction: Direction,
    dims: &ConvDims,
    n: usize,
    c_out: usize,
    data: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    winograd_kernels: &std::sync::Mutex<Vec<f32>>,
    out: &mut [f32],
) {
    let transposed = direction == Direction::Transposed;
    let p = dims.positions();
    // One sample's share of `data` and of `out`.
    let (per_data, per_out) = if transposed {
        (c_out * p, dims.input_len())
    } else {
        (dims.input_len(), c_out * p)
    };
    let w2 = || ArrayView2::from_shape((c_out, dims.rows()), w).expect("weight shape");
    match path {
        Path::Winograd => {
            // A panic while the storage was held left nothing to protect: it is refilled.
            let mut u = winograd_kernels
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if transposed {
                let td = transposed_dims(dims, c_out);
                winograd::conv(&mut u, &td, n, dims.c_in, data, w, true, None, out);
            } else {
                winograd::conv(&mut u, dims, n, c_out, data, w, false, bias, out);
            }
        }
        Path::Constant(consts) => {
            // A sample with the same constants as the one before (z^B's bound image is the
            // same for every clip of a batch) copies its output instead of summing again; the
            // copies run in parallel.
            let mut computed: Vec<(&Vec<f32>, &mut [f32])> = Vec::new();
            let mut copies: Vec<(usize, &mut [f32])> = Vec::new();
            for (cs, os) in consts.iter().zip(out.chunks_mut(per_out)) {
                match computed.last() {
                    Some((pc, _)) if *pc == cs => copies.push((computed.len() - 1, os)),
                    _ => {
                        constant::conv_sample(dims, cs, w, bias, os);
                        computed.push((cs, os));
                    }
                }
            }
            copies
                .par_iter_mut()
                .for_each(|(d, os)| os.copy_from_slice(computed[*d].1));
        }
        Path::DirectForward => {
            let out = crate::elementwise::as_uninit(out);
            direct_forward::conv_forward_direct(dims, n, c_out, data, w, bias, false, out);
        }
        Path::Im2col => {
            im2col::conv_forward(dims, n, data, w2(), bias, out, &mut Vec::new());
        }
        Path::Direct => {
            direct::conv_transposed_direct(dims, n, c_out, data, w, out);
        }
        Path::Sparse => {
            let kvol = dims.g.kernel.iter().product::<usize>();
            let lanes = sparse::LaneKernel::new(w, c_out, dims.c_in, kvol);
            for (gs, ds) in data.chunks(per_data).zip(out.chunks_mut(per_out)) {
                sparse::conv_transposed_sparse_sample(dims, gs, &lanes, ds);
            }
        }
        Path::Flipped(fd) => {
            let wf = im2col::flipped_kernel(w, c_out, dims.c_in, fd.rows() / c_out);
            let wf2 = ArrayView2::from_shape((dims.c_in, fd.rows()), &wf[..]).expect("shape");
            im2col::conv_forward(fd, n, data, wf2, None, out, &mut Vec::new());
        }
        Path::DirectFlipped(fd) => {
            let wf = im2col::flipped_kernel(w, c_out, dims.c_in, fd.rows() / c_out);
            let out = crate::elementwise::as_uninit(out);
            direct_forward::conv_forward_direct(fd, n, dims.c_in, data, &wf, None, false, out);
        }
        Path::Col2im => {
            let mut col = Vec::new();
            for (gs, ds) in data.chunks(per_data).zip(out.chunks_mut(per_out)) {
                let gv = ArrayView2::from_shape((c_out, p), gs).expect("gradient shape");
                im2col::conv_transposed_sample(dims, gv, w2(), ds, &mut col);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The routing table of ARCHITECTURE.md, row by row, on C3D-like layers. Rows that need the
    //! fast GEMM (or AVX-512F) are checked where the CPU has it; elsewhere `Im2col`/`Col2im`.
    use super::*;
    use vidlrp_core::Conv3dGeometry;

    /// A `k^3` convolution of `c_in` channels on `t x s x s`, stride `stride`, padding `k / 2`.
    fn dims(c_in: usize, t: usize, s: usize, k: usize, stride: usize) -> ConvDims {
        let g = Conv3dGeometry {
            kernel: [k; 3],
            stride: [stride; 3],
            padding: [k / 2; 3],
        };
        let out = |e: usize| (e + 2 * (k / 2) - k) / stride + 1;
        ConvDims {
            c_in,
            input: [t, s, s],
            output: [out(t), out(s), out(s)],
            g,
        }
    }

    /// Alternating signs (mixed-sign operands), or `|v|` where `positive`.
    fn values(n: usize, positive: bool) -> Vec<f32> {
        let v = vidlrp_rng::uniform_values(n, 9, -1.0, 1.0);
        v.into_iter()
            .map(|x| if positive { x.abs() } else { x })
            .collect()
    }

    fn name(p: &Path) -> &'static str {
        match p {
            Path::Winograd => "winograd",
            Path::Constant(_) => "constant",
            Path::DirectForward => "direct-forward",
            Path::Im2col => "im2col",
            Path::Direct => "direct",
            Path::DirectFlipped(_) => "direct-flipped",
            Path::Sparse => "sparse",
            Path::Flipped(_) => "flipped",
            Path::Col2im => "col2im",
        }
    }

    fn fast() -> bool {
        crate::gemm::fast()
    }

    #[test]
    fn forward_convolutions_take_the_table_s_paths() {
        // conv2 of C3D at 1/2 width: 32 -> 64 channels on 8 x 28 x 28.
        let d = dims(32, 8, 28, 3, 1);
        let w = values(64 * d.rows(), false);
        let x = values(d.input_len(), false);
        let mixed = choose(Direction::Forward, &d, 1, 64, &x, &w);
        assert_eq!(name(&mixed), if fast() { "winograd" } else { "im2col" });
        // Both operands non-negative (the z+ rule): never Winograd.
        let (wp, xp) = (values(w.len(), true), values(x.len(), true));
        assert_eq!(
            name(&choose(Direction::Forward, &d, 1, 64, &xp, &wp)),
            "im2col"
        );
        // conv1 on z^B's bound image: every channel plane one constant.
        let d1 = dims(3, 16, 28, 3, 1);
        let l: Vec<f32> = (0..3)
            .flat_map(|c| vec![-(c as f32) - 1.0; d1.input_len() / 3])
            .collect();
        let w1 = values(8 * d1.rows(), false);
        // conv1 on a clip (mixed signs): the direct kernel with AVX-512F.
        let clip = values(d1.input_len(), false);
        let rgb = choose(Direction::Forward, &d1, 1, 8, &clip, &w1);
        let want = if fast() && crate::gemm::avx512() {
            "direct-forward"
        } else {
            "im2col"
        };
        assert_eq!(name(&rgb), want);
        // A small model's conv2 (8 -> 16 channels, depth 216 <= KC): direct too; conv3a's
        // depth 432 is past one GEMM block: im2col.
        let d2 = dims(8, 16, 24, 3, 1);
        let x2 = values(d2.input_len(), true);
        let w2 = values(16 * d2.rows(), true);
        assert_eq!(
            name(&choose(Direction::Forward, &d2, 1, 16, &x2, &w2)),
            want
        );
        let d3 = dims(16, 8, 12, 3, 1);
        let (x3, w3) = (values(d3.input_len(), true), values(32 * d3.rows(), true));
        assert_eq!(
            name(&choose(Direction::Forward, &d3, 1, 32, &x3, &w3)),
            "im2col"
        );
        let bound = choose(Direction::Forward, &d1, 1, 8, &l, &w1);
        assert_eq!(name(&bound), if fast() { "constant" } else { "im2col" });
        // A non-finite kernel is never summed by tap pattern.
        let mut bad = w1.clone();
        bad[0] = f32::NAN;
        assert_eq!(name(&choose(Direction::Forward, &d1, 1, 8, &l, &bad)), want);
    }

    #[test]
    fn transposed_convolutions_take_the_table_s_paths() {
        // Onto conv1's 3 input channels.
        let d1 = dims(3, 16, 28, 3, 1);
        let g1 = values(8 * d1.positions(), false);
        let w1 = values(8 * d1.rows(), false);
        let onto_rgb = choose(Direction::Transposed, &d1, 1, 8, &g1, &w1);
        let want = if fast() && crate::gemm::avx512() {
            "direct"
        } else {
            "flipped"
        };
        assert_eq!(name(&onto_rgb), if fast() { want } else { "col2im" });
        // Mixed signs, 32 <- 64 channels: Winograd; a mostly-zero gradient: sparse.
        let d = dims(32, 8, 28, 3, 1);
        let w = values(64 * d.rows(), false);
        let mut g = values(64 * d.positions(), false);
        let dense = choose(Direction::Transposed, &d, 1, 64, &g, &w);
        assert_eq!(name(&dense), if fast() { "winograd" } else { "col2im" });
        for (i, v) in g.iter_mut().enumerate() {
            if i % 64 != 0 {
                *v = 0.0;
            }
        }
        assert_eq!(
            name(&choose(Direction::Transposed, &d, 1, 64, &g, &w)),
            "sparse"
        );
        // Non-negative dense operands (the z+ rule's W+^T s): the flipped kernel.
        let (gp, wp) = (values(g.len(), true), values(w.len(), true));
        let positive = choose(Direction::Transposed, &d, 1, 64, &gp, &wp);
        assert_eq!(name(&positive), if fast() { "flipped" } else { "col2im" });
        // Onto 8 channels (the small model's conv2): the flipped convolution on the direct
        // kernel with AVX-512F, dense or with 1 value in 8 (before the sparse gather), col2im
        // with AVX2; onto 16 the GEMM's paths again.
        let d8 = dims(8, 16, 24, 3, 1);
        let mut g8 = values(16 * d8.positions(), true);
        let w8 = values(16 * d8.rows(), true);
        let avx512 = fast() && crate::gemm::avx512();
        let want8 = if avx512 { "direct-flipped" } else { "col2im" };
        assert_eq!(
            name(&choose(Direction::Transposed, &d8, 1, 16, &g8, &w8)),
            want8
        );
        for (i, v) in g8.iter_mut().enumerate() {
            if i % 8 != 0 {
                *v = 0.0;
            }
        }
        let thin8 = name(&choose(Direction::Transposed, &d8, 1, 16, &g8, &w8));
        assert_eq!(thin8, if avx512 { "direct-flipped" } else { "sparse" });
        let d16 = dims(16, 8, 12, 3, 1);
        let g16 = values(32 * d16.positions(), true);
        let w16 = values(32 * d16.rows(), true);
        let want16 = if avx512 { "flipped" } else { "col2im" };
        assert_eq!(
            name(&choose(Direction::Transposed, &d16, 1, 32, &g16, &w16)),
            want16
        );
        // Stride 2: GEMM + col2im.
        let d2 = dims(32, 8, 28, 3, 2);
        let g2 = values(64 * d2.positions(), true);
        let w2 = values(64 * d2.rows(), true);
        assert_eq!(
            name(&choose(Direction::Transposed, &d2, 1, 64, &g2, &w2)),
            "col2im"
        );
    }
}
