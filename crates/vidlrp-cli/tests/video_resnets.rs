//! torchvision's video ResNets through the CLI: checkpoints as users have them (module-prefixed
//! state dicts in `{'state_dict': ...}`, zip and legacy), explained like the PyTorch goldens,
//! inspected, converted, initialised, and run through the data-set commands.

mod common;

use common::{ok, read_json, s, stdout_json, tmp, vidlrp};
use std::path::{Path, PathBuf};
use std::process::Command;

fn golden(arch: &str) -> PathBuf {
    vidlrp_conformance::golden::fixtures_dir()
        .join("video-resnets")
        .join(arch)
}

fn read(path: &Path) -> vidlrp_core::HostTensor {
    vidlrp_io::read_npy(path).unwrap()
}

/// `max |a - b| / max |b|`.
fn relative(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let peak = b.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
    let diff = a.iter().zip(b).fold(0f64, |m, (&x, &y)| {
        m.max((f64::from(x) - f64::from(y)).abs())
    });
    diff / peak
}

/// DTD and SA of `vidlrp explain` on the golden models' checkpoints against PyTorch's, within
/// the f32 tolerance of crates/vidlrp-video-resnet/tests/goldens.rs (1e-3: mc3's DTD differs
/// by 5.5e-4 through residual shares of opposite sign, r2plus1d's SA by 3e-4 through a ReLU
/// input within rounding of 0; the rest within 1e-6), with the kinetics preset's bounds
/// chosen from the architecture.
#[test]
fn torchvision_checkpoints_explain_like_pytorch() {
    let d = tmp("explain");
    for arch in ["r3d", "mc3", "r2plus1d"] {
        let g = golden(arch);
        let want = vidlrp_io::read_tensors(&g.join("golden.npz")).unwrap();
        for method in ["dtd", "sa"] {
            let out = d.join(format!("{arch}-{method}.npy"));
            let j = stdout_json(&vidlrp(&[
                "explain",
                "--weights",
                s(&g.join("checkpoint.pth")),
                "--input",
                s(&g.join("input.npy")),
                "--method",
                method,
                "--out",
                s(&out),
            ]));
            assert_eq!(j["architecture"], format!("{arch}_12"));
            assert_eq!(j["origin"], "torchvision");
            assert_eq!(j["preset"], "kinetics");
            assert!(j.get("pool5").is_none(), "{j}");
            let got = read(&out);
            let err = relative(got.data(), want[method].data());
            assert!(err <= 1e-3, "{arch} {method}: {err:e}");
        }
    }
}

#[test]
fn inspect_and_convert_a_torchvision_checkpoint() {
    let d = tmp("convert");
    for (arch, format) in [("r3d", "pytorch-zip"), ("mc3", "pytorch-legacy")] {
        let pth = golden(arch).join("checkpoint.pth");
        let j = stdout_json(&vidlrp(&["inspect", s(&pth)]));
        assert_eq!(j["format"], format);
        assert_eq!(j["origin"], "torchvision");
        assert_eq!(j["architecture"]["name"], format!("{arch}_12"));
        assert_eq!(j["architecture"]["family"], "video-resnet");
        assert_eq!(j["architecture"]["classes"], 6);
        assert_eq!(j["architecture"]["blocks"], serde_json::json!([2, 1, 1, 1]));
        assert_eq!(j["defaults"]["preset"], "kinetics");
        let unwrapped = j["unwrapped"].to_string();
        assert!(unwrapped.contains("state_dict") && unwrapped.contains("module."));
        // The int64 num_batches_tracked of every BatchNorm is listed as skipped, never dropped
        // silently.
        let skipped = j["skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 14, "{skipped:?}");
        assert!(skipped[0].to_string().contains("num_batches_tracked"));

        let st = d.join(format!("{arch}.safetensors"));
        let c = stdout_json(&vidlrp(&["convert", s(&pth), "--out", s(&st)]));
        assert_eq!(c["architecture"], format!("{arch}_12"));
        let j = stdout_json(&vidlrp(&["inspect", s(&st)]));
        assert_eq!(j["origin"], "torchvision");
        assert_eq!(j["defaults"]["preset"], "kinetics");
        // The converted file explains to the same bits.
        let input = golden(arch).join("input.npy");
        let mut outs = Vec::new();
        for w in [&pth, &st] {
            let out = d.join(format!("{arch}-{}.npy", outs.len()));
            ok(vidlrp(&[
                "explain",
                "--weights",
                s(w),
                "--input",
                s(&input),
                "--out",
                s(&out),
            ]));
            outs.push(read(&out));
        }
        assert_eq!(outs[0].data(), outs[1].data());
    }
}

#[test]
fn init_writes_an_untrained_video_resnet_and_refuses_c3d_options() {
    let d = tmp("init");
    let w = d.join("mc3-u.safetensors");
    let j = stdout_json(&vidlrp(&[
        "init",
        "--arch",
        "mc3_18",
        "--classes",
        "5",
        "--seed",
        "3",
        "--out",
        s(&w),
    ]));
    assert_eq!(j["architecture"], "mc3_18");
    // torchvision's 11,695,440 with 400 classes, less fc's 395 rows of 512 + 1.
    assert_eq!(j["parameters"], 11_695_440 - 395 * 513);
    let i = stdout_json(&vidlrp(&["inspect", s(&w)]));
    assert_eq!(i["architecture"]["name"], "mc3_18");
    assert_eq!(i["architecture"]["classes"], 5);
    let bad = vidlrp(&[
        "init",
        "--arch",
        "r3d_18",
        "--widths",
        "1,2,3,4,5,6,7,8",
        "--out",
        s(&w),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--widths shapes a C3D"));
    let bad = vidlrp(&["init", "--arch", "resnet50", "--out", s(&w)]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("r2plus1d_18"));
}

/// Three ffmpeg test-pattern videos and their manifest.
fn videos(d: &Path) -> PathBuf {
    let mut manifest = String::from("path,label\n");
    for i in 0..3 {
        let name = format!("v{i}.mp4");
        let made = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc=size=80x60:rate=25:decimals={i}"))
            .args(["-t", "1", "-pix_fmt", "yuv420p"])
            .arg(d.join(&name))
            .status()
            .expect("ffmpeg makes the test videos")
            .success();
        assert!(made);
        manifest += &format!("{name},{i}\n");
    }
    let m = d.join("videos.csv");
    std::fs::write(&m, manifest).unwrap();
    m
}

#[test]
fn data_set_commands_take_a_video_resnet() {
    let d = tmp("dataset");
    let m = videos(&d);
    let w = golden("r3d").join("checkpoint.pth");
    let prof = d.join("profile");
    ok(vidlrp(&[
        "profile",
        "--manifest",
        s(&m),
        "--weights",
        s(&w),
        "--out",
        s(&prof),
    ]));
    let records = read_json(&prof.join("records.json"));
    assert_eq!(records["config"]["origin"], "torchvision");
    assert_eq!(records["config"]["pool5"], "none");
    assert_eq!(records["config"]["preset"], "kinetics");
    let summary = read_json(&prof.join("summary.json"));
    let text = summary.to_string();
    for key in ["\"dtd\"", "\"sa\"", "\"dtd-u\""] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
    let sweep = d.join("sweep");
    ok(vidlrp(&[
        "sweep-steps",
        "--manifest",
        s(&m),
        "--weights",
        s(&w),
        "--steps",
        "1,2",
        "--out",
        s(&sweep),
    ]));
    assert!(sweep.join("records.json").exists());
    let eval = d.join("eval");
    ok(vidlrp(&[
        "evaluate",
        "--manifest",
        s(&m),
        "--weights",
        s(&w),
        "--methods",
        "dtd,random",
        "--steps",
        "4",
        "--out",
        s(&eval),
    ]));
    let e = read_json(&eval.join("summary.json"));
    assert_eq!(e["clips"], 3);
    assert_eq!(e["run"]["preset"], "kinetics");
    assert_eq!(e["results"][0]["method"], "dtd");
    // C3D's pool5 choice does not apply.
    let bad = vidlrp(&[
        "profile",
        "--manifest",
        s(&m),
        "--weights",
        s(&w),
        "--pool5",
        "caffe",
        "--out",
        s(&d.join("bad")),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("pool5 variant is a C3D choice"));
}

#[test]
fn rules_are_given_by_layer_name() {
    let d = tmp("rules");
    let g = golden("r3d");
    let run = |extra: &[&str]| {
        let (w, x, out) = (
            g.join("checkpoint.pth"),
            g.join("input.npy"),
            d.join("r.npy"),
        );
        let mut args = vec![
            "explain",
            "--weights",
            s(&w),
            "--input",
            s(&x),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        vidlrp(&args)
    };
    let j = stdout_json(&run(&[
        "--rule",
        "fc=epsilon:0.25",
        "--rule",
        "layer1.0=gradient",
    ]));
    let rule_of = |name: &str| {
        j["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["layer"] == name)
            .map(|l| l["rule"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(rule_of("fc"), "epsilon(0.25)");
    assert_eq!(rule_of("layer1.0"), "gradient");
    assert_eq!(rule_of("layer1.1"), "proportional (sum)");
    assert_eq!(rule_of("layer1.0.conv1.0"), "z+");
    let bad = run(&["--rule", "fc8=epsilon"]);
    assert_eq!(bad.status.code(), Some(1));
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(
        msg.contains("\"fc8\"") && msg.contains("layer4.0.downsample.0"),
        "{msg}"
    );
    let bad = run(&["--rule", "fc=magic"]);
    assert_eq!(bad.status.code(), Some(2), "a usage error");
}
