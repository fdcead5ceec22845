//! vidlrp-conformance: the checks every backend must pass, written once against [`Backend`](vidlrp_core::Backend).
//!
//! - [`golden`]: explanations of small C3D-shaped models against goldens made by Zennit,
//!   PyTorch autograd and an independent PyTorch DTD (`fixtures/golden/generate.py`), to
//!   `max |R - R_ref| <= 1e-4 max |R_ref|`;
//! - [`random`]: seeded random C3D-shaped models and inputs, for conservation checks and for
//!   comparing backends with each other;
//! - [`agreement`]: one backend against another on random models, every preset;
//! - [`ops`]: one backend against another, op by op, on random geometries;
//! - [`conservation`]: DTD's layer-by-layer conservation, exact up to the stabiliser, residual
//!   sums of nested networks included.

pub mod agreement;
pub mod conservation;
pub mod environment;
pub mod golden;
pub mod ops;
pub mod random;

/// The tolerance of every comparison: `max |R - R_ref| <= TOLERANCE * max |R_ref|`.
pub const TOLERANCE: f64 = 1e-4;

/// `(max |a - b|, max |b|)` over two equally long slices; the error is infinite if their
/// lengths differ or a difference is NaN.
pub fn max_errors(a: &[f32], b: &[f32]) -> (f64, f64) {
    if a.len() != b.len() {
        return (f64::INFINITY, 0.0);
    }
    let mut err = 0f64;
    let mut scale = 0f64;
    for (&x, &y) in a.iter().zip(b) {
        let d = (f64::from(x) - f64::from(y)).abs();
        err = if d.is_nan() {
            f64::INFINITY
        } else {
            err.max(d)
        };
        scale = scale.max(f64::from(y).abs());
    }
    (err, scale)
}
