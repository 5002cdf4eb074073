//! `memspace.SharedMemory`: argument conversion and buffer export over `memspace::Segment`.
//!
//! Lifetime rule: the object holds an `Arc<Segment>`; every exported buffer (memoryview, numpy
//! array) holds its own clone of that `Arc` in `Py_buffer.internal`. `close()` drops only the
//! object's clone, so views taken before `close()` stay valid and the memory is unmapped when
//! the last of them is released. No path can leave a view pointing at unmapped memory.

use std::ffi::{c_int, c_void};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use memspace::{Location, Segment, SegmentError, SegmentOptions, Trust};
use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use pyo3::{ffi, IntoPyObjectExt};

use crate::args::{
    buffer_of, i64_value, location, location_repr, mode_arg, name_of, non_negative, path_of,
    trust_arg, trust_to_py, u64_value,
};
use crate::error::IntoPyResult;
use crate::handle::closing_handle;

/// Copies at least this large run with the GIL released, so other threads keep running.
const RELEASE_GIL_AT: usize = 256 * 1024;

/// A named (POSIX) or file-backed shared-memory segment.
#[pyclass(module = "memspace", name = "SharedMemory", frozen)]
pub struct PySharedMemory {
    inner: Mutex<Option<Arc<Segment>>>,
    location: Location,
    size: usize,
    auto_unlink: bool,
    // What re-opens it in another process (pickling), kept past `close()`.
    reopen_trust: Trust,
}

impl PySharedMemory {
    fn new(seg: Segment, auto_unlink: bool) -> Self {
        Self {
            location: seg.location().clone(),
            reopen_trust: seg.reopen_trust().clone(),
            size: seg.len(),
            inner: Mutex::new(Some(Arc::new(seg))),
            auto_unlink,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<Segment>>> {
        // A panic while holding this lock cannot leave the Option half-updated.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The segment, or `ValueError` after `close()`.
    pub(crate) fn segment(&self) -> PyResult<Arc<Segment>> {
        self.lock()
            .clone()
            .ok_or_else(|| PyValueError::new_err("operation on a closed SharedMemory"))
    }

    fn close_inner(&self) -> PyResult<()> {
        let taken = self.lock().take();
        if taken.is_some() && self.auto_unlink {
            match Segment::unlink(&self.location) {
                Ok(()) | Err(memspace::Error::Segment(SegmentError::NotFound { .. })) => {}
                Err(e) => return Err(crate::error::to_py(e)),
            }
        }
        Ok(())
    }
}

#[pymethods]
impl PySharedMemory {
    /// Creates a new segment (exclusively) of `size` bytes.
    #[staticmethod]
    #[pyo3(signature = (name=None, size=None, *, path=None, mode=0o600, auto_unlink=false))]
    fn create(
        py: Python<'_>,
        name: Option<String>,
        size: Option<Bound<'_, PyAny>>,
        path: Option<PathBuf>,
        mode: i64,
        auto_unlink: bool,
    ) -> PyResult<Self> {
        let loc = location(name, path)?;
        let Some(size) = size else {
            return Err(PyTypeError::new_err("create() needs a size in bytes"));
        };
        if size.is_instance_of::<pyo3::types::PyBool>()
            || !size.is_instance_of::<pyo3::types::PyInt>()
        {
            return Err(PyTypeError::new_err(format!(
                "size must be an int, not {}",
                size.get_type().name()?
            )));
        }
        let size: i128 = size
            .extract()
            .map_err(|_| PyValueError::new_err("size is too large"))?;
        if size <= 0 {
            return Err(PyValueError::new_err(format!(
                "size must be > 0, not {size}"
            )));
        }
        let size = u64::try_from(size).map_err(|_| PyValueError::new_err("size is too large"))?;
        let mode = mode_arg(mode)?;
        let seg = py
            .detach(|| SegmentOptions::at(loc).size(size).mode(mode).create())
            .py_err()?;
        Ok(Self::new(seg, auto_unlink))
    }

    /// Opens an existing segment; its size is taken from the segment. `trust` says whose
    /// segment to accept (see `args::trust_arg`).
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None, size=None, trust=None))]
    fn open(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        size: Option<i64>,
        trust: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let loc = location(name, path)?;
        let mut opts = SegmentOptions::at(loc).trust(trust_arg(trust.as_ref())?);
        if let Some(size) = size {
            opts = opts.size(non_negative(size, "size")?);
        }
        let seg = py.detach(|| opts.open()).py_err()?;
        Ok(Self::new(seg, false))
    }

    /// Removes a segment by name or path. Processes that have it open keep their mapping.
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None))]
    fn remove(name: Option<String>, path: Option<PathBuf>) -> PyResult<()> {
        Segment::unlink(&location(name, path)?).py_err()
    }

    /// The POSIX name, or None for a file-backed segment.
    #[getter]
    fn name(&self) -> Option<&str> {
        name_of(&self.location)
    }

    /// The file path, or None for a POSIX segment.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        path_of(&self.location)
    }

    /// Size in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.lock().is_none()
    }

    /// True if closing (or collecting) this object removes the segment.
    #[getter]
    fn auto_unlink(&self) -> bool {
        self.auto_unlink
    }

    /// A writable memoryview over the whole segment.
    #[getter]
    fn buf<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, pyo3::types::PyMemoryView>> {
        pyo3::types::PyMemoryView::from(slf.as_any())
    }

    fn __len__(&self) -> usize {
        self.size
    }

    /// Copies `n` bytes from `offset` (default: to the end) into a new `bytes`.
    #[pyo3(signature = (offset=0, n=None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        offset: i64,
        n: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let seg = self.segment()?;
        let offset = non_negative(offset, "offset")?;
        let n = match n {
            Some(n) => non_negative(n, "n")?,
            None => (self.size as u64).saturating_sub(offset),
        };
        let start = seg.check_range(offset, n).py_err()?;
        let n = n as usize;
        // SAFETY: PyBytes_FromStringAndSize(NULL, n) allocates an uninitialised bytes object of
        // n bytes (or returns NULL with an exception set, handled by assume_owned_or_err).
        let bytes = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyBytes_FromStringAndSize(std::ptr::null(), n as ffi::Py_ssize_t),
            )?
            .cast_into_unchecked::<PyBytes>()
        };
        // SAFETY: `bytes` is a fresh, unshared bytes object of exactly n bytes.
        let dst = unsafe { ffi::PyBytes_AsString(bytes.as_ptr()) }.cast::<u8>() as usize;
        let src = seg.as_ptr() as usize + start;
        let copy = move || {
            // SAFETY: src..src+n is inside the live mapping (range checked, and `seg` keeps it
            // mapped); dst is the new object's storage of n bytes; they cannot overlap.
            unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, n) };
        };
        if n >= RELEASE_GIL_AT {
            py.detach(copy);
        } else {
            copy();
        }
        Ok(bytes)
    }

    /// Copies a bytes-like object into the segment at `offset`; returns the byte count.
    fn write(&self, py: Python<'_>, offset: i64, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let seg = self.segment()?;
        let offset = non_negative(offset, "offset")?;
        if let Ok(b) = data.cast::<PyBytes>() {
            let b = b.as_bytes();
            if b.len() < RELEASE_GIL_AT {
                seg.write_at(offset, b).py_err()?;
                return Ok(b.len());
            }
        }
        let buf = buffer_of(data)?;
        if !buf.is_c_contiguous() {
            return Err(PyBufferError::new_err("data must be a C-contiguous buffer"));
        }
        let n = buf.len_bytes();
        let start = seg.check_range(offset, n as u64).py_err()?;
        let src = buf.buf_ptr() as usize;
        let dst = seg.as_ptr() as usize + start;
        let copy = move || {
            // SAFETY: dst..dst+n is inside the live mapping (range checked, `seg` keeps it
            // mapped); src is the exporter's buffer of n bytes, held by `buf`. `copy` (memmove)
            // because the source may itself be a view of this very segment.
            unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, n) };
        };
        if n >= RELEASE_GIL_AT {
            py.detach(copy);
        } else {
            copy();
        }
        drop(buf);
        Ok(n)
    }

    /// Reads a native-endian signed 64-bit integer (atomic when `offset` is 8-aligned).
    fn read_int(&self, offset: i64) -> PyResult<i64> {
        self.segment()?
            .read_i64(non_negative(offset, "offset")?)
            .py_err()
    }

    /// Writes a native-endian signed 64-bit integer; `OverflowError` if it does not fit.
    fn write_int(&self, offset: i64, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = i64_value(value, "; write_uint() writes up to 2**64 - 1")?;
        self.segment()?
            .write_i64(non_negative(offset, "offset")?, value)
            .py_err()
    }

    /// Reads a native-endian unsigned 64-bit integer.
    fn read_uint(&self, offset: i64) -> PyResult<u64> {
        self.segment()?
            .read_u64(non_negative(offset, "offset")?)
            .py_err()
    }

    /// Writes a native-endian unsigned 64-bit integer; `OverflowError` if it does not fit.
    fn write_uint(&self, offset: i64, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = u64_value(value, "; write_int() writes negative values")?;
        self.segment()?
            .write_u64(non_negative(offset, "offset")?, value)
            .py_err()
    }

    /// Reads a native-endian IEEE 754 double.
    fn read_float(&self, offset: i64) -> PyResult<f64> {
        self.segment()?
            .read_f64(non_negative(offset, "offset")?)
            .py_err()
    }

    /// Writes a native-endian IEEE 754 double.
    fn write_float(&self, offset: i64, value: f64) -> PyResult<()> {
        self.segment()?
            .write_f64(non_negative(offset, "offset")?, value)
            .py_err()
    }

    /// A zero-copy numpy array over the segment (numpy is imported on first use).
    #[pyo3(signature = (dtype, shape, offset=0))]
    fn ndarray<'py>(
        slf: &Bound<'py, Self>,
        dtype: &Bound<'py, PyAny>,
        shape: &Bound<'py, PyAny>,
        offset: i64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        this.segment()?;
        let offset = non_negative(offset, "offset")?;
        let np = py.import("numpy").map_err(|e| {
            let err = pyo3::exceptions::PyImportError::new_err(
                "SharedMemory.ndarray() needs numpy (pip install numpy)",
            );
            err.set_cause(py, Some(e));
            err
        })?;
        let dtype = np.getattr("dtype")?.call1((dtype,))?;
        let shape: Vec<i64> = if let Ok(n) = shape.extract::<i64>() {
            vec![n]
        } else {
            shape
                .extract()
                .map_err(|_| PyTypeError::new_err("shape must be an int or a sequence of ints"))?
        };
        let mut count: u64 = 1;
        for &d in &shape {
            let d = non_negative(d, "every dimension of shape")?;
            count = count
                .checked_mul(d)
                .ok_or_else(|| PyValueError::new_err("shape is too large"))?;
        }
        let itemsize: u64 = dtype.getattr("itemsize")?.extract()?;
        let nbytes = count
            .checked_mul(itemsize)
            .ok_or_else(|| PyValueError::new_err("shape is too large"))?;
        let end = offset.checked_add(nbytes);
        if end.is_none_or(|e| e > this.size as u64) {
            return Err(PyValueError::new_err(format!(
                "an array of {nbytes} bytes at offset {offset} does not fit in the segment of {} bytes",
                this.size
            )));
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item("dtype", &dtype)?;
        kwargs.set_item("count", count)?;
        kwargs.set_item("offset", offset)?;
        let flat = np.getattr("frombuffer")?.call((slf,), Some(&kwargs))?;
        flat.call_method1("reshape", (PyTuple::new(py, shape)?,))
    }

    /// Detaches this object from the segment. Views already taken stay valid until released;
    /// the segment itself is removed only with `auto_unlink=True`, `unlink()` or `remove()`.
    fn close(&self) -> PyResult<()> {
        self.close_inner()
    }

    /// Removes the segment (by its name or path). The mapping stays usable until `close()`.
    fn unlink(&self) -> PyResult<()> {
        Segment::unlink(&self.location).py_err()
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!(
            "SharedMemory({}, size={}{state})",
            location_repr(&self.location),
            self.size
        )
    }

    /// Pickling (e.g. passing to a `multiprocessing` child) re-opens the segment by location.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>, Bound<'py, PyAny>)> {
        let py = slf.py();
        let this = slf.get();
        let reopen = py
            .import("memspace._memspace")?
            .getattr("_reopen_segment")?;
        let args = PyTuple::new(
            py,
            [
                this.name().into_py_any(py)?,
                this.path().into_py_any(py)?,
                trust_to_py(py, &this.reopen_trust)?,
            ],
        )?;
        Ok((reopen, args, py.None().into_bound(py)))
    }

    /// Buffer protocol: a writable, contiguous byte buffer over the whole segment.
    ///
    /// # Safety
    /// Called by `CPython` with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("View is null"));
        }
        let seg = slf.get().segment()?;
        let ptr = seg.as_ptr().cast::<c_void>();
        let len = seg.len() as ffi::Py_ssize_t;
        // SAFETY: `view` is non-null and provided by CPython; `ptr`/`len` describe the live
        // mapping, which the Arc stored in `internal` keeps alive until __releasebuffer__.
        // PyBuffer_FillInfo takes its own reference to `slf` in `view.obj`.
        unsafe {
            if ffi::PyBuffer_FillInfo(view, slf.as_ptr(), ptr, len, 0, flags) != 0 {
                return Err(PyErr::fetch(slf.py()));
            }
            (*view).internal = Arc::into_raw(seg).cast_mut().cast::<c_void>();
        }
        Ok(())
    }

    /// # Safety
    /// Called by `CPython` with a view previously filled by `__getbuffer__`.
    unsafe fn __releasebuffer__(&self, view: *mut ffi::Py_buffer) {
        // SAFETY: `internal` was set from Arc::into_raw in __getbuffer__ and is released
        // exactly once, here; taking it back drops that clone of the Arc.
        unsafe {
            let internal = (*view).internal;
            if !internal.is_null() {
                drop(Arc::from_raw(internal.cast_const().cast::<Segment>()));
                (*view).internal = std::ptr::null_mut();
            }
        }
    }
}

closing_handle!(PySharedMemory, |s, _py| s.close_inner());

impl Drop for PySharedMemory {
    fn drop(&mut self) {
        // Collection of an auto_unlink owner removes the segment; errors cannot be raised here.
        let _ = self.close_inner();
    }
}

/// Unpickling helper: re-opens a segment by name or path, with the trust that accepted it
/// in the process that pickled it.
#[pyfunction]
#[pyo3(signature = (name, path, trust=None))]
pub(crate) fn _reopen_segment(
    py: Python<'_>,
    name: Option<String>,
    path: Option<PathBuf>,
    trust: Option<Bound<'_, PyAny>>,
) -> PyResult<PySharedMemory> {
    PySharedMemory::open(py, name, path, None, trust)
}

/// `(name, size, kind, mtime_seconds_or_None, uid, mode)`
type SegmentRow = (String, u64, String, Option<f64>, u32, u32);

/// The POSIX segments visible to this process: tuples of
/// `(name, size, kind, mtime_seconds_or_None, uid, mode)`.
#[pyfunction]
pub(crate) fn _list_segments(py: Python<'_>) -> PyResult<Vec<SegmentRow>> {
    let list = py.detach(memspace::shm::list_named).py_err()?;
    Ok(list
        .into_iter()
        .map(|i| {
            let mtime = i
                .modified
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64());
            (i.name, i.size, i.kind, mtime, i.uid, i.mode)
        })
        .collect())
}
