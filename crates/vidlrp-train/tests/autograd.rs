//! Training against PyTorch (fixtures/training/generate.py): the loss, the logits and every
//! parameter gradient of a small C3D on a fixed batch match autograd, and two optimiser steps
//! match `torch.optim.SGD` (momentum, weight decay) and `torch.optim.Adam`, on the fast CPU
//! backend and on the reference backend.

use std::path::{Path, PathBuf};

use vidlrp_c3d::{Pool5, TensorMap};
use vidlrp_core::{Backend, HostTensor};
use vidlrp_train::{softmax_cross_entropy, Adam, Optimizer, Sgd, TrainNet};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/training")
}

fn load(name: &str) -> TensorMap {
    vidlrp_io::read_tensors(&dir().join(name)).unwrap()
}

/// `max |a - b| <= tol * max |b|` (plus a tiny absolute floor for all-zero tensors).
#[track_caller]
fn close(what: &str, a: &HostTensor, b: &HostTensor, tol: f64) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let scale = b
        .data()
        .iter()
        .fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
    let err = a
        .data()
        .iter()
        .zip(b.data())
        .fold(0.0f64, |m, (x, y)| m.max(f64::from((x - y).abs())));
    assert!(
        err <= tol * scale + 1e-9,
        "{what}: max error {err:.3e} against max |torch| {scale:.3e}"
    );
}

fn batch() -> (HostTensor, Vec<usize>) {
    let b = load("batch.safetensors");
    let labels = b["labels"].data().iter().map(|&v| v as usize).collect();
    (b["x"].clone(), labels)
}

fn check<B: Backend>(be: &B) {
    let golden = load("golden.safetensors");
    let (x, labels) = batch();
    let net = TrainNet::c3d(
        be,
        load("weights.safetensors"),
        Pool5::Port,
        [3, 16, 32, 32],
        0.0,
    )
    .unwrap();
    let (logits, tape) = net.forward_train(be, &x, Some(1)).unwrap();
    close("logits", &logits, &golden["logits"], 1e-5);
    let (loss, dlogits) = softmax_cross_entropy(&logits, &labels).unwrap();
    let want = f64::from(golden["loss"].data()[0]);
    assert!(
        (loss - want).abs() <= 1e-5 * want,
        "loss {loss} vs torch {want}"
    );
    let grads = net.backward(be, tape, &dlogits).unwrap();
    assert_eq!(grads.len(), 22);
    for (name, g) in &grads {
        close(
            &format!("grad {name}"),
            g,
            &golden[&format!("grad.{name}")],
            1e-4,
        );
    }
    for (prefix, opt) in [
        (
            "sgd",
            Box::new(Sgd::new(0.01, 0.9, 5e-4)) as Box<dyn Optimizer>,
        ),
        ("adam", Box::new(Adam::new(1e-3))),
    ] {
        let mut opt = opt;
        let mut net = TrainNet::c3d(
            be,
            load("weights.safetensors"),
            Pool5::Port,
            [3, 16, 32, 32],
            0.0,
        )
        .unwrap();
        for _ in 0..2 {
            let (logits, tape) = net.forward_train(be, &x, None).unwrap();
            let (_, d) = softmax_cross_entropy(&logits, &labels).unwrap();
            let grads = net.backward(be, tape, &d).unwrap();
            net.apply(be, opt.as_mut(), &grads).unwrap();
        }
        for (name, p) in net.weights() {
            close(
                &format!("{prefix} {name}"),
                p,
                &golden[&format!("{prefix}.{name}")],
                1e-5,
            );
        }
    }
}

#[test]
fn the_cpu_backend_trains_like_pytorch() {
    check(&vidlrp_cpu::Cpu::new(2).unwrap());
}

#[test]
fn the_reference_backend_trains_like_pytorch() {
    check(&vidlrp_reference::Reference::<f64>::new());
}

#[test]
fn dropout_masks_are_seeded_and_scale_what_they_keep() {
    let cpu = vidlrp_cpu::Cpu::new(1).unwrap();
    let (x, _) = batch();
    let net = TrainNet::c3d(
        &cpu,
        load("weights.safetensors"),
        Pool5::Port,
        [3, 16, 32, 32],
        0.5,
    )
    .unwrap();
    let a = net.forward_train(&cpu, &x, Some(7)).unwrap().0;
    let b = net.forward_train(&cpu, &x, Some(7)).unwrap().0;
    let c = net.forward_train(&cpu, &x, Some(8)).unwrap().0;
    let eval = net.forward(&cpu, &x).unwrap();
    assert_eq!(a, b, "same seed, same masks");
    assert_ne!(a, c, "another seed, other masks");
    assert_ne!(a, eval, "evaluation has no dropout");
    assert!(TrainNet::c3d(
        &cpu,
        load("weights.safetensors"),
        Pool5::Port,
        [3, 16, 32, 32],
        1.0
    )
    .is_err());
}

#[test]
fn the_cuda_kernels_under_host_emulation_train_like_pytorch() {
    check(&vidlrp_cuda::Emulated::new().with_tile_floats(1 << 16));
}
