//! The streams against published reference outputs (not values computed here).

use vidlrp_rng::{Rng, SplitMix64};

/// Vigna's `splitmix64.c` from state 0 (the values libraries seeding xoroshiro with it test).
#[test]
fn splitmix64_matches_the_reference_implementation() {
    let mut s = SplitMix64(0);
    let got: Vec<u64> = (0..5).map(|_| s.next_u64()).collect();
    assert_eq!(
        got,
        [
            0xe220_a839_7b1d_cdaf,
            0x6e78_9e6a_a1b9_65f4,
            0x06c4_5d18_8009_454f,
            0xf88b_b8a8_724c_81ec,
            0x1b39_896a_51a8_749b,
        ]
    );
}

/// Blackman and Vigna's `xoshiro256plusplus.c` from the state `{0, 0, 0, 1}`.
#[test]
fn xoshiro256plusplus_matches_the_reference_implementation() {
    let mut r = Rng::from_state([0, 0, 0, 1]);
    let got: Vec<u64> = (0..10).map(|_| r.next_u64()).collect();
    assert_eq!(
        got,
        [
            0x0000_0000_0080_0000,
            0x0000_0000_0080_0011,
            0x0002_2000_0080_0011,
            0x0002_2000_4400_0020,
            0x0002_2000_4480_08a1,
            0x0110_2100_8022_08a0,
            0x0114_0022_8420_0880,
            0x0402_8966_44a6_4095,
            0x8a14_a0a2_44ac_c891,
            0x8c88_ba46_80b2_0495,
        ]
    );
}

/// Box-Muller normals: mean 0 and variance `std^2` within sampling error, and the same values
/// for any rayon thread count.
#[test]
fn normals_have_the_asked_moments_and_do_not_depend_on_threads() {
    let n = 400_000;
    let mut a = vec![0f32; n];
    Rng::new(11).fill_normal(&mut a, 2.0);
    let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    let var = a
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    // Standard errors: 2 / sqrt(n) = 0.0032 for the mean, ~4 sqrt(2 / n) = 0.009 for the variance.
    assert!(mean.abs() < 0.016, "mean {mean}");
    assert!((var - 4.0).abs() < 0.05, "variance {var}");
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut b = vec![0f32; n];
    one.install(|| Rng::new(11).fill_normal(&mut b, 2.0));
    assert_eq!(a, b);
}

#[test]
fn uniforms_cover_the_interval_evenly() {
    let v = vidlrp_rng::uniform_values(100_000, 5, 2.0, 6.0);
    assert!(v.iter().all(|x| (2.0..6.0).contains(x)));
    let mut bins = [0usize; 4];
    for x in &v {
        bins[(*x - 2.0) as usize] += 1;
    }
    // Each bin expects 25_000 with a standard deviation of ~137.
    assert!(bins.iter().all(|&b| b.abs_diff(25_000) < 700), "{bins:?}");
}
