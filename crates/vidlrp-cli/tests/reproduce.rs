//! `vidlrp reproduce --quick` as CI runs it: every stage's output, the report with the five
//! claims, a rerun that keeps finished stages, the trained model's recorded preset, and a
//! stage that fails with a clear error.

mod common;

use common::{ok, s, tmp, vidlrp};

#[test]
fn reproduce_quick_writes_every_stage_and_the_report() {
    let d = tmp("reproduce");
    let out = d.join("run");
    let start = std::time::Instant::now();
    let o = ok(vidlrp(&[
        "reproduce",
        "--out",
        s(&out),
        "--quick",
        "--threads",
        "2",
    ]));
    let seconds = start.elapsed().as_secs_f64();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON line");
    for f in [
        "data/synth.json",
        "data/test.csv",
        "model/model.safetensors",
        "model/model.log.json",
        "model/model-curves.png",
        "model/untrained.safetensors",
        "profile/summary.json",
        "profile/fig2_shares.png",
        "steps/summary.json",
        "steps/fig3_border_vs_step.png",
        "steps/fig5_top5_vs_border.png",
        "offsets/summary.json",
        "offsets/fig4_lookahead_vs_offset.svg",
        "sheets/trained.png",
        "sheets/untrained.png",
        "eval-regions/summary.json",
        "eval-frames/perturbation_morf.png",
        "REPORT.md",
        "report.html",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Five claims, each with a verdict and the measured values.
    let claims = j["claims"].as_array().expect("claims");
    assert_eq!(claims.len(), 5);
    for c in claims {
        let v = c["verdict"].as_str().unwrap();
        assert!(
            ["holds", "does not hold", "inconclusive"].contains(&v),
            "{c}"
        );
        assert!(c["measured"].as_str().unwrap().contains('.'), "{c}");
    }
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    for part in [
        "Table 1",
        "held-out test videos",
        "How the data set and the training were chosen",
        "Faithfulness: DTD against SA by perturbation",
        "fig4_lookahead_vs_offset.png",
        "vidlrp sweep-steps",
    ] {
        assert!(report.contains(part), "REPORT.md lacks {part:?}");
    }
    // Every value the report names was found (a field read from the wrong place shows `null`).
    assert!(
        !report.contains("null"),
        "REPORT.md prints a missing value as null"
    );
    // The test accuracy in the report is the one the training log measured.
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model/model.log.json")).unwrap())
            .unwrap();
    let top1 = log["test"]["top1"].as_f64().expect("test top-1 in the log");
    assert!(report.contains(&format!("{:.1} %", 100.0 * top1)));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,"), "figures inline");
    assert!(seconds < 120.0, "--quick took {seconds:.0} s");

    // The model records its preset (caffe@48): explain picks it without --preset.
    let video = out.join("data/videos/00020.mp4");
    let e = ok(vidlrp(&[
        "explain",
        "--weights",
        s(&out.join("model/model.safetensors")),
        "--video",
        s(&video),
        "--out",
        s(&d.join("r.npy")),
    ]));
    let e: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert_eq!(e["preset"], "caffe@48");
    assert_eq!(e["input_shape"], serde_json::json!([3, 16, 48, 48]));

    // A rerun keeps every finished stage and writes the same claims.
    let o2 = ok(vidlrp(&["reproduce", "--out", s(&out), "--quick"]));
    let err = String::from_utf8_lossy(&o2.stderr);
    assert_eq!(err.matches("done earlier, kept").count(), 10, "{err}");
    let j2: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(j2["claims"], j["claims"]);

    // The same directory with other settings is refused, not mixed.
    let o = vidlrp(&["reproduce", "--out", s(&out), "--quick", "--seed", "9"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("other settings"));

    // A stage that fails says which, and exits 1 (here the model is damaged, so every
    // analysis stage after it cannot load it).
    for stage in ["profile", "steps", "offsets", "sheets"] {
        let p = out.join(stage);
        if p.exists() {
            std::fs::remove_dir_all(&p).unwrap();
        }
    }
    std::fs::write(out.join("model/model.safetensors"), b"not a model").unwrap();
    let o3 = vidlrp(&["reproduce", "--out", s(&out), "--quick"]);
    assert_eq!(o3.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o3.stderr);
    assert!(err.contains("model.safetensors"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}
