//! `cargo xtask`: project automation in Rust (rust-analyzer style), no shell scripts needed.
//!
//! - `cargo xtask conformance`: goldens and random models on every available backend;
//! - `cargo xtask bench`: whole-model timings of ours against PyTorch/Zennit on this machine.

mod bench;
mod conformance;

use clap::{Parser, Subcommand};

/// glibc returns every large buffer to the OS on free, so each layer would fault in fresh pages
/// (a 3-4x slowdown of the memory-bound kernels); mimalloc reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// mimalloc's `purge_delay` option (the one before `use_numa_nodes` in mimalloc's option enum).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_use_numa_nodes - 1;

/// Keeps freed memory committed for reuse (`purge_delay = -1`): every layer of an explanation
/// allocates tensors of the same few sizes (400 MB each at batch 8), and handing them back to
/// the OS makes the next layer fault every page in again.
fn keep_freed_memory() {
    // SAFETY: sets one option of the allocator in use; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let flags = Flags::parse();
    let result = match flags.command {
        Cmd::Conformance(a) => conformance::run(a),
        Cmd::Bench(a) => bench::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod allocator_tests {
    #[test]
    fn the_purge_delay_option_index_is_right() {
        // purge_delay defaults to 1000 ms (mimalloc v3) or 10 ms (v2); use_numa_nodes, the
        // option after it, defaults to 0.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert!(
            [1000, 10, -1].contains(&v),
            "option {} is {v}",
            super::MI_OPTION_PURGE_DELAY
        );
    }
}
