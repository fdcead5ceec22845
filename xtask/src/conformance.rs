//! `cargo xtask conformance`.

use anyhow::{bail, Result};
use vidlrp_conformance::golden::{check, fixtures_dir, load_all};
use vidlrp_conformance::random::{conserves, dtd_on_zero_bias_model, MIN_SCORE};
use vidlrp_conformance::{agreement, conservation, ops};
use vidlrp_core::{Backend, Rule};
use vidlrp_cpu::Cpu;
use vidlrp_reference::Reference;

#[derive(clap::Args)]
pub struct Args {
    /// Number of random models to check for conservation.
    #[arg(long, default_value_t = 24)]
    random: u64,
    /// Number of random models on which every backend is compared with the reference.
    #[arg(long, default_value_t = 2)]
    agreement: u64,
    /// Number of random geometries on which every op is compared with the reference.
    #[arg(long, default_value_t = 16)]
    ops: u64,
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

/// `other` against the reference backend (f64): every op on `ops` random geometries, every
/// preset on `models` random models. Returns the number of failures.
fn agreement_with_reference<B: Backend>(other: &B, ops_seeds: u64, models: u64) -> Result<usize> {
    let reference = Reference::<f64>::new();
    let (mut n, mut refused, mut failed) = (0, 0, 0);
    let mut worst = (0.0f64, String::new());
    let mut results = Vec::new();
    for seed in 0..ops_seeds {
        results.extend(ops::compare_ops(&reference, other, seed));
    }
    for seed in 0..models {
        results.extend(agreement::compare(&reference, other, seed).map_err(anyhow::Error::msg)?);
    }
    for r in results {
        if !r.compared {
            refused += 1;
            continue;
        }
        n += 1;
        if r.passed && r.relative() > worst.0 {
            worst = (r.relative(), r.case.clone());
        }
        if !r.passed {
            failed += 1;
            println!("  FAIL {}: rel err {:.3e} {}", r.case, r.relative(), r.note);
        }
    }
    println!(
        "  agreement with the reference: {}/{n} within 1e-4 ({ops_seeds} random geometries x every \
         op, {models} random models x every preset; {refused} refused by both as expected; worst \
         {} at {:.2e})",
        n - failed,
        worst.1,
        worst.0
    );
    if n == 0 {
        bail!("nothing was compared");
    }
    Ok(failed)
}

/// DTD's layer-by-layer conservation on the goldens' models, in f64 on the reference backend:
/// each layer passes down what its rule keeps to 1e-10.
fn exact_conservation() -> Result<usize> {
    let be = Reference::<f64>::new();
    // (model, network, input, composite) of every golden C3D and video ResNet.
    let mut cases = Vec::new();
    for m in load_all(&fixtures_dir()).map_err(anyhow::Error::msg)? {
        let s = m.input.shape().to_vec();
        let one = s[1..].iter().product::<usize>();
        let x =
            vidlrp_core::HostTensor::new([&[1], &s[1..]].concat(), m.input.data()[..one].to_vec())?;
        let (net, _) =
            vidlrp_c3d::build(&be, m.weights.clone(), m.pool5, [s[1], s[2], s[3], s[4]])?;
        let Some(dtd) = m.methods.iter().find(|g| g.key == "dtd") else {
            bail!("{}: no dtd golden", m.name);
        };
        cases.push((m.name.clone(), net, x, dtd.composite.clone()));
    }
    for arch in ["r3d", "mc3", "r2plus1d"] {
        let d = fixtures_dir().join("video-resnets").join(arch);
        let model = vidlrp_model::load(&d.join("model.safetensors"), None)?;
        let x = vidlrp_io::read_npy(&d.join("input.npy"))?;
        let s = x.shape().to_vec();
        let net = model.into_network(&be, [s[1], s[2], s[3], s[4]])?;
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("meta.json"))?)?;
        let bound = |k: &str| -> Result<Vec<f32>> { Ok(serde_json::from_value(meta[k].clone())?) };
        cases.push((
            format!("video-resnets/{arch}"),
            net,
            x,
            vidlrp_core::Composite::dtd(bound("low")?, bound("high")?),
        ));
    }
    let (mut layers, mut failed, mut worst) = (0, 0, 0f64);
    for (name, net, x, composite) in &cases {
        let xb = be.upload(x)?;
        for l in conservation::layerwise(&be, net, &xb, composite).map_err(anyhow::Error::msg)? {
            layers += 1;
            worst = worst.max(l.relative());
            if !l.holds() {
                failed += 1;
                println!("  FAIL {name} / {l}");
            }
        }
    }
    println!("  f64 conservation, step by step: {layers} layers and residual sums of {} golden models (C3D and video ResNets; worst {worst:.2e}, bound {:e}), {failed} failed", cases.len(), conservation::EXACT);
    Ok(failed)
}

pub fn run(a: Args) -> Result<()> {
    let reference = Reference::<f64>::new();
    let mut ran = vec![reference.name()];
    println!("backend {} (the oracle):", reference.name());
    let mut failed = goldens(&reference)?;
    failed += exact_conservation()?;

    let cpu = Cpu::new(a.threads)?;
    ran.push(cpu.name());
    println!("backend {}:", cpu.name());
    failed += goldens(&cpu)?;
    failed += conservation(&cpu, a.random)?;
    failed += agreement_with_reference(&cpu, a.ops, a.agreement)?;

    // The CUDA kernel source and GEMM plans, emulated on the host: runs everywhere.
    let emulated = vidlrp_cuda::Emulated::new();
    println!("backend {}:", emulated.name());
    failed += goldens(&emulated)?;
    failed += agreement_with_reference(&emulated, a.ops.min(6), a.agreement.min(1))?;
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
        failed += agreement_with_reference(&gpu, a.ops, a.agreement)?;
        ran.push(gpu.name());
    }
    println!("backends that ran: {}", ran.join(", "));
    if failed > 0 {
        bail!("{failed} conformance check(s) failed");
    }
    println!("conformance: ok");
    Ok(())
}
