//! The CUDA backend on a real GPU against the CPU backend and the goldens. Every test here
//! skips (with a note on stderr) where no CUDA driver or device is present, as on CI; where
//! NVRTC is installed the kernel source is still compiled.

use vidlrp_conformance::{agreement, golden};
use vidlrp_cpu::Cpu;
use vidlrp_cuda::{compile_kernels, device_count, nvrtc_present, Cuda};

fn gpu() -> Option<Cuda> {
    if device_count() == 0 {
        eprintln!("skipped: no CUDA driver or device on this machine");
        return None;
    }
    Some(Cuda::new(0).expect("a CUDA device is present, so the backend must start"))
}

#[test]
fn kernels_compile_with_nvrtc() {
    if !nvrtc_present() {
        eprintln!("skipped: libnvrtc not found (set LD_LIBRARY_PATH to a CUDA NVRTC lib folder)");
        return;
    }
    let ptx = compile_kernels().unwrap();
    let text = ptx.to_src();
    for name in [
        "vidlrp_unary",
        "vidlrp_vol2col",
        "vidlrp_col2vol",
        "vidlrp_pool_transposed",
        "vidlrp_partial_sums",
    ] {
        assert!(text.contains(name), "{name} missing from the PTX");
    }
}

#[test]
fn missing_devices_are_errors_not_panics() {
    let n = device_count();
    let err = Cuda::new(n).unwrap_err();
    assert!(err.to_string().contains("cuda"), "{err}");
}

#[test]
fn cuda_matches_every_golden_explanation() {
    let Some(be) = gpu() else { return };
    let (cases, failures) = golden::check_every_model(&be).unwrap();
    assert!(
        cases >= 25,
        "expected the committed fixtures, found {cases} cases"
    );
    assert!(
        failures.is_empty(),
        "golden mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn cuda_agrees_with_the_cpu_on_random_models() {
    let Some(be) = gpu() else { return };
    let cpu = Cpu::new(0).unwrap();
    for seed in 0..4 {
        let bad: Vec<String> = agreement::compare(&cpu, &be, seed)
            .unwrap()
            .iter()
            .filter(|r| !r.passed)
            .map(|r| format!("{}: rel err {:.3e} {}", r.case, r.relative(), r.note))
            .collect();
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
    }
}
