//! `cargo xtask bench`: a C3D (full width, the built-in small trained model, or any
//! safetensors) or a torchvision video ResNet (`r3d_18`, `mc3_18`, `r2plus1d_18`; Zennit with a canonizer for
//! its batch norms and residual sums), ours against PyTorch/Zennit on the same machine, same run: forward, DTD, SA
//! and a training step at each batch size, with the FLOP bound beside each time, and where our
//! time goes per layer and per phase (arithmetic, packing, transforms, allocation, the rest).
//!
//! Every measurement runs in a fresh process (ours: `cargo xtask bench --worker`, theirs:
//! `benches/torch_bench.py`), so each peak RSS is that task's own.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vidlrp_c3d::{init_weights, C3dSpec, Pool5};
use vidlrp_core::{Backend, Composite, HostTensor, Rule, Sequential, Target};
use vidlrp_cpu::Cpu;
use vidlrp_rng::Rng;
use vidlrp_snippet::Preprocess;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    cargo xtask bench --threads 2                                  # full C3D, batch 1\n  \
    cargo xtask bench --model small --batch 1,4,32 --tasks forward,dtd,sa,train --threads 2\n  \
    cargo xtask bench --model m.safetensors --batch 8\n  \
    cargo xtask bench --model r3d_18 --tasks dtd,sa --threads 2    # 16x112x112, Kinetics head")]
pub struct Args {
    /// The model: full (seeded full-width C3D, 112x112), small (the built-in trained model,
    /// fixtures/demo/model.safetensors), r3d_18, mc3_18 or r2plus1d_18 (torchvision's initialisation, seed 0,
    /// 400 classes, 112x112, the kinetics preset) or a weight file (its input size from its
    /// recorded or family preset).
    #[arg(long, default_value = "full")]
    model: String,
    /// Threads for both sides (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Clips per batch; each batch size is a row of its own (times are also given per clip).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    batch: Vec<usize>,
    /// Timed repetitions per task and process (the minimum is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Rounds per task, each a fresh process of ours then of theirs (the minimum is reported;
    /// the spread of our rounds is shown).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Python with torch and zennit (an error if it cannot import them, unless --ours-only).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Time ours alone, without the PyTorch side (no ratios).
    #[arg(long)]
    ours_only: bool,
    /// Working directory for the generated weights and clips (never committed).
    #[arg(long, default_value = "target/bench")]
    dir: PathBuf,
    /// Tasks to run: forward, dtd, sa, train (one SGD step, dropout 0.5).
    #[arg(long, value_delimiter = ',', default_value = "forward,dtd,sa")]
    tasks: Vec<String>,
    /// Where both sides run: cpu, cuda or cuda:N (PyTorch on the same GPU).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The largest difference allowed between the two sides' outputs (logits, relevance):
    /// `||ours - theirs|| / ||theirs||` (Euclidean norms; a max-pool winner that flips under
    /// f32 rounding moves a little relevance between neighbours, which the largest single
    /// difference would overstate); beyond it, or with nothing compared, the command fails.
    #[arg(long, default_value_t = 1e-3)]
    tolerance: f64,
    /// Where the worker writes its output (`.npy`; used by `bench` itself).
    #[arg(long, hide = true)]
    save: Option<PathBuf>,
    /// Run one task in this process and print its JSON (used by `bench` itself).
    #[arg(long, hide = true)]
    worker: Option<String>,
    /// The worker's weights.
    #[arg(long, hide = true)]
    weights: Option<PathBuf>,
    /// The worker's clip.
    #[arg(long, hide = true)]
    input: Option<PathBuf>,
}

/// The model under test: its weights, the input's side in pixels, its preset, a name for the
/// table and its architecture (`c3d`, `r3d_18`, ...: the PyTorch side builds the same).
struct Model {
    weights: PathBuf,
    size: usize,
    preset: Preprocess,
    name: String,
    arch: String,
}

/// A model from a weight file (read once): its recorded or family preset (`caffe@48`: 48
/// pixels) and architecture.
fn from_file(w: PathBuf, name: String) -> Result<Model> {
    let loaded = vidlrp_model::load(&w, None)?;
    let preset: Preprocess = loaded.preset_name().parse().map_err(anyhow::Error::msg)?;
    Ok(Model {
        size: preset.input_size()[0],
        preset,
        name,
        arch: loaded.arch(),
        weights: w,
    })
}

/// Writes what the model needs and names it.
fn model(a: &Args) -> Result<Model> {
    std::fs::create_dir_all(&a.dir)?;
    match a.model.as_str() {
        "full" => {
            let w = a.dir.join("c3d.safetensors");
            if !w.exists() {
                eprintln!("bench: writing seeded full-width C3D to {}", w.display());
                vidlrp_io::write_safetensors(&w, &init_weights(&C3dSpec::full(), 0))?;
            }
            Ok(Model {
                weights: w,
                size: 112,
                preset: Preprocess::caffe(),
                name: "full-width C3D".into(),
                arch: "c3d".into(),
            })
        }
        "small" => {
            let w = crate::repo_root().join("fixtures/demo/model.safetensors");
            from_file(w, "small trained C3D (fixtures/demo)".into())
        }
        arch @ ("r3d_18" | "mc3_18" | "r2plus1d_18") => {
            let w = a.dir.join(format!("{arch}.safetensors"));
            if !w.exists() {
                eprintln!("bench: writing seeded {arch} to {}", w.display());
                let spec = vidlrp_video_resnet::VideoResNetSpec::named(arch, 400)?;
                let weights = vidlrp_video_resnet::init_weights(&spec, 0);
                vidlrp_model::Model::from_tensors(weights, &w, None)?.save(&w)?;
            }
            from_file(
                w,
                format!("{arch} (torchvision's initialisation, 400 classes)"),
            )
        }
        path => from_file(PathBuf::from(path), path.to_string()),
    }
}

/// The clip file of `batch` clips of `size` pixels: uniform pixel values preprocessed by
/// `preset`'s mean and std (caffe: 0..255 less the mean, the same values as before presets
/// had a std; each batch's first clip is the same).
fn clip(a: &Args, batch: usize, size: usize, preset: &Preprocess) -> Result<PathBuf> {
    let name = if preset.name == "caffe" {
        format!("clip-s{size}-b{batch}.npy")
    } else {
        format!("clip-{}-s{size}-b{batch}.npy", preset.name)
    };
    let x = a.dir.join(name);
    if !x.exists() {
        let mut rng = Rng::new(42);
        let plane = 16 * size * size;
        let data = (0..batch * 3 * plane)
            .map(|i| {
                let c = (i / plane) % 3;
                let pixel = (rng.uniform() * 255.0) as f32;
                (pixel - preset.mean[c]) / preset.std[c]
            })
            .collect();

        vidlrp_io::write_npy(&x, &HostTensor::new(vec![batch, 3, 16, size, size], data)?)?;
    }
    Ok(x)
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

/// Multiply-adds x 2 of one forward pass of `net` on one clip of shape `[C, T, H, W]`: every
/// convolution's and dense layer's weight count times its output positions.
fn forward_flops<B: Backend>(be: &B, net: &Sequential<B>, input: [usize; 4]) -> Result<f64> {
    let shapes = net.shapes(&[1, input[0], input[1], input[2], input[3]])?;
    // The steps in forward order are the layers and the residual sums; DTD's rules tell the
    // sums (`SumProportional`) from the layers, so each layer finds its output shape.
    let rules = net.rules(&Composite::dtd(vec![0.0], vec![1.0]))?;
    let mut layers = net.leaves().into_iter();
    let mut flops = 0.0;
    for (step, rule) in rules.iter().enumerate() {
        if *rule == Rule::SumProportional {
            continue;
        }
        let layer = layers.next().context("one layer per step")?;
        if let Some(affine) = layer.affine() {
            let weights: usize = be.shape(affine.weight()).iter().product();
            let positions: usize = shapes[step + 1][2..].iter().product();
            flops += 2.0 * (weights * positions) as f64;
        }
    }
    Ok(flops)
}

/// Forward-sized passes of a task: DTD runs the forward, the z+ forward and one transposed
/// pass; SA the forward and the input gradient; a training step the forward and the input and
/// weight gradients.
fn passes(task: &str) -> f64 {
    match task {
        "forward" => 1.0,
        "sa" => 2.0,
        _ => 3.0,
    }
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

/// Minor page faults of this process so far (0 where /proc is not there).
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command's closing parenthesis; minflt is the 10th field overall.
            let rest = s.rsplit_once(')')?.1;
            rest.split_whitespace().nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

/// What a task runs: a training step (network, optimiser, labels) or an inference network.
enum Work<B: Backend> {
    Train(vidlrp_train::TrainNet<B>, vidlrp_train::Sgd, Vec<usize>),
    Infer(vidlrp_core::Sequential<B>),
}

/// One run of `task`: what it computed, for the record.
enum Outcome {
    Explained(vidlrp_core::Explanation),
    Logits(HostTensor),
    Done,
}

/// Times `task` `--repeat` times on `be`, then runs it once more with the phase counters and
/// the allocation counts on (that run's figures are the breakdown; its overhead stays out of
/// the timed runs).
fn time_task<B: Backend>(a: &Args, task: &str, be: &B) -> Result<Value> {
    let (Some(wpath), Some(xpath)) = (&a.weights, &a.input) else {
        bail!("the worker needs --weights and --input");
    };
    let model = vidlrp_model::load(wpath, None)?;
    let x = vidlrp_io::read_npy(xpath)?;
    let input = [x.shape()[1], x.shape()[2], x.shape()[3], x.shape()[4]];
    let preset: Preprocess = model.preset_name().parse().map_err(anyhow::Error::msg)?;
    // DTD with max pooling routed as Zennit routes it (winner-take-all), so that both sides
    // compute, and can be compared on, the same relevance.
    let dtd = vidlrp_core::PresetOptions {
        low: preset.low(),
        high: preset.high(),
        pool: Some(vidlrp_core::PoolRule::WinnerTakeAll),
        ..vidlrp_core::PresetOptions::default()
    };
    let composite = match task {
        "dtd" => Some(Composite::preset(vidlrp_core::Method::Dtd, &dtd)?),
        "sa" => Some(Composite::sensitivity()),
        "forward" | "train" => None,
        other => bail!("unknown task {other}"),
    };
    // Only the network the task needs is built (its memory is part of the task's peak RSS).
    let mut work = if task == "train" {
        let vidlrp_model::Architecture::C3d { spec, .. } = &model.architecture else {
            bail!(
                "the train task times C3D only; {} is a {}",
                wpath.display(),
                model.arch()
            );
        };
        let classes = spec.classes;
        let weights = model.tensors;
        let labels: Vec<usize> = (0..x.shape()[0]).map(|i| i % classes).collect();
        let net = vidlrp_train::TrainNet::c3d(be, weights, Pool5::Port, input, 0.5)?;
        Work::Train(net, vidlrp_train::Sgd::new(0.003, 0.9, 5e-4), labels)
    } else {
        Work::Infer(model.into_network(be, input)?)
    };
    let mut step = 0u64;
    let mut once = |be: &B| -> Result<Outcome> {
        // Every run ends with a download, which waits for the device.
        let net = match &mut work {
            Work::Train(tn, sgd, labels) => {
                let (logits, tape) = tn.forward_train(be, &x, Some(step))?;
                step += 1;
                let (_, d) = vidlrp_train::softmax_cross_entropy(&logits, labels)?;
                let grads = tn.backward(be, tape, &d)?;
                tn.apply(be, sgd, &grads)?;
                return Ok(Outcome::Done);
            }
            Work::Infer(net) => net,
        };
        let xb = be.upload(&x)?;
        match &composite {
            Some(c) => Ok(Outcome::Explained(net.explain(
                be,
                &xb,
                &Target::TopOne,
                c,
            )?)),
            None => Ok(Outcome::Logits(be.download(&net.forward(be, &xb)?)?)),
        }
    };
    let mut times = Vec::new();
    let mut conservation = Value::Null;
    for _ in 0..a.repeat {
        let start = Instant::now();
        let outcome = once(be)?;
        times.push(start.elapsed().as_secs_f64());
        let output = match outcome {
            Outcome::Explained(e) => {
                conservation = json!(e.conservation());
                Some(e.relevance)
            }
            Outcome::Logits(l) => Some(l),
            Outcome::Done => None,
        };
        if let (Some(path), Some(t)) = (&a.save, output) {
            vidlrp_io::write_npy(path, &t)?;
        }
    }
    // The breakdown run.
    let faults = minor_faults();
    vidlrp_cpu::phases::take();
    vidlrp_alloc::take();
    vidlrp_cpu::phases::record(true);
    vidlrp_alloc::count(true);
    let start = Instant::now();
    let outcome = once(be)?;
    let wall = start.elapsed().as_secs_f64();
    vidlrp_alloc::count(false);
    vidlrp_cpu::phases::record(false);
    let (p, alloc) = (vidlrp_cpu::phases::take(), vidlrp_alloc::take());
    let layers = match &outcome {
        Outcome::Explained(e) => json!(e
            .layers
            .iter()
            .rev()
            .map(|l| json!({"layer": l.layer, "rule": l.rule, "forward_s": l.forward_s, "relevance_s": l.relevance_s}))
            .collect::<Vec<_>>()),
        Outcome::Logits(_) | Outcome::Done => Value::Null,
    };
    let phases = json!({
        "wall_s": wall, "pack_s": p.pack_s, "arithmetic_s": p.arithmetic_s,
        "transform_s": p.transform_s, "alloc_s": alloc.seconds, "alloc_calls": alloc.calls,
        "alloc_mb": alloc.bytes as f64 / (1 << 20) as f64,
        "minor_page_faults": minor_faults() - faults,
    });
    Ok(
        json!({"task": task, "times": times, "peak_rss_mb": peak_rss_mb(), "conservation": conservation, "layers": layers, "phases": phases, "backend": be.name()}),
    )
}

/// Values joined by commas, for the PyTorch side's bounds.
fn join(v: &[f32]) -> String {
    v.iter().map(f32::to_string).collect::<Vec<_>>().join(",")
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
    let m = model(&a)?;
    let loaded = vidlrp_model::load(&m.weights, None)?;
    let parameters = loaded.num_params();
    let clip_gflop = {
        let cpu = Cpu::new(1)?;
        forward_flops(
            &cpu,
            &loaded.into_network(&cpu, [3, 16, m.size, m.size])?,
            [3, 16, m.size, m.size],
        )? / 1e9
    };
    let threads = if a.threads == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        a.threads
    };
    let exe = std::env::current_exe()?;
    let torch_script = crate::repo_root().join("benches/torch_bench.py");
    let have_torch = !a.ours_only
        && Command::new(&a.python)
            .args(["-c", "import torch, zennit"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !have_torch && !a.ours_only {
        bail!(
            "{} cannot import torch and zennit: there is nothing to compare with (install them, \
             point --python at a Python that has them, or pass --ours-only)",
            a.python
        );
    }
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
        v["gflops"].as_f64().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    };
    println!(
        "{} ({:.1}M parameters), input 3x16x{s}x{s}, {clip_gflop:.3} GFLOP per forward pass of \
         one clip; device {}, {threads} threads, min of {} rounds x {} runs",
        m.name,
        parameters as f64 / 1e6,
        a.device,
        a.rounds,
        a.repeat,
        s = m.size,
    );
    if sgemm.is_finite() {
        println!(
            "machine SGEMM (2048^3, {threads} threads, best of matrixmultiply and ours): \
             {sgemm:.1} GFLOP/s; bound = passes x FLOPs / that rate"
        );
    }
    println!(
        "{:<8} {:>5} {:>11} {:>10} {:>11} {:>7} {:>10} {:>9} {:>14}",
        "task",
        "batch",
        "ours ms/cl",
        "spread o/t",
        "torch ms/cl",
        "ratio",
        "bound ms",
        "ours/bnd",
        "RSS MB ours/th"
    );
    let mut rows = Vec::new();
    // (task, batch, max |ours - theirs| / max |theirs|) of every output both sides wrote.
    let mut compared: Vec<(String, usize, f64)> = Vec::new();
    for &batch in &a.batch {
        let x = clip(&a, batch, m.size, &m.preset)?;
        for task in &a.tasks {
            let ours_out = a.dir.join(format!("out-{task}-{batch}-vidlrp.npy"));
            let theirs_out = a.dir.join(format!("out-{task}-{batch}-torch.npy"));
            for p in [&ours_out, &theirs_out] {
                let _ = std::fs::remove_file(p);
            }
            let worker = || {
                run_json(
                    Command::new(&exe)
                        .args(["bench", "--worker", task, "--threads", &threads.to_string()])
                        .args(["--device", &a.device, "--repeat", &a.repeat.to_string()])
                        .arg("--weights")
                        .arg(&m.weights)
                        .arg("--input")
                        .arg(&x)
                        .arg("--dir")
                        .arg(&a.dir)
                        .arg("--save")
                        .arg(&ours_out),
                )
            };
            let torch = || {
                run_json(
                    Command::new(&a.python)
                        .arg(&torch_script)
                        .args(["--task", task, "--threads", &threads.to_string()])
                        .args(["--repeat", &a.repeat.to_string(), "--device", &a.device])
                        .args(["--arch", &m.arch])
                        // `=`: the values start with a minus sign.
                        .arg(format!("--low={}", join(&m.preset.low())))
                        .arg(format!("--high={}", join(&m.preset.high())))
                        .arg("--weights")
                        .arg(&m.weights)
                        .arg("--input")
                        .arg(&x)
                        .arg("--save")
                        .arg(&theirs_out),
                )
            };
            // Rounds alternate the two sides, so a slow phase of a shared machine hits both;
            // each side's minimum over all rounds is reported.
            let (mut ours_all, mut theirs_all) = (Vec::new(), Vec::new());
            for _ in 0..a.rounds.max(1) {
                ours_all.push(worker()?);
                if have_torch {
                    theirs_all.push(torch()?);
                }
            }
            let best = |v: &[Value]| {
                v.iter()
                    .min_by(|x, y| min_time(x).total_cmp(&min_time(y)))
                    .cloned()
            };
            let ours = best(&ours_all).expect("one round");
            let theirs = best(&theirs_all);
            let per = |t: f64| 1e3 * t / batch as f64;
            let (t_ours, t_theirs) = (min_time(&ours), theirs.as_ref().map_or(f64::NAN, min_time));
            // Spread: the slowest round's minimum over the fastest's, for both sides (theirs
            // as the control: what the machine's drift does to the same command).
            let worst = ours_all.iter().map(min_time).fold(0.0, f64::max);
            let worst_theirs = theirs_all.iter().map(min_time).fold(f64::NAN, f64::max);
            let spread = |worst: f64, best: f64| {
                let p = 100.0 * (worst / best - 1.0);
                if p.is_finite() {
                    format!("{p:.0}%")
                } else {
                    "-".into()
                }
            };
            let bound = passes(task) * clip_gflop * batch as f64 / sgemm;
            let rss = |v: Option<&Value>| {
                v.and_then(|v| v["peak_rss_mb"].as_f64())
                    .map_or("-".into(), |r| format!("{r:.0}"))
            };
            println!(
                "{:<8} {:>5} {:>11.2} {:>10} {:>11.2} {:>7.2} {:>10.2} {:>9.2} {:>14}",
                task,
                batch,
                per(t_ours),
                format!(
                    "{}/{}",
                    spread(worst, t_ours),
                    spread(worst_theirs, t_theirs)
                ),
                per(t_theirs),
                t_ours / t_theirs,
                per(bound),
                t_ours / bound,
                format!("{}/{}", rss(Some(&ours)), rss(theirs.as_ref())),
            );
            let difference = if have_torch && task != "train" {
                let (d, largest) = output_difference(&ours_out, &theirs_out)?;
                println!(
                    "         outputs: ||vidlrp - torch|| = {d:.2e} of ||torch|| ({}); largest \
                     single difference {largest:.2e} of max |torch|",
                    if d <= a.tolerance { "within" } else { "BEYOND" }
                );
                compared.push((task.clone(), batch, d));
                Some(d)
            } else {
                None
            };
            print_phases(&ours, threads);
            print_profile(&ours);
            rows.push(
                json!({"task": task, "batch": batch, "vidlrp": ours, "torch": theirs,
                "ratio": t_ours / t_theirs, "bound_s": bound, "rounds": ours_all.len(),
                "slowest_round_s": worst, "torch_slowest_round_s": worst_theirs,
                "output_difference": difference}),
            );
        }
    }
    let report = a.dir.join("report.json");
    std::fs::write(
        &report,
        serde_json::to_string_pretty(&json!({"model": m.name, "weights": m.weights,
            "input_size": m.size, "threads": threads, "device": a.device, "sgemm_gflops": sgemm,
            "forward_gflop_per_clip": clip_gflop, "rows": rows}))?,
    )?;
    println!(
        "(ms/cl = per clip; ratio = vidlrp / torch, < 1: vidlrp is faster; spread o/t = slowest \
         round's minimum over the fastest's, ours/torch; report: {})",
        report.display()
    );
    check_outputs(&compared, have_torch, &a)
}

/// `||ours - theirs|| / ||theirs||` and `max |ours - theirs| / max |theirs|` of the two
/// sides' saved outputs (shapes must agree).
fn output_difference(ours: &std::path::Path, theirs: &std::path::Path) -> Result<(f64, f64)> {
    let (o, t) = (vidlrp_io::read_npy(ours)?, vidlrp_io::read_npy(theirs)?);
    if o.shape() != t.shape() {
        bail!(
            "the two sides' outputs differ in shape: {:?} (vidlrp) and {:?} (torch)",
            o.shape(),
            t.shape()
        );
    }
    let (err, scale) = vidlrp_conformance::max_errors(o.data(), t.data());
    let largest = if scale > 0.0 { err / scale } else { err };
    let (mut diff, mut norm) = (0.0f64, 0.0f64);
    for (x, y) in o.data().iter().zip(t.data()) {
        diff += (f64::from(*x) - f64::from(*y)).powi(2);
        norm += f64::from(*y).powi(2);
    }
    let l2 = if norm > 0.0 {
        (diff / norm).sqrt()
    } else {
        diff.sqrt()
    };
    Ok((l2, largest))
}

/// Fails when an output differs beyond the tolerance, or when PyTorch ran and nothing was
/// compared (a train-only run compares nothing by design).
fn check_outputs(compared: &[(String, usize, f64)], have_torch: bool, a: &Args) -> Result<()> {
    let beyond: Vec<String> = compared
        .iter()
        .filter(|(_, _, d)| d.is_nan() || *d > a.tolerance)
        .map(|(t, b, d)| format!("{t} at batch {b}: {d:.2e}"))
        .collect();
    if !beyond.is_empty() {
        bail!(
            "vidlrp and PyTorch/Zennit computed different outputs (beyond --tolerance {:e}): {}",
            a.tolerance,
            beyond.join("; ")
        );
    }
    if have_torch && compared.is_empty() && a.tasks.iter().any(|t| t != "train") {
        bail!("PyTorch ran, but no output of the two sides was compared");
    }
    Ok(())
}

/// Where the breakdown run's thread time went: `threads x wall` split into the phases the
/// backend and the allocator counted, and the rest.
fn print_phases(ours: &Value, threads: usize) {
    let p = &ours["phases"];
    let f = |k: &str| p[k].as_f64().unwrap_or(0.0);
    let budget = threads as f64 * f("wall_s");
    if budget <= 0.0 {
        return;
    }
    let pct = |v: f64| 100.0 * v / budget;
    let named = f("arithmetic_s") + f("pack_s") + f("transform_s") + f("alloc_s");
    println!(
        "         phases ({threads} threads x {:.2} ms): arithmetic {:.0}%, packing {:.0}%, \
         transforms {:.0}%, allocation {:.1}% ({} calls, {:.0} MB, {} page faults), rest \
         (elementwise, pooling, dispatch, idle) {:.0}%",
        1e3 * f("wall_s"),
        pct(f("arithmetic_s")),
        pct(f("pack_s")),
        pct(f("transform_s")),
        pct(f("alloc_s")),
        p["alloc_calls"].as_u64().unwrap_or(0),
        f("alloc_mb"),
        p["minor_page_faults"].as_u64().unwrap_or(0),
        pct(budget - named).max(0.0),
    );
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
    println!(
        "         per layer (breakdown run): forward + relevance = {:.2} ms",
        1e3 * total
    );
    let mut other = 0.0;
    for l in layers {
        let (f, r) = (time(l, "forward_s"), time(l, "relevance_s"));
        if f + r < 0.01 * total {
            other += f + r;
            continue;
        }
        println!(
            "           {:<8} {:<14} fwd {:>8.2} ms  rel {:>8.2} ms  {:>5.1} %",
            l["layer"].as_str().unwrap_or("?"),
            l["rule"].as_str().unwrap_or("?"),
            1e3 * f,
            1e3 * r,
            100.0 * (f + r) / total
        );
    }
    println!(
        "           {:<23} {:>33.2} ms  {:>5.1} %",
        "other",
        1e3 * other,
        100.0 * other / total
    );
}
