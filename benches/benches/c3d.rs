//! The whole full-width C3D (80M parameters, seeded weights as `vidlrp init` makes them):
//! forward, DTD and SA explanations of one 3x16x112x112 clip.
#![allow(missing_docs)] // criterion_group! defines an undocumented `pub fn`.

use criterion::{criterion_group, criterion_main, Criterion};
use vidlrp_benches::{clip, full_c3d};
use vidlrp_core::{Backend, Composite, Target};
use vidlrp_cpu::Cpu;
use vidlrp_snippet::Preprocess;

fn whole_model(c: &mut Criterion) {
    let be = Cpu::new(0).unwrap();
    let net = full_c3d(&be);
    let x = be.upload(&clip(1)).unwrap();
    let caffe = Preprocess::caffe();
    let dtd = Composite::dtd(caffe.low(), caffe.high());
    let sa = Composite::sensitivity();
    let mut group = c.benchmark_group("c3d");
    group.sample_size(10);
    group.bench_function("forward", |b| b.iter(|| net.forward(&be, &x).unwrap()));
    group.bench_function("dtd", |b| {
        b.iter(|| net.explain(&be, &x, &Target::TopOne, &dtd).unwrap());
    });
    group.bench_function("sa", |b| {
        b.iter(|| net.explain(&be, &x, &Target::TopOne, &sa).unwrap());
    });
    group.finish();
}

criterion_group!(benches, whole_model);
criterion_main!(benches);
