//! The parameter gradients of training against central finite differences, in f64 on the
//! reference backend: `L(w) = sum(g * conv3d(x, w, b))` (and the dense layer's) is linear in
//! each parameter, so the difference quotient must match the gradient to rounding.

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use vidlrp_core::{Backend, Conv3dGeometry};
use vidlrp_reference::Reference;

fn random(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut s = seed | 1;
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % 2001) as f64 / 1000.0 - 1.0
    })
}

fn loss(g: &ArrayD<f64>, y: &ArrayD<f64>) -> f64 {
    g.iter().zip(y.iter()).map(|(a, b)| a * b).sum()
}

/// Central differences of `f` at every element of `p` (step `h`).
fn finite_differences(p: &ArrayD<f64>, h: f64, f: impl Fn(&ArrayD<f64>) -> f64) -> ArrayD<f64> {
    let mut out = ArrayD::zeros(p.raw_dim());
    for (i, o) in out.iter_mut().enumerate() {
        let (mut up, mut down) = (p.clone(), p.clone());
        up.as_slice_mut().unwrap()[i] += h;
        down.as_slice_mut().unwrap()[i] -= h;
        *o = (f(&up) - f(&down)) / (2.0 * h);
    }
    out
}

fn close(a: &ArrayD<f64>, b: &ArrayD<f64>) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.shape(), b.shape());
    for (x, y) in a.iter().zip(b.iter()) {
        prop_assert!((x - y).abs() <= 1e-8 * (1.0 + y.abs()), "{} vs {}", x, y);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn conv_weight_and_bias_gradients_are_the_derivatives(
        n in 1usize..3, c_in in 1usize..3, c_out in 1usize..3,
        k in [1usize..4, 1..4, 1..4], ext in [2usize..5, 2..5, 2..5],
        stride in [1usize..3, 1..3, 1..3], pad_frac in 0.0f64..1.0, seed in any::<u64>(),
    ) {
        let padding = [0, 1, 2].map(|i| ((k[i] - 1) as f64 * pad_frac) as usize);
        let g = Conv3dGeometry { kernel: k, stride, padding };
        let xs = [n, c_in, ext[0], ext[1], ext[2]];
        prop_assume!(g.output_extent([ext[0], ext[1], ext[2]]).is_ok());
        let o = g.output_extent([ext[0], ext[1], ext[2]]).unwrap();
        let ws = [c_out, c_in, k[0], k[1], k[2]];
        let be = Reference::<f64>::new();
        let (x, w, b) = (random(&xs, seed), random(&ws, seed ^ 1), random(&[c_out], seed ^ 2));
        let gy = random(&[n, c_out, o[0], o[1], o[2]], seed ^ 3);
        let l = |w: &ArrayD<f64>, b: &ArrayD<f64>| loss(&gy, &be.conv3d(&x, w, Some(b), &g).unwrap());
        close(&be.conv3d_weight_gradient(&x, &gy, &g, &ws).unwrap(), &finite_differences(&w, 1e-3, |w| l(w, &b)))?;
        close(&be.sum_channels(&gy).unwrap(), &finite_differences(&b, 1e-3, |b| l(&w, b)))?;
    }

    #[test]
    fn dense_weight_and_bias_gradients_are_the_derivatives(
        n in 1usize..5, d_in in 1usize..7, d_out in 1usize..5, seed in any::<u64>(),
    ) {
        let be = Reference::<f64>::new();
        let (x, w, b) = (random(&[n, d_in], seed), random(&[d_out, d_in], seed ^ 1), random(&[d_out], seed ^ 2));
        let gy = random(&[n, d_out], seed ^ 3);
        let l = |w: &ArrayD<f64>, b: &ArrayD<f64>| loss(&gy, &be.linear(&x, w, Some(b)).unwrap());
        close(&be.linear_weight_gradient(&x, &gy).unwrap(), &finite_differences(&w, 1e-3, |w| l(w, &b)))?;
        close(&be.sum_channels(&gy).unwrap(), &finite_differences(&b, 1e-3, |b| l(&w, b)))?;
    }
}
