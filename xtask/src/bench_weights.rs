//! `cargo xtask bench-weights`: loading a full-size C3D (78 M parameters, ~313 MB) from every
//! format, as a ratio to loading the same tensors from safetensors, same machine, same run.
//!
//! The files are written by `benches/full_checkpoints.py` (PyTorch's own `torch.save`, and
//! the Caffe model from C3D's field numbers) unless they exist. Each load runs `--repeat`
//! times in this process after one untimed warm-up read (page cache warm for every format
//! alike); the minimum is reported.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Directory of the generated files (never committed; ~1.6 GB).
    #[arg(long, default_value = "target/bench-weights")]
    dir: PathBuf,
    /// Python with torch, numpy and safetensors, to write the files when missing.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Timed loads per format (the minimum is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

const FILES: [&str; 5] = [
    "original.safetensors",
    "legacy.pickle",
    "model.pt",
    "mmaction2.pth",
    "caffe-v10.caffemodel",
];

pub fn run(a: Args) -> Result<()> {
    if FILES.iter().any(|f| !a.dir.join(f).exists()) {
        let script = crate::repo_root().join("benches/full_checkpoints.py");
        eprintln!(
            "writing the full-size checkpoints into {} ...",
            a.dir.display()
        );
        let st = Command::new(&a.python)
            .arg(&script)
            .arg(&a.dir)
            .status()
            .with_context(|| format!("cannot run {}", a.python))?;
        if !st.success() {
            bail!(
                "{} failed; it needs torch, numpy and safetensors",
                script.display()
            );
        }
    }
    let mut base = None;
    let mut rows = Vec::new();
    let reference = vidlrp_c3d::load_weights(&a.dir.join(FILES[0]))?.tensors;
    for f in FILES {
        let p = a.dir.join(f);
        let bytes = std::fs::metadata(&p)?.len();
        let w = vidlrp_c3d::load_weights(&p)?; // warm-up, and the equality check
        if w.tensors != reference {
            bail!("{f}: tensors differ from original.safetensors");
        }
        drop(w);
        let mut best = f64::INFINITY;
        for _ in 0..a.repeat.max(1) {
            let t = Instant::now();
            let w = vidlrp_c3d::load_weights(&p)?;
            best = best.min(t.elapsed().as_secs_f64());
            drop(w);
        }
        let base_s = *base.get_or_insert(best);
        let ratio = best / base_s;
        println!(
            "{f:<22} {:>7.1} MB  {best:>6.3} s  {ratio:>5.2}x safetensors  {:>6.0} MB/s",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / best
        );
        rows.push(
            json!({"file": f, "bytes": bytes, "seconds": best, "ratio_to_safetensors": ratio}),
        );
    }
    println!("{}", json!({ "loads": rows }));
    Ok(())
}
