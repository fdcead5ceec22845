//! `cargo xtask bench-dataset`: a whole `vidlrp sweep-steps` run against the Python pipeline a
//! researcher would write (PyAV decoding, the caffe preset in torch, Zennit), same videos, same
//! weights, same work, same invocation.
//!
//! Both sides run as child processes; each one's peak RSS is read from `wait4` (the kernel's
//! count of the child's own high-water mark), and both report the time spent in explanations,
//! so the share of the run that is not compute (decoding, set-up, output) is visible.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vidlrp_c3d::{init_weights, C3dSpec};

#[derive(clap::Args)]
pub struct Args {
    /// Python with torch, zennit and av (PyAV); an error without them, unless --ours-only.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Time ours alone, without the Python pipeline (nothing compared).
    #[arg(long)]
    ours_only: bool,
    /// The largest difference of an SA frame share allowed between the two sides (the same
    /// computation; 4.8e-5 measured: float32 sums in another order). DTD is reported, not
    /// held to it: Zennit's composite routes max pooling to the winner, ours splits it.
    #[arg(long, default_value_t = 1e-3)]
    tolerance: f64,
    /// Where ours and PyTorch run: cpu, cuda or cuda:N (ours is built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Videos in the manifest (640x360, 25 fps, long enough for the largest step).
    #[arg(long, default_value_t = 8)]
    videos: usize,
    /// Step sizes of the sweep (the paper's: 0,1,2,4,8,16,32; the default keeps the run to
    /// minutes on two cores and still needs the frames of step 32).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    steps: Vec<usize>,
    /// Methods of the sweep.
    #[arg(long, default_value = "dtd,sa,dtd-u")]
    methods: String,
    /// Threads for both sides (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Working directory (videos, weights, outputs; never committed).
    #[arg(long, default_value = "target/bench-dataset")]
    dir: PathBuf,
    /// The vidlrp binary to time (default: build it with `cargo build --release`).
    #[arg(long)]
    vidlrp: Option<PathBuf>,
    /// Video files: mp4 (H.264, decoded by FFmpeg on our side and PyAV on theirs) or npy
    /// (uint8 frame arrays: no FFmpeg needed, e.g. on a GPU machine without it).
    #[arg(long, default_value = "mp4")]
    format: String,
}

/// Snippet length and the frames a video needs for `max_step`.
const LENGTH: usize = 16;

fn prepare(a: &Args) -> Result<PathBuf> {
    let videos = a.dir.join("videos");
    std::fs::create_dir_all(&videos)?;
    let spec = C3dSpec::full();
    for (name, seed) in [("c3d.safetensors", 1), ("untrained.safetensors", 0)] {
        let w = a.dir.join(name);
        if !w.exists() {
            eprintln!(
                "bench-dataset: writing full-width C3D (seed {seed}) to {}",
                w.display()
            );
            vidlrp_io::write_safetensors(&w, &init_weights(&spec, seed))?;
        }
    }
    let max_step = a.steps.iter().copied().max().unwrap_or(1);
    let frames = (LENGTH - 1) * max_step + 1;
    let synth = vidlrp_synth::SynthSpec {
        classes: 8,
        videos: a.videos.max(8),
        frames,
        test_frames: None,
        width: 640,
        height: 360,
        fps: 25,
        seed: 7,
        title_share: 0.0,
        distractors: 2,
        split: [70, 15, 15],
        format: vidlrp_synth::VideoFormat::Mp4,
        action_share: 1.0,
    };
    let ext = match a.format.as_str() {
        "mp4" | "npy" => a.format.as_str(),
        f => bail!("--format {f}: expected mp4 or npy"),
    };
    let names: Vec<String> = (0..a.videos)
        .map(|i| format!("{i:03}-{frames}.{ext}"))
        .collect();
    let missing: Vec<usize> = (0..a.videos)
        .filter(|&i| !videos.join(&names[i]).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "bench-dataset: rendering {} video(s) of {frames} frames, 640x360",
            missing.len()
        );
    }
    // Rendered on every core; each file's bytes depend only on its index.
    use rayon::prelude::*;
    missing.par_iter().try_for_each(|&i| -> Result<()> {
        let (rendered, _) = vidlrp_synth::render(&synth, i, i % 8, frames);
        let tmp = videos.join(format!(".{}", names[i]));
        if ext == "npy" {
            write_frames_npy(&tmp, &rendered)?;
        } else {
            write_mp4(&tmp, &rendered)?;
        }
        std::fs::rename(&tmp, videos.join(&names[i]))?;
        Ok(())
    })?;
    let mut manifest = String::from("path,label\n");
    for (i, name) in names.iter().enumerate() {
        manifest.push_str(&format!("videos/{name},{}\n", i % 8));
    }
    let m = a.dir.join("manifest.csv");
    std::fs::write(&m, manifest)?;
    Ok(m)
}

#[cfg(feature = "video")]
fn write_mp4(path: &Path, frames: &[vidlrp_snippet::RgbFrame]) -> Result<()> {
    Ok(vidlrp_snippet::write_video(path, frames, 25, 50)?)
}

#[cfg(not(feature = "video"))]
fn write_mp4(_: &Path, _: &[vidlrp_snippet::RgbFrame]) -> Result<()> {
    bail!("this xtask was built without the `video` feature: use --format npy")
}

/// Frames as a `uint8` `.npy` array `(T, H, W, 3)` (what `vidlrp_snippet` reads as a video).
fn write_frames_npy(path: &Path, frames: &[vidlrp_snippet::RgbFrame]) -> Result<()> {
    use std::io::Write;
    let (h, w) = frames.first().map_or((0, 0), |f| (f.height, f.width));
    let mut header = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {h}, {w}, 3), }}",
        frames.len()
    );
    // Magic (6) + version (2) + length (2) + header + newline: a multiple of 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&u16::try_from(header.len())?.to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for frame in frames {
        f.write_all(&frame.data)?;
    }
    f.flush()?;
    Ok(())
}

/// Runs `cmd` to the end; its stdout's last line as JSON, its wall time and peak RSS (MB).
fn run_child(cmd: &mut Command) -> Result<(Value, f64, f64)> {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let mut status = 0;
    // SAFETY: `rusage` is plain data the kernel fills; `pid` is our own unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    if waited != pid {
        bail!("waiting for {cmd:?}: {}", std::io::Error::last_os_error());
    }
    let out = reader.join().expect("reader thread")?;
    let status = std::process::ExitStatus::from_raw(status);
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    let line = out.lines().last().unwrap_or_default();
    let json = serde_json::from_str(line).with_context(|| format!("bad JSON from {cmd:?}"))?;
    // ru_maxrss is in kilobytes on Linux.
    Ok((json, wall, usage.ru_maxrss as f64 / 1024.0))
}

/// Our shares from `shares.csv`: (condition, item) -> r_t.
fn our_shares(path: &Path) -> Result<Vec<(String, usize, Vec<f64>)>> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let shares = f[3..]
            .iter()
            .map(|v| v.parse::<f64>())
            .collect::<Result<Vec<_>, _>>()?;
        rows.push((f[0].to_string(), f[1].parse()?, shares));
    }
    Ok(rows)
}

pub fn run(a: Args) -> Result<()> {
    let threads = if a.threads == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        a.threads
    };
    let root = crate::repo_root();
    let vidlrp = match &a.vidlrp {
        Some(p) => p.clone(),
        None => {
            let mut build = Command::new(env!("CARGO"));
            build
                .current_dir(&root)
                .args(["build", "--release", "-p", "vidlrp-cli"]);
            if a.device.starts_with("cuda") {
                build.args(["--features", "cuda"]);
            }
            if !build.status()?.success() {
                bail!("cannot build vidlrp");
            }
            root.join("target/release/vidlrp")
        }
    };
    let manifest = prepare(&a)?;
    let steps: Vec<String> = a.steps.iter().map(ToString::to_string).collect();
    let steps = steps.join(",");
    let methods = a.methods.split(',').count();
    let snippets = a.videos * a.steps.len() * methods;
    println!(
        "sweep-steps over {} videos (640x360, 25 fps) x steps {steps} x {} = {snippets} \
         snippets, full-width C3D, device {}, {threads} threads",
        a.videos, a.methods, a.device
    );

    let out = a.dir.join("ours");
    let _ = std::fs::remove_dir_all(&out);
    let (ours, ours_wall, ours_rss) = run_child(
        Command::new(&vidlrp)
            .arg("sweep-steps")
            .arg("--manifest")
            .arg(&manifest)
            .arg("--weights")
            .arg(a.dir.join("c3d.safetensors"))
            .args([
                "--preset",
                "caffe",
                "--methods",
                &a.methods,
                "--steps",
                &steps,
            ])
            .args(["--bootstrap", "0", "--seed", "0", "--device", &a.device])
            .args(["--threads", &threads.to_string()])
            .arg("--json")
            .arg("--out")
            .arg(&out),
    )?;
    println!("(ours: {})", vidlrp.display());
    let ours_explain = ours["timing"]["explain_s"].as_f64().unwrap_or(f64::NAN);

    let have_python = !a.ours_only
        && Command::new(&a.python)
            .args([
                "-c",
                if a.format == "mp4" {
                    "import torch, zennit, numpy, av"
                } else {
                    "import torch, zennit, numpy"
                },
            ])
            .output()
            .is_ok_and(|o| o.status.success());
    let theirs = if have_python {
        Some(run_child(
            Command::new(&a.python)
                .arg(root.join("benches/torch_dataset_bench.py"))
                .arg("--manifest")
                .arg(&manifest)
                .arg("--weights")
                .arg(a.dir.join("c3d.safetensors"))
                .arg("--untrained")
                .arg(a.dir.join("untrained.safetensors"))
                .args(["--steps", &steps, "--methods", &a.methods])
                .args(["--threads", &threads.to_string(), "--device", &a.device]),
        )?)
    } else if a.ours_only {
        None
    } else {
        bail!(
            "{} cannot import torch, zennit, numpy (and av for mp4): there is nothing to \
             compare with (install them, point --python at a Python that has them, or pass \
             --ours-only)",
            a.python
        );
    };

    println!(
        "{:<8} {:>10} {:>12} {:>13} {:>14} {:>12}",
        "side", "wall s", "snippets/s", "explaining s", "wall/explain", "peak RSS MB"
    );
    let row = |side: &str, wall: f64, explain: f64, rss: f64| {
        println!(
            "{side:<8} {wall:>10.1} {:>12.3} {explain:>13.1} {:>14.3} {rss:>12.0}",
            snippets as f64 / wall,
            wall / explain
        );
    };
    row("vidlrp", ours_wall, ours_explain, ours_rss);
    let mut report = json!({
        "device": a.device, "threads": threads, "videos": a.videos, "steps": a.steps,
        "methods": a.methods, "snippets": snippets,
        "vidlrp": {"wall_s": ours_wall, "explain_s": ours_explain, "peak_rss_mb": ours_rss},
    });
    if let Some((theirs, wall, rss)) = &theirs {
        let explain = theirs["explain_s"].as_f64().unwrap_or(f64::NAN);
        row("python", *wall, explain, *rss);
        println!(
            "throughput ours / python: {:.2}x; peak RSS ours / python: {:.2}; decoding in \
             python: {:.1} s",
            wall / ours_wall,
            ours_rss / rss,
            theirs["decode_s"].as_f64().unwrap_or(f64::NAN)
        );
        // The same work: every (condition, video) share vector on both sides, the largest
        // difference per method. SA is the same computation on both sides; DTD differs in
        // one rule: Zennit's composite passes max-pool relevance to the winner (its gradient),
        // ours splits it in proportion to the inputs (method.md's proportional pooling).
        let mine = our_shares(&out.join("shares.csv"))?;
        let mut worst: std::collections::BTreeMap<String, (f64, String)> = Default::default();
        let mut compared = 0;
        for s in theirs["shares"].as_array().into_iter().flatten() {
            let (cond, item) = (s["condition"].as_str().unwrap_or(""), s["item"].as_u64());
            let Some((_, _, r)) = mine
                .iter()
                .find(|(c, i, _)| c == cond && Some(*i as u64) == item)
            else {
                bail!("ours has no record of {cond} on item {item:?}");
            };
            let method = cond.split(' ').next().unwrap_or(cond).to_string();
            let w = worst.entry(method).or_insert((0.0, String::new()));
            for (x, y) in r.iter().zip(s["shares"].as_array().into_iter().flatten()) {
                let d = (x - y.as_f64().unwrap_or(f64::NAN)).abs();
                if d > w.0 || d.is_nan() {
                    *w = (d, format!("{cond}, item {}", item.unwrap_or(0)));
                }
            }
            compared += 1;
        }
        println!(
            "same work: {compared} share vectors compared; largest |r_t(ours) - r_t(python)|:"
        );
        for (method, (d, at)) in &worst {
            let note = if method == "sa" {
                "the same computation"
            } else {
                "max pooling: ours proportional (the paper), Zennit's composite winner-take-all"
            };
            println!("  {method:<6} {d:.2e} ({at}; {note})");
        }
        // The check that can fail: SA on both sides within the tolerance, and something
        // compared at all.
        let sa = worst.get("sa").map(|w| w.0);
        match sa {
            None => bail!("no SA share vector was compared: the check compared nothing"),
            Some(d) if d.is_nan() || d > a.tolerance => bail!(
                "SA frame shares differ by {d:.2e} between the two sides, more than the \
                 tolerance {:.0e} (the same computation)",
                a.tolerance
            ),
            Some(_) => {}
        }
        report["largest_share_difference"] = json!(worst
            .iter()
            .map(|(m, (d, _))| (m.clone(), *d))
            .collect::<std::collections::BTreeMap<_, _>>());
        report["python"] = json!({"wall_s": wall, "explain_s": explain, "peak_rss_mb": rss,
            "decode_s": theirs["decode_s"], "torch": theirs["torch"]});
        report["throughput_ratio"] = json!(wall / ours_wall);
        report["rss_ratio"] = json!(ours_rss / rss);
    }
    let path = a.dir.join("report.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("(report: {})", path.display());
    Ok(())
}
