//! `cargo xtask fuzz`: the structure-aware fuzzing of the weight-file readers
//! (`crates/vidlrp-checkpoint/tests/hostile.rs`) with many more cases than CI runs, each
//! under the documented memory budget, in a release build.

use std::process::Command;

use anyhow::{bail, Context};

/// Flags of `cargo xtask fuzz`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  cargo xtask fuzz                  # 10,000 cases per generator\n  \
                        cargo xtask fuzz --cases 200000   # an overnight run"
)]
pub struct Args {
    /// Generated cases per generator (pickle streams in a zip and in a legacy file, Caffe
    /// messages, .npz archives, safetensors headers); CI runs 64.
    #[arg(long, default_value_t = 10_000)]
    cases: u32,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(crate::repo_root())
        .args([
            "test",
            "--release",
            "-p",
            "vidlrp-checkpoint",
            "--test",
            "hostile",
        ])
        .env("VIDLRP_FUZZ_CASES", a.cases.to_string())
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("fuzzing found a case beyond the budget or a panic (see above; proptest prints the smallest input)");
    }
    eprintln!(
        "fuzz: {} cases per generator within budget in {:.0} s",
        a.cases,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
