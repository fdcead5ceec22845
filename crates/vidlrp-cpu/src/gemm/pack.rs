//! Packing of GEMM operands into the slivers the micro-kernels read.

use super::{KC, MC, MR, NR};

/// Fills packed `B` slivers: for columns `j0..j0 + nc` and rows `k0..k0 + kc`, value `B[k, j]`
/// goes to `dst[((j - j0) / NR) * kc * NR + (k - k0) * NR + (j - j0) % NR]`. Every one of those
/// values must be written (zeros included); the lanes past `nc` in the last sliver are zeroed by
/// the caller.
pub trait PackB: Sync {
    /// Packs the block `k0..k0 + kc` x `j0..j0 + nc` into `dst` as described above.
    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]);
}

/// A plain row-major `B` (`ld` floats per row).
pub struct RowMajor<'a> {
    /// The values, row-major.
    pub data: &'a [f32],
    /// Floats per row.
    pub ld: usize,
}

impl PackB for RowMajor<'_> {
    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]) {
        for k in 0..kc {
            let row = &self.data[(k0 + k) * self.ld + j0..(k0 + k) * self.ld + j0 + nc];
            for (s, chunk) in row.chunks(NR).enumerate() {
                let at = s * kc * NR + k * NR;
                if let Ok(full) = <&[f32; NR]>::try_from(chunk) {
                    // A fixed-size copy: two vector moves rather than a memmove call.
                    let d: &mut [f32; NR] = (&mut dst[at..at + NR]).try_into().expect("NR");
                    *d = *full;
                } else {
                    dst[at..at + chunk.len()].copy_from_slice(chunk);
                }
            }
        }
    }
}

/// The row groups of an `MR`-row sliver of packed `A`, `(first row, rows)`: each group is
/// stored `k`-major on its own (`h` consecutive floats per `k`), so a micro-kernel that computes
/// one group at a time (AVX2: `2 h` accumulators) reads consecutive floats of it.
pub(super) const GROUPS: [(usize, usize); 3] = [(0, 6), (6, 5), (11, 5)];

/// Where row `i < MR` at depth `k` lives in a `kc`-deep sliver of packed `A`: in the group
/// `(r0, h)` of [`GROUPS`] holding `i`, at `r0 kc + k h + (i - r0)`.
#[inline]
pub(super) fn sliver_offset(kc: usize, k: usize, i: usize) -> usize {
    const _: () = assert!(GROUPS[1].0 == GROUPS[0].1 && GROUPS[2].0 + GROUPS[2].1 == MR);
    let (r0, h) = if i < GROUPS[1].0 {
        GROUPS[0]
    } else if i < GROUPS[2].0 {
        GROUPS[1]
    } else {
        GROUPS[2]
    };
    r0 * kc + k * h + (i - r0)
}

/// Packs rows `i0..i0 + mc`, depth `k0..k0 + kc` of row-major `a` (`lda` per row) into
/// `MR`-row slivers of `kc MR` floats, row `r` of sliver `s` at [`sliver_offset`],
/// zero-padded.
pub(super) fn pack_a(
    a: &[f32],
    lda: usize,
    i0: usize,
    mc: usize,
    k0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    for s in 0..mc.div_ceil(MR) {
        let sliver = &mut dst[s * kc * MR..(s + 1) * kc * MR];
        for (r0, h) in GROUPS {
            let group = &mut sliver[r0 * kc..(r0 + h) * kc];
            for i in 0..h {
                let r = s * MR + r0 + i;
                if r < mc {
                    let row = &a[(i0 + r) * lda + k0..(i0 + r) * lda + k0 + kc];
                    for (k, &v) in row.iter().enumerate() {
                        group[k * h + i] = v;
                    }
                } else {
                    for k in 0..kc {
                        group[k * h + i] = 0.0;
                    }
                }
            }
        }
    }
}

/// An `M x K` left operand packed once in the blocks [`gemm_packed_serial`] reads: for each
/// depth block `pc` (`KC` rows of `K`) and row block `ic` (`MC` rows of `M`), the `MR`-row
/// slivers of [`pack_a`], at offset `pc M' + ic kc` (`M'`: `M` rounded up to `MR`, rows past
/// `M` zero). Lets one matrix serve many GEMMs without repacking (Winograd's 64 transformed
/// kernels, each multiplied by every block of tiles).
#[derive(Clone, Copy)]
pub(crate) struct PackedA<'a> {
    data: &'a [f32],
    pub(super) m: usize,
    pub(super) k: usize,
}

impl<'a> PackedA<'a> {
    /// Floats an `m x k` operand takes.
    pub(crate) fn len(m: usize, k: usize) -> usize {
        m.div_ceil(MR) * MR * k
    }

    /// Where element `(i, kk)` of an `m x k` operand lives.
    #[inline]
    pub(crate) fn index(m: usize, k: usize, i: usize, kk: usize) -> usize {
        let m_pad = m.div_ceil(MR) * MR;
        let pc = kk / KC * KC;
        let kc = KC.min(k - pc);
        let ic = i / MC * MC;
        let (s, r) = ((i - ic) / MR, (i - ic) % MR);
        pc * m_pad + ic * kc + s * kc * MR + sliver_offset(kc, kk - pc, r)
    }

    /// The operand in `data` (at least [`PackedA::len`] floats, filled through
    /// [`PackedA::index`]).
    pub(crate) fn new(data: &'a [f32], m: usize, k: usize) -> Self {
        assert!(data.len() >= Self::len(m, k), "packed operand too short");
        PackedA { data, m, k }
    }

    /// The slivers of block (`pc`, `ic`), `kc` deep and `mc` rows.
    pub(super) fn block(self, pc: usize, kc: usize, ic: usize, mc: usize) -> &'a [f32] {
        // The block starts with its first element: row ic, depth pc.
        let at = Self::index(self.m, self.k, ic, pc);
        &self.data[at..at + mc.div_ceil(MR) * MR * kc]
    }
}

/// The 64-byte-aligned tail of `v` (16 floats spare): packed slivers then never straddle cache
/// lines.
pub(super) fn aligned(v: &mut [f32]) -> &mut [f32] {
    let skip = v.as_ptr().align_offset(64).min(16);
    &mut v[skip..]
}

/// Storage for [`pack_a_shared`], kept between GEMMs up to [`KEEP_PACKED_A`] floats (taken
/// out while in use: a concurrent or nested GEMM allocates its own).
pub(super) static PACKED_A: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

/// The largest packed `A` kept for the next GEMM (2M floats, 8 MB: C3D's conv3 kernels); a
/// larger one goes back to the allocator, so it does not add to the peak memory of what
/// follows.
pub(super) const KEEP_PACKED_A: usize = 2 << 20;

/// Packs row-major `a` (`m x k`) into `store` as one [`PackedA`], the depth blocks split over
/// the current rayon pool's threads.
pub(super) fn pack_a_shared<'s>(
    a: &[f32],
    m: usize,
    k: usize,
    store: &'s mut Vec<f32>,
) -> PackedA<'s> {
    use rayon::prelude::*;
    let len = PackedA::len(m, k);
    if store.len() < len {
        store.resize(len, 0.0);
    }
    let m_pad = m.div_ceil(MR) * MR;
    // Depth block pc occupies [pc m', (pc + kc) m'), its row blocks ic at pc m' + ic kc.
    store[..len]
        .par_chunks_mut(KC * m_pad)
        .enumerate()
        .for_each(|(b, dst)| {
            let (pc, kc) = (b * KC, dst.len() / m_pad);
            let mut ic = 0;
            while ic < m {
                let mc = MC.min(m - ic);
                pack_a(a, k, ic, mc, pc, kc, &mut dst[ic * kc..]);
                ic += mc;
            }
        });
    PackedA::new(&store[..len], m, k)
}
