//! 3x3x3 convolutions (stride 1, padding 1) by Winograd's minimal filtering `F(2x2x2, 3x3x3)`.
//!
//! Per axis, two outputs of a 3-tap correlation `y[o] = sum_a d[o + a] g[a]` come from four
//! inputs as `y = A^T [(G g) ⊙ (B^T d)]` with
//!
//! ```text
//!       | 1  0 -1  0 |        |  1    0    0  |
//! B^T = | 0  1  1  0 |    G = | 1/2  1/2  1/2 |    A^T = | 1  1  1  0 |
//!       | 0 -1  1  0 |        | 1/2 -1/2  1/2 |          | 0  1 -1 -1 |
//!       | 0  1  0 -1 |        |  0    0    1  |
//! ```
//!
//! and in 3-d the three transforms act along each axis. A `2 x 2 x 2` output tile then costs 64
//! products per input-output channel pair instead of 216: for every one of the 64 transform
//! points `ξ`, `M_ξ = U_ξ V_ξ` is a GEMM (`U_ξ`: `C_out x C_in` transformed kernels, `V_ξ`:
//! `C_in x tiles` transformed input tiles), run on [`crate::gemm`] with `U_ξ` packed once.
//!
//! The tiles are cut into blocks of [`BLOCK_TILES`] that the threads take whole; layers with few
//! tiles and large kernels (C3D's conv4) run all tiles at once, the 64 GEMMs split over the
//! threads ([`Job::whole`]). Either way every output value is computed from its tile alone, with
//! its `C_in` products summed in channel order, so results are identical for every thread count
//! and batch composition.
//!
//! Accuracy: the transforms add and subtract neighbouring values (the 1/2 factors are exact),
//! so the rounding error is bounded by a small multiple of `eps sum |d| |g|` over the 4x4x4
//! input tile, not of `eps |y|`. That is the usual error of a sum with mixed signs, but not of a
//! sum of non-negative products, which direct summation computes to relative precision; the
//! backend keeps such sums (the `z+` rule's `z`, later divided by) on the im2col path.

use crate::conv::ConvDims;
use crate::gemm::{gemm_packed_serial, Output, PackedA, RowMajor, Scratch, SendPtr};
use rayon::prelude::*;
use std::ops::Range;

/// Tiles per block. Each block multiplies all 64 `U_ξ` by its tiles, so fewer tiles read the
/// kernels more often, more make the block's transformed data (`64 (C_in + C_out)` floats per
/// tile) fall out of cache before the output transform reads it. Measured on C3D's layers (AMD
/// EPYC, AVX2, 2 threads): 32 was fastest for conv2 and conv3 (2x the im2col GEMM for conv2;
/// 16, 48 and 64 were slower).
const BLOCK_TILES: usize = 32;

/// The most floats of transformed kernels (`64 C_in C_out`) for the blocked schedule, and the
/// most the backend keeps between calls: above, every block would stream the kernels from
/// memory (C3D's conv4, 256-512 channels on 4x14x14, ran no faster than the im2col GEMM that
/// way); 4M floats (16 MB) is half the L3 of the machine measured.
const MAX_KERNEL_FLOATS: usize = 1 << 22;

/// The most tiles for the whole-layer schedule ([`Job::whole`]), which takes layers with larger
/// kernels: all tiles at once, each transformed kernel read once.
const WHOLE_MAX_TILES: usize = 256;

/// The most floats of transformed inputs and products (`64 (C_in + C_out)` per tile) of the
/// whole-layer schedule (32 MB).
const WHOLE_MAX_FLOATS: usize = 1 << 23;

/// The fewest input and output channels: below, the 64 GEMMs are too thin to pay for the
/// transforms (C3D's conv1 has 3 input channels).
const MIN_CHANNELS: usize = 16;

/// The fewest output positions per sample: smaller layers (C3D's conv5, 2x7x7) waste most of
/// their edge tiles and cannot amortize the 64 transformed kernels.
const MIN_POSITIONS: usize = 256;

/// How a convolution is scheduled: blocks of [`BLOCK_TILES`] tiles taken whole by the threads,
/// or all tiles at once ([`Job::whole`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Schedule {
    Blocks,
    Whole,
}

/// The schedule for `n` samples of `dims` with `c_out` output channels, or `None` where this
/// module does not compute it: kernel 3x3x3, stride 1, padding 1, at least [`MIN_CHANNELS`]
/// channels each side and [`MIN_POSITIONS`] positions, on a CPU with the register GEMM kernels
/// ([`crate::gemm::fast`]); blocks where the transformed kernels take at most
/// [`MAX_KERNEL_FLOATS`], else the whole layer where it has at most [`WHOLE_MAX_TILES`] tiles
/// and [`WHOLE_MAX_FLOATS`] of transformed data. `VIDLRP_CPU_WINOGRAD=0` turns it off (for
/// comparisons).
fn schedule(dims: &ConvDims, c_out: usize, n: usize) -> Option<Schedule> {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let on = *ON.get_or_init(|| std::env::var("VIDLRP_CPU_WINOGRAD").map_or(true, |v| v != "0"));
    let fits = on
        && dims.g.kernel == [3, 3, 3]
        && dims.g.stride == [1, 1, 1]
        && dims.g.padding == [1, 1, 1]
        && dims.output == dims.input
        && dims.c_in >= MIN_CHANNELS
        && c_out >= MIN_CHANNELS
        && dims.positions() >= MIN_POSITIONS
        && crate::gemm::fast();
    if !fits {
        return None;
    }
    let tiles = n * dims.input.iter().map(|e| e.div_ceil(2)).product::<usize>();
    if 64 * dims.c_in * c_out <= MAX_KERNEL_FLOATS {
        Some(Schedule::Blocks)
    } else if tiles <= WHOLE_MAX_TILES
        && 64 * (dims.c_in + c_out) * padded(tiles) <= WHOLE_MAX_FLOATS
    {
        Some(Schedule::Whole)
    } else {
        None
    }
}

/// Whether this module computes `n` samples of `dims` with `c_out` output channels (see
/// [`schedule`]).
pub(crate) fn applies(dims: &ConvDims, c_out: usize, n: usize) -> bool {
    schedule(dims, c_out, n).is_some()
}

/// `u = G g` along one axis, for [`LANES`] kernels at once.
#[inline(always)]
fn filter_lanes(g0: &Lanes, g1: &Lanes, g2: &Lanes) -> [Lanes; 4] {
    let s = add(g0, g2);
    let half = |v: Lanes| v.map(|e| 0.5 * e);
    [*g0, half(add(&s, g1)), half(sub(&s, g1)), *g2]
}

/// The 64 transformed values `(G ⊗ G ⊗ G) g` of [`LANES`] 3x3x3 kernels `g[9a + 3b + c]`, at
/// `ξ = 16 α + 4 β + γ`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // the index names the transform axis
fn transform_kernel(g: &[Lanes; 27]) -> [Lanes; 64] {
    let mut w = [[[[0.0f32; LANES]; 4]; 3]; 3]; // [a][b][γ]
    for a in 0..3 {
        for b in 0..3 {
            let at = 9 * a + 3 * b;
            w[a][b] = filter_lanes(&g[at], &g[at + 1], &g[at + 2]);
        }
    }
    let mut h = [[[[0.0f32; LANES]; 4]; 4]; 3]; // [a][β][γ]
    for a in 0..3 {
        for c in 0..4 {
            let u = filter_lanes(&w[a][0][c], &w[a][1][c], &w[a][2][c]);
            for (bt, v) in u.iter().enumerate() {
                h[a][bt][c] = *v;
            }
        }
    }
    let mut out = [[0.0f32; LANES]; 64];
    for bt in 0..4 {
        for c in 0..4 {
            let u = filter_lanes(&h[0][bt][c], &h[1][bt][c], &h[2][bt][c]);
            for (al, v) in u.iter().enumerate() {
                out[16 * al + 4 * bt + c] = *v;
            }
        }
    }
    out
}

/// One group of [`LANES`] output channels of [`Kernels::new`]: their transformed kernels for
/// every input channel, written into the 64 packed matrices at `base` (`len` floats each).
struct KernelGroup<'a> {
    w: &'a [f32],
    c_out: usize,
    c_in: usize,
    transposed: bool,
    og: usize,
    base: SendPtr,
    len: usize,
}

impl KernelGroup<'_> {
    /// [`KernelGroup::fill`] compiled with AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn fill_avx2(&self) {
        self.fill();
    }

    #[inline(always)]
    fn fill(&self) {
        let KernelGroup {
            w,
            c_out,
            c_in,
            transposed,
            og,
            base,
            len,
        } = *self;
        let lanes = LANES.min(c_out - og);
        for i in 0..c_in {
            let mut g = [[0.0f32; LANES]; 27];
            for (l, o) in (og..og + lanes).enumerate() {
                if transposed {
                    let src = &w[(i * c_out + o) * 27..][..27];
                    for (a, ga) in g.iter_mut().enumerate() {
                        ga[l] = src[26 - a];
                    }
                } else {
                    let src = &w[(o * c_in + i) * 27..][..27];
                    for (a, ga) in g.iter_mut().enumerate() {
                        ga[l] = src[a];
                    }
                }
            }
            let t = transform_kernel(&g);
            // The lanes' places in each packed matrix: runs of consecutive places (a row group
            // of the packing holds several lanes side by side).
            let mut runs = [(0usize, 0usize, 0usize); LANES];
            let mut count = 0;
            for l in 0..lanes {
                let at = PackedA::index(c_out, c_in, og + l, i);
                if count > 0 && runs[count - 1].2 + runs[count - 1].1 == at {
                    runs[count - 1].1 += 1;
                } else {
                    runs[count] = (l, 1, at);
                    count += 1;
                }
            }
            for (xi, e) in t.iter().enumerate() {
                for &(l, n, at) in &runs[..count] {
                    // SAFETY: each (o, i) has its own slot in each of the 64 matrices, inside
                    // `data`; a run's places are consecutive.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            e.as_ptr().add(l),
                            base.0.add(xi * len + at),
                            n,
                        );
                    }
                }
            }
        }
    }
}

/// The 64 transformed kernel matrices `U_ξ` (`C_out x C_in`), each packed for the GEMM, in
/// storage the caller keeps between calls (64 (C_out C_in) floats: refilling it costs no page
/// faults).
struct Kernels<'a> {
    data: &'a [f32],
    c_out: usize,
    c_in: usize,
}

impl<'a> Kernels<'a> {
    /// From `w[o][i][27]` (`transposed = false`), or for the transposed convolution from the
    /// kernel it transposes, `w[i][o][27]` read flipped: `U_ξ[o][i] = T(w[i][o][26 - a])`.
    /// [`LANES`] output channels are transformed side by side.
    fn new(
        storage: &'a mut Vec<f32>,
        w: &[f32],
        c_out: usize,
        c_in: usize,
        transposed: bool,
    ) -> Self {
        let len = PackedA::len(c_out, c_in);
        storage.resize(64 * len + 16, 0.0);
        let skip = storage.as_ptr().align_offset(64).min(16);
        let data = &mut storage[skip..skip + 64 * len];
        let base = SendPtr(data.as_mut_ptr());
        let groups = c_out.div_ceil(LANES);
        (0..groups).into_par_iter().for_each(|gi| {
            let job = KernelGroup {
                w,
                c_out,
                c_in,
                transposed,
                og: gi * LANES,
                base,
                len,
            };
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                unsafe { job.fill_avx2() };
                return;
            }
            job.fill();
        });
        Kernels { data, c_out, c_in }
    }

    /// `U_ξ`.
    fn u(&self, xi: usize) -> PackedA<'_> {
        let len = PackedA::len(self.c_out, self.c_in);
        PackedA::new(&self.data[xi * len..(xi + 1) * len], self.c_out, self.c_in)
    }
}

/// `out[n][C_out][P] = conv(x, w) (+ bias)` for a convolution where [`applies`] holds. `w` is
/// `[C_out][C_in][27]`, or with `transposed` the kernel of the convolution whose transpose this
/// is, `[C_in][C_out][27]`, read flipped (see [`Kernels::new`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv(
    kernel_storage: &mut Vec<f32>,
    dims: &ConvDims,
    n: usize,
    c_out: usize,
    x: &[f32],
    w: &[f32],
    transposed: bool,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let plan = schedule(dims, c_out, n).expect("Winograd convolution does not apply");
    let c_in = dims.c_in;
    let [t_n, h_n, w_n] = dims.input;
    assert!(dims.output == dims.input && x.len() == n * dims.input_len());
    assert!(w.len() == c_out * c_in * 27 && out.len() == n * c_out * dims.positions());
    let timer = crate::phases::Timer::new(crate::phases::Phase::Transform);
    let kernels = Kernels::new(kernel_storage, w, c_out, c_in, transposed);
    drop(timer);
    let grid = [t_n.div_ceil(2), h_n.div_ceil(2), w_n.div_ceil(2)];
    let per_sample = grid.iter().product::<usize>();
    let tiles = n * per_sample;
    let job = Job {
        c_in,
        c_out,
        extent: dims.input,
        grid,
        x,
        kernels: &kernels,
        bias,
        out: SendPtr(out.as_mut_ptr()),
    };
    match plan {
        Schedule::Whole => job.whole(tiles),
        Schedule::Blocks => {
            let block = BLOCK_TILES;
            (0..tiles.div_ceil(block)).into_par_iter().for_each(|b| {
                BLOCK_SCRATCH.with_borrow_mut(|(v, m, scratch)| {
                    job.run(b * block, tiles.min((b + 1) * block), v, m, scratch);
                });
            });
        }
    }
    if kernel_storage.len() > MAX_KERNEL_FLOATS + 16 {
        // Larger kernels are transient: keeping them would hold tens of MB for the run.
        *kernel_storage = Vec::new();
    }
}

/// Tiles transformed side by side: one 8-wide vector per transform point.
const LANES: usize = 8;

type Lanes = [f32; LANES];

#[inline(always)]
fn add(a: &Lanes, b: &Lanes) -> Lanes {
    std::array::from_fn(|l| a[l] + b[l])
}

#[inline(always)]
fn sub(a: &Lanes, b: &Lanes) -> Lanes {
    std::array::from_fn(|l| a[l] - b[l])
}

/// `v = B^T d` along one axis, for [`LANES`] tiles at once.
#[inline(always)]
fn input_lanes(d0: &Lanes, d1: &Lanes, d2: &Lanes, d3: &Lanes) -> [Lanes; 4] {
    [sub(d0, d2), add(d1, d2), sub(d2, d1), sub(d1, d3)]
}

/// `y = A^T m` along one axis, for [`LANES`] tiles at once.
#[inline(always)]
fn output_lanes(m0: &Lanes, m1: &Lanes, m2: &Lanes, m3: &Lanes) -> [Lanes; 2] {
    [add(&add(m0, m1), m2), sub(&sub(m1, m2), m3)]
}

/// Where the transformed values of channel `c`, point `ξ` start: `c ch + ξ xi`; tile `j`
/// follows at `+ j`.
#[derive(Clone, Copy)]
struct Layout {
    ch: usize,
    xi: usize,
}

/// Row length for `nb` tiles: `>= nb + LANES - 1`, so a group of [`LANES`] tiles is loaded and
/// stored whole, its lanes past a run's end landing in the next run's columns (written after it)
/// or in padding (never read).
fn padded(nb: usize) -> usize {
    (nb + LANES - 1).next_multiple_of(LANES)
}

/// A stretch of tiles of one block that lie side by side along `w` (same sample, `t` and `h`
/// tile): `len` tiles from tile column `iw`, the first at position `j` of the block.
#[derive(Clone, Copy)]
struct Run {
    j: usize,
    sample: usize,
    it: usize,
    ih: usize,
    iw: usize,
    len: usize,
}

thread_local! {
    /// Each worker's transformed inputs, products and GEMM packing space, kept between blocks
    /// and calls (refilled, not reallocated).
    static BLOCK_SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>, Scratch)> =
        std::cell::RefCell::new((Vec::new(), Vec::new(), Scratch::default()));
}

/// What every block of tiles shares.
struct Job<'a> {
    c_in: usize,
    c_out: usize,
    extent: [usize; 3],
    grid: [usize; 3],
    x: &'a [f32],
    kernels: &'a Kernels<'a>,
    bias: Option<&'a [f32]>,
    out: SendPtr,
}

impl Job<'_> {
    /// Tiles `q0..q1` of the batch (tile `q`: sample `q / G`, then `t`, `h`, `w` tile in
    /// row-major order) as runs along `w`.
    fn runs(&self, q0: usize, q1: usize) -> Vec<Run> {
        let [_, gh, gw] = self.grid;
        let per_sample = self.grid.iter().product::<usize>();
        let mut runs = Vec::new();
        let mut q = q0;
        while q < q1 {
            let (sample, r) = (q / per_sample, q % per_sample);
            let (it, ih, iw) = (r / (gh * gw), (r / gw) % gh, r % gw);
            let len = (gw - iw).min(q1 - q);
            runs.push(Run {
                j: q - q0,
                sample,
                it,
                ih,
                iw,
                len,
            });
            q += len;
        }
        runs
    }

    /// Tiles `q0..q1` on the calling thread: transform their inputs into `v`
    /// (`[C_in][64][nbp]`: one channel's 64 transforms side by side, so the transforms touch one
    /// small region at a time), multiply into `m` (`[C_out][64][nbp]`), transform back into the
    /// output.
    fn run(&self, q0: usize, q1: usize, v: &mut Vec<f32>, m: &mut Vec<f32>, scratch: &mut Scratch) {
        let nb = q1 - q0;
        let nbp = padded(nb);
        v.resize(64 * self.c_in * nbp, 0.0);
        m.resize(64 * self.c_out * nbp, 0.0);
        let runs = self.runs(q0, q1);
        let lay = Layout {
            ch: 64 * nbp,
            xi: nbp,
        };
        self.inputs(&runs, lay, SendPtr(v.as_mut_ptr()), 0..self.c_in);
        for xi in 0..64 {
            let b = RowMajor {
                data: &v[xi * nbp..],
                ld: 64 * nbp,
            };
            let c = Output {
                data: &mut m[xi * nbp..],
                ldc: 64 * nbp,
            };
            gemm_packed_serial(self.kernels.u(xi), nb, &b, c, scratch);
        }
        self.outputs(&runs, lay, m, 0..self.c_out);
    }

    /// All `tiles` at once, the work split over the transform points: inputs transformed in
    /// parallel over channels into `[64][C_in][nbp]`, the 64 GEMMs in parallel (each `U_ξ` read
    /// once), outputs in parallel over channels. For few tiles and large kernels (C3D's conv4:
    /// 98 tiles, 17M transformed kernel values), where blocks would each stream all kernels.
    fn whole(&self, tiles: usize) {
        let nbp = padded(tiles);
        let (c_in, c_out) = (self.c_in, self.c_out);
        let mut v = vec![0.0f32; 64 * c_in * nbp];
        let mut m = vec![0.0f32; 64 * c_out * nbp];
        let runs = self.runs(0, tiles);
        let vp = SendPtr(v.as_mut_ptr());
        let (v_lay, m_lay) = (
            Layout {
                ch: nbp,
                xi: c_in * nbp,
            },
            Layout {
                ch: nbp,
                xi: c_out * nbp,
            },
        );
        (0..c_in).into_par_iter().for_each(|i| {
            self.inputs(&runs, v_lay, vp, i..i + 1);
        });
        m.par_chunks_mut(c_out * nbp)
            .enumerate()
            .for_each(|(xi, mx)| {
                let b = RowMajor {
                    data: &v[xi * c_in * nbp..(xi + 1) * c_in * nbp],
                    ld: nbp,
                };
                let c = Output { data: mx, ldc: nbp };
                BLOCK_SCRATCH.with_borrow_mut(|(_, _, scratch)| {
                    gemm_packed_serial(self.kernels.u(xi), tiles, &b, c, scratch);
                });
            });
        let m = &m;
        (0..c_out).into_par_iter().for_each(|o| {
            self.outputs(&runs, m_lay, m, o..o + 1);
        });
    }

    /// [`Job::input_transforms`], compiled with AVX2 where the CPU has it.
    fn inputs(&self, runs: &[Run], lay: Layout, v: SendPtr, channels: Range<usize>) {
        let _timer = crate::phases::Timer::new(crate::phases::Phase::Transform);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { self.inputs_avx2(runs, lay, v, channels) };
            return;
        }
        self.input_transforms(runs, lay, v, channels);
    }

    /// [`Job::input_transforms`] compiled with AVX2 (a named function: the `#[inline(always)]`
    /// body is inlined into it, which a closure would not guarantee).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn inputs_avx2(&self, runs: &[Run], lay: Layout, v: SendPtr, channels: Range<usize>) {
        self.input_transforms(runs, lay, v, channels);
    }

    /// [`Job::output_transforms`], compiled with AVX2 where the CPU has it.
    fn outputs(&self, runs: &[Run], lay: Layout, m: &[f32], channels: Range<usize>) {
        let _timer = crate::phases::Timer::new(crate::phases::Phase::Transform);
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            unsafe { self.outputs_avx2(runs, lay, m, channels) };
            return;
        }
        self.output_transforms(runs, lay, m, channels);
    }

    /// [`Job::output_transforms`] compiled with AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn outputs_avx2(&self, runs: &[Run], lay: Layout, m: &[f32], channels: Range<usize>) {
        self.output_transforms(runs, lay, m, channels);
    }

    /// `V_ξ[i][j] = (B^T ⊗ B^T ⊗ B^T) d` of the 4x4x4 input window of every tile `j` and input
    /// channel `i` in `channels`, written at `v + i lay.ch + ξ lay.xi + j`. The 16 input rows a
    /// run needs are copied into zero-padded lines first, so [`LANES`] neighbouring windows are
    /// read without bounds checks.
    ///
    /// `v` must have room for every channel's rows of [`padded`] length; callers running this
    /// in parallel give each call its own channels (the rows it writes).
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // the indices name the transform axes
    fn input_transforms(&self, runs: &[Run], lay: Layout, v: SendPtr, channels: Range<usize>) {
        let c_in = self.c_in;
        let [t_n, h_n, w_n] = self.extent;
        let plane = t_n * h_n * w_n;
        // Padded index p = w + 1; a group reads p in 2 iw .. 2 iw + 2 LANES + 2.
        let width = 2 * self.grid[2] + 2 * LANES + 2;
        let mut lines = vec![0.0f32; 16 * width];
        for run in runs {
            for i in channels.clone() {
                let src = &self.x[(run.sample * c_in + i) * plane..][..plane];
                for a in 0..4 {
                    for b in 0..4 {
                        let line = &mut lines[(4 * a + b) * width..][..width];
                        let (t, h) = (
                            (2 * run.it + a).wrapping_sub(1),
                            (2 * run.ih + b).wrapping_sub(1),
                        );
                        if t < t_n && h < h_n {
                            line[1..1 + w_n].copy_from_slice(&src[(t * h_n + h) * w_n..][..w_n]);
                        } else {
                            line[1..1 + w_n].fill(0.0);
                        }
                    }
                }
                for g in (0..run.len).step_by(LANES) {
                    let p0 = 2 * (run.iw + g);
                    // x[ab][γ]: the w transform of row (a, b) of each window.
                    let mut x = [[[0.0f32; LANES]; 4]; 16];
                    for (r, xr) in x.iter_mut().enumerate() {
                        let seg = &lines[r * width + p0..][..2 * LANES + 2];
                        let even: [f32; LANES + 1] = std::array::from_fn(|l| seg[2 * l]);
                        let odd: [f32; LANES + 1] = std::array::from_fn(|l| seg[2 * l + 1]);
                        let d0: Lanes = std::array::from_fn(|l| even[l]);
                        let d2: Lanes = std::array::from_fn(|l| even[l + 1]);
                        let d1: Lanes = std::array::from_fn(|l| odd[l]);
                        let d3: Lanes = std::array::from_fn(|l| odd[l + 1]);
                        *xr = input_lanes(&d0, &d1, &d2, &d3);
                    }
                    // y[a][β][γ]: then along h.
                    let mut y = [[[[0.0f32; LANES]; 4]; 4]; 4];
                    for a in 0..4 {
                        for c in 0..4 {
                            let r = 4 * a;
                            let u = input_lanes(&x[r][c], &x[r + 1][c], &x[r + 2][c], &x[r + 3][c]);
                            for (bt, e) in u.iter().enumerate() {
                                y[a][bt][c] = *e;
                            }
                        }
                    }
                    // Then along t, stored at ξ = 16 α + 4 β + γ.
                    for bt in 0..4 {
                        for c in 0..4 {
                            let u =
                                input_lanes(&y[0][bt][c], &y[1][bt][c], &y[2][bt][c], &y[3][bt][c]);
                            for (al, e) in u.iter().enumerate() {
                                let xi = 16 * al + 4 * bt + c;
                                let at = i * lay.ch + xi * lay.xi + run.j + g;
                                // SAFETY: `at + LANES` stays inside row (i, ξ), padded for
                                // whole groups; this call alone writes channel i's rows.
                                unsafe { v.0.add(at).cast::<Lanes>().write_unaligned(*e) };
                            }
                        }
                    }
                }
            }
        }
    }

    /// `out = (A^T ⊗ A^T ⊗ A^T) M (+ bias)` for every tile and output channel `o` in
    /// `channels`, [`LANES`] tiles at a time, `M_ξ[o][j]` at `m[o lay.ch + ξ lay.xi + j]`;
    /// positions past the extent (odd extents' last tiles) are dropped.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // the indices name the transform axes
    fn output_transforms(&self, runs: &[Run], lay: Layout, m: &[f32], channels: Range<usize>) {
        let c_out = self.c_out;
        let [t_n, h_n, w_n] = self.extent;
        let plane = t_n * h_n * w_n;
        for run in runs {
            for o in channels.clone() {
                let bias = self.bias.map_or(0.0, |b| b[o]);
                for g in (0..run.len).step_by(LANES) {
                    let lanes = LANES.min(run.len - g);
                    let mut p = [[0.0f32; LANES]; 64];
                    for (xi, e) in p.iter_mut().enumerate() {
                        let src = &m[o * lay.ch + xi * lay.xi + run.j + g..][..LANES];
                        *e = *<&Lanes>::try_from(src).expect("LANES");
                    }
                    // Along w, then h, then t.
                    let mut x = [[[[0.0f32; LANES]; 2]; 4]; 4]; // [α][β][w]
                    for al in 0..4 {
                        for bt in 0..4 {
                            let r = 16 * al + 4 * bt;
                            x[al][bt] = output_lanes(&p[r], &p[r + 1], &p[r + 2], &p[r + 3]);
                        }
                    }
                    let mut y = [[[[0.0f32; LANES]; 2]; 2]; 4]; // [α][h][w]
                    for al in 0..4 {
                        for w in 0..2 {
                            let u = output_lanes(
                                &x[al][0][w],
                                &x[al][1][w],
                                &x[al][2][w],
                                &x[al][3][w],
                            );
                            y[al][0][w] = u[0];
                            y[al][1][w] = u[1];
                        }
                    }
                    let w0 = 2 * (run.iw + g);
                    let count = (2 * lanes).min(w_n - w0);
                    for h in 0..2 {
                        let u = output_lanes(&y[0][h][0], &y[1][h][0], &y[2][h][0], &y[3][h][0]);
                        let u1 = output_lanes(&y[0][h][1], &y[1][h][1], &y[2][h][1], &y[3][h][1]);
                        for a in 0..2 {
                            let (t, hh) = (2 * run.it + a, 2 * run.ih + h);
                            if t >= t_n || hh >= h_n {
                                continue;
                            }
                            let row: [f32; 2 * LANES] = std::array::from_fn(|k| {
                                (if k % 2 == 0 {
                                    u[a][k / 2]
                                } else {
                                    u1[a][k / 2]
                                }) + bias
                            });
                            let at = (run.sample * c_out + o) * plane + (t * h_n + hh) * w_n + w0;
                            // SAFETY: each output position belongs to one tile, each tile to one
                            // block; `at..at + count` lies in `out` (count <= w_n - w0).
                            unsafe {
                                let dst = self.out.0.add(at);
                                if count == 2 * LANES {
                                    *dst.cast::<[f32; 2 * LANES]>() = row;
                                } else {
                                    std::ptr::copy_nonoverlapping(row.as_ptr(), dst, count);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vidlrp_core::Conv3dGeometry;

    fn uniform(seed: u64, len: usize) -> Vec<f32> {
        vidlrp_rng::uniform_values(len, seed, -1.0, 1.0)
    }

    /// Direct f64 correlation and the bound `sum |x| |w|` per output.
    fn reference(
        dims: &ConvDims,
        n: usize,
        c_out: usize,
        x: &[f32],
        w: &[f32],
    ) -> (Vec<f64>, Vec<f64>) {
        let [tn, hn, wn] = dims.input;
        let c_in = dims.c_in;
        let mut y = vec![0.0f64; n * c_out * tn * hn * wn];
        let mut bound = y.clone();
        for s in 0..n {
            for o in 0..c_out {
                for t in 0..tn {
                    for h in 0..hn {
                        for ww in 0..wn {
                            let (mut acc, mut abs) = (0.0f64, 0.0f64);
                            for i in 0..c_in {
                                for a in 0..3 {
                                    for b in 0..3 {
                                        for c in 0..3 {
                                            let (ti, hi, wi) = (t + a, h + b, ww + c);
                                            if ti < 1 || hi < 1 || wi < 1 {
                                                continue;
                                            }
                                            let (ti, hi, wi) = (ti - 1, hi - 1, wi - 1);
                                            if ti >= tn || hi >= hn || wi >= wn {
                                                continue;
                                            }
                                            let xv = x
                                                [(((s * c_in + i) * tn + ti) * hn + hi) * wn + wi]
                                                as f64;
                                            let wv =
                                                w[(o * c_in + i) * 27 + 9 * a + 3 * b + c] as f64;
                                            acc += xv * wv;
                                            abs += (xv * wv).abs();
                                        }
                                    }
                                }
                            }
                            let at = (((s * c_out + o) * tn + t) * hn + h) * wn + ww;
                            y[at] = acc;
                            bound[at] = abs;
                        }
                    }
                }
            }
        }
        (y, bound)
    }

    fn dims(c_in: usize, input: [usize; 3]) -> ConvDims {
        ConvDims {
            c_in,
            input,
            output: input,
            g: Conv3dGeometry {
                kernel: [3; 3],
                stride: [1; 3],
                padding: [1; 3],
            },
        }
    }

    #[test]
    fn agrees_with_direct_summation_on_odd_extents_and_batches() {
        if !crate::gemm::fast() {
            return;
        }
        for (n, c_in, c_out, input) in [
            (1, 16, 16, [4, 8, 8]),
            (2, 17, 33, [5, 7, 9]),
            (3, 24, 16, [3, 11, 8]),
        ] {
            let d = dims(c_in, input);
            let x = uniform(1 + n as u64, n * d.input_len());
            let w = uniform(7 + c_out as u64, c_out * c_in * 27);
            let mut out = vec![f32::NAN; n * c_out * d.positions()];
            conv(&mut Vec::new(), &d, n, c_out, &x, &w, false, None, &mut out);
            let (y, bound) = reference(&d, n, c_out, &x, &w);
            for ((&o, &r), &b) in out.iter().zip(&y).zip(&bound) {
                // A few dozen roundings of terms no larger than the tile's |x| |w| sums.
                assert!(
                    (o as f64 - r).abs() <= 1e-5 * (b + 1.0),
                    "{o} vs {r} (bound {b}) at n={n} c_in={c_in} c_out={c_out} {input:?}"
                );
            }
        }
    }

    #[test]
    fn the_whole_layer_schedule_agrees_with_direct_summation() {
        if !crate::gemm::fast() {
            return;
        }
        // 64 * 264^2 transformed kernel values: too many for blocks; 56 tiles.
        let (n, c_in, c_out, input) = (1, 264, 264, [3, 7, 13]);
        let d = dims(c_in, input);
        assert_eq!(schedule(&d, c_out, n), Some(Schedule::Whole));
        let x = uniform(31, n * d.input_len());
        let w = uniform(37, c_out * c_in * 27);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![f32::NAN; n * c_out * d.positions()];
            let mut u = Vec::new();
            pool.install(|| conv(&mut u, &d, n, c_out, &x, &w, false, None, &mut out));
            assert!(u.is_empty(), "large transformed kernels are not kept");
            out
        };
        let out = run(2);
        assert_eq!(out, run(3));
        let (y, bound) = reference(&d, n, c_out, &x, &w);
        for ((&o, &r), &b) in out.iter().zip(&y).zip(&bound) {
            assert!((o as f64 - r).abs() <= 1e-5 * (b + 1.0), "{o} vs {r}");
        }
    }

    #[test]
    fn the_transposed_kernel_is_read_flipped() {
        if !crate::gemm::fast() {
            return;
        }
        let (n, c_in, c_out, input) = (1, 16, 20, [4, 6, 11]);
        let d = dims(c_in, input);
        let x = uniform(3, n * d.input_len());
        // The kernel of the convolution this one transposes: [c_in][c_out][27] from its view.
        let wt = uniform(5, c_out * c_in * 27);
        let mut w = vec![0.0f32; wt.len()];
        for i in 0..c_in {
            for o in 0..c_out {
                for a in 0..27 {
                    w[(o * c_in + i) * 27 + a] = wt[(i * c_out + o) * 27 + 26 - a];
                }
            }
        }
        let mut direct = vec![0.0f32; n * c_out * d.positions()];
        let mut flipped = direct.clone();
        conv(
            &mut Vec::new(),
            &d,
            n,
            c_out,
            &x,
            &w,
            false,
            None,
            &mut direct,
        );
        conv(
            &mut Vec::new(),
            &d,
            n,
            c_out,
            &x,
            &wt,
            true,
            None,
            &mut flipped,
        );
        assert_eq!(direct, flipped);
    }

    #[test]
    fn results_do_not_depend_on_threads_or_batch_neighbours() {
        if !crate::gemm::fast() {
            return;
        }
        let (c_in, c_out, input) = (16, 24, [6, 10, 12]);
        let d = dims(c_in, input);
        let x = uniform(11, 3 * d.input_len());
        let w = uniform(13, c_out * c_in * 27);
        let bias = uniform(17, c_out);
        let run = |threads: usize, n: usize, x: &[f32]| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0.0f32; n * c_out * d.positions()];
            pool.install(|| {
                conv(
                    &mut Vec::new(),
                    &d,
                    n,
                    c_out,
                    x,
                    &w,
                    false,
                    Some(&bias),
                    &mut out,
                );
            });
            out
        };
        let batch = run(1, 3, &x);
        assert_eq!(batch, run(2, 3, &x));
        assert_eq!(batch, run(3, 3, &x));
        let second = run(2, 1, &x[d.input_len()..2 * d.input_len()]);
        let p = c_out * d.positions();
        assert_eq!(&batch[p..2 * p], &second[..]);
    }
}
