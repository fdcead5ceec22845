//! 3-d convolution as tiled im2col + GEMM, and its transpose as GEMM + col2im.
//!
//! The im2col matrix of one sample has `K = C_in kT kH kW` rows and one column per output
//! position; it is built a tile of columns at a time, so its memory stays near
//! [`TILE_FLOATS`] whatever the layer size (C3D's conv2 would need 350 MB untiled).

use crate::gemm::dense::par_gemm;
use crate::gemm::{PackB, NR};
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;
use vidlrp_core::Conv3dGeometry;

/// Target size of one im2col tile, in floats (1 MB, so col2im reads it from cache), unless
/// that leaves fewer than [`MIN_TILE_COLS`] columns.
pub const TILE_FLOATS: usize = 1 << 18;

/// The fewest columns per tile: narrower GEMMs lose more to packing than cache saves.
pub const MIN_TILE_COLS: usize = 1024;

/// Extents of one convolution call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvDims {
    pub c_in: usize,
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub g: Conv3dGeometry,
}

impl ConvDims {
    pub fn rows(&self) -> usize {
        self.c_in * self.g.kernel.iter().product::<usize>()
    }
    pub fn positions(&self) -> usize {
        self.output.iter().product()
    }
    pub fn input_len(&self) -> usize {
        self.c_in * self.input.iter().product::<usize>()
    }
    /// Columns per tile: about [`TILE_FLOATS`] floats, at least [`MIN_TILE_COLS`] columns.
    pub fn tile_cols(&self) -> usize {
        let p = self.positions().max(1);
        (TILE_FLOATS / self.rows().max(1)).max(MIN_TILE_COLS).min(p)
    }

    /// `(c, a, b, d)`: input channel and kernel offsets of im2col row `r`.
    #[inline]
    fn row_parts(&self, r: usize) -> (usize, usize, usize, usize) {
        let [kt, kh, kw] = self.g.kernel;
        let d = r % kw;
        let b = (r / kw) % kh;
        let a = (r / (kw * kh)) % kt;
        (r / (kw * kh * kt), a, b, d)
    }

    /// Visits the output positions `p0..p1` of im2col row `r` as runs along the last axis:
    /// `f(col_offset, src)` with `src` = `Some(start index into the sample's input, length, stride)`
    /// for the in-range part of a run and `None` for padding of the given length.
    #[inline]
    fn for_each_run(&self, r: usize, p0: usize, p1: usize, mut f: impl FnMut(usize, Run)) {
        let (c, a, b, d) = self.row_parts(r);
        let [t_in, h_in, w_in] = self.input;
        let [_, ho_n, wo_n] = self.output;
        let [st, sh, sw] = self.g.stride;
        let [pt, ph, pw] = self.g.padding;
        let plane = ho_n * wo_n;
        // Valid output columns: 0 <= wo*sw + d - pw < w_in.
        let lo = if pw > d { (pw - d).div_ceil(sw) } else { 0 };
        let hi = if w_in + pw > d {
            ((w_in + pw - d - 1) / sw + 1).min(wo_n)
        } else {
            0
        };
        let mut p = p0;
        while p < p1 {
            let to = p / plane;
            let rem = p % plane;
            let ho = rem / wo_n;
            let wo0 = rem % wo_n;
            let wo1 = wo_n.min(wo0 + (p1 - p));
            let off = p - p0;
            let t = (to * st + a) as isize - pt as isize;
            let h = (ho * sh + b) as isize - ph as isize;
            if t < 0 || t >= t_in as isize || h < 0 || h >= h_in as isize || lo >= hi {
                f(off, Run::Pad(wo1 - wo0));
            } else {
                let (v0, v1) = (lo.max(wo0), hi.min(wo1));
                if v0 >= v1 {
                    f(off, Run::Pad(wo1 - wo0));
                } else {
                    if v0 > wo0 {
                        f(off, Run::Pad(v0 - wo0));
                    }
                    let base = ((c * t_in + t as usize) * h_in + h as usize) * w_in;
                    let start = base + v0 * sw + d - pw;
                    f(
                        off + v0 - wo0,
                        Run::Data {
                            start,
                            len: v1 - v0,
                            stride: sw,
                        },
                    );
                    if wo1 > v1 {
                        f(off + v1 - wo0, Run::Pad(wo1 - v1));
                    }
                }
            }
            p += wo1 - wo0;
        }
    }
}

#[derive(Clone, Copy)]
enum Run {
    Pad(usize),
    Data {
        start: usize,
        len: usize,
        stride: usize,
    },
}

/// The im2col matrix as a [`PackB`] source: packed slivers are gathered straight from the
/// input, so the matrix itself never exists. `x` may hold several samples back to back; their
/// columns follow each other (column `j` is position `j % P` of sample `j / P`).
pub(crate) struct Im2colPacker<'a> {
    pub dims: &'a ConvDims,
    pub x: &'a [f32],
}

/// Lanes `lo..hi` of one packed sliver whose columns lie in one output row; `origin` holds the
/// input coordinates `(t, h, w)` of lane `lo`'s window origin (negative inside the padding).
#[derive(Clone, Copy)]
struct Segment {
    lo: usize,
    hi: usize,
    origin: [isize; 3],
    /// Index of the segment's sample in the input.
    base: isize,
}

impl PackB for Im2colPacker<'_> {
    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]) {
        let d = self.dims;
        let [t_in, h_in, w_in] = d.input.map(|v| v as isize);
        let [_, ho_n, wo_n] = d.output;
        let [st, sh, sw] = d.g.stride;
        let [pt, ph, pw] = d.g.padding.map(|v| v as isize);
        let (hw, plane) = (h_in * w_in, t_in * h_in * w_in);
        // Per row: (index offset of its tap within a window, a, b, e).
        let rows: Vec<[isize; 4]> = (k0..k0 + kc)
            .map(|r| {
                let (c, a, b, e) = d.row_parts(r);
                let (c, a, b, e) = (c as isize, a as isize, b as isize, e as isize);
                [c * plane + a * hw + b * w_in + e, a, b, e]
            })
            .collect();
        // Per sliver: its columns cut where the output row (or the sample) changes.
        let positions = d.positions();
        let mut segments = Vec::new();
        let mut bounds = vec![0usize];
        for s0 in (j0..j0 + nc).step_by(NR) {
            let s1 = (s0 + NR).min(j0 + nc);
            let mut p = s0;
            while p < s1 {
                let (sample, q) = (p / positions, p % positions);
                let (to, ho, wo) = (q / (ho_n * wo_n), (q / wo_n) % ho_n, q % wo_n);
                let end = s1.min(p + wo_n - wo);
                segments.push(Segment {
                    lo: p - s0,
                    hi: end - s0,
                    origin: [
                        (to * st) as isize - pt,
                        (ho * sh) as isize - ph,
                        (wo * sw) as isize - pw,
                    ],
                    base: (sample * d.input_len()) as isize,
                });
                p = end;
            }
            bounds.push(segments.len());
        }
        let job = PackJob {
            x: self.x,
            input: [t_in, h_in, w_in],
            kernel: d.g.kernel,
            sw: sw as isize,
            rows: &rows,
            segments: &segments,
            bounds: &bounds,
        };
        #[cfg(target_arch = "x86_64")]
        if sw == 1 && std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            unsafe { job.run_avx512(kc, dst) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if sw == 1 && std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { job.run_avx2(kc, dst) };
            return;
        }
        job.run(kc, dst);
    }
}

/// One call's packing: rows and sliver segments precomputed.
struct PackJob<'a> {
    x: &'a [f32],
    input: [isize; 3],
    kernel: [usize; 3],
    sw: isize,
    rows: &'a [[isize; 4]],
    segments: &'a [Segment],
    bounds: &'a [usize],
}

impl PackJob<'_> {
    /// The lanes `first..last` of `seg` whose column for column tap `e` lies inside the input
    /// (lane `l` reads `w = w0 + e + (l - lo) sw`, valid for `0 <= w < W`); `None` if none does.
    #[inline(always)]
    fn columns(&self, seg: &Segment, e: isize) -> Option<(usize, usize)> {
        let (w_in, sw) = (self.input[2], self.sw);
        let w = seg.origin[2] + e;
        let (lo, hi) = (seg.lo as isize, seg.hi as isize);
        let first = if w >= 0 { lo } else { lo + (-w + sw - 1) / sw };
        let last = if w < w_in {
            hi.min(lo + (w_in - w + sw - 1) / sw)
        } else {
            lo
        };
        (first < last).then_some((first as usize, last as usize))
    }

    /// The valid lanes `l_min..l_max` of `seg` for row tap `(a, b, e)` and the input index of
    /// lane `seg.lo` (before clipping), or `None` where the row of the window is padding.
    #[inline(always)]
    fn lanes(&self, seg: &Segment, row: &[isize; 4]) -> Option<(usize, usize, isize)> {
        let [t_in, h_in, w_in] = self.input;
        let [tap, a, b, e] = *row;
        let [t0, h0, w0] = seg.origin;
        if !(0..t_in).contains(&(t0 + a)) || !(0..h_in).contains(&(h0 + b)) {
            return None;
        }
        self.columns(seg, e).map(|(first, last)| {
            let at = seg.base + t0 * h_in * w_in + h0 * w_in + w0 + tap;
            (first, last, at)
        })
    }

    /// Each packed sliver (`kc` rows of `NR` lanes in `dst`) with its segments.
    fn slivers<'s>(
        &'s self,
        kc: usize,
        dst: &'s mut [f32],
    ) -> impl Iterator<Item = (&'s [Segment], &'s mut [f32])> {
        dst.chunks_mut(kc * NR)
            .zip(self.bounds.windows(2))
            .map(|(sliver, b)| (&self.segments[b[0]..b[1]], sliver))
    }

    /// Portable: lane by lane.
    fn run(&self, kc: usize, dst: &mut [f32]) {
        for (segs, sliver) in self.slivers(kc, dst) {
            for (out, row) in sliver.chunks_exact_mut(NR).zip(self.rows) {
                out.fill(0.0);
                for seg in segs {
                    if let Some((l0, l1, at)) = self.lanes(seg, row) {
                        for (l, o) in out.iter_mut().enumerate().take(l1).skip(l0) {
                            *o = self.x[(at + (l - seg.lo) as isize * self.sw) as usize];
                        }
                    }
                }
            }
        }
    }

    /// For stride 1, what a segment reads depends on a row only through its tap `(c, a, b,
    /// e)`: the lanes inside the input for each column tap `e` (`masks[s kW + e]`), whether
    /// window row `(a, b)` is inside (`inside[s kT kH + a kH + b]`), and the input index of lane
    /// 0 (`lane0[s]`) are worked out once per segment, not once per row. Per row: its tap's index
    /// offset, window row `a kH + b` and column tap `e`.
    fn segment_tables(&self) -> SegmentTables {
        let [t_in, h_in, w_in] = self.input;
        let [kt, kh, kw] = self.kernel;
        let (n, nab) = (self.segments.len(), kt * kh);
        let mut masks = vec![0u16; n * kw];
        let mut inside = vec![false; n * nab];
        let mut lane0 = vec![0isize; n];
        for (s, seg) in self.segments.iter().enumerate() {
            let [t0, h0, w0] = seg.origin;
            for a in 0..kt {
                for b in 0..kh {
                    inside[s * nab + a * kh + b] = (0..t_in).contains(&(t0 + a as isize))
                        && (0..h_in).contains(&(h0 + b as isize));
                }
            }
            for e in 0..kw {
                if let Some((first, last)) = self.columns(seg, e as isize) {
                    masks[s * kw + e] = ((1u32 << last) - (1u32 << first)) as u16;
                }
            }
            lane0[s] = seg.base + t0 * h_in * w_in + h0 * w_in + w0 - seg.lo as isize;
        }
        let taps = self
            .rows
            .iter()
            .map(|&[tap, a, b, e]| (tap, a as usize * kh + b as usize, e as usize))
            .collect();
        SegmentTables {
            masks,
            inside,
            lane0,
            taps,
            nab,
            kw,
        }
    }

    /// Stride 1 with AVX-512F: each segment of a sliver row is one masked load.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `sw` must be 1.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, kc: usize, dst: &mut [f32]) {
        use std::arch::x86_64::*;
        let t = self.segment_tables();
        for (sliver, range) in dst.chunks_mut(kc * NR).zip(self.bounds.windows(2)) {
            for (out, &(tap, ab, e)) in sliver.chunks_exact_mut(NR).zip(&t.taps) {
                let mut v = _mm512_setzero_ps();
                for s in range[0]..range[1] {
                    if t.inside[s * t.nab + ab] {
                        // Only the mask's lanes, all inside x, load.
                        let base = self.x.as_ptr().wrapping_offset(t.lane0[s] + tap);
                        v = _mm512_mask_loadu_ps(v, t.masks[s * t.kw + e], base);
                    }
                }
                _mm512_storeu_ps(out.as_mut_ptr(), v);
            }
        }
    }

    /// Stride 1 with AVX2: each segment of a sliver row is two 8-lane loads masked to its
    /// lanes, blended into the row.
    ///
    /// # Safety
    /// The CPU must support AVX2; `sw` must be 1.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(&self, kc: usize, dst: &mut [f32]) {
        use std::arch::x86_64::*;
        let t = self.segment_tables();
        // A 16-lane mask as two vectors of all-ones / all-zeros 32-bit lanes.
        let bits_lo = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        let bits_hi = _mm256_slli_epi32::<8>(bits_lo);
        let widen = |m: u16| {
            let m = _mm256_set1_epi32(i32::from(m));
            (
                _mm256_cmpeq_epi32(_mm256_and_si256(m, bits_lo), bits_lo),
                _mm256_cmpeq_epi32(_mm256_and_si256(m, bits_hi), bits_hi),
            )
        };
        let wide: Vec<(__m256i, __m256i)> = t.masks.iter().map(|&m| widen(m)).collect();
        let len = self.x.len();
        // Lanes `mlo`/`mhi` of `x[at..at + 16]`, zero elsewhere. Where all 16 lanes lie inside
        // x, a plain load ANDed with the mask (2x faster here than masked loads on AMD Zen); at
        // the ends of x, masked loads (lanes the mask leaves out read nothing).
        let load = |at: isize, (mlo, mhi): (__m256i, __m256i)| {
            let base = self.x.as_ptr().wrapping_offset(at);
            if at >= 0 && at as usize + NR <= len {
                (
                    _mm256_and_ps(_mm256_loadu_ps(base), _mm256_castsi256_ps(mlo)),
                    _mm256_and_ps(_mm256_loadu_ps(base.add(8)), _mm256_castsi256_ps(mhi)),
                )
            } else {
                (
                    _mm256_maskload_ps(base, mlo),
                    _mm256_maskload_ps(base.wrapping_add(8), mhi),
                )
            }
        };
        for (sliver, range) in dst.chunks_mut(kc * NR).zip(self.bounds.windows(2)) {
            if range[1] - range[0] == 1 {
                // One segment (the sliver lies in one output row): its tables hoisted.
                let s = range[0];
                let inside = &t.inside[s * t.nab..(s + 1) * t.nab];
                let masks = &wide[s * t.kw..(s + 1) * t.kw];
                let lane0 = t.lane0[s];
                for (out, &(tap, ab, e)) in sliver.chunks_exact_mut(NR).zip(&t.taps) {
                    let (lo, hi) = if inside[ab] {
                        load(lane0 + tap, masks[e])
                    } else {
                        (_mm256_setzero_ps(), _mm256_setzero_ps())
                    };
                    _mm256_storeu_ps(out.as_mut_ptr(), lo);
                    _mm256_storeu_ps(out.as_mut_ptr().add(8), hi);
                }
                continue;
            }
            for (out, &(tap, ab, e)) in sliver.chunks_exact_mut(NR).zip(&t.taps) {
                let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
                for s in range[0]..range[1] {
                    if t.inside[s * t.nab + ab] {
                        // Segments cover disjoint lanes, so their loads, zero outside the
                        // mask, add up to the row.
                        let (vlo, vhi) = load(t.lane0[s] + tap, wide[s * t.kw + e]);
                        lo = _mm256_or_ps(lo, vlo);
                        hi = _mm256_or_ps(hi, vhi);
                    }
                }
                _mm256_storeu_ps(out.as_mut_ptr(), lo);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), hi);
            }
        }
    }
}

/// What [`PackJob::segment_tables`] works out once per packed block.
struct SegmentTables {
    masks: Vec<u16>,
    inside: Vec<bool>,
    lane0: Vec<isize>,
    taps: Vec<(isize, usize, usize)>,
    nab: usize,
    kw: usize,
}

/// Fills `col` (`K x (p1 - p0)`, row-major) with the im2col columns `p0..p1` of one sample.
pub(crate) fn im2col(dims: &ConvDims, x: &[f32], p0: usize, p1: usize, col: &mut [f32]) {
    let width = p1 - p0;
    col.par_chunks_mut(width).enumerate().for_each(|(r, row)| {
        dims.for_each_run(r, p0, p1, |off, run| match run {
            Run::Pad(len) => row[off..off + len].fill(0.0),
            Run::Data {
                start,
                len,
                stride: 1,
            } => row[off..off + len].copy_from_slice(&x[start..start + len]),
            Run::Data { start, len, stride } => {
                for (i, v) in row[off..off + len].iter_mut().enumerate() {
                    *v = x[start + i * stride];
                }
            }
        });
    });
}

/// Frames per slab when `groups` independent groups (channels, lane blocks) are each cut into
/// slabs of frames (of `t_in`) for the threads: about four tasks per thread in all, enough even
/// with 3 input channels (conv1).
pub(crate) fn frame_slab(groups: usize, t_in: usize) -> usize {
    let slabs = (4 * rayon::current_num_threads())
        .div_ceil(groups.max(1))
        .clamp(1, t_in.max(1));
    t_in.div_ceil(slabs).max(1)
}

/// Adds the columns `p0..p1` of `col` (`K x (p1 - p0)`) back into the sample's input gradient
/// `dx`, in parallel over input channels and slabs of input frames (each task writes only its
/// own slab; every value receives its rows' contributions in row order, as one task would).
pub(crate) fn col2im_add(dims: &ConvDims, col: &[f32], p0: usize, p1: usize, dx: &mut [f32]) {
    let width = p1 - p0;
    let per_channel = dims.g.kernel.iter().product::<usize>();
    let [t_in, h_in, w_in] = dims.input;
    let frame = h_in * w_in;
    let plane = t_in * frame;
    let [_, ho_n, wo_n] = dims.output;
    let plane_o = ho_n * wo_n;
    let (kh, kw) = (dims.g.kernel[1], dims.g.kernel[2]);
    let (st, pt) = (dims.g.stride[0], dims.g.padding[0]);
    let slab_t = frame_slab(dims.c_in, t_in);
    let slab_len = slab_t * frame;
    dx.par_chunks_mut(plane).enumerate().for_each(|(c, dxc)| {
        dxc.par_chunks_mut(slab_len)
            .enumerate()
            .for_each(|(si, dxs)| {
                let (t0, t1) = (si * slab_t, ((si + 1) * slab_t).min(t_in));
                let base = c * plane + t0 * frame;
                for r in c * per_channel..(c + 1) * per_channel {
                    let a = (r / (kw * kh)) % dims.g.kernel[0];
                    // Output frames `to` with to st + a - pt in [t0, t1).
                    let lo = (t0 + pt).saturating_sub(a).div_ceil(st);
                    let hi = if t1 + pt > a {
                        (t1 + pt - a - 1) / st + 1
                    } else {
                        0
                    };
                    let (q0, q1) = ((lo * plane_o).max(p0), (hi * plane_o).min(p1));
                    if q0 >= q1 {
                        continue;
                    }
                    let row = &col[r * width..(r + 1) * width];
                    dims.for_each_run(r, q0, q1, |off, run| {
                        if let Run::Data { start, len, stride } = run {
                            let start = start - base;
                            let off = off + q0 - p0;
                            for (i, v) in row[off..off + len].iter().enumerate() {
                                dxs[start + i * stride] += v;
                            }
                        }
                    });
                }
            });
    });
}

/// Below this many output positions per sample, a batch's convolution runs as one GEMM over
/// the columns of all its samples (then reordered to `[N, C_out, P]`): the weights are packed
/// once instead of once per sample, and a small layer's few columns per sample (conv5 of C3D has
/// 98) no longer leave GEMM tiles part-empty.
pub(crate) const SPAN_MAX_POSITIONS: usize = 4096;

/// Forward convolution of `n` samples (`x` `[N, C_in, ...]`, `out` `[N, C_out, P]`):
/// `out[s]` = `w` (`C_out x K`) im2col(`x[s]`) + bias.
pub(crate) fn conv_forward(
    dims: &ConvDims,
    n: usize,
    x: &[f32],
    w: ArrayView2<'_, f32>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    col: &mut Vec<f32>,
) {
    let (k, p, m) = (dims.rows(), dims.positions(), w.nrows());
    if let (true, Some(ws)) = (
        crate::gemm::fast() && n > 1 && p < SPAN_MAX_POSITIONS,
        w.as_slice(),
    ) {
        let mut wide = vec![0.0f32; m * n * p];
        let packer = Im2colPacker { dims, x };
        let c = crate::gemm::Output {
            data: &mut wide,
            ldc: n * p,
        };
        crate::gemm::gemm(m, n * p, k, ws, &packer, c, false);
        out.par_chunks_mut(p).enumerate().for_each(|(r, o)| {
            let (sample, row) = (r / m, r % m);
            let src = &wide[row * n * p + sample * p..][..p];
            let b = bias.map_or(0.0, |b| b[row]);
            for (d, &v) in o.iter_mut().zip(src) {
                *d = v + b;
            }
        });
        return;
    }
    for (xs, os) in x.chunks(dims.input_len()).zip(out.chunks_mut(m * p)) {
        let ov = ArrayViewMut2::from_shape((m, p), os).expect("output shape");
        conv_forward_sample(dims, xs, w, bias, ov, col);
    }
}

/// Forward convolution of one sample: `out` (`C_out x P`) = `w` (`C_out x K`) im2col(x) + bias.
fn conv_forward_sample(
    dims: &ConvDims,
    x: &[f32],
    w: ArrayView2<'_, f32>,
    bias: Option<&[f32]>,
    mut out: ArrayViewMut2<'_, f32>,
    col: &mut Vec<f32>,
) {
    let (k, p) = (dims.rows(), dims.positions());
    match (crate::gemm::fast(), w.as_slice(), out.as_slice_mut()) {
        (true, Some(ws), Some(os)) => {
            let packer = Im2colPacker { dims, x };
            let c = crate::gemm::Output { data: os, ldc: p };
            crate::gemm::gemm(w.nrows(), p, k, ws, &packer, c, false);
        }
        _ => {
            let tile = dims.tile_cols();
            let mut p0 = 0;
            while p0 < p {
                let p1 = (p0 + tile).min(p);
                col.resize(k * (p1 - p0), 0.0);
                im2col(dims, x, p0, p1, col);
                let cv = ArrayView2::from_shape((k, p1 - p0), &col[..]).expect("tile shape");
                par_gemm(1.0, w, cv, 0.0, out.slice_mut(ndarray::s![.., p0..p1]));
                p0 = p1;
            }
        }
    }
    if let Some(b) = bias {
        out.outer_iter_mut()
            .into_par_iter()
            .zip(b.par_iter())
            .for_each(|(mut row, &bo)| {
                row.mapv_inplace(|v| v + bo);
            });
    }
}

/// Weight gradient of `n` samples: `dw` (`C_out x K`) `= sum_s g_s` (`C_out x P`)
/// `im2col(x_s)^T`, a tile of columns at a time. The samples are cut into one contiguous group
/// per thread, each group summed in order into its own partial (memory: threads x `dw`), and
/// the partials added in group order: deterministic for a thread count.
pub(crate) fn conv_weight_gradient(
    dims: &ConvDims,
    n: usize,
    c_out: usize,
    x: &[f32],
    g: &[f32],
    dw: &mut [f32],
) {
    let (k, p) = (dims.rows(), dims.positions());
    let tile = dims.tile_cols();
    let group = |samples: std::ops::Range<usize>| -> Vec<f32> {
        let mut part = vec![0.0f32; c_out * k];
        let mut col = Vec::new();
        let mut dwv = ArrayViewMut2::from_shape((c_out, k), &mut part[..]).expect("weight shape");
        for s in samples {
            let xs = &x[s * dims.input_len()..(s + 1) * dims.input_len()];
            let gs = &g[s * c_out * p..(s + 1) * c_out * p];
            let gv = ArrayView2::from_shape((c_out, p), gs).expect("gradient shape");
            let mut p0 = 0;
            while p0 < p {
                let p1 = (p0 + tile).min(p);
                col.resize(k * (p1 - p0), 0.0);
                im2col(dims, xs, p0, p1, &mut col);
                let cv = ArrayView2::from_shape((k, p1 - p0), &col[..]).expect("tile shape");
                par_gemm(
                    1.0,
                    gv.slice(ndarray::s![.., p0..p1]),
                    cv.t(),
                    1.0,
                    dwv.view_mut(),
                );
                p0 = p1;
            }
        }
        part
    };
    let groups = rayon::current_num_threads().clamp(1, n.max(1));
    let per = n.div_ceil(groups).max(1);
    let parts: Vec<Vec<f32>> = (0..groups)
        .into_par_iter()
        .map(|i| group(i * per..((i + 1) * per).min(n)))
        .collect();
    dw.fill(0.0);
    for part in parts {
        for (d, v) in dw.iter_mut().zip(&part) {
            *d += v;
        }
    }
}

/// Transposed convolution of one sample: `dx += col2im(w^T g)` with `g` (`C_out x P`).
pub(crate) fn conv_transposed_sample(
    dims: &ConvDims,
    g: ArrayView2<'_, f32>,
    w: ArrayView2<'_, f32>,
    dx: &mut [f32],
    col: &mut Vec<f32>,
) {
    let (k, p) = (dims.rows(), dims.positions());
    let tile = dims.tile_cols();
    let wt = w.t();
    // The register-blocked GEMM, for many positions (conv1 of C3D: few input channels), takes
    // `w^T` row-major (`K x C_out`, a copy); with few positions and large kernels (conv5 at
    // batch 1: 98 positions, 7M weights) copying and packing `w^T` costs more than it gains.
    let fast = match g.as_slice() {
        Some(gs) if crate::gemm::fast() && p >= FLIPPED_MIN_POSITIONS => {
            Some((wt.as_standard_layout().into_owned(), gs))
        }
        _ => None,
    };
    let mut p0 = 0;
    while p0 < p {
        let p1 = (p0 + tile).min(p);
        col.resize(k * (p1 - p0), 0.0);
        if let Some((wt, gs)) = &fast {
            let c = crate::gemm::Output {
                data: &mut col[..],
                ldc: p1 - p0,
            };
            let b = crate::gemm::RowMajor {
                data: &gs[p0..],
                ld: p,
            };
            let a = wt.as_slice().expect("standard layout");
            crate::gemm::gemm(k, p1 - p0, g.nrows(), a, &b, c, false);
        } else {
            let cv = ArrayViewMut2::from_shape((k, p1 - p0), &mut col[..]).expect("tile shape");
            par_gemm(1.0, wt, g.slice(ndarray::s![.., p0..p1]), 0.0, cv);
        }
        col2im_add(dims, col, p0, p1, dx);
        p0 = p1;
    }
}

/// Fewer GEMM columns than this (input positions, times the batch for small layers), and a
/// transposed convolution's GEMM over them (a few 16-column slivers) runs slower than `w^T g` +
/// col2im (conv5 of C3D at batch 1, 98 positions, does; conv4, 784, does not).
pub(crate) const FLIPPED_MIN_POSITIONS: usize = 512;

/// The fewest input channels (the flipped convolution's GEMM rows) for which the flipped
/// convolution beats `w^T g` + col2im with the AVX2 kernel (measured at C3D sizes on AVX2:
/// conv2's transpose onto 64 channels 0.20 s flipped, 0.27 s through col2im; conv3a's onto 128
/// equal; 64 onto 64 at 16x56x56 0.11 s and 0.18 s).
const FLIPPED_MIN_ROWS: usize = 32;

/// [`FLIPPED_MIN_ROWS`] with the AVX-512 kernel, which pays from half a register tile of rows
/// (measured on the small model's shapes, non-negative operands, batch 32, 2 threads: onto 8
/// channels at 16x24x24 31 ms flipped, 86 ms through col2im; onto 16 at 8x12x12 9.0 and 24.6
/// ms; at batch 1 0.96 and 2.4 ms, 0.31 and 0.81 ms).
const FLIPPED_MIN_ROWS_AVX512: usize = 8;

/// For stride 1 and padding `p <= k - 1`, the transposed convolution is a convolution of the
/// gradient with the flipped, transposed kernel ([`flipped_kernel`]) and padding `k - 1 - p`:
/// `dx[i, t] = sum_{o, a} g[o, t + p - a] w[o, i, a]`. Returns that convolution's extents, or
/// `None` where it does not apply or does not pay: with few input channels (the GEMM's rows) or
/// few positions, packing the gradient's columns costs more than GEMM + col2im.
pub(crate) fn flipped_dims(dims: &ConvDims, c_out: usize, n: usize) -> Option<ConvDims> {
    let positions = dims.input.iter().product::<usize>();
    // A batch of small layers runs as one GEMM over all samples' columns (conv_forward).
    let columns = if positions < SPAN_MAX_POSITIONS {
        n * positions
    } else {
        positions
    };
    let min_rows = if crate::gemm::avx512() {
        FLIPPED_MIN_ROWS_AVX512
    } else {
        FLIPPED_MIN_ROWS
    };
    if dims.c_in < min_rows || columns < FLIPPED_MIN_POSITIONS {
        return None;
    }
    flipped_geometry(dims, c_out)
}

/// The extents of the flipped convolution of [`flipped_dims`] wherever it exists (stride 1,
/// padding `p <= k - 1`), whether or not the GEMM would pay.
pub(crate) fn flipped_geometry(dims: &ConvDims, c_out: usize) -> Option<ConvDims> {
    let g = dims.g;
    if g.stride != [1, 1, 1] || (0..3).any(|a| g.padding[a] + 1 > g.kernel[a]) {
        return None;
    }
    let [kt, kh, kw] = g.kernel;
    Some(ConvDims {
        c_in: c_out,
        input: dims.output,
        output: dims.input,
        g: Conv3dGeometry {
            kernel: g.kernel,
            stride: [1, 1, 1],
            padding: [
                kt - 1 - g.padding[0],
                kh - 1 - g.padding[1],
                kw - 1 - g.padding[2],
            ],
        },
    })
}

/// The kernel `w[o, i, a]` (`[C_out, C_in, kvol]`) as `w'[i, o, kvol - 1 - a]`
/// (`[C_in, C_out kvol]`).
pub(crate) fn flipped_kernel(w: &[f32], c_out: usize, c_in: usize, kvol: usize) -> Vec<f32> {
    let mut f = vec![0.0f32; w.len()];
    // Blocks of 16 input channels per task: per o it reads one contiguous run of the source and
    // appends to 16 sequential streams of the result.
    const BLOCK: usize = 16;
    f.par_chunks_mut(BLOCK * c_out * kvol)
        .enumerate()
        .for_each(|(bi, fb)| {
            let i0 = bi * BLOCK;
            let width = fb.len() / (c_out * kvol);
            for o in 0..c_out {
                let src = &w[(o * c_in + i0) * kvol..(o * c_in + i0 + width) * kvol];
                for (l, s) in src.chunks(kvol).enumerate() {
                    let dst = &mut fb[(l * c_out + o) * kvol..(l * c_out + o + 1) * kvol];
                    for (j, d) in dst.iter_mut().enumerate() {
                        *d = s[kvol - 1 - j];
                    }
                }
            }
        });
    f
}
