//! Python objects as channel messages, for `Queue.put_object`/`get_object` and
//! `Ring.put_object`/`get_object`: pickle protocol 5 with out-of-band buffers, framed as one
//! `memspace::mpmc::parts` message (the pickle, then each buffer at a 64-byte aligned offset),
//! so that numpy arrays (and `pickle.PickleBuffer`s) are copied straight into the message, never pickled.
//!
//! Reading one back copies the message once into a new 64-byte aligned `bytearray` and
//! validates the copy (shared memory is untrusted); the buffers handed to the unpickler are
//! slices of that copy, so arrays come back writable and aligned.

use memspace::mpmc::parts::{self, PartsLayout};
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyDict, PyList, PyMemoryView, PySlice};

use crate::args::Data;
use crate::error::IntoPyResult;

/// Copies at least this large release the GIL (below it, releasing costs more than it frees).
pub(crate) const DETACH_COPY: usize = 256 << 10;

fn pickle_fn<'py>(py: Python<'py>, name: &'static str) -> PyResult<Bound<'py, PyAny>> {
    static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let cell = if name == "dumps" { &DUMPS } else { &LOADS };
    cell.import(py, "pickle", name).cloned()
}

/// An object pickled for sending: the pickle and its out-of-band buffers (pinned), and where
/// each goes in the message.
pub(crate) struct Pickled<'py> {
    datas: Vec<Data<'py>>,
    layout: PartsLayout,
}

impl<'py> Pickled<'py> {
    /// Pickles `obj` with protocol 5, collecting its out-of-band buffers. A pickling error is
    /// raised here, before anything is sent.
    pub(crate) fn new(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let buffers = PyList::empty(py);
        let kwargs = PyDict::new(py);
        kwargs.set_item("protocol", 5)?;
        kwargs.set_item("buffer_callback", buffers.getattr("append")?)?;
        let pickled = pickle_fn(py, "dumps")?.call((obj,), Some(&kwargs))?;
        let mut datas = vec![Data::from(&pickled)?];
        for b in buffers.iter() {
            // `raw()` is a contiguous 1-D view of the buffer's bytes (C or Fortran order).
            datas.push(Data::from(&b.call_method0("raw")?)?);
        }
        let lens: Vec<usize> = datas.iter().map(|d| d.as_slice().len()).collect();
        let layout = PartsLayout::new(&lens).py_err()?;
        Ok(Self { datas, layout })
    }

    /// Length of the whole message.
    pub(crate) fn total(&self) -> usize {
        self.layout.total()
    }

    /// `ValueError` unless the message fits a `channel` ("queue", "ring") whose largest
    /// message is `max` bytes; the message says how large a channel would take it.
    pub(crate) fn check_fits(&self, max: u64, channel: &str) -> PyResult<()> {
        let total = self.layout.total() as u64;
        if total <= max {
            return Ok(());
        }
        let parts = self.layout.parts();
        Err(PyValueError::new_err(format!(
            "the object needs a message of {total} bytes (pickle {} bytes, {} out-of-band \
             buffers), more than the {channel}'s max_message_size of {max} bytes (a {channel} \
             of capacity C takes messages up to C / 2 - 8 bytes: create one with \
             capacity >= {}, or max_message_size >= {total})",
            parts[0].len(),
            parts.len() - 1,
            (total + 8).saturating_mul(2).next_power_of_two(),
        )))
    }

    /// The frame and the parts' layout, for a channel that writes them itself.
    pub(crate) fn layout(&self) -> &PartsLayout {
        &self.layout
    }

    /// The parts' bytes, in the layout's order.
    pub(crate) fn slices(&self) -> Vec<&[u8]> {
        self.datas.iter().map(Data::as_slice).collect()
    }
}

/// Writes a whole parts message through `write(offset, bytes)`: the frame of `layout`, then
/// each of `parts` (one per entry of the layout, of its length) where the layout puts it.
pub(crate) fn write_parts(
    layout: &PartsLayout,
    parts: &[&[u8]],
    mut write: impl FnMut(usize, &[u8]),
) {
    layout.each_frame_piece(&mut write);
    for (range, data) in layout.parts().iter().zip(parts) {
        write(range.start, data);
    }
}

/// A new `bytearray` holding a copy of `len` bytes at `src`, placed at a 64-byte aligned
/// address inside it (the GIL is released for a large copy). Returns it and where the copy
/// starts in it.
///
/// # Safety
/// `src` must be valid for reads of `len` bytes for the whole call, and not written by
/// anyone (a taken or peeked message, which its producer does not touch until released).
pub(crate) unsafe fn aligned_copy(
    py: Python<'_>,
    src: *const u8,
    len: usize,
) -> PyResult<(Bound<'_, PyByteArray>, usize)> {
    let room = len + parts::ALIGN - 1;
    // SAFETY: a NULL source makes CPython allocate `room` uninitialised bytes; the copy is
    // written into them below before anyone else can see the object, and the few bytes
    // around it (alignment) are zeroed.
    let ba = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyByteArray_FromStringAndSize(std::ptr::null(), room as ffi::Py_ssize_t),
        )?
        .cast_into_unchecked::<PyByteArray>()
    };
    let base = ba.data() as usize;
    let pad = base.next_multiple_of(parts::ALIGN) - base;
    let src = src as usize;
    // SAFETY: `src` is valid for `len` bytes (the caller's contract); `base..base + room` is
    // the new bytearray, which only this function can reach, and `pad + len <= room`.
    let copy = move || unsafe {
        std::ptr::write_bytes(base as *mut u8, 0, pad);
        std::ptr::copy_nonoverlapping(src as *const u8, (base + pad) as *mut u8, len);
        std::ptr::write_bytes((base + pad + len) as *mut u8, 0, room - pad - len);
    };
    if len >= DETACH_COPY {
        py.detach(copy);
    } else {
        copy();
    }
    Ok((ba, pad))
}

/// The part ranges of the message copied into `ba` at `pad..pad + len`, validated;
/// `Err(why)` if it is not a parts message with a pickle part.
pub(crate) fn decode_copy(
    ba: &Bound<'_, PyByteArray>,
    pad: usize,
    len: usize,
) -> Result<Vec<std::ops::Range<usize>>, String> {
    // SAFETY: the bytearray is ours alone (just made), alive and not resized while we read
    // it under the GIL.
    let msg = unsafe { &ba.as_bytes()[pad..pad + len] };
    let ranges = parts::decode(msg).map_err(|e| e.to_string())?;
    if ranges.is_empty() {
        return Err("it has no pickle part".into());
    }
    Ok(ranges)
}

/// Unpickles the message copied into `ba` at `pad`, whose parts are `ranges` (from
/// [`decode_copy`]): the first is the pickle, the others its out-of-band buffers, handed to
/// the unpickler as writable slices of the copy.
pub(crate) fn unpickle(
    py: Python<'_>,
    ba: &Bound<'_, PyByteArray>,
    pad: usize,
    ranges: &[std::ops::Range<usize>],
) -> PyResult<Py<PyAny>> {
    let Some((first, rest)) = ranges.split_first() else {
        return Err(PyValueError::new_err("a message without a pickle part"));
    };
    let mv = PyMemoryView::from(ba.as_any())?;
    let slice = |r: &std::ops::Range<usize>| -> PyResult<Bound<'_, PyAny>> {
        let (a, b) = (pad + r.start, pad + r.end);
        mv.get_item(PySlice::new(py, a as isize, b as isize, 1))
    };
    let buffers = PyList::empty(py);
    for r in rest {
        buffers.append(slice(r)?)?;
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("buffers", buffers)?;
    Ok(pickle_fn(py, "loads")?
        .call((slice(first)?,), Some(&kwargs))?
        .unbind())
}
