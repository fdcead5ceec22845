//! LRP rules on single layers: conservation up to zero-denominator leaks, and the sign of z+.

use proptest::prelude::*;
use vidlrp_core::{
    Backend, BinaryOp, Conv3d, HostTensor, Layer, Linear, MaxPool3d, Pool3dGeometry, Rule, UnaryOp,
};
use vidlrp_cpu::{Cpu, CpuTensor};

const EPS: f64 = 1e-6;

fn host(shape: &[usize], data: Vec<f32>) -> HostTensor {
    HostTensor::new(shape.to_vec(), data).unwrap()
}

fn sub(be: &Cpu, a: &CpuTensor, b: &CpuTensor) -> CpuTensor {
    be.binary(a, b, BinaryOp::Sub).unwrap()
}

fn sum(t: &CpuTensor) -> f64 {
    t.as_slice().iter().map(|&v| f64::from(v)).sum()
}

/// `sum_j R_j z_j / stab(z_j)`: what a conserving rule keeps, given its denominators `z`
/// (relevance at `z_j = 0` is lost, the rest shrinks by the stabiliser).
fn kept(r: &CpuTensor, z: &CpuTensor) -> f64 {
    r.as_slice()
        .iter()
        .zip(z.as_slice().iter())
        .map(|(&r, &z)| {
            let z = f64::from(z);
            f64::from(r) * z / (z + EPS * if z >= 0.0 { 1.0 } else { -1.0 })
        })
        .sum()
}

fn assert_conserves(r_in: &CpuTensor, expected: f64, r_out: &CpuTensor, what: &str) {
    let scale: f64 = r_out
        .iter()
        .map(|v| f64::from(v.abs()))
        .sum::<f64>()
        .max(1e-12);
    let got = sum(r_in);
    assert!(
        (got - expected).abs() <= 1e-4 * scale,
        "{what}: sum R_in = {got}, expected {expected} (scale {scale})"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn conv_zplus_and_zbox_conserve_and_zplus_is_non_negative(
        c_in in 1usize..4, c_out in 1usize..5, k in [1usize..4, 1..4, 1..4], ext in [2usize..6, 2..7, 2..7],
        stride in 1usize..3, seed in any::<u64>(), zero_frac in 0.0f32..0.6,
    ) {
        let be = Cpu::new(2).unwrap();
        let pad = [k[0] / 2, k[1] / 2, k[2] / 2];
        let ws = [c_out, c_in, k[0], k[1], k[2]];
        let w = host(&ws, vidlrp_rng::uniform_values(ws.iter().product(), seed, -1.0, 1.0));
        let b = host(&[c_out], vidlrp_rng::uniform_values(c_out, seed ^ 9, -0.5, 0.5));
        let layer = Conv3d::new(&be, "conv", &w, Some(&b), [stride; 3], pad).unwrap();
        let xs = [2, c_in, ext[0], ext[1], ext[2]];
        // Non-negative inputs with some exact zeros (as after a ReLU).
        let xv: Vec<f32> = vidlrp_rng::uniform_values(xs.iter().product(), seed ^ 3, -zero_frac, 1.0).into_iter().map(|v| v.max(0.0)).collect();
        let x = be.upload(&host(&xs, xv)).unwrap();
        let out = layer.forward(&be, &x).unwrap();
        let r = be.upload(&host(out.shape(), vidlrp_rng::uniform_values(out.len(), seed ^ 5, 0.0, 1.0))).unwrap();
        let w_t = be.upload(&w).unwrap();

        let rz = layer.relevance(&be, &x, &r, &Rule::ZPlus { positive_bias: false }).unwrap();
        let geometry = *layer.geometry();
        let z = be.conv3d(&x, &be.unary(&w_t, UnaryOp::Positive).unwrap(), None, &geometry).unwrap();
        assert_conserves(&rz, kept(&r, &z), &r, "conv z+");
        prop_assert!(rz.as_slice().iter().all(|&v| v >= 0.0), "z+ relevance must be non-negative");

        // z^B with inputs inside [l, h] per channel.
        let low: Vec<f32> = (0..c_in).map(|c| -0.5 - c as f32).collect();
        let high: Vec<f32> = (0..c_in).map(|c| 1.0 + c as f32).collect();
        let rb = layer.relevance(&be, &x, &r, &Rule::ZBox { low: low.clone(), high: high.clone() }).unwrap();
        let lo = be.fill_channels(&xs, &low).unwrap();
        let hi = be.fill_channels(&xs, &high).unwrap();
        let wp = be.unary(&w_t, UnaryOp::Positive).unwrap();
        let wn = be.unary(&w_t, UnaryOp::Negative).unwrap();
        let zb = sub(&be, &sub(&be, &be.conv3d(&x, &w_t, None, &geometry).unwrap(), &be.conv3d(&lo, &wp, None, &geometry).unwrap()),
            &be.conv3d(&hi, &wn, None, &geometry).unwrap());
        assert_conserves(&rb, kept(&r, &zb), &r, "conv z^B");

        // Per-element bounds (Caffe's per-voxel mean): the per-channel bounds written out per
        // element give the same relevance; bounds that vary per element conserve too.
        let per_sample: usize = xs[1..].iter().product();
        let vox = per_sample / c_in;
        let spread = |v: &[f32]| v.iter().flat_map(|&b| std::iter::repeat_n(b, vox)).collect::<Vec<f32>>();
        let rv = layer.relevance(&be, &x, &r, &Rule::ZBox { low: spread(&low), high: spread(&high) }).unwrap();
        prop_assert_eq!(&rv, &rb);
        let low_v: Vec<f32> = vidlrp_rng::uniform_values(per_sample, seed ^ 11, -1.5, -0.5);
        let high_v: Vec<f32> = vidlrp_rng::uniform_values(per_sample, seed ^ 12, 1.0, 2.0);
        let rv = layer.relevance(&be, &x, &r, &Rule::ZBox { low: low_v.clone(), high: high_v.clone() }).unwrap();
        let lo = be.upload(&host(&xs, low_v.repeat(2))).unwrap();
        let hi = be.upload(&host(&xs, high_v.repeat(2))).unwrap();
        let zv = sub(&be, &sub(&be, &be.conv3d(&x, &w_t, None, &geometry).unwrap(), &be.conv3d(&lo, &wp, None, &geometry).unwrap()),
            &be.conv3d(&hi, &wn, None, &geometry).unwrap());
        assert_conserves(&rv, kept(&r, &zv), &r, "conv z^B per element");
        let bad = layer.relevance(&be, &x, &r, &Rule::ZBox { low: vec![0.0; per_sample + 1], high: vec![1.0; per_sample + 1] });
        prop_assert!(bad.is_err());
    }

    #[test]
    fn linear_zplus_conserves(d_in in 1usize..40, d_out in 1usize..20, n in 1usize..3, seed in any::<u64>()) {
        let be = Cpu::new(2).unwrap();
        let w = host(&[d_out, d_in], vidlrp_rng::uniform_values(d_in * d_out, seed, -1.0, 1.0));
        let layer = Linear::new(&be, "fc", &w, None).unwrap();
        let x = be.upload(&host(&[n, d_in], vidlrp_rng::uniform_values(n * d_in, seed ^ 1, -0.3, 1.0).into_iter().map(|v| v.max(0.0)).collect())).unwrap();
        let r = be.upload(&host(&[n, d_out], vidlrp_rng::uniform_values(n * d_out, seed ^ 2, 0.0, 2.0))).unwrap();
        let rz = layer.relevance(&be, &x, &r, &Rule::ZPlus { positive_bias: false }).unwrap();
        let z = be.linear(&x, &be.unary(&be.upload(&w).unwrap(), UnaryOp::Positive).unwrap(), None).unwrap();
        assert_conserves(&rz, kept(&r, &z), &r, "linear z+");
        prop_assert!(rz.as_slice().iter().all(|&v| v >= 0.0));
    }

    #[test]
    fn pooling_rules_conserve(
        ch in 1usize..3, input in [2usize..6, 2..7, 2..7], ceil in any::<bool>(), pad in 0usize..2,
        seed in any::<u64>(),
    ) {
        let be = Cpu::new(2).unwrap();
        let g = Pool3dGeometry { kernel: [2, 2, 2], stride: [2, 2, 2], padding: [0, pad, pad], ceil_mode: ceil };
        prop_assume!(g.output_extent(input).is_ok());
        let pool = MaxPool3d::new("pool", g);
        let xs = [1, ch, input[0], input[1], input[2]];
        let x = be.upload(&host(&xs, vidlrp_rng::uniform_values(xs.iter().product(), seed, -0.5, 1.0).into_iter().map(|v| v.max(0.0)).collect())).unwrap();
        let y = <MaxPool3d as Layer<Cpu>>::forward(&pool, &be, &x).unwrap();
        let r = be.upload(&host(y.shape(), vidlrp_rng::uniform_values(y.len(), seed ^ 4, 0.0, 1.0))).unwrap();
        let rp = pool.relevance(&be, &x, &r, &Rule::PoolProportional).unwrap();
        let sums = be.sum_pool3d(&x, &g).unwrap();
        assert_conserves(&rp, kept(&r, &sums), &r, "proportional pooling");
        prop_assert!(rp.as_slice().iter().all(|&v| v >= 0.0));
        let rw = pool.relevance(&be, &x, &r, &Rule::PoolWinnerTakeAll).unwrap();
        assert_conserves(&rw, sum(&r), &r, "winner-take-all pooling");
    }
}
