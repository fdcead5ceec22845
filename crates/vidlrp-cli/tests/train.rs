//! `vidlrp synth` and `vidlrp train` as a user runs them: a small data set, two epochs, the
//! outputs, determinism, and a resumed run equal to an uninterrupted one, also after a
//! SIGKILL in the middle of an epoch.

mod common;

use common::{ok, s, tmp, vidlrp};

/// `vidlrp synth` of 2 classes, `videos` videos of 24 frames of 64x48 as `.npy`, into `data`.
fn synth_npy(data: &std::path::Path, videos: usize, seed: u64) -> std::process::Output {
    let (videos, seed) = (videos.to_string(), seed.to_string());
    vidlrp(&[
        "synth",
        "--out",
        s(data),
        "--classes",
        "2",
        "--videos",
        &videos,
        "--frames",
        "24",
        "--size",
        "64x48",
        "--format",
        "npy",
        "--seed",
        &seed,
    ])
}

#[test]
fn synth_then_train_writes_a_model_every_command_loads() {
    let d = tmp("train");
    let data = d.join("data");
    let j: serde_json::Value = serde_json::from_slice(&ok(synth_npy(&data, 8, 5)).stdout).unwrap();
    assert_eq!(
        (j["train"].as_u64(), j["val"].as_u64(), j["test"].as_u64()),
        (Some(4), Some(2), Some(2))
    );
    let o = vidlrp(&["synth", "--out", s(&data)]);
    assert_eq!(o.status.code(), Some(1), "an existing --out is refused");

    let (train_csv, val_csv) = (data.join("train.csv"), data.join("val.csv"));
    let train = |out: &std::path::Path, epochs: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--manifest",
            s(&train_csv),
            "--val",
            s(&val_csv),
            "--out",
            s(out),
            "--width",
            "0.0625",
            "--epochs",
            epochs,
            "--batch",
            "2",
            "--seed",
            "3",
            "--threads",
            "2",
        ];
        args.extend_from_slice(extra);
        ok(vidlrp(&args))
    };
    let a = d.join("a.safetensors");
    train(&a, "2", &[]);
    for f in [
        "a.safetensors",
        "a.checkpoint.safetensors",
        "a.log.json",
        "a-curves.png",
        "a-curves.svg",
    ] {
        assert!(d.join(f).exists(), "{f} missing");
    }
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("a.log.json")).unwrap()).unwrap();
    assert_eq!(log["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(log["epochs"][0]["snippets"], 4);
    assert!(log["epochs"][1]["val_top1"].as_f64().is_some());

    // Same seed and threads: the same model. One epoch, then --resume to two: the same too.
    let b = d.join("b.safetensors");
    train(&b, "2", &[]);
    if std::fs::read(&a).unwrap() != std::fs::read(&b).unwrap() {
        let (ta, ma) = vidlrp_io::read_safetensors_with_metadata(&a).unwrap();
        let (tb, mb) = vidlrp_io::read_safetensors_with_metadata(&b).unwrap();
        assert_eq!(ma, mb, "metadata");
        for (k, v) in &ta {
            assert_eq!(v, &tb[k], "{k}");
        }
        panic!("same tensors and metadata, other bytes");
    }
    let c = d.join("c.safetensors");
    train(&c, "1", &[]);
    train(&c, "2", &["--resume"]);
    assert_eq!(
        vidlrp_io::read_tensors(&a).unwrap(),
        vidlrp_io::read_tensors(&c).unwrap(),
        "a resumed run differs from an uninterrupted one"
    );

    // --snippets-per-video 2 doubles the snippets of an epoch.
    let e = d.join("e.safetensors");
    train(&e, "1", &["--snippets-per-video", "2"]);
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("e.log.json")).unwrap()).unwrap();
    assert_eq!(log["epochs"][0]["snippets"], 8);

    // The trained model is a C3D every command loads.
    let i = ok(vidlrp(&["inspect", s(&a)]));
    let i: serde_json::Value = serde_json::from_slice(&i.stdout).unwrap();
    assert_eq!(i["architecture"]["classes"], 2);
    assert_eq!(i["architecture"]["conv_widths"][0], 4);
    std::fs::remove_dir_all(&d).unwrap();
}

/// The epoch (0-based) a training checkpoint was written after, if it can be read yet.
fn checkpoint_epoch(path: &std::path::Path) -> Option<usize> {
    let (_, meta) = vidlrp_io::read_safetensors_with_metadata(path).ok()?;
    meta.get("epoch")?.parse().ok()
}

#[test]
fn a_run_killed_mid_epoch_resumes_to_the_model_of_an_uninterrupted_one() {
    let d = tmp("train-kill");
    let data = d.join("data");
    ok(synth_npy(&data, 24, 6));
    let (train_csv, val_csv) = (data.join("train.csv"), data.join("val.csv"));
    let args = |out: &std::path::Path| -> Vec<String> {
        [
            "train",
            "--manifest",
            s(&train_csv),
            "--val",
            s(&val_csv),
            "--out",
            s(out),
            "--width",
            "0.0625",
            "--epochs",
            "3",
            "--batch",
            "2",
            "--snippets-per-video",
            "2",
            "--seed",
            "4",
            "--threads",
            "1",
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let whole = d.join("whole.safetensors");
    let started = std::time::Instant::now();
    ok(vidlrp(
        &args(&whole).iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let run_s = started.elapsed().as_secs_f64();

    // Killed with SIGKILL (nothing can be cleaned up) once the first epoch's checkpoint is
    // written and before the second's: a tenth of an epoch after the first.
    let cut = d.join("cut.safetensors");
    let checkpoint = d.join("cut.checkpoint.safetensors");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vidlrp"))
        .args(args(&cut))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while checkpoint_epoch(&checkpoint).is_none() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(
            started.elapsed().as_secs() < 300,
            "no checkpoint was written"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    std::thread::sleep(std::time::Duration::from_secs_f64(run_s / 30.0));
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success(), "the run was not killed");
    assert_eq!(
        checkpoint_epoch(&checkpoint),
        Some(0),
        "killed after the second epoch's end"
    );
    assert!(!cut.exists(), "a killed run published its model");

    let mut resume = args(&cut);
    resume.push("--resume".into());
    ok(vidlrp(
        &resume.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(
        vidlrp_io::read_tensors(&cut).unwrap(),
        vidlrp_io::read_tensors(&whole).unwrap(),
        "a run resumed after SIGKILL differs from an uninterrupted one"
    );
    std::fs::remove_dir_all(&d).unwrap();
}
