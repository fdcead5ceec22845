//! A packed single-precision GEMM whose right-hand operand is produced by a caller-supplied
//! packer, so a convolution can pack im2col columns straight from its input (no im2col buffer).
//!
//! `C[M, N] (+)= A[M, K] B[K, N]`, blocked as in BLIS: `B` in `KC x NC` panels of `NR`-column
//! slivers, `A` in `MC x KC` blocks of `MR`-row slivers, a `MR x NR` register micro-kernel
//! (AVX-512F where the CPU has it, else AVX2 with FMA, portable code otherwise). Each element of
//! `C` sums its `K` products in the same order whatever the blocking of the other dimensions or
//! the number of threads, so results are identical for every thread count; the AVX-512F and
//! AVX2 kernels both accumulate `c += a b` with one fused multiply-add per product in `k` order,
//! so they agree bit for bit.

/// Rows of the micro-kernel.
pub const MR: usize = 16;
/// Columns of the micro-kernel.
pub const NR: usize = 16;
/// Depth of one packed block.
pub(crate) const KC: usize = 256;
/// Rows of `A` per packed block.
const MC: usize = 192;
/// Columns of `B` per packed panel.
const NC: usize = 2048;

/// The fewest columns per block when a GEMM is cut into more blocks than threads: narrower, and
/// packing `A` once per block costs more than the balance gains.
const BLOCK_MIN_COLS: usize = 1024;

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
const GROUPS: [(usize, usize); 3] = [(0, 6), (6, 5), (11, 5)];

/// Where row `i < MR` at depth `k` lives in a `kc`-deep sliver of packed `A`: in the group
/// `(r0, h)` of [`GROUPS`] holding `i`, at `r0 kc + k h + (i - r0)`.
#[inline]
fn sliver_offset(kc: usize, k: usize, i: usize) -> usize {
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
fn pack_a(a: &[f32], lda: usize, i0: usize, mc: usize, k0: usize, kc: usize, dst: &mut [f32]) {
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

/// The portable micro-kernel: `acc = sum_k a[k, :] (x) b[k, :]`.
fn kernel_portable(kc: usize, a: &[f32], b: &[f32], acc: &mut [[f32; NR]; MR]) {
    *acc = [[0.0; NR]; MR];
    for k in 0..kc {
        let bk = &b[k * NR..(k + 1) * NR];
        for i in 0..MR {
            let ai = a[sliver_offset(kc, k, i)];
            for j in 0..NR {
                acc[i][j] += ai * bk[j];
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// `acc = sum_k a[k, :] (x) b[k, :]` in one 16-wide register per row, written into the
    /// `MR x NR` tile at `c` (`ldc` per row): `C = acc` if `first`, else `C += acc`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `a` holds `kc * MR` and `b` `kc * NR` floats; `c` points
    /// at a writable `MR x NR` tile with row stride `ldc`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn kernel_into(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        first: bool,
    ) {
        // C's rows are touched only after the k loop (likely in L3 or DRAM): start their lines
        // now, so the write-back does not stall on them.
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc).cast::<i8>());
        }
        const _: () = assert!(MR == 16 && NR == 16);
        let mut acc = [_mm512_setzero_ps(); MR];
        // The sliver's three row groups (super::GROUPS: rows 0..6, 6..11, 11..16).
        let (mut a0, mut a1, mut a2, mut b) = (a, a.add(6 * kc), a.add(11 * kc), b);
        for _ in 0..kc {
            let bv = _mm512_loadu_ps(b);
            for (i, ci) in acc.iter_mut().enumerate() {
                let ai = match i {
                    0..6 => *a0.add(i),
                    6..11 => *a1.add(i - 6),
                    _ => *a2.add(i - 11),
                };
                *ci = _mm512_fmadd_ps(_mm512_set1_ps(ai), bv, *ci);
            }
            (a0, a1, a2) = (a0.add(6), a1.add(5), a2.add(5));
            b = b.add(NR);
        }
        for (i, ci) in acc.iter().enumerate() {
            let row = c.add(i * ldc);
            let v = if first {
                *ci
            } else {
                _mm512_add_ps(_mm512_loadu_ps(row), *ci)
            };
            _mm512_storeu_ps(row, v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// One row group `r0..r0 + R` of the `MR x NR` tile: `acc = sum_k a[k, i] b[k, :]` in two
    /// 8-wide registers per row (`2 R` accumulators of the 16), written into the tile at `c`
    /// (`ldc` per row; `a` is the group, `R` floats per `k`; `c` already offset to row `r0`):
    /// `C = acc` if `first`, else `C += acc`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `a` holds `kc * R` floats, `b` `kc * NR`; `c` points
    /// at a writable `R x NR` tile with row stride `ldc`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows<const R: usize>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        first: bool,
    ) {
        for i in 0..R {
            _mm_prefetch::<_MM_HINT_T0>(c.add(i * ldc).cast::<i8>());
        }
        let mut lo = [_mm256_setzero_ps(); R];
        let mut hi = [_mm256_setzero_ps(); R];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for i in 0..R {
                let ai = _mm256_broadcast_ss(&*a.add(i));
                lo[i] = _mm256_fmadd_ps(ai, b0, lo[i]);
                hi[i] = _mm256_fmadd_ps(ai, b1, hi[i]);
            }
            a = a.add(R);
            b = b.add(NR);
        }
        for i in 0..R {
            let row = c.add(i * ldc);
            let (l, h) = if first {
                (lo[i], hi[i])
            } else {
                (
                    _mm256_add_ps(_mm256_loadu_ps(row), lo[i]),
                    _mm256_add_ps(_mm256_loadu_ps(row.add(8)), hi[i]),
                )
            };
            _mm256_storeu_ps(row, l);
            _mm256_storeu_ps(row.add(8), h);
        }
    }

    /// The `MR x NR` (16 x 16) tile as three register blocks, the sliver's row groups of 6, 5
    /// and 5 rows (super::GROUPS), each streaming the same `B` sliver from L1.
    ///
    /// # Safety
    /// As [`super::avx512::kernel_into`], with AVX2 and FMA instead of AVX-512F.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn kernel_into(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        first: bool,
    ) {
        const _: () = assert!(MR == 16 && NR == 16);
        rows::<6>(kc, a, b, c, ldc, first);
        rows::<5>(kc, a.add(6 * kc), b, c.add(6 * ldc), ldc, first);
        rows::<5>(kc, a.add(11 * kc), b, c.add(11 * ldc), ldc, first);
    }
}

/// Which micro-kernel this CPU runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

#[cfg(target_arch = "x86_64")]
impl Kernel {
    /// The register micro-kernel of `self` (AVX-512F or AVX2; a portable `self` is a caller's
    /// mistake and panics): `C = acc` or `C += acc` for the `MR x NR` tile at `c`.
    ///
    /// # Safety
    /// As [`avx512::kernel_into`], with the CPU features of `self`.
    unsafe fn simd_into(
        self,
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        first: bool,
    ) {
        match self {
            Kernel::Avx512 => avx512::kernel_into(kc, a, b, c, ldc, first),
            Kernel::Avx2 => avx2::kernel_into(kc, a, b, c, ldc, first),
            Kernel::Portable => unreachable!("the portable kernel has no register tile"),
        }
    }
}

/// Whether this CPU runs a register-blocked micro-kernel (AVX-512F, or AVX2 with FMA), which is
/// when the convolutions use this GEMM with implicit im2col packing.
/// `VIDLRP_CPU_GEMM=matrixmultiply` turns it off (for comparisons).
pub fn fast() -> bool {
    static FAST: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAST.get_or_init(|| {
        !matches!(detect(), Kernel::Portable)
            && std::env::var("VIDLRP_CPU_GEMM").map_or(true, |v| v != "matrixmultiply")
    })
}

fn detect() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        return Kernel::Avx512;
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        return Kernel::Avx2;
    }
    Kernel::Portable
}

/// Whether this CPU has AVX-512F (the widest kernels of this backend).
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return matches!(detect(), Kernel::Avx512);
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Where `C` lives: row-major, `ldc` floats per row.
pub struct Output<'a> {
    /// The values, row-major.
    pub data: &'a mut [f32],
    /// Floats per row.
    pub ldc: usize,
}

/// Where a GEMM's `A` comes from: a row-major matrix it packs per block, or a [`PackedA`]
/// packed once for many GEMMs.
#[derive(Clone, Copy)]
enum ASource<'a> {
    RowMajor { data: &'a [f32], lda: usize },
    Packed(PackedA<'a>),
}

/// An `M x K` left operand packed once in the blocks [`gemm_packed_serial`] reads: for each
/// depth block `pc` (`KC` rows of `K`) and row block `ic` (`MC` rows of `M`), the `MR`-row
/// slivers of [`pack_a`], at offset `pc M' + ic kc` (`M'`: `M` rounded up to `MR`, rows past
/// `M` zero). Lets one matrix serve many GEMMs without repacking (Winograd's 64 transformed
/// kernels, each multiplied by every block of tiles).
#[derive(Clone, Copy)]
pub(crate) struct PackedA<'a> {
    data: &'a [f32],
    m: usize,
    k: usize,
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
    fn block(self, pc: usize, kc: usize, ic: usize, mc: usize) -> &'a [f32] {
        // The block starts with its first element: row ic, depth pc.
        let at = Self::index(self.m, self.k, ic, pc);
        &self.data[at..at + mc.div_ceil(MR) * MR * kc]
    }
}

/// Reusable packing space of one thread's GEMMs (packed `B` panels, `A` blocks): allocated
/// and zeroed once, not per GEMM.
#[derive(Default)]
pub(crate) struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    /// The [`Scratch`] of [`gemm`]'s parts on each thread (taken out while in use, so a nested
    /// GEMM on the same thread gets its own).
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's [`Scratch`].
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut scratch = SCRATCH.with_borrow_mut(std::mem::take);
    let r = f(&mut scratch);
    SCRATCH.set(scratch);
    r
}

/// `C = A B` on the calling thread, `A` pre-packed, `B` (`K x n`) from its packer, `C` `[M, n]`
/// with `ldc` floats per row. Each element sums its products in the same order as [`gemm`].
pub(crate) fn gemm_packed_serial(
    a: PackedA<'_>,
    n: usize,
    b: &dyn PackB,
    mut c: Output<'_>,
    scratch: &mut Scratch,
) {
    let (m, k) = (a.m, a.k);
    if handled_empty(m, n, k, &mut c, false) {
        return;
    }
    let ptr = c.data.as_mut_ptr();
    let a = ASource::Packed(a);
    gemm_columns(detect(), m, k, a, b, 0, n, ptr, c.ldc, false, scratch);
}

/// Checks that `C` holds `m x n` values and handles the products with nothing to multiply:
/// `true` when `m`, `n` or `k` is 0 (then `C = 0` for `k = 0` unless `accumulate`), `false`
/// when the caller has a GEMM to run.
fn handled_empty(m: usize, n: usize, k: usize, c: &mut Output<'_>, accumulate: bool) -> bool {
    assert!(
        m == 0 || n == 0 || c.data.len() >= (m - 1) * c.ldc + n,
        "gemm shapes"
    );
    if m == 0 || n == 0 {
        return true;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c.data[r * c.ldc..r * c.ldc + n].fill(0.0);
            }
        }
        return true;
    }
    false
}

/// `C[.., j0..j1] (+)= A B[.., j0..j1]` for rows `0..m` of `a` (`lda` per row), single-threaded;
/// `accumulate = false` overwrites `C`.
#[allow(clippy::too_many_arguments)]
fn gemm_columns(
    kernel: Kernel,
    m: usize,
    k: usize,
    a: ASource<'_>,
    b: &dyn PackB,
    j0: usize,
    j1: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    scratch: &mut Scratch,
) {
    let need = KC * NC.min((j1 - j0).div_ceil(NR) * NR) + 16;
    if scratch.b.len() < need {
        scratch.b.resize(need, 0.0);
    }
    let a_rows = match a {
        ASource::RowMajor { .. } => MC.min(m.div_ceil(MR) * MR),
        ASource::Packed(_) => 0,
    };
    if scratch.a.len() < KC * a_rows + 16 {
        scratch.a.resize(KC * a_rows + 16, 0.0);
    }
    let bpack = aligned(&mut scratch.b);
    let apack = aligned(&mut scratch.a);
    let mut acc = [[0.0f32; NR]; MR];
    let mut jc = j0;
    while jc < j1 {
        let nc = NC.min(j1 - jc);
        let mut pc = 0;
        while pc < k {
            let kc = KC.min(k - pc);
            let bp = &mut bpack[..nc.div_ceil(NR) * NR * kc];
            if !nc.is_multiple_of(NR) {
                // The ragged last sliver: lanes past nc stay zero.
                bp[(nc / NR) * kc * NR..].fill(0.0);
            }
            b.pack(pc, kc, jc, nc, bp);
            let first = pc == 0 && !accumulate;
            let mut ic = 0;
            while ic < m {
                let mc = MC.min(m - ic);
                let ap: &[f32] = match a {
                    ASource::RowMajor { data, lda } => {
                        let ap = &mut apack[..mc.div_ceil(MR) * MR * kc];
                        pack_a(data, lda, ic, mc, pc, kc, ap);
                        ap
                    }
                    ASource::Packed(p) => p.block(pc, kc, ic, mc),
                };
                for js in 0..nc.div_ceil(NR) {
                    let bs = &bp[js * kc * NR..(js + 1) * kc * NR];
                    let cols = NR.min(nc - js * NR);
                    for is in 0..mc.div_ceil(MR) {
                        let as_ = &ap[is * kc * MR..(is + 1) * kc * MR];
                        let rows = MR.min(mc - is * MR);
                        #[cfg(target_arch = "x86_64")]
                        if (rows, cols) == (MR, NR) && kernel != Kernel::Portable {
                            // SAFETY: detect() saw the kernel's features; the full tile lies in
                            // rows ic + is MR .. + MR < m and columns of this caller's range.
                            unsafe {
                                let dst = c.add((ic + is * MR) * ldc + jc + js * NR);
                                kernel.simd_into(kc, as_.as_ptr(), bs.as_ptr(), dst, ldc, first);
                            }
                            continue;
                        }
                        match kernel {
                            Kernel::Portable => kernel_portable(kc, as_, bs, &mut acc),
                            // SAFETY: detect() saw the kernel's features; the slivers hold kc MR
                            // and kc NR floats, acc is one MR x NR tile.
                            #[cfg(target_arch = "x86_64")]
                            Kernel::Avx512 | Kernel::Avx2 => unsafe {
                                let dst = acc.as_mut_ptr().cast::<f32>();
                                kernel.simd_into(kc, as_.as_ptr(), bs.as_ptr(), dst, NR, true);
                            },
                        }
                        for (i, acc_row) in acc.iter().enumerate().take(rows) {
                            let row = ic + is * MR + i;
                            // SAFETY: row < m and the columns lie in j0..j1, which the caller
                            // owns exclusively in C (m x ldc).
                            unsafe {
                                let dst = c.add(row * ldc + jc + js * NR);
                                for (j, &v) in acc_row.iter().enumerate().take(cols) {
                                    let p = dst.add(j);
                                    *p = if first { v } else { *p + v };
                                }
                            }
                        }
                    }
                }
                ic += mc;
            }
            pc += kc;
        }
        jc += nc;
    }
}

/// The 64-byte-aligned tail of `v` (16 floats spare): packed slivers then never straddle cache
/// lines.
fn aligned(v: &mut [f32]) -> &mut [f32] {
    let skip = v.as_ptr().align_offset(64).min(16);
    &mut v[skip..]
}

/// Storage for [`pack_a_shared`], kept between GEMMs up to [`KEEP_PACKED_A`] floats (taken
/// out while in use: a concurrent or nested GEMM allocates its own).
static PACKED_A: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

/// The largest packed `A` kept for the next GEMM (2M floats, 8 MB: C3D's conv3 kernels); a
/// larger one goes back to the allocator, so it does not add to the peak memory of what
/// follows.
const KEEP_PACKED_A: usize = 2 << 20;

/// Packs row-major `a` (`m x k`) into `store` as one [`PackedA`], the depth blocks split over
/// the current rayon pool's threads.
fn pack_a_shared<'s>(a: &[f32], m: usize, k: usize, store: &'s mut Vec<f32>) -> PackedA<'s> {
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

/// A pointer into one live output buffer that may cross to the rayon workers; users must give
/// each worker a disjoint region of it (here: column ranges of `C`).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: every user writes disjoint regions of one buffer that outlives its workers.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that a closure captures the whole `SendPtr`, which is `Sync`,
    /// not its raw pointer field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `C (+)= A B` with `A` `[M, K]` row-major, `B` given by its packer, `C` `[M, N]` (`ldc`),
/// the columns (rows where `N < M`) split over the current rayon pool's threads.
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &dyn PackB,
    c: Output<'_>,
    accumulate: bool,
) {
    gemm_with(detect(), m, n, k, a, b, c, accumulate);
}

#[allow(clippy::too_many_arguments)]
fn gemm_with(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &dyn PackB,
    mut c: Output<'_>,
    accumulate: bool,
) {
    assert!(a.len() >= m * k, "gemm shapes");
    if handled_empty(m, n, k, &mut c, accumulate) {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let ldc = c.ldc;
    let ptr = SendPtr(c.data.as_mut_ptr());
    if threads > 1 && n < m && m >= 2 * MR {
        // Narrow (conv5 of C3D: 512 rows, 98 columns): cutting the columns would have every
        // thread pack all of A for a few slivers; cut the rows instead (every thread packs the
        // smaller B).
        let blocks = m.div_ceil(MR);
        let parts = threads.min(blocks);
        let bounds = |t: usize| ((blocks * t / parts) * MR).min(m);
        for_each_part(parts, bounds, |i0, i1, scratch| {
            // SAFETY: rows i0..i1 < m of C; each part writes only its own rows.
            let c = unsafe { ptr.get().add(i0 * ldc) };
            let a = ASource::RowMajor {
                data: &a[i0 * k..],
                lda: k,
            };
            gemm_columns(kernel, i1 - i0, k, a, b, 0, n, c, ldc, accumulate, scratch);
        });
        return;
    }
    // Column blocks of whole slivers, at least 4 slivers each.
    let slivers = n.div_ceil(NR);
    // Up to four blocks per thread where they stay wide (each block packs B for itself, A is
    // packed once for all), so a thread slowed by something else on the machine leaves blocks
    // to the others.
    let parts = threads
        .min(slivers.div_ceil(4))
        .max((4 * threads).min(n / BLOCK_MIN_COLS))
        .max(1);
    let bounds = |t: usize| ((slivers * t / parts) * NR).min(n);
    if parts > 2 || n > NC {
        // Three or more column panels: every panel would pack all of A again (each thread
        // its own copy); pack it once, the threads sharing the work, and share it.
        let mut store = PACKED_A
            .try_lock()
            .map(|mut kept| std::mem::take(&mut *kept))
            .unwrap_or_default();
        let packed = pack_a_shared(a, m, k, &mut store);
        for_each_part(parts, bounds, |j0, j1, scratch| {
            let a = ASource::Packed(packed);
            gemm_columns(
                kernel,
                m,
                k,
                a,
                b,
                j0,
                j1,
                ptr.get(),
                ldc,
                accumulate,
                scratch,
            );
        });
        if store.len() <= KEEP_PACKED_A {
            if let Ok(mut kept) = PACKED_A.try_lock() {
                *kept = store;
            }
        }
        return;
    }
    for_each_part(parts, bounds, |j0, j1, scratch| {
        let a = ASource::RowMajor { data: a, lda: k };
        gemm_columns(
            kernel,
            m,
            k,
            a,
            b,
            j0,
            j1,
            ptr.get(),
            ldc,
            accumulate,
            scratch,
        );
    });
}

/// Runs `work(lo, hi, scratch)` on each of the `parts` ranges `[bounds(t), bounds(t + 1))`,
/// one rayon task per range (on the calling thread when there is one), each with its
/// thread's packing scratch.
fn for_each_part(
    parts: usize,
    bounds: impl Fn(usize) -> usize,
    work: impl Fn(usize, usize, &mut Scratch) + Sync,
) {
    if parts == 1 {
        with_scratch(|scratch| work(bounds(0), bounds(1), scratch));
        return;
    }
    let work = &work;
    let ranges: Vec<(usize, usize)> = (0..parts).map(|t| (bounds(t), bounds(t + 1))).collect();
    rayon::scope(|s| {
        for (lo, hi) in ranges {
            s.spawn(move |_| with_scratch(|scratch| work(lo, hi, scratch)));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|l| f64::from(a[i * k + l]) * f64::from(b[l * n + j]))
                    .sum();
            }
        }
        c
    }

    #[test]
    fn matches_direct_loops_on_ragged_shapes() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for &(m, n, k) in &[
            (1, 1, 1),
            (7, 17, 3),
            (13, 100, 300),
            (130, 70, 520),
            // Several row blocks (MC) and depth blocks (KC), A packed once for both threads.
            (200, 700, 300),
            (6, 16, 256),
            (5, 3200, 9),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
                .collect();
            let want = naive(m, n, k, &a, &b);
            let cases = [
                (detect(), false),
                (detect(), true),
                (Kernel::Portable, false),
                (Kernel::Portable, true),
            ];
            for (kernel, accumulate) in cases {
                let mut c = vec![1.0f32; m * n];
                pool.install(|| {
                    let out = Output {
                        data: &mut c,
                        ldc: n,
                    };
                    let b = RowMajor { data: &b, ld: n };
                    gemm_with(kernel, m, n, k, &a, &b, out, accumulate);
                });
                for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                    let w = w + if accumulate { 1.0 } else { 0.0 };
                    assert!(
                        (f64::from(got) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{m}x{n}x{k} [{i}]: {got} vs {w}"
                    );
                }
            }
        }
    }

    /// The AVX2 and AVX-512 kernels sum the same fused products in the same order: the same
    /// bits (checked on CPUs with both; elsewhere there is only one of them to run).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_avx2_and_avx512_kernels_agree_bit_for_bit() {
        if !std::is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F to compare the AVX2 kernel with");
            return;
        }
        let (m, n, k) = (70, 300, 600);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let run = |kernel| {
            let mut c = vec![0.0f32; m * n];
            let out = Output {
                data: &mut c,
                ldc: n,
            };
            gemm_with(
                kernel,
                m,
                n,
                k,
                &a,
                &RowMajor { data: &b, ld: n },
                out,
                false,
            );
            c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(run(Kernel::Avx2), run(Kernel::Avx512));
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // Wide enough that 1, 2 and 3 threads cut the columns into 4, 8 and 12 blocks; narrow
        // enough that the rows are cut instead.
        for (m, n, k) in [(70, 12_333, 300), (517, 98, 700)] {
            same_for_every_thread_count(m, n, k);
        }
    }

    fn same_for_every_thread_count(m: usize, n: usize, k: usize) {
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = vec![0.0f32; m * n];
            pool.install(|| {
                gemm(
                    m,
                    n,
                    k,
                    &a,
                    &RowMajor { data: &b, ld: n },
                    Output {
                        data: &mut c,
                        ldc: n,
                    },
                    false,
                );
            });
            c
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
    }
}
