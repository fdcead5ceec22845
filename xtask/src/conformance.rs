//! `cargo xtask conformance`.

use anyhow::{bail, Result};
use vidlrp_conformance::agreement;
use vidlrp_conformance::golden::{check, fixtures_dir, load_all};
use vidlrp_conformance::random::{conserves, dtd_on_zero_bias_model, MIN_SCORE};
use vidlrp_core::{Backend, Rule};
use vidlrp_cpu::Cpu;

#[derive(clap::Args)]
pub struct Args {
    /// Number of random models to check for conservation.
    #[arg(long, default_value_t = 24)]
    random: u64,
    /// Number of random models on which every other backend is compared with the CPU.
    #[arg(long, default_value_t = 4)]
    agreement: u64,
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

/// `other` against the CPU on random models with every preset; returns the number of failures.
fn agreement_with_cpu<B: Backend>(cpu: &Cpu, other: &B, seeds: u64) -> Result<usize> {
    let (mut n, mut failed) = (0, 0);
    let mut worst = (0.0f64, String::new());
    for seed in 0..seeds {
        for r in agreement::compare(cpu, other, seed).map_err(anyhow::Error::msg)? {
            n += 1;
            if r.passed && r.relative() > worst.0 {
                worst = (r.relative(), r.case.clone());
            }
            if !r.passed {
                failed += 1;
                println!("  FAIL {}: rel err {:.3e} {}", r.case, r.relative(), r.note);
            }
        }
    }
    println!(
        "  agreement with the cpu: {}/{n} within 1e-4 of max |R| ({seeds} random models, every \
         preset; worst {} at {:.2e})",
        n - failed,
        worst.1,
        worst.0
    );
    Ok(failed)
}

pub fn run(a: Args) -> Result<()> {
    let cpu = Cpu::new(a.threads)?;
    let mut ran = vec![cpu.name()];
    println!("backend {}:", cpu.name());
    let mut failed = goldens(&cpu)?;
    failed += conservation(&cpu, a.random)?;

    // The CUDA kernel source and GEMM plans, emulated on the host: runs everywhere.
    let emulated = vidlrp_cuda::Emulated::new();
    println!("backend {}:", emulated.name());
    failed += goldens(&emulated)?;
    failed += agreement_with_cpu(&cpu, &emulated, a.agreement.min(2))?;
    ran.push(emulated.name());

    if vidlrp_cuda::nvrtc_present() {
        match vidlrp_cuda::compile_kernels() {
            Ok(_) => println!("nvrtc: kernels.cu compiles"),
            Err(e) => {
                failed += 1;
                println!("  FAIL nvrtc: {e}");
            }
        }
    } else {
        println!("nvrtc: skipped (libnvrtc not found on LD_LIBRARY_PATH)");
    }

    let devices = vidlrp_cuda::device_count();
    if devices == 0 {
        println!(
            "backend cuda: skipped ({})",
            if vidlrp_cuda::driver_present() {
                "the NVIDIA driver reports no device"
            } else {
                "no NVIDIA driver (libcuda) on this machine"
            }
        );
    }
    for n in 0..devices {
        let gpu = vidlrp_cuda::Cuda::new(n)?;
        println!("backend {}:", gpu.name());
        failed += goldens(&gpu)?;
        failed += conservation(&gpu, a.random)?;
        failed += agreement_with_cpu(&cpu, &gpu, a.agreement)?;
        ran.push(gpu.name());
    }
    println!("backends that ran: {}", ran.join(", "));
    if failed > 0 {
        bail!("{failed} conformance check(s) failed");
    }
    println!("conformance: ok");
    Ok(())
}
