//! The data-set commands end to end on videos the test makes: profile, sweeps, shards + merge.

mod common;

use common::{interrupt_after_two, ok, read_json, s, small_model, tmp, tree, vidlrp_env as vidlrp};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A data set of `n` ffmpeg test-pattern videos of rising length plus one too short for any
/// snippet, a manifest with numeric and named labels, a labels file and a small seeded model.
fn dataset(d: &Path, n: usize) -> (PathBuf, PathBuf, PathBuf) {
    let mut manifest = String::from("path,label\n");
    for i in 0..n {
        let name = format!("v{i}.mp4");
        let ok = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                &format!("testsrc=size=160x120:rate=25:decimals={}", i % 3),
            ])
            .args([
                "-t",
                &format!("{}", 1.5 + i as f64 * 0.2),
                "-pix_fmt",
                "yuv420p",
            ])
            .arg(d.join(&name))
            .status()
            .expect("ffmpeg makes the test videos")
            .success();
        assert!(ok);
        manifest += &format!(
            "{name},{}\n",
            if i % 2 == 0 {
                (i % 6).to_string()
            } else {
                "bowling".into()
            }
        );
    }
    Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25",
            "-t",
            "0.3",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(d.join("short.mp4"))
        .status()
        .unwrap();
    manifest += "short.mp4,2\n";
    let m = d.join("videos.csv");
    std::fs::write(&m, manifest).unwrap();
    let labels = d.join("labels.txt");
    std::fs::write(
        &labels,
        "archery\nbowling\ncurling\ndiving\nepee\nfencing\n",
    )
    .unwrap();
    let w = small_model(d);
    (m, labels, w)
}

fn summary(dir: &Path) -> Value {
    read_json(&dir.join("summary.json"))
}

#[test]
fn profile_shards_merge_to_exactly_the_unsharded_run() {
    let d = tmp("profile");
    let (m, labels, w) = dataset(&d, 4);
    let common = |out: &Path| {
        vec![
            "profile",
            "--manifest",
            s(&m),
            "--labels",
            s(&labels),
            "--weights",
            s(&w),
            "--bootstrap",
            "100",
            "--out",
        ]
        .into_iter()
        .map(String::from)
        .chain([s(out).to_string()])
        .collect::<Vec<_>>()
    };
    let whole = d.join("whole");
    let args = common(&whole);
    ok(vidlrp(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    ));
    let sum = summary(&whole);
    let conds = sum["conditions"].as_array().unwrap();
    assert_eq!(
        conds
            .iter()
            .map(|c| c["key"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["dtd", "sa", "dtd-u"]
    );
    for c in conds {
        assert_eq!(c["n"], 4, "{}", c["key"]);
        let skipped = c["skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0]["path"], "short.mp4");
        let mean: Vec<f64> = c["effects"]["mean"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(mean.len(), 16);
        assert!((mean.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        let ci = &c["effects"]["border_ci"];
        assert!(ci["lo"].as_f64().unwrap() <= c["effects"]["border"].as_f64().unwrap());
    }
    for f in [
        "conditions.csv",
        "shares.csv",
        "fig2_shares.png",
        "fig2_shares.svg",
        "records.json",
    ] {
        assert!(whole.join(f).is_file(), "{f}");
    }
    // Three shards: by flag, by SLURM variables, by Kubernetes' index.
    let parts: Vec<PathBuf> = (0..3).map(|i| d.join(format!("part{i}"))).collect();
    let a0 = [common(&parts[0]), vec!["--shard".into(), "0/3".into()]].concat();
    ok(vidlrp(
        &a0.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    ));
    let a1 = common(&parts[1]);
    ok(vidlrp(
        &a1.iter().map(String::as_str).collect::<Vec<_>>(),
        &[
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
    ));
    let a2 = common(&parts[2]);
    ok(vidlrp(
        &a2.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("JOB_COMPLETION_INDEX", "2"), ("VIDLRP_SHARD_COUNT", "3")],
    ));
    let merged = d.join("merged");
    ok(vidlrp(
        &[
            "merge",
            s(&parts[2]),
            s(&parts[0]),
            s(&parts[1]),
            "--out",
            s(&merged),
        ],
        &[],
    ));
    assert_eq!(summary(&merged)["conditions"], sum["conditions"]);
    for f in ["conditions.csv", "shares.csv"] {
        assert_eq!(
            std::fs::read(merged.join(f)).unwrap(),
            std::fs::read(whole.join(f)).unwrap(),
            "{f}"
        );
    }
    // Overlapping shards are refused.
    let o = vidlrp(
        &[
            "merge",
            s(&parts[0]),
            s(&parts[0]),
            "--out",
            s(&d.join("bad")),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("given twice"));
    assert!(!d.join("bad").exists());
    refusals(&d, &parts, &common);
}

/// `merge` refuses, with a clear message and no output, what does not make one run.
fn refusals(d: &Path, parts: &[PathBuf], common: &dyn Fn(&Path) -> Vec<String>) {
    let out = d.join("refused");
    let refuse = |dirs: &[&Path], needle: &str| {
        let mut args = vec!["merge"];
        args.extend(dirs.iter().map(|p| s(p)));
        args.extend(["--out", s(&out)]);
        let o = vidlrp(&args, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "expected {needle:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "output left by a refused merge");
    };
    refuse(&[&parts[0], &parts[2]], "shard(s) 1/3 are missing");
    // The same manifest cut in two: shards of different counts.
    let half = d.join("half0");
    let a = [common(&half), vec!["--shard".into(), "0/2".into()]].concat();
    ok(vidlrp(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    ));
    refuse(&[&half, &parts[1], &parts[2]], "different numbers of parts");
    // Other options (another seed).
    let other = d.join("other0");
    let a = [
        common(&other),
        vec!["--shard".into(), "0/3".into(), "--seed".into(), "9".into()],
    ]
    .concat();
    ok(vidlrp(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    ));
    refuse(&[&other, &parts[1], &parts[2]], "different options");
    // Another manifest with the same videos (one more row): its hash differs.
    let records = std::fs::read_to_string(parts[0].join("records.json")).unwrap();
    let edited = d.join("edited0");
    std::fs::create_dir_all(&edited).unwrap();
    let mut v: Value = serde_json::from_str(&records).unwrap();
    v["config"]["manifest_sha256"] = Value::from("0".repeat(64));
    std::fs::write(edited.join("records.json"), v.to_string()).unwrap();
    refuse(&[&edited, &parts[1], &parts[2]], "different manifests");
    // Hand-edited records: an outcome removed, an observation of a foreign item, garbage.
    let mut v: Value = serde_json::from_str(&records).unwrap();
    v["outcomes"].as_array_mut().unwrap().pop();
    std::fs::write(edited.join("records.json"), v.to_string()).unwrap();
    refuse(&[&edited, &parts[1], &parts[2]], "missing");
    let mut v: Value = serde_json::from_str(&records).unwrap();
    v["accumulators"]["dtd"]["observations"][0]["item"] = Value::from(1);
    std::fs::write(edited.join("records.json"), v.to_string()).unwrap();
    refuse(
        &[&edited, &parts[1], &parts[2]],
        "do not match the outcomes",
    );
    let mut v: Value = serde_json::from_str(&records).unwrap();
    v["accumulators"].as_object_mut().unwrap().remove("sa");
    std::fs::write(edited.join("records.json"), v.to_string()).unwrap();
    refuse(
        &[&edited, &parts[1], &parts[2]],
        "do not match the conditions",
    );
    std::fs::write(edited.join("records.json"), &records[..records.len() / 2]).unwrap();
    refuse(&[&edited, &parts[1], &parts[2]], "not valid vidlrp records");
    refuse(
        &[&d.join("nowhere"), &parts[1]],
        "a vidlrp output directory",
    );
}

#[test]
fn sweeps_write_their_tables_and_figures() {
    let d = tmp("sweeps");
    let (m, labels, w) = dataset(&d, 3);
    let out = d.join("steps");
    ok(vidlrp(
        &[
            "sweep-steps",
            "--manifest",
            s(&m),
            "--labels",
            s(&labels),
            "--weights",
            s(&w),
            "--steps",
            "0,1,2",
            "--bootstrap",
            "50",
            "--out",
            s(&out),
        ],
        &[],
    ));
    let sum = summary(&out);
    let c = sum["conditions"].as_array().unwrap();
    // DTD and SA (the default --methods) at every step, DTD first.
    assert_eq!(c.len(), 6);
    assert_eq!(c[0]["step"], 0);
    assert_eq!(
        (c[0]["key"].as_str(), c[3]["key"].as_str()),
        (Some("dtd step=0"), Some("sa step=0"))
    );
    // The same model on the same snippets: the same accuracy under both methods.
    assert_eq!(c[1]["hits_top5"], c[4]["hits_top5"]);
    assert!(c[0]["top5"].as_f64().is_some());
    // Step 0 needs only frame 0, so even the short video counts; step 1 skips it.
    assert_eq!(c[0]["hits_top5"][1], 4);
    assert_eq!(c[1]["hits_top5"][1], 3);
    assert_eq!(c[1]["skipped"][0]["path"], "short.mp4");
    for f in [
        "fig3_border_vs_step.png",
        "fig3_border_vs_step.svg",
        "fig5_top5_vs_border.png",
        "fig5_top5_vs_border.svg",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let out = d.join("offsets");
    ok(vidlrp(
        &[
            "sweep-offsets",
            "--manifest",
            s(&m),
            "--labels",
            s(&labels),
            "--weights",
            s(&w),
            "--offsets",
            "0,4,8",
            "--bootstrap",
            "0",
            "--out",
            s(&out),
        ],
        &[],
    ));
    let sum = summary(&out);
    assert_eq!(sum["conditions"].as_array().unwrap().len(), 6);
    assert_eq!(sum["conditions"][2]["offset"], 8);
    assert_eq!(sum["conditions"][5]["key"], "sa offset=8");
    assert!(sum["conditions"][2]["effects"]["lookahead_ci"].is_null());
    assert!(out.join("fig4_lookahead_vs_offset.svg").is_file());
}

#[test]
fn bad_data_sets_give_clear_errors() {
    let d = tmp("bad");
    let (_, labels, w) = dataset(&d, 1);
    let run = |manifest: &str, extra: &[&str], needle: &str| {
        let m = d.join("m.csv");
        std::fs::write(&m, manifest).unwrap();
        let out = d.join("out");
        let mut args = vec![
            "profile",
            "--manifest",
            s(&m),
            "--weights",
            s(&w),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        let o = vidlrp(&args, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        let code = if needle.starts_with("invalid value") {
            2
        } else {
            1
        };
        assert_eq!(o.status.code(), Some(code), "{err}");
        assert!(err.contains(needle), "expected {needle:?} in {err}");
        assert!(!err.contains("panicked"));
        assert!(!out.exists(), "output left by a failed run");
    };
    run("path,label\n", &[], "lists no videos");
    run(
        "v0.mp4,zumba\n",
        &["--labels", s(&labels)],
        "unknown label \"zumba\"",
    );
    run("v0.mp4,bowling\n", &[], "need --labels");
    run(
        "short.mp4,1\nshort.mp4,2\n",
        &[],
        "no video could be analysed",
    );
    run(
        "v0.mp4,1\n",
        &["--shard", "3/2"],
        "invalid value '3/2' for '--shard",
    );
    run(
        "v0.mp4,1\n",
        &["--methods", "dtd,lime"],
        "invalid value 'lime' for '--methods",
    );
    // The random baseline ranks regions for evaluate; it has no relevance to profile.
    run(
        "v0.mp4,1\n",
        &["--methods", "dtd,random"],
        "no relevance to analyse",
    );
    let mean8 = d.join("mean8.binaryproto");
    std::fs::write(
        &mean8,
        common::blob([1, 3, 8, 128, 171], &vec![90.0; 3 * 8 * 128 * 171]),
    )
    .unwrap();
    run(
        "v0.mp4,1\n",
        &["--mean", s(&mean8)],
        "the mean has 8 frames; use --length 8",
    );
    // A late failure (the figures cannot be drawn: the font is not a font) leaves no output.
    let bad_font = d.join("not-a-font.ttf");
    std::fs::write(&bad_font, b"plain text").unwrap();
    let m = d.join("late.csv");
    std::fs::write(&m, "v0.mp4,1\n").unwrap();
    // A per-voxel mean goes into the records' options, so runs with other means do not merge.
    let mean16 = d.join("mean16.binaryproto");
    std::fs::write(
        &mean16,
        common::blob([1, 3, 16, 128, 171], &vec![90.0; 3 * 16 * 128 * 171]),
    )
    .unwrap();
    let with_mean = d.join("with-mean");
    ok(vidlrp(
        &[
            "profile",
            "--manifest",
            s(&m),
            "--weights",
            s(&w),
            "--methods",
            "sa",
            "--bootstrap",
            "0",
            "--mean",
            s(&mean16),
            "--out",
            s(&with_mean),
        ],
        &[],
    ));
    let records = std::fs::read_to_string(with_mean.join("records.json")).unwrap();
    assert!(records.contains("caffe+voxel-mean:"), "{records}");
    let out = d.join("late");
    let o = vidlrp(
        &[
            "profile",
            "--manifest",
            s(&m),
            "--weights",
            s(&w),
            "--methods",
            "dtd",
            "--out",
            s(&out),
        ],
        &[("VIDLRP_FONT", s(&bad_font))],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not a usable font"), "{err}");
    assert!(!out.exists(), "a half-written output directory");
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".vidlrp-"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
}

#[test]
fn a_killed_run_resumes_to_the_outputs_of_an_uninterrupted_one() {
    let d = tmp("resume");
    let (m, labels, w) = dataset(&d, 6);
    let args = |out: &Path| -> Vec<String> {
        [
            "sweep-steps",
            "--manifest",
            s(&m),
            "--labels",
            s(&labels),
            "--weights",
            s(&w),
            "--steps",
            "0,1,2",
            // DTD-u too, one video per chunk (its inputs are 7 MiB): each video is explained
            // by one network, then by the other, and journaled after both.
            "--methods",
            "dtd,sa,dtd-u",
            "--chunk-mb",
            "1",
            "--bootstrap",
            "50",
            "--threads",
            "1",
            "--out",
            s(out),
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let whole = d.join("whole");
    let a: Vec<String> = args(&whole);
    ok(vidlrp(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    ));
    let expected = tree(&whole);
    assert!(
        !d.join("whole.journal.jsonl").exists(),
        "the journal is removed when done"
    );

    for signal in ["INT", "TERM", "KILL"] {
        let out = d.join(format!("cut-{signal}"));
        let journal = d.join(format!("cut-{signal}.journal.jsonl"));
        // Kill it once two videos are journaled, mid-way through the run.
        let done_before = interrupt_after_two(&args(&out), &journal, &out, signal);
        assert!(done_before < 7, "SIG{signal}: every video had finished");

        // Resume: the finished videos are not computed again, the outputs are the same.
        let mut r = args(&out);
        r.push("--resume".into());
        let o = ok(vidlrp(
            &r.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        ));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("{done_before} video(s) taken from the journal")),
            "SIG{signal}: {err}"
        );
        assert_eq!(tree(&out), expected, "SIG{signal}: resumed outputs differ");
        assert!(!journal.exists());
    }

    // A journal of another run is refused, not mixed in.
    let out = d.join("other");
    let journal = d.join("other.journal.jsonl");
    std::fs::write(&journal, "{\"journal\":1,\"run\":{}}\n").unwrap();
    let mut r = args(&out);
    r.push("--resume".into());
    let o = vidlrp(&r.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("another run"));
    std::fs::remove_dir_all(&d).unwrap();
}

/// A `.npy` of frames whose header declares more than any machine holds
/// (`(1, 2^63, 2, 3)`: the product wraps unchecked), among good videos: that video fails with
/// a clear reason, the others are explained, the run finishes (#30).
#[test]
fn a_crafted_npy_among_good_videos_fails_alone() {
    let d = tmp("crafted");
    let (m, labels, w) = dataset(&d, 2);
    let mut header =
        "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 9223372036854775808, 2, 3), }"
            .to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[7u8; 48]);
    std::fs::write(d.join("crafted.npy"), bytes).unwrap();
    let mut manifest = std::fs::read_to_string(&m).unwrap();
    manifest += "crafted.npy,1\n";
    std::fs::write(&m, manifest).unwrap();
    let out = d.join("out");
    ok(vidlrp(
        &[
            "profile",
            "--manifest",
            s(&m),
            "--weights",
            s(&w),
            "--labels",
            s(&labels),
            "--out",
            s(&out),
        ],
        &[],
    ));
    let records = read_json(&out.join("records.json"));
    let outcomes = records["outcomes"].as_array().unwrap();
    let crafted: Vec<&Value> = outcomes
        .iter()
        .filter(|o| o["path"] == "crafted.npy")
        .collect();
    assert_eq!(crafted.len(), 3, "one outcome per condition");
    for o in crafted {
        assert_eq!(o["status"], "failed");
        assert!(
            o["reason"]
                .as_str()
                .unwrap()
                .contains("more than the file's"),
            "{o}"
        );
    }
    let ok_count = outcomes.iter().filter(|o| o["status"] == "ok").count();
    assert_eq!(
        ok_count,
        2 * 3,
        "the two good videos, three conditions each"
    );
}

/// Symbolic links planted where vidlrp writes (an output file, the journal beside `--out`)
/// are replaced or refused, never written through: the files they point at stay as they were
/// (#30).
#[test]
fn planted_symlinks_are_never_written_through() {
    let d = tmp("symlinks");
    let (m, labels, w) = dataset(&d, 2);
    let victim = d.join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let out = d.join("out");
    let journal = d.join("out.journal.jsonl");
    std::os::unix::fs::symlink(&victim, &journal).unwrap();
    let profile = [
        "profile",
        "--manifest",
        s(&m),
        "--weights",
        s(&w),
        "--labels",
        s(&labels),
        "--out",
        s(&out),
    ];
    // Resuming through a planted link is refused.
    let o = vidlrp(&[&profile[..], &["--resume"]].concat(), &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("symbolic link"));
    // A fresh run replaces the link with its own journal (removed when the run is done).
    ok(vidlrp(&profile, &[]));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        std::fs::symlink_metadata(&journal).is_err(),
        "the journal has served"
    );
    // An output file that is a planted link is replaced, not written through.
    let clip = d.join("clip.npy");
    let x = vidlrp_core::HostTensor::new(vec![1, 3, 16, 112, 112], vec![0.5; 3 * 16 * 112 * 112])
        .unwrap();
    vidlrp_io::write_npy(&clip, &x).unwrap();
    let rel = d.join("rel.npy");
    std::os::unix::fs::symlink(&victim, &rel).unwrap();
    ok(vidlrp(
        &[
            "explain",
            "--weights",
            s(&w),
            "--input",
            s(&clip),
            "--method",
            "sa",
            "--out",
            s(&rel),
        ],
        &[],
    ));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!std::fs::symlink_metadata(&rel)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(vidlrp_io::read_npy(&rel).unwrap().shape(), x.shape());
}

/// Frames larger than the cap (`VIDLRP_MAX_FRAME_PIXELS`, default 8192 x 8192) are refused
/// from the header, for `.npy` frames and video files alike (#30).
#[test]
fn frames_beyond_the_size_cap_are_refused_from_the_header() {
    let d = tmp("framecap");
    let (_, _, w) = dataset(&d, 1);
    let frames = d.join("frames.npy");
    let x =
        vidlrp_core::HostTensor::new(vec![16, 20, 20, 3], vec![128.0; 16 * 20 * 20 * 3]).unwrap();
    vidlrp_io::write_npy(&frames, &x).unwrap();
    let out = d.join("r.npy");
    for video in [frames, d.join("v0.mp4")] {
        let args = [
            "explain",
            "--weights",
            s(&w),
            "--video",
            s(&video),
            "--short",
            "clamp",
            "--out",
            s(&out),
        ];
        let capped = vidlrp(&args, &[("VIDLRP_MAX_FRAME_PIXELS", "100")]);
        assert_eq!(capped.status.code(), Some(1), "{}", video.display());
        let msg = String::from_utf8_lossy(&capped.stderr);
        assert!(msg.contains("larger than the cap of 100 pixels"), "{msg}");
        ok(vidlrp(&args, &[]));
    }
}
