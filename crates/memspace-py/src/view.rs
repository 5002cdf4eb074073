//! `memspace.View`: tagged typed values in shared memory behind an rwlock, and the native
//! half of `memspace.Record` (atomic field access).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memspace::view::{Prim, PrimValue, Tag, Value};
use memspace::{Location, Segment};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::args::{
    bad_type, location, location_repr, mode_arg, non_negative, timeout_arg, trust_arg,
};
use crate::error::IntoPyResult;
use crate::gil::blocking;
use crate::guard::{read_guard, write_guard, HasRwLock, PyLockGuard};
use crate::handle::{closing_handle, located_handle, OpenHandle};
use crate::value::{as_ref, tag_arg, to_owned_value, to_py, Owned};

/// A typed view of a shared-memory segment, with a cross-process rwlock in front of it.
#[pyclass(module = "memspace", name = "View", frozen)]
pub struct PyView {
    inner: OpenHandle<Arc<memspace::View>>,
    cursor: AtomicU64,
    location: Location,
    /// The trust that opens it again (pickling), kept for after `close()`.
    trust: memspace::Trust,
    size: u64,
}

const PRIMS: [Prim; 11] = [
    Prim::Bool,
    Prim::I8,
    Prim::U8,
    Prim::I16,
    Prim::U16,
    Prim::I32,
    Prim::U32,
    Prim::I64,
    Prim::U64,
    Prim::F32,
    Prim::F64,
];

fn offset_arg(offset: Option<i64>) -> PyResult<Option<u64>> {
    offset
        .map(|o| {
            u64::try_from(o)
                .map_err(|_| PyValueError::new_err(format!("offset must be >= 0, not {o}")))
        })
        .transpose()
}

/// Flattens nested lists/tuples of values into their owned encodable forms, in order.
fn flatten<'py>(item: &Bound<'py, PyAny>, out: &mut Vec<Owned<'py>>, depth: u32) -> PyResult<()> {
    if let Ok(list) = item.cast::<PyList>() {
        if depth >= 8 {
            return Err(PyValueError::new_err(
                "write_mixed: lists nested too deeply",
            ));
        }
        for x in list.iter() {
            flatten(&x, out, depth + 1)?;
        }
    } else if item.is_instance_of::<PyTuple>() {
        if depth >= 8 {
            return Err(PyValueError::new_err(
                "write_mixed: lists nested too deeply",
            ));
        }
        for x in item.try_iter()? {
            flatten(&x?, out, depth + 1)?;
        }
    } else {
        out.push(to_owned_value(item, None)?);
    }
    Ok(())
}

impl PyView {
    /// `class` names the handle in the closed error ("View", or "Record" for a record's).
    fn new(v: memspace::View, class: &'static str) -> Self {
        Self {
            location: v.location().clone(),
            trust: v.reopen_trust().clone(),
            size: v.size(),
            inner: OpenHandle::new(Arc::new(v), class),
            cursor: AtomicU64::new(0),
        }
    }

    fn write_many(
        &self,
        py: Python<'_>,
        owned: &[Owned<'_>],
        offset: Option<i64>,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let t = timeout_arg(timeout)?;
        let explicit = offset_arg(offset)?;
        let start = explicit.unwrap_or_else(|| self.cursor.load(Ordering::Relaxed));
        let mut refs = Vec::with_capacity(owned.len());
        for o in owned {
            refs.push(as_ref(o)?);
        }
        let v = self.inner.get()?;
        let end = blocking(py, t, |t, i| v.write_values(start, &refs, t, i))?;
        if explicit.is_none() {
            self.cursor.store(end, Ordering::Relaxed);
        }
        Ok(end)
    }

    fn read_many(
        &self,
        py: Python<'_>,
        tags: &[Tag],
        offset: Option<i64>,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Value>> {
        let t = timeout_arg(timeout)?;
        let explicit = offset_arg(offset)?;
        let start = explicit.unwrap_or_else(|| self.cursor.load(Ordering::Relaxed));
        let v = self.inner.get()?;
        let (vals, end) = blocking(py, t, |t, i| v.read_values(start, tags, t, i))?;
        if explicit.is_none() {
            self.cursor.store(end, Ordering::Relaxed);
        }
        Ok(vals)
    }
}

#[pymethods]
impl PyView {
    /// Creates a view segment with a data area of `size` bytes.
    #[staticmethod]
    #[pyo3(signature = (name=None, size=None, *, path=None, mode=0o600))]
    fn create(
        py: Python<'_>,
        name: Option<String>,
        size: Option<i64>,
        path: Option<PathBuf>,
        mode: i64,
    ) -> PyResult<Self> {
        let loc = location(name, path)?;
        let Some(size) = size else {
            return Err(PyTypeError::new_err("create() needs a size in bytes"));
        };
        let size = u64::try_from(size)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| PyValueError::new_err(format!("size must be > 0, not {size}")))?;
        let mode = mode_arg(mode)?;
        let v = py
            .detach(|| memspace::View::create(loc, size, mode))
            .py_err()?;
        Ok(Self::new(v, "View"))
    }

    /// Opens an existing view segment (`trust`: whose segment to accept).
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None, trust=None))]
    fn open(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        trust: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let loc = location(name, path)?.trusting(trust_arg(trust.as_ref())?);
        let v = py.detach(|| memspace::View::open(loc)).py_err()?;
        Ok(Self::new(v, "View"))
    }

    /// Record support: creates a record segment of `size` bytes with a layout fingerprint.
    #[staticmethod]
    #[pyo3(signature = (name, path, mode, size, fingerprint))]
    fn _create_record(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        mode: i64,
        size: u64,
        fingerprint: u64,
    ) -> PyResult<Self> {
        let loc = location(name, path)?;
        let mode = mode_arg(mode)?;
        let v = py
            .detach(|| memspace::View::create_record(loc, size, mode, fingerprint))
            .py_err()?;
        Ok(Self::new(v, "Record"))
    }

    /// Record support: opens a record segment, checking its layout fingerprint.
    #[staticmethod]
    #[pyo3(signature = (name, path, fingerprint, trust=None))]
    fn _open_record(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        fingerprint: u64,
        trust: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let loc = location(name, path)?.trusting(trust_arg(trust.as_ref())?);
        let v = py
            .detach(|| memspace::View::open_record(loc, fingerprint))
            .py_err()?;
        Ok(Self::new(v, "Record"))
    }

    /// Record support: atomically loads field type `code` at `offset`.
    fn _field_get(&self, py: Python<'_>, code: usize, offset: u64) -> PyResult<Py<PyAny>> {
        let prim = *PRIMS
            .get(code)
            .ok_or_else(|| PyValueError::new_err("bad field type code"))?;
        match self.inner.get()?.load_field(prim, offset).py_err()? {
            PrimValue::Bool(b) => b.into_py_any(py),
            PrimValue::Int(i) => i.into_py_any(py),
            PrimValue::UInt(u) => u.into_py_any(py),
            PrimValue::Float(f) => f.into_py_any(py),
        }
    }

    /// Record support: atomically stores `value` into field type `code` at `offset`.
    fn _field_set(&self, code: usize, offset: u64, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let prim = *PRIMS
            .get(code)
            .ok_or_else(|| PyValueError::new_err("bad field type code"))?;
        let v = match prim {
            Prim::Bool => {
                if !value.is_instance_of::<PyBool>() {
                    return Err(bad_type("a bool field takes a bool", value));
                }
                PrimValue::Bool(value.extract()?)
            }
            Prim::F32 | Prim::F64 => {
                if !(value.is_instance_of::<PyFloat>() || value.is_instance_of::<PyInt>())
                    || value.is_instance_of::<PyBool>()
                {
                    return Err(bad_type("a float field takes a float or int", value));
                }
                let f: f64 = value.extract()?;
                if prim == Prim::F32 && f.is_finite() && f.abs() > f64::from(f32::MAX) {
                    return Err(PyOverflowError::new_err(format!("{f} does not fit in f32")));
                }
                PrimValue::Float(f)
            }
            _ => {
                if !value.is_instance_of::<PyInt>() || value.is_instance_of::<PyBool>() {
                    return Err(bad_type("an integer field takes an int", value));
                }
                let i: i128 = value
                    .extract()
                    .map_err(|_| PyOverflowError::new_err("int too large for the field"))?;
                if let Ok(i) = i64::try_from(i) {
                    PrimValue::Int(i)
                } else if let Ok(u) = u64::try_from(i) {
                    PrimValue::UInt(u)
                } else {
                    return Err(PyOverflowError::new_err(format!(
                        "{i} does not fit the field"
                    )));
                }
            }
        };
        self.inner.get()?.store_field(prim, offset, v).py_err()
    }

    /// Record support: where the data area starts in the segment (the bytes a C program
    /// mapping the same segment finds the record at).
    #[getter]
    fn _data_offset(&self) -> PyResult<u64> {
        Ok(self.inner.get()?.data_offset())
    }

    /// Size of the data area in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.size
    }

    /// `len(view)`: the size of the data area in bytes.
    fn __len__(&self) -> usize {
        self.size as usize
    }

    /// Writes one value (at `offset`, or at the cursor, which then advances) under the write
    /// lock; returns the offset after it. `tag` picks a non-default encoding (e.g. "i32").
    #[pyo3(signature = (value, offset=None, *, tag=None, timeout=None))]
    fn write(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        offset: Option<i64>,
        tag: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let tag = tag.map(tag_arg).transpose()?;
        let owned = to_owned_value(value, tag)?;
        let r = as_ref(&owned)?;
        let t = timeout_arg(timeout)?;
        let explicit = offset_arg(offset)?;
        let start = explicit.unwrap_or_else(|| self.cursor.load(Ordering::Relaxed));
        let v = self.inner.get()?;
        let end = blocking(py, t, |t, i| {
            v.write_values(start, std::slice::from_ref(&r), t, i)
        })?;
        if explicit.is_none() {
            self.cursor.store(end, Ordering::Relaxed);
        }
        Ok(end)
    }

    /// Reads one value of type `tag` (at `offset`, or at the cursor, which then advances)
    /// under the read lock. A value stored with another tag raises `TypeError`.
    #[pyo3(signature = (tag, offset=None, *, timeout=None))]
    fn read(
        &self,
        py: Python<'_>,
        tag: &Bound<'_, PyAny>,
        offset: Option<i64>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let tag = tag_arg(tag)?;
        let t = timeout_arg(timeout)?;
        let explicit = offset_arg(offset)?;
        let start = explicit.unwrap_or_else(|| self.cursor.load(Ordering::Relaxed));
        let v = self.inner.get()?;
        let (value, end) = blocking(py, t, |t, i| v.read_value(start, tag, t, i))?;
        if explicit.is_none() {
            self.cursor.store(end, Ordering::Relaxed);
        }
        to_py(py, value)
    }

    /// Writes a list of values (nested lists are flattened in order) under one write lock.
    #[pyo3(signature = (items, offset=None, *, timeout=None))]
    fn write_mixed(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        offset: Option<i64>,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        if !(items.is_instance_of::<PyList>() || items.is_instance_of::<PyTuple>()) {
            return Err(bad_type("write_mixed takes a list", items));
        }
        let mut owned = Vec::with_capacity(items.len().unwrap_or(0) * 4);
        flatten(items, &mut owned, 0)?;
        self.write_many(py, &owned, offset, timeout)
    }

    /// Reads values by a schema of `(tag, count)` pairs under one read lock; a count of 1
    /// gives a scalar, any other count a list.
    #[pyo3(signature = (schema, offset=None, *, timeout=None))]
    fn read_mixed(
        &self,
        py: Python<'_>,
        schema: &Bound<'_, PyAny>,
        offset: Option<i64>,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let n = schema.len().unwrap_or(0);
        let mut tags = Vec::with_capacity(n * 2);
        let mut counts = Vec::with_capacity(n);
        for entry in schema.try_iter()? {
            let entry = entry?;
            let (tag, count): (Bound<'_, PyAny>, i64) = entry
                .extract()
                .map_err(|_| bad_type("each schema entry must be a (tag, count) pair", &entry))?;
            let tag = tag_arg(&tag)?;
            let count = usize::try_from(count)
                .map_err(|_| PyValueError::new_err(format!("count must be >= 0, not {count}")))?;
            if count > 1 << 24 {
                return Err(PyValueError::new_err(format!("count {count} is too large")));
            }
            tags.extend(std::iter::repeat_n(tag, count));
            counts.push(count);
        }
        let vals = self.read_many(py, &tags, offset, timeout)?;
        let mut it = vals.into_iter();
        let mut out = Vec::with_capacity(counts.len());
        for c in counts {
            if c == 1 {
                out.push(to_py(
                    py,
                    it.next()
                        .ok_or_else(|| PyValueError::new_err("short read"))?,
                )?);
            } else {
                // A plain loop: collecting into PyResult<Vec<_>> costs several times more.
                let list = PyList::empty(py);
                for v in it.by_ref().take(c) {
                    list.append(to_py(py, v)?)?;
                }
                out.push(list.into_any().unbind());
            }
        }
        Ok(out)
    }

    /// Copies `n` raw bytes at `offset` under the read lock (a consistent snapshot: no write
    /// comes between its bytes). membridge's `read_range(offset, length)`.
    #[pyo3(signature = (offset, n, *, timeout=None))]
    fn read_bytes<'py>(
        &self,
        py: Python<'py>,
        offset: i64,
        n: i64,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let t = timeout_arg(timeout)?;
        let offset = non_negative(offset, "offset")?;
        let n = non_negative(n, "n")?;
        let v = self.inner.get()?;
        let b = blocking(py, t, |t, i| v.read_bytes(offset, n, t, i))?;
        Ok(PyBytes::new(py, &b))
    }

    /// Copies the whole data area (`size` bytes) under the read lock, as one snapshot.
    #[pyo3(signature = (*, timeout=None))]
    fn read_all<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let t = timeout_arg(timeout)?;
        let v = self.inner.get()?;
        let n = v.size();
        let b = blocking(py, t, |t, i| v.read_bytes(0, n, t, i))?;
        Ok(PyBytes::new(py, &b))
    }

    /// Zeroes the whole data area under the write lock.
    #[pyo3(signature = (*, timeout=None))]
    fn zero(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let t = timeout_arg(timeout)?;
        let v = self.inner.get()?;
        blocking(py, t, |t, i| v.zero(t, i))
    }

    /// Moves the cursor.
    #[pyo3(signature = (pos=0))]
    fn seek(&self, pos: i64) -> PyResult<()> {
        let p = u64::try_from(pos)
            .ok()
            .filter(|p| *p <= self.size)
            .ok_or_else(|| {
                PyValueError::new_err(format!("position must be in 0..={}, not {pos}", self.size))
            })?;
        self.cursor.store(p, Ordering::Relaxed);
        Ok(())
    }

    /// The cursor position.
    fn tell(&self) -> u64 {
        self.cursor.load(Ordering::Relaxed)
    }

    /// Holds the view's read lock: reads by this thread inside it are seen together (no
    /// write can come between them).
    #[pyo3(signature = (timeout=None))]
    fn read_lock(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        let l: Arc<dyn HasRwLock> = self.inner.get()?;
        read_guard(py, &l, timeout)
    }

    /// Holds the view's write lock: writes and reads by this thread inside it form one update
    /// that other processes see all at once.
    #[pyo3(signature = (timeout=None))]
    fn write_lock(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLockGuard> {
        let l: Arc<dyn HasRwLock> = self.inner.get()?;
        write_guard(py, &l, timeout)
    }

    /// True if a writer holds or waits for the view's lock (membridge's `is_write_locked()`).
    #[getter]
    fn write_locked(&self) -> PyResult<bool> {
        Ok(self.inner.get()?.lock().is_write_locked())
    }

    /// Number of read holds of the view's lock now (optimistic reads take none).
    #[getter]
    fn reader_count(&self) -> PyResult<u64> {
        Ok(self.inner.get()?.lock().reader_count())
    }

    /// Detaches this handle: its attachment slot and mapping are released at once, or when
    /// the last lock guard taken from it is released. The view and its data stay. Closing
    /// twice does nothing.
    fn close(&self) {
        drop(self.inner.close());
    }

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!(
            "View({}, size={}{state})",
            location_repr(&self.location),
            self.size
        )
    }
}

located_handle!(
    PyView,
    remove = Segment::unlink,
    |s| &s.location,
    trust = &s.trust
);
closing_handle!(PyView, |s, _py| {
    s.close();
    PyResult::Ok(())
});
