//! `cargo xtask`: project automation in Rust (rust-analyzer style), no shell scripts needed.
//!
//! - `cargo xtask conformance`: goldens and random models on every available backend;
//! - `cargo xtask bench`: whole-model timings of ours against PyTorch/Zennit on this machine;
//! - `cargo xtask bench-weights`: loading full-size C3D from every weight format vs safetensors;
//! - `cargo xtask bench-train`: a training step of a small C3D, ours vs PyTorch;
//! - `cargo xtask bench-dataset`: a whole `sweep-steps` run vs a PyAV + Zennit pipeline;
//! - `cargo xtask fuzz`: the weight-file readers fuzzed under their memory budget, many cases;
//! - `cargo xtask gpu-check`: conformance, full-width agreement and the benchmarks on a GPU
//!   (or `--device cpu`), one report.

mod bench;
mod bench_dataset;
mod bench_train;
mod bench_weights;
mod conformance;
mod fuzz;
mod gpu_check;

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
    /// On a GPU machine: conformance, full-width C3D against the CPU, bench and bench-dataset
    /// against PyTorch/Zennit on the same GPU, one report (`--device cpu`: a dry run).
    GpuCheck(gpu_check::Args),
    /// Fuzz the weight-file readers (pickles, protobufs, .npz, safetensors) under their
    /// memory budget with many generated cases (CI runs a few).
    Fuzz(fuzz::Args),
}

/// The repository's root, for its scripts and fixtures: `VIDLRP_REPO`, else the directory
/// this xtask was built in, else the working directory (a copied checkout on another machine
/// runs a prebuilt xtask from its root).
fn repo_root() -> std::path::PathBuf {
    if let Some(r) = std::env::var_os("VIDLRP_REPO") {
        return r.into();
    }
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if built.join("benches").is_dir() {
        built
    } else {
        std::path::PathBuf::from(".")
    }
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
        Cmd::GpuCheck(a) => gpu_check::run(a),
        Cmd::Fuzz(a) => fuzz::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
