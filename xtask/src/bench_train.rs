//! `cargo xtask bench-train`: one training step (forward, cross-entropy, backward, SGD with
//! momentum and weight decay) of a C3D-shaped model on a batch, ours against PyTorch's CPU
//! time on the same weights and batch, same machine, same run.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};
use vidlrp_c3d::{init_weights, C3dSpec, Pool5};
use vidlrp_core::HostTensor;
use vidlrp_cpu::Cpu;
use vidlrp_rng::Rng;
use vidlrp_train::{softmax_cross_entropy, Sgd, TrainNet};

#[derive(clap::Args)]
pub struct Args {
    /// Width relative to C3D (0.125: 8..64 channels, fc 512).
    #[arg(long, default_value_t = 0.125)]
    width: f64,
    /// Clips per batch (3x16x112x112 each).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Threads for both sides.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed steps per side (the minimum is reported).
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Python with torch and safetensors (skipped when it cannot import them).
    #[arg(long, default_value = "python3")]
    python: String,
    /// Working directory for the weights and batch (never committed).
    #[arg(long, default_value = "target/bench-train")]
    dir: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    std::fs::create_dir_all(&a.dir)?;
    let scale = |c: usize| ((c as f64 * a.width).round() as usize).max(1);
    let spec = C3dSpec::with_widths(
        [64, 128, 256, 256, 512, 512, 512, 512].map(scale),
        [4096, 4096].map(scale),
        10,
        [16, 112, 112],
        Pool5::Port,
    )?;
    let weights = init_weights(&spec, 1);
    let wpath = a.dir.join("weights.safetensors");
    vidlrp_io::write_safetensors(&wpath, &weights)?;
    let mut rng = Rng::new(2);
    let n = a.batch * 3 * 16 * 112 * 112;
    let x = HostTensor::new(
        vec![a.batch, 3, 16, 112, 112],
        (0..n).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect(),
    )?;
    let xpath = a.dir.join("batch.npy");
    vidlrp_io::write_npy(&xpath, &x)?;
    let labels: Vec<usize> = (0..a.batch).map(|i| i % 10).collect();

    let cpu = Cpu::new(a.threads)?;
    let mut net = TrainNet::c3d(&cpu, weights, Pool5::Port, [3, 16, 112, 112], 0.5)?;
    let mut sgd = Sgd::new(0.003, 0.9, 5e-4);
    let mut ours = f64::INFINITY;
    for step in 0..=a.steps {
        let t = Instant::now();
        let (logits, tape) = net.forward_train(&cpu, &x, Some(step as u64))?;
        let (_, d) = softmax_cross_entropy(&logits, &labels)?;
        let grads = net.backward(&cpu, tape, &d)?;
        net.apply(&cpu, &mut sgd, &grads)?;
        if step > 0 {
            ours = ours.min(t.elapsed().as_secs_f64());
        }
    }
    let script = crate::repo_root().join("benches/torch_train_bench.py");
    let theirs: Option<Value> = Command::new(&a.python)
        .arg(&script)
        .args([
            "--weights".as_ref(),
            wpath.as_os_str(),
            "--batch".as_ref(),
            xpath.as_os_str(),
        ])
        .args([
            "--threads",
            &a.threads.to_string(),
            "--steps",
            &a.steps.to_string(),
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice(&o.stdout).ok());
    let torch = theirs.as_ref().and_then(|v| {
        v["times"]
            .as_array()?
            .iter()
            .filter_map(Value::as_f64)
            .reduce(f64::min)
    });
    println!(
        "training step, width {} (params {}), batch {}, {} threads: ours {:.3} s{}",
        a.width,
        spec.num_params(),
        a.batch,
        a.threads,
        ours,
        torch.map_or(" (PyTorch not available)".into(), |t| format!(
            ", PyTorch {t:.3} s, ratio {:.2}",
            ours / t
        ))
    );
    println!(
        "{}",
        json!({"width": a.width, "batch": a.batch, "threads": a.threads, "ours_s": ours,
               "torch_s": torch, "ratio": torch.map(|t| ours / t),
               "torch_peak_rss_mb": theirs.as_ref().map(|v| v["peak_rss_mb"].clone())})
    );
    Ok(())
}
