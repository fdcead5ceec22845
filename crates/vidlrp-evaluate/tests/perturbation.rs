//! Perturbation curves on constructed models whose answer is known.

use vidlrp_core::{
    Backend, Composite, Flatten, HostTensor, Linear, Method, PresetOptions, Sequential, Target,
};
use vidlrp_cpu::Cpu;
use vidlrp_evaluate::{
    aopc, curve, random_ranking, ranking, replacement, Order, Region, Replace, Tiling,
};

const CLIP: [usize; 3] = [2, 4, 4];
const VOXELS: usize = 2 * 4 * 4;

/// A one-channel clip model `f_0(x) = sum of x over region `hot` of a 1x2x2 tiling`,
/// `f_1(x) = 0.5`: class 0 depends on that region alone.
fn model(be: &Cpu, tiling: &Tiling, hot: usize) -> Sequential<Cpu> {
    let mut indicator = vec![0f32; VOXELS];
    tiling.replace(hot, 1, &[1.0; VOXELS], &mut indicator);
    let w = HostTensor::new(vec![2, VOXELS], [indicator, vec![0.0; VOXELS]].concat()).unwrap();
    let b = HostTensor::new(vec![2], vec![0.0, 0.5]).unwrap();
    let mut net = Sequential::new(Vec::new());
    net.push(Flatten::new("flatten"));
    net.push(Linear::new(be, "fc", &w, Some(&b)).unwrap());
    net
}

fn ones() -> HostTensor {
    HostTensor::new(vec![1, 1, 2, 4, 4], vec![1.0; VOXELS]).unwrap()
}

#[test]
fn morf_with_a_correct_explanation_removes_the_decisive_region_first() {
    let be = Cpu::new(1).unwrap();
    let tiling = Tiling::new(CLIP, Region([1, 2, 2])).unwrap();
    assert_eq!(tiling.len(), 8);
    let hot = 5;
    let net = model(&be, &tiling, hot);
    let x = ones();
    let composite = Composite::preset(Method::GradientXInput, &PresetOptions::default()).unwrap();
    let e = net
        .explain(&be, &be.upload(&x).unwrap(), &Target::TopOne, &composite)
        .unwrap();
    assert_eq!(e.classes, vec![0], "f_0 = 4 beats f_1 = 0.5");
    let sums = tiling.sums(e.relevance.data(), 1).unwrap();
    let morf = ranking(&sums, Order::Morf);
    assert_eq!(morf[0], hot);
    let zero = replacement(
        x.data(),
        [1, 2, 4, 4],
        Replace::Zero,
        &[],
        &[],
        Region([1, 2, 2]),
        0,
    )
    .unwrap();
    let scores = curve(&be, &net, &x, 0, &tiling, &morf, 8, &zero, 3).unwrap();
    // The score drops at k = 1 and stays there.
    assert_eq!(scores, vec![4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert!((aopc(&scores) - 4.0 * 8.0 / 9.0).abs() < 1e-9);
    // LeRF removes it last: the score holds until the final step.
    let lerf = ranking(&sums, Order::Lerf);
    let scores = curve(&be, &net, &x, 0, &tiling, &lerf, 8, &zero, 4).unwrap();
    assert_eq!(scores[7], 4.0);
    assert_eq!(scores[8], 0.0);
    // The batch size does not change the curve.
    assert_eq!(
        curve(&be, &net, &x, 0, &tiling, &lerf, 8, &zero, 1).unwrap(),
        scores
    );
}

#[test]
fn a_random_ranking_removes_the_decisive_region_at_step_k_with_probability_k_over_n() {
    let be = Cpu::new(1).unwrap();
    let tiling = Tiling::new(CLIP, Region([1, 2, 2])).unwrap();
    let net = model(&be, &tiling, 2);
    let x = ones();
    let zero = vec![0.0; VOXELS];
    let seeds = 800;
    let mut mean = [0f64; 9];
    for seed in 0..seeds {
        let order = random_ranking(tiling.len(), seed);
        let scores = curve(&be, &net, &x, 0, &tiling, &order, 8, &zero, 9).unwrap();
        for (m, s) in mean.iter_mut().zip(scores) {
            *m += f64::from(s) / seeds as f64;
        }
    }
    // E[f(x^(k))] = 4 (1 - k/8).
    for (k, m) in mean.iter().enumerate() {
        let expected = 4.0 * (1.0 - k as f64 / 8.0);
        assert!((m - expected).abs() < 0.25, "k = {k}: {m} vs {expected}");
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let be = Cpu::new(1).unwrap();
    let tiling = Tiling::new(CLIP, Region([1, 2, 2])).unwrap();
    let net = model(&be, &tiling, 0);
    let x = ones();
    let zero = vec![0.0; VOXELS];
    let order: Vec<usize> = (0..8).collect();
    let e = curve(&be, &net, &x, 0, &tiling, &order, 9, &zero, 2).unwrap_err();
    assert!(e.to_string().contains("the clip has 8 regions"), "{e}");
    let e = curve(&be, &net, &x, 7, &tiling, &order, 2, &zero, 2).unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    let e = Tiling::new(CLIP, Region([1, 3, 2])).unwrap_err();
    assert!(e.to_string().contains("do not tile"), "{e}");
}
