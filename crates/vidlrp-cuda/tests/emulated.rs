//! The CUDA backend's plans and kernel source, run on the host (`Emulated`: kernels.cu compiled
//! as C++, GEMMs by the reference column-major GEMM), against the CPU backend and the goldens.
//! This is what checks kernel indexing and cuBLAS layouts on machines without a GPU.

use proptest::prelude::*;
use vidlrp_conformance::{agreement, golden};
use vidlrp_core::{Backend, BinaryOp, Conv3dGeometry, HostTensor, Pool3dGeometry, UnaryOp};
use vidlrp_cpu::Cpu;
use vidlrp_cuda::Emulated;

fn values(n: usize, seed: u64) -> Vec<f32> {
    vidlrp_rng::uniform_values(n, seed, -1.0, 1.0)
}

fn host(shape: &[usize], seed: u64) -> HostTensor {
    HostTensor::new(shape.to_vec(), values(shape.iter().product(), seed)).unwrap()
}

/// Compares the two backends' downloaded results element by element, each within `1e-5` of
/// `magnitude` there: the sum of its terms' magnitudes (the operation on `|x|`, `|w|`), the
/// scale of f32 rounding in any summation order. A share of the largest output would flake on
/// outputs that cancel to near zero.
fn agree(what: &str, f_cpu: HostTensor, f_emu: HostTensor, magnitude: HostTensor) {
    assert_eq!(f_cpu.shape(), f_emu.shape(), "{what}: shapes");
    assert_eq!(f_cpu.shape(), magnitude.shape(), "{what}: magnitudes");
    for (i, ((&c, &e), &m)) in f_cpu
        .data()
        .iter()
        .zip(f_emu.data())
        .zip(magnitude.data())
        .enumerate()
    {
        assert!(
            (f64::from(c) - f64::from(e)).abs() <= 1e-5 * f64::from(m),
            "{what}[{i}]: cpu {c} vs emulated {e} (terms' magnitudes sum to {m})"
        );
    }
}

/// Elementwise `|v|`.
fn abs(h: &HostTensor) -> HostTensor {
    HostTensor::new(
        h.shape().to_vec(),
        h.data().iter().map(|v| v.abs()).collect(),
    )
    .unwrap()
}

fn conv_geometry() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Conv3dGeometry, usize)> {
    (
        1usize..3,
        1usize..4,
        1usize..5,
        [1usize..4, 1..4, 1..4],
        [1usize..3, 1..3, 1..3],
        [0usize..2, 0..2, 0..2],
        [1usize..6, 1..7, 1..8],
        1usize..64,
    )
        .prop_filter_map("kernel must fit", |(n, c_in, c_out, k, s, p, e, tile)| {
            let g = Conv3dGeometry {
                kernel: k,
                stride: s,
                padding: p,
            };
            g.output_extent(e).ok()?;
            Some((
                vec![n, c_in, e[0], e[1], e[2]],
                vec![c_out, c_in, k[0], k[1], k[2]],
                g,
                tile,
            ))
        })
}

fn pool_geometry() -> impl Strategy<Value = (Vec<usize>, Pool3dGeometry)> {
    (
        1usize..3,
        1usize..3,
        [1usize..4, 1..4, 1..4],
        [1usize..3, 1..4, 1..3],
        [0usize..2, 0..2, 0..2],
        any::<bool>(),
        [1usize..6, 1..8, 1..8],
    )
        .prop_filter_map("window must fit", |(n, c, k, s, p, ceil_mode, e)| {
            let g = Pool3dGeometry {
                kernel: k,
                stride: s,
                padding: p,
                ceil_mode,
            };
            g.output_extent(e).ok()?;
            Some((vec![n, c, e[0], e[1], e[2]], g))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv3d_and_its_transpose_match_the_cpu((xs, ws, g, tile) in conv_geometry(), seed in any::<u64>()) {
        let cpu = Cpu::new(1).unwrap();
        // Small column tiles: most cases run several tiles per sample.
        let emu = Emulated::new().with_tile_floats(tile * ws[1] * ws[2] * ws[3] * ws[4]);
        let (x, w, b) = (host(&xs, seed), host(&ws, seed ^ 1), host(&[ws[0]], seed ^ 2));
        let yc = cpu.conv3d(&cpu.upload(&x).unwrap(), &cpu.upload(&w).unwrap(), Some(&cpu.upload(&b).unwrap()), &g).unwrap();
        let ye = emu.conv3d(&emu.upload(&x).unwrap(), &emu.upload(&w).unwrap(), Some(&emu.upload(&b).unwrap()), &g).unwrap();
        let up = |h: &HostTensor| cpu.upload(&abs(h)).unwrap();
        let mag = cpu.conv3d(&up(&x), &up(&w), Some(&up(&b)), &g).unwrap();
        agree("conv3d", cpu.download(&yc).unwrap(), emu.download(&ye).unwrap(), cpu.download(&mag).unwrap());

        let gy = host(&cpu.shape(&yc), seed ^ 3);
        let dc = cpu.conv3d_transposed(&cpu.upload(&gy).unwrap(), &cpu.upload(&w).unwrap(), &g, &xs).unwrap();
        let de = emu.conv3d_transposed(&emu.upload(&gy).unwrap(), &emu.upload(&w).unwrap(), &g, &xs).unwrap();
        let mag = cpu.conv3d_transposed(&up(&gy), &up(&w), &g, &xs).unwrap();
        agree("conv3d_transposed", cpu.download(&dc).unwrap(), emu.download(&de).unwrap(), cpu.download(&mag).unwrap());
    }

    #[test]
    fn pooling_and_both_routings_match_the_cpu((xs, g) in pool_geometry(), seed in any::<u64>(), ties in any::<bool>()) {
        let cpu = Cpu::new(1).unwrap();
        let emu = Emulated::new();
        let mut x = host(&xs, seed);
        if ties {
            // Coarse values: many windows hold several equal maxima (first one wins).
            x.data_mut().iter_mut().for_each(|v| *v = (*v * 2.0).round());
        }
        let (xc, xe) = (cpu.upload(&x).unwrap(), emu.upload(&x).unwrap());
        let mc = cpu.max_pool3d(&xc, &g).unwrap();
        let me = emu.max_pool3d(&xe, &g).unwrap();
        // The maximum is one of the values: the same bits.
        let (mh, meh) = (cpu.download(&mc).unwrap(), emu.download(&me).unwrap());
        prop_assert_eq!(mh.data(), meh.data());
        let sc = cpu.sum_pool3d(&xc, &g).unwrap();
        let se = emu.sum_pool3d(&xe, &g).unwrap();
        let mag = cpu.sum_pool3d(&cpu.upload(&abs(&x)).unwrap(), &g).unwrap();
        agree("sum_pool3d", cpu.download(&sc).unwrap(), emu.download(&se).unwrap(), cpu.download(&mag).unwrap());

        let gy = host(&cpu.shape(&mc), seed ^ 5);
        let rc = cpu.max_pool3d_transposed(&xc, &cpu.upload(&gy).unwrap(), &g).unwrap();
        let re = emu.max_pool3d_transposed(&xe, &emu.upload(&gy).unwrap(), &g).unwrap();
        let (rc, re) = (cpu.download(&rc).unwrap(), emu.download(&re).unwrap());
        prop_assert_eq!(rc.data(), re.data());
        let tc = cpu.sum_pool3d_transposed(&cpu.upload(&gy).unwrap(), &g, &xs).unwrap();
        let te = emu.sum_pool3d_transposed(&emu.upload(&gy).unwrap(), &g, &xs).unwrap();
        let (tc, te) = (cpu.download(&tc).unwrap(), emu.download(&te).unwrap());
        prop_assert_eq!(tc.data(), te.data());
    }

    #[test]
    fn dense_layers_match_the_cpu(n in 1usize..4, d_in in 1usize..40, d_out in 1usize..20, seed in any::<u64>()) {
        let cpu = Cpu::new(1).unwrap();
        let emu = Emulated::new();
        let (x, w, b) = (host(&[n, d_in], seed), host(&[d_out, d_in], seed ^ 1), host(&[d_out], seed ^ 2));
        let yc = cpu.linear(&cpu.upload(&x).unwrap(), &cpu.upload(&w).unwrap(), Some(&cpu.upload(&b).unwrap())).unwrap();
        let ye = emu.linear(&emu.upload(&x).unwrap(), &emu.upload(&w).unwrap(), Some(&emu.upload(&b).unwrap())).unwrap();
        let up = |h: &HostTensor| cpu.upload(&abs(h)).unwrap();
        let mag = cpu.linear(&up(&x), &up(&w), Some(&up(&b))).unwrap();
        agree("linear", cpu.download(&yc).unwrap(), emu.download(&ye).unwrap(), cpu.download(&mag).unwrap());
        let g = host(&[n, d_out], seed ^ 3);
        let dc = cpu.linear_transposed(&cpu.upload(&g).unwrap(), &cpu.upload(&w).unwrap()).unwrap();
        let de = emu.linear_transposed(&emu.upload(&g).unwrap(), &emu.upload(&w).unwrap()).unwrap();
        let mag = cpu.linear_transposed(&up(&g), &up(&w)).unwrap();
        agree("linear_transposed", cpu.download(&dc).unwrap(), emu.download(&de).unwrap(), cpu.download(&mag).unwrap());
    }

    #[test]
    fn elementwise_ops_and_reductions_match_the_cpu(n in 1usize..3, len in 1usize..20000, seed in any::<u64>()) {
        let cpu = Cpu::new(1).unwrap();
        let emu = Emulated::new();
        let mut a = host(&[n, len], seed);
        a.data_mut()[0] = 0.0;
        let b = host(&[n, len], seed ^ 1);
        let (ac, ae) = (cpu.upload(&a).unwrap(), emu.upload(&a).unwrap());
        let (bc, be) = (cpu.upload(&b).unwrap(), emu.upload(&b).unwrap());
        for op in [UnaryOp::Positive, UnaryOp::Negative, UnaryOp::Square, UnaryOp::One, UnaryOp::Scale(-1.5),
                   UnaryOp::StepPositive, UnaryOp::StepNegative, UnaryOp::AddPositive(0.25), UnaryOp::AddNegative(0.25)] {
            let c = cpu.download(&cpu.unary(&ac, op).unwrap()).unwrap();
            let e = emu.download(&emu.unary(&ae, op).unwrap()).unwrap();
            prop_assert_eq!(c.data(), e.data(), "{:?}", op);
        }
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::StabDiv(1e-6), BinaryOp::StabDiv(0.25), BinaryOp::GatePositive] {
            let c = cpu.download(&cpu.binary(&ac, &bc, op).unwrap()).unwrap();
            let e = emu.download(&emu.binary(&ae, &be, op).unwrap()).unwrap();
            prop_assert_eq!(c.data(), e.data(), "{:?}", op);
        }
        let (sc, se) = (cpu.sum_per_sample(&ac).unwrap(), emu.sum_per_sample(&ae).unwrap());
        for (c, e) in sc.iter().zip(&se) {
            prop_assert!((c - e).abs() <= 1e-9 * (1.0 + c.abs()), "sums {:?} vs {:?}", sc, se);
        }
        prop_assert_eq!(cpu.min_value(&ac).unwrap(), emu.min_value(&ae).unwrap());
        let fc = cpu.download(&cpu.fill_channels(&[n, 3, 2, 5], &[1.0, -2.0, 0.5]).unwrap()).unwrap();
        let fe = emu.download(&emu.fill_channels(&[n, 3, 2, 5], &[1.0, -2.0, 0.5]).unwrap()).unwrap();
        prop_assert_eq!(fc.data(), fe.data());
    }
}

#[test]
fn emulated_kernels_match_every_golden_explanation() {
    let (cases, failures) = golden::check_every_model(&Emulated::new()).unwrap();
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
fn emulated_kernels_agree_with_the_cpu_on_random_models_and_every_preset() {
    let cpu = Cpu::new(2).unwrap();
    let emu = Emulated::new().with_tile_floats(1 << 20);
    for seed in 0..2 {
        let results = agreement::compare(&cpu, &emu, seed).unwrap();
        assert!(results.iter().filter(|r| r.compared).count() >= 2 * vidlrp_core::PRESETS.len());
        let bad: Vec<String> = results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| format!("{}: rel err {:.3e} {}", r.case, r.relative(), r.note))
            .collect();
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
    }
}

#[test]
fn emulated_kernels_agree_with_the_reference_op_by_op_on_random_geometries() {
    let reference = vidlrp_reference::Reference::<f64>::new();
    let emu = Emulated::new().with_tile_floats(1 << 20);
    // Skip the large geometries (one seed in four): the emulation is slow.
    let seeds = (0..24)
        .filter(|&s| vidlrp_conformance::ops::random_conv(s).0[1] < 16)
        .take(8);
    let mut n = 0;
    for seed in seeds {
        for r in vidlrp_conformance::ops::compare_ops(&reference, &emu, seed) {
            n += 1;
            assert!(
                r.passed,
                "{}: rel err {:.3e} {}",
                r.case,
                r.relative(),
                r.note
            );
        }
    }
    assert!(n >= 8 * 20, "only {n} comparisons");
}
