//! The reference backend as the oracle: it reproduces the goldens (f32 and f64), the fast CPU
//! backend agrees with it op by op on random geometries and on random models, and in f64 DTD
//! conserves relevance layer by layer to 1e-10 on the goldens' models.

use vidlrp_conformance::golden::{check_every_model, fixtures_dir, load_all};
use vidlrp_conformance::{agreement, conservation, ops};
use vidlrp_core::{Backend, Composite, HostTensor, Method};
use vidlrp_cpu::Cpu;
use vidlrp_reference::Reference;

#[test]
fn the_reference_reproduces_every_golden_in_f32_and_f64() {
    for (name, (cases, failures)) in [
        ("f32", check_every_model(&Reference::<f32>::new()).unwrap()),
        ("f64", check_every_model(&Reference::<f64>::new()).unwrap()),
    ] {
        assert!(
            cases >= 25,
            "{name}: expected the committed fixtures, found {cases} cases"
        );
        assert!(
            failures.is_empty(),
            "{name}: golden mismatches:\n{}",
            failures.join("\n")
        );
    }
}

#[test]
fn dtd_conserves_layer_by_layer_to_1e_10_in_f64_on_the_goldens_models() {
    let be = Reference::<f64>::new();
    let mut layers = 0;
    for m in load_all(&fixtures_dir()).unwrap() {
        let s = m.input.shape().to_vec();
        // One sample at a time: the check follows the first sample.
        let x = HostTensor::new(
            [&[1], &s[1..]].concat(),
            m.input.data()[..s[1..].iter().product::<usize>()].to_vec(),
        )
        .unwrap();
        let (net, _) =
            vidlrp_c3d::build(&be, m.weights.clone(), m.pool5, [s[1], s[2], s[3], s[4]]).unwrap();
        let dtd = m
            .methods
            .iter()
            .find(|g| g.key == "dtd")
            .unwrap_or_else(|| panic!("{}: no dtd golden", m.name));
        let xb = be.upload(&x).unwrap();
        for l in conservation::layerwise(&be, &net, &xb, &dtd.composite).unwrap() {
            layers += 1;
            assert!(l.holds(), "{} / {l}", m.name);
        }
    }
    assert!(layers >= 3 * 20, "only {layers} layers checked");
}

#[test]
fn the_check_catches_a_leak() {
    // The same check in f32 cannot reach 1e-10: it must report it (the check can fail).
    let be = Reference::<f32>::new();
    let m = &load_all(&fixtures_dir()).unwrap()[0];
    let s = m.input.shape().to_vec();
    let (net, _) =
        vidlrp_c3d::build(&be, m.weights.clone(), m.pool5, [s[1], s[2], s[3], s[4]]).unwrap();
    let xb = be.upload(&m.input).unwrap();
    let composite = Composite::preset(Method::Dtd, &Default::default()).unwrap();
    let worst = conservation::layerwise(
        &be,
        &net,
        &xb,
        &Composite {
            first: None,
            ..composite
        },
    )
    .unwrap()
    .iter()
    .map(conservation::LayerConservation::relative)
    .fold(0.0, f64::max);
    assert!(
        worst > conservation::EXACT,
        "f32 rounding should show: worst {worst:e}"
    );
}

/// The seeds the op-by-op test uses reach every kernel path of the CPU backend.
#[test]
fn the_random_geometries_reach_every_cpu_path() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..12 {
        let (x, w, g) = ops::random_conv(seed);
        let out = g.output_extent([x[2], x[3], x[4]]).unwrap_or([0; 3]);
        let positions: usize = out.iter().product();
        let stride1 = g.stride == [1; 3];
        if x[1] == 64 && stride1 {
            seen.insert("64-lane gather and flipped-kernel transpose");
        }
        if x[1] == 16 && stride1 && positions > 4096 {
            seen.insert("16-lane gather, packed GEMM over > 4096 positions");
        }
        if x[1] <= 3 && stride1 {
            seen.insert("direct few-channel transpose");
        }
        if x[0] > 1 && positions < 4096 {
            seen.insert("batched small layers");
        }
        if !stride1 {
            seen.insert("strided convolution (GEMM + col2im)");
        }
        if g.padding
            .iter()
            .zip(&g.kernel)
            .any(|(p, k)| p + 1 == *k && *k > 1)
        {
            seen.insert("padding k-1");
        }
        if w[0] >= 64 || x[1] >= 64 {
            seen.insert("64 channels");
        }
        let (_, p) = ops::random_pool(seed);
        let tiled = p.kernel[1..] == [2, 2] && p.stride == p.kernel && p.padding == [0; 3];
        seen.insert(if tiled {
            "C3D pooling fast path"
        } else {
            "general pooling"
        });
    }
    assert_eq!(seen.len(), 9, "reached only {seen:?}");
}

#[test]
fn the_cpu_backend_agrees_with_the_reference_op_by_op() {
    let cpu = Cpu::new(2).unwrap();
    let reference = Reference::<f64>::new();
    let mut failures = Vec::new();
    let mut n = 0;
    for seed in 0..12 {
        for r in ops::compare_ops(&reference, &cpu, seed) {
            n += 1;
            if !r.passed {
                failures.push(format!(
                    "{}: rel err {:.3e} {}",
                    r.case,
                    r.relative(),
                    r.note
                ));
            }
        }
    }
    assert!(n > 12 * 20, "only {n} comparisons");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_cpu_backend_agrees_with_the_reference_on_random_models() {
    let cpu = Cpu::new(2).unwrap();
    let reference = Reference::<f64>::new();
    let (mut compared, mut failures) = (0, Vec::new());
    for seed in 0..2 {
        for r in agreement::compare(&reference, &cpu, seed).unwrap() {
            compared += usize::from(r.compared);
            if !r.passed {
                failures.push(format!(
                    "{}: rel err {:.3e} {}",
                    r.case,
                    r.relative(),
                    r.note
                ));
            }
        }
    }
    assert!(compared >= 40, "only {compared} comparisons were made");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
