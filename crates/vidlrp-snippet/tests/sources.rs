//! Frame sources, sampling and presets on data the tests make themselves, plus the real tennis
//! frames in `../shared/data/sports1m-sample/roger`.

use std::path::{Path, PathBuf};

use std::process::Command;
use vidlrp_core::HostTensor;
use vidlrp_snippet::Preprocess;
use vidlrp_snippet::{
    load_snippet, open, preprocess, write_video, RgbFrame, ShortPolicy, SnippetError, SnippetSpec,
};

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vidlrp-snippet-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Frame `i`: uniform colour with red `8 i`, so the decoded frame tells its own index.
fn coded_frame(i: usize, w: usize, h: usize) -> RgbFrame {
    let px = [(8 * i % 256) as u8, 200, 60];
    RgbFrame {
        width: w,
        height: h,
        data: px.iter().copied().cycle().take(w * h * 3).collect(),
    }
}

fn decoded_index(f: &RgbFrame) -> usize {
    let n = f.width * f.height;
    let mean_r = f.data.chunks(3).map(|p| f64::from(p[0])).sum::<f64>() / n as f64;
    (mean_r / 8.0).round() as usize
}

/// An H.264 mp4 made by the ffmpeg command-line tool from raw RGB frames (so the file is made by
/// software other than ours), 25 fps, a keyframe every `keyframe` frames.
fn make_video(dir: &Path, frames: usize, keyframe: u64) -> PathBuf {
    let p = dir.join(format!("v{frames}.mp4"));
    let raw = dir.join(format!("v{frames}.rgb"));
    let bytes: Vec<u8> = (0..frames)
        .flat_map(|i| coded_frame(i % 32, 64, 48).data)
        .collect();
    std::fs::write(&raw, bytes).unwrap();
    let status = Command::new("ffmpeg")
        .args([
            "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x48", "-r", "25",
            "-i",
        ])
        .arg(&raw)
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            &keyframe.to_string(),
        ])
        .arg(&p)
        .status()
        .expect(
            "the ffmpeg command-line tool is needed to make test videos (apt-get install ffmpeg)",
        );
    assert!(status.success());
    p
}

#[test]
fn video_reports_its_metadata_and_snippets_have_the_right_frames() {
    let d = tmp("video");
    let p = make_video(&d, 30, 10);
    let mut src = open(&p).unwrap();
    let info = src.info().clone();
    assert_eq!(
        (info.kind, info.frames, info.width, info.height),
        ("video", 30, 64, 48)
    );
    assert!((info.fps.unwrap() - 25.0).abs() < 1e-3);
    let preset = Preprocess::port();
    for (offset, step) in [(0, 1), (3, 1), (0, 0), (7, 0), (2, 3), (0, 2)] {
        let spec = SnippetSpec {
            length: 8,
            offset,
            step,
        };
        let s = load_snippet(src.as_mut(), &spec, ShortPolicy::Skip, &preset).unwrap();
        let expected: Vec<usize> = (0..8).map(|i| offset + i * step).collect();
        assert_eq!(s.frame_indices, expected, "offset {offset} step {step}");
        let got: Vec<usize> = s.frames.iter().map(decoded_index).collect();
        assert_eq!(
            got, expected,
            "decoded frames for offset {offset} step {step}"
        );
        assert_eq!(s.input.shape(), [3, 8, 112, 112]);
    }
    // Too short: skip errs and names the numbers, clamp repeats the last frame.
    let spec = SnippetSpec {
        length: 16,
        offset: 10,
        step: 2,
    };
    match load_snippet(src.as_mut(), &spec, ShortPolicy::Skip, &preset) {
        Err(SnippetError::TooShort {
            needed: 40,
            available: 30,
            ..
        }) => {}
        other => panic!(
            "expected TooShort, got {:?}",
            other.map(|s| s.frame_indices)
        ),
    }
    let s = load_snippet(src.as_mut(), &spec, ShortPolicy::Clamp, &preset).unwrap();
    assert_eq!(
        &s.frame_indices[..],
        &[10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 29, 29, 29, 29, 29, 29]
    );
    assert_eq!(
        s.frames.iter().map(decoded_index).collect::<Vec<_>>(),
        s.frame_indices
    );
}

#[test]
fn one_snippet_of_a_long_video_does_not_decode_all_of_it() {
    let d = tmp("long");
    let p = make_video(&d, 400, 25);
    let mut src = open(&p).unwrap();
    assert_eq!(src.info().frames, 400);
    let before = src.decoded_frames();
    let spec = SnippetSpec {
        length: 16,
        offset: 350,
        step: 2,
    };
    let s = load_snippet(src.as_mut(), &spec, ShortPolicy::Skip, &Preprocess::caffe()).unwrap();
    let got: Vec<usize> = s.frames.iter().map(decoded_index).collect();
    let expected: Vec<usize> = s.frame_indices.iter().map(|i| i % 32).collect();
    assert_eq!(got, expected);
    let decoded = src.decoded_frames() - before;
    assert!(
        decoded < 120,
        "decoded {decoded} frames for one snippet at offset 350"
    );
}

#[test]
fn damaged_and_wrong_files_give_clear_errors() {
    let d = tmp("bad");
    let p = make_video(&d, 30, 10);
    let bytes = std::fs::read(&p).unwrap();
    let garbage = d.join("garbage.mp4");
    std::fs::write(
        &garbage,
        b"this is not a video at all, just some text bytes",
    )
    .unwrap();
    let err = open(&garbage)
        .err()
        .expect("garbage must not open")
        .to_string();
    assert!(err.contains("cannot open as a video"), "{err}");
    let empty = d.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    assert!(open(&empty).is_err());
    // A truncated file either does not open or cannot deliver the later frames.
    let trunc = d.join("trunc.mp4");
    std::fs::write(&trunc, &bytes[..bytes.len() / 3]).unwrap();
    if let Ok(mut src) = open(&trunc) {
        let spec = SnippetSpec {
            length: 16,
            offset: 0,
            step: 1,
        };
        let r = load_snippet(src.as_mut(), &spec, ShortPolicy::Skip, &Preprocess::port());
        assert!(r.is_err() || r.unwrap().frames.iter().map(decoded_index).eq(0..16));
    }
    assert!(matches!(
        open(&d.join("missing.mp4")),
        Err(SnippetError::Open { .. })
    ));
    // Image directories: mixed sizes, non-images, empty.
    let frames = d.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    image::RgbImage::new(8, 6)
        .save(frames.join("a.png"))
        .unwrap();
    image::RgbImage::new(8, 4)
        .save(frames.join("b.png"))
        .unwrap();
    let err = open(&frames).err().unwrap().to_string();
    assert!(err.contains("differ in size"), "{err}");
    std::fs::remove_file(frames.join("b.png")).unwrap();
    std::fs::write(frames.join("notes.txt"), "hello").unwrap();
    let err = open(&frames).err().unwrap().to_string();
    assert!(err.contains("is not a PNG or JPEG"), "{err}");
    std::fs::write(frames.join("notes.txt"), "").unwrap();
    std::fs::remove_file(frames.join("notes.txt")).unwrap();
    std::fs::write(frames.join("c.png"), b"not really a png").unwrap();
    let err = open(&frames).err().unwrap().to_string();
    assert!(err.contains("not a readable image"), "{err}");
    let empty_dir = d.join("none");
    std::fs::create_dir_all(&empty_dir).unwrap();
    assert!(open(&empty_dir)
        .err()
        .unwrap()
        .to_string()
        .contains("no frames"));
}

/// A linear ramp survives bilinear resizing exactly, so the expected pixel of each preset
/// follows from the definitions alone: `u = (x + 0.5) in / out - 0.5` clamped to the image.
#[test]
fn presets_give_independently_computed_pixels() {
    let (w, h) = (240usize, 180usize);
    let mut data = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&[(x % 256) as u8, (y % 256) as u8, 77]);
        }
    }
    let frame = RgbFrame {
        width: w,
        height: h,
        data,
    };
    let src_coord = |o: usize, n_in: usize, n_out: usize| {
        ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).clamp(0.0, (n_in - 1) as f64)
    };
    for preset in [Preprocess::caffe(), Preprocess::port()] {
        let t = preprocess(&[frame.clone(), frame.clone()], &preset).unwrap();
        assert_eq!(t.shape(), [3, 2, 112, 112]);
        let [rh, rw] = preset.resize;
        let ([top, left], _) = preset.crop;
        for &(y, x) in &[(0usize, 0usize), (5, 100), (111, 111), (56, 3)] {
            let red = src_coord(left + x, w, rw);
            let green = src_coord(top + y, h, rh);
            let rgb = [red, green, 77.0];
            for c in 0..3 {
                // caffe: channel 0 is blue; port: channel 0 is red.
                let src = if preset.name == "caffe" { 2 - c } else { c };
                let want = rgb[src] - f64::from(preset.mean[c]);
                let got = f64::from(t.data()[((c * 2 + 1) * 112 + y) * 112 + x]);
                assert!(
                    (got - want).abs() < 1e-3,
                    "{} c{c} ({y},{x}): {got} vs {want}",
                    preset.name
                );
            }
        }
    }
}

#[test]
fn a_per_voxel_mean_is_cropped_like_the_frames() {
    let frame = RgbFrame {
        width: 171,
        height: 128,
        data: (0..171 * 128 * 3).map(|i| (i % 251) as u8).collect(),
    };
    // A mean that is the per-channel mean everywhere reproduces the plain preset exactly.
    let caffe = Preprocess::caffe();
    let flat: Vec<f32> = (0..3)
        .flat_map(|c| std::iter::repeat_n(caffe.mean[c], 2 * 128 * 171))
        .collect();
    let flat = HostTensor::new(vec![1, 3, 2, 128, 171], flat).unwrap();
    let with = caffe.clone().with_voxel_mean(&flat).unwrap();
    let frames = [frame.clone(), frame.clone()];
    assert_eq!(
        preprocess(&frames, &with).unwrap(),
        preprocess(&frames, &caffe).unwrap()
    );
    assert_eq!(with.low().len(), 3 * 2 * 112 * 112);
    // A mean that encodes its own coordinates: the value subtracted at network voxel
    // (c, t, y, x) is the mean's (c, t, 8 + y, 29 + x).
    let code =
        |c: usize, t: usize, y: usize, x: usize| (c * 1_000_000 + t * 100_000 + y * 200 + x) as f32;
    let mut coded = Vec::new();
    for c in 0..3 {
        for t in 0..2 {
            for y in 0..128 {
                for x in 0..171 {
                    coded.push(code(c, t, y, x));
                }
            }
        }
    }
    let coded = HostTensor::new(vec![3, 2, 128, 171], coded).unwrap();
    let with = caffe.clone().with_voxel_mean(&coded).unwrap();
    let plain = preprocess(&frames, &caffe).unwrap();
    let got = preprocess(&frames, &with).unwrap();
    for &(c, t, y, x) in &[(0, 0, 0, 0), (2, 1, 111, 111), (1, 0, 50, 7)] {
        let i = ((c * 2 + t) * 112 + y) * 112 + x;
        let want = plain.data()[i] + caffe.mean[c] - code(c, t, 8 + y, 29 + x);
        assert_eq!(got.data()[i], want, "({c},{t},{y},{x})");
        assert_eq!(with.low()[i], -code(c, t, 8 + y, 29 + x));
    }
    // Three frames against a two-frame mean: an error that names the fix.
    let e = preprocess(&[frame.clone(), frame.clone(), frame], &with).unwrap_err();
    assert!(e.contains("must have 2 frames"), "{e}");
    let wrong = HostTensor::zeros(vec![1, 3, 2, 112, 112]);
    assert!(caffe.with_voxel_mean(&wrong).is_err());
}

#[test]
fn real_tennis_frames_load_through_the_caffe_preset() {
    let Some(dir) = vidlrp_conformance::environment::shared(
        "real_tennis_frames_load_through_the_caffe_preset",
        "data/sports1m-sample/roger",
    ) else {
        return;
    };
    let mut src = open(&dir).unwrap();
    assert_eq!(src.info().frames, 16);
    let s = load_snippet(
        src.as_mut(),
        &SnippetSpec::default(),
        ShortPolicy::Skip,
        &Preprocess::caffe(),
    )
    .unwrap();
    assert_eq!(s.input.shape(), [3, 16, 112, 112]);
    let caffe = Preprocess::caffe();
    let (low, high) = (caffe.low(), caffe.high());
    let plane = 16 * 112 * 112;
    for (i, v) in s.input.data().iter().enumerate() {
        let c = i / plane;
        assert!(*v >= low[c] - 1e-3 && *v <= high[c] + 1e-3);
    }
}

#[test]
fn our_video_writer_round_trips_every_frame() {
    let d = tmp("writer");
    let p = d.join("w.mp4");
    let frames: Vec<RgbFrame> = (0..20).map(|i| coded_frame(i, 64, 48)).collect();
    write_video(&p, &frames, 25, 8).unwrap();
    let mut src = open(&p).unwrap();
    // Every frame is written once, with its duration, so the last one is not trimmed: the
    // count is the frames given, and every index below it can be read.
    assert_eq!(src.info().frames, 20);
    let got = src.read(&(0..20).collect::<Vec<_>>()).unwrap();
    assert_eq!(
        got.iter().map(decoded_index).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    let tail = src.read(&[17, 18, 19]).unwrap();
    assert_eq!(
        tail.iter().map(decoded_index).collect::<Vec<_>>(),
        [17, 18, 19]
    );
    assert!(write_video(&d.join("odd.mp4"), &[coded_frame(0, 63, 48)], 25, 8).is_err());
    assert!(!d.join("odd.mp4").exists());
}

#[test]
fn a_file_without_video_frames_is_refused() {
    let d = tmp("novideo");
    let p = d.join("audio.mp4");
    let ok = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=8000:cl=mono",
            "-t",
            "0.5",
        ])
        .arg(&p)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let err = open(&p).err().expect("no video stream").to_string();
    assert!(
        err.contains("cannot open as a video") && err.contains("Stream not found"),
        "{err}"
    );
}

#[test]
fn npy_frames_are_a_source_too() {
    let d = tmp("npy");
    let p = d.join("frames.npy");
    let frames: Vec<u8> = (0..5).flat_map(|i| coded_frame(i, 20, 10).data).collect();
    {
        use npyz::WriterBuilder;
        let f = std::fs::File::create(&p).unwrap();
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[5, 10, 20, 3])
            .writer(f)
            .begin_nd()
            .unwrap();
        w.extend(frames.iter().copied()).unwrap();
        w.finish().unwrap();
    }
    let mut src = open(&p).unwrap();
    assert_eq!(
        (
            src.info().kind,
            src.info().frames,
            src.info().width,
            src.info().height
        ),
        ("npy", 5, 20, 10)
    );
    let got = src.read(&[1, 1, 4]).unwrap();
    assert_eq!(
        got.iter().map(decoded_index).collect::<Vec<_>>(),
        vec![1, 1, 4]
    );
}
