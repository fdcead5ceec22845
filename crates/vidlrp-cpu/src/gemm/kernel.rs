//! The `MR x NR` register micro-kernels, one per instruction set, and the choice among them.

use super::pack::sliver_offset;
use super::{MR, NR};

/// The portable micro-kernel: `acc = sum_k a[k, :] (x) b[k, :]`.
pub(super) fn kernel_portable(kc: usize, a: &[f32], b: &[f32], acc: &mut [[f32; NR]; MR]) {
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
pub(super) mod avx512 {
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
pub(super) mod avx2 {
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
pub(super) enum Kernel {
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
    pub(super) unsafe fn simd_into(
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

pub(super) fn detect() -> Kernel {
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
