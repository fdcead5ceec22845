//! Any split of a manifest into shards, merged, equals the unsharded run; and merge refuses
//! what does not belong together.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use vidlrp_c3d::{init_weights, C3dSpec, Pool5};
use vidlrp_core::{HostTensor, Method};
use vidlrp_dataset::{
    merge, run, summarize, AnalysisMethod, Condition, Manifest, Records, RunOptions, Shard, Status,
};
use vidlrp_snippet::{Preprocess, ShortPolicy};

/// A directory with a tiny C3D's weights and videos (`.npy` frame arrays) of 0..30 frames
/// (under 16 frames: skipped) and one file that is not a video (failed).
fn fixture() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("vidlrp-dataset-merge-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let spec = C3dSpec::with_widths([4; 8], [8, 8], 5, [16, 112, 112], Pool5::Port).unwrap();
        vidlrp_io::write_safetensors(&d.join("w.safetensors"), &init_weights(&spec, 7)).unwrap();
        for (i, frames) in [20usize, 17, 9, 30, 16, 24].iter().enumerate() {
            let (h, w) = (24, 32);
            let data: Vec<f32> = (0..frames * h * w * 3)
                .map(|k| ((k * 37 + i * 101 + (k / (h * w * 3)) * 13) % 256) as f32)
                .collect();
            let t = HostTensor::new(vec![*frames, h, w, 3], data).unwrap();
            vidlrp_io::write_npy(&d.join(format!("v{i}.npy")), &t).unwrap();
        }
        std::fs::write(d.join("broken.npy"), b"not an array").unwrap();
        d
    })
}

fn manifest(rows: &[usize]) -> Manifest {
    let d = fixture();
    let names: Vec<String> = rows
        .iter()
        .map(|&r| {
            if r == 6 {
                "broken.npy,1".into()
            } else {
                format!("v{r}.npy,{}", r % 5)
            }
        })
        .collect();
    let p = d.join(format!(
        "m-{}.csv",
        rows.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("")
    ));
    std::fs::write(&p, names.join("\n") + "\n").unwrap();
    Manifest::read(&p, None).unwrap()
}

fn options(m: Manifest, shard: Shard) -> RunOptions {
    RunOptions {
        manifest: m,
        weights: fixture().join("w.safetensors"),
        preset: Preprocess::caffe(),
        pool5: Some(Pool5::Port),
        length: 16,
        short: ShortPolicy::Skip,
        shard,
        bootstrap: 20,
        seed: 3,
        journal: None,
        resume: false,
        batch: vidlrp_dataset::BatchSize::Fixed(1),
        chunk_bytes: RunOptions::DEFAULT_CHUNK_BYTES,
    }
}

fn conditions() -> Vec<Condition> {
    let c = |key: &str, method, step| Condition {
        key: key.into(),
        method,
        offset: 0,
        step,
    };
    vec![
        c("dtd", AnalysisMethod::Explain(Method::Dtd), 1),
        c("sa-step0", AnalysisMethod::Explain(Method::Sa), 0),
        c("dtd-u", AnalysisMethod::DtdUntrained, 1),
    ]
}

fn backend() -> vidlrp_cpu::Cpu {
    vidlrp_cpu::Cpu::new(1).unwrap()
}

fn run_shard(rows: &[usize], shard: Shard) -> Records {
    run(
        &backend(),
        "profile",
        &options(manifest(rows), shard),
        conditions(),
        &mut |_| {},
    )
    .unwrap()
}

fn tables(dir: &Path, rec: &Records) -> Option<(String, String)> {
    std::fs::create_dir_all(dir).unwrap();
    summarize(dir, rec).ok()?;
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    Some((read("conditions.csv"), read("shares.csv")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn any_split_merges_to_the_unsharded_run(
        rows in proptest::collection::vec(0usize..7, 1..6),
        n in 1usize..5,
        order in any::<u64>(),
    ) {
        let whole = run_shard(&rows, Shard::WHOLE);
        let mut parts: Vec<Records> = (0..n).map(|i| run_shard(&rows, Shard::new(i, n).unwrap())).collect();
        // Merge in an arbitrary order.
        parts.rotate_left((order % n as u64) as usize);
        let merged = merge(parts).unwrap();
        prop_assert_eq!(merged.shards.len(), n);
        let mut normalised = merged.clone();
        normalised.shards = whole.shards.clone();
        prop_assert_eq!(&normalised, &whole);
        let base = fixture().join(format!("tables-{order}-{n}"));
        prop_assert_eq!(tables(&base.join("merged"), &merged), tables(&base.join("whole"), &whole));
    }
}

#[test]
fn outcomes_are_typed_and_nothing_is_dropped() {
    let rec = run_shard(&[0, 2, 6], Shard::WHOLE);
    let status = |item: usize, key: &str| {
        rec.outcomes
            .iter()
            .find(|o| o.item == item && o.condition == key)
            .map(|o| o.status)
    };
    let reasons: Vec<String> = rec
        .outcomes
        .iter()
        .map(|o| format!("{} {} {:?} {:?}", o.item, o.condition, o.status, o.reason))
        .collect();
    assert_eq!(status(0, "dtd"), Some(Status::Ok), "{reasons:#?}");
    assert_eq!(
        status(1, "dtd"),
        Some(Status::Skipped),
        "9 frames are too short"
    );
    assert_eq!(
        status(1, "sa-step0"),
        Some(Status::Ok),
        "step 0 needs one frame"
    );
    assert_eq!(status(2, "dtd"), Some(Status::Failed), "not a video");
    assert_eq!(rec.outcomes.len(), 9);
    rec.check().unwrap();
}

#[test]
fn merge_refuses_what_does_not_belong_together() {
    let rows = [0, 1, 3, 4];
    let part = |i, n| run_shard(&rows, Shard::new(i, n).unwrap());
    let err = |parts: Vec<Records>| merge(parts).unwrap_err().to_string();
    assert!(err(vec![part(0, 2)]).contains("1/2 are missing"));
    assert!(err(vec![part(0, 2), part(0, 2)]).contains("given twice"));
    assert!(err(vec![part(0, 2), part(1, 3)]).contains("different numbers of parts"));
    let other = run(
        &backend(),
        "profile",
        &options(manifest(&[0, 1, 3, 5]), Shard::new(1, 2).unwrap()),
        conditions(),
        &mut |_| {},
    )
    .unwrap();
    assert!(err(vec![part(0, 2), other]).contains("different manifests"));
    let mut seed = options(manifest(&rows), Shard::new(1, 2).unwrap());
    seed.seed = 4;
    let reseeded = run(&backend(), "profile", &seed, conditions(), &mut |_| {}).unwrap();
    assert!(err(vec![part(0, 2), reseeded]).contains("different options"));
    let mut edited = part(1, 2);
    edited.outcomes[0].status = Status::Failed;
    assert!(err(vec![part(0, 2), edited]).contains("do not match the outcomes"));
    let mut foreign = part(1, 2);
    foreign.outcomes[0].item = 0;
    assert!(err(vec![part(0, 2), foreign]).contains("does not belong"));
    let mut short = part(1, 2);
    short.manifest_items = 9;
    assert!(err(vec![short]).contains("missing"));
}

/// DTD and SA of the same snippet share one forward pass; when DTD refuses (its top logit is
/// not positive), SA on that snippet still gets its own observation, as if it had run alone.
#[test]
fn a_method_that_refuses_does_not_take_the_others_of_its_group_down() {
    let d = fixture();
    let spec = C3dSpec::with_widths([4; 8], [8, 8], 5, [16, 112, 112], Pool5::Port).unwrap();
    let mut w = init_weights(&spec, 7);
    // Every logit far below 0 (the tiny model's logits are small): f_c(x) <= 0 for every class.
    w.get_mut("fc8.bias").unwrap().data_mut().fill(-1e6);
    let weights = d.join("negative.safetensors");
    vidlrp_io::write_safetensors(&weights, &w).unwrap();
    let opts = RunOptions {
        weights,
        ..options(manifest(&[0]), Shard::WHOLE)
    };
    let c = |key: &str, method| Condition {
        key: key.into(),
        method,
        offset: 0,
        step: 1,
    };
    let conditions = vec![
        c("dtd", AnalysisMethod::Explain(Method::Dtd)),
        c("sa", AnalysisMethod::Explain(Method::Sa)),
    ];
    let rec = run(&backend(), "profile", &opts, conditions, &mut |_| {}).unwrap();
    let by_key = |k: &str| rec.outcomes.iter().find(|o| o.condition == k).unwrap();
    assert_eq!(by_key("dtd").status, Status::Failed);
    assert!(
        by_key("dtd")
            .reason
            .as_deref()
            .unwrap()
            .contains("not positive"),
        "{:?}",
        by_key("dtd").reason
    );
    assert_eq!(by_key("sa").status, Status::Ok, "{:?}", by_key("sa").reason);
}

/// Explaining a video's snippets as one batch gives the outcomes of one at a time exactly, and
/// the same shares up to float rounding (a batch changes the GEMMs' blocking), the same hits.
#[test]
fn batching_a_videos_snippets_changes_no_outcome_and_shares_only_by_rounding() {
    let c = |key: &str, method, step| Condition {
        key: key.into(),
        method,
        offset: 0,
        step,
    };
    let conditions = || {
        let mut v = Vec::new();
        for step in [0, 1, 2] {
            v.push(c(
                &format!("dtd step={step}"),
                AnalysisMethod::Explain(Method::Dtd),
                step,
            ));
            v.push(c(
                &format!("sa step={step}"),
                AnalysisMethod::Explain(Method::Sa),
                step,
            ));
            v.push(c(
                &format!("dtd-u step={step}"),
                AnalysisMethod::DtdUntrained,
                step,
            ));
        }
        v
    };
    // 17 frames (step 2 too long), 30 frames, and a file that is not a video.
    let rows = [1, 3, 6];
    let one = run(
        &backend(),
        "sweep-steps",
        &options(manifest(&rows), Shard::WHOLE),
        conditions(),
        &mut |_| {},
    )
    .unwrap();
    for batch in [2, 8] {
        let opts = RunOptions {
            batch: vidlrp_dataset::BatchSize::Fixed(batch),
            ..options(manifest(&rows), Shard::WHOLE)
        };
        let batched = run(&backend(), "sweep-steps", &opts, conditions(), &mut |_| {}).unwrap();
        assert_eq!(batched.outcomes, one.outcomes, "batch {batch}");
        for (key, acc) in &one.accumulators {
            let other = batched.accumulators[key].observations();
            let mine = acc.observations();
            assert_eq!(mine.len(), other.len(), "{key}");
            for (a, b) in mine.iter().zip(&other) {
                assert_eq!((a.item, a.top1, a.top5), (b.item, b.top1, b.top5), "{key}");
                for (x, y) in a.shares.iter().zip(&b.shares) {
                    assert!((x - y).abs() < 1e-6, "{key}: {x} vs {y} at batch {batch}");
                }
            }
        }
    }
}

/// With DTD-u and other methods only one network is resident: videos go in chunks, each
/// explained by one network and then the other. The records do not depend on the chunk size,
/// nor on resuming a journal written with another chunk size.
#[test]
fn chunks_of_any_size_give_the_same_records() {
    let rows = [1, 3, 6, 0];
    let d = fixture();
    let whole = run_shard(&rows, Shard::WHOLE);
    for chunk_bytes in [1, 3 << 20, 1 << 40] {
        let opts = RunOptions {
            chunk_bytes,
            ..options(manifest(&rows), Shard::WHOLE)
        };
        let chunked = run(&backend(), "profile", &opts, conditions(), &mut |_| {}).unwrap();
        assert_eq!(chunked, whole, "chunks of {chunk_bytes} bytes");
    }
    // A run in chunks of one video cut after its first two videos (its journal truncated as a
    // kill would leave it), resumed with the default chunks.
    let journal = d.join(format!("chunks-{}.journal.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&journal);
    let first = RunOptions {
        chunk_bytes: 1,
        journal: Some(journal.clone()),
        ..options(manifest(&rows), Shard::WHOLE)
    };
    run(&backend(), "profile", &first, conditions(), &mut |_| {}).unwrap();
    let text = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(text.lines().count(), 5, "a header and one record per video");
    let kept: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&journal, kept).unwrap();
    let rest = RunOptions {
        journal: Some(journal.clone()),
        resume: true,
        ..options(manifest(&rows), Shard::WHOLE)
    };
    let mut resumed_items = 0;
    let resumed = run(&backend(), "profile", &rest, conditions(), &mut |p| {
        resumed_items = p.resumed;
    })
    .unwrap();
    let lines = std::fs::read_to_string(&journal).unwrap().lines().count();
    let _ = std::fs::remove_file(&journal);
    assert_eq!(resumed_items, 2);
    assert_eq!(lines, 5);
    assert_eq!(resumed, whole);
}
