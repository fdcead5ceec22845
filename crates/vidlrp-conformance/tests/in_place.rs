//! The memory savers of the relevance pass compute what they replace, bit for bit: a ReLU's
//! relevance from its output instead of its input (the network then frees the input) and from
//! an owned output relevance (`Layer::relevance_owned`), and elementwise operations written
//! into an operand (`Backend::binary_owned`, `Backend::binary_owned_rhs`).

use proptest::prelude::*;
use vidlrp_core::{Backend, BinaryOp, HostTensor, Layer, Relu, Rule, UnaryOp};
use vidlrp_cpu::Cpu;
use vidlrp_reference::Reference;

/// Values with zeros of both signs and negatives among them.
fn values(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            match i % 11 {
                0 => 0.0,
                1 => -0.0,
                _ => ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0,
            }
        })
        .collect()
}

fn relu_from_output_matches<B: Backend>(be: &B, seed: u64) {
    let shape = vec![2, 3, 4, 5, 6];
    let len = shape.iter().product();
    let x = be
        .upload(&HostTensor::new(shape.clone(), values(seed, len)).unwrap())
        .unwrap();
    let r = be
        .upload(&HostTensor::new(shape, values(seed ^ 0xabc, len)).unwrap())
        .unwrap();
    let relu = Relu::new("relu");
    assert!(<Relu as Layer<B>>::relevance_from_output(&relu));
    let y = relu.forward(be, &x).unwrap();
    for rule in [Rule::Pass, Rule::Gradient] {
        let from_input = be
            .download(&relu.relevance(be, &x, &r, &rule).unwrap())
            .unwrap();
        let from_output = be
            .download(&relu.relevance(be, &y, &r, &rule).unwrap())
            .unwrap();
        let bits = |t: &HostTensor| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&from_input), bits(&from_output), "{rule:?}");
        let r2 = be.unary(&r, UnaryOp::Scale(1.0)).unwrap();
        let owned = be
            .download(&relu.relevance_owned(be, &y, r2, &rule).unwrap())
            .unwrap();
        assert_eq!(bits(&from_input), bits(&owned), "{rule:?} owned");
    }
}

fn binary_owned_matches<B: Backend>(be: &B, seed: u64) {
    let shape = vec![3, 1000];
    let a = HostTensor::new(shape.clone(), values(seed, 3000)).unwrap();
    let b = HostTensor::new(shape, values(seed ^ 0x5eed, 3000)).unwrap();
    let (a, b) = (be.upload(&a).unwrap(), be.upload(&b).unwrap());
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::StabDiv(1e-6),
        BinaryOp::GatePositive,
    ] {
        let want = be.download(&be.binary(&a, &b, op).unwrap()).unwrap();
        let a2 = be.unary(&a, UnaryOp::Scale(1.0)).unwrap();
        let got = be.download(&be.binary_owned(a2, &b, op).unwrap()).unwrap();
        assert_eq!(want.data(), got.data(), "{op:?}");
        let b2 = be.unary(&b, UnaryOp::Scale(1.0)).unwrap();
        let got = be
            .download(&be.binary_owned_rhs(&a, b2, op).unwrap())
            .unwrap();
        assert_eq!(want.data(), got.data(), "{op:?} (rhs)");
        // A clone written in place leaves the tensor it was cloned from as it was (clones may
        // share their values until written).
        let before = be.download(&a).unwrap();
        let got = be
            .download(&be.binary_owned(a.clone(), &b, op).unwrap())
            .unwrap();
        assert_eq!(want.data(), got.data(), "{op:?} (clone)");
        assert_eq!(
            be.download(&a).unwrap(),
            before,
            "{op:?}: the original changed"
        );
    }
    let short = be.upload(&HostTensor::zeros(vec![3, 999])).unwrap();
    assert!(be
        .binary_owned_rhs(&a, short.clone(), BinaryOp::Add)
        .is_err());
    assert!(be.binary_owned(a, &short, BinaryOp::Add).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn a_relus_relevance_from_its_output_is_its_relevance_from_its_input(seed in any::<u64>()) {
        relu_from_output_matches(&Cpu::new(2).unwrap(), seed);
        relu_from_output_matches(&Reference::<f64>::new(), seed);
    }

    #[test]
    fn binary_owned_computes_binary(seed in any::<u64>()) {
        binary_owned_matches(&Cpu::new(2).unwrap(), seed);
        binary_owned_matches(&Reference::<f64>::new(), seed);
    }
}
