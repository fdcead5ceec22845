//! Shared set-up of the criterion benches: seeded tensors and the full-width C3D.
//!
//! Benches use mimalloc as the `vidlrp` binary does (linking `vidlrp-alloc` sets it).

// Links the global allocator into every bench binary.
extern crate vidlrp_alloc;

use vidlrp_c3d::{init_weights, C3dSpec, Pool5};
use vidlrp_core::{HostTensor, Sequential};
use vidlrp_cpu::Cpu;
use vidlrp_rng::Rng;
use vidlrp_snippet::Preprocess;

/// Uniform values in `[lo, hi)` of the given shape, seeded.
pub fn uniform(shape: &[usize], seed: u64, lo: f32, hi: f32) -> HostTensor {
    let mut rng = Rng::new(seed);
    let n = shape.iter().product();
    HostTensor::new(
        shape.to_vec(),
        (0..n)
            .map(|_| lo + (hi - lo) * rng.uniform() as f32)
            .collect(),
    )
    .unwrap()
}

/// The full-width C3D with seeded He-normal weights (what `vidlrp init` writes) on `be`.
pub fn full_c3d(be: &Cpu) -> Sequential<Cpu> {
    vidlrp_c3d::build(
        be,
        init_weights(&C3dSpec::full(), 0),
        Pool5::Port,
        [3, 16, 112, 112],
    )
    .unwrap()
    .0
}

/// A caffe-preprocessed random batch `[n, 3, 16, 112, 112]`.
pub fn clip(n: usize) -> HostTensor {
    let mean = Preprocess::caffe().mean;
    let mut t = uniform(&[n, 3, 16, 112, 112], 42, 0.0, 255.0);
    let plane = 16 * 112 * 112;
    for (i, v) in t.data_mut().iter_mut().enumerate() {
        *v -= mean[(i / plane) % 3];
    }
    t
}
