//! `vidlrp submit slurm --dry-run`: the scripts it writes, and what it refuses. (The real
//! scheduler is exercised by `.ci/slurm-check` on a one-node Slurm.)

mod common;

use common::{ok, s, tmp, vidlrp};

#[test]
fn dry_run_writes_the_array_and_merge_scripts() {
    let d = tmp("dry");
    let out = d.join("steps");
    let o = ok(vidlrp(&[
        "submit",
        "slurm",
        "--array",
        "3",
        "--partition",
        "gpu",
        "--gres",
        "gpu:1",
        "--time",
        "01:00:00",
        "--dry-run",
        "--",
        "sweep-steps",
        "--manifest",
        "videos with space.csv",
        "--weights",
        "c3d.safetensors",
        "--steps",
        "1,2",
        "--out",
        s(&out),
    ]));
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["shards_to_run"], serde_json::json!([0, 1, 2]));
    let array = std::fs::read_to_string(out.join("slurm/array.sh")).unwrap();
    for part in [
        "#SBATCH --partition=gpu",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --time=01:00:00",
        "sweep-steps --manifest 'videos with space.csv'",
        "--shard \"$SLURM_ARRAY_TASK_ID/3\"",
        "--resume",
    ] {
        assert!(array.contains(part), "{part:?} not in:\n{array}");
    }
    let merge = std::fs::read_to_string(out.join("slurm/merge.sh")).unwrap();
    assert!(merge.contains(" merge "), "{merge}");
    assert!(merge.contains("shards/2"), "{merge}");
    assert!(line["sbatch"][0]
        .as_str()
        .unwrap()
        .contains("--array=0,1,2"));
}

#[test]
fn bad_submissions_are_refused_before_anything_is_written() {
    let d = tmp("bad");
    let out = d.join("o");
    let refuse = |args: &[&str], needle: &str| {
        let mut all = vec!["submit", "slurm", "--dry-run", "--"];
        all.extend_from_slice(args);
        let o = vidlrp(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "expected {needle:?} in {err}");
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    };
    refuse(
        &[
            "explain",
            "--weights",
            "w",
            "--input",
            "x",
            "--out",
            s(&out),
        ],
        "not a data-set command",
    );
    refuse(
        &["profile", "--manifest", "m", "--weights", "w"],
        "needs --out",
    );
    refuse(
        &[
            "profile",
            "--manifest",
            "m",
            "--weights",
            "w",
            "--shard",
            "0/2",
            "--out",
            s(&out),
        ],
        "leave --shard out",
    );
    refuse(
        &[
            "profile",
            "--manifest",
            "m",
            "--weights",
            "w",
            "--stepz",
            "3",
            "--out",
            s(&out),
        ],
        "--stepz",
    );
}
