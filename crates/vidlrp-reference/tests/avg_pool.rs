//! Average pooling (fixed and adaptive windows), its relevance and its gradient: against the
//! definitions written out here in f64, the adjoint identity, conservation of DTD through it,
//! and the CPU backend against the reference.

mod common;

use ndarray::{ArrayD, IxDyn};
use vidlrp_core::{
    AvgPool3d, Backend, Composite, Flatten, HostTensor, Layer, Linear, Pool3dGeometry, Rule,
    Sequential, Target,
};
use vidlrp_reference::Reference;

/// Values in `[lo, lo + 2)` from a xorshift stream, exact in f32.
fn values(n: usize, seed: u64, lo: f64) -> Vec<f32> {
    common::dyadic_values(n, seed, lo, 2048)
}

fn host(shape: &[usize], seed: u64, lo: f64) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::new(shape.to_vec(), values(n, seed, lo)).unwrap()
}

fn fixed(kernel: [usize; 3]) -> Pool3dGeometry {
    Pool3dGeometry {
        kernel,
        stride: kernel,
        padding: [0, 0, 0],
        ceil_mode: false,
    }
}

/// The window of output `(t, h, w)` for kernel `k`: every input index it averages.
fn window(k: [usize; 3], (t, h, w): (usize, usize, usize)) -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    for a in 0..k[0] {
        for b in 0..k[1] {
            for c in 0..k[2] {
                v.push((t * k[0] + a, h * k[1] + b, w * k[2] + c));
            }
        }
    }
    v
}

/// The layers under test with the kernel each amounts to on a `[2, 3, 4, 6, 6]` input.
fn layers() -> Vec<(AvgPool3d, [usize; 3])> {
    vec![
        (AvgPool3d::new("pool", fixed([1, 2, 2])).unwrap(), [1, 2, 2]),
        (AvgPool3d::new("pool", fixed([2, 3, 3])).unwrap(), [2, 3, 3]),
        (AvgPool3d::adaptive("avgpool", [1, 1, 1]), [4, 6, 6]),
        (AvgPool3d::adaptive("avgpool", [2, 2, 3]), [2, 3, 2]),
    ]
}

const SHAPE: [usize; 5] = [2, 3, 4, 6, 6];

/// The layer's output shape on [`SHAPE`].
fn shape_of(layer: &AvgPool3d) -> Vec<usize> {
    <AvgPool3d as Layer<Reference<f64>>>::output_shape(layer, &SHAPE).unwrap()
}

#[test]
fn forward_relevance_and_gradient_follow_their_definitions_in_f64() {
    let be = Reference::<f64>::new();
    let x = be.upload(&host(&SHAPE, 7, 0.25)).unwrap();
    for (layer, k) in layers() {
        let y = layer.forward(&be, &x).unwrap();
        let out = shape_of(&layer);
        assert_eq!(y.shape(), out.as_slice());
        let r = be.upload(&host(&out, 11, -1.0)).unwrap();
        let prop = layer
            .relevance(&be, &x, &r, &Rule::PoolProportional)
            .unwrap();
        let grad = layer.relevance(&be, &x, &r, &Rule::Gradient).unwrap();
        // Winner-take-all has nothing to pick in an average: it is the proportional split.
        let wta = layer
            .relevance(&be, &x, &r, &Rule::PoolWinnerTakeAll)
            .unwrap();
        assert_eq!(wta, prop);
        let vol = (k[0] * k[1] * k[2]) as f64;
        for n in 0..SHAPE[0] {
            for c in 0..SHAPE[1] {
                for t in 0..out[2] {
                    for h in 0..out[3] {
                        for w in 0..out[4] {
                            let win = window(k, (t, h, w));
                            let sum: f64 = win.iter().map(|&(a, b, d)| x[[n, c, a, b, d]]).sum();
                            let j = [n, c, t, h, w];
                            // The factor 1 / |pool| is an f32 (`UnaryOp::Scale`).
                            let factor = f64::from(1.0 / vol as f32);
                            assert!((y[IxDyn(&j)] - sum * factor).abs() < 1e-12);
                            assert!((y[IxDyn(&j)] - sum / vol).abs() < 1e-7 * sum / vol);
                            let rj = r[IxDyn(&j)];
                            for &(a, b, d) in &win {
                                let i = [n, c, a, b, d];
                                let xi = x[IxDyn(&i)];
                                // stab(z) = z + 1e-6 sign(z); the sums here are positive.
                                let want = xi / (sum + 1e-6) * rj;
                                assert!((prop[IxDyn(&i)] - want).abs() < 1e-12);
                                assert!((grad[IxDyn(&i)] - rj * factor).abs() < 1e-12);
                            }
                        }
                    }
                }
            }
        }
        // The gradient is the adjoint of the forward map: <A x, r> = <x, A^T r>.
        let lhs: f64 = y.iter().zip(r.iter()).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(grad.iter()).map(|(a, b)| a * b).sum();
        assert!(
            (lhs - rhs).abs() < 1e-10 * lhs.abs().max(1.0),
            "{lhs} vs {rhs}"
        );
        // The proportional split conserves each sample's relevance (up to the stabiliser).
        let sums = |a: &ArrayD<f64>| -> Vec<f64> {
            a.outer_iter().map(|s| s.iter().sum::<f64>()).collect()
        };
        for (p, q) in sums(&prop).iter().zip(sums(&r)) {
            assert!((p - q).abs() < 1e-5 * q.abs().max(1.0), "{p} vs {q}");
        }
    }
}

#[test]
fn the_cpu_backend_agrees_with_the_reference() {
    let reference = Reference::<f64>::new();
    let cpu = vidlrp_cpu::Cpu::new(2).unwrap();
    let x = host(&SHAPE, 3, 0.1);
    for (layer, _) in layers() {
        let out = shape_of(&layer);
        let r = host(&out, 5, -1.0);
        let results = |be_ref: bool| -> Vec<Vec<f32>> {
            let rules = [Rule::PoolProportional, Rule::Gradient];
            if be_ref {
                let (x, r) = (reference.upload(&x).unwrap(), reference.upload(&r).unwrap());
                let mut v = vec![reference
                    .download(&layer.forward(&reference, &x).unwrap())
                    .unwrap()
                    .data()
                    .to_vec()];
                for rule in &rules {
                    let rel = layer.relevance(&reference, &x, &r, rule).unwrap();
                    v.push(reference.download(&rel).unwrap().data().to_vec());
                }
                v
            } else {
                let (x, r) = (cpu.upload(&x).unwrap(), cpu.upload(&r).unwrap());
                let mut v = vec![cpu
                    .download(&layer.forward(&cpu, &x).unwrap())
                    .unwrap()
                    .data()
                    .to_vec()];
                for rule in &rules {
                    let rel = layer.relevance(&cpu, &x, &r, rule).unwrap();
                    v.push(cpu.download(&rel).unwrap().data().to_vec());
                }
                v
            }
        };
        for (a, b) in results(true).iter().zip(results(false)) {
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = a
                .iter()
                .zip(&b)
                .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(worst <= 1e-5 * scale, "{worst} of {scale}");
        }
    }
}

#[test]
fn dtd_through_a_global_average_pool_conserves() {
    // The video ResNets' head: global average pooling, flatten, a dense layer.
    let be = Reference::<f64>::new();
    let w = host(&[5, 3], 13, -1.0);
    let mut net: Sequential<Reference<f64>> = Sequential::new(vec![]);
    net.push(AvgPool3d::adaptive("avgpool", [1, 1, 1]));
    net.push(Flatten::new("flatten"));
    net.push(Linear::new(&be, "fc", &w, None).unwrap());
    let x = be.upload(&host(&[1, 3, 4, 6, 6], 17, 0.5)).unwrap();
    let composite = Composite::dtd(vec![0.0], vec![3.0]);
    let e = net.explain(&be, &x, &Target::TopOne, &composite).unwrap();
    let kept = e.conservation()[0];
    assert!((kept - 1.0).abs() < 1e-5, "sum R / f_c(x) = {kept}");
}

#[test]
fn bad_windows_are_errors() {
    let padded = Pool3dGeometry {
        padding: [0, 1, 1],
        ..fixed([1, 2, 2])
    };
    assert!(AvgPool3d::new("pool", padded).is_err());
    let ceil = Pool3dGeometry {
        ceil_mode: true,
        ..fixed([1, 2, 2])
    };
    assert!(AvgPool3d::new("pool", ceil).is_err());
    let adaptive = AvgPool3d::adaptive("avgpool", [1, 4, 4]);
    let shape_error = <AvgPool3d as Layer<Reference<f64>>>::output_shape(&adaptive, &SHAPE);
    assert!(shape_error.unwrap_err().to_string().contains("multiple"));
    assert!(<AvgPool3d as Layer<Reference<f64>>>::output_shape(&adaptive, &[1, 2, 3]).is_err());
    // Rules that are not pooling rules are refused by name.
    let be = Reference::<f64>::new();
    let x = be.upload(&host(&SHAPE, 1, 0.1)).unwrap();
    let layer = AvgPool3d::adaptive("avgpool", [1, 1, 1]);
    let r = layer.forward(&be, &x).unwrap();
    let err = layer.relevance(&be, &x, &r, &Rule::Pass).unwrap_err();
    assert!(err.to_string().contains("avgpool"), "{err}");
}
