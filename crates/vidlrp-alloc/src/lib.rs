//! The allocator of vidlrp's binaries (the `vidlrp` CLI, `xtask`, the benches): one set-up
//! instead of a copy in each.
//!
//! Linking this crate makes [mimalloc](https://github.com/microsoft/mimalloc) the global
//! allocator. glibc returns every large buffer to the OS on free, so each layer of an
//! explanation would fault in fresh pages (a 3-4x slowdown of the memory-bound kernels);
//! mimalloc reuses them, and [`init`] makes it keep freed memory committed for reuse.
//!
//! A library that only uses `vidlrp-core` and a backend does not need this crate; a binary
//! that wants the same speed calls [`init`] first thing in `main`:
//!
//! ```
//! vidlrp_alloc::init();
//! let v = vec![0f32; 1 << 20]; // served by mimalloc
//! assert_eq!(v.len(), 1 << 20);
//! ```

/// The global allocator of every binary that links this crate.
#[global_allocator]
static GLOBAL: Counting = Counting;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

static COUNTING: AtomicBool = AtomicBool::new(false);
static CALLS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static NANOS: AtomicU64 = AtomicU64::new(0);

/// mimalloc, with the calls, bytes and time of allocations counted while [`count`] is on
/// (off: one relaxed atomic load per call).
struct Counting;

impl Counting {
    /// Runs one allocator call, counted if counting is on.
    #[inline]
    fn counted<R>(bytes: usize, f: impl FnOnce() -> R) -> R {
        if !COUNTING.load(Relaxed) {
            return f();
        }
        let t = std::time::Instant::now();
        let r = f();
        NANOS.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
        CALLS.fetch_add(1, Relaxed);
        BYTES.fetch_add(bytes as u64, Relaxed);
        r
    }
}

// SAFETY: every call is forwarded unchanged to mimalloc; counting touches no memory it hands out.
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        Self::counted(layout.size(), || unsafe {
            mimalloc::MiMalloc.alloc(layout)
        })
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        Self::counted(layout.size(), || unsafe {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        })
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        Self::counted(0, || unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) });
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        Self::counted(new_size, || unsafe {
            mimalloc::MiMalloc.realloc(ptr, layout, new_size)
        })
    }
}

/// What the allocator did while [`count`] was on, since the last [`take`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AllocStats {
    /// Allocator calls (allocations, frees and reallocations).
    pub calls: u64,
    /// Bytes asked for.
    pub bytes: u64,
    /// Time inside the allocator, summed over threads, in seconds (page faults on first
    /// touch are not in it: they fall on the code that touches the memory).
    pub seconds: f64,
}

/// Starts (`true`) or stops counting allocator calls.
pub fn count(on: bool) {
    COUNTING.store(on, Relaxed);
}

/// The counts since the last call, and resets them.
///
/// ```
/// vidlrp_alloc::count(true);
/// let v = vec![1u8; 4096];
/// drop(v);
/// vidlrp_alloc::count(false);
/// let s = vidlrp_alloc::take();
/// assert!(s.calls >= 2 && s.bytes >= 4096);
/// ```
pub fn take() -> AllocStats {
    AllocStats {
        calls: CALLS.swap(0, Relaxed),
        bytes: BYTES.swap(0, Relaxed),
        seconds: NANOS.swap(0, Relaxed) as f64 * 1e-9,
    }
}

/// mimalloc's `purge_delay` option (the one before `use_numa_nodes` in mimalloc's option enum).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_use_numa_nodes - 1;

/// Keeps freed memory committed for reuse (`purge_delay = -1`): every layer of an explanation
/// allocates tensors of the same few sizes (400 MB each at batch 8), and handing them back to
/// the OS makes the next layer fault every page in again.
pub fn init() {
    // SAFETY: sets one option of the allocator in use; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// The current `purge_delay` in milliseconds (`-1` once [`init`] ran).
pub fn purge_delay() -> std::ffi::c_long {
    // SAFETY: reads one option of the allocator in use.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_index_is_right() {
        // purge_delay defaults to 1000 ms (mimalloc v3) or 10 ms (v2); use_numa_nodes, the
        // option after it, defaults to 0.
        let v = super::purge_delay();
        assert!(
            [1000, 10, -1].contains(&v),
            "option {} is {v}",
            super::MI_OPTION_PURGE_DELAY
        );
        super::init();
        assert_eq!(super::purge_delay(), -1);
    }
}
