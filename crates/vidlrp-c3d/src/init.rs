//! The seeded He-normal initialiser of the untrained baseline (DTD-u).
//!
//! The random stream is [`vidlrp_rng::Rng`] (SplitMix64 seeding xoshiro256++, Box-Muller
//! normals), so a seed gives the same weights on every platform and with every dependency version.

use crate::{C3dSpec, TensorMap, CONV_NAMES, FC_NAMES};
use vidlrp_core::HostTensor;
use vidlrp_rng::{Rng, GOLDEN_GAMMA};

/// Seeded He-normal weights for a network of `spec`:
/// `w ~ N(0, 2 / fan_in)` with `fan_in = C_in kT kH kW` (or `D_in`), biases `~ N(0, 0.01^2)`.
/// Every layer draws from its own stream (`seed`, layer index), so layers are independent of
/// each other's sizes.
pub fn init_weights(spec: &C3dSpec, seed: u64) -> TensorMap {
    let mut out = TensorMap::new();
    let mut c_in = spec.in_channels;
    let mut layer = 0u64;
    let mut add = |name: &str, wshape: Vec<usize>, fan_in: usize, out: &mut TensorMap| {
        let mut rng = Rng::new(seed ^ (0xc3d0_0000 + layer).wrapping_mul(GOLDEN_GAMMA));
        layer += 1;
        let n: usize = wshape.iter().product();
        let mut w = vec![0.0f32; n];
        rng.fill_normal(&mut w, (2.0 / fan_in as f64).sqrt());
        let mut b = vec![0.0f32; wshape[0]];
        rng.fill_normal(&mut b, 0.01);
        out.insert(
            format!("{name}.bias"),
            HostTensor::new(vec![wshape[0]], b).expect("shape"),
        );
        out.insert(
            format!("{name}.weight"),
            HostTensor::new(wshape, w).expect("shape"),
        );
    };
    for (i, name) in CONV_NAMES.iter().enumerate() {
        let [kt, kh, kw] = spec.kernels[i];
        let width = spec.conv_widths[i];
        add(
            name,
            vec![width, c_in, kt, kh, kw],
            c_in * kt * kh * kw,
            &mut out,
        );
        c_in = width;
    }
    let mut d_in = spec.fc6_inputs;
    for (name, d_out) in FC_NAMES
        .iter()
        .zip([spec.fc_widths[0], spec.fc_widths[1], spec.classes])
    {
        add(name, vec![d_out, d_in], d_in, &mut out);
        d_in = d_out;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_unit_variance_and_are_reproducible() {
        let mut a = vec![0.0f32; 100_000];
        Rng::new(7).fill_normal(&mut a, 1.0);
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len() as f64;
        let var = a
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        let mut b = vec![0.0f32; 100_000];
        Rng::new(7).fill_normal(&mut b, 1.0);
        assert_eq!(a, b);
    }

    #[test]
    fn parallel_normals_are_the_sequential_box_muller_stream() {
        // Longer than two chunks of drawn pairs, odd (the last pair is cut).
        let n = 4 * (1 << 16) + 3;
        let mut got = vec![0.0f32; n];
        let mut rng = Rng::new(11);
        rng.fill_normal(&mut got, 0.5);
        let mut seq = Rng::new(11);
        let mut want = Vec::with_capacity(n + 1);
        while want.len() < n {
            let u1 = 1.0 - seq.uniform();
            let u2 = seq.uniform();
            let r = (-2.0 * u1.ln()).sqrt() * 0.5;
            let a = std::f64::consts::TAU * u2;
            want.extend([(r * a.cos()) as f32, (r * a.sin()) as f32]);
        }
        want.truncate(n);
        assert_eq!(got, want);
        // Both generators drew the same number of uniforms.
        assert_eq!(rng.next_u64(), seq.next_u64());
    }

    #[test]
    fn init_matches_spec_and_loads_back() {
        let spec = C3dSpec::with_widths(
            [2, 3, 4, 4, 5, 5, 6, 6],
            [7, 8],
            9,
            [16, 32, 32],
            crate::Pool5::Port,
        )
        .unwrap();
        let w = init_weights(&spec, 3);
        assert_eq!(C3dSpec::from_weights(&w).unwrap(), spec);
        assert_eq!(
            w.values().map(vidlrp_core::HostTensor::len).sum::<usize>(),
            spec.num_params()
        );
    }
}
