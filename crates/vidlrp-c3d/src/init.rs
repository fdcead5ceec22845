//! The seeded He-normal initialiser of the untrained baseline (DTD-u).
//!
//! The random stream is this crate's own (SplitMix64 seeding xoshiro256++, Box-Muller normals),
//! so a seed gives the same weights on every platform and with every dependency version.

use crate::{C3dSpec, TensorMap, CONV_NAMES, FC_NAMES};
use vidlrp_core::HostTensor;

/// A small, fast, seedable random number generator (xoshiro256++).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded through SplitMix64.
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fills `out` with independent standard normal values times `std` (Box-Muller):
    /// `r = sqrt(-2 ln(1 - u1)) std`, `(r cos(2 pi u2), r sin(2 pi u2))` from each pair of
    /// uniforms `u1, u2` drawn in turn. The uniforms are drawn in order; the transform runs on
    /// the current rayon pool's threads (the same values for any thread count).
    pub fn fill_normal(&mut self, out: &mut [f32], std: f64) {
        use rayon::prelude::*;
        /// Pairs of uniforms drawn ahead of one parallel transform.
        const PAIRS: usize = 1 << 16;
        let mut uniforms = Vec::with_capacity(PAIRS.min(out.len().div_ceil(2)));
        for chunk in out.chunks_mut(2 * PAIRS) {
            uniforms.clear();
            for _ in 0..chunk.len().div_ceil(2) {
                let u1 = 1.0 - self.uniform();
                uniforms.push((u1, self.uniform()));
            }
            chunk
                .par_chunks_mut(2)
                .zip(uniforms.par_iter())
                .with_min_len(1024)
                .for_each(|(pair, &(u1, u2))| {
                    let r = (-2.0 * u1.ln()).sqrt() * std;
                    let a = std::f64::consts::TAU * u2;
                    pair[0] = (r * a.cos()) as f32;
                    if pair.len() > 1 {
                        pair[1] = (r * a.sin()) as f32;
                    }
                });
        }
    }
}

/// Seeded He-normal weights for a network of `spec`:
/// `w ~ N(0, 2 / fan_in)` with `fan_in = C_in kT kH kW` (or `D_in`), biases `~ N(0, 0.01^2)`.
/// Every layer draws from its own stream (`seed`, layer index), so layers are independent of
/// each other's sizes.
pub fn init_weights(spec: &C3dSpec, seed: u64) -> TensorMap {
    let mut out = TensorMap::new();
    let mut c_in = spec.in_channels;
    let mut layer = 0u64;
    let mut add = |name: &str, wshape: Vec<usize>, fan_in: usize, out: &mut TensorMap| {
        let mut rng = Rng::new(seed ^ (0xc3d0_0000 + layer).wrapping_mul(0x9e37_79b9_7f4a_7c15));
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
