//! Whole random C3D-shaped models on the CPU: conservation under DTD (both pooling rules) and
//! the sign of z+.

use proptest::prelude::*;
use vidlrp_conformance::random::{conserves, dtd_on_zero_bias_model, random_case, MIN_SCORE};
use vidlrp_core::{Backend, Composite, ErrorKind, Rule, Target};
use vidlrp_cpu::Cpu;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// One forward pass shared by every method (`explain_each`) gives each method's
    /// explanation of `explain` bit for bit, in the order given.
    #[test]
    fn a_shared_forward_pass_gives_each_methods_own_explanation(seed in any::<u64>()) {
        let case = random_case(seed);
        let be = Cpu::new(2).unwrap();
        let s = case.input.shape().to_vec();
        let (net, _) = vidlrp_c3d::build(&be, case.weights.clone(), case.pool5, [s[1], s[2], s[3], s[4]]).unwrap();
        let x = be.upload(&case.input).unwrap();
        let methods = vidlrp_conformance::agreement::methods(&case.low, &case.high);
        let alone: Vec<_> = methods.iter().map(|(_, c)| net.explain(&be, &x, &Target::TopOne, c)).collect();
        // DTD is only defined for a positive top logit; then every method must refuse together.
        prop_assume!(alone.iter().all(Result::is_ok));
        let composites: Vec<&Composite> = methods.iter().map(|(_, c)| c).collect();
        let shared = net.explain_each(&be, &x, &Target::TopOne, &composites).unwrap();
        prop_assert_eq!(shared.len(), methods.len());
        for ((name, _), (a, b)) in methods.iter().zip(alone.into_iter().zip(shared)) {
            let a = a.unwrap();
            prop_assert_eq!(a.relevance.data(), b.relevance.data(), "{}", name);
            prop_assert_eq!(a.logits.data(), b.logits.data(), "{}", name);
            prop_assert_eq!(&a.input_sums, &b.input_sums, "{}", name);
        }
    }

    /// With zero biases a z+ denominator can only vanish where the relevance above it
    /// is already 0, so nothing leaks: `sum_i R_i = f_c(x)` up to the stabiliser, which only
    /// ever removes relevance (`R_j z_j / (z_j + eps)`), by about `eps / z_j` per layer: random
    /// narrow models have logits down to ~0.001; scores below 0.1 are skipped and the rest must
    /// conserve to 1e-3. No layer may create
    /// relevance.
    #[test]
    fn dtd_conserves_on_random_models(seed in any::<u64>(), wta in any::<bool>()) {
        let be = Cpu::new(2).unwrap();
        let pool = if wta { Rule::PoolWinnerTakeAll } else { Rule::PoolProportional };
        let e = dtd_on_zero_bias_model(&be, seed, pool).unwrap();
        prop_assume!(e.is_some());
        let e = e.unwrap();
        for (n, ratio) in e.conservation().iter().enumerate() {
            prop_assert!(conserves(*ratio), "sample {}: sum R / f_c = {}", n, ratio);
        }
        for l in &e.layers {
            for (a, b) in l.input_sum.iter().zip(&l.output_sum) {
                prop_assert!(*a <= b + 1e-6 * b.abs() && *a >= b - 2e-4 * b.abs(), "layer {}: {} -> {}", l.layer, b, a);
            }
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
        match net.explain(&be, &xb, &Target::TopOne, &composite) {
            Ok(e) => prop_assert!(e.relevance.data().iter().all(|&v| v >= 0.0)),
            // The only refusal expected: the top logit is not positive.
            Err(e) => prop_assert_eq!(e.kind(), ErrorKind::NonPositiveScore, "{}", e),
        }
    }
}

/// The property above must not pass vacuously: most seeds give a top logit >= MIN_SCORE.
#[test]
fn most_random_models_are_explainable_by_dtd() {
    let be = Cpu::new(2).unwrap();
    let ok = (0..16u64)
        .filter(|&seed| {
            dtd_on_zero_bias_model(&be, seed, Rule::PoolProportional)
                .unwrap()
                .is_some()
        })
        .count();
    assert!(
        ok >= 8,
        "only {ok} of 16 random models had a top logit >= {MIN_SCORE}"
    );
}
