//! `cargo xtask`: project automation in Rust (rust-analyzer style), no shell scripts needed.
//!
//! - `cargo xtask conformance`: goldens and random models on every available backend;
//! - `cargo xtask bench`: whole-model timings of ours against PyTorch/Zennit on this machine;
//! - `cargo xtask bench-weights`: loading full-size C3D from every weight format vs safetensors;
//! - `cargo xtask bench-train`: a training step of a small C3D, ours vs PyTorch;
//! - `cargo xtask bench-dataset`: a whole `sweep-steps` run vs a PyAV + Zennit pipeline.

mod bench;
mod bench_dataset;
mod bench_train;
mod bench_weights;
mod conformance;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "vidlrp project automation")]
struct Flags {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check every available backend against the goldens, conservation on random models, and
    /// (when several backends exist) agreement between them.
    Conformance(conformance::Args),
    /// Time full-width C3D forward, DTD and SA: ours and, if available, PyTorch/Zennit.
    Bench(bench::Args),
    /// Time loading a full-size C3D from every weight format, as a ratio to safetensors.
    BenchWeights(bench_weights::Args),
    /// Time a training step of a C3D-shaped model: ours against PyTorch on the CPU.
    BenchTrain(bench_train::Args),
    /// Time a whole `vidlrp sweep-steps` (DTD, SA, DTD-u on 640x360 videos) against the
    /// Python pipeline a researcher would write (PyAV + Zennit).
    BenchDataset(bench_dataset::Args),
}

/// `cuda` -> 0, `cuda:N` -> N.
fn cuda_ordinal(device: &str) -> anyhow::Result<usize> {
    match device {
        "cuda" => Ok(0),
        d => d
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("--device {d:?}: expected cpu, cuda or cuda:N")),
    }
}

fn main() -> std::process::ExitCode {
    vidlrp_alloc::init();
    let flags = Flags::parse();
    let result = match flags.command {
        Cmd::Conformance(a) => conformance::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::BenchWeights(a) => bench_weights::run(a),
        Cmd::BenchTrain(a) => bench_train::run(a),
        Cmd::BenchDataset(a) => bench_dataset::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
