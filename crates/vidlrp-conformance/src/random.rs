//! Seeded random C3D-shaped models and inputs.

use vidlrp_c3d::{init_weights, C3dSpec, Pool5, TensorMap};
use vidlrp_core::HostTensor;
use vidlrp_rng::Rng;

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
    for (name, t) in &mut weights {
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

/// The smallest explained logit a conservation check accepts: below it the stabiliser's share
/// `eps / f_c` per layer is no longer negligible.
pub const MIN_SCORE: f32 = 0.1;

/// Whether `sum R / f_c` is conserved: z+ and z^B only ever lose relevance to the stabiliser
/// (`R_j z_j / (z_j + eps)`), so the ratio lies in `(1 - 1e-3, 1 + 1e-6]`.
pub fn conserves(ratio: f64) -> bool {
    ratio <= 1.0 + 1e-6 && ratio > 1.0 - 1e-3
}

/// Explains random model `seed` with all biases set to zero, where a z+ denominator can only
/// vanish where the relevance above it is already 0, so nothing leaks, with DTD and the pooling
/// rule `pool`.
///
/// Returns `Ok(None)` when the model cannot be checked: its top logit is not positive (DTD
/// refuses it) or below [`MIN_SCORE`]. Every other failure is an error.
pub fn dtd_on_zero_bias_model<B: vidlrp_core::Backend>(
    be: &B,
    seed: u64,
    pool: vidlrp_core::Rule,
) -> Result<Option<vidlrp_core::Explanation>, String> {
    use vidlrp_core::{Composite, ErrorKind, Target};
    let mut case = random_case(seed);
    for (name, t) in &mut case.weights {
        if name.ends_with(".bias") {
            t.data_mut().fill(0.0);
        }
    }
    let s = case.input.shape().to_vec();
    let (net, _) = vidlrp_c3d::build(be, case.weights, case.pool5, [s[1], s[2], s[3], s[4]])
        .map_err(|e| format!("random model {seed}: {e}"))?;
    let x = be.upload(&case.input).map_err(|e| e.to_string())?;
    let composite = Composite {
        pool,
        ..Composite::dtd(case.low, case.high)
    };
    match net.explain(be, &x, &Target::TopOne, &composite) {
        Ok(e) if e.scores.iter().all(|&f| f >= MIN_SCORE) => Ok(Some(e)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == ErrorKind::NonPositiveScore => Ok(None),
        Err(e) => Err(format!("random model {seed}: {e}")),
    }
}
