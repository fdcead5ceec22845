//! `vidlrp evaluate` as a user runs it: outputs, determinism, and clear errors.

mod common;

use common::{interrupt_after_two, ok, read_json, s, small_model, tmp, tree, vidlrp};
use vidlrp_core::HostTensor;

/// A random clip in the caffe preset's range, `(1, 3, 16, 112, 112)`.
fn clip(dir: &std::path::Path) -> std::path::PathBuf {
    let n = 3 * 16 * 112 * 112;
    let data = vidlrp_rng::uniform_values(n, 12345, -100.0, 155.0);
    let p = dir.join("clip.npy");
    vidlrp_io::write_npy(
        &p,
        &HostTensor::new(vec![1, 3, 16, 112, 112], data).unwrap(),
    )
    .unwrap();
    p
}

#[test]
fn frame_flipping_writes_curves_summary_and_figures_and_is_reproducible() {
    let d = tmp("flip");
    let w = small_model(&d);
    let x = clip(&d);
    let run = |out: &std::path::Path| {
        ok(vidlrp(&[
            "evaluate",
            "--weights",
            s(&w),
            "--input",
            s(&x),
            "--methods",
            "dtd,sa,random",
            "--region",
            "1,112,112",
            "--steps",
            "8",
            "--bootstrap",
            "50",
            "--seed",
            "4",
            "--out",
            s(out),
        ]))
    };
    let o = run(&d.join("a"));
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["figures"].as_array().unwrap().len(), 4);
    let summary = read_json(&d.join("a/summary.json"));
    assert_eq!(summary["run"]["regions"], 16);
    let results = summary["results"].as_array().unwrap();
    assert_eq!(results.len(), 6, "3 methods x 2 orders");
    for r in results {
        assert_eq!(r["clips"], 1);
        assert_eq!(r["mean_drop"].as_array().unwrap().len(), 9);
        assert_eq!(r["mean_drop"][0], 0.0, "nothing removed, nothing dropped");
        assert!(r["aopc"].as_f64().unwrap().is_finite());
    }
    let curves = std::fs::read_to_string(d.join("a/curves.csv")).unwrap();
    assert_eq!(curves.lines().count(), 1 + 6 * 9);
    for f in ["perturbation_morf.png", "perturbation_lerf.svg"] {
        assert!(d.join("a").join(f).exists(), "{f}");
    }
    // The same seed gives the same curves (the noise and the random ranking are seeded).
    run(&d.join("b"));
    assert_eq!(
        curves,
        std::fs::read_to_string(d.join("b/curves.csv")).unwrap()
    );
}

#[test]
fn bad_arguments_are_clear_errors_without_output() {
    let d = tmp("bad");
    let w = small_model(&d);
    let x = clip(&d);
    let out = d.join("out");
    let fail = |args: &[&str], needle: &str, code: i32| {
        let mut all = vec![
            "evaluate",
            "--weights",
            s(&w),
            "--input",
            s(&x),
            "--out",
            s(&out),
        ];
        all.extend_from_slice(args);
        let o = vidlrp(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "expected {needle:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "output left behind for {args:?}");
    };
    fail(&["--region", "1,8,5"], "do not tile", 1);
    fail(
        &["--region", "1,112,112", "--steps", "17"],
        "larger than the number of regions",
        1,
    );
    fail(&["--region", "8,8"], "T,H,W", 2);
    fail(&["--methods", "dtd,coin-flip"], "random", 2);
    // DTD-u explains the untrained network: not a ranking of the evaluated one.
    fail(&["--methods", "dtd-u"], "another network", 1);
    fail(&["--replace", "ink"], "uniform, mean, zero or blur", 2);
}

#[test]
fn manifest_shards_merge_to_the_unsharded_evaluation() {
    let d = tmp("shards");
    let w = small_model(&d);
    let mut manifest = String::from("path,label\n");
    for i in 0..3usize {
        let (t, h, wd) = (18, 24, 32);
        let data = (0..t * h * wd * 3)
            .map(|k| ((k * 31 + i * 77 + (k / (h * wd * 3)) * 11) % 256) as f32)
            .collect();
        let p = d.join(format!("v{i}.npy"));
        vidlrp_io::write_npy(&p, &HostTensor::new(vec![t, h, wd, 3], data).unwrap()).unwrap();
        manifest.push_str(&format!("v{i}.npy,{i}\n"));
    }
    // A video too short for a snippet is counted as missed, not dropped.
    let short = d.join("short.npy");
    vidlrp_io::write_npy(&short, &HostTensor::zeros(vec![4, 24, 32, 3])).unwrap();
    manifest.push_str("short.npy,0\n");
    let m = d.join("m.csv");
    std::fs::write(&m, manifest).unwrap();
    let run = |out: &str, shard: Option<&str>| {
        let mut args = vec![
            "evaluate",
            "--weights",
            s(&w),
            "--manifest",
            s(&m),
            "--methods",
            "dtd,random",
            "--region",
            "1,112,112",
            "--steps",
            "4",
            "--bootstrap",
            "20",
            "--out",
        ];
        let out = d.join(out);
        args.push(s(&out));
        if let Some(sh) = shard {
            args.extend(["--shard", sh]);
        }
        ok(vidlrp(&args));
        out
    };
    let whole = run("whole", None);
    let parts = [run("p0", Some("0/2")), run("p1", Some("1/2"))];
    let merged = d.join("merged");
    ok(vidlrp(&[
        "merge",
        s(&parts[1]),
        s(&parts[0]),
        "--out",
        s(&merged),
    ]));
    let read = |dir: &std::path::Path, f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(read(&whole, "curves.csv"), read(&merged, "curves.csv"));
    let json = |dir: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&read(dir, "summary.json")).unwrap()
    };
    let (a, b) = (json(&whole), json(&merged));
    // The merge writes what the unsharded run wrote, byte for byte.
    for f in ["summary.json", "records.json", "curves.csv"] {
        assert_eq!(read(&whole, f), read(&merged, f), "{f}");
    }
    assert_eq!(a["format"], 1);
    assert_eq!(a["clips"], 3);
    assert_eq!(b["missed"].as_array().unwrap().len(), 1, "{b}");
    // The same shard twice is refused.
    let o = vidlrp(&[
        "merge",
        s(&parts[0]),
        s(&parts[0]),
        "--out",
        s(&d.join("bad")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exactly once"));
    // An evaluation does not merge with another kind of run.
    let profile = d.join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    std::fs::write(profile.join("records.json"), "{\"format\": 1}").unwrap();
    let o = vidlrp(&[
        "merge",
        s(&parts[0]),
        s(&profile),
        "--out",
        s(&d.join("mixed")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!d.join("mixed").exists());
}

#[test]
fn a_killed_evaluation_resumes_to_the_outputs_of_an_uninterrupted_one() {
    let d = tmp("resume");
    let w = small_model(&d);
    let mut manifest = String::from("path,label\n");
    for i in 0..8usize {
        let (t, h, wd) = (16, 24, 32);
        let data = vidlrp_rng::uniform_values(t * h * wd * 3, i as u64, 0.0, 255.0);
        let p = d.join(format!("v{i}.npy"));
        vidlrp_io::write_npy(&p, &HostTensor::new(vec![t, h, wd, 3], data).unwrap()).unwrap();
        manifest.push_str(&format!("v{i}.npy,{i}\n"));
    }
    let m = d.join("m.csv");
    std::fs::write(&m, manifest).unwrap();
    let args = |out: &std::path::Path| -> Vec<String> {
        [
            "evaluate",
            "--weights",
            s(&w),
            "--manifest",
            s(&m),
            "--methods",
            "dtd,sa,random",
            "--region",
            "1,28,28",
            "--steps",
            "12",
            "--bootstrap",
            "20",
            "--threads",
            "1",
            "--out",
            s(out),
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let run = |a: &[String]| vidlrp(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let whole = d.join("whole");
    ok(run(&args(&whole)));
    let expected = tree(&whole);
    assert!(
        !d.join("whole.journal.jsonl").exists(),
        "the journal is removed when done"
    );
    for signal in ["INT", "TERM", "KILL"] {
        let out = d.join(format!("cut-{signal}"));
        let journal = d.join(format!("cut-{signal}.journal.jsonl"));
        // Kill it once two clips are journaled.
        let done_before = interrupt_after_two(&args(&out), &journal, &out, signal);
        assert!(done_before < 8, "SIG{signal}: every clip had finished");
        let mut r = args(&out);
        r.push("--resume".into());
        let o = ok(run(&r));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{done_before} clip(s) taken from the journal")),
            "SIG{signal}: {err}"
        );
        assert_eq!(tree(&out), expected, "SIG{signal}: resumed outputs differ");
        assert!(!journal.exists());
    }
    std::fs::remove_dir_all(&d).unwrap();
}
