//! The forward convolution of a few input channels (a video's RGB planes, a small model's
//! second layer), computed directly:
//! `y[o, t, h, w] = sum_{c, a, b, e} w[o, c, a, b, e] x[c, t + a - pT, h + b - pH, w + e - pW]
//! (+ bias[o])`, stride 1.
//!
//! With three input channels the GEMM `W col` has few rows (C3D's conv1 at 1/8 width: 8), so
//! half of each 16-row register tile multiplies zeros, and every input value is gathered into
//! `kvol` im2col columns first. Here each task holds 8 output channels x 48 output columns of
//! one output row in registers (24 accumulators) and runs over the taps: per tap, three
//! 16-lane input vectors (read from a zero-bordered copy of the input, so no bounds checks) meet
//! eight broadcast weights.
//!
//! Each output sums its products in the im2col row order `(c, a, b, e)`, one fused
//! multiply-add each starting from zero, products with the zero border included, then adds the
//! bias: exactly what the packed GEMM does for a depth `K <= KC`, so both paths give the same
//! bits (tested), whatever the number of threads.

use crate::conv::ConvDims;
use crate::gemm::SendPtr;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The most input channels this path takes (the RGB planes of conv1, and the 8 channels of a
/// small model's conv2, where a 16-row GEMM would gather each input value 27 times into
/// im2col columns to use it 16 times).
pub(crate) const MAX_CHANNELS: usize = 8;

/// Output channels per task.
const OB: usize = 8;
/// The most 16-lane vectors of one output row per step (48 columns); rows of up to 32
/// columns take as many as they need, so that no FMA works on lanes past the row.
const WV: usize = 3;

/// Whether the direct path computes this forward convolution: stride 1, 1 to
/// [`MAX_CHANNELS`] input channels, padding below the kernel, a depth `C_in kvol` within one
/// packed GEMM block (so that the bits equal the GEMM's), and the AVX-512 kernels on.
pub(crate) fn applies(dims: &ConvDims) -> bool {
    (1..=MAX_CHANNELS).contains(&dims.c_in) && dims.rows() <= crate::gemm::KC && kernel_fits(dims)
}

/// Whether the kernel of this path can compute `dims` at all (any number of input channels
/// and any depth; its sums then follow the direct order, not the packed GEMM's blocks): stride
/// 1, padding below the kernel, and the AVX-512 kernels on.
pub(crate) fn kernel_fits(dims: &ConvDims) -> bool {
    dims.g.stride == [1, 1, 1]
        && (0..3).all(|i| dims.g.padding[i] < dims.g.kernel[i])
        && dims.positions() > 0
        && crate::gemm::fast()
        && crate::gemm::avx512()
}

/// `out` (`[N, C_out, output]`, every element written once, never read) of `n` samples of
/// `x`; `w` `[C_out][C_in][kvol]`; with `relu`, each output is `max(y, 0)` as
/// `UnaryOp::Positive` gives it (`y > 0 ? y : +0`, NaN to `+0`), applied at the store. Call
/// only where [`kernel_fits`] holds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_forward_direct(
    dims: &ConvDims,
    n: usize,
    c_out: usize,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [MaybeUninit<f32>],
) {
    let _timer = crate::phases::Timer::new(crate::phases::Phase::Arithmetic);
    assert!(
        kernel_fits(dims),
        "direct forward convolution does not apply"
    );
    let k = dims.rows();
    let p = dims.positions();
    assert!(x.len() == n * dims.input_len() && w.len() == c_out * k && out.len() == n * c_out * p);
    // w re-laid [block][k][o % OB], zero past c_out: a tap's eight weights side by side.
    let blocks = c_out.div_ceil(OB);
    let mut wt = vec![0.0f32; blocks * k * OB];
    for o in 0..c_out {
        for kk in 0..k {
            wt[((o / OB) * k + kk) * OB + o % OB] = w[o * k + kk];
        }
    }
    let [t_o, h_o, w_o] = dims.output;
    let [kt, kh, kw] = dims.g.kernel;
    let [pt, ph, pw] = dims.g.padding;
    let [t_in, h_in, w_in] = dims.input;
    // The zero-bordered input of one sample: frames t_o + kt - 1, rows h_o + kh - 1, and rows
    // long enough for the whole steps of WV vectors from every column tap (the lanes past w_o
    // read zeros or the row's own input, and are not stored).
    let (tp, hp) = (t_o + kt - 1, h_o + kh - 1);
    let wv = w_o.div_ceil(16).min(WV);
    let wp = w_o.div_ceil(wv * 16) * wv * 16 + kw - 1;
    let frame = hp * wp;
    let mut padded = vec![0.0f32; dims.c_in * tp * frame];
    let optr = SendPtr(out.as_mut_ptr().cast::<f32>());
    for s in 0..n {
        let xs = &x[s * dims.input_len()..(s + 1) * dims.input_len()];
        padded
            .par_chunks_mut(frame)
            .enumerate()
            .for_each(|(i, dst)| {
                let (c, t) = (i / tp, i % tp);
                dst.fill(0.0);
                let ti = t as isize - pt as isize;
                if !(0..t_in as isize).contains(&ti) {
                    return;
                }
                let src = &xs[(c * t_in + ti as usize) * h_in * w_in..][..h_in * w_in];
                for (r, row) in dst.chunks_exact_mut(wp).enumerate() {
                    let hi = r as isize - ph as isize;
                    if (0..h_in as isize).contains(&hi) {
                        let n_cols = w_in.min(wp - pw);
                        row[pw..pw + n_cols].copy_from_slice(&src[hi as usize * w_in..][..n_cols]);
                    }
                }
            });
        let job = Job {
            dims,
            k,
            wp,
            frame,
            tp,
            padded: &padded,
            wt: &wt,
            bias,
            relu,
            c_out,
        };
        (0..blocks * t_o).into_par_iter().for_each(|task| {
            let (ob, t) = (task / t_o, task % t_o);
            // SAFETY: applies() saw AVX-512F; each task writes only the rows of frame t of
            // its output channels in sample s.
            unsafe {
                let base = optr.get().add(s * c_out * p);
                match wv {
                    1 => job.frame::<1>(ob, t, base, p, h_o * w_o),
                    2 => job.frame::<2>(ob, t, base, p, h_o * w_o),
                    _ => job.frame::<WV>(ob, t, base, p, h_o * w_o),
                }
            }
        });
    }
}

/// One sample's operands.
struct Job<'a> {
    dims: &'a ConvDims,
    k: usize,
    wp: usize,
    frame: usize,
    tp: usize,
    padded: &'a [f32],
    wt: &'a [f32],
    bias: Option<&'a [f32]>,
    relu: bool,
    c_out: usize,
}

impl Job<'_> {
    /// Output frame `t` of output channels `OB ob..`: `out[o p + t plane + h w_o + w]`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `out` must point to one sample's `C_out x p` outputs,
    /// of which this call writes frame `t` of its channels only.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn frame<const V: usize>(
        &self,
        ob: usize,
        t: usize,
        out: *mut f32,
        p: usize,
        plane: usize,
    ) {
        use std::arch::x86_64::*;
        let d = self.dims;
        let [_, h_o, w_o] = d.output;
        let [kt, kh, kw] = d.g.kernel;
        let wt = self.wt.as_ptr().add(ob * self.k * OB);
        let xp = self.padded.as_ptr();
        let channels = OB.min(self.c_out - ob * OB);
        for h in 0..h_o {
            let mut w0 = 0;
            while w0 < w_o {
                let mut acc = [[_mm512_setzero_ps(); V]; OB];
                let mut kk = 0;
                for c in 0..d.c_in {
                    for a in 0..kt {
                        let fr = xp.add((c * self.tp + t + a) * self.frame);
                        for b in 0..kh {
                            let row = fr.add((h + b) * self.wp + w0);
                            for e in 0..kw {
                                let mut xv = [_mm512_setzero_ps(); V];
                                for (v, xv) in xv.iter_mut().enumerate() {
                                    *xv = _mm512_loadu_ps(row.add(v * 16 + e));
                                }
                                let wk = wt.add(kk * OB);
                                for (o, acc) in acc.iter_mut().enumerate() {
                                    let wb = _mm512_set1_ps(*wk.add(o));
                                    for v in 0..V {
                                        acc[v] = _mm512_fmadd_ps(wb, xv[v], acc[v]);
                                    }
                                }
                                kk += 1;
                            }
                        }
                    }
                }
                for (o, acc) in acc.iter().enumerate().take(channels) {
                    let oc = ob * OB + o;
                    let bias = _mm512_set1_ps(self.bias.map_or(0.0, |b| b[oc]));
                    let dst = out.add(oc * p + t * plane + h * w_o + w0);
                    for (v, &a) in acc.iter().enumerate() {
                        let lanes = w_o.saturating_sub(w0 + v * 16).min(16);
                        if lanes == 0 {
                            break;
                        }
                        let mask: __mmask16 = ((1u32 << lanes) - 1) as u16;
                        let y = if self.bias.is_some() {
                            _mm512_add_ps(a, bias)
                        } else {
                            a
                        };
                        // `y > 0 ? y : +0` (vmaxps returns its second operand unless the first
                        // is greater): UnaryOp::Positive's bits, NaN and -0 included.
                        let y = if self.relu {
                            _mm512_max_ps(y, _mm512_setzero_ps())
                        } else {
                            y
                        };
                        _mm512_mask_storeu_ps(dst.add(v * 16), mask, y);
                    }
                }
                w0 += V * 16;
            }
        }
    }

    /// Never called: [`applies`] is false off x86-64.
    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn frame<const V: usize>(&self, _: usize, _: usize, _: *mut f32, _: usize, _: usize) {
        unreachable!("the direct forward convolution needs AVX-512F")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayView2;
    use vidlrp_core::Conv3dGeometry;

    /// The same bits as the im2col GEMM on conv1-like layers and ragged ones (output channels
    /// off the block of 8, widths off the vector, no padding, a frame kernel of 1, no bias),
    /// on 1 and 3 threads, and with the ReLU at the store those of the GEMM's output rectified
    /// by `UnaryOp::Positive`.
    #[test]
    fn gives_the_gemm_s_bits() {
        let cases = [
            (1, 3, 8, [5, 12, 48], [3, 3, 3], [1, 1, 1], true),
            (2, 3, 13, [3, 9, 20], [3, 3, 3], [1, 1, 1], true),
            (1, 2, 5, [4, 7, 7], [1, 3, 3], [0, 1, 1], false),
            (1, 1, 16, [3, 6, 53], [3, 3, 3], [0, 0, 0], true),
            (1, 2, 3, [2, 3, 50], [2, 1, 5], [1, 0, 2], true),
            (1, 3, 9, [1, 2, 97], [1, 2, 1], [0, 1, 0], true),
            (2, 3, 64, [2, 5, 112], [3, 3, 3], [1, 1, 1], true),
            (2, 8, 16, [4, 6, 24], [3, 3, 3], [1, 1, 1], false),
            (1, 8, 16, [3, 5, 12], [3, 3, 3], [1, 1, 1], true),
            (1, 5, 11, [2, 3, 30], [3, 3, 3], [1, 1, 1], true),
            (1, 7, 4, [2, 4, 7], [3, 3, 3], [1, 1, 1], false),
        ];
        for (n, c_in, c_out, input, kernel, padding, with_bias) in cases {
            let g = Conv3dGeometry {
                kernel,
                stride: [1; 3],
                padding,
            };
            let d = ConvDims {
                c_in,
                input,
                output: std::array::from_fn(|i| input[i] + 2 * padding[i] + 1 - kernel[i]),
                g,
            };
            if !applies(&d) {
                let why = "the direct forward convolution needs AVX-512F";
                eprintln!("skipped: {why}");
                vidlrp_conformance::environment::log_skip(
                    "conv::direct_forward::tests::gives_the_gemm_s_bits",
                    why,
                );
                return;
            }
            let x = vidlrp_rng::uniform_values(n * d.input_len(), 5, -1.0, 1.0);
            let w = vidlrp_rng::uniform_values(c_out * d.rows(), 6, -1.0, 1.0);
            let b = vidlrp_rng::uniform_values(c_out, 7, -1.0, 1.0);
            let bias = with_bias.then_some(&b[..]);
            let len = n * c_out * d.positions();
            let mut want = vec![f32::NAN; len];
            let wv = ArrayView2::from_shape((c_out, d.rows()), &w[..]).unwrap();
            // Sample by sample: the per-sample GEMM (never the batch-wide one, which adds a
            // zero bias where there is none).
            for (xs, os) in x
                .chunks(d.input_len())
                .zip(want.chunks_mut(c_out * d.positions()))
            {
                crate::conv::im2col::conv_forward(&d, 1, xs, wv, bias, os, &mut Vec::new());
            }
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                for relu in [false, true] {
                    let mut got = vec![f32::NAN; len];
                    pool.install(|| {
                        let out = crate::elementwise::as_uninit(&mut got);
                        conv_forward_direct(&d, n, c_out, &x, &w, bias, relu, out);
                    });
                    let want: Vec<f32> = if relu {
                        let positive = vidlrp_core::UnaryOp::Positive;
                        want.iter().map(|&v| positive.apply(v)).collect()
                    } else {
                        want.clone()
                    };
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{c_in}->{c_out} {input:?} {kernel:?} {padding:?}, {threads} threads, \
                         relu {relu}"
                    );
                }
            }
        }
    }
}
