//! Where the CPU backend's time goes, by phase, when asked (for `cargo xtask bench`): thread
//! time spent packing GEMM operands (`pack`, which includes the implicit im2col gather),
//! in the arithmetic of the GEMM micro-kernels and the direct, sparse and dense loops
//! (`arithmetic`), and in the Winograd transforms of inputs, outputs and kernels
//! (`transform`). Times are summed over threads, so on `T` threads they can add up to `T`
//! times the wall time; what is left of `T x wall` is elementwise work, pooling, dispatch
//! and idle threads.
//!
//! Off by default: then each timed region costs one relaxed atomic load.
//!
//! ```
//! use vidlrp_cpu::phases;
//! phases::record(true);
//! // ... run the backend ...
//! let p = phases::take();
//! phases::record(false);
//! assert!(p.pack_s >= 0.0 && p.arithmetic_s >= 0.0 && p.transform_s >= 0.0);
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// A phase of the backend's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Packing GEMM operands (and the im2col gather done while packing).
    Pack = 0,
    /// Multiply-adds: GEMM micro-kernels, direct, sparse and dense loops.
    Arithmetic = 1,
    /// Winograd input, output and kernel transforms.
    Transform = 2,
}

static RECORDING: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// Thread seconds per phase since the last [`take`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTimes {
    /// Packing GEMM operands, im2col gathers included.
    pub pack_s: f64,
    /// Multiply-adds.
    pub arithmetic_s: f64,
    /// Winograd transforms.
    pub transform_s: f64,
}

/// Starts (`true`) or stops recording.
pub fn record(on: bool) {
    RECORDING.store(on, Relaxed);
}

/// The times recorded since the last call, and resets them.
pub fn take() -> PhaseTimes {
    let s = |p: Phase| NANOS[p as usize].swap(0, Relaxed) as f64 * 1e-9;
    PhaseTimes {
        pack_s: s(Phase::Pack),
        arithmetic_s: s(Phase::Arithmetic),
        transform_s: s(Phase::Transform),
    }
}

/// A clock started if recording is on.
#[inline]
pub(crate) fn start() -> Option<Instant> {
    RECORDING.load(Relaxed).then(Instant::now)
}

/// Adds `nanos` to `phase`.
#[inline]
pub(crate) fn add(phase: Phase, nanos: u64) {
    NANOS[phase as usize].fetch_add(nanos, Relaxed);
}

/// A region whose time is split between two phases: the parts run through [`Split::part`]
/// count as one phase, the rest of the region as another.
pub(crate) struct Split {
    started: Option<Instant>,
    parts: u64,
}

impl Split {
    /// Starts the region's clock (if recording is on).
    #[inline]
    pub(crate) fn start() -> Self {
        Self {
            started: start(),
            parts: 0,
        }
    }

    /// Runs `f` as one of the parts.
    #[inline]
    pub(crate) fn part<R>(&mut self, f: impl FnOnce() -> R) -> R {
        if self.started.is_none() {
            return f();
        }
        let t = Instant::now();
        let r = f();
        self.parts += t.elapsed().as_nanos() as u64;
        r
    }

    /// Ends the region: the parts' time to `parts`, the rest to `rest`.
    #[inline]
    pub(crate) fn finish(self, parts: Phase, rest: Phase) {
        if let Some(t) = self.started {
            let all = t.elapsed().as_nanos() as u64;
            add(parts, self.parts);
            add(rest, all.saturating_sub(self.parts));
        }
    }
}

/// Counts the time until it is dropped as one phase: `let _t = Timer::new(Phase::..);` at the
/// top of a function that runs on one thread.
pub(crate) struct Timer(Option<(Phase, Instant)>);

impl Timer {
    /// Starts the clock (if recording is on).
    #[inline]
    pub(crate) fn new(phase: Phase) -> Self {
        Self(start().map(|t| (phase, t)))
    }
}

impl Drop for Timer {
    #[inline]
    fn drop(&mut self) {
        if let Some((phase, t)) = self.0 {
            add(phase, t.elapsed().as_nanos() as u64);
        }
    }
}
