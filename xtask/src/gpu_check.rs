//! `cargo xtask gpu-check`: everything the first run on a GPU must show, in one command and
//! one report (`REPORT.md` and `report.json` in `--out`).
//!
//! Stages, each timed and logged (`<stage>.log`), none stopping the others:
//! 1. environment: CUDA driver and NVRTC versions (an NVRTC newer than the driver writes PTX
//!    the driver cannot load), devices;
//! 2. conformance: `xtask conformance` (goldens, random models, every op against the
//!    reference; on a GPU the CUDA backend too);
//! 3. full-width C3D on the device against the CPU backend at batch 1 (several column tiles
//!    per convolution), and sample 0 of a batch against the same clip alone (several grid
//!    waves at batch 32);
//! 4. `xtask bench`: forward and DTD at batch 1 and N against PyTorch + Zennit on the same
//!    device;
//! 5. `xtask bench-dataset`: a `sweep-steps` run against the PyAV/NumPy + Zennit pipeline.
//!
//! With `--device cpu` it runs end to end on any machine (smaller batch and data set), so the
//! script is exercised where no GPU is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use vidlrp_c3d::{init_weights, C3dSpec, Pool5};
use vidlrp_core::{Backend, Composite, HostTensor, Target};
use vidlrp_cpu::Cpu;
use vidlrp_rng::Rng;
use vidlrp_snippet::Preprocess;
// Every agreement check's tolerance, of the largest |R| of the reference: conformance's own.
use vidlrp_conformance::TOLERANCE;

#[derive(clap::Args)]
pub struct Args {
    /// cuda, cuda:N, or cpu (a dry run of every stage on the CPU).
    #[arg(long, default_value = "cuda")]
    device: String,
    /// Report and logs.
    #[arg(long, default_value = "target/gpu-check")]
    out: PathBuf,
    /// Python with torch, zennit, numpy (and av for mp4 videos).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Run the benchmarks without the PyTorch side (a machine without torch; nothing is
    /// compared there).
    #[arg(long)]
    ours_only: bool,
    /// A prebuilt vidlrp binary (built with `--features cuda` for a GPU); default: build one.
    #[arg(long)]
    vidlrp: Option<PathBuf>,
    /// The large batch (default: 32 on a GPU, 2 on the CPU).
    #[arg(long)]
    batch: Option<usize>,
    /// Videos of the data-set benchmark (default: 8 on a GPU, 2 on the CPU).
    #[arg(long)]
    videos: Option<usize>,
    /// Steps of the data-set benchmark (default: 1,8 on a GPU, 1,2 on the CPU).
    #[arg(long)]
    steps: Option<String>,
    /// Video format of the data-set benchmark: npy (no FFmpeg needed) or mp4.
    #[arg(long, default_value = "npy")]
    format: String,
}

struct Stage {
    name: &'static str,
    ok: bool,
    seconds: f64,
    summary: String,
    data: Value,
}

/// Runs `cmd`, its stdout and stderr into `log`; whether it succeeded.
fn logged(cmd: &mut Command, log: &Path) -> Result<bool> {
    let file = std::fs::File::create(log)?;
    let status = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    Ok(status.success())
}

fn environment(a: &Args) -> Stage {
    let v = vidlrp_cuda::versions();
    let devices = vidlrp_cuda::device_count();
    let smi = Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,driver_version,memory.total",
            "--format=csv,noheader",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let mut summary = format!("{v}; {devices} CUDA device(s)");
    if let Some(s) = &smi {
        summary.push_str(&format!("; nvidia-smi: {s}"));
    }
    let mut ok = true;
    if v.nvrtc_newer_than_driver() {
        summary.push_str(
            "; NVRTC is newer than the driver: its PTX cannot be loaded (put an older NVRTC \
             first on LD_LIBRARY_PATH)",
        );
        ok = false;
    }
    if a.device != "cpu" && devices == 0 {
        summary.push_str("; no CUDA device: the CUDA stages will fail");
        ok = false;
    }
    Stage {
        name: "environment",
        ok,
        seconds: 0.0,
        summary,
        data: json!({"driver": v.driver, "nvrtc": v.nvrtc, "devices": devices, "nvidia_smi": smi}),
    }
}

/// `max |a - b| / max |b|` ([`vidlrp_conformance::max_errors`]: a NaN difference is infinite).
fn relative(a: &[f32], b: &[f32]) -> f64 {
    let (err, scale) = vidlrp_conformance::max_errors(a, b);
    if scale > 0.0 {
        err / scale
    } else {
        err
    }
}

/// Full-width C3D: `dev` against `cpu` on one clip (DTD, SA), and sample 0 of a batch of
/// `batch` clips on `dev` against that clip alone (DTD).
fn large_cases<B: Backend>(dev: &B, cpu: &Cpu, batch: usize) -> Result<Vec<(String, f64)>> {
    let weights = init_weights(&C3dSpec::full(), 0);
    let caffe = Preprocess::caffe();
    let clip = |n: usize| -> Result<HostTensor> {
        let mut rng = Rng::new(42);
        let plane = 16 * 112 * 112;
        let one: Vec<f32> = (0..3 * plane)
            .map(|i| (rng.uniform() * 255.0) as f32 - caffe.mean[i / plane])
            .collect();
        // Sample 0 is the clip; the others are shifted copies (different, same range).
        let data = (0..n)
            .flat_map(|s| one.iter().map(move |v| if s == 0 { *v } else { *v * 0.5 }))
            .collect();
        Ok(HostTensor::new(vec![n, 3, 16, 112, 112], data)?)
    };
    let dtd = Composite::dtd(caffe.low(), caffe.high());
    let sa = Composite::sensitivity();
    let (net_dev, _) = vidlrp_c3d::build(dev, weights.clone(), Pool5::Port, [3, 16, 112, 112])?;
    let (net_cpu, _) = vidlrp_c3d::build(cpu, weights, Pool5::Port, [3, 16, 112, 112])?;
    let one = clip(1)?;
    let (xd, xc) = (dev.upload(&one)?, cpu.upload(&one)?);
    let mut cases = Vec::new();
    let on_dev = net_dev.explain_each(dev, &xd, &Target::TopOne, &[&dtd, &sa])?;
    let on_cpu = net_cpu.explain_each(cpu, &xc, &Target::TopOne, &[&dtd, &sa])?;
    for ((name, d), c) in ["dtd", "sa"].iter().zip(&on_dev).zip(&on_cpu) {
        cases.push((
            format!("full C3D {name}, batch 1, {} vs {}", dev.name(), cpu.name()),
            relative(d.relevance.data(), c.relevance.data()),
        ));
    }
    let many = clip(batch)?;
    let e = net_dev.explain(dev, &dev.upload(&many)?, &Target::TopOne, &dtd)?;
    let n = one.len();
    cases.push((
        format!(
            "full C3D dtd, sample 0 of batch {batch} vs alone, {}",
            dev.name()
        ),
        relative(&e.relevance.data()[..n], on_dev[0].relevance.data()),
    ));
    Ok(cases)
}

fn large(a: &Args, batch: usize) -> Stage {
    let start = Instant::now();
    let result = (|| -> Result<Vec<(String, f64)>> {
        match a.device.as_str() {
            // On the CPU: all threads against one thread (different work splits).
            "cpu" => large_cases(&Cpu::new(0)?, &Cpu::new(1)?, batch),
            d => {
                let be = vidlrp_cuda::Cuda::new(crate::cuda_ordinal(d)?)?;
                large_cases(&be, &Cpu::new(0)?, batch)
            }
        }
    })();
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(cases) => {
            let ok = cases.iter().all(|(_, r)| *r <= TOLERANCE);
            let summary = cases
                .iter()
                .map(|(c, r)| {
                    format!(
                        "{c}: {r:.2e} {}",
                        if *r <= TOLERANCE { "ok" } else { "FAIL" }
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            Stage {
                name: "full-width",
                ok,
                seconds,
                summary,
                data: json!(cases),
            }
        }
        Err(e) => Stage {
            name: "full-width",
            ok: false,
            seconds,
            summary: format!("error: {e:#}"),
            data: Value::Null,
        },
    }
}

/// The current time as `YYYY-MM-DD HH:MM` (UTC), from the days-since-epoch civil calendar
/// conversion (Howard Hinnant's `civil_from_days`).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        (rest % 3600) / 60
    )
}

fn read_json(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

pub fn run(a: Args) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&a.out)?;
    let gpu = a.device != "cpu";
    let batch = a.batch.unwrap_or(if gpu { 32 } else { 2 });
    let videos = a.videos.unwrap_or(if gpu { 8 } else { 2 });
    let steps = a
        .steps
        .clone()
        .unwrap_or_else(|| if gpu { "1,8" } else { "1,2" }.into());
    let exe = std::env::current_exe()?;
    let mut stages = vec![environment(&a)];
    eprintln!("gpu-check: {}", stages[0].summary);

    eprintln!("gpu-check: conformance");
    let start = Instant::now();
    let log = a.out.join("conformance.log");
    let ok = logged(Command::new(&exe).arg("conformance"), &log)?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("backend") || l.contains("FAIL") || l.contains("within"))
        .collect();
    stages.push(Stage {
        name: "conformance",
        ok,
        seconds: start.elapsed().as_secs_f64(),
        summary: lines.join("; "),
        data: json!(lines),
    });

    eprintln!("gpu-check: full-width C3D against the CPU, batch {batch}");
    stages.push(large(&a, batch));

    eprintln!("gpu-check: bench (forward, dtd; batch 1 and {batch}) against PyTorch + Zennit");
    let start = Instant::now();
    let bench_dir = a.out.join("bench");
    let ok = logged(
        Command::new(&exe)
            .args(["bench", "--device", &a.device, "--tasks", "forward,dtd"])
            .args([
                "--batch",
                &format!("1,{batch}"),
                "--rounds",
                "1",
                "--repeat",
                "2",
            ])
            .args(["--python", &a.python])
            .args(a.ours_only.then_some("--ours-only"))
            .arg("--dir")
            .arg(&bench_dir),
        &a.out.join("bench.log"),
    )?;
    let report = read_json(&bench_dir.join("report.json"));
    let mut summary = Vec::new();
    let mut targets_ok = ok;
    for row in report["rows"].as_array().into_iter().flatten() {
        if row["batch"].as_u64() != Some(batch as u64) {
            continue;
        }
        let ratio = row["ratio"].as_f64();
        let line = format!(
            "{} batch {batch}: ours/torch time {}",
            row["task"].as_str().unwrap_or("?"),
            ratio.map_or("n/a".into(), |r| format!("{r:.2}"))
        );
        if gpu && row["task"] == "dtd" {
            let ours = row["vidlrp"]["gpu_in_use_mb"].as_f64();
            let theirs = row["torch"]["peak_gpu_mb"].as_f64();
            // Target: at least 1.5x Zennit's throughput, and less GPU memory.
            targets_ok &= ratio.is_some_and(|r| r <= 1.0 / 1.5);
            summary.push(format!(
                "{line} (target <= 0.67); GPU memory ours {} MB in use vs Zennit {} MB peak",
                ours.map_or("?".into(), |v| format!("{v:.0}")),
                theirs.map_or("?".into(), |v| format!("{v:.0}"))
            ));
        } else {
            summary.push(line);
        }
    }
    stages.push(Stage {
        name: "bench",
        ok: targets_ok,
        seconds: start.elapsed().as_secs_f64(),
        summary: summary.join("; "),
        data: report,
    });

    eprintln!(
        "gpu-check: bench-dataset ({videos} videos, steps {steps}, {})",
        a.format
    );
    let start = Instant::now();
    let data_dir = a.out.join("bench-dataset");
    let mut cmd = Command::new(&exe);
    cmd.args([
        "bench-dataset",
        "--device",
        &a.device,
        "--python",
        &a.python,
    ])
    .args(["--videos", &videos.to_string(), "--steps", &steps])
    .args(["--format", &a.format])
    .args(a.ours_only.then_some("--ours-only"))
    .arg("--dir")
    .arg(&data_dir);
    if let Some(v) = &a.vidlrp {
        cmd.arg("--vidlrp").arg(v);
    }
    let ok = logged(&mut cmd, &a.out.join("bench-dataset.log"))?;
    let report = read_json(&data_dir.join("report.json"));
    stages.push(Stage {
        name: "bench-dataset",
        ok,
        seconds: start.elapsed().as_secs_f64(),
        summary: format!(
            "throughput ours/python {}, peak RSS ours/python {}, largest share difference per \
             method {}",
            report["throughput_ratio"]
                .as_f64()
                .map_or("n/a".into(), |v| format!("{v:.2}x")),
            report["rss_ratio"]
                .as_f64()
                .map_or("n/a".into(), |v| format!("{v:.2}")),
            report["largest_share_difference"],
        ),
        data: report,
    });

    let total = started.elapsed().as_secs_f64();
    let mut md = format!(
        "# gpu-check\n\ndevice `{}`, {} UTC, {total:.0} s in all (budget on a GPU: 480 s)\n\n\
         | stage | result | seconds | summary |\n|---|---|---|---|\n",
        a.device,
        utc_now()
    );
    for s in &stages {
        md.push_str(&format!(
            "| {} | {} | {:.0} | {} |\n",
            s.name,
            if s.ok { "ok" } else { "FAIL" },
            s.seconds,
            s.summary.replace('|', "/")
        ));
    }
    md.push_str("\nLogs: `conformance.log`, `bench.log`, `bench-dataset.log` beside this file.\n");
    std::fs::write(a.out.join("REPORT.md"), &md)?;
    let data: Vec<Value> = stages
        .iter()
        .map(|s| json!({"stage": s.name, "ok": s.ok, "seconds": s.seconds, "summary": s.summary, "data": s.data}))
        .collect();
    std::fs::write(
        a.out.join("report.json"),
        serde_json::to_string_pretty(
            &json!({"device": a.device, "seconds": total, "stages": data}),
        )?,
    )?;
    print!("{md}");
    let failed: Vec<&str> = stages.iter().filter(|s| !s.ok).map(|s| s.name).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("gpu-check: failed stage(s): {}", failed.join(", "))
    }
}
