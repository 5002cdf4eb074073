//! Memory exported to Python in place: the buffer exporter behind zero-copy views of ring,
//! queue and broadcast messages and reservations, and the one copy out of such memory into a new `bytes`.
//!
//! Lifetime rule: an exporter holds what keeps its bytes valid (a clone of the ring or queue
//! handle, which keeps the mapping; for a taken queue message, the message itself, so that its
//! space is never reused under a view). A memoryview made from it holds the exporter, so no
//! path leaves a view pointing at unmapped or reused memory.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use memspace::mpmc::{Message as QueueMessage, Queue};
use memspace::Ring;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMemoryView};

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
