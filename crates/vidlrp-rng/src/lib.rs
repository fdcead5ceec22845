//! The seeded, platform-independent random streams of vidlrp.
//!
//! Every random draw in the workspace (He-normal initialisation, training shuffles and crops,
//! dropout masks, synthetic scenes, bootstrap resamples, perturbation orders, test data) comes
//! from this crate, so a seed gives the same numbers on every platform, with every thread count
//! and with every dependency version:
//!
//! - [`SplitMix64`]: Vigna's SplitMix64, `z += 0x9e3779b97f4a7c15; return mix(z)`; one word
//!   of state, used where a stream is seeded often and drawn from briefly.
//! - [`mix`]: SplitMix64's finaliser, a bijective 64-bit hash for deriving seeds.
//! - [`Rng`]: xoshiro256++ (Blackman and Vigna) seeded through SplitMix64, with Box-Muller
//!   normals ([`Rng::fill_normal`]); the long-running stream.
//! - [`uniform_values`]: `n` values uniform in `[lo, hi)`, for examples and tests.
//!
//! ```
//! use vidlrp_rng::{Rng, SplitMix64};
//! let mut a = SplitMix64(0);
//! assert_eq!(a.next_u64(), 0xe220_a839_7b1d_cdaf); // Vigna's splitmix64.c, seed 0
//! let mut r = Rng::new(7);
//! let u = r.uniform();
//! assert!((0.0..1.0).contains(&u));
//! assert_eq!(Rng::new(7).uniform(), u);
//! ```

/// SplitMix64's increment, the golden ratio in 64-bit fixed point: `floor(2^64 / phi)`.
pub const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's finaliser (Stafford's Mix13): a bijection of `u64` whose output bits each depend
/// on every input bit,
/// `z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9; z = (z ^ z >> 27) * 0x94d049bb133111eb; z ^ z >> 31`.
///
/// ```
/// assert_eq!(vidlrp_rng::mix(vidlrp_rng::GOLDEN_GAMMA), 0xe220_a839_7b1d_cdaf);
/// ```
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 53-bit uniform in `[0, 1)` from 64 random bits: `(bits >> 11) / 2^53`.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// SplitMix64 (Vigna): the state advances by [`GOLDEN_GAMMA`] and each output is [`mix`] of it.
///
/// ```
/// let mut a = vidlrp_rng::SplitMix64(7);
/// let mut b = vidlrp_rng::SplitMix64(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!((0.0..1.0).contains(&a.uniform()));
/// ```
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }

    /// Uniform in `[0, 1)` (53 random bits).
    pub fn uniform(&mut self) -> f64 {
        unit(self.next_u64())
    }
}

/// xoshiro256++ (Blackman and Vigna): 256 bits of state, period `2^256 - 1`,
/// output `rotl(s0 + s3, 23) + s0`.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose state is the first four outputs of [`SplitMix64`]`(seed)`.
    pub fn new(seed: u64) -> Self {
        let mut z = SplitMix64(seed);
        Self::from_state([z.next_u64(), z.next_u64(), z.next_u64(), z.next_u64()])
    }

    /// A generator with exactly this state (not all zero, or the stream is all zeros).
    pub fn from_state(s: [u64; 4]) -> Self {
        Self { s }
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

    /// Uniform in `[0, 1)` (53 random bits).
    pub fn uniform(&mut self) -> f64 {
        unit(self.next_u64())
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

/// `n` values uniform in `[lo, hi)` from [`SplitMix64`]`(seed)`: `lo + (hi - lo) u` in `f32`.
///
/// ```
/// let v = vidlrp_rng::uniform_values(1000, 3, -1.0, 1.0);
/// assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
/// assert_eq!(v, vidlrp_rng::uniform_values(1000, 3, -1.0, 1.0));
/// ```
pub fn uniform_values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    let (lo, span) = (f64::from(lo), f64::from(hi) - f64::from(lo));
    (0..n)
        .map(|_| {
            let v = (lo + span * rng.uniform()) as f32;
            // Rounding to f32 can land on `hi` itself; keep the interval half-open.
            if v < hi {
                v
            } else {
                lo as f32
            }
        })
        .collect()
}
