//! The transposed convolution of a mostly-zero gradient (after winner-take-all pooling and ReLU
//! most of it is zero): `dx[i, q] = sum_off sum_o w[o, i, off] g[o, p(q, off)]`, summed over the
//! gradient's nonzero values only.
//!
//! Each input position `q` gathers: for every kernel offset it finds the output position
//! `p(q, off)` and runs through that position's nonzero channels `o`, adding `g[o, p]` times the
//! kernel row `w[o, lanes, off]` into a block of input-channel lanes held in registers. Every
//! value of `dx` is written once and sums its terms in a fixed order (offsets, then channels
//! `o`), whatever the number of threads.

use crate::conv::{im2col::frame_slab, ConvDims};
use crate::gemm::SendPtr;
use rayon::prelude::*;

/// Below this fraction of nonzero gradient values (and with at least [`SPARSE_MIN_POSITIONS`]
/// output positions) a transposed convolution gathers the nonzeros instead of running a dense
/// GEMM. `VIDLRP_CPU_SPARSE_DENSITY` overrides it (0 turns the sparse path off).
pub(crate) fn sparse_density() -> f64 {
    static D: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *D.get_or_init(|| {
        std::env::var("VIDLRP_CPU_SPARSE_DENSITY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.2)
    })
}

/// Fewer output positions than this, and the per-position work outweighs the FLOPs saved.
pub(crate) const SPARSE_MIN_POSITIONS: usize = 512;

/// The kernel `[C_out, C_in, kT, kH, kW]` re-laid `[kT kH kW][C_out][C_in']` with `C_in'` the
/// input channels rounded up to whole lane blocks (zero-filled), so one kernel row of a lane
/// block is contiguous.
pub(crate) struct LaneKernel {
    data: Vec<f32>,
    c_out: usize,
    /// Input channels rounded up to a multiple of `lanes`.
    padded: usize,
    /// Input channels per register block: 64 from 64 channels up, else 16.
    lanes: usize,
}

impl LaneKernel {
    pub fn new(w: &[f32], c_out: usize, c_in: usize, kvol: usize) -> Self {
        let lanes = if c_in >= 64 { 64 } else { 16 };
        let padded = c_in.next_multiple_of(lanes);
        let mut data = vec![0.0f32; kvol * c_out * padded];
        // Blocks of output channels per task: each reads its channels' weights once, in order,
        // and writes one contiguous run per offset.
        const BLOCK: usize = 16;
        let ptr = SendPtr(data.as_mut_ptr());
        (0..c_out.div_ceil(BLOCK)).into_par_iter().for_each(|bi| {
            let dst = ptr;
            let (o0, o1) = (bi * BLOCK, ((bi + 1) * BLOCK).min(c_out));
            for o in o0..o1 {
                let src = &w[o * c_in * kvol..(o + 1) * c_in * kvol];
                // 16 input channels' taps (in L1) at a time, one 16-float run per offset.
                for (ib, block) in src.chunks(16 * kvol).enumerate() {
                    let width = block.len() / kvol;
                    for k in 0..kvol {
                        // SAFETY: the run lies in row (k, o) of data; only this task writes
                        // channel o's rows.
                        let run = unsafe {
                            let at = (k * c_out + o) * padded + ib * 16;
                            std::slice::from_raw_parts_mut(dst.0.add(at), width)
                        };
                        for (j, d) in run.iter_mut().enumerate() {
                            *d = block[j * kvol + k];
                        }
                    }
                }
            }
        });
        LaneKernel {
            data,
            c_out,
            padded,
            lanes,
        }
    }
}

/// `(o, g[o, p])` pairs of one or more positions.
type Entries = Vec<(u32, f32)>;

/// The gradient's nonzeros grouped by output position: position `p`'s `(o, g[o, p])` pairs are
/// `entries[starts[p]..starts[p + 1]]`, `o` ascending. `g` is `[C_out][P]`.
fn nonzeros_by_position(g: &[f32], c_out: usize, positions: usize) -> (Vec<usize>, Entries) {
    // Position ranges in parallel, each read channel by channel (contiguous rows of g).
    let chunk = 4096;
    let parts: Vec<(Vec<u32>, Entries)> = (0..positions.div_ceil(chunk))
        .into_par_iter()
        .map(|ci| {
            let (p0, p1) = (ci * chunk, ((ci + 1) * chunk).min(positions));
            let mut count = vec![0u32; p1 - p0 + 1];
            for o in 0..c_out {
                for (k, &v) in g[o * positions + p0..o * positions + p1].iter().enumerate() {
                    count[k + 1] += u32::from(v != 0.0);
                }
            }
            for k in 1..count.len() {
                count[k] += count[k - 1];
            }
            let mut entries = vec![(0u32, 0.0f32); count[p1 - p0] as usize];
            let mut fill = count.clone();
            for o in 0..c_out {
                for (k, &v) in g[o * positions + p0..o * positions + p1].iter().enumerate() {
                    if v != 0.0 {
                        entries[fill[k] as usize] = (o as u32, v);
                        fill[k] += 1;
                    }
                }
            }
            (count, entries)
        })
        .collect();
    let mut starts = Vec::with_capacity(positions + 1);
    let mut entries = Vec::with_capacity(parts.iter().map(|p| p.1.len()).sum());
    for (count, part) in parts {
        let base = entries.len();
        starts.extend(count[..count.len() - 1].iter().map(|&c| base + c as usize));
        entries.extend(part);
    }
    starts.push(entries.len());
    (starts, entries)
}

/// For one axis: `map[x * k + off]` = the output coordinate `y` with `y s + off - pad = x`, or
/// `u32::MAX` where there is none.
fn axis_map(n_in: usize, k: usize, s: usize, pad: usize, n_out: usize) -> Vec<u32> {
    let mut m = vec![u32::MAX; n_in * k];
    for x in 0..n_in {
        for off in 0..k {
            if x + pad >= off && (x + pad - off).is_multiple_of(s) && (x + pad - off) / s < n_out {
                m[x * k + off] = ((x + pad - off) / s) as u32;
            }
        }
    }
    m
}

/// Input positions per tile of one gather task: each offset's kernel rows serve this many
/// positions before the next offset's are read (64 positions left conv4's rows, 128 KB per
/// offset, coming from L3 again for every tile).
const TILE: usize = 256;

/// Everything one gather task reads.
struct Gather<'a> {
    dims: &'a ConvDims,
    kernel: &'a LaneKernel,
    starts: &'a [usize],
    entries: &'a [(u32, f32)],
    maps: [Vec<u32>; 3],
}

impl Gather<'_> {
    /// `dx[i0..i0 + L, frames t0..t1]`, in tiles of [`TILE`] consecutive input positions whose
    /// `L`-lane sums stay in L2: kernel offsets outermost within a tile, so only one offset's
    /// kernel rows (`C_out x L`) are in use at a time; each position's lanes are in registers
    /// while it runs through one output position's nonzero channels.
    #[inline(always)]
    fn sweep<const L: usize, const AVX512: bool>(
        &self,
        i0: usize,
        t0: usize,
        t1: usize,
        dx: SendPtr,
    ) {
        let [_, h_in, w_in] = self.dims.input;
        let [kt, kh, kw] = self.dims.g.kernel;
        let [_, ho_n, wo_n] = self.dims.output;
        let frame = h_in * w_in;
        let plane = self.dims.input[0] * frame;
        let (c_out, padded) = (self.kernel.c_out, self.kernel.padded);
        let real = L.min(self.dims.c_in - i0);
        let [mt, mh, mw] = &self.maps;
        let mut sums = [[0.0f32; L]; TILE];
        let mut coords = [(0usize, 0usize, 0usize); TILE];
        let (q_end, mut qa) = (t1 * frame, t0 * frame);
        while qa < q_end {
            let n = TILE.min(q_end - qa);
            for (k, xyz) in coords[..n].iter_mut().enumerate() {
                let q = qa + k;
                *xyz = (q / frame, (q / w_in) % h_in, q % w_in);
            }
            sums[..n].fill([0.0; L]);
            for a in 0..kt {
                for b in 0..kh {
                    for c in 0..kw {
                        let rows = &self.kernel.data[((a * kh + b) * kw + c) * c_out * padded..];
                        for (acc_out, &(t, h, w)) in sums[..n].iter_mut().zip(&coords[..n]) {
                            let (to, ho, wo) = (mt[t * kt + a], mh[h * kh + b], mw[w * kw + c]);
                            if to == u32::MAX || ho == u32::MAX || wo == u32::MAX {
                                continue;
                            }
                            let p = (to as usize * ho_n + ho as usize) * wo_n + wo as usize;
                            let list = &self.entries[self.starts[p]..self.starts[p + 1]];
                            #[cfg(target_arch = "x86_64")]
                            if AVX512 {
                                // SAFETY: sweep::<_, true> runs only inside run_avx512 (AVX-512F
                                // present); o < C_out and i0 + L <= padded for every entry.
                                unsafe { visit_avx512(acc_out, list, rows, padded, i0) };
                                continue;
                            }
                            let mut acc = *acc_out;
                            for &(o, v) in list {
                                let at = o as usize * padded + i0;
                                let row: &[f32; L] =
                                    rows[at..at + L].try_into().expect("lane block");
                                for j in 0..L {
                                    acc[j] += v * row[j];
                                }
                            }
                            *acc_out = acc;
                        }
                    }
                }
            }
            for j in 0..real {
                // SAFETY: channel i0 + j < C_in and positions qa..qa + n < plane lie in this
                // sample's dx; this task alone writes channels i0..i0 + L of frames t0..t1.
                let dst =
                    unsafe { std::slice::from_raw_parts_mut(dx.0.add((i0 + j) * plane + qa), n) };
                for (d, acc) in dst.iter_mut().zip(&sums[..n]) {
                    *d = acc[j];
                }
            }
            qa += n;
        }
    }

    fn run(&self, i0: usize, t0: usize, t1: usize, dx: SendPtr) {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            unsafe { self.run_avx512(i0, t0, t1, dx) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { self.run_avx2(i0, t0, t1, dx) };
            return;
        }
        match self.kernel.lanes {
            64 => self.sweep::<64, false>(i0, t0, t1, dx),
            _ => self.sweep::<16, false>(i0, t0, t1, dx),
        }
    }

    /// The same sweep, compiled for 256-bit registers: the lane loop vectorised 8 wide (the
    /// same multiplies and adds per lane, so the same values as the portable build).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(&self, i0: usize, t0: usize, t1: usize, dx: SendPtr) {
        match self.kernel.lanes {
            64 => self.sweep::<64, false>(i0, t0, t1, dx),
            _ => self.sweep::<16, false>(i0, t0, t1, dx),
        }
    }

    /// The same sweep, compiled for 512-bit registers.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, i0: usize, t0: usize, t1: usize, dx: SendPtr) {
        match self.kernel.lanes {
            64 => self.sweep::<64, true>(i0, t0, t1, dx),
            _ => self.sweep::<16, true>(i0, t0, t1, dx),
        }
    }
}

/// `acc += sum over list of v w_row(o)`, the lane block in `L / 16` registers: one FMA per 16
/// lanes and entry, in list order.
///
/// # Safety
/// The CPU must support AVX-512F; every entry's row `rows[o padded + i0..][..L]` must lie in
/// `rows`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn visit_avx512<const L: usize>(
    acc: &mut [f32; L],
    list: &[(u32, f32)],
    rows: &[f32],
    padded: usize,
    i0: usize,
) {
    use std::arch::x86_64::*;
    const MAX: usize = 4;
    let n = L / 16;
    debug_assert!(n <= MAX && L.is_multiple_of(16));
    let mut r = [_mm512_setzero_ps(); MAX];
    for (j, rj) in r.iter_mut().enumerate().take(n) {
        *rj = _mm512_loadu_ps(acc.as_ptr().add(16 * j));
    }
    for &(o, v) in list {
        let at = o as usize * padded + i0;
        debug_assert!(at + L <= rows.len());
        let row = rows.as_ptr().add(at);
        let vv = _mm512_set1_ps(v);
        for (j, rj) in r.iter_mut().enumerate().take(n) {
            *rj = _mm512_fmadd_ps(vv, _mm512_loadu_ps(row.add(16 * j)), *rj);
        }
    }
    for (j, rj) in r.iter().enumerate().take(n) {
        _mm512_storeu_ps(acc.as_mut_ptr().add(16 * j), *rj);
    }
}

/// `dx = conv^T(g)` for one sample (`dx` overwritten), gathering over `g`'s nonzeros. Parallel
/// over blocks of input-channel lanes and slabs of input frames.
pub(crate) fn conv_transposed_sparse_sample(
    dims: &ConvDims,
    g: &[f32],
    kernel: &LaneKernel,
    dx: &mut [f32],
) {
    let _timer = crate::phases::Timer::new(crate::phases::Phase::Arithmetic);
    let positions = dims.positions();
    assert!(g.len() == kernel.c_out * positions && dx.len() == dims.input_len());
    let (starts, entries) = nonzeros_by_position(g, kernel.c_out, positions);
    let d = dims.g;
    let maps = std::array::from_fn(|a| {
        axis_map(
            dims.input[a],
            d.kernel[a],
            d.stride[a],
            d.padding[a],
            dims.output[a],
        )
    });
    let gather = Gather {
        dims,
        kernel,
        starts: &starts,
        entries: &entries,
        maps,
    };
    let blocks = dims.c_in.div_ceil(kernel.lanes);
    let t_in = dims.input[0];
    let slab_t = frame_slab(blocks, t_in);
    let slabs = t_in.div_ceil(slab_t);
    // Each task writes its own (lane block x frame slab) region of dx.
    let ptr = SendPtr(dx.as_mut_ptr());
    (0..blocks * slabs).into_par_iter().for_each(|task| {
        let (bi, si) = (task / slabs, task % slabs);
        let (t0, t1) = (si * slab_t, ((si + 1) * slab_t).min(t_in));
        if t0 < t1 {
            gather.run(bi * kernel.lanes, t0, t1, ptr);
        }
    });
}
