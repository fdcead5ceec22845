//! Training against PyTorch (fixtures/training/generate.py): the loss, the logits and every
//! parameter gradient of a small C3D on a fixed batch match autograd, two optimiser steps
//! match `torch.optim.SGD` (momentum, weight decay) and `torch.optim.Adam`, and six steps over
//! three batches match five optimiser settings in which momentum, weight decay and Adam's
//! betas each move the parameters far beyond the tolerance, on the fast CPU backend, the
//! reference backend and the CUDA kernels under host emulation. Inverted dropout's masks and
//! their `1 / (1 - p)` scaling are checked directly.

use std::path::{Path, PathBuf};

use vidlrp_c3d::{Pool5, TensorMap};
use vidlrp_core::{Backend, HostTensor, LayerSpec};
use vidlrp_train::{softmax_cross_entropy, Adam, Optimizer, Sgd, TrainNet};

/// The tolerance of parameters after optimiser steps, relative to the largest of a tensor.
const STEP_TOL: f64 = 1e-5;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/training")
}

fn load(name: &str) -> TensorMap {
    vidlrp_io::read_tensors(&dir().join(name)).unwrap()
}

/// `(max |a - b|, max |b|)`.
fn max_error_and_scale(a: &HostTensor, b: &HostTensor) -> (f64, f64) {
    let scale = b
        .data()
        .iter()
        .fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
    let err = a
        .data()
        .iter()
        .zip(b.data())
        .fold(0.0f64, |m, (x, y)| m.max(f64::from((x - y).abs())));
    (err, scale)
}

/// `max |a - b| <= tol * max |b|` (plus a tiny absolute floor for all-zero tensors).
#[track_caller]
fn close(what: &str, a: &HostTensor, b: &HostTensor, tol: f64) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let (err, scale) = max_error_and_scale(a, b);
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

/// `max |a - b| / max |b|`, the quantity [`close`] bounds.
fn relative_error(a: &HostTensor, b: &HostTensor) -> f64 {
    let (err, scale) = max_error_and_scale(a, b);
    err / scale.max(1e-30)
}

/// The goldens' small C3D (fixtures/training/weights.safetensors) with dropout `p`.
fn golden_net<B: Backend>(be: &B, p: f32) -> vidlrp_train::Result<TrainNet<B>> {
    TrainNet::c3d(
        be,
        load("weights.safetensors"),
        Pool5::Port,
        [3, 16, 32, 32],
        p,
    )
}

/// One optimiser step of `net` per batch, in order, without dropout.
fn train_steps<'a, B: Backend>(
    be: &B,
    net: &mut TrainNet<B>,
    opt: &mut dyn Optimizer,
    batches: impl IntoIterator<Item = &'a (HostTensor, Vec<usize>)>,
) {
    for (x, labels) in batches {
        let (logits, tape) = net.forward_train(be, x, None).unwrap();
        let (_, d) = softmax_cross_entropy(&logits, labels).unwrap();
        let grads = net.backward(be, tape, &d).unwrap();
        net.apply(be, opt, &grads).unwrap();
    }
}

/// The optimisers of steps.safetensors, by the names generate.py's `STEPS` gives them.
fn step_optimizers() -> Vec<(&'static str, Box<dyn Optimizer>)> {
    vec![
        ("sgd", Box::new(Sgd::new(0.01, 0.0, 0.0))),
        ("sgd_momentum", Box::new(Sgd::new(0.01, 0.9, 0.0))),
        ("sgd_momentum_decay", Box::new(Sgd::new(0.01, 0.9, 0.1))),
        ("adam", Box::new(Adam::new(1e-3))),
        (
            "adam_betas",
            Box::new(Adam::with_betas(1e-3, (0.5, 0.9), 1e-8)),
        ),
    ]
}

/// Six steps, step `s` on batch `s % 3`, of each optimiser of [`step_optimizers`].
fn several_steps<B: Backend>(be: &B) {
    let steps = load("steps.safetensors");
    let batches: Vec<(HostTensor, Vec<usize>)> = (0..3)
        .map(|k| {
            let labels = steps[&format!("labels.{k}")]
                .data()
                .iter()
                .map(|&v| v as usize);
            (steps[&format!("x.{k}")].clone(), labels.collect())
        })
        .collect();
    for (prefix, mut opt) in step_optimizers() {
        let mut net = golden_net(be, 0.0).unwrap();
        train_steps(be, &mut net, opt.as_mut(), batches.iter().cycle().take(6));
        for (name, p) in net.weights() {
            close(
                &format!("six steps of {prefix}: {name}"),
                p,
                &steps[&format!("{prefix}.{name}")],
                STEP_TOL,
            );
        }
    }
}

fn check<B: Backend>(be: &B) {
    let golden = load("golden.safetensors");
    let (x, labels) = batch();
    let net = golden_net(be, 0.0).unwrap();
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
        let mut net = golden_net(be, 0.0).unwrap();
        let one = (x.clone(), labels.clone());
        train_steps(be, &mut net, opt.as_mut(), [&one, &one]);
        for (name, p) in net.weights() {
            close(
                &format!("{prefix} {name}"),
                p,
                &golden[&format!("{prefix}.{name}")],
                STEP_TOL,
            );
        }
    }
    several_steps(be);
}

/// The goldens can tell a wrong optimiser from a right one: switching momentum, weight decay
/// or Adam's betas moves some parameter tensor by at least 20 times the tolerance (so an
/// implementation that ignored one of them would fail by that much).
#[test]
fn each_optimizer_setting_moves_the_goldens_far_beyond_the_tolerance() {
    let steps = load("steps.safetensors");
    let initial = load("weights.safetensors");
    for (what, a, b) in [
        ("momentum", "sgd", "sgd_momentum"),
        ("weight decay", "sgd_momentum", "sgd_momentum_decay"),
        ("Adam's betas", "adam", "adam_betas"),
        ("the steps themselves", "sgd", ""),
    ] {
        let moved = initial
            .keys()
            .map(|name| {
                let other = if b.is_empty() {
                    &initial[name]
                } else {
                    &steps[&format!("{b}.{name}")]
                };
                relative_error(&steps[&format!("{a}.{name}")], other)
            })
            .fold(0.0f64, f64::max);
        assert!(
            moved >= 20.0 * STEP_TOL,
            "{what} moves the parameters by only {moved:.2e} (relative)"
        );
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
    let net = golden_net(&cpu, 0.5).unwrap();
    let a = net.forward_train(&cpu, &x, Some(7)).unwrap().0;
    let b = net.forward_train(&cpu, &x, Some(7)).unwrap().0;
    let c = net.forward_train(&cpu, &x, Some(8)).unwrap().0;
    let eval = net.forward(&cpu, &x).unwrap();
    assert_eq!(a, b, "same seed, same masks");
    assert_ne!(a, c, "another seed, other masks");
    assert_ne!(a, eval, "evaluation has no dropout");
    assert!(golden_net(&cpu, 1.0).is_err());
}

/// flatten - fc "h" - ReLU - (dropout) - fc "o", both identities without bias, so that the
/// logits are the input's positive values times the dropout mask.
fn identity_net(be: &vidlrp_cpu::Cpu, n: usize, p: f32) -> TrainNet<vidlrp_cpu::Cpu> {
    let mut eye = HostTensor::zeros(vec![n, n]);
    for i in 0..n {
        eye.data_mut()[i * n + i] = 1.0;
    }
    let mut w = TensorMap::new();
    for layer in ["h", "o"] {
        w.insert(format!("{layer}.weight"), eye.clone());
        w.insert(format!("{layer}.bias"), HostTensor::zeros(vec![n]));
    }
    let layers = vec![
        LayerSpec::Flatten { name: "f".into() },
        LayerSpec::Linear { name: "h".into() },
        LayerSpec::Relu { name: "r".into() },
        LayerSpec::Linear { name: "o".into() },
    ];
    TrainNet::new(be, &layers, w, p).unwrap()
}

/// Inverted dropout: each value is zeroed with probability `p` or kept times `1 / (1 - p)`;
/// the backward pass applies the same mask and scale to the gradient.
#[test]
fn dropout_zeroes_a_share_p_and_scales_what_it_keeps_by_one_over_one_minus_p() {
    let cpu = vidlrp_cpu::Cpu::new(1).unwrap();
    let n = 4096;
    let p = 0.25f32;
    let net = identity_net(&cpu, n, p);
    let x = HostTensor::new(
        vec![1, 1, 1, 1, n],
        (0..n).map(|i| 1.0 + i as f32 / n as f32).collect(),
    )
    .unwrap();
    let (logits, tape) = net.forward_train(&cpu, &x, Some(3)).unwrap();
    let scale = 1.0 / (1.0 - p);
    let mut zeros = 0;
    for (y, x) in logits.data().iter().zip(x.data()) {
        if *y == 0.0 {
            zeros += 1;
        } else {
            assert_eq!(*y, x * scale, "a kept value is scaled by 1 / (1 - p)");
        }
    }
    // 4096 draws at p = 0.25: the share of zeros is within 0.03 of p (4.4 standard errors).
    let share = f64::from(zeros) / n as f64;
    assert!((share - 0.25).abs() < 0.03, "zeroed share {share}");
    // The gradient of h's bias is dlogits (ones) times the same mask: 0 or 1 / (1 - p) where
    // the logit is 0 or scaled.
    let grads = net
        .backward(
            &cpu,
            tape,
            &HostTensor::new(vec![1, n], vec![1.0; n]).unwrap(),
        )
        .unwrap();
    for (g, (y, x)) in grads["h.bias"]
        .data()
        .iter()
        .zip(logits.data().iter().zip(x.data()))
    {
        assert_eq!(*g * x, *y, "gradient mask and forward mask agree");
    }
    // Evaluation: no mask, no scale.
    assert_eq!(net.forward(&cpu, &x).unwrap().data(), x.data());
}

#[test]
fn the_cuda_kernels_under_host_emulation_train_like_pytorch() {
    check(&vidlrp_cuda::Emulated::new().with_tile_floats(1 << 16));
}
