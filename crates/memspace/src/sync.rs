//! The only module that names atomics and `UnsafeCell`.
//!
//! Under `--cfg loom` these are loom's model-checked types, otherwise std's. Code that is
//! model-checked imports from here, never from `std::sync::atomic` directly.

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

#[cfg(loom)]
pub(crate) use loom::hint::spin_loop;
/// The mutex of in-process state that model-checked code shares between threads.
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::hint::spin_loop;
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::atomic::{
    fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

/// Atomically loads the `u64` at `p` with acquire ordering.
///
/// # Safety
/// `p` must be 8-byte aligned and valid for reads of 8 bytes, and every concurrent access to
/// those bytes must be atomic too (true of memory that memspace shares only through these
/// functions).
#[cfg(not(loom))]
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
#[cfg(not(loom))]
#[allow(clippy::cast_ptr_alignment)] // alignment is the caller's documented precondition
pub(crate) unsafe fn store_u64_release(p: *mut u8, v: u64) {
    // SAFETY: alignment and validity are guaranteed by the caller.
    // SYNC: pairs with the Acquire load in `load_u64_acquire`.
    unsafe {
        std::sync::atomic::AtomicU64::from_ptr(p.cast::<u64>())
            .store(v, std::sync::atomic::Ordering::Release);
    }
}

/// Views the 4 bytes at `p` as an `AtomicU32` for the lifetime `'a`.
///
/// # Safety
/// `p` must be 4-byte aligned and valid for reads and writes for `'a`, and every concurrent
/// access to those bytes must be atomic (memory shared by memspace only through this module).
#[cfg(not(loom))]
#[allow(clippy::cast_ptr_alignment)] // alignment is the caller's documented precondition
pub(crate) unsafe fn atomic_u32<'a>(p: *mut u8) -> &'a AtomicU32 {
    // SAFETY: AtomicU32 has the size and alignment of u32; validity per the caller.
    unsafe { AtomicU32::from_ptr(p.cast::<u32>()) }
}

/// As [`atomic_u32`] for a `u64` (8-byte aligned).
///
/// # Safety
/// As for [`atomic_u32`], with 8-byte alignment.
#[cfg(not(loom))]
#[allow(clippy::cast_ptr_alignment)] // alignment is the caller's documented precondition
pub(crate) unsafe fn atomic_u64<'a>(p: *mut u8) -> &'a AtomicU64 {
    // SAFETY: as in `atomic_u32`.
    unsafe { AtomicU64::from_ptr(p.cast::<u64>()) }
}

/// As [`atomic_u32`] for a `u16` (2-byte aligned).
///
/// # Safety
/// As for [`atomic_u32`], with 2-byte alignment.
#[cfg(not(loom))]
#[allow(clippy::cast_ptr_alignment)] // alignment is the caller's documented precondition
pub(crate) unsafe fn atomic_u16<'a>(p: *mut u8) -> &'a AtomicU16 {
    // SAFETY: as in `atomic_u32`.
    unsafe { AtomicU16::from_ptr(p.cast::<u16>()) }
}

/// As [`atomic_u32`] for one byte.
///
/// # Safety
/// As for [`atomic_u32`] (no alignment requirement).
#[cfg(not(loom))]
pub(crate) unsafe fn atomic_u8<'a>(p: *mut u8) -> &'a AtomicU8 {
    // SAFETY: as in `atomic_u32`.
    unsafe { AtomicU8::from_ptr(p) }
}

/// Incremented in the child after every `fork()` (see `os::install_fork_hook`), so that
/// per-process state (attachment slots, which rely on OFD locks shared across fork) can
/// notice cheaply that it now lives in another process.
#[cfg(not(loom))]
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The current fork generation of this process.
#[cfg(not(loom))]
pub(crate) fn fork_generation() -> u64 {
    // SYNC: Relaxed: after fork the child has a single thread, which ran the hook itself;
    // threads started later synchronise with it through thread creation.
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Called by the fork hook in the child.
#[cfg(not(loom))]
pub(crate) fn bump_fork_generation() {
    // SYNC: Relaxed: see `fork_generation`.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

// Under loom there is no shared memory: the helpers above exist so that the crate compiles,
// and are never called by the model tests.

/// Never called under loom.
///
/// # Safety
/// Never returns.
#[cfg(loom)]
pub(crate) unsafe fn atomic_u32<'a>(_p: *mut u8) -> &'a AtomicU32 {
    unimplemented!("no shared memory under loom")
}

/// Never called under loom.
///
/// # Safety
/// Never returns.
#[cfg(loom)]
pub(crate) unsafe fn atomic_u64<'a>(_p: *mut u8) -> &'a AtomicU64 {
    unimplemented!("no shared memory under loom")
}

/// Never called under loom.
///
/// # Safety
/// Never returns.
#[cfg(loom)]
pub(crate) unsafe fn atomic_u16<'a>(_p: *mut u8) -> &'a AtomicU16 {
    unimplemented!("no shared memory under loom")
}

/// Never called under loom.
///
/// # Safety
/// Never returns.
#[cfg(loom)]
pub(crate) unsafe fn atomic_u8<'a>(_p: *mut u8) -> &'a AtomicU8 {
    unimplemented!("no shared memory under loom")
}

/// Never called under loom.
///
/// # Safety
/// Never returns.
#[cfg(loom)]
pub(crate) unsafe fn load_u64_acquire(_p: *const u8) -> u64 {
    unimplemented!("no shared memory under loom")
}

/// Never called under loom.
///
/// # Safety
/// Never returns.
#[cfg(loom)]
pub(crate) unsafe fn store_u64_release(_p: *mut u8, _v: u64) {
    unimplemented!("no shared memory under loom")
}

/// Under loom: always 0.
#[cfg(loom)]
pub(crate) fn fork_generation() -> u64 {
    0
}

/// Under loom: nothing.
#[cfg(loom)]
pub(crate) fn bump_fork_generation() {}

/// A process-unique id (never modelled by loom: it only has to be unique).
pub(crate) fn next_unique_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    // SYNC: Relaxed: only uniqueness matters, no other memory is published through it.
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The ordering point of a Dekker-style handshake: a `SeqCst` fence under loom, nothing in
/// production.
///
/// memspace's handshakes (eventcount prepare/notify, rwlock reader/writer) have each side do a
/// `SeqCst` store or read-modify-write of its own word and then a `SeqCst` load of the other
/// side's word. In the Rust (C++20) memory model all `SeqCst` operations form one total order
/// consistent with program order, which is exactly what such a handshake needs, and on x86-64
/// the `SeqCst` store or RMW is a locked instruction, itself a full barrier: a fence here would
/// only cost time. loom, however, models `SeqCst` *accesses* as acquire/release only (so it
/// reports executions the model forbids) while it models `SeqCst` *fences* exactly; under loom
/// the fence makes the checked program state the same ordering explicitly.
#[inline(always)]
pub(crate) fn handshake_fence() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}
