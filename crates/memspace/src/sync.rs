//! The only module that names atomics and `UnsafeCell`.
//!
//! Under `--cfg loom` these are loom's model-checked types, otherwise std's. Code that is
//! model-checked imports from here, never from `std::sync::atomic` directly.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Atomically loads the `u64` at `p` with acquire ordering.
///
/// # Safety
/// `p` must be 8-byte aligned and valid for reads of 8 bytes, and every concurrent access to
/// those bytes must be atomic too (true of memory that memspace shares only through these
/// functions).
#[allow(clippy::cast_ptr_alignment)] // alignment is the caller's documented precondition
pub(crate) unsafe fn load_u64_acquire(p: *const u8) -> u64 {
    // SAFETY: alignment and validity are guaranteed by the caller.
    // SYNC: pairs with the Release store in `store_u64_release` (of this or another process).
    unsafe {
        std::sync::atomic::AtomicU64::from_ptr(p.cast_mut().cast::<u64>())
            .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Atomically stores `v` at `p` with release ordering.
///
/// # Safety
/// As for [`load_u64_acquire`], with validity for writes.
#[allow(clippy::cast_ptr_alignment)] // alignment is the caller's documented precondition
pub(crate) unsafe fn store_u64_release(p: *mut u8, v: u64) {
    // SAFETY: alignment and validity are guaranteed by the caller.
    // SYNC: pairs with the Acquire load in `load_u64_acquire`.
    unsafe {
        std::sync::atomic::AtomicU64::from_ptr(p.cast::<u64>())
            .store(v, std::sync::atomic::Ordering::Release);
    }
}
