//! `[kT, 2, 2]` max pooling and its winner-take-all transpose in AVX-512 registers, 16 windows
//! of an output row at a time (the tail of a row in masked lanes, so rows of 12 or 24 windows,
//! C3D's at 48x48, take no scalar loop): each input row's 32 values are loaded and split into
//! the windows' even and odd columns, the winners found by the comparisons of
//! [`super::row_winners`] in the same order, so the same bits.

use super::PoolDims;
use std::arch::x86_64::*;

/// What a pass over one plane writes.
#[derive(Clone, Copy)]
pub(super) enum Job {
    /// `y` (the plane's outputs) = each window's maximum.
    Max { y: *mut f32 },
    /// `dx[winner] = 0 + g` and `dx[i] = 0 + 0` for the other inputs of each window, what
    /// routing onto zeros gives: the windows do not overlap (stride = kernel), so no input is
    /// routed to twice and `dx` is never read; inputs outside every window are not written.
    Route { g: *const f32, dx: *mut f32 },
}

/// The lanes of a stretch of `m` (1 to 16) windows: its outputs, and its `2 m` inputs per row
/// in two registers.
struct Lanes {
    out: u16,
    low: u16,
    high: u16,
}

fn lanes(m: usize) -> Lanes {
    let first = |n: usize| if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
    Lanes {
        out: first(m),
        low: first(2 * m),
        high: first(2 * m.saturating_sub(8)),
    }
}

/// The lane permutations: even and odd values of 32, and their interleaving back.
struct Perm {
    even: __m512i,
    odd: __m512i,
    low_pairs: __m512i,
    high_pairs: __m512i,
}

#[target_feature(enable = "avx512f")]
fn perm() -> Perm {
    let idx = |f: fn(i32) -> i32| {
        let v: [i32; 16] = std::array::from_fn(|i| f(i as i32));
        // SAFETY: 16 i32 are 64 readable bytes.
        unsafe { _mm512_loadu_si512(v.as_ptr().cast()) }
    };
    Perm {
        even: idx(|i| 2 * i),
        odd: idx(|i| 2 * i + 1),
        low_pairs: idx(|i| i / 2 + (i % 2) * 16),
        high_pairs: idx(|i| 8 + i / 2 + (i % 2) * 16),
    }
}

/// The even and odd columns of the `2 m` values at `row`.
///
/// # Safety
/// The lanes of `l` at `row` are readable.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn split(row: *const f32, l: &Lanes, p: &Perm) -> [__m512; 2] {
    let a = _mm512_maskz_loadu_ps(l.low, row);
    let b = _mm512_maskz_loadu_ps(l.high, row.wrapping_add(16));
    [
        _mm512_permutex2var_ps(a, p.even, b),
        _mm512_permutex2var_ps(a, p.odd, b),
    ]
}

/// The maximum of each window and its winner's code `a * 4 + b * 2 + e` (the first maximum in
/// scan order, a NaN winning), `rows[a][b]` pointing at the stretch's first value in input
/// row `b` of frame `a`.
///
/// # Safety
/// As [`split`] for every row.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn winners<const KT: usize>(
    rows: &[[*const f32; 2]; KT],
    l: &Lanes,
    p: &Perm,
) -> (__m512, __m512i) {
    let mut m = _mm512_setzero_ps();
    let mut c = _mm512_setzero_si512();
    for (a, frame) in rows.iter().enumerate() {
        for (b, &row) in frame.iter().enumerate() {
            for (e, v) in split(row, l, p).into_iter().enumerate() {
                if a + b + e == 0 {
                    m = v;
                }
                let take = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, m)
                    | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
                m = _mm512_mask_blend_ps(take, m, v);
                let code = _mm512_set1_epi32((a * 4 + b * 2 + e) as i32);
                c = _mm512_mask_blend_epi32(take, c, code);
            }
        }
    }
    (m, c)
}

/// `g` where the winner's code `c` is `code`, else `+0`.
#[target_feature(enable = "avx512f")]
#[inline]
fn pick(c: __m512i, code: i32, g: __m512) -> __m512 {
    _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(c, _mm512_set1_epi32(code)), g)
}

/// One plane (`x` its inputs) of `[KT, 2, 2]` windows with stride = kernel and no padding.
///
/// # Safety
/// The CPU has AVX-512F; `d` is such a geometry; `job`'s pointers cover the plane's outputs
/// (`y`, `g`) and inputs (`dx`, written only).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn plane<const KT: usize>(d: &PoolDims, x: &[f32], job: Job) {
    let [_, h_in, w_in] = d.input;
    let [to_n, ho_n, wo_n] = d.output;
    let p = perm();
    for to in 0..to_n {
        for ho in 0..ho_n {
            let start = |a: usize, b: usize| ((to * KT + a) * h_in + 2 * ho + b) * w_in;
            let out = (to * ho_n + ho) * wo_n;
            for wo in (0..wo_n).step_by(16) {
                let l = lanes((wo_n - wo).min(16));
                let rows: [[*const f32; 2]; KT] = std::array::from_fn(|a| {
                    std::array::from_fn(|b| x.as_ptr().add(start(a, b) + 2 * wo))
                });
                let (m, c) = winners::<KT>(&rows, &l, &p);
                match job {
                    Job::Max { y } => _mm512_mask_storeu_ps(y.add(out + wo), l.out, m),
                    Job::Route { g, dx } => {
                        let gv = _mm512_maskz_loadu_ps(l.out, g.add(out + wo));
                        for a in 0..KT {
                            for b in 0..2 {
                                let win = (a * 4 + b * 2) as i32;
                                let (s0, s1) = (pick(c, win, gv), pick(c, win + 1, gv));
                                let q = dx.add(start(a, b) + 2 * wo);
                                for (ptr, mask, idx) in [
                                    (q, l.low, p.low_pairs),
                                    (q.wrapping_add(16), l.high, p.high_pairs),
                                ] {
                                    let routed = _mm512_permutex2var_ps(s0, idx, s1);
                                    let v = _mm512_add_ps(_mm512_setzero_ps(), routed);
                                    _mm512_mask_storeu_ps(ptr, mask, v);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
