//! `fit` as a library user calls it: a model description that is not C3D, trained on a small
//! synthetic data set; a run resumed from its checkpoint ends where an uninterrupted one does;
//! a checkpoint of another seed and ill-formed descriptions are refused; on a learnable toy
//! set the loss falls.

use std::path::{Path, PathBuf};

use vidlrp_c3d::TensorMap;
use vidlrp_core::{HostTensor, LayerSpec, Pool3dGeometry};
use vidlrp_rng::Rng;
use vidlrp_train::{
    fit, softmax_cross_entropy, CheckpointAt, LabelledVideo, Progress, Sgd, TrainConfig, TrainData,
    TrainNet,
};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vidlrp-fit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// conv(3 -> 4, k3 p1) - ReLU - pool(2) - flatten - fc(-> 8) - ReLU - fc(-> 2).
fn description() -> Vec<LayerSpec> {
    vec![
        LayerSpec::Conv3d {
            name: "c".into(),
            stride: [1; 3],
            padding: [1; 3],
        },
        LayerSpec::Relu { name: "r1".into() },
        LayerSpec::MaxPool3d {
            name: "p".into(),
            geometry: Pool3dGeometry {
                kernel: [2; 3],
                stride: [2; 3],
                padding: [0; 3],
                ceil_mode: false,
            },
        },
        LayerSpec::Flatten { name: "f".into() },
        LayerSpec::Linear { name: "h".into() },
        LayerSpec::Relu { name: "r2".into() },
        LayerSpec::Linear { name: "o".into() },
    ]
}

fn normal(shape: Vec<usize>, std: f64, rng: &mut Rng) -> HostTensor {
    let mut t = HostTensor::zeros(shape);
    rng.fill_normal(t.data_mut(), std);
    t
}

/// Seeded weights for 4-frame 16 x 16 inputs.
fn weights() -> TensorMap {
    let mut rng = Rng::new(11);
    let mut w = TensorMap::new();
    w.insert(
        "c.weight".into(),
        normal(vec![4, 3, 3, 3, 3], 0.2, &mut rng),
    );
    w.insert("c.bias".into(), HostTensor::zeros(vec![4]));
    w.insert(
        "h.weight".into(),
        normal(vec![8, 4 * 2 * 8 * 8], 0.05, &mut rng),
    );
    w.insert("h.bias".into(), HostTensor::zeros(vec![8]));
    w.insert("o.weight".into(), normal(vec![2, 8], 0.3, &mut rng));
    w.insert("o.bias".into(), HostTensor::zeros(vec![2]));
    w
}

/// A synthetic data set of 2 classes, npy frames; its labelled videos.
fn data(dir: &Path) -> TrainData {
    let spec = vidlrp_synth::SynthSpec {
        classes: 2,
        videos: 8,
        frames: 16,
        test_frames: None,
        width: 32,
        height: 32,
        fps: 25,
        seed: 2,
        title_share: 0.0,
        distractors: 0,
        split: [70, 15, 15],
        format: vidlrp_synth::VideoFormat::Npy,
        action_share: 1.0,
    };
    let s = vidlrp_synth::write(&spec, dir, &mut |_, _| {}).unwrap();
    let of = |split: &str| -> Vec<LabelledVideo> {
        s.videos
            .iter()
            .filter(|v| v.split == split)
            .map(|v| LabelledVideo {
                path: dir.join(&v.path),
                label: v.label,
            })
            .collect()
    };
    TrainData {
        train: of("train"),
        val: of("val"),
        test: Some(of("test")),
        classes: 2,
    }
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        frames: 4,
        size: 16,
        epochs,
        batch: 2,
        seed: 9,
        cache_mb: 16,
        ..TrainConfig::default()
    }
}

#[test]
fn any_description_trains_and_a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let d = tmp("resume");
    let data = data(&d.join("data"));
    let cpu = vidlrp_cpu::Cpu::new(2).unwrap();
    let run = |epochs: usize, ck: &Path, resume: bool| {
        let mut events = 0;
        let t = fit(
            &cpu,
            &config(epochs),
            &data,
            &description(),
            weights,
            CheckpointAt { path: ck, resume },
            &mut |p| {
                if matches!(p, Progress::EpochDone(_)) {
                    events += 1;
                }
            },
        )
        .unwrap();
        (t, events)
    };
    let (whole, events) = run(3, &d.join("a.ck"), false);
    assert_eq!((whole.epochs.len(), events), (3, 3));
    assert_eq!(whole.epochs[0].snippets, data.train.len());
    let test = whole.test.as_ref().expect("a test record");
    assert_eq!(test.videos, data.test.as_ref().unwrap().len());
    assert_ne!(whole.weights["c.weight"], weights()["c.weight"], "trained");

    run(1, &d.join("b.ck"), false);
    let (resumed, events) = run(3, &d.join("b.ck"), true);
    assert_eq!(events, 2, "epochs 2 and 3 only");
    assert_eq!(resumed.weights, whole.weights);
    // The same records but for the wall times.
    let untimed = |epochs: &[vidlrp_train::EpochRecord]| -> Vec<vidlrp_train::EpochRecord> {
        (epochs.iter().cloned())
            .map(|mut e| {
                assert!(e.train_seconds > 0.0 && e.snippets_per_s > 0.0);
                (e.train_seconds, e.snippets_per_s) = (0.0, 0.0);
                e
            })
            .collect()
    };
    assert_eq!(untimed(&resumed.epochs), untimed(&whole.epochs));

    let other = TrainConfig {
        seed: 10,
        ..config(3)
    };
    let e = fit(
        &cpu,
        &other,
        &data,
        &description(),
        weights,
        CheckpointAt {
            path: &d.join("b.ck"),
            resume: true,
        },
        &mut |_| {},
    )
    .expect_err("another seed is refused");
    assert!(e.to_string().contains("another seed"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_description_and_its_weights_must_agree() {
    let cpu = vidlrp_cpu::Cpu::new(1).unwrap();
    let mut w = weights();
    w.insert("stray.weight".into(), HostTensor::zeros(vec![1]));
    let e = TrainNet::new(&cpu, &description(), w, 0.5).err().unwrap();
    assert!(e.to_string().contains("stray.weight"), "{e}");
    let mut w = weights();
    w.remove("h.weight");
    let e = TrainNet::new(&cpu, &description(), w, 0.5).err().unwrap();
    assert!(e.to_string().contains("h.weight"), "{e}");
    assert!(TrainNet::new(&cpu, &description(), weights(), 1.0).is_err());
}

/// A learnable toy set: clips of 3x4x16x16 noise (std 0.3) with the top half (class 0) or
/// the bottom half (class 1) brightened by 1; four batches of four.
fn halves() -> Vec<(HostTensor, Vec<usize>)> {
    let mut rng = Rng::new(21);
    (0..4)
        .map(|_| {
            let mut x = normal(vec![4, 3, 4, 16, 16], 0.3, &mut rng);
            let labels = vec![0, 1, 1, 0];
            for (n, &label) in labels.iter().enumerate() {
                let clip = &mut x.data_mut()[n * 3072..(n + 1) * 3072];
                for (i, v) in clip.iter_mut().enumerate() {
                    let top = (i % 256) / 16 < 8;
                    if top == (label == 0) {
                        *v += 1.0;
                    }
                }
            }
            (x, labels)
        })
        .collect()
}

/// Training does what it is for: twenty SGD steps over the toy set take its mean loss to
/// below a quarter of where it started, and every clip is then classified correctly.
#[test]
fn the_loss_falls_on_a_learnable_toy_set() {
    let cpu = vidlrp_cpu::Cpu::new(2).unwrap();
    let batches = halves();
    let mut net = TrainNet::new(&cpu, &description(), weights(), 0.0).unwrap();
    let mean_loss = |net: &TrainNet<vidlrp_cpu::Cpu>| -> (f64, usize) {
        let (mut loss, mut correct) = (0.0, 0);
        for (x, labels) in &batches {
            let logits = net.forward(&cpu, x).unwrap();
            loss += softmax_cross_entropy(&logits, labels).unwrap().0 / batches.len() as f64;
            correct += logits
                .data()
                .chunks(2)
                .zip(labels)
                .filter(|(row, &l)| (row[1] > row[0]) == (l == 1))
                .count();
        }
        (loss, correct)
    };
    let (start, _) = mean_loss(&net);
    let mut opt = Sgd::new(0.05, 0.9, 0.0);
    for step in 0..20 {
        let (x, labels) = &batches[step % batches.len()];
        let (logits, tape) = net.forward_train(&cpu, x, None).unwrap();
        let (_, d) = softmax_cross_entropy(&logits, labels).unwrap();
        let grads = net.backward(&cpu, tape, &d).unwrap();
        net.apply(&cpu, &mut opt, &grads).unwrap();
    }
    let (end, correct) = mean_loss(&net);
    assert!(end < 0.25 * start, "loss {start:.4} -> {end:.4}");
    assert_eq!(correct, 16, "loss {start:.4} -> {end:.4}");
}
