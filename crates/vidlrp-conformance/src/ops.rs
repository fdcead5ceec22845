//! Every [`Backend`] op of one backend against another (the parameter gradients of training
//! included) on random geometries: kernel sizes
//! 1..4, strides 1..3, padding 0..k-1, channels 1..64, dense and mostly-zero gradients,
//! pooling windows 1..3 with padding and ceil mode. Geometries are drawn so that, across
//! seeds, they reach every code path of the fast CPU backend (batched small layers, layers of
//! more than 4096 positions per sample, the sparse 16- and 64-lane gathers, the direct
//! few-channel transpose, C3D's pooling fast path).

use vidlrp_core::{Backend, BinaryOp, Conv3dGeometry, HostTensor, Pool3dGeometry, UnaryOp};
use vidlrp_rng::Rng;

use crate::agreement::Agreement;

fn uniform(rng: &mut Rng, shape: &[usize], lo: f32, hi: f32) -> HostTensor {
    let n = shape.iter().product();
    let data = (0..n)
        .map(|_| lo + (hi - lo) * rng.uniform() as f32)
        .collect();
    HostTensor::new(shape.to_vec(), data).expect("shape")
}

/// A gradient with about one value in `keep` non-zero (as after winner-take-all pooling).
fn thinned(rng: &mut Rng, shape: &[usize], keep: u64) -> HostTensor {
    let mut t = uniform(rng, shape, -1.0, 1.0);
    for v in t.data_mut() {
        if !rng.next_u64().is_multiple_of(keep) {
            *v = 0.0;
        }
    }
    t
}

/// A random convolution problem drawn from `seed`: `(input shape, weight shape, geometry)`.
///
/// One seed in four is "large" (more than 4096 output positions per sample, up to 64
/// channels), one in four has 1-3 input channels (conv1's case), the rest are small.
pub fn random_conv(seed: u64) -> ([usize; 5], [usize; 5], Conv3dGeometry) {
    let mut rng = Rng::new(seed ^ 0xc0_4e);
    let mut pick = |lo: usize, hi: usize| lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize;
    let kind = pick(0, 3);
    let kernel = [pick(1, 3), pick(1, 4), pick(1, 4)];
    let stride = [pick(1, 3), pick(1, 3), pick(1, 3)];
    let padding = [
        pick(0, kernel[0] - 1),
        pick(0, kernel[1] - 1),
        pick(0, kernel[2] - 1),
    ];
    let (n, c_in, c_out, ext) = match kind {
        // Large: > 4096 output positions per sample at stride 1 (the packed and sparse paths).
        // Input channels 16 or 64 (the 16- and 64-lane gathers; 64 also takes the flipped
        // kernel), at most 64 x 16 channel pairs so the reference stays quick.
        0 => {
            let kernel = [pick(1, 3), pick(1, 3), pick(1, 3)];
            let padding = [
                pick(0, kernel[0] - 1),
                pick(0, kernel[1] - 1),
                pick(0, kernel[2] - 1),
            ];
            let stride1 = Conv3dGeometry {
                kernel,
                stride: [1; 3],
                padding,
            };
            let (c_in, c_out) = if pick(0, 1) == 0 {
                (64, 16)
            } else {
                (16, [16, 64][pick(0, 1)])
            };
            return (
                [1, c_in, 8, 32, 32],
                [c_out, c_in, kernel[0], kernel[1], kernel[2]],
                stride1,
            );
        }
        // Few input channels at stride 1 (the direct transpose), large enough to use it.
        1 => {
            let stride1 = Conv3dGeometry {
                kernel,
                stride: [1; 3],
                padding,
            };
            let (n, c_in, c_out) = (pick(1, 2), pick(1, 3), pick(2, 16));
            let ext = [pick(kernel[0], 8), pick(16, 40), pick(16, 120)];
            return (
                [n, c_in, ext[0], ext[1], ext[2]],
                [c_out, c_in, kernel[0], kernel[1], kernel[2]],
                stride1,
            );
        }
        _ => (
            pick(1, 3),
            pick(1, 8),
            pick(1, 8),
            [pick(1, 6), pick(1, 9), pick(1, 9)],
        ),
    };
    let mut ext = ext;
    for a in 0..3 {
        ext[a] = ext[a].max(kernel[a].saturating_sub(2 * padding[a]));
    }
    (
        [n, c_in, ext[0], ext[1], ext[2]],
        [c_out, c_in, kernel[0], kernel[1], kernel[2]],
        Conv3dGeometry {
            kernel,
            stride,
            padding,
        },
    )
}

/// A random pooling problem: `(input shape, geometry)`; one seed in three is C3D's
/// `[1,2,2]`/`[2,2,2]` window (the CPU backend's fast path).
pub fn random_pool(seed: u64) -> ([usize; 5], Pool3dGeometry) {
    let mut rng = Rng::new(seed ^ 0x9001);
    let mut pick = |lo: usize, hi: usize| lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize;
    let c3d = pick(0, 2) == 0;
    let kernel = if c3d {
        [pick(1, 2), 2, 2]
    } else {
        [pick(1, 3), pick(1, 3), pick(1, 3)]
    };
    let stride = if c3d {
        kernel
    } else {
        [pick(1, 3), pick(1, 3), pick(1, 3)]
    };
    let padding = if c3d {
        [0; 3]
    } else {
        [
            pick(0, kernel[0] / 2),
            pick(0, kernel[1] / 2),
            pick(0, kernel[2] / 2),
        ]
    };
    let ceil_mode = pick(0, 1) == 1;
    let shape = [pick(1, 2), pick(1, 5), pick(1, 6), pick(2, 20), pick(2, 36)];
    (
        shape,
        Pool3dGeometry {
            kernel,
            stride,
            padding,
            ceil_mode,
        },
    )
}

fn compare_tensors(
    case: String,
    a: Result<HostTensor, String>,
    b: Result<HostTensor, String>,
) -> Agreement {
    match (a, b) {
        (Ok(a), Ok(b)) if a.shape() == b.shape() => Agreement::measured(case, b.data(), a.data()),
        (Ok(a), Ok(b)) => {
            Agreement::failed(case, format!("shapes {:?} and {:?}", a.shape(), b.shape()))
        }
        (a, b) => Agreement::failed(
            case,
            format!(
                "{}; {}",
                a.err().unwrap_or_else(|| "ok".into()),
                b.err().unwrap_or_else(|| "ok".into())
            ),
        ),
    }
}

/// Runs `f` on a backend and downloads its result.
fn on<B: Backend>(
    be: &B,
    f: impl FnOnce(&B) -> vidlrp_core::Result<B::Tensor>,
) -> Result<HostTensor, String> {
    f(be)
        .and_then(|t| be.download(&t))
        .map_err(|e| format!("{}: {e}", be.name()))
}

fn up<B: Backend>(be: &B, t: &HostTensor) -> B::Tensor {
    be.upload(t).expect("upload")
}

/// `out.push(compare_tensors(label, op on reference, op on other))`, `$be` naming the backend
/// in `$op`.
macro_rules! agree {
    ($out:expr, $label:expr, $reference:expr, $other:expr, |$be:ident| $op:expr) => {
        $out.push(compare_tensors(
            $label,
            on($reference, |$be| $op),
            on($other, |$be| $op),
        ))
    };
}

/// Every op of `other` against `reference` on the random problems of `seed`: conv3d with
/// bias, its transpose on a dense and on a mostly-zero gradient, linear and its transpose,
/// max/sum pooling and their transposes, and the elementwise maps.
pub fn compare_ops<A: Backend, B: Backend>(reference: &A, other: &B, seed: u64) -> Vec<Agreement> {
    let mut out = Vec::new();
    let mut rng = Rng::new(seed ^ 0x0b5);
    let (xs, ws, g) = random_conv(seed);
    let tag = |op: &str| {
        format!(
            "ops {seed} / {op} x{xs:?} w{ws:?} k{:?} s{:?} p{:?}",
            g.kernel, g.stride, g.padding
        )
    };
    let x = uniform(&mut rng, &xs, -1.0, 1.0);
    let w = uniform(&mut rng, &ws, -1.0, 1.0);
    let b = uniform(&mut rng, &ws[..1], -0.5, 0.5);
    agree!(out, tag("conv3d"), reference, other, |be| be.conv3d(
        &up(be, &x),
        &up(be, &w),
        Some(&up(be, &b)),
        &g
    ));
    if let Ok(o) = g.output_extent([xs[2], xs[3], xs[4]]) {
        let gs = [xs[0], ws[0], o[0], o[1], o[2]];
        for (what, gy) in [
            ("conv3d_transposed dense", uniform(&mut rng, &gs, -1.0, 1.0)),
            ("conv3d_transposed 1 in 8", thinned(&mut rng, &gs, 8)),
        ] {
            agree!(out, tag(what), reference, other, |be| be.conv3d_transposed(
                &up(be, &gy),
                &up(be, &w),
                &g,
                &xs
            ));
        }
        // Parameter gradients (training): the weight gradient and the bias gradient.
        let gy = uniform(&mut rng, &gs, -1.0, 1.0);
        agree!(out, tag("conv3d_weight_gradient"), reference, other, |be| {
            be.conv3d_weight_gradient(&up(be, &x), &up(be, &gy), &g, &ws)
        });
        agree!(out, tag("sum_channels"), reference, other, |be| be
            .sum_channels(&up(be, &gy)));
    }
    // Dense layers: batch 1..12 (the in-place small-batch path and the GEMM).
    let n = 1 + (rng.next_u64() % 12) as usize;
    let (d_in, d_out) = (
        1 + (rng.next_u64() % 300) as usize,
        1 + (rng.next_u64() % 40) as usize,
    );
    let xl = uniform(&mut rng, &[n, d_in], -1.0, 1.0);
    let wl = uniform(&mut rng, &[d_out, d_in], -1.0, 1.0);
    let bl = uniform(&mut rng, &[d_out], -1.0, 1.0);
    let gl = uniform(&mut rng, &[n, d_out], -1.0, 1.0);
    let dense = format!("ops {seed} / linear [{n}, {d_in}] -> {d_out}");
    agree!(out, dense.clone(), reference, other, |be| be.linear(
        &up(be, &xl),
        &up(be, &wl),
        Some(&up(be, &bl))
    ));
    agree!(out, format!("{dense} transposed"), reference, other, |be| {
        be.linear_transposed(&up(be, &gl), &up(be, &wl))
    });
    agree!(
        out,
        format!("{dense} weight gradient"),
        reference,
        other,
        |be| be.linear_weight_gradient(&up(be, &xl), &up(be, &gl))
    );
    agree!(
        out,
        format!("{dense} bias gradient"),
        reference,
        other,
        |be| be.sum_channels(&up(be, &gl))
    );
    // Pooling, with ties (values rounded to 1/4) so the first maximum matters.
    let (ps, pg) = random_pool(seed);
    let mut xp = uniform(&mut rng, &ps, -1.0, 1.0);
    xp.data_mut()
        .iter_mut()
        .for_each(|v| *v = (*v * 4.0).round() / 4.0);
    let ptag = |op: &str| format!("ops {seed} / {op} x{ps:?} {pg:?}");
    if let Ok(o) = pg.output_extent([ps[2], ps[3], ps[4]]) {
        let gp = uniform(&mut rng, &[ps[0], ps[1], o[0], o[1], o[2]], 0.0, 1.0);
        agree!(out, ptag("max_pool3d"), reference, other, |be| be
            .max_pool3d(&up(be, &xp), &pg));
        agree!(out, ptag("max_pool3d_transposed"), reference, other, |be| {
            be.max_pool3d_transposed(&up(be, &xp), &up(be, &gp), &pg)
        });
        agree!(out, ptag("sum_pool3d"), reference, other, |be| be
            .sum_pool3d(&up(be, &xp), &pg));
        agree!(out, ptag("sum_pool3d_transposed"), reference, other, |be| {
            be.sum_pool3d_transposed(&up(be, &gp), &pg, &ps)
        });
    }
    // Elementwise maps, with exact zeros.
    let mut xe = uniform(&mut rng, &[3, 1000], -2.0, 2.0);
    xe.data_mut().iter_mut().step_by(7).for_each(|v| *v = 0.0);
    let ye = uniform(&mut rng, &[3, 1000], -2.0, 2.0);
    for op in [
        UnaryOp::Positive,
        UnaryOp::Negative,
        UnaryOp::Square,
        UnaryOp::One,
        UnaryOp::Scale(-1.5),
        UnaryOp::StepPositive,
        UnaryOp::StepNegative,
        UnaryOp::AddPositive(0.25),
        UnaryOp::AddNegative(0.25),
    ] {
        agree!(
            out,
            format!("ops {seed} / unary {op:?}"),
            reference,
            other,
            |be| be.unary(&up(be, &xe), op)
        );
    }
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::StabDiv(1e-6),
    ] {
        agree!(
            out,
            format!("ops {seed} / binary {op:?}"),
            reference,
            other,
            |be| be.binary(&up(be, &ye), &up(be, &xe), op)
        );
    }
    out
}
