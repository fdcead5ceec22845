//! `cargo xtask bench`: full-width C3D, ours against PyTorch/Zennit on the same machine, same run.
//!
//! Every measurement runs in a fresh process (ours: `cargo xtask bench-worker`, theirs:
//! `benches/torch_bench.py`), so each peak RSS is that task's own.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vidlrp_c3d::{init_weights, C3dSpec, Pool5};
use vidlrp_core::{Backend, Composite, HostTensor, Target};
use vidlrp_cpu::Cpu;
use vidlrp_rng::Rng;
use vidlrp_snippet::Preprocess;

#[derive(clap::Args)]
pub struct Args {
    /// Threads for both sides (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Clips per batch (above 1, ours also runs batch 1 in every round and the per-clip times
    /// are compared).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed repetitions per task and process (the minimum is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Rounds per task, each a fresh process of ours then of theirs (the minimum is reported).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Python with torch and zennit (skipped when it cannot import them).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Working directory for the generated weights and clip (never committed).
    #[arg(long, default_value = "target/bench")]
    dir: PathBuf,
    /// Tasks to run.
    #[arg(long, value_delimiter = ',', default_value = "forward,dtd,sa")]
    tasks: Vec<String>,
    /// Where both sides run: cpu, cuda or cuda:N (PyTorch on the same GPU).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Run one task in this process and print its JSON (used by `bench` itself).
    #[arg(long, hide = true)]
    worker: Option<String>,
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Multiply-adds x 2 of one full-width C3D forward pass on a 3x16x112x112 clip: the eight
/// 3x3x3 "same" convolutions (extents halved by the pools as in C3D) and the three dense layers.
fn c3d_forward_flops() -> f64 {
    let spec = C3dSpec::full();
    // Extent (T, H, W) seen by each convolution: pool1 halves H, W; pool2..4 halve all three.
    let extents = [
        [16, 112, 112],
        [16, 56, 56],
        [8, 28, 28],
        [8, 28, 28],
        [4, 14, 14],
        [4, 14, 14],
        [2, 7, 7],
        [2, 7, 7],
    ];
    let mut c_in = spec.in_channels;
    let mut flops = 0.0;
    for (i, &c_out) in spec.conv_widths.iter().enumerate() {
        let k: usize = spec.kernels[i].iter().product();
        let p: usize = extents[i].iter().product();
        flops += 2.0 * (c_out * c_in * k * p) as f64;
        c_in = c_out;
    }
    let [f6, f7] = spec.fc_widths;
    flops += 2.0 * (spec.fc6_inputs * f6 + f6 * f7 + f7 * spec.classes) as f64;
    flops
}

/// This machine's single-precision GEMM rate (GFLOP/s) on 2048^3 with `threads` threads: the
/// better of the CPU backend's two GEMMs, best of three: its packed GEMM, and its matrixmultiply
/// path (a dense layer with a batch of 2048).
fn sgemm_gflops(threads: usize) -> Result<f64> {
    let n = 2048;
    let a: Vec<f32> = (0..n * n)
        .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
        .collect();
    let b: Vec<f32> = (0..n * n)
        .map(|i| ((i % 89) as f32 - 44.0) / 89.0)
        .collect();
    let mut c = vec![0.0f32; n * n];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let cpu = Cpu::new(threads)?;
    let x = cpu.upload(&HostTensor::new(vec![n, n], a.clone())?)?;
    let w = cpu.upload(&HostTensor::new(vec![n, n], b.clone())?)?;
    let flops = 2.0 * (n * n * n) as f64;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        pool.install(|| {
            let out = vidlrp_cpu::gemm::Output {
                data: &mut c,
                ldc: n,
            };
            let packer = vidlrp_cpu::gemm::RowMajor { data: &b, ld: n };
            vidlrp_cpu::gemm::gemm(n, n, n, &a, &packer, out, false);
        });
        best = best.max(flops / start.elapsed().as_secs_f64() / 1e9);
        let start = Instant::now();
        cpu.linear(&x, &w, None)?;
        best = best.max(flops / start.elapsed().as_secs_f64() / 1e9);
    }
    Ok(best)
}

fn worker(a: &Args, task: &str) -> Result<()> {
    if task == "sgemm" {
        println!(
            "{}",
            json!({"task": "sgemm", "gflops": sgemm_gflops(a.threads.max(1))?})
        );
        return Ok(());
    }
    let result = match a.device.as_str() {
        "cpu" => time_task(a, task, &Cpu::new(a.threads)?)?,
        d => {
            let n = crate::cuda_ordinal(d)?;
            let be = vidlrp_cuda::Cuda::new(n)?;
            let mut v = time_task(a, task, &be)?;
            // The pool keeps what the run allocated: in use at the end ~ the run's peak, plus
            // the context (Zennit's figure, max_memory_allocated, excludes its context).
            v["gpu_in_use_mb"] = json!(be.memory_in_use()? as f64 / (1 << 20) as f64);
            v
        }
    };
    println!("{result}");
    Ok(())
}

fn time_task<B: Backend>(a: &Args, task: &str, be: &B) -> Result<Value> {
    let weights = vidlrp_io::read_tensors(&a.dir.join("c3d.safetensors"))?;
    let x = vidlrp_io::read_npy(&a.dir.join(format!("clip-b{}.npy", a.batch)))?;
    let (net, _) = vidlrp_c3d::build(be, weights, Pool5::Port, [3, 16, 112, 112])?;
    let caffe = Preprocess::caffe();
    let composite = match task {
        "dtd" => Some(Composite::dtd(caffe.low(), caffe.high())),
        "sa" => Some(Composite::sensitivity()),
        "forward" => None,
        other => bail!("unknown task {other}"),
    };
    let mut times = Vec::new();
    let mut layers = Value::Null;
    let mut conservation = Value::Null;
    for _ in 0..a.repeat {
        // Every run ends with a download, which waits for the device.
        let start = Instant::now();
        let xb = be.upload(&x)?;
        match &composite {
            Some(c) => {
                let e = net.explain(be, &xb, &Target::TopOne, c)?;
                conservation = json!(e.conservation());
                layers = json!(e
                    .layers
                    .iter()
                    .rev()
                    .map(|l| json!({"layer": l.layer, "rule": l.rule, "forward_s": l.forward_s, "relevance_s": l.relevance_s}))
                    .collect::<Vec<_>>());
            }
            None => {
                be.download(&net.forward(be, &xb)?)?;
            }
        }
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(
        json!({"task": task, "times": times, "peak_rss_mb": peak_rss_mb(), "conservation": conservation, "layers": layers, "backend": be.name()}),
    )
}

/// Writes the seeded weights and the clips of `batches` (each batch's first clip is the same).
fn prepare(a: &Args, batches: &[usize]) -> Result<()> {
    std::fs::create_dir_all(&a.dir)?;
    let w = a.dir.join("c3d.safetensors");
    if !w.exists() {
        eprintln!("bench: writing seeded full-width C3D to {}", w.display());
        vidlrp_io::write_safetensors(&w, &init_weights(&C3dSpec::full(), 0))?;
    }
    for &batch in batches {
        let x = a.dir.join(format!("clip-b{batch}.npy"));
        if !x.exists() {
            let caffe = Preprocess::caffe();
            let mut rng = Rng::new(42);
            let n = batch * 3 * 16 * 112 * 112;
            let plane = 16 * 112 * 112;
            let data = (0..n)
                .map(|i| (rng.uniform() * 255.0) as f32 - caffe.mean[(i / plane) % 3])
                .collect();
            vidlrp_io::write_npy(&x, &HostTensor::new(vec![batch, 3, 16, 112, 112], data)?)?;
        }
    }
    Ok(())
}

fn run_json(cmd: &mut Command) -> Result<Value> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("bad JSON from {cmd:?}: {text}"))
}

fn min_time(v: &Value) -> f64 {
    v["times"].as_array().map_or(f64::NAN, |t| {
        t.iter()
            .filter_map(Value::as_f64)
            .fold(f64::INFINITY, f64::min)
    })
}

pub fn run(a: Args) -> Result<()> {
    if let Some(task) = &a.worker {
        return worker(&a, task);
    }
    // With a batch, ours also runs batch 1 in every round: the per-clip comparison.
    let per_clip = a.batch > 1;
    let batches = if per_clip {
        vec![1, a.batch]
    } else {
        vec![a.batch]
    };
    prepare(&a, &batches)?;
    let threads = if a.threads == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        a.threads
    };
    let exe = std::env::current_exe()?;
    let torch_script = crate::repo_root().join("benches/torch_bench.py");
    let have_torch = Command::new(&a.python)
        .args(["-c", "import torch, zennit"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_torch {
        eprintln!(
            "bench: {} cannot import torch and zennit; timing ours only",
            a.python
        );
    }
    println!(
        "full-width C3D (80M parameters), batch {} x 3x16x112x112, device {}, {threads} threads, \
         min of {} rounds x {} runs",
        a.batch, a.device, a.rounds, a.repeat
    );
    println!(
        "{:<8} {:>10} {:>12} {:>8} {:>14} {:>14}",
        "task", "vidlrp s", "torch s", "ratio", "vidlrp RSS MB", "torch RSS MB"
    );
    let sgemm = if a.device == "cpu" {
        let v = run_json(
            Command::new(&exe)
                .args([
                    "bench",
                    "--worker",
                    "sgemm",
                    "--threads",
                    &threads.to_string(),
                ])
                .arg("--dir")
                .arg(&a.dir),
        )?;
        let g = v["gflops"].as_f64().unwrap_or(f64::NAN);
        println!("machine SGEMM (2048^3, {threads} threads, best of matrixmultiply and ours): {g:.1} GFLOP/s");
        g
    } else {
        f64::NAN
    };
    let forward_gflop = c3d_forward_flops() * a.batch as f64 / 1e9;
    let mut rows = Vec::new();
    for task in &a.tasks {
        // Rounds alternate the two sides, so a slow phase of a shared machine hits both; each
        // side's minimum over all rounds is reported.
        let mut ours_all: Vec<Value> = Vec::new();
        let mut theirs_all: Vec<Value> = Vec::new();
        let mut single_all: Vec<Value> = Vec::new();
        let worker = |batch: usize| {
            run_json(
                Command::new(&exe)
                    .args(["bench", "--worker", task, "--threads", &threads.to_string()])
                    .args(["--device", &a.device])
                    .args([
                        "--batch",
                        &batch.to_string(),
                        "--repeat",
                        &a.repeat.to_string(),
                    ])
                    .arg("--dir")
                    .arg(&a.dir),
            )
        };
        for _ in 0..a.rounds.max(1) {
            let ours = worker(a.batch)?;
            if per_clip {
                single_all.push(worker(1)?);
            }
            let theirs = if have_torch {
                Some(run_json(
                    Command::new(&a.python)
                        .arg(&torch_script)
                        .args([
                            "--task",
                            task,
                            "--threads",
                            &threads.to_string(),
                            "--repeat",
                            &a.repeat.to_string(),
                            "--device",
                            &a.device,
                        ])
                        .arg("--weights")
                        .arg(a.dir.join("c3d.safetensors"))
                        .arg("--input")
                        .arg(a.dir.join(format!("clip-b{}.npy", a.batch))),
                )?)
            } else {
                None
            };
            ours_all.push(ours);
            theirs_all.extend(theirs);
        }
        let best = |v: &[Value]| {
            v.iter()
                .min_by(|x, y| min_time(x).total_cmp(&min_time(y)))
                .cloned()
        };
        let ours = best(&ours_all).expect("one round");
        let theirs = best(&theirs_all);
        let (t_ours, t_theirs) = (min_time(&ours), theirs.as_ref().map_or(f64::NAN, min_time));
        println!(
            "{:<8} {:>10.3} {:>12.3} {:>8.2} {:>14.0} {:>14.0}",
            task,
            t_ours,
            t_theirs,
            t_ours / t_theirs,
            ours["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
            theirs
                .as_ref()
                .and_then(|t| t["peak_rss_mb"].as_f64())
                .unwrap_or(f64::NAN)
        );
        if task == "dtd" && sgemm.is_finite() {
            // z^B/z+ need about three forward-sized passes: forward, z+ forward, transposed.
            let rate = 3.0 * forward_gflop / t_ours;
            println!(
                "         throughput: 3 x {forward_gflop:.1} GFLOP / {t_ours:.3} s = {rate:.1} GFLOP/s \
                 = {:.0} % of the machine's SGEMM",
                100.0 * rate / sgemm
            );
        }
        let single = best(&single_all);
        if let Some(single) = &single {
            let (clip, one) = (t_ours / a.batch as f64, min_time(single));
            println!(
                "         per clip: batch {} {clip:.3} s, batch 1 {one:.3} s (ours, same rounds): \
                 {:.2} x",
                a.batch,
                clip / one
            );
        }
        print_profile(&ours);
        rows.push(
            json!({"task": task, "vidlrp": ours, "torch": theirs, "ratio": t_ours / t_theirs,
            "vidlrp_batch1": single}),
        );
    }
    let report = a.dir.join("report.json");
    std::fs::write(
        &report,
        serde_json::to_string_pretty(
            &json!({"threads": threads, "batch": a.batch, "device": a.device, "sgemm_gflops": sgemm,
                "forward_gflop": forward_gflop, "rows": rows}),
        )?,
    )?;
    println!(
        "(ratio = vidlrp / torch; < 1 means vidlrp is faster; report: {})",
        report.display()
    );
    Ok(())
}

/// Where the time of one explanation goes: forward and relevance wall time per layer (layers
/// under 1 % of the total are folded into "other").
fn print_profile(ours: &Value) {
    let Some(layers) = ours["layers"].as_array() else {
        return;
    };
    let time = |l: &Value, k: &str| l[k].as_f64().unwrap_or(0.0);
    let total: f64 = layers
        .iter()
        .map(|l| time(l, "forward_s") + time(l, "relevance_s"))
        .sum();
    println!("         per layer (last run): forward + relevance = {total:.3} s");
    let mut other = 0.0;
    for l in layers {
        let (f, r) = (time(l, "forward_s"), time(l, "relevance_s"));
        if f + r < 0.01 * total {
            other += f + r;
            continue;
        }
        println!(
            "           {:<8} {:<14} fwd {:>6.3} s  rel {:>6.3} s  {:>5.1} %",
            l["layer"].as_str().unwrap_or("?"),
            l["rule"].as_str().unwrap_or("?"),
            f,
            r,
            100.0 * (f + r) / total
        );
    }
    println!(
        "           {:<23} {:>30.3} s  {:>5.1} %",
        "other",
        other,
        100.0 * other / total
    );
}
