//! Whole random C3D-shaped models on the CPU: conservation under DTD (both pooling rules) and
//! the sign of z+.

use proptest::prelude::*;
use vidlrp_conformance::random::random_case;
use vidlrp_core::{Backend, Composite, Rule, Target};
use vidlrp_cpu::Cpu;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// With zero biases a z+ denominator can only vanish where the relevance above it
    /// is already 0, so nothing leaks: `sum_i R_i = f_c(x)` up to the stabiliser, which only
    /// ever removes relevance (`R_j z_j / (z_j + eps)`), by about `eps / z_j` per layer: random
    /// narrow models have logits down to ~0.001; scores below 0.1 are skipped and the rest must
    /// conserve to 1e-3. No layer may create
    /// relevance.
    #[test]
    fn dtd_conserves_on_random_models(seed in any::<u64>(), wta in any::<bool>()) {
        let mut case = random_case(seed);
        for (name, t) in case.weights.iter_mut() {
            if name.ends_with(".bias") {
                t.data_mut().fill(0.0);
            }
        }
        let be = Cpu::new(2).unwrap();
        let s = case.input.shape().to_vec();
        let (net, _) = vidlrp_c3d::build(&be, case.weights, case.pool5, [s[1], s[2], s[3], s[4]]).unwrap();
        let x = be.upload(&case.input).unwrap();
        let mut composite = Composite::dtd(case.low, case.high);
        if wta {
            composite.pool = Rule::PoolWinnerTakeAll;
        }
        match net.explain(&be, &x, &Target::TopOne, &composite) {
            Ok(e) => {
                // The stabiliser's share eps / f_c would dominate tinier scores.
                prop_assume!(e.scores.iter().all(|&f| f >= 0.1));
                for (n, ratio) in e.conservation().iter().enumerate() {
                    prop_assert!(*ratio <= 1.0 + 1e-6 && *ratio > 1.0 - 1e-3, "sample {}: sum R / f_c = {}", n, ratio);
                }
                for l in &e.layers {
                    for (a, b) in l.input_sum.iter().zip(&l.output_sum) {
                        prop_assert!(*a <= b + 1e-6 * b.abs() && *a >= b - 2e-4 * b.abs(), "layer {}: {} -> {}", l.layer, b, a);
                    }
                }
            }
            // A non-positive top logit cannot be explained by DTD; that is reported, not a bug.
            Err(err) => prop_assert_eq!(err.kind(), vidlrp_core::ErrorKind::NonPositiveScore),
        }
    }

    #[test]
    fn zplus_above_zbox_gives_non_negative_hidden_relevance(seed in any::<u64>()) {
        let case = random_case(seed);
        let be = Cpu::new(2).unwrap();
        let s = case.input.shape().to_vec();
        let (net, _) = vidlrp_c3d::build(&be, case.weights, case.pool5, [s[1], s[2], s[3], s[4]]).unwrap();
        // Every layer z+, including the first, on a non-negative input.
        let mut x = case.input.clone();
        x.data_mut().iter_mut().for_each(|v| *v = v.abs());
        let xb = be.upload(&x).unwrap();
        let composite = Composite { first: None, ..Composite::dtd(vec![0.0], vec![1.0]) };
        if let Ok(e) = net.explain(&be, &xb, &Target::TopOne, &composite) {
            prop_assert!(e.relevance.data().iter().all(|&v| v >= 0.0));
        }
    }
}

/// The property above must not pass vacuously: most seeds give a positive top logit.
#[test]
fn most_random_models_are_explainable_by_dtd() {
    let be = Cpu::new(2).unwrap();
    let mut ok = 0;
    for seed in 0..16u64 {
        let mut case = random_case(seed);
        for (name, t) in case.weights.iter_mut() {
            if name.ends_with(".bias") {
                t.data_mut().fill(0.0);
            }
        }
        let s = case.input.shape().to_vec();
        let (net, _) =
            vidlrp_c3d::build(&be, case.weights, case.pool5, [s[1], s[2], s[3], s[4]]).unwrap();
        let x = be.upload(&case.input).unwrap();
        if let Ok(e) = net.explain(
            &be,
            &x,
            &Target::TopOne,
            &Composite::dtd(case.low, case.high),
        ) {
            ok += usize::from(e.scores.iter().all(|&f| f >= 0.1));
        }
    }
    assert!(
        ok >= 8,
        "only {ok} of 16 random models had a top logit >= 0.1"
    );
}
