//! `cargo xtask conformance`.

use anyhow::{bail, Result};
use vidlrp_conformance::golden::{check, fixtures_dir, load_all};
use vidlrp_conformance::random::{conserves, dtd_on_zero_bias_model, MIN_SCORE};
use vidlrp_core::{Backend, Rule};
use vidlrp_cpu::Cpu;

#[derive(clap::Args)]
pub struct Args {
    /// Number of random models to check for conservation.
    #[arg(long, default_value_t = 24)]
    random: u64,
    /// CPU worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Golden comparisons on one backend; returns the number of failures.
fn goldens<B: Backend>(be: &B) -> Result<usize> {
    let models = load_all(&fixtures_dir()).map_err(anyhow::Error::msg)?;
    let (mut n, mut failed) = (0, 0);
    let mut worst = (0.0f64, String::new());
    for m in &models {
        for r in check(be, m).map_err(anyhow::Error::msg)? {
            n += 1;
            if r.relative() > worst.0 {
                worst = (r.relative(), r.case.clone());
            }
            if !r.passed {
                failed += 1;
                println!(
                    "  FAIL {} ({}): rel err {:.3e} {}",
                    r.case,
                    r.reference,
                    r.relative(),
                    r.note
                );
            }
        }
    }
    println!(
        "  golden: {}/{n} within 1e-4 of max |R| (worst {} at {:.2e})",
        n - failed,
        worst.1,
        worst.0
    );
    Ok(failed)
}

/// DTD conservation on random C3D-shaped models (zero biases: no zero-denominator leaks).
fn conservation<B: Backend>(be: &B, seeds: u64) -> Result<usize> {
    let (mut checked, mut failed, mut skipped) = (0, 0, 0);
    let mut worst = 0f64;
    for seed in 0..seeds {
        let Some(e) =
            dtd_on_zero_bias_model(be, seed, Rule::PoolProportional).map_err(anyhow::Error::msg)?
        else {
            skipped += 1;
            continue;
        };
        checked += 1;
        for ratio in e.conservation() {
            worst = worst.max((ratio - 1.0).abs());
            if !conserves(ratio) {
                failed += 1;
                println!("  FAIL random model {seed}: sum R / f_c = {ratio}");
            }
        }
    }
    println!(
        "  conservation: {checked} random models checked (worst |sum R / f_c - 1| = {worst:.2e}), \
         {skipped} skipped (top logit not positive or below {MIN_SCORE}), {failed} failed"
    );
    if checked == 0 {
        bail!("no random model could be checked");
    }
    Ok(failed)
}

pub fn run(a: Args) -> Result<()> {
    let cpu = Cpu::new(a.threads)?;
    println!("backend {}:", cpu.name());
    let mut failed = goldens(&cpu)?;
    failed += conservation(&cpu, a.random)?;
    println!(
        "backend cuda: skipped (no CUDA backend is built into this workspace yet, so there is \
         nothing to compare the CPU with)"
    );
    println!("backends that ran: cpu");
    if failed > 0 {
        bail!("{failed} conformance check(s) failed");
    }
    println!("conformance: ok");
    Ok(())
}
