//! Batch normalisation folded into the convolution before it: the folded convolution's output
//! against `BN(conv(x))` computed in f64 on the reference backend, for strided convolutions
//! with and without bias (as in the video ResNets).

mod common;

use ndarray::{ArrayD, Axis};
use vidlrp_core::{Backend, BatchNorm, Conv3dGeometry, HostTensor};
use vidlrp_reference::Reference;

fn host(shape: &[usize], seed: u64) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::new(shape.to_vec(), common::dyadic_values(n, seed, -1.0, 2048)).unwrap()
}

/// `BN(conv(x; w, b))` in f64 and the folded convolution's output, on the reference backend.
fn both(bn: &BatchNorm, bias: bool, geometry: &Conv3dGeometry) -> (ArrayD<f64>, ArrayD<f64>) {
    let be = Reference::<f64>::new();
    let c = bn.channels();
    let x = be.upload(&host(&[2, 3, 5, 8, 8], 1)).unwrap();
    let w = host(&[c, 3, 3, 3, 3], 2);
    let b = bias.then(|| host(&[c], 3));
    let z = be
        .conv3d(
            &x,
            &be.upload(&w).unwrap(),
            b.as_ref().map(|b| be.upload(b).unwrap()).as_ref(),
            geometry,
        )
        .unwrap();
    let (s, t) = bn.scale_shift();
    let mut unfolded = z.clone();
    for (o, mut plane) in unfolded.axis_iter_mut(Axis(1)).enumerate() {
        plane.mapv_inplace(|v| s[o] * v + t[o]);
    }
    let (w2, b2) = bn.fold(&w, b.as_ref()).unwrap();
    let folded = be
        .conv3d(
            &x,
            &be.upload(&w2).unwrap(),
            Some(&be.upload(&b2).unwrap()),
            geometry,
        )
        .unwrap();
    (unfolded, folded)
}

fn worst_relative(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    let scale = a.iter().fold(0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b.iter())
        .fold(0f64, |m, (p, q)| m.max((p - q).abs()))
        / scale
}

fn geometries() -> [Conv3dGeometry; 2] {
    [
        Conv3dGeometry {
            kernel: [3, 3, 3],
            stride: [1, 1, 1],
            padding: [1, 1, 1],
        },
        // A ResNet stage's first convolution: stride 2 in time and space.
        Conv3dGeometry {
            kernel: [3, 3, 3],
            stride: [2, 2, 2],
            padding: [1, 1, 1],
        },
    ]
}

#[test]
fn a_folded_convolution_equals_convolution_then_batch_norm() {
    // Random statistics and affine parameters, so the folding matters: the folded weights
    // are rounded to f32 once, which bounds the difference (2^-24 relative per weight).
    let c = 6;
    let bn = BatchNorm::new(
        common::dyadic_values(c, 4, 0.25, 2048),
        common::dyadic_values(c, 5, -1.0, 2048),
        common::dyadic_values(c, 6, -1.0, 2048),
        common::dyadic_values(c, 7, 0.1, 2048),
        1e-5,
    )
    .unwrap();
    for geometry in geometries() {
        for bias in [false, true] {
            let (unfolded, folded) = both(&bn, bias, &geometry);
            let worst = worst_relative(&unfolded, &folded);
            assert!(worst < 1e-6, "bias {bias}: {worst:e}");
        }
    }
}

#[test]
fn where_the_folding_is_exact_in_f32_the_outputs_agree_to_1e_10() {
    // var + eps a power of 4 and gamma a power of 2: s is a power of two, mean and beta are
    // dyadic, so the folded weights and biases are exact in f32 and only f64 rounding is left.
    let bn = BatchNorm::new(
        vec![2.0, 0.5, 4.0, 1.0],
        vec![0.25, -1.5, 0.0, 3.0],
        vec![-0.5, 0.125, 1.0, 0.0],
        vec![4.0, 1.0, 16.0, 0.25],
        0.0,
    )
    .unwrap();
    for geometry in geometries() {
        for bias in [false, true] {
            let (unfolded, folded) = both(&bn, bias, &geometry);
            let worst = worst_relative(&unfolded, &folded);
            assert!(worst < 1e-10, "bias {bias}: {worst:e}");
        }
    }
}

#[test]
fn bad_batch_norms_and_mismatched_weights_are_errors() {
    let v = |n: usize| vec![1.0f32; n];
    assert!(BatchNorm::new(v(3), v(3), v(3), v(2), 1e-5).is_err());
    assert!(BatchNorm::new(v(0), v(0), v(0), v(0), 1e-5).is_err());
    assert!(BatchNorm::new(v(2), v(2), v(2), vec![-1.0, 1.0], 1e-5).is_err());
    assert!(BatchNorm::new(v(2), vec![f32::NAN, 0.0], v(2), v(2), 1e-5).is_err());
    let bn = BatchNorm::new(v(2), v(2), v(2), v(2), 1e-5).unwrap();
    assert!(bn.fold(&host(&[3, 1, 1, 1, 1], 1), None).is_err());
    assert!(bn
        .fold(&host(&[2, 1, 1, 1, 1], 1), Some(&host(&[3], 1)))
        .is_err());
}
