//! `memspace.SharedFileSystem`, its file handle and its zero-copy view: argument conversion,
//! GIL release and error mapping over `memspace::fs::SharedFileSystem`. The Python class
//! derives from `_SharedFileSystem` and shares `MemoryFileSystem`'s Python-level methods.

use std::ffi::{c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use memspace::fs::{
    FsError, OpenMode, SharedFileHandle, SharedFileSystem, SharedFsOptions, SharedView, StorageKind,
};
use memspace::Location;
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyResourceWarning, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyMemoryView, PyString, PyTuple};

use crate::args::{location, location_repr, lock_timeout_arg, name_of, path_of, trust_arg, Data};
use crate::error::{unsupported_operation_err, IntoPyResult};
use crate::export::{bytes_filled, with_bytes, RELEASE_GIL_AT};
use crate::gil::{detached, lock_unheld};

/// What `_scandir` returns: `MemoryFileSystem`'s shape, `(token, dirs, files)`.
type ScanStep = ((u64, u64), Vec<String>, Vec<String>);

fn closed_err() -> PyErr {
    PyValueError::new_err("the SharedFileSystem is closed")
}

/// The native half of `memspace.SharedFileSystem`.
#[pyclass(
    module = "memspace._memspace",
    name = "_SharedFileSystem",
    subclass,
    frozen
)]
pub(crate) struct PySharedFileSystem {
    fs: Mutex<Option<SharedFileSystem>>,
    loc: Location,
    /// The trust that opens it again (pickling), kept for after `close()`.
    trust: memspace::Trust,
}

impl PySharedFileSystem {
    fn get(&self) -> PyResult<SharedFileSystem> {
        self.fs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(closed_err)
    }
}

fn dict_of<'py>(
    py: Python<'py>,
    items: &[(&str, Bound<'py, PyAny>)],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in items {
        d.set_item(k, v)?;
    }
    Ok(d)
}

#[pymethods]
impl PySharedFileSystem {
    /// Attaches to (or with `create=True`, creates) the shared filesystem at a name or path.
    #[new]
    #[pyo3(signature = (
        name=None, *, path=None, create=false, max_quota=268_435_456, max_nodes=None,
        chunk_overhead_override=None, promotion_hard_limit=None, default_storage="auto",
        default_lock_timeout=Some(30.0), max_open=4096, slots=128, data_size=None, mode=0o600,
        trust=None,
    ), text_signature = "(name=None, *, path=None, create=False, max_quota=268435456, \
        max_nodes=None, chunk_overhead_override=None, promotion_hard_limit=None, \
        default_storage='auto', default_lock_timeout=30.0, max_open=4096, slots=128, \
        data_size=None, mode=384, trust=None)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        create: bool,
        max_quota: u64,
        max_nodes: Option<u64>,
        chunk_overhead_override: Option<u64>,
        promotion_hard_limit: Option<u64>,
        default_storage: &str,
        default_lock_timeout: Option<f64>,
        max_open: u32,
        slots: u32,
        data_size: Option<u64>,
        mode: u32,
        trust: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let loc = location(name, path)?;
        let trust = trust_arg(trust.as_ref())?;
        let fs = if create {
            let Some(storage) = StorageKind::parse(default_storage) else {
                return Err(PyValueError::new_err(format!(
                    "Invalid default_storage value: '{default_storage}'. \
                     Expected 'auto', 'sequential', or 'random_access'."
                )));
            };
            let mut opts = SharedFsOptions::new()
                .max_quota(max_quota)
                .storage(storage)
                .default_lock_timeout(lock_timeout_arg(default_lock_timeout)?)
                .max_open(max_open)
                .slots(slots)
                .data_size(data_size)
                .mode(mode);
            if let Some(n) = max_nodes {
                opts = opts.max_nodes(n);
            }
            if let Some(o) = chunk_overhead_override {
                opts = opts.chunk_overhead(o);
            }
            if let Some(l) = promotion_hard_limit {
                opts = opts.promotion_hard_limit(l);
            }
            let l = loc.clone();
            py.detach(|| SharedFileSystem::create(l, &opts)).py_err()?
        } else {
            let l = loc.clone();
            py.detach(|| SharedFileSystem::open(l.trusting(trust)))
                .py_err()?
        };
        Ok(Self {
            trust: fs.reopen_trust().clone(),
            fs: Mutex::new(Some(fs)),
            loc,
        })
    }

    /// Removes the segment at a name or path (attached processes keep using it).
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None))]
    fn _remove_segment(name: Option<String>, path: Option<PathBuf>) -> PyResult<()> {
        SharedFileSystem::remove(&location(name, path)?).py_err()
    }

    /// The POSIX name, or None for a file-backed filesystem.
    #[getter]
    fn name(&self) -> Option<String> {
        name_of(&self.loc).map(str::to_owned)
    }

    /// The file path, or None for a POSIX one.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        path_of(&self.loc)
    }

    /// Detaches this object (open handles and views keep the mapping until they close).
    fn close(&self) {
        self.fs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.fs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let this = slf.get();
        crate::handle::reduce(slf.py(), slf.get_type().as_any(), &this.loc, &this.trust)
    }

    /// The quota.
    #[getter]
    fn max_quota(&self) -> PyResult<u64> {
        Ok(self.get()?.max_quota())
    }

    /// The node limit (the root included).
    #[getter]
    fn max_nodes(&self) -> PyResult<u64> {
        Ok(self.get()?.max_nodes())
    }

    /// Opens a file in a binary mode (`rb`, `wb`, `ab`, `r+b`, `xb`).
    #[pyo3(signature = (path, mode="rb", preallocate=0, lock_timeout=None))]
    fn open(
        &self,
        py: Python<'_>,
        path: &str,
        mode: &str,
        preallocate: i64,
        lock_timeout: Option<f64>,
    ) -> PyResult<PySharedFileHandle> {
        let Some(m) = OpenMode::parse(mode) else {
            return Err(PyValueError::new_err(format!(
                "Invalid mode '{mode}'. MFS supports binary modes only: \
                 {{'rb', 'wb', 'ab', 'r+b', 'xb'}}"
            )));
        };
        let pre = u64::try_from(preallocate).unwrap_or(0);
        let wait = lock_timeout_arg(lock_timeout)?;
        let fs = self.get()?;
        let h = match fs.open_file(path, m, pre, Some(Duration::ZERO)) {
            Err(memspace::Error::Fs(FsError::LockTimeout { .. }))
                if wait != Some(Duration::ZERO) =>
            {
                detached(py, |interrupt| fs.open_with(path, m, pre, wait, interrupt))?
            }
            r => r.py_err()?,
        };
        Ok(PySharedFileHandle {
            inner: Mutex::new(h),
        })
    }

    /// Creates a directory and its missing parents.
    #[pyo3(signature = (path, exist_ok=false))]
    fn mkdir(&self, path: &str, exist_ok: bool) -> PyResult<()> {
        self.get()?.mkdir(path, exist_ok).py_err()
    }

    /// Deletes a file.
    fn _remove_file(&self, path: &str) -> PyResult<()> {
        self.get()?.remove_file(path).py_err()
    }

    /// Deletes a directory tree.
    fn rmtree(&self, path: &str) -> PyResult<()> {
        self.get()?.rmtree(path).py_err()
    }

    /// Renames a file or directory (the destination's parent must exist).
    fn rename(&self, src: &str, dst: &str) -> PyResult<()> {
        self.get()?.rename(src, dst).py_err()
    }

    /// Moves a file or directory, creating the destination's parents.
    #[pyo3(name = "move")]
    fn move_path(&self, src: &str, dst: &str) -> PyResult<()> {
        self.get()?.move_path(src, dst).py_err()
    }

    /// Copies a file.
    fn copy(&self, py: Python<'_>, src: &str, dst: &str) -> PyResult<()> {
        let fs = self.get()?;
        py.detach(|| fs.copy(src, dst)).py_err()
    }

    /// Copies a directory tree (all-or-nothing).
    fn copy_tree(&self, py: Python<'_>, src: &str, dst: &str) -> PyResult<()> {
        let fs = self.get()?;
        py.detach(|| fs.copy_tree(src, dst)).py_err()
    }

    /// Names in a directory, sorted.
    fn listdir(&self, path: &str) -> PyResult<Vec<String>> {
        self.get()?.listdir(path).py_err()
    }

    /// Whether a path exists.
    fn exists(&self, path: &str) -> PyResult<bool> {
        Ok(self.get()?.exists(path))
    }

    /// Whether a path is a directory.
    fn is_dir(&self, path: &str) -> PyResult<bool> {
        Ok(self.get()?.is_dir(path))
    }

    /// Whether a path is a file.
    fn is_file(&self, path: &str) -> PyResult<bool> {
        Ok(self.get()?.is_file(path))
    }

    /// Metadata of a path as a dict.
    fn stat<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyDict>> {
        let st = self.get()?.stat(path).py_err()?;
        let d = PyDict::new(py);
        d.set_item("size", st.size)?;
        d.set_item("created_at", st.created_at)?;
        d.set_item("modified_at", st.modified_at)?;
        d.set_item("generation", st.generation)?;
        d.set_item("is_dir", st.is_dir)?;
        Ok(d)
    }

    /// Usage of the filesystem as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.get()?.stats().py_err()?;
        let d = PyDict::new(py);
        d.set_item("used_bytes", st.used_bytes)?;
        d.set_item("quota_bytes", st.quota_bytes)?;
        d.set_item("free_bytes", st.free_bytes)?;
        d.set_item("file_count", st.file_count)?;
        d.set_item("dir_count", st.dir_count)?;
        d.set_item("chunk_count", st.chunk_count)?;
        d.set_item(
            "overhead_per_chunk_estimate",
            st.overhead_per_chunk_estimate,
        )?;
        Ok(d)
    }

    /// Bytes of quota still free (`stats()["free_bytes"]`).
    fn _free_bytes(&self) -> PyResult<u64> {
        Ok(self.get()?.stats().py_err()?.free_bytes)
    }

    /// Size of a file.
    fn get_size(&self, path: &str) -> PyResult<u64> {
        self.get()?.get_size(path).py_err()
    }

    /// Paths matching a glob pattern, sorted, each once.
    fn glob(&self, pattern: &str) -> PyResult<Vec<String>> {
        self.get()?.glob(pattern).py_err()
    }

    /// All files below `prefix` as `{path: bytes}` (each one committed version).
    #[pyo3(signature = (prefix="/", only_dirty=false))]
    fn export_tree<'py>(
        &self,
        py: Python<'py>,
        prefix: &str,
        only_dirty: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let fs = self.get()?;
        let d = PyDict::new(py);
        for p in fs.file_paths(prefix, only_dirty).py_err()? {
            match fs.view(&p) {
                Ok(v) => {
                    d.set_item(&p, copy_view(py, &v, None)?)?;
                }
                Err(memspace::Error::Fs(
                    FsError::NoSuchPath { .. } | FsError::IsADirectory { .. },
                )) => {}
                Err(e) => return Err(crate::error::to_py(e)),
            }
        }
        Ok(d)
    }

    /// Writes every `{path: bytes}` entry, all or nothing, as one commit.
    fn import_tree(&self, py: Python<'_>, tree: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = tree.call_method0("items")?;
        let mut paths: Vec<String> = Vec::new();
        let mut datas: Vec<Bound<'_, PyAny>> = Vec::new();
        for item in items.try_iter()? {
            let (p, d): (String, Bound<'_, PyAny>) = item?.extract()?;
            paths.push(p);
            datas.push(d);
        }
        let datas: Vec<Data<'_>> = datas.iter().map(Data::from).collect::<PyResult<_>>()?;
        let slices: Vec<&[u8]> = datas.iter().map(Data::as_slice).collect();
        let fs = self.get()?;
        py.detach(|| {
            let entries: Vec<(&str, &[u8])> = paths
                .iter()
                .map(String::as_str)
                .zip(slices.iter().copied())
                .collect();
            fs.import_tree(&entries)
        })
        .py_err()
    }

    /// Subdirectory and file names of a directory (for `walk`), in `MemoryFileSystem`'s
    /// shape: `(token, dirs, files)`. The token is unused here (a snapshot read looks the whole
    /// path up in microseconds), so `parent` and `name` are ignored: `walk` passes the path.
    #[pyo3(signature = (path, parent=None, name=""))]
    fn _scandir(&self, path: &str, parent: Option<(u64, u64)>, name: &str) -> PyResult<ScanStep> {
        let _ = (parent, name);
        let (d, f) = self.get()?.scandir(path).py_err()?;
        Ok(((0, 0), d, f))
    }

    /// Paths of the files below `prefix` (for `iter_export_tree`).
    #[pyo3(signature = (prefix="/", only_dirty=false))]
    fn _file_paths(&self, prefix: &str, only_dirty: bool) -> PyResult<Vec<String>> {
        self.get()?.file_paths(prefix, only_dirty).py_err()
    }

    /// A copy of a file's committed bytes; `ValueError` above `max_size`.
    #[pyo3(signature = (path, max_size=None))]
    fn _read_bytes<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        max_size: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let v = self.get()?.view(path).py_err()?;
        copy_view(py, &v, max_size)
    }

    /// A zero-copy, read-only view of a file's committed bytes (a buffer exporter; also a
    /// context manager that hands out a `memoryview`).
    fn _view(&self, path: &str) -> PyResult<PySharedView> {
        let v = self.get()?.view(path).py_err()?;
        Ok(PySharedView {
            ptr: v.as_ptr() as usize,
            len: v.len(),
            view: Mutex::new(Some(v)),
            exports: AtomicUsize::new(0),
            mv: Mutex::new(None),
        })
    }

    /// Checks every invariant; returns a dict (`ok`, `problems`, counts).
    #[pyo3(signature = (reap=false))]
    fn fsck<'py>(&self, py: Python<'py>, reap: bool) -> PyResult<Bound<'py, PyDict>> {
        let fs = self.get()?;
        let r = py.detach(|| fs.fsck(reap)).py_err()?;
        dict_of(
            py,
            &[
                ("ok", r.is_ok().into_pyobject(py)?.to_owned().into_any()),
                ("problems", PyList::new(py, &r.problems)?.into_any()),
                ("generation", r.generation.into_pyobject(py)?.into_any()),
                ("files", r.files.into_pyobject(py)?.into_any()),
                ("dirs", r.dirs.into_pyobject(py)?.into_any()),
                ("used_bytes", r.used_bytes.into_pyobject(py)?.into_any()),
                (
                    "charged_bytes",
                    r.charged_bytes.into_pyobject(py)?.into_any(),
                ),
                ("dead_entries", r.dead_entries.into_pyobject(py)?.into_any()),
                ("open_entries", r.open_entries.into_pyobject(py)?.into_any()),
            ],
        )
    }

    /// Removes what dead processes left (locks, private extents, pins); returns how many
    /// lock entries.
    fn reap(&self, py: Python<'_>) -> PyResult<u32> {
        let fs = self.get()?;
        py.detach(|| fs.reap()).py_err()
    }

    /// Usage and health as a dict (what `memspace inspect` shows).
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let i = self.get()?.info().py_err()?;
        let attached = PyList::empty(py);
        for (slot, pid) in &i.attached {
            attached.append((slot, pid))?;
        }
        dict_of(
            py,
            &[
                ("used_bytes", i.used_bytes.into_pyobject(py)?.into_any()),
                ("quota_bytes", i.quota_bytes.into_pyobject(py)?.into_any()),
                ("files", i.files.into_pyobject(py)?.into_any()),
                ("dirs", i.dirs.into_pyobject(py)?.into_any()),
                ("max_nodes", i.max_nodes.into_pyobject(py)?.into_any()),
                ("data_bytes", i.data_bytes.into_pyobject(py)?.into_any()),
                (
                    "free_data_bytes",
                    i.free_data_bytes.into_pyobject(py)?.into_any(),
                ),
                ("free_extents", i.free_extents.into_pyobject(py)?.into_any()),
                (
                    "largest_free_extent",
                    i.largest_free_extent.into_pyobject(py)?.into_any(),
                ),
                (
                    "old_version_bytes",
                    i.old_version_bytes.into_pyobject(py)?.into_any(),
                ),
                ("open_handles", i.open_handles.into_pyobject(py)?.into_any()),
                ("generation", i.generation.into_pyobject(py)?.into_any()),
                ("attached", attached.into_any()),
                (
                    "oldest_snapshot_age",
                    i.oldest_snapshot_age.into_pyobject(py)?.into_any(),
                ),
            ],
        )
    }

    fn __repr__(&self) -> String {
        format!("<memspace.SharedFileSystem {}>", location_repr(&self.loc))
    }
}

/// A new `bytes` with a copy of a view's bytes (the GIL released for a large copy).
fn copy_view<'py>(
    py: Python<'py>,
    v: &SharedView,
    max_size: Option<i64>,
) -> PyResult<Bound<'py, PyBytes>> {
    let n = v.len();
    if let Some(m) = max_size {
        if i128::try_from(n).unwrap_or(i128::MAX) > i128::from(m) {
            return Err(PyValueError::new_err(format!(
                "File size {n} exceeds max_size={m}."
            )));
        }
    }
    bytes_filled(py, n, |buf| {
        if buf.len() >= RELEASE_GIL_AT {
            py.detach(|| v.copy_into(buf))
        } else {
            v.copy_into(buf)
        }
    })
}

/// A read-only view of one committed version of a file, in place in the shared mapping: a
/// buffer exporter (`memoryview(view)`), and a context manager whose `with` block hands out
/// a `memoryview` and releases everything at its end.
#[pyclass(module = "memspace._memspace", name = "SharedFileView", frozen)]
pub(crate) struct PySharedView {
    ptr: usize,
    len: usize,
    view: Mutex<Option<SharedView>>,
    exports: AtomicUsize,
    mv: Mutex<Option<Py<PyMemoryView>>>,
}

#[pymethods]
impl PySharedView {
    /// # Safety
    /// Called by `CPython` with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        if this
            .view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            return Err(PyBufferError::new_err("the view was released"));
        }
        // SAFETY: `view` comes from CPython; ptr/len describe the pinned version's bytes in the
        // mapping, which the SharedView (dropped only when no export is left) keeps valid.
        unsafe {
            if ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                this.ptr as *mut c_void,
                this.len as ffi::Py_ssize_t,
                1,
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

    /// Bytes in the view.
    fn __len__(&self) -> usize {
        self.len
    }

    /// Unpins the version (its memory may be reused). `BufferError` if a memoryview of it is
    /// still exported.
    fn release(&self) -> PyResult<()> {
        if self.exports.load(Ordering::Acquire) != 0 {
            return Err(PyBufferError::new_err(
                "a view of the file's memory is still exported (e.g. a numpy array): \
                 release it first",
            ));
        }
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, PyMemoryView>> {
        let mv = PyMemoryView::from(slf.as_any())?;
        *slf.get().mv.lock().unwrap_or_else(PoisonError::into_inner) = Some(mv.clone().unbind());
        Ok(mv)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let mv = self
            .mv
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mv) = mv {
            mv.bind(py).call_method0("release")?;
        }
        self.release()?;
        Ok(false)
    }
}

/// An open file of a `SharedFileSystem` (a registered `io.RawIOBase`). It holds the file's
/// lock until closed; a writable handle's bytes become visible to other processes at
/// `flush()` or `close()`.
#[pyclass(module = "memspace._memspace", name = "SharedFileHandle")]
pub(crate) struct PySharedFileHandle {
    inner: Mutex<SharedFileHandle>,
}

impl Drop for PySharedFileHandle {
    fn drop(&mut self) {
        let h = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        if !h.is_closed() {
            let msg = format!(
                "MFS SharedFileHandle for '{}' was not closed properly. \
                 Always use 'with fs.open(...) as f:' to ensure cleanup.",
                h.path()
            );
            let _ = h.close();
            Python::attach(|py| {
                let pending = PyErr::take(py);
                let cat = py.get_type::<PyResourceWarning>();
                if let Ok(cmsg) = std::ffi::CString::new(msg) {
                    if let Err(e) = PyErr::warn(py, &cat, &cmsg, 1) {
                        e.write_unraisable(py, None);
                    }
                }
                if let Some(e) = pending {
                    e.restore(py);
                }
            });
        }
    }
}

fn limit_arg(n: Option<i64>) -> Option<u64> {
    n.and_then(|n| u64::try_from(n).ok())
}

impl PySharedFileHandle {
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, SharedFileHandle> {
        lock_unheld(py, &self.inner)
    }

    fn read_n<'py>(
        py: Python<'py>,
        h: &mut SharedFileHandle,
        size: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let remaining = h.remaining().py_err()?;
        let n = limit_arg(size).map_or(remaining, |s| remaining.min(s)) as usize;
        let mut err = None;
        let bytes = bytes_filled(py, n, |buf| {
            let r = if n >= RELEASE_GIL_AT {
                py.detach(|| h.read_into(buf))
            } else {
                h.read_into(buf)
            };
            r.unwrap_or_else(|e| {
                err = Some(e);
                0
            })
        })?;
        match err {
            Some(e) => Err(crate::error::to_py(e)),
            None => Ok(bytes),
        }
    }
}

#[pymethods]
impl PySharedFileHandle {
    /// Reads up to `size` bytes (`-1` or `None`: to the end).
    #[pyo3(signature = (size=-1), text_signature = "($self, size=-1)")]
    fn read<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let mut h = self.lock(py);
        Self::read_n(py, &mut h, size)
    }

    /// Reads to the end.
    fn readall<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut h = self.lock(py);
        Self::read_n(py, &mut h, None)
    }

    /// Reads into a writable buffer; returns the byte count.
    fn readinto(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let buf = PyUntypedBuffer::get(buffer)?;
        if buf.readonly() {
            return Err(PyTypeError::new_err("readinto() argument must be writable"));
        }
        if !buf.is_c_contiguous() {
            return Err(PyBufferError::new_err("buffer must be C-contiguous"));
        }
        let n = buf.len_bytes();
        let ptr = buf.buf_ptr() as usize;
        let mut guard = self.lock(py);
        let h: &mut SharedFileHandle = &mut guard;
        let run = |h: &mut SharedFileHandle| {
            // SAFETY: `buf` holds a writable, C-contiguous export of n bytes at ptr for the
            // whole call.
            let dst = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, n) };
            h.read_into(dst)
        };
        let r = if n >= RELEASE_GIL_AT {
            py.detach(|| run(h))
        } else {
            run(h)
        };
        drop(buf);
        r.py_err()
    }

    /// Reads one line (up to and including `\n`), at most `size` bytes.
    #[pyo3(signature = (size=-1), text_signature = "($self, size=-1)")]
    fn readline<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.lock(py).read_line(limit_arg(size)).py_err()?;
        Ok(PyBytes::new(py, &line))
    }

    /// Reads the remaining lines (stopping once `hint` bytes have been read, if positive).
    #[pyo3(signature = (hint=-1), text_signature = "($self, hint=-1)")]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<i64>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit_arg(hint).filter(|&h| h > 0);
        let lines = self.lock(py).read_lines(hint).py_err()?;
        PyList::new(py, lines.iter().map(|l| PyBytes::new(py, l)))
    }

    /// Writes a bytes-like object; returns its length.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut guard = self.lock(py);
        let h: &mut SharedFileHandle = &mut guard;
        with_bytes(py, data, |b| h.write(b))?.py_err()
    }

    /// Writes every bytes-like object of an iterable.
    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(py, &line?)?;
        }
        Ok(())
    }

    /// Moves the cursor (`whence` 0, 1 or 2); returns the new position.
    #[pyo3(signature = (offset, whence=0))]
    fn seek(&self, py: Python<'_>, offset: i64, whence: i32) -> PyResult<u64> {
        self.lock(py).seek(offset, whence).py_err()
    }

    /// The cursor position.
    fn tell(&self, py: Python<'_>) -> PyResult<u64> {
        self.lock(py).tell().py_err()
    }

    /// Resizes the file (to the cursor if `size` is `None`); returns the new size.
    #[pyo3(signature = (size=None))]
    fn truncate(&self, py: Python<'_>, size: Option<i64>) -> PyResult<u64> {
        let size = match size {
            Some(s) if s < 0 => return Err(PyValueError::new_err("truncate size must be >= 0")),
            s => s.map(|s| s as u64),
        };
        self.lock(py).truncate(size).py_err()
    }

    /// Commits what was written so far: visible to every process when this returns.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.lock(py).flush().py_err()
    }

    /// Whether the handle may read.
    fn readable(&self, py: Python<'_>) -> PyResult<bool> {
        let h = self.lock(py);
        h.ensure_open().py_err()?;
        Ok(h.mode().readable())
    }

    /// Whether the handle may write.
    fn writable(&self, py: Python<'_>) -> PyResult<bool> {
        let h = self.lock(py);
        h.ensure_open().py_err()?;
        Ok(h.mode().writable())
    }

    /// Always `True` (on an open handle).
    fn seekable(&self, py: Python<'_>) -> PyResult<bool> {
        self.lock(py).ensure_open().py_err().map(|()| true)
    }

    /// Always `False`.
    fn isatty(&self, py: Python<'_>) -> PyResult<bool> {
        self.lock(py).ensure_open().py_err().map(|()| false)
    }

    /// There is no file descriptor: `io.UnsupportedOperation`.
    fn fileno(&self) -> PyResult<i32> {
        Err(unsupported_operation_err(
            "MFS files have no file descriptor",
        ))
    }

    /// Commits (a writable handle) and releases the file's lock. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.lock(py).close().py_err()
    }

    /// Whether the handle is closed.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.lock(py).is_closed()
    }

    /// The mode string.
    #[getter]
    fn mode(&self, py: Python<'_>) -> &'static str {
        self.lock(py).mode().as_str()
    }

    /// The normalised path.
    #[getter]
    fn name<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        PyString::new(py, self.lock(py).path())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __iter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.borrow().lock(slf.py()).ensure_open().py_err()?;
        Ok(slf)
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.lock(py).read_line(None).py_err()?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let h = self.lock(py);
        let state = if h.is_closed() { " closed" } else { "" };
        format!(
            "<memspace.SharedFileHandle name='{}' mode='{}'{state}>",
            h.path(),
            h.mode().as_str()
        )
    }
}
