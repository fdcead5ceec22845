//! Weight files from the wild through the CLI: every fixture format explains like the
//! safetensors original, origin-aware pool5, `convert`, `inspect`, `--mean`, and refusals.

mod common;

use common::{blob, field_bytes, field_varint, ok, s, small_model, tmp, vidlrp, vidlrp_human};
use std::path::{Path, PathBuf};

use serde_json::Value;
use vidlrp_core::HostTensor;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/checkpoints")
        .join(name)
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).expect("one JSON object on stdout")
}

/// A preprocessed 16x48x48 clip (the fixtures' model fits it under both pool5 variants).
fn clip(d: &Path) -> PathBuf {
    let n = 3 * 16 * 48 * 48;
    let data = (0..n).map(|i| ((i * 7919) % 255) as f32 - 100.0).collect();
    let p = d.join("clip.npy");
    vidlrp_io::write_npy(&p, &HostTensor::new(vec![3, 16, 48, 48], data).unwrap()).unwrap();
    p
}

fn explain(weights: &Path, input: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "explain",
        "--weights",
        s(weights),
        "--input",
        s(input),
        "--method",
        "epsilon-plus",
        "--class",
        "1",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    json(&ok(vidlrp(&args)))
}

#[test]
fn every_format_explains_like_the_safetensors_original() {
    let d = tmp("formats");
    let x = clip(&d);
    for pool5 in ["port", "caffe"] {
        let want_path = d.join(format!("want-{pool5}.npy"));
        explain(
            &fixture("original.safetensors"),
            &x,
            &want_path,
            &["--pool5", pool5],
        );
        let want = vidlrp_io::read_npy(&want_path).unwrap();
        for (file, origin, format) in [
            ("legacy.pickle", "pytorch-port", "pytorch-legacy"),
            ("legacy-cuda.pickle", "pytorch-port", "pytorch-legacy"),
            ("bare.pt", "pytorch-port", "pytorch-zip"),
            ("state-dict.pth", "pytorch-port", "pytorch-zip"),
            ("model.pth", "pytorch-port", "pytorch-zip"),
            ("data-parallel.pth", "pytorch-port", "pytorch-zip"),
            ("mmaction2.pth", "mmaction2", "pytorch-zip"),
            ("caffe-v10.caffemodel", "caffe", "caffe-v1.0"),
            ("caffe-v11.caffemodel", "caffe", "caffe-v1.1"),
        ] {
            let out = d.join(format!("{file}-{pool5}.npy"));
            let j = explain(&fixture(file), &x, &out, &["--pool5", pool5]);
            assert_eq!(j["origin"], origin, "{file}");
            assert_eq!(j["weights_format"], format, "{file}");
            assert_eq!(j["pool5"], pool5, "{file}");
            assert_eq!(j["pool5_from"], "--pool5", "{file}");
            assert_eq!(
                vidlrp_io::read_npy(&out).unwrap(),
                want,
                "{file} under pool5 {pool5}"
            );
        }
    }
    // Without --pool5 the origin decides: ceil mode for Caffe, padded for the others.
    let j = explain(&fixture("caffe-v10.caffemodel"), &x, &d.join("c.npy"), &[]);
    assert_eq!(
        (j["pool5"].as_str(), j["pool5_from"].as_str()),
        (Some("caffe"), Some("origin"))
    );
    assert_eq!(j["preset"], "caffe");
    assert_eq!(
        vidlrp_io::read_npy(&d.join("c.npy")).unwrap(),
        vidlrp_io::read_npy(&d.join("want-caffe.npy")).unwrap()
    );
    let j = explain(&fixture("mmaction2.pth"), &x, &d.join("m.npy"), &[]);
    assert_eq!(
        (j["pool5"].as_str(), j["pool5_from"].as_str()),
        (Some("port"), Some("origin"))
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn convert_keeps_the_origin_and_inspect_reports_it() {
    let d = tmp("convert");
    let x = clip(&d);
    let conv = d.join("caffe.safetensors");
    let j = json(&ok(vidlrp(&[
        "convert",
        s(&fixture("caffe-v10.caffemodel")),
        "--out",
        s(&conv),
    ])));
    assert_eq!(j["origin"], "caffe");
    assert_eq!(j["tensors"], 22);
    assert_eq!(j["skipped"].as_array().unwrap().len(), 19);
    // The converted file keeps Caffe's pool5 and explains exactly like the Caffe model.
    let a = explain(&conv, &x, &d.join("a.npy"), &[]);
    assert_eq!(a["pool5"], "caffe");
    assert_eq!(a["weights_format"], "safetensors");
    explain(&fixture("caffe-v10.caffemodel"), &x, &d.join("b.npy"), &[]);
    assert_eq!(
        vidlrp_io::read_npy(&d.join("a.npy")).unwrap(),
        vidlrp_io::read_npy(&d.join("b.npy")).unwrap()
    );
    let i = json(&ok(vidlrp(&["inspect", s(&conv)])));
    assert_eq!(i["origin"], "caffe");
    assert_eq!(i["defaults"]["pool5"], "caffe");
    assert_eq!(i["architecture"]["classes"], 4);
    assert_eq!(i["architecture"]["conv_widths"][1], 3);
    assert_eq!(i["input"]["frames"], 16);
    assert_eq!(i["input"]["size_min"], 48);
    let text = ok(vidlrp_human(&["inspect", s(&fixture("legacy.pickle"))]));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("format:   pytorch-legacy"), "{text}");
    assert!(text.contains("--pool5 port"), "{text}");
    std::fs::remove_dir_all(&d).unwrap();
}

// --- hand-encoded protobuf for broken Caffe models (encoder in common) ---------------------

fn layer(name: &str, kind: u64, blobs: &[Vec<u8>]) -> Vec<u8> {
    let mut l = Vec::new();
    field_bytes(4, name.as_bytes(), &mut l);
    field_varint(5, kind, &mut l);
    for b in blobs {
        field_bytes(6, b, &mut l);
    }
    let mut net = Vec::new();
    field_bytes(2, &l, &mut net);
    net
}

#[test]
fn hostile_and_broken_weight_files_are_refused_without_output() {
    let d = tmp("refusals");
    let x = clip(&d);
    let out = d.join("r.npy");
    let run = |w: &Path, needle: &str| {
        let o = vidlrp(&[
            "explain",
            "--weights",
            s(w),
            "--input",
            s(&x),
            "--method",
            "sa",
            "--out",
            s(&out),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", w.display());
        assert!(
            err.contains(needle),
            "{}: expected {needle:?} in {err}",
            w.display()
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists());
    };
    run(
        &fixture("evil.pt"),
        "calls posix.system, which is not a tensor-rebuild function",
    );
    run(&fixture("evil-legacy.pickle"), "calls posix.system");
    let conv = blob([2, 3, 3, 3, 3], &[0.5; 162]);
    let short = blob([2, 3, 3, 3, 3], &[0.5; 100]);
    let write = |name: &str, bytes: Vec<u8>| {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    run(
        &write("short.caffemodel", layer("conv1a", 30, &[short])),
        "needs 162 values but holds 100",
    );
    run(
        &write(
            "dup.caffemodel",
            [
                layer("conv1a", 30, std::slice::from_ref(&conv)),
                layer("conv1a", 30, std::slice::from_ref(&conv)),
            ]
            .concat(),
        ),
        "duplicate layer name conv1a",
    );
    let bias = blob([1, 1, 1, 1, 2], &[0.1, 0.2]);
    run(
        &write(
            "missing.caffemodel",
            layer("conv1a", 30, &[conv.clone(), bias]),
        ),
        "conv2.weight is missing",
    );
    run(
        &write("unknown.caffemodel", layer("lstm", 99, &[conv])),
        "layer lstm (type 99) has parameters",
    );
    let caffe = std::fs::read(fixture("caffe-v10.caffemodel")).unwrap();
    run(
        &write("cut.caffemodel", caffe[..caffe.len() / 2].to_vec()),
        "not a Caffe model",
    );
    let pt = std::fs::read(fixture("legacy.pickle")).unwrap();
    run(
        &write("cut.pickle", pt[..pt.len() - 100].to_vec()),
        "cut.pickle",
    );
    let o = vidlrp(&[
        "convert",
        s(&fixture("evil.pt")),
        "--out",
        s(&d.join("e.safetensors")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!d.join("e.safetensors").exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_caffe_mean_file_replaces_the_channel_means() {
    let d = tmp("mean");
    let w = small_model(&d);
    // 16 frames of 128x171 (the caffe preset's resize: no interpolation).
    let frames: Vec<f32> = (0..16 * 128 * 171 * 3)
        .map(|i| ((i * 31) % 256) as f32)
        .collect();
    let video = d.join("frames.npy");
    vidlrp_io::write_npy(
        &video,
        &HostTensor::new(vec![16, 128, 171, 3], frames).unwrap(),
    )
    .unwrap();
    let caffe_mean = [90.25f32, 97.66, 101.41];
    let flat: Vec<f32> = (0..3)
        .flat_map(|c| std::iter::repeat_n(caffe_mean[c], 16 * 128 * 171))
        .collect();
    let varied: Vec<f32> = (0..3 * 16 * 128 * 171)
        .map(|i| 60.0 + (i % 97) as f32)
        .collect();
    let mean_file = |name: &str, data: &[f32]| {
        let p = d.join(name);
        std::fs::write(&p, blob([1, 3, 16, 128, 171], data)).unwrap();
        p
    };
    let (flat, varied) = (
        mean_file("flat.binaryproto", &flat),
        mean_file("varied.binaryproto", &varied),
    );
    let run = |extra: &[&str], out: &str| {
        let mut args = vec![
            "explain",
            "--weights",
            s(&w),
            "--video",
            s(&video),
            "--method",
            "epsilon-gamma-box",
            "--class",
            "2",
            "--out",
        ];
        let out = d.join(out);
        args.push(s(&out));
        args.extend_from_slice(extra);
        let j = json(&ok(vidlrp(&args)));
        (j, vidlrp_io::read_npy(&out).unwrap())
    };
    let (_, plain) = run(&[], "plain.npy");
    let (j, same) = run(&["--mean", s(&flat)], "flat.npy");
    assert_eq!(j["mean"], s(&flat));
    assert_eq!(
        same, plain,
        "a mean equal to the channel means changes nothing"
    );
    let (_, other) = run(&["--mean", s(&varied)], "varied.npy");
    assert_ne!(other, plain);
    // Wrong sizes are errors before any work.
    let small = d.join("small.binaryproto");
    std::fs::write(
        &small,
        blob([1, 3, 16, 112, 112], &vec![1.0; 3 * 16 * 112 * 112]),
    )
    .unwrap();
    let o = vidlrp(&[
        "explain",
        "--weights",
        s(&w),
        "--video",
        s(&video),
        "--mean",
        s(&small),
        "--out",
        s(&d.join("x.npy")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resized size 128x171"));
    let o = vidlrp(&[
        "explain",
        "--weights",
        s(&w),
        "--video",
        s(&video),
        "--mean",
        s(&flat),
        "--length",
        "8",
        "--out",
        s(&d.join("x.npy")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--length 16"));
    std::fs::remove_dir_all(&d).unwrap();
}
