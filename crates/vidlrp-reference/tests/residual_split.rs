//! Relevance at a residual sum `a + b`, split in proportion to the summands
//! (`vidlrp_core::rules::sum_relevance`): against its definition in f64, conservation, the
//! stabiliser where the summands cancel, and the CPU backend against the reference.

mod common;

use vidlrp_core::rules::{sum_relevance, STABILIZER};
use vidlrp_core::{Backend, HostTensor};
use vidlrp_reference::Reference;

/// Values in `[-2, 2)` from a xorshift stream, exact in f32.
fn values(n: usize, seed: u64) -> Vec<f32> {
    common::dyadic_values(n, seed, -2.0, 4096)
}

const SHAPE: [usize; 5] = [2, 4, 3, 5, 5];

fn host(seed: u64) -> HostTensor {
    HostTensor::new(SHAPE.to_vec(), values(SHAPE.iter().product(), seed)).unwrap()
}

#[test]
fn the_split_is_proportional_and_conserves() {
    let be = Reference::<f64>::new();
    let (a, b, r) = (host(1), host(2), host(3));
    let (ga, gb, gr) = (
        be.upload(&a).unwrap(),
        be.upload(&b).unwrap(),
        be.upload(&r).unwrap(),
    );
    let (ra, rb) = sum_relevance(&be, &ga, &gb, &gr).unwrap();
    let eps = f64::from(STABILIZER);
    for i in 0..a.data().len() {
        let (x, y, z) = (
            f64::from(a.data()[i]),
            f64::from(b.data()[i]),
            f64::from(r.data()[i]),
        );
        let sum = x + y;
        // stab(z) = z + eps sign(z), sign(0) = +1.
        let stab = sum + if sum >= 0.0 { eps } else { -eps };
        let (want_a, want_b) = (x / stab * z, y / stab * z);
        let (got_a, got_b) = (ra.as_slice().unwrap()[i], rb.as_slice().unwrap()[i]);
        assert!(
            (got_a - want_a).abs() <= 1e-12 * want_a.abs().max(1.0),
            "{i}"
        );
        assert!(
            (got_b - want_b).abs() <= 1e-12 * want_b.abs().max(1.0),
            "{i}"
        );
        // The two shares add up to R, up to what the stabiliser keeps back.
        assert!((got_a + got_b - z * sum / stab).abs() <= 1e-12 * z.abs().max(1.0));
        if sum.abs() > 0.5 {
            assert!((got_a + got_b - z).abs() <= 1e-5 * z.abs().max(1.0), "{i}");
        }
    }
}

#[test]
fn cancelling_summands_stay_finite() {
    // a + b = 0 exactly: stab(0) = eps, so each share is a / eps R, finite and opposite.
    let be = Reference::<f64>::new();
    let a = HostTensor::new(vec![1, 1, 1, 1, 2], vec![1.0, -0.5]).unwrap();
    let b = HostTensor::new(vec![1, 1, 1, 1, 2], vec![-1.0, 0.5]).unwrap();
    let r = HostTensor::new(vec![1, 1, 1, 1, 2], vec![1e-6, 2e-6]).unwrap();
    let (ra, rb) = sum_relevance(
        &be,
        &be.upload(&a).unwrap(),
        &be.upload(&b).unwrap(),
        &be.upload(&r).unwrap(),
    )
    .unwrap();
    for (p, q) in ra.iter().zip(rb.iter()) {
        assert!(p.is_finite() && q.is_finite());
        assert!((p + q).abs() < 1e-12, "{p} + {q}");
    }
    // Mismatched shapes are errors.
    let other = HostTensor::new(vec![1, 1, 1, 1, 3], vec![0.0; 3]).unwrap();
    let bad = sum_relevance(
        &be,
        &be.upload(&a).unwrap(),
        &be.upload(&other).unwrap(),
        &be.upload(&r).unwrap(),
    );
    assert!(bad.is_err());
}

#[test]
fn the_cpu_backend_agrees_with_the_reference() {
    let reference = Reference::<f64>::new();
    let cpu = vidlrp_cpu::Cpu::new(2).unwrap();
    let (a, b, r) = (host(4), host(5), host(6));
    let up_ref = |t: &HostTensor| reference.upload(t).unwrap();
    let up_cpu = |t: &HostTensor| cpu.upload(t).unwrap();
    let (ra, rb) = sum_relevance(&reference, &up_ref(&a), &up_ref(&b), &up_ref(&r)).unwrap();
    let (ca, cb) = sum_relevance(&cpu, &up_cpu(&a), &up_cpu(&b), &up_cpu(&r)).unwrap();
    for (want, got) in [(ra, ca), (rb, cb)] {
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        let worst =
            (want.iter().zip(got.iter())).fold(0f64, |m, (p, q)| m.max((p - f64::from(*q)).abs()));
        assert!(worst <= 1e-4 * scale, "{worst} of {scale}");
    }
}

/// A network with nested residual blocks (an identity shortcut around a block that itself
/// holds a block with a convolution shortcut), non-negative weights and input, no biases:
/// z+ everywhere conserves relevance up to the stabiliser (each neuron keeps `z / (z + 1e-6)` of
/// its relevance), so in f64 the input relevance sums to the score within 1e-6 and each block's
/// sum passes on what reaches it within 1e-10; the gradient composite's relevance is the
/// gradient (checked against central differences of the forward pass).
/// A stem, a block holding a block (network shortcut inside, identity outside), a dense head;
/// positive weights and input, on the f64 reference. Returns the network and its input.
fn nested_net(be: &Reference<f64>) -> (vidlrp_core::Sequential<Reference<f64>>, HostTensor) {
    use vidlrp_core::{Conv3d, Flatten, Linear, Relu, Residual, Sequential};
    let pos = |n: usize, seed: u64| {
        values(n, seed)
            .iter()
            .map(|v| v.abs() + 0.1)
            .collect::<Vec<f32>>()
    };
    let conv = |name: &str, cin: usize, cout: usize, k: usize, seed: u64| {
        let w =
            HostTensor::new(vec![cout, cin, k, k, k], pos(cout * cin * k * k * k, seed)).unwrap();
        Conv3d::from_host(be, name, w, None, [1; 3], [k / 2; 3]).unwrap()
    };
    let mut inner_main = Sequential::new(vec![]);
    inner_main.push(conv("b.inner.conv", 2, 2, 3, 11));
    let mut inner_short = Sequential::new(vec![]);
    inner_short.push(conv("b.inner.short", 2, 2, 1, 12));
    let mut outer_main = Sequential::new(vec![]);
    outer_main.push(conv("b.conv1", 2, 2, 3, 13));
    outer_main.push(Relu::new("b.relu1"));
    outer_main.push_residual(Residual::new("b.inner", inner_main, inner_short));
    let mut net = Sequential::new(vec![]);
    net.push(conv("stem", 1, 2, 3, 10));
    net.push(Relu::new("stem.relu"));
    net.push_residual(Residual::new("b", outer_main, Sequential::new(vec![])));
    net.push(Relu::new("b.relu"));
    net.push(Flatten::new("flatten"));
    let fc = HostTensor::new(vec![3, 2 * 2 * 3 * 3], pos(3 * 36, 14)).unwrap();
    net.push(Linear::from_host(be, "fc", fc, None).unwrap());
    let input = HostTensor::new(vec![1, 1, 2, 3, 3], pos(18, 15)).unwrap();
    (net, input)
}

#[test]
fn nested_residual_blocks_conserve_and_pass_the_gradient() {
    use vidlrp_core::{Composite, LayerKind, Target};
    let be = Reference::<f64>::new();
    let (net, input) = nested_net(&be);
    let x = be.upload(&input).unwrap();
    let zplus = Composite {
        first: None,
        ..Composite::dtd(vec![0.0], vec![1.0])
    };
    let e = net.explain(&be, &x, &Target::TopOne, &zplus).unwrap();
    let score = f64::from(e.scores[0]);
    assert!(
        (e.input_sums[0] - score).abs() <= 1e-6 * score,
        "{} vs {score}",
        e.input_sums[0]
    );
    let sums: Vec<_> = e
        .layers
        .iter()
        .filter(|l| l.kind == LayerKind::ResidualSum)
        .collect();
    assert_eq!(sums.len(), 2);
    for l in sums {
        assert!(
            (l.input_sum[0] - l.output_sum[0]).abs() <= 1e-10 * score,
            "{}",
            l.layer
        );
    }
    // Rules in forward order: the stem gets the first rule of DTD, the sums the sum rule.
    let rules = net.rules(&Composite::dtd(vec![0.0], vec![1.0])).unwrap();
    assert_eq!(rules.len(), net.leaves().len() + 2);
    assert!(matches!(rules[0], vidlrp_core::Rule::ZBox { .. }));
    // The gradient through both blocks, against central differences.
    let c = e.classes[0];
    let g = net
        .explain(&be, &x, &Target::Class(c), &Composite::sensitivity())
        .unwrap();
    let f = |v: &HostTensor| {
        let out = be
            .download(&net.forward(&be, &be.upload(v).unwrap()).unwrap())
            .unwrap();
        f64::from(out.data()[c])
    };
    for i in 0..input.data().len() {
        let (mut up, mut down) = (input.clone(), input.clone());
        // Every unit is active (positive weights and input): the network is linear here, so a
        // wide step loses nothing, and it keeps the f32 rounding of the logits small.
        up.data_mut()[i] += 0.05;
        down.data_mut()[i] -= 0.05;
        let step = f64::from(up.data()[i]) - f64::from(down.data()[i]);
        let numeric = (f(&up) - f(&down)) / step;
        let sa = f64::from(g.relevance.data()[i]);
        assert!(
            (sa - numeric * numeric).abs() <= 1e-3 * sa.max(1.0),
            "{i}: {sa} vs {}",
            numeric * numeric
        );
    }
}

/// A rule given by name replaces the role's choice for that step only (layers and residual
/// sums), and the same checks hold: unknown names, rules that do not fit, bad parameters.
#[test]
fn rules_by_name_override_the_role_choice() {
    use vidlrp_core::{Composite, Rule, Target};
    let be = Reference::<f64>::new();
    let (net, input) = nested_net(&be);
    let x = be.upload(&input).unwrap();
    let dtd = Composite::dtd(vec![0.0], vec![1.0]);
    let eps = Rule::Epsilon { epsilon: 0.25 };
    // The only dense layer by name = every dense layer by role: the same numbers.
    let by_name = dtd.clone().with_rule("fc", eps.clone());
    let by_role = Composite {
        linear: eps.clone(),
        ..dtd.clone()
    };
    let (a, b) = (
        net.explain(&be, &x, &Target::TopOne, &by_name).unwrap(),
        net.explain(&be, &x, &Target::TopOne, &by_role).unwrap(),
    );
    assert_eq!(a.relevance.data(), b.relevance.data());
    let plain = net.explain(&be, &x, &Target::TopOne, &dtd).unwrap();
    assert_ne!(a.relevance.data(), plain.relevance.data());
    // A residual sum by name; the last rule given for a name wins.
    let rules = net
        .rules(
            &dtd.clone()
                .with_rule("b.inner", Rule::Pass)
                .with_rule("b.inner", Rule::Gradient),
        )
        .unwrap();
    // The per-layer list runs top to bottom; rules run in forward order.
    let names: Vec<&str> = a.layers.iter().rev().map(|l| l.layer.as_str()).collect();
    let at = names.iter().position(|n| *n == "b.inner").unwrap();
    assert_eq!(rules[at], Rule::Gradient);
    assert_eq!(rules.iter().filter(|r| **r == Rule::Gradient).count(), 1);
    // Refusals.
    let err = net
        .rules(&dtd.clone().with_rule("fc8", eps))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"fc8\"") && err.contains("b.inner"), "{err}");
    let err = net
        .rules(&dtd.clone().with_rule(
            "stem.relu",
            Rule::ZPlus {
                positive_bias: false,
            },
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot be applied to layer stem.relu"),
        "{err}"
    );
    let err = net
        .rules(&dtd.with_rule("fc", Rule::Epsilon { epsilon: -1.0 }))
        .unwrap_err()
        .to_string();
    assert!(err.contains("epsilon must be >= 0"), "{err}");
}
