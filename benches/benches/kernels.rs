//! Kernels at C3D sizes: conv3d forward and transposed (conv1-, conv2- and conv3b-sized; the
//! transposes of a dense gradient and of one thinned to 1 value in 8, as after winner-take-all
//! pooling), pooling, dense layers.
#![allow(missing_docs)] // criterion_group! defines an undocumented `pub fn`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vidlrp_benches::uniform;
use vidlrp_core::{Backend, Conv3dGeometry, Pool3dGeometry};
use vidlrp_cpu::Cpu;

fn conv(c: &mut Criterion) {
    let be = Cpu::new(0).unwrap();
    let g = Conv3dGeometry {
        kernel: [3; 3],
        stride: [1; 3],
        padding: [1; 3],
    };
    // (name, C_in, C_out, T, H, W): conv1, conv2 and conv3b of C3D at 16x112x112 input.
    for (name, ci, co, t, h, w) in [
        ("conv1", 3, 64, 16, 112, 112),
        ("conv2", 64, 128, 16, 56, 56),
        ("conv3b", 256, 256, 8, 28, 28),
    ] {
        let x = be.upload(&uniform(&[1, ci, t, h, w], 1, 0.0, 1.0)).unwrap();
        let wt = be
            .upload(&uniform(&[co, ci, 3, 3, 3], 2, -0.05, 0.05))
            .unwrap();
        let y = be.conv3d(&x, &wt, None, &g).unwrap();
        let flops = 2 * co * ci * 27 * t * h * w;
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function("forward", |b| {
            b.iter(|| be.conv3d(&x, &wt, None, &g).unwrap());
        });
        group.bench_function("transposed", |b| {
            b.iter(|| {
                be.conv3d_transposed(&y, &wt, &g, &[1, ci, t, h, w])
                    .unwrap()
            });
        });
        // One value in 8 kept, scattered by a hash (SA's gradients after C3D's 2x2x2 pooling
        // are about 1/8 nonzero, each channel at its own positions).
        let thin = {
            let mut host = be.download(&y).unwrap();
            for (i, v) in host.data_mut().iter_mut().enumerate() {
                if (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 61 != 3 {
                    *v = 0.0;
                }
            }
            be.upload(&host).unwrap()
        };
        group.bench_function("transposed_1_in_8", |b| {
            b.iter(|| {
                be.conv3d_transposed(&thin, &wt, &g, &[1, ci, t, h, w])
                    .unwrap()
            });
        });
        group.finish();
    }
}

fn pool(c: &mut Criterion) {
    let be = Cpu::new(0).unwrap();
    let g = Pool3dGeometry {
        kernel: [1, 2, 2],
        stride: [1, 2, 2],
        padding: [0; 3],
        ceil_mode: false,
    };
    let x = be
        .upload(&uniform(&[1, 64, 16, 112, 112], 3, 0.0, 1.0))
        .unwrap();
    let y = be.max_pool3d(&x, &g).unwrap();
    let mut group = c.benchmark_group("pool1");
    group.sample_size(20);
    group.bench_function("max", |b| b.iter(|| be.max_pool3d(&x, &g).unwrap()));
    group.bench_function("wta", |b| {
        b.iter(|| be.max_pool3d_transposed(&x, &y, &g).unwrap());
    });
    group.bench_function("sum", |b| b.iter(|| be.sum_pool3d(&x, &g).unwrap()));
    group.bench_function("sum_transposed", |b| {
        b.iter(|| {
            be.sum_pool3d_transposed(&y, &g, &[1, 64, 16, 112, 112])
                .unwrap()
        });
    });
    group.finish();
}

fn linear(c: &mut Criterion) {
    let be = Cpu::new(0).unwrap();
    let x = be.upload(&uniform(&[1, 8192], 4, 0.0, 1.0)).unwrap();
    let w = be.upload(&uniform(&[4096, 8192], 5, -0.01, 0.01)).unwrap();
    let gy = be.upload(&uniform(&[1, 4096], 6, 0.0, 1.0)).unwrap();
    let mut group = c.benchmark_group("fc6");
    group.sample_size(20);
    group.bench_function("forward", |b| b.iter(|| be.linear(&x, &w, None).unwrap()));
    group.bench_function("transposed", |b| {
        b.iter(|| be.linear_transposed(&gy, &w).unwrap());
    });
    group.finish();
}

criterion_group!(benches, conv, pool, linear);
criterion_main!(benches);
