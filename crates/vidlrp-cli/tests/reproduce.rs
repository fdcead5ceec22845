//! `vidlrp reproduce --quick` as CI runs it: every stage's output for both models, the report
//! with the claims judged by the one rule per model and pooled, a rerun that keeps finished stages, the trained model's recorded preset, and a
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
    let mut files = vec![
        "data/synth.json".to_string(),
        "data/test.csv".into(),
        "seed-1/sheets/trained.png".into(),
        "seed-1/sheets/untrained.png".into(),
        "seed-1/eval-regions/summary.json".into(),
        "seed-1/eval-frames/perturbation_morf.png".into(),
        "REPORT.md".into(),
        "report.html".into(),
    ];
    // Two models (--quick), each with its training, twin and three analyses.
    for k in 1..=2 {
        for f in [
            "model/model.safetensors",
            "model/model.log.json",
            "model/model-curves.png",
            "model/untrained.safetensors",
            "profile/summary.json",
            "profile/records.json",
            "profile/fig2_shares.png",
            "steps/summary.json",
            "steps/fig3_border_vs_step.png",
            "steps/fig5_top5_vs_border.png",
            "offsets/summary.json",
            "offsets/fig4_lookahead_vs_offset.svg",
        ] {
            files.push(format!("seed-{k}/{f}"));
        }
    }
    assert!(!out.join("seed-3").exists());
    for f in &files {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The eight claim rows, each judged pooled and per model by the one rule.
    assert_eq!(j["seeds"], 2);
    let claims = j["claims"].as_array().expect("claims");
    let ids: Vec<&str> = claims.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "C1 (DTD)",
            "C1 (SA)",
            "C2",
            "C3",
            "C4",
            "C5",
            "C6 (top-1)",
            "C6 (top-5)"
        ]
    );
    let words = ["holds", "does not hold", "inconclusive"];
    for c in claims {
        let pooled = &c["pooled"];
        let (lo, hi, v) = (
            pooled["lo"].as_f64().unwrap(),
            pooled["hi"].as_f64().unwrap(),
            pooled["value"].as_f64().unwrap(),
        );
        assert!(lo <= hi && v.is_finite(), "{c}");
        // The verdict is the rule applied to the interval.
        let positive = c["side"] == "> 0";
        let (l, h) = if positive { (lo, hi) } else { (-hi, -lo) };
        let rule = if l > 0.0 {
            "holds"
        } else if h < 0.0 {
            "does not hold"
        } else {
            "inconclusive"
        };
        assert_eq!(pooled["verdict"], rule, "{c}");
        let per_seed = c["per_seed"].as_array().unwrap();
        assert_eq!(per_seed.len(), 2, "{c}");
        let holds = (per_seed.iter())
            .filter(|p| p["verdict"] == "holds")
            .count();
        assert_eq!(c["holds_in"], holds, "{c}");
        assert!(per_seed
            .iter()
            .all(|p| words.contains(&p["verdict"].as_str().unwrap())));
    }
    // With 4 classes chance top-5 is 100 %: top-5 is shown, not judged.
    assert_eq!(claims[7]["verdict"], "not judged");
    assert!(claims[7]["not_judged"].as_str().unwrap().contains("100 %"));
    assert!(words.contains(&claims[6]["verdict"].as_str().unwrap()));
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(
        !report.contains("One model only"),
        "two models need no warning"
    );
    for part in [
        "Table 1",
        "The rule, the same for every claim",
        "Per model",
        "holds in",
        "test top-1 (centre snippets)",
        "How the data set and the training were chosen",
        "Faithfulness: DTD against SA by perturbation",
        "seed-1/offsets/fig4_lookahead_vs_offset.png",
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
    for k in 1..=2 {
        let log = out.join(format!("seed-{k}/model/model.log.json"));
        let log: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(log).unwrap()).unwrap();
        let top1 = log["test"]["top1"].as_f64().expect("test top-1 in the log");
        assert!(report.contains(&format!("{:.1} %", 100.0 * top1)));
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("data:image/png;base64,"), "figures inline");
    assert!(seconds < 120.0, "--quick took {seconds:.0} s");

    // The model records its preset (caffe@48): explain picks it without --preset.
    let video = out.join("data/videos/00020.mp4");
    let e = ok(vidlrp(&[
        "explain",
        "--weights",
        s(&out.join("seed-1/model/model.safetensors")),
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
    assert_eq!(err.matches("done earlier, kept").count(), 15, "{err}");
    let j2: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(j2["claims"], j["claims"]);

    // The same directory with other settings is refused, not mixed.
    let o = vidlrp(&["reproduce", "--out", s(&out), "--quick", "--seed", "9"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("other settings"));

    // A stage that fails says which, and exits 1 (here the model is damaged, so every
    // analysis stage after it cannot load it).
    for stage in ["profile", "steps", "offsets", "sheets"] {
        let p = out.join("seed-1").join(stage);
        if p.exists() {
            std::fs::remove_dir_all(&p).unwrap();
        }
    }
    std::fs::write(out.join("seed-1/model/model.safetensors"), b"not a model").unwrap();
    let o3 = vidlrp(&["reproduce", "--out", s(&out), "--quick"]);
    assert_eq!(o3.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o3.stderr);
    assert!(err.contains("model.safetensors"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `--weights` mode on two *untrained* models standing in for trained ones, on a synthetic test
/// set: the accuracy is at chance at every step, so the best-step claim must not hold, and two
/// untrained networks do not differ in their border effect, so C2 must not hold either.
#[test]
fn reproduce_on_given_untrained_weights_judges_no_effect() {
    let d = tmp("reproduce-given");
    let data = d.join("data");
    ok(vidlrp(&[
        "synth",
        "--out",
        s(&data),
        "--classes",
        "4",
        "--videos",
        "40",
        "--frames",
        "48",
        "--test-frames",
        "96",
        "--size",
        "74x56",
        "--distractors",
        "1",
        "--split",
        "50,10,40",
    ]));
    let mut models = Vec::new();
    for seed in ["11", "12"] {
        let m = d.join(format!("untrained-{seed}.safetensors"));
        ok(vidlrp(&[
            "init",
            "--widths",
            "8,16,32,32,64,64,64,64",
            "--fc",
            "512,512",
            "--classes",
            "4",
            "--input-size",
            "16x48x48",
            "--seed",
            seed,
            "--out",
            s(&m),
        ]));
        models.push(m);
    }
    let out = d.join("run");
    let o = ok(vidlrp(&[
        "reproduce",
        "--out",
        s(&out),
        "--quick",
        "--weights",
        s(&models[0]),
        "--weights",
        s(&models[1]),
        "--manifest",
        s(&data.join("test.csv")),
        "--labels",
        s(&data.join("labels.txt")),
        "--preset",
        "caffe@48",
        "--threads",
        "2",
    ]));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON line");
    assert_eq!(j["seeds"], 2);
    // Nothing synthesised or trained: the given models were analysed.
    assert!(!out.join("data").exists() && !out.join("seed-1/model/model.safetensors").exists());
    assert!(out.join("seed-2/offsets/summary.json").is_file());
    let claim = |id: &str| {
        j["claims"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no claim {id}"))
            .clone()
    };
    for id in ["C2", "C6 (top-1)"] {
        let c = claim(id);
        assert_ne!(c["verdict"], "holds", "{c}");
        assert_eq!(c["holds_in"], 0, "{c}");
    }
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(report.contains("Models and videos"), "{report}");
    assert!(report.contains("untrained-12.safetensors"));
    assert!(!report.contains("null"));
    // One model: the report warns that its intervals rest on the test videos alone.
    let one = d.join("one");
    ok(vidlrp(&[
        "reproduce",
        "--out",
        s(&one),
        "--quick",
        "--weights",
        s(&models[0]),
        "--manifest",
        s(&data.join("test.csv")),
        "--preset",
        "caffe@48",
        "--threads",
        "2",
    ]));
    let report = std::fs::read_to_string(one.join("REPORT.md")).unwrap();
    assert!(report.contains("One model only"), "{report}");
    // --weights without a manifest is a usage error.
    let o = vidlrp(&[
        "reproduce",
        "--out",
        s(&d.join("x")),
        "--weights",
        s(&models[0]),
    ]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&d).unwrap();
}

/// `--vary`: the whole run at each level of a factor, the claims per level in STUDY.md with the
/// figure of border strength against the factor; a bad factor is a usage error.
#[test]
fn a_study_runs_every_level_and_reports_the_claims_per_level() {
    let d = tmp("reproduce-study");
    let out = d.join("study");
    let o = ok(vidlrp(&[
        "reproduce",
        "--out",
        s(&out),
        "--quick",
        "--vary",
        "title-share=0,1",
        "--threads",
        "2",
    ]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("expected about"), "{err}");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON line");
    let levels = j["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for (l, level) in levels.iter().zip(["0", "1"]) {
        assert_eq!(l["claims"].as_array().unwrap().len(), 8);
        let dir = out.join(format!("title-share={level}"));
        assert!(dir.join("REPORT.md").is_file() && dir.join("seed-2/profile").is_dir());
    }
    // The levels' data sets differ only in the title cards asked for.
    let synth = |level: &str| -> serde_json::Value {
        let p = out.join(format!("title-share={level}/data/synth.json"));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    assert_eq!(synth("0")["spec"]["title_share"], 0.0);
    assert_eq!(synth("1")["spec"]["title_share"], 1.0);
    let study = std::fs::read_to_string(out.join("STUDY.md")).unwrap();
    for part in [
        "Verdicts per level",
        "| 0 |",
        "| 1 |",
        "border_vs_title_share.png",
    ] {
        assert!(study.contains(part), "STUDY.md lacks {part:?}");
    }
    assert!(out.join("border_vs_title_share.svg").is_file());
    assert!(out.join("study.html").is_file());
    for bad in ["speed=1,2", "action-share=0,1", "train-step=2"] {
        let o = vidlrp(&["reproduce", "--out", s(&d.join("x")), "--vary", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}
