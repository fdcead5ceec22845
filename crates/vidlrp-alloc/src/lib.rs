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
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
