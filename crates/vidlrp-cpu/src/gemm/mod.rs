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
pub(crate) const MC: usize = 192;
/// Columns of `B` per packed panel.
const NC: usize = 2048;

/// The fewest columns per block when a GEMM is cut into more blocks than threads: narrower, and
/// packing `A` once per block costs more than the balance gains.
const BLOCK_MIN_COLS: usize = 1024;

pub(crate) mod dense;
mod kernel;
mod pack;

pub(crate) use kernel::avx512;
pub use kernel::fast;
use kernel::{detect, kernel_portable, Kernel};
pub(crate) use pack::PackedA;
use pack::{aligned, pack_a, pack_a_shared, KEEP_PACKED_A, PACKED_A};
pub use pack::{PackB, RowMajor};

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
    let mut clock = crate::phases::Split::start();
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
            clock.part(|| b.pack(pc, kc, jc, nc, bp));
            let first = pc == 0 && !accumulate;
            let mut ic = 0;
            while ic < m {
                let mc = MC.min(m - ic);
                let ap: &[f32] = match a {
                    ASource::RowMajor { data, lda } => {
                        let ap = &mut apack[..mc.div_ceil(MR) * MR * kc];
                        clock.part(|| pack_a(data, lda, ic, mc, pc, kc, ap));
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
    clock.finish(crate::phases::Phase::Pack, crate::phases::Phase::Arithmetic);
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
    pub(crate) fn get(self) -> *mut f32 {
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
    // Three or more column panels: every panel would pack all of A again (each thread its
    // own copy); pack it once, the threads sharing the work, and share it.
    let shared = parts > 2 || n > NC;
    let mut store = if shared {
        PACKED_A
            .try_lock()
            .map(|mut kept| std::mem::take(&mut *kept))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let a = if shared {
        ASource::Packed(pack_a_shared(a, m, k, &mut store))
    } else {
        ASource::RowMajor { data: a, lda: k }
    };
    for_each_part(parts, bounds, |j0, j1, scratch| {
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
    if shared && store.len() <= KEEP_PACKED_A {
        if let Ok(mut kept) = PACKED_A.try_lock() {
            *kept = store;
        }
    }
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
            let why = "this CPU has no AVX-512F to compare the AVX2 kernel with";
            eprintln!("skipped: {why}");
            vidlrp_conformance::environment::log_skip(
                "the_avx2_and_avx512_kernels_agree_bit_for_bit",
                why,
            );
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
