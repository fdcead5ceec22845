//! Seeded random C3D-shaped models and inputs.

use vidlrp_c3d::{init_weights, C3dSpec, Pool5, Rng, TensorMap};
use vidlrp_core::HostTensor;

/// A small random C3D: widths, input extent and pool5 variant drawn from `seed`.
#[derive(Debug, Clone)]
pub struct RandomCase {
    /// The seed it was drawn from.
    pub seed: u64,
    /// The weights (He-normal, biases drawn larger than `init`'s so they matter).
    pub weights: TensorMap,
    /// The pool5 variant.
    pub pool5: Pool5,
    /// Input `[N, 3, 16, H, W]`, uniform in `[low, high]` per channel.
    pub input: HostTensor,
    /// Lower input bound per channel.
    pub low: Vec<f32>,
    /// Upper input bound per channel.
    pub high: Vec<f32>,
}

/// Draws a random case: widths 2..6, spatial extents from {32, 40, 48}, batch 1..2.
pub fn random_case(seed: u64) -> RandomCase {
    let mut rng = Rng::new(seed);
    let mut pick = |lo: usize, hi: usize| lo + (rng.next_u64() % (hi - lo + 1) as u64) as usize;
    let mut widths = [0; 8];
    for w in &mut widths {
        *w = pick(2, 6);
    }
    let sizes = [32, 40, 48];
    let (h, w) = (sizes[pick(0, 2)], sizes[pick(0, 2)]);
    let pool5 = if pick(0, 1) == 0 {
        Pool5::Port
    } else {
        Pool5::Caffe
    };
    let n = pick(1, 2);
    let fc = [pick(4, 12), pick(4, 12)];
    let classes = pick(2, 8);
    let spec = C3dSpec::with_widths(widths, fc, classes, [16, h, w], pool5).expect("valid sizes");
    let mut weights = init_weights(&spec, seed.wrapping_mul(31).wrapping_add(7));
    let mut rng = Rng::new(seed ^ 0x5eed);
    for (name, t) in weights.iter_mut() {
        if name.ends_with(".bias") {
            rng.fill_normal(t.data_mut(), 0.1);
        }
    }
    let low: Vec<f32> = (0..3).map(|_| -(rng.uniform() as f32) * 2.0).collect();
    let high: Vec<f32> = low
        .iter()
        .map(|l| l + 0.5 + rng.uniform() as f32 * 2.0)
        .collect();
    let len = n * 3 * 16 * h * w;
    let plane = 16 * h * w;
    let data = (0..len)
        .map(|i| {
            let c = (i / plane) % 3;
            low[c] + (high[c] - low[c]) * rng.uniform() as f32
        })
        .collect();
    let input = HostTensor::new(vec![n, 3, 16, h, w], data).expect("shape");
    RandomCase {
        seed,
        weights,
        pool5,
        input,
        low,
        high,
    }
}
