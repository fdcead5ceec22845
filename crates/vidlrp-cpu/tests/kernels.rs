//! The CPU kernels against naive f64 loops written independently here, over random geometries.

use proptest::prelude::*;
use vidlrp_core::{Backend, BinaryOp, Conv3dGeometry, HostTensor, Pool3dGeometry};
use vidlrp_cpu::{Cpu, CpuTensor};

fn cpu() -> Cpu {
    Cpu::new(2).unwrap()
}

fn t(be: &Cpu, shape: &[usize], data: Vec<f32>) -> CpuTensor {
    be.upload(&HostTensor::new(shape.to_vec(), data).unwrap())
        .unwrap()
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    vidlrp_rng::uniform_values(n, seed, -1.0, 1.0)
}

/// The bit patterns of `a`'s values, for comparisons that must be exact.
fn bits(a: &CpuTensor) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

/// `a` against exact sums `want`, each within `1e-5` of the sum of its terms' magnitudes
/// (`magnitude[i] = sum_k |term_k|`, the scale of f32 rounding error in any summation order,
/// ~170 units in the last place): a fixed share of the largest output would flake on outputs
/// that cancel to near zero.
fn close(a: &[f32], want: &[f64], magnitude: &[f64], what: &str) {
    assert_eq!(a.len(), want.len(), "{what}: lengths");
    assert_eq!(a.len(), magnitude.len(), "{what}: magnitudes");
    for (i, ((&x, &y), &m)) in a.iter().zip(want).zip(magnitude).enumerate() {
        assert!(
            (f64::from(x) - y).abs() <= 1e-5 * m,
            "{what}[{i}]: {x} vs {y} (terms' magnitudes sum to {m})"
        );
    }
}

/// Elementwise `|v|`: a reference evaluated on these gives each output's `sum_k |term_k|`.
fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

#[derive(Debug, Clone)]
struct ConvCase {
    n: usize,
    c_in: usize,
    c_out: usize,
    input: [usize; 3],
    g: Conv3dGeometry,
    seed: u64,
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        1usize..3,
        1usize..4,
        1usize..5,
        [1usize..4, 1..4, 1..4],
        [1usize..3, 1..3, 1..3],
        [0usize..2, 0..2, 0..2],
        [1usize..7, 1..7, 1..9],
        any::<u64>(),
    )
        .prop_filter_map(
            "kernel must fit",
            |(n, c_in, c_out, k, s, p, input, seed)| {
                let g = Conv3dGeometry {
                    kernel: k,
                    stride: s,
                    padding: p,
                };
                g.output_extent(input).ok().map(|_| ConvCase {
                    n,
                    c_in,
                    c_out,
                    input,
                    g,
                    seed,
                })
            },
        )
}

/// Every term of a direct cross-correlation: `f(output index, input index, weight index)` for
/// each output element (in order) and each in-range tap of its window.
fn taps(c: &ConvCase, mut f: impl FnMut(usize, usize, usize)) {
    let o = c.g.output_extent(c.input).unwrap();
    let [ti, hi, wi] = c.input;
    let [kt, kh, kw] = c.g.kernel;
    let mut idx = 0;
    for n in 0..c.n {
        for co in 0..c.c_out {
            for ot in 0..o[0] {
                for oh in 0..o[1] {
                    for ow in 0..o[2] {
                        for ci in 0..c.c_in {
                            for a in 0..kt {
                                for b in 0..kh {
                                    for d in 0..kw {
                                        let it = (ot * c.g.stride[0] + a) as isize
                                            - c.g.padding[0] as isize;
                                        let ih = (oh * c.g.stride[1] + b) as isize
                                            - c.g.padding[1] as isize;
                                        let iw = (ow * c.g.stride[2] + d) as isize
                                            - c.g.padding[2] as isize;
                                        if it < 0
                                            || ih < 0
                                            || iw < 0
                                            || it >= ti as isize
                                            || ih >= hi as isize
                                            || iw >= wi as isize
                                        {
                                            continue;
                                        }
                                        let xi = (((n * c.c_in + ci) * ti + it as usize) * hi
                                            + ih as usize)
                                            * wi
                                            + iw as usize;
                                        let wj = (((co * c.c_in + ci) * kt + a) * kh + b) * kw + d;
                                        f(idx, xi, wj);
                                    }
                                }
                            }
                        }
                        idx += 1;
                    }
                }
            }
        }
    }
}

/// Direct cross-correlation in f64.
fn naive_conv(c: &ConvCase, x: &[f32], w: &[f32]) -> Vec<f64> {
    let o = c.g.output_extent(c.input).unwrap();
    let mut out = vec![0f64; c.n * c.c_out * o.iter().product::<usize>()];
    taps(c, |oi, xi, wj| {
        out[oi] += f64::from(x[xi]) * f64::from(w[wj]);
    });
    out
}

/// Direct transposed convolution in f64: `dx[n, i, t p + a - pad] += g[n, o, p] w[o, i, a]`.
fn naive_transposed(c: &ConvCase, g: &[f32], w: &[f32]) -> Vec<f64> {
    let mut dx = vec![0f64; c.n * c.c_in * c.input.iter().product::<usize>()];
    taps(c, |oi, xi, wj| {
        dx[xi] += f64::from(g[oi]) * f64::from(w[wj]);
    });
    dx
}

/// Direct weight gradient in f64: `dw[o, i, a] += g[n, o, p] x[n, i, p + a - pad]`.
fn naive_weight_gradient(c: &ConvCase, x: &[f32], g: &[f32]) -> Vec<f64> {
    let k: usize = c.g.kernel.iter().product();
    let mut dw = vec![0f64; c.c_out * c.c_in * k];
    taps(c, |oi, xi, wj| {
        dw[wj] += f64::from(g[oi]) * f64::from(x[xi]);
    });
    dw
}

/// Weight gradients of C3D-like layers and ragged ones (output channels off the vector width,
/// odd widths, no padding, a frame kernel of 1) against the definition; with AVX-512F (the
/// direct path for `3x3` stride-1 kernels) also the same bits on 1, 2 and 3 threads.
#[test]
fn weight_gradients_match_direct_loops() {
    let cases = [
        (2, 3, 8, [4, 10, 12], 3, [1, 1, 1]),
        (3, 8, 16, [4, 6, 6], 3, [1, 1, 1]),
        (2, 5, 5, [3, 7, 9], 3, [1, 1, 1]),
        (1, 4, 20, [5, 5, 13], 1, [0, 1, 1]),
        (2, 6, 33, [2, 3, 3], 3, [1, 1, 1]),
        (2, 2, 48, [3, 8, 5], 3, [0, 0, 0]),
        (1, 3, 64, [2, 4, 4], 3, [2, 1, 2]),
    ];
    #[cfg(target_arch = "x86_64")]
    let direct = vidlrp_cpu::gemm::fast() && std::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let direct = false;
    for (n, c_in, c_out, input, kt, padding) in cases {
        let c = ConvCase {
            n,
            c_in,
            c_out,
            input,
            g: Conv3dGeometry {
                kernel: [kt, 3, 3],
                stride: [1; 3],
                padding,
            },
            seed: 3,
        };
        let o = c.g.output_extent(input).unwrap();
        let xs = [n, c_in, input[0], input[1], input[2]];
        let gs = [n, c_out, o[0], o[1], o[2]];
        let ws = [c_out, c_in, kt, 3, 3];
        let xv = values(xs.iter().product(), 3);
        let gv = values(gs.iter().product(), 4);
        let want = naive_weight_gradient(&c, &xv, &gv);
        let mut runs = Vec::new();
        for threads in [1, 2, 3] {
            let be = Cpu::new(threads).unwrap();
            let (x, g) = (t(&be, &xs, xv.clone()), t(&be, &gs, gv.clone()));
            let dw = be.conv3d_weight_gradient(&x, &g, &c.g, &ws).unwrap();
            let what = format!("{c_in}->{c_out} {input:?}, {threads} threads");
            close(
                dw.as_slice(),
                &want,
                &naive_weight_gradient(&c, &abs(&xv), &abs(&gv)),
                &what,
            );
            runs.push(dw.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
        if direct {
            assert_eq!(
                runs[0], runs[1],
                "{c_in}->{c_out} {input:?}: 1 vs 2 threads"
            );
            assert_eq!(
                runs[0], runs[2],
                "{c_in}->{c_out} {input:?}: 1 vs 3 threads"
            );
        }
    }
}

/// Convolutions at sizes that leave the small-layer path (forward and transposed): stride 1 with many input
/// channels (a convolution with the flipped kernel where the packed GEMM is in use), stride 1
/// onto 1-3 input channels (the direct path: rows of one and two 112-column stretches, padding
/// from 0 to k - 1; a batch of three, so that two samples share a task and the third is
/// alone) and mostly-zero gradients (gathered over the nonzeros, in 16- and 64-lane channel
/// blocks with a partial last block), against direct loops.
#[test]
fn wide_transposed_convolutions_match_direct_loops() {
    let g = |kernel, stride, padding| Conv3dGeometry {
        kernel,
        stride,
        padding,
    };
    for (c_in, input, geometry) in [
        (32, [4, 12, 12], g([3, 3, 3], [1; 3], [1; 3])),
        (70, [4, 12, 12], g([3, 2, 3], [1; 3], [1, 0, 2])),
        (20, [5, 24, 26], g([3, 2, 3], [1, 2, 2], [1, 0, 1])),
        (32, [3, 5, 41], g([3, 3, 3], [1; 3], [1, 1, 0])),
        (3, [4, 9, 130], g([3, 3, 3], [1; 3], [1; 3])),
        (1, [3, 10, 30], g([2, 3, 3], [1; 3], [0, 2, 1])),
        (2, [5, 7, 17], g([3, 1, 5], [1; 3], [2, 0, 0])),
        // Rows of three 16-column vectors (the small model's 48x48 input).
        (3, [3, 6, 48], g([3, 3, 3], [1; 3], [1; 3])),
        // Onto 4-8 channels (the small model's conv2): the flipped convolution on the direct
        // kernel with AVX-512F, also for asymmetric kernels and paddings and ragged rows.
        (8, [4, 12, 24], g([3, 3, 3], [1; 3], [1; 3])),
        (5, [3, 9, 37], g([3, 2, 3], [1; 3], [1, 0, 2])),
        (4, [4, 8, 17], g([1, 3, 3], [1; 3], [0, 1, 1])),
        (7, [2, 12, 50], g([2, 3, 1], [1; 3], [1, 2, 0])),
    ] {
        let c = ConvCase {
            n: 3,
            c_in,
            c_out: 5,
            input,
            g: geometry,
            seed: 11,
        };
        let k = c.g.kernel;
        let xs = [c.n, c.c_in, input[0], input[1], input[2]];
        let ws = [c.c_out, c.c_in, k[0], k[1], k[2]];
        let o = c.g.output_extent(c.input).unwrap();
        assert!(
            o.iter().product::<usize>() >= 512,
            "too small for the wide paths"
        );
        let gs = [c.n, c.c_out, o[0], o[1], o[2]];
        let wv = values(ws.iter().product(), 12);
        // Forward: rows wider than a 16-column sliver pack straight from the input.
        let xv = values(xs.iter().product(), 14);
        let z = be_conv(&xv, &xs, &wv, &ws, &c.g);
        close(
            &z,
            &naive_conv(&c, &xv, &wv),
            &naive_conv(&c, &abs(&xv), &abs(&wv)),
            "conv3d",
        );
        for density in [1, 9] {
            let gv: Vec<f32> = values(gs.iter().product(), 13)
                .into_iter()
                .enumerate()
                .map(|(i, v)| if i % density == 0 { v } else { 0.0 })
                .collect();
            let dx = be_transposed(&gv, &gs, &wv, &ws, &c.g, &xs);
            close(
                &dx,
                &naive_transposed(&c, &gv, &wv),
                &naive_transposed(&c, &abs(&gv), &abs(&wv)),
                "transposed",
            );
        }
    }
}

/// 3x3x3 stride-1 convolutions with enough channels and positions for Winograd's F(2x2x2,
/// 3x3x3) (odd extents, a batch of two), forward and transposed, against direct loops; and the
/// invariant that operands that are both non-negative (the z+ rule's `z = W+ x` and its
/// `W+^T s`) never take it: with inputs spanning twelve orders of magnitude, every output keeps
/// the relative precision of direct summation, which Winograd's subtractions would lose.
#[test]
fn winograd_sized_convolutions_match_direct_loops() {
    let c = ConvCase {
        n: 2,
        c_in: 24,
        c_out: 40,
        input: [5, 9, 14],
        g: Conv3dGeometry {
            kernel: [3; 3],
            stride: [1; 3],
            padding: [1; 3],
        },
        seed: 21,
    };
    let xs = [c.n, c.c_in, 5, 9, 14];
    let ws = [c.c_out, c.c_in, 3, 3, 3];
    let gs = [c.n, c.c_out, 5, 9, 14];
    let (xv, wv) = (
        values(xs.iter().product(), 22),
        values(ws.iter().product(), 23),
    );
    let z = be_conv(&xv, &xs, &wv, &ws, &c.g);
    close(
        &z,
        &naive_conv(&c, &xv, &wv),
        &naive_conv(&c, &abs(&xv), &abs(&wv)),
        "conv3d",
    );
    let gv = values(gs.iter().product(), 24);
    let dx = be_transposed(&gv, &gs, &wv, &ws, &c.g, &xs);
    close(
        &dx,
        &naive_transposed(&c, &gv, &wv),
        &naive_transposed(&c, &abs(&gv), &abs(&wv)),
        "transposed",
    );

    // Non-negative operands: 1e6 at a few scattered elements (most windows miss them, many of
    // their Winograd tiles do not), 1e-6 elsewhere.
    let spiky = |v: Vec<f32>| -> Vec<f32> {
        v.into_iter()
            .enumerate()
            .map(|(i, e)| if i % 4999 == 0 { 1e6 } else { 1e-6 * e.abs() })
            .collect()
    };
    let wp: Vec<f32> = wv.iter().map(|v| v.abs()).collect();
    let (xp, gp) = (spiky(xv), spiky(gv));
    let relative = |got: &[f32], want: &[f64], what: &str| {
        for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(a) - b).abs() <= 1e-5 * b.abs(),
                "{what}[{i}]: {a} vs {b}"
            );
        }
    };
    let z = be_conv(&xp, &xs, &wp, &ws, &c.g);
    relative(&z, &naive_conv(&c, &xp, &wp), "z+ conv3d");
    let dx = be_transposed(&gp, &gs, &wp, &ws, &c.g, &xs);
    relative(&dx, &naive_transposed(&c, &gp, &wp), "z+ transposed");
}

/// `conv3d` of `xv` (shape `xs`) with `wv` (shape `ws`) on the CPU backend, without bias.
fn be_conv(xv: &[f32], xs: &[usize], wv: &[f32], ws: &[usize], g: &Conv3dGeometry) -> Vec<f32> {
    let be = cpu();
    let z = be
        .conv3d(&t(&be, xs, xv.to_vec()), &t(&be, ws, wv.to_vec()), None, g)
        .unwrap();
    z.iter().copied().collect()
}

fn be_transposed(
    gv: &[f32],
    gs: &[usize],
    wv: &[f32],
    ws: &[usize],
    g: &Conv3dGeometry,
    xs: &[usize],
) -> Vec<f32> {
    let be = cpu();
    let dx = be
        .conv3d_transposed(&t(&be, gs, gv.to_vec()), &t(&be, ws, wv.to_vec()), g, xs)
        .unwrap();
    dx.iter().copied().collect()
}

/// C3D's pooling windows (`[1, 2, 2]` and `[2, 2, 2]`, stride = kernel, no padding) take
/// vectorized loops: same values bit for bit as the definition, ties and NaN included (the first
/// maximum in scan order wins, a NaN wins), odd extents leaving inputs outside every window.
#[test]
fn c3d_pooling_windows_match_the_definition_exactly() {
    let be = cpu();
    // Odd extents leave inputs outside every window; even ones are tiled exactly (the fused
    // proportional pass).
    // Rows of 1 to 40 windows: whole and partial stretches of 16 (the AVX-512 loop's masked
    // tail), C3D's 24, 12, 6 and 3 at 48x48 among them.
    for (kernel, input) in [
        ([1, 2, 2], [5usize, 7, 38]),
        ([2, 2, 2], [5, 7, 38]),
        ([1, 2, 2], [5, 6, 38]),
        ([2, 2, 2], [4, 6, 38]),
        ([1, 2, 2], [2, 4, 48]),
        ([2, 2, 2], [4, 4, 24]),
        ([2, 2, 2], [2, 2, 12]),
        ([2, 2, 2], [2, 2, 6]),
        ([1, 2, 2], [1, 2, 2]),
        ([1, 2, 2], [1, 2, 32]),
        ([2, 2, 2], [2, 2, 34]),
        ([1, 2, 2], [1, 4, 80]),
        ([2, 2, 2], [3, 5, 81]),
    ] {
        let g = Pool3dGeometry {
            kernel,
            stride: kernel,
            padding: [0; 3],
            ceil_mode: false,
        };
        let shape = [2, 3, input[0], input[1], input[2]];
        let len: usize = shape.iter().product();
        let mut rng = vidlrp_rng::SplitMix64(kernel[0] as u64);
        // Few distinct values (many ties), signed zeros and some NaNs.
        let xv: Vec<f32> = (0..len)
            .map(|_| match rng.next_u64() % 16 {
                0 => f32::NAN,
                1 => -0.0,
                2 => 0.0,
                r => (r % 4) as f32 - 1.0,
            })
            .collect();
        let x = t(&be, &shape, xv.clone());
        let o = g.output_extent(input).unwrap();
        let (plane, out_plane) = (input.iter().product::<usize>(), o.iter().product::<usize>());
        // Signed zeros in the gradient too: routed onto zeros, `0 + -0` is `+0`.
        let gv: Vec<f32> = (0..2 * 3 * out_plane)
            .map(|j| match j % 6 {
                5 => -0.0,
                r => r as f32 - 2.0,
            })
            .collect();
        let (mut want_max, mut want_sum) = (Vec::new(), Vec::new());
        let (mut want_route, mut want_spread) = (vec![0f32; len], vec![0f32; len]);
        for nc in 0..6 {
            for ot in 0..o[0] {
                for oh in 0..o[1] {
                    for ow in 0..o[2] {
                        let j = nc * out_plane + (ot * o[1] + oh) * o[2] + ow;
                        let (mut best, mut sum): (Option<usize>, f32) = (None, 0.0);
                        for a in 0..kernel[0] {
                            for b in 0..2 {
                                for e in 0..2 {
                                    let i = nc * plane
                                        + ((ot * kernel[0] + a) * input[1] + 2 * oh + b) * input[2]
                                        + 2 * ow
                                        + e;
                                    let v = xv[i];
                                    sum += v;
                                    if best.is_none_or(|k| v > xv[k] || v.is_nan()) {
                                        best = Some(i);
                                    }
                                    want_spread[i] += gv[j];
                                }
                            }
                        }
                        want_max.push(xv[best.unwrap()]);
                        want_sum.push(sum);
                        want_route[best.unwrap()] += gv[j];
                    }
                }
            }
        }
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let got = |a: CpuTensor| bits(a.as_slice());
        let gt = t(&be, &[2, 3, o[0], o[1], o[2]], gv.clone());
        assert_eq!(got(be.max_pool3d(&x, &g).unwrap()), bits(&want_max), "max");
        assert_eq!(got(be.sum_pool3d(&x, &g).unwrap()), bits(&want_sum), "sum");
        assert_eq!(
            got(be.max_pool3d_transposed(&x, &gt, &g).unwrap()),
            bits(&want_route),
            "winner-take-all"
        );
        assert_eq!(
            got(be.sum_pool3d_transposed(&gt, &g, &shape).unwrap()),
            bits(&want_spread),
            "sum transposed"
        );
        assert_eq!(
            got(be.sum_pool3d_proportional(&x, &gt, &g, 1e-6).unwrap()),
            got(composed_proportional(&be, &x, &gt, &g)),
            "proportional {kernel:?} on {input:?}"
        );
    }
}

/// Proportional pooling relevance as the backend trait's default composes it.
fn composed_proportional(be: &Cpu, x: &CpuTensor, r: &CpuTensor, g: &Pool3dGeometry) -> CpuTensor {
    let sums = be.sum_pool3d(x, g).unwrap();
    let s = be.binary(r, &sums, BinaryOp::StabDiv(1e-6)).unwrap();
    let spread = be.sum_pool3d_transposed(&s, g, x.shape()).unwrap();
    be.binary(&spread, x, BinaryOp::Mul).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv3d_matches_direct_loops_and_its_transpose_is_the_adjoint(c in conv_case()) {
        let be = cpu();
        let xs = [c.n, c.c_in, c.input[0], c.input[1], c.input[2]];
        let ws = [c.c_out, c.c_in, c.g.kernel[0], c.g.kernel[1], c.g.kernel[2]];
        let xv = values(xs.iter().product(), c.seed);
        let wv = values(ws.iter().product(), c.seed ^ 1);
        let x = t(&be, &xs, xv.clone());
        let w = t(&be, &ws, wv.clone());
        let z = be.conv3d(&x, &w, None, &c.g).unwrap();
        close(z.as_slice(), &naive_conv(&c, &xv, &wv), &naive_conv(&c, &abs(&xv), &abs(&wv)), "conv3d");
        // <conv(x), g> = <x, conv^T(g)>
        let gv = values(z.len(), c.seed ^ 2);
        let g = t(&be, z.shape(), gv.clone());
        let dx = be.conv3d_transposed(&g, &w, &c.g, &xs).unwrap();
        let lhs: f64 = z.iter().zip(&gv).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        let rhs: f64 = xv.iter().zip(dx.iter()).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        prop_assert!((lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()), "adjoint: {} vs {}", lhs, rhs);
        // A mostly-zero gradient (as after winner-take-all pooling) takes the scatter path.
        let sparse: Vec<f32> = gv.iter().enumerate().map(|(i, &v)| if i % 7 == 3 { v } else { 0.0 }).collect();
        let g = t(&be, z.shape(), sparse.clone());
        let dx = be.conv3d_transposed(&g, &w, &c.g, &xs).unwrap();
        let lhs: f64 = z.iter().zip(&sparse).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        let rhs: f64 = xv.iter().zip(dx.iter()).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        prop_assert!((lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()), "sparse adjoint: {} vs {}", lhs, rhs);
    }

    #[test]
    fn pooling_matches_direct_loops(
        n in 1usize..3, ch in 1usize..3, input in [1usize..6, 1..7, 1..7],
        k in [1usize..3, 1..4, 1..4], s in [1usize..3, 1..3, 1..3], pad in [0usize..2, 0..2, 0..2],
        ceil in any::<bool>(), seed in any::<u64>(),
    ) {
        let g = Pool3dGeometry { kernel: k, stride: s, padding: [pad[0].min(k[0] / 2), pad[1].min(k[1] / 2), pad[2].min(k[2] / 2)], ceil_mode: ceil };
        prop_assume!(g.output_extent(input).is_ok());
        let o = g.output_extent(input).unwrap();
        let be = cpu();
        let shape = [n, ch, input[0], input[1], input[2]];
        let xv = values(shape.iter().product(), seed);
        let x = t(&be, &shape, xv.clone());
        let mx = be.max_pool3d(&x, &g).unwrap();
        let sm = be.sum_pool3d(&x, &g).unwrap();
        let (mut want_max, mut want_sum, mut magnitude) = (Vec::new(), Vec::new(), Vec::new());
        let plane: usize = input.iter().product();
        for nc in 0..n * ch {
            for ot in 0..o[0] { for oh in 0..o[1] { for ow in 0..o[2] {
                let (mut m, mut sum, mut mag) = (f64::NEG_INFINITY, 0f64, 0f64);
                for it in 0..input[0] { for ih in 0..input[1] { for iw in 0..input[2] {
                    let inside = |i: usize, oo: usize, a: usize| {
                        let start = (oo * g.stride[a]) as isize - g.padding[a] as isize;
                        (i as isize) >= start && (i as isize) < start + g.kernel[a] as isize
                    };
                    if inside(it, ot, 0) && inside(ih, oh, 1) && inside(iw, ow, 2) {
                        let v = f64::from(xv[nc * plane + (it * input[1] + ih) * input[2] + iw]);
                        m = m.max(v);
                        sum += v;
                        mag += v.abs();
                    }
                }}}
                want_max.push(m);
                want_sum.push(sum);
                magnitude.push(mag);
            }}}
        }
        // The maximum is one of the values: exact.
        prop_assert_eq!(mx.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), want_max);
        close(sm.as_slice(), &want_sum, &magnitude, "sum pool");
        // Sum pooling's transpose is its adjoint.
        let gv = values(sm.len(), seed ^ 3);
        let gt = t(&be, sm.shape(), gv.clone());
        let back = be.sum_pool3d_transposed(&gt, &g, &shape).unwrap();
        let lhs: f64 = sm.iter().zip(&gv).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        let rhs: f64 = xv.iter().zip(back.iter()).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
        prop_assert!((lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()));
        // The fused proportional relevance is the composition, bit for bit.
        let fused = be.sum_pool3d_proportional(&x, &gt, &g, 1e-6).unwrap();
        let composed = composed_proportional(&be, &x, &gt, &g);
        prop_assert_eq!(bits(&fused), bits(&composed));
    }

    #[test]
    fn winner_take_all_routes_exactly_like_the_gradient(
        ch in 1usize..3, input in [1usize..5, 2..7, 2..7], k in [1usize..3, 1..4, 1..4],
        s in [1usize..3, 1..3, 1..3], ceil in any::<bool>(), seed in any::<u64>(),
    ) {
        let g = Pool3dGeometry { kernel: k, stride: s, padding: [0, k[1] / 2, 0], ceil_mode: ceil };
        prop_assume!(g.output_extent(input).is_ok());
        let be = cpu();
        let shape = [1, ch, input[0], input[1], input[2]];
        let len: usize = shape.iter().product();
        // Distinct integers, so a +0.5 nudge never changes a window's winner but its own.
        let mut rng = vidlrp_rng::SplitMix64(seed);
        let mut xv: Vec<f32> = (0..len).map(|i| i as f32).collect();
        for i in (1..len).rev() {
            xv.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let x = t(&be, &shape, xv.clone());
        let y = be.max_pool3d(&x, &g).unwrap();
        let gv: Vec<f32> = (0..y.len()).map(|j| (j % 7) as f32 + 1.0).collect();
        let gt = t(&be, y.shape(), gv.clone());
        let routed = be.max_pool3d_transposed(&x, &gt, &g).unwrap();
        let f = |v: &[f32]| -> f64 {
            let yy = be.max_pool3d(&t(&be, &shape, v.to_vec()), &g).unwrap();
            yy.iter().zip(&gv).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
        };
        let base = f(&xv);
        for i in 0..len {
            let mut xp = xv.clone();
            xp[i] += 0.5;
            let grad = (f(&xp) - base) / 0.5;
            prop_assert_eq!(f64::from(routed.as_slice()[i]), grad, "input {}", i);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Both dense paths (small batches read the weights in place, larger ones run a GEMM).
    #[test]
    fn linear_and_its_transpose_match_direct_loops(
        n in 1usize..14, d_in in 1usize..2600, d_out in 1usize..70, seed in any::<u64>(),
    ) {
        let be = cpu();
        let x = values(n * d_in, seed);
        let w = values(d_out * d_in, seed ^ 1);
        let b = values(d_out, seed ^ 2);
        // Every third gradient entry zero: the transposed path skips those.
        let g: Vec<f32> = values(n * d_out, seed ^ 3)
            .into_iter()
            .enumerate()
            .map(|(i, v)| if i % 3 == 0 { 0.0 } else { v })
            .collect();
        let y = be
            .linear(&t(&be, &[n, d_in], x.clone()), &t(&be, &[d_out, d_in], w.clone()), Some(&t(&be, &[d_out], b.clone())))
            .unwrap();
        // Each output's exact value and the sum of its terms' magnitudes.
        let dense = |x: &[f32], w: &[f32], b: &[f32]| -> Vec<f64> {
            let mut out = vec![0.0f64; n * d_out];
            for s in 0..n {
                for o in 0..d_out {
                    out[s * d_out + o] = f64::from(b[o])
                        + (0..d_in).map(|i| f64::from(x[s * d_in + i]) * f64::from(w[o * d_in + i])).sum::<f64>();
                }
            }
            out
        };
        close(y.as_slice(), &dense(&x, &w, &b), &dense(&abs(&x), &abs(&w), &abs(&b)), "linear");

        let dx = be.linear_transposed(&t(&be, &[n, d_out], g.clone()), &t(&be, &[d_out, d_in], w.clone())).unwrap();
        let dense_t = |g: &[f32], w: &[f32]| -> Vec<f64> {
            let mut out = vec![0.0f64; n * d_in];
            for s in 0..n {
                for i in 0..d_in {
                    out[s * d_in + i] = (0..d_out).map(|o| f64::from(g[s * d_out + o]) * f64::from(w[o * d_in + i])).sum::<f64>();
                }
            }
            out
        };
        close(dx.as_slice(), &dense_t(&g, &w), &dense_t(&abs(&g), &abs(&w)), "linear transposed");
    }
}

/// Mostly-zero gradients over many positions take the scatter path of the transposed
/// convolution; it must stay the adjoint of the forward convolution.
#[test]
fn sparse_transposed_convolution_is_the_adjoint() {
    let be = cpu();
    for (input, g) in [
        (
            [8usize, 24, 24],
            Conv3dGeometry {
                kernel: [3, 3, 3],
                stride: [1, 1, 1],
                padding: [1, 1, 1],
            },
        ),
        (
            [16, 32, 32],
            Conv3dGeometry {
                kernel: [3, 2, 3],
                stride: [1, 2, 2],
                padding: [1, 0, 1],
            },
        ),
    ] {
        let (c_in, c_out) = (5, 6);
        let xs = [1, c_in, input[0], input[1], input[2]];
        let ws = [c_out, c_in, g.kernel[0], g.kernel[1], g.kernel[2]];
        let xv = values(xs.iter().product(), 7);
        let wv = values(ws.iter().product(), 8);
        let z = be
            .conv3d(&t(&be, &xs, xv.clone()), &t(&be, &ws, wv.clone()), None, &g)
            .unwrap();
        assert!(
            z.len() / c_out >= 4096,
            "the case must reach the scatter path"
        );
        let gv: Vec<f32> = values(z.len(), 9)
            .into_iter()
            .enumerate()
            .map(|(i, v)| if i % 9 == 4 { v } else { 0.0 })
            .collect();
        let dx = be
            .conv3d_transposed(&t(&be, z.shape(), gv.clone()), &t(&be, &ws, wv), &g, &xs)
            .unwrap();
        let lhs: f64 = z
            .iter()
            .zip(&gv)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let rhs: f64 = xv
            .iter()
            .zip(dx.iter())
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        assert!(
            (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
            "adjoint: {lhs} vs {rhs}"
        );
    }
}

/// Per-sample sums: the same bits for every thread count, and within f64 rounding of an exact
/// (compensated) sum, on lengths around the 8-lane blocks and the 16384-value chunks.
#[test]
fn per_sample_sums_are_accurate_and_independent_of_threads() {
    for &per in &[1usize, 7, 8, 9, 16383, 16384, 16391, 100_003] {
        let n = 3;
        let data: Vec<f32> = (0..n * per)
            .map(|i| ((i * 7919 % 1013) as f32 - 500.0) * 1e-3)
            .collect();
        let x = HostTensor::new(vec![n, per], data.clone()).unwrap();
        let sums: Vec<Vec<f64>> = [1, 2, 3]
            .iter()
            .map(|&t| {
                let be = Cpu::new(t).unwrap();
                be.sum_per_sample(&be.upload(&x).unwrap()).unwrap()
            })
            .collect();
        assert_eq!(sums[0], sums[1], "{per} values: 1 vs 2 threads");
        assert_eq!(sums[0], sums[2], "{per} values: 1 vs 3 threads");
        for (s, chunk) in sums[0].iter().zip(data.chunks(per)) {
            // Kahan summation as the reference.
            let (mut total, mut carry) = (0.0f64, 0.0f64);
            for &v in chunk {
                let y = f64::from(v) - carry;
                let t = total + y;
                carry = (t - total) - y;
                total = t;
            }
            assert!(
                (s - total).abs() <= 1e-12 * (1.0 + total.abs()),
                "{per}: {s} vs {total}"
            );
        }
    }
}

/// `Backend::within` runs a pass on one of the pool's threads, and every op gives there the
/// bits it gives when called from outside the pool (dense and sparse transposes, the direct
/// and packed forward paths, pooling): the hand-off saved is time only.
#[test]
fn ops_within_the_pool_match_ops_called_from_outside() {
    let be = cpu();
    assert_eq!(rayon::current_thread_index(), None);
    assert!(be.within(|| rayon::current_thread_index().is_some()));
    let g3 = Conv3dGeometry {
        kernel: [3, 3, 3],
        stride: [1, 1, 1],
        padding: [1, 1, 1],
    };
    let pool = Pool3dGeometry {
        kernel: [2, 2, 2],
        stride: [2, 2, 2],
        padding: [0; 3],
        ceil_mode: false,
    };
    let (xs, ws, ys) = ([2, 3, 8, 20, 20], [8, 3, 3, 3, 3], [2, 8, 8, 20, 20]);
    let (xs2, ws2) = ([2, 8, 8, 20, 20], [16, 8, 3, 3, 3]);
    let x = t(&be, &xs, values(xs.iter().product(), 1));
    let w = t(&be, &ws, values(ws.iter().product(), 2));
    let x2 = t(&be, &xs2, values(xs2.iter().product(), 3));
    let w2 = t(&be, &ws2, values(ws2.iter().product(), 4));
    let dense = t(&be, &ys, values(ys.iter().product(), 5));
    // One value in eight kept, as after winner-take-all pooling: the sparse transpose.
    let thin: Vec<f32> = values(ys.iter().product(), 6)
        .into_iter()
        .enumerate()
        .map(|(i, v)| if i % 8 == 0 { v } else { 0.0 })
        .collect();
    let thin = t(&be, &ys, thin);
    let run = || -> Vec<Vec<u32>> {
        vec![
            bits(&be.conv3d(&x, &w, None, &g3).unwrap()),
            bits(&be.conv3d(&x2, &w2, None, &g3).unwrap()),
            bits(&be.conv3d_transposed(&dense, &w, &g3, &xs).unwrap()),
            bits(&be.conv3d_transposed(&thin, &w, &g3, &xs).unwrap()),
            bits(&be.max_pool3d(&x2, &pool).unwrap()),
            bits(&be.binary(&x2, &x2, BinaryOp::Mul).unwrap()),
        ]
    };
    let outside = run();
    let inside = be.within(run);
    for (i, (a, b)) in outside.iter().zip(&inside).enumerate() {
        assert!(a == b, "op {i}: bits differ within the pool");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// z^B's fused relevance `x ⊙ conv^T(s; w) − conv^T(s; k)` (both transposes in one pass
    /// onto 1-3 channels) gives the bits of the composition it replaces: two transposes, a
    /// product, a difference; also where it does not apply (4 channels, stride 2).
    #[test]
    fn bounded_transpose_equals_its_composition_bit_for_bit(
        c_in in 1usize..=4,
        c_out in 1usize..=9,
        frames in 1usize..=4,
        h in 1usize..=7,
        w in prop::sample::select(vec![1usize, 5, 16, 20, 33, 48, 70]),
        kernel in prop::sample::select(vec![[3usize, 3, 3], [1, 3, 3], [3, 1, 1], [1, 1, 1]]),
        stride in prop::sample::select(vec![1usize, 2]),
        seed in 0u64..1000,
    ) {
        let be = cpu();
        let g = Conv3dGeometry {
            kernel,
            stride: [stride; 3],
            padding: [kernel[0] / 2, kernel[1] / 2, kernel[2] / 2],
        };
        let Ok(out) = g.output_extent([frames, h, w]) else { return Ok(()) };
        let xs = [2, c_in, frames, h, w];
        let ws = [c_out, c_in, kernel[0], kernel[1], kernel[2]];
        let ss = [2, c_out, out[0], out[1], out[2]];
        let x = t(&be, &xs, values(xs.iter().product(), seed));
        let wt = t(&be, &ws, values(ws.iter().product(), seed + 1));
        let k = t(&be, &ws, values(ws.iter().product(), seed + 2));
        let s = t(&be, &ss, values(ss.iter().product(), seed + 3));
        let fused = be.conv3d_transposed_bounded(&s, &wt, &k, &x, &g).unwrap();
        let a = be.conv3d_transposed(&s, &wt, &g, &xs).unwrap();
        let b = be.conv3d_transposed(&s, &k, &g, &xs).unwrap();
        let composed = be
            .binary(&be.binary(&a, &x, BinaryOp::Mul).unwrap(), &b, BinaryOp::Sub)
            .unwrap();
        prop_assert!(bits(&fused) == bits(&composed), "fused and composed differ");
    }
}

/// z^B's contribution sums `conv(x; w) − conv(1; k)` with the bound term summed once for the
/// batch give the bits of the composition (ones of the batch's shape, two convolutions, a
/// difference), on conv1's geometry, odd shapes, and a first layer wide enough for Winograd.
#[test]
fn bounded_convolution_equals_its_composition_bit_for_bit() {
    let be = cpu();
    let g3 = Conv3dGeometry {
        kernel: [3, 3, 3],
        stride: [1; 3],
        padding: [1; 3],
    };
    let g2 = Conv3dGeometry {
        kernel: [1, 3, 3],
        stride: [1, 2, 2],
        padding: [0, 1, 1],
    };
    for (n, c_in, c_out, input, g) in [
        (3, 3, 8, [4, 12, 20], g3),
        (1, 3, 8, [4, 12, 20], g3),
        (2, 2, 5, [3, 7, 9], g2),
        (2, 16, 16, [4, 16, 16], g3),
    ] {
        let xs = [n, c_in, input[0], input[1], input[2]];
        let ws = [c_out, c_in, g.kernel[0], g.kernel[1], g.kernel[2]];
        let x = t(&be, &xs, values(xs.iter().product(), 11));
        let w = t(&be, &ws, values(ws.iter().product(), 12));
        // k = l w+ + h w- is non-positive for l < 0 < h.
        let k: Vec<f32> = values(ws.iter().product(), 13)
            .into_iter()
            .map(|v| -v.abs())
            .collect();
        let k = t(&be, &ws, k);
        let got = be.conv3d_bounded(&x, &w, &k, &g).unwrap();
        let ones = be.fill_channels(&xs, &vec![1.0; c_in]).unwrap();
        let want = be
            .binary(
                &be.conv3d(&x, &w, None, &g).unwrap(),
                &be.conv3d(&ones, &k, None, &g).unwrap(),
                BinaryOp::Sub,
            )
            .unwrap();
        assert!(bits(&got) == bits(&want), "{xs:?} {ws:?}: bits differ");
    }
}
