//! The CUDA backend on a real GPU against the reference backend and the goldens. Every test
//! here skips loudly where no CUDA driver or device is present, as on CI, and fails instead
//! under `VIDLRP_REQUIRE_GPU=1`; where NVRTC is installed the kernel source is still compiled.

use vidlrp_conformance::environment::skip;
use vidlrp_conformance::{agreement, golden, ops};
use vidlrp_cuda::{compile_kernels, device_count, nvrtc_present, Cuda};
use vidlrp_reference::Reference;

#[track_caller]
fn gpu(test: &str) -> Option<Cuda> {
    if device_count() == 0 {
        skip(
            test,
            "no CUDA driver or device on this machine",
            "VIDLRP_REQUIRE_GPU",
        );
        return None;
    }
    Some(Cuda::new(0).expect("a CUDA device is present, so the backend must start"))
}

#[test]
fn kernels_compile_with_nvrtc() {
    if !nvrtc_present() {
        skip(
            "kernels_compile_with_nvrtc",
            "libnvrtc not found (set LD_LIBRARY_PATH to a CUDA NVRTC lib folder)",
            "VIDLRP_REQUIRE_GPU",
        );
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
    let Some(be) = gpu("cuda_matches_every_golden_explanation") else {
        return;
    };
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
fn cuda_agrees_with_the_reference_on_random_models_and_geometries() {
    let Some(be) = gpu("cuda_agrees_with_the_reference_on_random_models_and_geometries") else {
        return;
    };
    let reference = Reference::<f64>::new();
    let mut results = Vec::new();
    for seed in 0..4 {
        results.extend(agreement::compare(&reference, &be, seed).unwrap());
    }
    for seed in 0..16 {
        results.extend(ops::compare_ops(&reference, &be, seed));
    }
    let compared = results.iter().filter(|r| r.compared).count();
    let bad: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{}: rel err {:.3e} {}", r.case, r.relative(), r.note))
        .collect();
    assert!(compared > 300, "only {compared} comparisons were made");
    assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
}
