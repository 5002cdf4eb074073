//! Memory exported to Python in place: the buffer exporter behind zero-copy views of ring,
//! queue and broadcast messages and reservations, and the one copy out of such memory into a
//! new `bytes`; also how the filesystems borrow a bytes-like argument and fill a new `bytes` in
//! place.
//!
//! Lifetime rule: an exporter holds what keeps its bytes valid (a clone of the ring or queue
//! handle, which keeps the mapping; for a taken queue message, the message itself, so that its
//! space is never reused under a view). A memoryview made from it holds the exporter, so no
//! path leaves a view pointing at unmapped or reused memory.

use std::ffi::{c_int, c_void};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use memspace::mpmc::{Message as QueueMessage, Queue};
use memspace::Ring;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyBufferError, PyMemoryError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView};

use crate::args::Data;

/// A new `bytes` copied from `len` bytes at `ptr`.
pub(crate) fn bytes_at(py: Python<'_>, ptr: *const u8, len: usize) -> PyResult<Bound<'_, PyBytes>> {
    // SAFETY: `ptr` is valid for `len` bytes (a validated message the producer does not touch
    // until it is released); PyBytes_FromStringAndSize copies them into a new object.
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyBytes_FromStringAndSize(ptr.cast(), len as ffi::Py_ssize_t),
        )
        .map(|b| b.cast_into_unchecked::<PyBytes>())
    }
}

/// What keeps exported bytes valid: the mapping, and for a queue message the message itself
/// (its space is handed back when the exporter goes, so it is never reused under a view).
pub(crate) enum Keep {
    /// Held only to keep the mapping alive.
    Ring(#[allow(dead_code)] Ring),
    /// Held only to keep the mapping alive.
    Broadcast(#[allow(dead_code)] memspace::Broadcast),
    QueueMessage {
        q: Queue,
        m: Mutex<Option<QueueMessage>>,
        /// The process that took the message: a forked child's copy never releases it.
        pid: u32,
    },
}

/// Bytes exported to Python as a buffer: a message or reservation in place. Keeps the ring
/// or queue mapped while any view of it exists.
#[pyclass(module = "memspace._memspace", frozen)]
pub struct MessageBytes {
    ptr: usize,
    len: usize,
    readonly: bool,
    /// Buffers exported and not yet released (memoryviews made from other memoryviews share
    /// one export, so this is the only reliable "is anyone still looking?").
    exports: AtomicUsize,
    keep: Keep,
}

impl MessageBytes {
    /// Hands a queue message's space back now (at most once; later calls do nothing).
    pub(crate) fn release_message(&self) -> memspace::Result<()> {
        if let Keep::QueueMessage { q, m, pid } = &self.keep {
            let taken = m
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if let Some(msg) = taken.filter(|_| *pid == std::process::id()) {
                return q.release(msg);
            }
        }
        Ok(())
    }
}

impl Drop for MessageBytes {
    fn drop(&mut self) {
        // Nobody can look at the bytes any more (every view holds this object). An error here
        // is a corrupt segment, which the next operation on the queue reports.
        let _ = self.release_message();
    }
}

#[pymethods]
impl MessageBytes {
    /// # Safety
    /// Called by `CPython` with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        // SAFETY: `view` comes from CPython; ptr/len describe bytes inside the ring's or
        // queue's mapping, which `keep` keeps mapped (and, for a queue message, unreleased)
        // for as long as this object (and so the view) lives.
        unsafe {
            if ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                this.ptr as *mut c_void,
                this.len as ffi::Py_ssize_t,
                c_int::from(this.readonly),
                flags,
            ) != 0
            {
                return Err(PyErr::fetch(slf.py()));
            }
        }
        this.exports.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// # Safety
    /// Called by `CPython` with a view filled by `__getbuffer__`.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A memoryview over bytes in the ring, and the exporter that counts who still looks at them.
pub(crate) type Exported = (Py<MessageBytes>, Py<PyMemoryView>);

pub(crate) fn exported_view(
    py: Python<'_>,
    keep: Keep,
    ptr: *const u8,
    len: usize,
    readonly: bool,
) -> PyResult<(Exported, Bound<'_, PyMemoryView>)> {
    let bytes = Bound::new(
        py,
        MessageBytes {
            ptr: ptr as usize,
            len,
            readonly,
            exports: AtomicUsize::new(0),
            keep,
        },
    )?;
    let mv = PyMemoryView::from(bytes.as_any())?;
    Ok(((bytes.unbind(), mv.clone().unbind()), mv))
}

/// Releases the memoryview a with-block handed out; returns whether nothing else still views
/// the memory.
pub(crate) fn release_view(py: Python<'_>, (bytes, mv): &Exported) -> PyResult<bool> {
    match mv.bind(py).call_method0("release") {
        Ok(_) => Ok(bytes.get().exports.load(Ordering::Acquire) == 0),
        Err(e) if e.is_instance_of::<PyBufferError>(py) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Ends a zero-copy with-block: releases the memoryview it handed out and clears `busy`.
/// Returns whether the block ended normally (the caller then completes it); `BufferError` if a
/// view of the memory is still exported (then nothing is completed: `outcome` says what).
pub(crate) fn end_block(
    py: Python<'_>,
    exported: &Exported,
    busy: &AtomicBool,
    exc_type: Option<&Bound<'_, PyAny>>,
    outcome: &str,
) -> PyResult<bool> {
    let released = release_view(py, exported)?;
    busy.store(false, Ordering::Release);
    if !released {
        return Err(PyBufferError::new_err(format!(
            "a view of the memory is still exported (e.g. a numpy array): the {outcome}; \
             drop every view before leaving the with-block"
        )));
    }
    Ok(exc_type.is_none_or(PyAnyMethods::is_none))
}

/// Copies at least this large run with the GIL released, so other threads keep running. A GIL
/// round trip costs about what copying a few KiB does, and far more when another thread is
/// waiting for the GIL (it then runs first), so smaller copies (a 64 KiB random write takes
/// microseconds) keep it, as `io.BytesIO` does.
pub(crate) const RELEASE_GIL_AT: usize = 256 * 1024;

/// Borrows the bytes of a bytes-like object (`bytes`, `bytearray`, `memoryview`, ...) and
/// calls `f` with them, releasing the GIL around `f` when they are large.
pub(crate) fn with_bytes<R: Send>(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    f: impl FnOnce(&[u8]) -> R + Send,
) -> PyResult<R> {
    let data = match Data::from(data) {
        Ok(d) => d,
        Err(e) if e.is_instance_of::<PyBufferError>(py) => {
            // A strided view (`memoryview(b)[::2]`): gather it into one run first, as
            // `bytes()` would.
            let buf = PyBuffer::<u8>::get(data)
                .map_err(|_| PyBufferError::new_err("data must be a buffer of bytes"))?;
            let n = buf.item_count();
            let mut gathered = Vec::new();
            gathered.try_reserve_exact(n).map_err(|_| {
                PyMemoryError::new_err(format!("memory allocation of {n} bytes failed"))
            })?;
            gathered.resize(n, 0);
            buf.copy_to_slice(py, &mut gathered)?;
            return Ok(f(&gathered));
        }
        Err(e) => return Err(e),
    };
    // The exporter keeps these bytes (and an exported bytearray cannot be resized) while
    // `data` lives. Another thread may still store into them; like `os.write`, we then copy
    // whatever bytes they hold.
    let b = data.as_slice();
    Ok(if b.len() >= RELEASE_GIL_AT {
        py.detach(|| f(b))
    } else {
        f(b)
    })
}

/// A new `bytes` of `n` bytes whose storage `fill` writes directly (no zero-fill first, no
/// intermediate buffer). `fill` returns how many bytes it wrote; any rest is zeroed so that
/// the object never exposes uninitialised memory.
pub(crate) fn bytes_filled(
    py: Python<'_>,
    n: usize,
    fill: impl FnOnce(&mut [MaybeUninit<u8>]) -> usize,
) -> PyResult<Bound<'_, PyBytes>> {
    let len = ffi::Py_ssize_t::try_from(n)
        .map_err(|_| PyValueError::new_err(format!("{n} bytes do not fit in a bytes object")))?;
    // SAFETY: PyBytes_FromStringAndSize(NULL, len) allocates a bytes object with `len` bytes of
    // uninitialised storage (or returns NULL with an exception set, turned into Err).
    let bytes = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), len))?
            .cast_into_unchecked::<PyBytes>()
    };
    // SAFETY: the object is fresh and not shared yet; its storage is exactly n bytes, viewed as
    // MaybeUninit<u8> (which has no validity requirement) until `fill` and the loop below have
    // written every byte.
    let buf = unsafe {
        std::slice::from_raw_parts_mut(
            ffi::PyBytes_AsString(bytes.as_ptr()).cast::<MaybeUninit<u8>>(),
            n,
        )
    };
    let done = fill(buf).min(n);
    for b in &mut buf[done..] {
        b.write(0);
    }
    Ok(bytes)
}
