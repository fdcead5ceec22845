//! The synthetic data set: reproducible to the byte, split by video, and built so that one
//! frame does not tell the class while the motion does.

use std::path::PathBuf;

use vidlrp_synth::{render, write, SynthSpec, VideoFormat, CLASS_NAMES};

fn spec(format: VideoFormat) -> SynthSpec {
    SynthSpec {
        classes: 4,
        videos: 16,
        frames: 24,
        test_frames: Some(40),
        width: 64,
        height: 48,
        fps: 25,
        seed: 11,
        title_share: 0.5,
        distractors: 2,
        split: [70, 15, 15],
        format,
        action_share: 1.0,
    }
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vidlrp-synth-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn files(d: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in [d.to_path_buf(), d.join("videos")] {
        for e in std::fs::read_dir(&sub).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.push((
                    p.strip_prefix(d).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_same_seed_writes_the_same_bytes_and_splits_by_video() {
    for format in [VideoFormat::Npy, VideoFormat::Mp4] {
        let (a, b) = (tmp("a"), tmp("b"));
        let s = write(&spec(format), &a, &mut |_, _| {}).unwrap();
        write(&spec(format), &b, &mut |_, _| {}).unwrap();
        assert_eq!(files(&a), files(&b), "{format:?}: same seed, same bytes");
        assert_eq!((s.train, s.val, s.test), (8, 4, 4));
        let csv = |n: &str| std::fs::read_to_string(a.join(n)).unwrap();
        let (train, test) = (csv("train.csv"), csv("test.csv"));
        for line in test.lines().skip(1) {
            let path = line.split(',').next().unwrap();
            assert!(!train.contains(path), "{path} in train and test");
        }
        assert_eq!(
            std::fs::read_to_string(a.join("labels.txt"))
                .unwrap()
                .lines()
                .count(),
            4
        );
        assert!(s.videos.iter().any(|v| v.title_frames > 0));
        // Test videos are --test-frames long, the others --frames.
        for v in &s.videos {
            let n = match format {
                VideoFormat::Npy => vidlrp_io::read_npy(&a.join(&v.path)).unwrap().shape()[0],
                VideoFormat::Mp4 => {
                    vidlrp_snippet::open(&a.join(&v.path))
                        .unwrap()
                        .info()
                        .frames
                }
            };
            assert_eq!(n, if v.split == "test" { 40 } else { 24 }, "{}", v.path);
        }
        let mut other = spec(format);
        other.seed = 12;
        let c = tmp("c");
        write(&other, &c, &mut |_, _| {}).unwrap();
        assert_ne!(files(&a), files(&c), "another seed, other videos");
        for d in [a, b, c] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}

/// Mean absolute difference between two frames.
fn diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len() as f64
}

#[test]
fn motion_carries_the_class_and_title_cards_are_static() {
    let mut s = spec(VideoFormat::Npy);
    s.classes = CLASS_NAMES.len();
    s.title_share = 1.0;
    s.frames = 60;
    for (label, name) in CLASS_NAMES.iter().enumerate() {
        let (frames, title) = render(&s, label, label, s.frames);
        assert!((8..=44).contains(&title), "{name}: title of {title} frames");
        // The card does not move; the scene after it does.
        assert_eq!(frames[0], frames[title - 1]);
        assert!(diff(&frames[title + 5].data, &frames[title + 15].data) > 1.0);
    }
    // Out-of-range parameters are errors.
    assert!(write(
        &SynthSpec {
            classes: CLASS_NAMES.len() + 1,
            ..spec(VideoFormat::Npy)
        },
        &tmp("bad"),
        &mut |_, _| {}
    )
    .is_err());
    assert!(write(
        &SynthSpec {
            videos: 5,
            ..spec(VideoFormat::Npy)
        },
        &tmp("bad"),
        &mut |_, _| {}
    )
    .is_err());
    for share in [0.0, -0.5, 1.5, f64::NAN] {
        let bad = SynthSpec {
            action_share: share,
            ..spec(VideoFormat::Npy)
        };
        assert!(bad.check().is_err(), "action share {share}");
    }
}

#[test]
fn one_frame_does_not_tell_the_class() {
    // Video `index` shows the same scene whatever its class: the first frame of every class
    // but expanding and contracting is the same picture (every motion starts from the same
    // pose), so no single frame tells them apart; expanding and contracting bars pass through
    // the same sizes (one is the other played backwards).
    let n = CLASS_NAMES.len();
    for share in [1.0, 0.4] {
        let mut s = spec(VideoFormat::Npy);
        s.classes = n;
        s.title_share = 0.0;
        s.action_share = share;
        for index in [3, 17, 40] {
            let clips: Vec<_> = (0..n).map(|l| render(&s, index, l, 60).0).collect();
            for (label, clip) in clips.iter().enumerate() {
                if label != 4 && label != 5 {
                    assert_eq!(clip[0], clips[0][0], "video {index}, class {label}");
                }
            }
            // The motion does tell: over the video the frames differ between every pair of
            // classes (two classes can coincide at single frames, e.g. expanding and
            // contracting bars where their sawtooths cross, or in rests before a burst).
            for a in 0..n {
                for b in a + 1..n {
                    let d: f64 = (5..60)
                        .map(|t| diff(&clips[a][t].data, &clips[b][t].data))
                        .sum::<f64>()
                        / 55.0;
                    assert!(d > 0.5, "share {share}, video {index}: {a} vs {b}: {d}");
                }
            }
        }
    }
}
