//! The convolution of an input whose every channel plane is one constant `v_c` (z^B's bound
//! images `l` and `h`): `out[o, q] = sum_{(c, a) valid at q} w[o, c, a] v_c`, which depends on
//! `q` only through which kernel taps fall inside the input. Output positions are grouped by
//! their valid tap ranges along each axis (27 groups for a 3x3x3 kernel with padding 1); each
//! group's value is one sum per output channel, and the output is filled from those.
//!
//! Each sum runs the same chain of fused multiply-adds as the register-blocked GEMM of the
//! im2col path (`k` in im2col row order, depth blocks of [`KC`] summed into the output in
//! turn): the taps outside the input, which that path multiplies by zero, leave its
//! accumulator unchanged (`fma(w, 0, acc) = acc` for finite `w` and an accumulator that starts
//! at `+0`), so the results are identical, bit for bit.

use crate::conv::ConvDims;
use crate::gemm::KC;
use rayon::prelude::*;

/// The constant of each channel plane of one sample (`c_in` planes of `plane` values), or
/// `None` as soon as one plane holds two different values (bitwise).
pub(crate) fn planes(x: &[f32], c_in: usize, plane: usize) -> Option<Vec<f32>> {
    (0..c_in)
        .map(|c| {
            let p = &x[c * plane..(c + 1) * plane];
            let v = *p.first()?;
            p.iter().all(|e| e.to_bits() == v.to_bits()).then_some(v)
        })
        .collect()
}

/// The kernel taps `a` along one axis that fall inside the input for each output coordinate:
/// `a in [max(0, p - o s), min(k, L + p - o s))`, as `(lo, hi)`.
fn valid_taps(extent: usize, out: usize, k: usize, s: usize, p: usize) -> Vec<(usize, usize)> {
    (0..out)
        .map(|o| {
            let start = (o * s) as isize - p as isize;
            let lo = (-start).clamp(0, k as isize) as usize;
            let hi = (extent as isize - start).clamp(0, k as isize) as usize;
            (lo, hi.max(lo))
        })
        .collect()
}

/// Tap ranges `(lo, hi)` along one axis.
type Taps = Vec<(usize, usize)>;

/// Distinct values of `v` and, for each element, the index of its value among them.
fn classes(v: &[(usize, usize)]) -> (Taps, Vec<usize>) {
    let mut distinct: Vec<(usize, usize)> = Vec::new();
    let index = v
        .iter()
        .map(|r| match distinct.iter().position(|d| d == r) {
            Some(i) => i,
            None => {
                distinct.push(*r);
                distinct.len() - 1
            }
        })
        .collect();
    (distinct, index)
}

/// `out` (`C_out x P`) = the convolution of one sample whose channel `c` is the constant
/// `consts[c]` with `w` (`C_out x K`, im2col row order), plus `bias`. `w` must be finite (the
/// caller checks), for the identity with the GEMM path described in the module docs.
pub(crate) fn conv_sample(
    dims: &ConvDims,
    consts: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let _timer = crate::phases::Timer::new(crate::phases::Phase::Arithmetic);
    let ([kt, kh, kw], s, pad) = (dims.g.kernel, dims.g.stride, dims.g.padding);
    let axes: [(Taps, Vec<usize>); 3] = std::array::from_fn(|a| {
        let k = dims.g.kernel[a];
        classes(&valid_taps(dims.input[a], dims.output[a], k, s[a], pad[a]))
    });
    let (k, p, c_out) = (dims.rows(), dims.positions(), w.len() / dims.rows());
    let [(rt, it), (rh, ih), (rw, iw)] = &axes;
    let groups = rt.len() * rh.len() * rw.len();
    // sums[g * c_out + o]: output channel o of group g = (t class, h class, w class).
    let mut sums = vec![0.0f32; groups * c_out];
    sums.par_chunks_mut(c_out).enumerate().for_each(|(g, row)| {
        let (ta, ha, wa) = (
            rt[g / (rh.len() * rw.len())],
            rh[g / rw.len() % rh.len()],
            rw[g % rw.len()],
        );
        for (o, sum) in row.iter_mut().enumerate() {
            let wo = &w[o * k..(o + 1) * k];
            let mut total = 0.0f32;
            for (block, pc) in (0..k).step_by(KC).enumerate() {
                let mut acc = 0.0f32;
                let end = (pc + KC).min(k);
                for (r, &wr) in wo.iter().enumerate().take(end).skip(pc) {
                    let (d, b) = (r % kw, r / kw % kh);
                    let (a, c) = (r / (kw * kh) % kt, r / (kw * kh * kt));
                    let inside = (ta.0..ta.1).contains(&a)
                        && (ha.0..ha.1).contains(&b)
                        && (wa.0..wa.1).contains(&d);
                    if inside {
                        acc = wr.mul_add(consts[c], acc);
                    }
                }
                total = if block == 0 { acc } else { total + acc };
            }
            *sum = total;
        }
    });
    let [to, ho, wo] = dims.output;
    out.par_chunks_mut(p).enumerate().for_each(|(o, row)| {
        let mut q = 0;
        for &gt in &it[..to] {
            for &gh in &ih[..ho] {
                let base = (gt * rh.len() + gh) * rw.len();
                for &gw in &iw[..wo] {
                    let z = sums[(base + gw) * c_out + o];
                    // As the GEMM path: the bias added after the sum, where there is one.
                    row[q] = bias.map_or(z, |b| z + b[o]);
                    q += 1;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayView2;
    use vidlrp_core::Conv3dGeometry;

    /// Against the im2col GEMM path, bit for bit (on CPUs with the register-blocked GEMM,
    /// whose chain of fused multiply-adds this path reproduces), and against plain loops.
    #[test]
    fn constant_planes_give_the_gemm_paths_values_exactly() {
        let geometry = |kernel, stride, padding| Conv3dGeometry {
            kernel,
            stride,
            padding,
        };
        for (n, c_in, input, g, bias) in [
            // conv1 of C3D, smaller frames; one and two samples (the batched GEMM).
            (1, 3, [4, 9, 13], geometry([3, 3, 3], [1; 3], [1; 3]), false),
            (2, 3, [4, 9, 13], geometry([3, 3, 3], [1; 3], [1; 3]), true),
            // Strides, no padding on one axis, more padding than the kernel covers on another.
            (
                1,
                2,
                [5, 11, 12],
                geometry([3, 2, 3], [2, 1, 3], [0, 1, 2]),
                true,
            ),
            // K = 12 * 27 > KC: two depth blocks.
            (1, 12, [3, 6, 7], geometry([3, 3, 3], [1; 3], [1; 3]), false),
        ] {
            let output = g.output_extent(input).unwrap();
            let dims = ConvDims {
                c_in,
                input,
                output,
                g,
            };
            let (k, p, c_out) = (dims.rows(), dims.positions(), 5);
            let plane: usize = input.iter().product();
            let consts: Vec<Vec<f32>> = (0..n)
                .map(|s| {
                    (0..c_in)
                        .map(|c| (c as f32 - 1.3) * (s as f32 + 0.7))
                        .collect()
                })
                .collect();
            let x: Vec<f32> = consts
                .iter()
                .flat_map(|cs| cs.iter().flat_map(|&v| std::iter::repeat_n(v, plane)))
                .collect();
            let w: Vec<f32> = (0..c_out * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 77.0)
                .collect();
            let b: Vec<f32> = (0..c_out).map(|o| o as f32 * 0.1 - 0.2).collect();
            let bias = bias.then_some(&b[..]);
            for (s, cs) in consts.iter().enumerate() {
                assert_eq!(
                    planes(&x[s * c_in * plane..], c_in, plane).as_ref(),
                    Some(cs)
                );
            }
            let mut got = vec![0.0f32; n * c_out * p];
            for (cs, os) in consts.iter().zip(got.chunks_mut(c_out * p)) {
                conv_sample(&dims, cs, &w, bias, os);
            }
            // Plain loops, in f64.
            let [ko, kh, kw] = g.kernel;
            for (s, cs) in consts.iter().enumerate() {
                for o in 0..c_out {
                    for q in 0..p {
                        let oc = [
                            q / (output[1] * output[2]),
                            q / output[2] % output[1],
                            q % output[2],
                        ];
                        let mut want = bias.map_or(0.0, |b| f64::from(b[o]));
                        for r in 0..k {
                            let tap = [r / (kw * kh) % ko, r / kw % kh, r % kw];
                            let inside = (0..3).all(|a| {
                                let i =
                                    (oc[a] * g.stride[a] + tap[a]) as isize - g.padding[a] as isize;
                                i >= 0 && (i as usize) < input[a]
                            });
                            if inside {
                                want += f64::from(w[o * k + r]) * f64::from(cs[r / (ko * kh * kw)]);
                            }
                        }
                        let v = f64::from(got[(s * c_out + o) * p + q]);
                        assert!(
                            (v - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "{v} vs {want}"
                        );
                    }
                }
            }
            if crate::gemm::fast() {
                let mut gemm = vec![0.0f32; n * c_out * p];
                let wv = ArrayView2::from_shape((c_out, k), &w[..]).unwrap();
                crate::conv::im2col::conv_forward(
                    &dims,
                    n,
                    &x,
                    wv,
                    bias,
                    &mut gemm,
                    &mut Vec::new(),
                );
                let bits = |v: &[f32]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&gemm), "{dims:?}");
            }
        }
    }

    #[test]
    fn a_plane_with_two_values_is_not_constant() {
        let mut x = vec![1.5f32; 2 * 8];
        assert_eq!(planes(&x, 2, 8), Some(vec![1.5, 1.5]));
        x[12] = 1.25;
        assert_eq!(planes(&x, 2, 8), None);
        // -0 and +0 differ bitwise (the GEMM path would keep their signs apart).
        let z = [0.0f32, -0.0];
        assert_eq!(planes(&z, 1, 2), None);
    }
}
