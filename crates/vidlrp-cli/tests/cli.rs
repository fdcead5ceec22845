//! The `vidlrp` binary as a user runs it: outputs against the goldens, and bad input.

mod common;

use common::{s, small_model, stdout_json, tmp, vidlrp};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vidlrp_core::HostTensor;

fn golden(name: &str) -> PathBuf {
    vidlrp_conformance::golden::fixtures_dir().join(name)
}

/// Fails with a message containing `needle`, exit code 1, no panic, no output file.
#[track_caller]
fn check_error(args: &[&str], out: &Path, needle: &str) {
    check_exit(args, out, needle, 1);
}

/// Fails as a usage error (clap's exit code 2) with a message containing `needle`.
#[track_caller]
fn check_usage_error(args: &[&str], out: &Path, needle: &str) {
    check_exit(args, out, needle, 2);
}

#[track_caller]
fn check_exit(args: &[&str], out: &Path, needle: &str, code: i32) {
    let o = vidlrp(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "exit code for {args:?}: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(
        !out.exists(),
        "partial output {} left behind",
        out.display()
    );
    let Ok(dir) = std::fs::read_dir(out.parent().unwrap()) else {
        return;
    };
    let leftovers: Vec<_> = dir
        .filter_map(std::result::Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.contains(".tmp-") || name.contains(".vidlrp-")
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn rel_err(a: &HostTensor, b: &HostTensor) -> f64 {
    let (e, s) = vidlrp_conformance::max_errors(a.data(), b.data());
    e / s
}

#[test]
fn explain_reproduces_zennit_through_the_cli() {
    let d = tmp("golden");
    let out = d.join("r.npy");
    let g = golden("port-a");
    let o = vidlrp(&[
        "explain",
        "--weights",
        s(&g.join("model.safetensors")),
        "--input",
        s(&g.join("input.npy")),
        "--method",
        "dtd",
        "--pool",
        "wta",
        "--low",
        "0",
        "--high",
        "255",
        "--out",
        s(&out),
        "--threads",
        "1",
    ]);
    let j = stdout_json(&o);
    let want = vidlrp_io::read_tensors(&g.join("golden.npz"))
        .unwrap()
        .remove("dtd-wta")
        .unwrap();
    let got = vidlrp_io::read_npy(&out).unwrap();
    assert_eq!(got.shape(), want.shape());
    assert!(rel_err(&got, &want) <= 1e-4);
    let samples = j["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2);
    for smp in samples {
        assert!((smp["conservation"].as_f64().unwrap() - 1.0).abs() < 1e-4);
        assert_eq!(smp["top5"].as_array().unwrap().len(), 5);
        assert_eq!(smp["top5"][0]["class"], smp["class"]);
    }
    assert_eq!(j["layers"][0]["layer"], "fc8");
    assert!(j["wall_time_s"].as_f64().unwrap() > 0.0);
    // The reference backend (f64 loops) through the CLI: the same golden.
    let r = d.join("r-reference.npy");
    let o = vidlrp(&[
        "explain",
        "--weights",
        s(&g.join("model.safetensors")),
        "--input",
        s(&g.join("input.npy")),
        "--method",
        "dtd",
        "--pool",
        "wta",
        "--low",
        "0",
        "--high",
        "255",
        "--device",
        "reference",
        "--out",
        s(&r),
    ]);
    let j = stdout_json(&o);
    assert_eq!(j["backend"], "reference (f64)");
    assert!(rel_err(&vidlrp_io::read_npy(&r).unwrap(), &want) <= 1e-4);
}

#[test]
fn explain_takes_negative_bounds_npz_weights_caffe_pool5_and_sa() {
    let d = tmp("caffe");
    let g = golden("caffe-b");
    // (1,3,T,H,W) in the fixture; the CLI keeps the input's shape.
    let out = d.join("dtd.npy");
    let o = vidlrp(&[
        "explain",
        "--weights",
        s(&g.join("model.npz")),
        "--input",
        s(&g.join("input.npy")),
        "--pool5",
        "caffe",
        "--low",
        "-90.25,-97.66,-101.41",
        "--high",
        "164.75,157.34,153.59",
        "--out",
        s(&out),
    ]);
    stdout_json(&o);
    let golden = vidlrp_io::read_tensors(&g.join("golden.npz")).unwrap();
    assert!(rel_err(&vidlrp_io::read_npy(&out).unwrap(), &golden["dtd"]) <= 1e-4);
    // Bounds from the preset name give the same result.
    let out2 = d.join("dtd2.npy");
    stdout_json(&vidlrp(&[
        "explain",
        "--weights",
        s(&g.join("model.npz")),
        "--input",
        s(&g.join("input.npy")),
        "--pool5",
        "caffe",
        "--bounds",
        "caffe",
        "--out",
        s(&out2),
    ]));
    assert!(rel_err(&vidlrp_io::read_npy(&out2).unwrap(), &golden["dtd"]) <= 1e-4);
    let sa = d.join("sa.npy");
    stdout_json(&vidlrp(&[
        "explain",
        "--weights",
        s(&g.join("model.npz")),
        "--input",
        s(&g.join("input.npy")),
        "--pool5",
        "caffe",
        "--method",
        "sa",
        "--out",
        s(&sa),
    ]));
    assert!(rel_err(&vidlrp_io::read_npy(&sa).unwrap(), &golden["sa"]) <= 1e-4);
}

#[test]
fn init_writes_loadable_seeded_models() {
    let d = tmp("init");
    let a = d.join("a.safetensors");
    let b = d.join("b.npz");
    let args = |p: &Path| {
        vec![
            "init",
            "--widths",
            "2,3,4,4,5,5,6,6",
            "--fc",
            "8,8",
            "--classes",
            "4",
            "--seed",
            "5",
            "--input-size",
            "16x32x32",
            "--out",
        ]
        .into_iter()
        .map(String::from)
        .chain([p.to_str().unwrap().to_string()])
        .collect::<Vec<_>>()
    };
    for p in [&a, &b] {
        let o = Command::new(env!("CARGO_BIN_EXE_vidlrp"))
            .args(args(p))
            .arg("--json")
            .output()
            .unwrap();
        let j = stdout_json(&o);
        assert_eq!(j["classes"], 4);
    }
    let wa = vidlrp_io::read_tensors(&a).unwrap();
    assert_eq!(
        wa,
        vidlrp_io::read_tensors(&b).unwrap(),
        "same seed, same weights in both formats"
    );
    assert_eq!(wa["conv1.weight"].shape(), [2, 3, 3, 3, 3]);
    assert_eq!(wa["fc6.weight"].shape(), [8, 6 * 2 * 2]);
}

#[test]
fn bad_input_gives_clear_errors_and_no_output() {
    let d = tmp("bad");
    let out = d.join("r.npy");
    let g = golden("port-a");
    let (w, x) = (g.join("model.safetensors"), g.join("input.npy"));
    let run = |w: &Path, x: &Path, extra: &[&str], needle: &str| {
        let mut args = vec![
            "explain",
            "--weights",
            s(w),
            "--input",
            s(x),
            "--bounds",
            "port",
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        check_error(&args, &out, needle);
    };
    run(&d.join("missing.safetensors"), &x, &[], "No such file");
    run(&w, &d.join("missing.npy"), &[], "No such file");

    let weights = vidlrp_io::read_tensors(&w).unwrap();
    let mut extra = weights.clone();
    extra.insert("fc9.weight".into(), HostTensor::zeros(vec![2, 2]));
    let p = d.join("extra.safetensors");
    vidlrp_io::write_safetensors(&p, &extra).unwrap();
    run(&p, &x, &[], "unexpected tensor(s) fc9.weight");

    let mut missing = weights.clone();
    missing.remove("conv3b.bias");
    let p = d.join("missing-tensor.npz");
    vidlrp_io::write_npz(&p, &missing).unwrap();
    run(&p, &x, &[], "tensor conv3b.bias is missing");

    let mut chain = weights.clone();
    chain.insert("fc7.weight".into(), HostTensor::zeros(vec![24, 23]));
    let p = d.join("chain.safetensors");
    vidlrp_io::write_safetensors(&p, &chain).unwrap();
    run(&p, &x, &[], "fc7.weight has shape [24, 23]");

    let mut nan = weights.clone();
    nan.get_mut("conv2.weight").unwrap().data_mut()[3] = f32::NAN;
    let p = d.join("nan.safetensors");
    vidlrp_io::write_safetensors(&p, &nan).unwrap();
    run(&p, &x, &[], "conv2.weight contains 1 non-finite");

    let bytes = std::fs::read(&w).unwrap();
    let p = d.join("trunc.safetensors");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    run(&p, &x, &[], "truncated");

    let input = vidlrp_io::read_npy(&x).unwrap();
    let mut bad = input.clone();
    bad.data_mut()[10] = f32::INFINITY;
    let p = d.join("inf.npy");
    vidlrp_io::write_npy(&p, &bad).unwrap();
    run(&w, &p, &[], "non-finite");

    let p = d.join("rank3.npy");
    vidlrp_io::write_npy(&p, &HostTensor::zeros(vec![16, 32, 32])).unwrap();
    run(&w, &p, &[], "(3,T,H,W) or (N,3,T,H,W)");

    let p = d.join("size.npy");
    vidlrp_io::write_npy(&p, &HostTensor::zeros(vec![3, 16, 64, 64])).unwrap();
    run(&w, &p, &[], "fc6 expects");

    let p = d.join("frames.npy");
    vidlrp_io::write_npy(&p, &HostTensor::zeros(vec![3, 8, 32, 32])).unwrap();
    run(&w, &p, &[], "too small for C3D");

    // A class whose logit is not positive cannot be explained by DTD.
    let logits = vidlrp_io::read_tensors(&g.join("golden.npz"))
        .unwrap()
        .remove("logits")
        .unwrap();
    let k = logits.shape()[1];
    let neg = (0..k)
        .find(|&c| logits.data()[c] <= 0.0 && logits.data()[k + c] <= 0.0)
        .expect("a negative class");
    run(&w, &x, &["--class", &neg.to_string()], "is not positive");
    run(&w, &x, &["--class", "99"], "out of range");
    check_usage_error(
        &[
            "explain",
            "--weights",
            s(&w),
            "--input",
            s(&x),
            "--method",
            "lrp-magic",
            "--out",
            s(&out),
        ],
        &out,
        "unknown method",
    );
    check_usage_error(
        &[
            "explain",
            "--weights",
            s(&w),
            "--input",
            s(&x),
            "--pool",
            "zplus",
            "--out",
            s(&out),
        ],
        &out,
        "unknown pooling rule",
    );
    run(
        &w,
        &x,
        &["--method", "alpha-beta", "--alpha", "3"],
        "alpha - beta = 1",
    );
    check_error(
        &[
            "explain",
            "--weights",
            s(&w),
            "--input",
            s(&x),
            "--out",
            s(&d.join("no/such/dir/r.npy")),
        ],
        &d.join("no/such/dir/r.npy"),
        "does not exist",
    );
}

#[test]
fn every_command_has_help_with_examples() {
    for cmd in [
        vec!["--help"],
        vec!["explain", "--help"],
        vec!["init", "--help"],
        vec!["demo", "--help"],
        vec!["convert", "--help"],
        vec!["inspect", "--help"],
    ] {
        let o = vidlrp(&cmd);
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Examples:"), "{cmd:?} help lacks examples");
    }
}

#[test]
fn a_terminal_sees_a_short_summary_and_where_the_files_are() {
    let d = tmp("demo-human");
    let o = common::vidlrp_human(&["demo", "--out", s(&d)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        !text.trim_start().starts_with('{'),
        "JSON without --json:\n{text}"
    );
    assert!(
        text.len() < 2000,
        "{} bytes on the terminal:\n{text}",
        text.len()
    );
    let summary = d.join("summary.json");
    assert!(
        text.contains(&format!("summary: {}", summary.display())),
        "{text}"
    );
    let full: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert!(full["methods"]["dtd"]["frame_shares"].is_array());
    // --json anywhere after the command: the whole summary on stdout.
    let o = common::vidlrp_human(&["demo", "--out", s(&d), "--json"]);
    let j = stdout_json(&o);
    let full: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    for m in ["dtd", "sa"] {
        assert_eq!(
            j["methods"][m]["frame_shares"], full["methods"][m]["frame_shares"],
            "{m}: stdout and summary.json differ"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn demo_runs_the_main_job_on_built_in_data() {
    let d = tmp("demo");
    let o = vidlrp(&["demo", "--size", "small", "--out", s(&d)]);
    let j = stdout_json(&o);
    for m in ["dtd", "sa"] {
        let r = vidlrp_io::read_npy(&d.join(format!("{m}.npy"))).unwrap();
        assert_eq!(r.shape(), [3, 16, 112, 112]);
        let shares: Vec<f64> = j["methods"][m]["frame_shares"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(shares.len(), 16);
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    let c = j["methods"]["dtd"]["samples"][0]["conservation"]
        .as_f64()
        .unwrap();
    assert!((c - 1.0).abs() < 1e-3, "DTD conservation {c}");
    assert!(d.join("summary.json").is_file());
}

#[test]
fn demo_explains_the_built_in_trained_model_next_to_its_untrained_twin() {
    let d = tmp("demo-trained");
    let o = vidlrp(&["demo", "--out", s(&d)]);
    let j = stdout_json(&o);
    // A held-out clip of the data set the model was trained on, at the model's input size.
    assert_eq!(j["model"]["about"]["preset"], "caffe@48");
    assert!(j["model"]["about"]["true_label"].is_string());
    for f in ["dtd.npy", "sa.npy", "dtd-u.npy", "sa-u.npy"] {
        let r = vidlrp_io::read_npy(&d.join(f)).unwrap();
        assert_eq!(r.shape(), [3, 16, 48, 48], "{f}");
    }
    for part in ["methods", "untrained"] {
        let c = j[part]["dtd"]["samples"][0]["conservation"]
            .as_f64()
            .unwrap();
        // z+ never creates relevance; the trained model's neurons that fire through their
        // bias alone absorb a little (the untrained twin has zero biases: exact).
        let lost = if part == "methods" { 0.02 } else { 1e-3 };
        assert!(
            c <= 1.0 + 1e-4 && c > 1.0 - lost,
            "{part}: DTD conservation {c}"
        );
        assert!(j[part]["dtd"]["samples"][0]["label"].is_string());
    }
    // Trained and untrained explain differently.
    let t = vidlrp_io::read_npy(&d.join("dtd.npy")).unwrap();
    let u = vidlrp_io::read_npy(&d.join("dtd-u.npy")).unwrap();
    assert_ne!(t.data(), u.data());
    assert!(d.join("sheet.png").is_file());
}

/// A 40-frame 128x96 H.264 video made by the ffmpeg tool: frame `i` is a bright square at a
/// position that moves with `i` on a dark background.
fn ffmpeg_video(dir: &Path, frames: usize) -> PathBuf {
    let (w, h) = (128usize, 96usize);
    let mut raw = Vec::with_capacity(frames * w * h * 3);
    for i in 0..frames {
        for y in 0..h {
            for x in 0..w {
                let inside = x >= 2 * i && x < 2 * i + 24 && (30..60).contains(&y);
                let px: [u8; 3] = if inside {
                    [250, 240, 90]
                } else {
                    [20, 60 + (y as u8) / 2, 30]
                };
                raw.extend_from_slice(&px);
            }
        }
    }
    let rawp = dir.join("v.rgb");
    std::fs::write(&rawp, raw).unwrap();
    let p = dir.join(format!("v{frames}.mp4"));
    let ok = Command::new("ffmpeg")
        .args([
            "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "128x96", "-r", "25",
            "-i",
        ])
        .arg(&rawp)
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "8"])
        .arg(&p)
        .status()
        .expect("the ffmpeg tool makes the test videos (apt-get install ffmpeg)")
        .success();
    assert!(ok);
    p
}

#[test]
fn explain_reads_videos_and_draws_pictures() {
    let d = tmp("video");
    let v = ffmpeg_video(&d, 40);
    let w = small_model(&d);
    let out = d.join("r.npy");
    let pics = d.join("pics");
    let j = stdout_json(&vidlrp(&[
        "explain",
        "--weights",
        s(&w),
        "--video",
        s(&v),
        "--offset",
        "4",
        "--step",
        "2",
        "--method",
        "sa",
        "--out",
        s(&out),
        "--heatmaps",
        s(&pics),
        "--cmap",
        "coldnhot",
    ]));
    let idx: Vec<u64> = j["frame_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(idx, (0..16).map(|i| 4 + 2 * i).collect::<Vec<u64>>());
    assert_eq!(j["source"]["frames"], 40);
    assert_eq!(j["source"]["width"], 128);
    assert!((j["source"]["fps"].as_f64().unwrap() - 25.0).abs() < 1e-3);
    assert_eq!(
        vidlrp_io::read_npy(&out).unwrap().shape(),
        [3, 16, 112, 112]
    );
    for f in [
        "heatmap_00.png",
        "heatmap_15.png",
        "overlay_07.png",
        "heatmap.gif",
        "heatmap.mp4",
        "sheet.png",
    ] {
        assert!(pics.join(f).is_file(), "{f} missing");
    }
    let sheet = image::open(pics.join("sheet.png")).unwrap();
    assert!(sheet.width() > 16 * 224 && sheet.height() > 2 * 224);
    // Step 0 repeats one frame; clamp fills a too-short video with its last frame.
    let j = stdout_json(&vidlrp(&[
        "explain",
        "--weights",
        s(&w),
        "--video",
        s(&v),
        "--offset",
        "9",
        "--step",
        "0",
        "--method",
        "sa",
        "--out",
        s(&out),
    ]));
    assert!(j["frame_indices"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i == 9));
    let j = stdout_json(&vidlrp(&[
        "explain",
        "--weights",
        s(&w),
        "--video",
        s(&v),
        "--offset",
        "30",
        "--short",
        "clamp",
        "--method",
        "sa",
        "--out",
        s(&out),
    ]));
    assert_eq!(j["frame_indices"][15], 39);
}

#[test]
fn real_tennis_frames_go_through_the_whole_path() {
    let Some(frames) = vidlrp_conformance::environment::shared(
        "real_tennis_frames_go_through_the_whole_path",
        "data/sports1m-sample/roger",
    ) else {
        return;
    };
    let d = tmp("roger");
    let w = small_model(&d);
    let sheet = d.join("sheet.png");
    let j = stdout_json(&vidlrp(&[
        "sheet",
        "--weights",
        s(&w),
        "--video",
        s(&frames),
        "--preset",
        "caffe",
        "--methods",
        "dtd,sa",
        "--out",
        s(&sheet),
    ]));
    assert_eq!(j["source"]["kind"], "images");
    assert_eq!(j["source"]["frames"], 16);
    let c = j["methods"]["dtd"]["samples"][0]["conservation"]
        .as_f64()
        .unwrap();
    assert!((c - 1.0).abs() < 1e-3, "conservation {c}");
    let img = image::open(&sheet).unwrap();
    assert_eq!(img.height(), 7 + 8 + 3 * (224 + 2));
}

#[test]
fn bad_videos_give_clear_errors_and_no_output() {
    let d = tmp("badvideo");
    let w = small_model(&d);
    let out = d.join("r.npy");
    let pics = d.join("pics");
    let run = |video: &Path, extra: &[&str], needle: &str| {
        let mut args = vec![
            "explain",
            "--weights",
            s(&w),
            "--video",
            s(video),
            "--out",
            s(&out),
            "--heatmaps",
            s(&pics),
        ];
        args.extend_from_slice(extra);
        check_error(&args, &out, needle);
        assert!(!pics.exists(), "pictures written although the run failed");
    };
    run(&d.join("missing.mp4"), &[], "no such file");
    let garbage = d.join("garbage.mp4");
    std::fs::write(&garbage, vec![7u8; 5000]).unwrap();
    run(&garbage, &[], "cannot open as a video");
    let v = ffmpeg_video(&d, 20);
    run(
        &v,
        &["--offset", "5"],
        "too short for this snippet: needs frame 20 but has 20",
    );
    run(
        &v,
        &["--offset", "10", "--step", "2"],
        "needs frame 40 but has 20",
    );
    // Truncated videos: the index (at the end of an mp4) is gone, or, with the index first
    // (faststart), the frames stop early; either way a clear error, also under `clamp`.
    let bytes = std::fs::read(&v).unwrap();
    let trunc = d.join("trunc.mp4");
    std::fs::write(&trunc, &bytes[..bytes.len() / 4]).unwrap();
    run(&trunc, &["--short", "clamp"], "cannot open as a video");
    let fast = d.join("fast.mp4");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&v)
        .args(["-c", "copy", "-movflags", "+faststart"])
        .arg(&fast)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let bytes = std::fs::read(&fast).unwrap();
    std::fs::write(&trunc, &bytes[..bytes.len() * 4 / 5]).unwrap();
    run(
        &trunc,
        &["--short", "clamp"],
        "decoding stopped before frame",
    );
    let mixed = d.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    image::RgbImage::new(32, 24)
        .save(mixed.join("0001.png"))
        .unwrap();
    image::RgbImage::new(32, 20)
        .save(mixed.join("0002.png"))
        .unwrap();
    run(&mixed, &[], "frames differ in size");
    let junk = d.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("0001.png"), b"not a png").unwrap();
    run(&junk, &[], "not a readable image");
    // Bad option values are usage errors, reported before any work.
    let usage = |option: &str, value: &str, needle: &str| {
        let args = [
            "explain",
            "--weights",
            s(&w),
            "--video",
            s(&v),
            option,
            value,
        ];
        check_usage_error(&[&args[..], &["--out", s(&out)]].concat(), &out, needle);
    };
    usage("--preset", "vhs", "unknown preprocessing preset");
    usage("--cmap", "rainbow-unicorn", "unknown colour map");
}

#[test]
fn a_missing_cuda_device_is_a_clear_error() {
    let d = tmp("no-cuda");
    let out = d.join("r.npy");
    let clip = d.join("clip.npy");
    vidlrp_io::write_npy(&clip, &HostTensor::zeros(vec![3, 16, 32, 32])).unwrap();
    let w = d.join("w.safetensors");
    let o = vidlrp(&[
        "init",
        "--widths",
        "2,2,2,2,2,2,2,2",
        "--fc",
        "4,4",
        "--classes",
        "3",
        "--input-size",
        "16x32x32",
        "--out",
        s(&w),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let args = [
        "explain",
        "--weights",
        s(&w),
        "--input",
        s(&clip),
        "--device",
        "cuda:7",
        "--out",
        s(&out),
    ];
    if cfg!(feature = "cuda") {
        // Either no driver or no eighth device: an error naming CUDA, never a panic.
        check_error(&args, &out, "cuda");
    } else {
        check_error(&args, &out, "built without CUDA support");
    }
    // A usage error: clap's exit code 2.
    let o = vidlrp(&[
        "explain",
        "--weights",
        s(&w),
        "--input",
        s(&clip),
        "--device",
        "tpu",
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected cpu, reference, cuda or cuda:N"));
}

/// Every file under `d` (relative paths), sorted.
fn files_under(d: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            if e.path().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path().strip_prefix(d).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn a_late_failure_leaves_nothing_new_behind() {
    let d = tmp("late");
    let w = small_model(&d);
    let clip = d.join("clip.npy");
    vidlrp_io::write_npy(&clip, &HostTensor::zeros(vec![3, 16, 112, 112])).unwrap();
    // explain --heatmaps: the relevance goes where a directory stands, which only the last
    // step (publishing) finds out; the pictures, drawn by then, must not appear either.
    std::fs::create_dir(d.join("r.npy")).unwrap();
    let before = files_under(&d);
    let o = vidlrp(&[
        "explain",
        "--weights",
        s(&w),
        "--input",
        s(&clip),
        "--method",
        "sa",
        "--out",
        s(&d.join("r.npy")),
        "--heatmaps",
        s(&d.join("pics")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is a directory where the output file goes"),
        "{err}"
    );
    assert_eq!(files_under(&d), before, "explain left files behind");
    // demo: its pictures directory dtd/ would replace a file of that name: nothing is written,
    // and what was in the directory stays as it was.
    let demo = d.join("demo");
    std::fs::create_dir(&demo).unwrap();
    std::fs::write(demo.join("dtd"), "mine").unwrap();
    std::fs::write(demo.join("summary.json"), "my old summary").unwrap();
    let before = files_under(&d);
    let o = vidlrp(&["demo", "--size", "small", "--out", s(&demo)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is a file where the output directory goes"),
        "{err}"
    );
    assert_eq!(files_under(&d), before, "demo left files behind");
    assert_eq!(
        std::fs::read_to_string(demo.join("summary.json")).unwrap(),
        "my old summary"
    );
}

#[test]
fn an_interrupted_command_leaves_nothing_behind() {
    for signal in ["INT", "TERM"] {
        let d = tmp(&format!("interrupt-{signal}"));
        let out = d.join("demo");
        let child = Command::new(env!("CARGO_BIN_EXE_vidlrp"))
            .args(["demo", "--size", "full", "--out", s(&out)])
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the command has staged its output directory, then interrupt it.
        let start = std::time::Instant::now();
        while files_under(&d).is_empty() {
            assert!(start.elapsed().as_secs() < 60, "nothing was staged");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let killed = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(130), "SIG{signal}: {err}");
        assert!(err.contains("interrupted"), "{err}");
        assert_eq!(
            files_under(&d),
            Vec::<String>::new(),
            "SIG{signal} left files"
        );
    }
}
