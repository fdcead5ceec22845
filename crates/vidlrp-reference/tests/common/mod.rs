//! Test data shared by the reference backend's tests.

/// Values `lo + k / 1024` with `k` in `0..span` (dyadic, exact in f32 and f64) from a xorshift
/// stream seeded by `seed`.
pub fn dyadic_values(n: usize, seed: u64, lo: f64, span: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (lo + (s % span) as f64 / 1024.0) as f32
        })
        .collect()
}
