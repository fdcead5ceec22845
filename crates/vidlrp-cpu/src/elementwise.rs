//! Elementwise maps `y = f(x)` and `y = f(a, b)`, in parallel over fixed-size chunks.
//!
//! The operation is chosen once per chunk, so each chunk runs a loop specialised to one
//! formula (vectorised), instead of matching on the operation for every element; the output is
//! written once, never zero-filled first.

use rayon::prelude::*;
use std::mem::MaybeUninit;
use vidlrp_core::{BinaryOp, UnaryOp};

/// Elements per parallel task (256 KB of output).
const CHUNK: usize = 1 << 16;

/// `out[i] = f(x[i])` for one chunk.
#[inline(always)]
fn map1(x: &[f32], out: &mut [MaybeUninit<f32>], f: impl Fn(f32) -> f32) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.write(f(v));
    }
}

/// `out[i] = f(a[i], b[i])` for one chunk.
#[inline(always)]
fn map2(a: &[f32], b: &[f32], out: &mut [MaybeUninit<f32>], f: impl Fn(f32, f32) -> f32) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        o.write(f(x, y));
    }
}

/// A new buffer of `len` values, each written by `fill` (called on disjoint chunks in parallel,
/// chunk `i` covering `i * CHUNK..`).
fn collect(len: usize, fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| fill(i, chunk));
    // SAFETY: `fill` wrote every element of the `len` chunks (map1/map2 write each output
    // element of their chunk, and the inputs are as long as the output).
    unsafe { out.set_len(len) };
    out
}

/// `len` zeros, written in parallel chunks by the calling pool's threads: a large `vec![0.0;
/// len]` is zeroed by the allocating thread alone (memset of reused memory) while the other
/// threads wait, 6-7 % of a small model's explanation before this.
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    collect(len, |_, out| {
        for o in out {
            o.write(0.0);
        }
    })
}

/// `op` applied to every element of `x`.
pub(crate) fn unary(x: &[f32], op: UnaryOp) -> Vec<f32> {
    collect(x.len(), |i, out| {
        let x = &x[i * CHUNK..i * CHUNK + out.len()];
        // One arm per operation, each a loop with the formula inlined.
        match op {
            UnaryOp::Positive => map1(x, out, |v| UnaryOp::Positive.apply(v)),
            UnaryOp::Negative => map1(x, out, |v| UnaryOp::Negative.apply(v)),
            UnaryOp::Square => map1(x, out, |v| UnaryOp::Square.apply(v)),
            UnaryOp::One => map1(x, out, |v| UnaryOp::One.apply(v)),
            UnaryOp::Scale(k) => map1(x, out, |v| UnaryOp::Scale(k).apply(v)),
            UnaryOp::StepPositive => map1(x, out, |v| UnaryOp::StepPositive.apply(v)),
            UnaryOp::StepNegative => map1(x, out, |v| UnaryOp::StepNegative.apply(v)),
            UnaryOp::AddPositive(g) => map1(x, out, |v| UnaryOp::AddPositive(g).apply(v)),
            UnaryOp::AddNegative(g) => map1(x, out, |v| UnaryOp::AddNegative(g).apply(v)),
        }
    })
}

/// `op` applied to every pair of elements of `a` and `b` (of one length).
pub(crate) fn binary(a: &[f32], b: &[f32], op: BinaryOp) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "elementwise operands differ in length");
    collect(a.len(), |i, out| {
        let r = i * CHUNK..i * CHUNK + out.len();
        let (a, b) = (&a[r.clone()], &b[r]);
        match op {
            BinaryOp::Add => map2(a, b, out, |x, y| BinaryOp::Add.apply(x, y)),
            BinaryOp::Sub => map2(a, b, out, |x, y| BinaryOp::Sub.apply(x, y)),
            BinaryOp::Mul => map2(a, b, out, |x, y| BinaryOp::Mul.apply(x, y)),
            BinaryOp::StabDiv(eps) => map2(a, b, out, |x, y| BinaryOp::StabDiv(eps).apply(x, y)),
            BinaryOp::GatePositive => map2(a, b, out, |x, y| BinaryOp::GatePositive.apply(x, y)),
        }
    })
}

/// [`binary`] written into one operand's buffer (the same values): `out[i] = op(out[i],
/// other[i])` if `OUT_FIRST`, else `out[i] = op(other[i], out[i])`.
pub(crate) fn binary_in_place<const OUT_FIRST: bool>(out: &mut [f32], other: &[f32], op: BinaryOp) {
    assert_eq!(
        out.len(),
        other.len(),
        "elementwise operands differ in length"
    );
    #[inline(always)]
    fn each<const OUT_FIRST: bool>(out: &mut [f32], other: &[f32], f: impl Fn(f32, f32) -> f32) {
        for (o, &v) in out.iter_mut().zip(other) {
            *o = if OUT_FIRST { f(*o, v) } else { f(v, *o) };
        }
    }
    out.par_chunks_mut(CHUNK)
        .zip(other.par_chunks(CHUNK))
        .for_each(|(o, v)| match op {
            BinaryOp::Add => each::<OUT_FIRST>(o, v, |x, y| BinaryOp::Add.apply(x, y)),
            BinaryOp::Sub => each::<OUT_FIRST>(o, v, |x, y| BinaryOp::Sub.apply(x, y)),
            BinaryOp::Mul => each::<OUT_FIRST>(o, v, |x, y| BinaryOp::Mul.apply(x, y)),
            BinaryOp::StabDiv(eps) => {
                each::<OUT_FIRST>(o, v, |x, y| BinaryOp::StabDiv(eps).apply(x, y));
            }
            BinaryOp::GatePositive => {
                each::<OUT_FIRST>(o, v, |x, y| BinaryOp::GatePositive.apply(x, y));
            }
        });
}

/// `sum_i x[i]` in `f64`: blocks of 32 values added into 32 lanes (four registers of eight
/// `f64`, so four independent chains of vector additions), then the lanes and the tail in
/// order. Deterministic for a given `x`.
pub(crate) fn sum_f64(x: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 32];
    let blocks = x.chunks_exact(32);
    let tail: f64 = blocks.remainder().iter().map(|&v| f64::from(v)).sum();
    for b in blocks {
        for (l, &v) in lanes.iter_mut().zip(b) {
            *l += f64::from(v);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// `x` as storage to be overwritten (for kernels that write every element of their output
/// and never read it, whether the caller's buffer holds values or not).
pub(crate) fn as_uninit(x: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and what is written through the result is
    // an `f32`, so `x` stays initialised.
    unsafe { &mut *(x as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// `x[i] = max(x[i], 0)` in place, as [`UnaryOp::Positive`] maps each value.
pub(crate) fn positive_in_place(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK).for_each(|c| {
        for v in c {
            *v = UnaryOp::Positive.apply(*v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation, bit for bit the scalar formula, over several chunks and a ragged tail,
    /// with signed zeros, infinities and NaN among the values.
    #[test]
    fn every_operation_matches_its_formula_bit_for_bit() {
        let len = 2 * CHUNK + 37;
        let special = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-45];
        let a: Vec<f32> = (0..len)
            .map(|i| {
                special
                    .get(i % 97)
                    .copied()
                    .unwrap_or((i as f32 * 0.37).sin() * 3.0)
            })
            .collect();
        let b: Vec<f32> = (0..len)
            .map(|i| {
                special
                    .get(i % 89)
                    .copied()
                    .unwrap_or((i as f32 * 0.11).cos())
            })
            .collect();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for op in [
            UnaryOp::Positive,
            UnaryOp::Negative,
            UnaryOp::Square,
            UnaryOp::One,
            UnaryOp::Scale(-2.5),
            UnaryOp::StepPositive,
            UnaryOp::StepNegative,
            UnaryOp::AddPositive(0.25),
            UnaryOp::AddNegative(0.25),
        ] {
            let want: Vec<f32> = a.iter().map(|&v| op.apply(v)).collect();
            assert_eq!(bits(&pool.install(|| unary(&a, op))), bits(&want), "{op:?}");
        }
        for op in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::StabDiv(1e-6),
            BinaryOp::GatePositive,
        ] {
            let want: Vec<f32> = a.iter().zip(&b).map(|(&x, &y)| op.apply(x, y)).collect();
            assert_eq!(
                bits(&pool.install(|| binary(&a, &b, op))),
                bits(&want),
                "{op:?}"
            );
            let mut in_place = a.clone();
            pool.install(|| binary_in_place::<true>(&mut in_place, &b, op));
            assert_eq!(bits(&in_place), bits(&want), "{op:?} in place");
            let mut in_place_rhs = b.clone();
            pool.install(|| binary_in_place::<false>(&mut in_place_rhs, &a, op));
            assert_eq!(bits(&in_place_rhs), bits(&want), "{op:?} in place (rhs)");
        }
    }
}
