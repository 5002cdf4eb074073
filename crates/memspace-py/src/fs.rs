//! `memspace.MemoryFileSystem` and its file handle: argument conversion, GIL release and error
//! mapping over `memspace::fs`. The Python class `memspace.MemoryFileSystem` derives from
//! `_FileSystem` and adds only the generator methods and the memory guard.
//!
//! Deadlock rule: the core never calls back into Python, so a thread that holds a core lock
//! never waits for the GIL. The one lock taken here (a handle's mutex) may be held while the
//! GIL is released for a large copy, so it is waited for with the GIL released too.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use memspace::fs::{
    DirToken, FileHandle, FileSnapshot, FsError, FsOptions, MemoryFileSystem, OpenMode,
    SharedBytes, StorageKind,
};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyResourceWarning, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::args::{lock_timeout_arg, u64_arg, Data};
use crate::error::{unsupported_operation_err, IntoPyResult};
use crate::export::{bytes_filled, with_bytes, RELEASE_GIL_AT};
use crate::gil::{detached, lock_unheld};

/// A `bytes` at least this large, appended to a sequential file, is kept by the file instead
/// of copied (as D-MemFS keeps references); smaller ones are copied into the file's buffer,
/// which costs less than one Python object per write.
const KEEP_BYTES_AT: usize = 64 * 1024;

/// A Python `bytes` object kept by a file instead of a copy of its bytes.
struct KeptBytes {
    ptr: usize,
    len: usize,
    _owner: Py<PyBytes>,
}

impl SharedBytes for KeptBytes {
    fn bytes(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is the storage of the `bytes` object `_owner`, which this value
        // keeps alive; the storage of a `bytes` object never moves and never changes while the
        // object is alive, so reading it needs neither the GIL nor a lock.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

/// One step of `walk`: a directory's token, its subdirectory names, its file names.
type WalkStep = ((u64, u64), Vec<String>, Vec<String>);

/// The native half of `memspace.MemoryFileSystem` (same constructor, same methods).
#[pyclass(module = "memspace._memspace", name = "_FileSystem", subclass, frozen)]
pub(crate) struct PyFileSystem {
    fs: MemoryFileSystem,
}

#[pymethods]
impl PyFileSystem {
    #[new]
    #[pyo3(signature = (
        max_quota=268_435_456,
        chunk_overhead_override=None,
        promotion_hard_limit=None,
        max_nodes=None,
        default_storage="auto",
        default_lock_timeout=Some(30.0),
        memory_guard="none",
        memory_guard_action="warn",
        memory_guard_interval=1.0,
    ), text_signature = "(max_quota=268435456, chunk_overhead_override=None, \
        promotion_hard_limit=None, max_nodes=None, default_storage='auto', \
        default_lock_timeout=30.0, memory_guard='none', memory_guard_action='warn', \
        memory_guard_interval=1.0)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        max_quota: i128,
        chunk_overhead_override: Option<i128>,
        promotion_hard_limit: Option<i128>,
        max_nodes: Option<i128>,
        default_storage: &str,
        default_lock_timeout: Option<f64>,
        memory_guard: &str,
        memory_guard_action: &str,
        memory_guard_interval: f64,
    ) -> PyResult<Self> {
        let max_quota = u64_arg(max_quota, "max_quota")?;
        let chunk_overhead_override = chunk_overhead_override
            .map(|v| u64_arg(v, "chunk_overhead_override"))
            .transpose()?;
        let promotion_hard_limit = promotion_hard_limit
            .map(|v| u64_arg(v, "promotion_hard_limit"))
            .transpose()?;
        let max_nodes = max_nodes.map(|v| u64_arg(v, "max_nodes")).transpose()?;
        let Some(storage) = StorageKind::parse(default_storage) else {
            return Err(PyValueError::new_err(format!(
                "Invalid default_storage value: '{default_storage}'. \
                 Expected 'auto', 'sequential', or 'random_access'."
            )));
        };
        if !matches!(memory_guard_action, "warn" | "raise") {
            return Err(PyValueError::new_err(format!(
                "Invalid memory_guard_action: '{memory_guard_action}'. Expected 'warn' or 'raise'."
            )));
        }
        if !matches!(memory_guard, "none" | "init" | "per_write") {
            return Err(PyValueError::new_err(format!(
                "Invalid memory_guard: '{memory_guard}'. Expected 'none', 'init', or 'per_write'."
            )));
        }
        let _ = memory_guard_interval; // used by the Python subclass
        let mut opts = FsOptions::new()
            .max_quota(max_quota)
            .max_nodes(max_nodes)
            .storage(storage)
            .default_lock_timeout(lock_timeout_arg(default_lock_timeout)?);
        if let Some(o) = chunk_overhead_override {
            opts = opts.chunk_overhead(o);
        }
        if let Some(l) = promotion_hard_limit {
            opts = opts.promotion_hard_limit(l);
        }
        Ok(Self {
            fs: MemoryFileSystem::new(opts),
        })
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
    ) -> PyResult<PyFileHandle> {
        let Some(m) = OpenMode::parse(mode) else {
            return Err(PyValueError::new_err(format!(
                "Invalid mode '{mode}'. MFS supports binary modes only: \
                 {{'rb', 'wb', 'ab', 'r+b', 'xb'}}"
            )));
        };
        let pre = u64::try_from(preallocate).unwrap_or(0);
        let wait = lock_timeout_arg(lock_timeout)?;
        // Try once without releasing the GIL (the common, uncontended case); wait for the
        // lock with the GIL released only if someone holds it, handling signals meanwhile.
        let h = match self.fs.open(path, m, pre, Some(Duration::ZERO)) {
            Err(memspace::Error::Fs(FsError::LockTimeout { .. }))
                if wait != Some(Duration::ZERO) =>
            {
                let fs = &self.fs;
                detached(py, |interrupt| fs.open_with(path, m, pre, wait, interrupt))?
            }
            r => r.py_err()?,
        };
        Ok(PyFileHandle {
            inner: Mutex::new(h),
        })
    }

    /// Creates a directory and its missing parents.
    #[pyo3(signature = (path, exist_ok=false))]
    fn mkdir(&self, path: &str, exist_ok: bool) -> PyResult<()> {
        self.fs.mkdir(path, exist_ok).py_err()
    }

    /// Deletes a file.
    fn remove(&self, path: &str) -> PyResult<()> {
        self.fs.remove(path).py_err()
    }

    /// Deletes a directory tree.
    fn rmtree(&self, path: &str) -> PyResult<()> {
        self.fs.rmtree(path).py_err()
    }

    /// Renames a file or directory (the destination's parent must exist).
    fn rename(&self, src: &str, dst: &str) -> PyResult<()> {
        self.fs.rename(src, dst).py_err()
    }

    /// Moves a file or directory, creating the destination's parents.
    #[pyo3(name = "move")]
    fn move_path(&self, src: &str, dst: &str) -> PyResult<()> {
        self.fs.move_path(src, dst).py_err()
    }

    /// Copies a file.
    fn copy(&self, py: Python<'_>, src: &str, dst: &str) -> PyResult<()> {
        py.detach(|| self.fs.copy(src, dst)).py_err()
    }

    /// Copies a directory tree (all-or-nothing).
    fn copy_tree(&self, py: Python<'_>, src: &str, dst: &str) -> PyResult<()> {
        py.detach(|| self.fs.copy_tree(src, dst)).py_err()
    }

    /// Names in a directory, sorted.
    fn listdir(&self, path: &str) -> PyResult<Vec<String>> {
        self.fs.listdir(path).py_err()
    }

    /// Whether a path exists.
    fn exists(&self, path: &str) -> bool {
        self.fs.exists(path)
    }

    /// Whether a path is a directory.
    fn is_dir(&self, path: &str) -> bool {
        self.fs.is_dir(path)
    }

    /// Whether a path is a file.
    fn is_file(&self, path: &str) -> bool {
        self.fs.is_file(path)
    }

    /// Metadata of a path as a dict.
    fn stat<'py>(&self, py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyDict>> {
        let st = self.fs.stat(path).py_err()?;
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
        let st = self.fs.stats();
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

    /// Bytes of quota still free (`stats()["free_bytes"]` without walking the tree).
    fn _free_bytes(&self) -> u64 {
        self.fs.free_bytes()
    }

    /// Size of a file.
    fn get_size(&self, path: &str) -> PyResult<u64> {
        self.fs.get_size(path).py_err()
    }

    /// Paths matching a glob pattern, sorted, each once.
    fn glob(&self, pattern: &str) -> PyResult<Vec<String>> {
        self.fs.glob(pattern).py_err()
    }

    /// All files below `prefix` as `{path: bytes}`.
    #[pyo3(signature = (prefix="/", only_dirty=false))]
    fn export_tree<'py>(
        &self,
        py: Python<'py>,
        prefix: &str,
        only_dirty: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for item in self.fs.export_iter(prefix, only_dirty).py_err()? {
            let (p, snap) = item.py_err()?;
            d.set_item(p, copy_out(py, &snap, None)?)?;
        }
        Ok(d)
    }

    /// Writes every `{path: bytes}` entry, all or nothing.
    fn import_tree(&self, py: Python<'_>, tree: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = tree.call_method0("items")?;
        let mut paths: Vec<String> = Vec::new();
        let mut datas: Vec<Bound<'_, PyAny>> = Vec::new();
        for item in items.try_iter()? {
            let (p, d): (String, Bound<'_, PyAny>) = item?.extract()?;
            paths.push(p);
            datas.push(d);
        }
        // Borrow every value's bytes (no copy: the core copies after reserving the quota).
        let datas: Vec<Data<'_>> = datas.iter().map(Data::from).collect::<PyResult<_>>()?;
        let slices: Vec<&[u8]> = datas.iter().map(Data::as_slice).collect();
        let fs = &self.fs;
        py.detach(|| {
            let entries = paths.iter().zip(&slices).map(|(p, s)| (p.as_str(), *s));
            fs.import_tree(entries)
        })
        .py_err()
    }

    /// One directory of a walk: `(token, dirnames, filenames)`. Given the token of its parent
    /// and its name, the core finds it without looking its whole path up.
    #[pyo3(signature = (path, parent=None, name=""))]
    fn _scandir(&self, path: &str, parent: Option<(u64, u64)>, name: &str) -> PyResult<WalkStep> {
        let parent = parent.map(|(id, epoch)| (DirToken::from_parts(id, epoch), name));
        let (token, dirs, files) = self.fs.scandir_from(parent, path).py_err()?;
        Ok((token.to_parts(), dirs, files))
    }

    /// Paths of the files below `prefix` (for `iter_export_tree`).
    #[pyo3(signature = (prefix="/", only_dirty=false))]
    fn _file_paths(&self, prefix: &str, only_dirty: bool) -> PyResult<Vec<String>> {
        self.fs.file_paths(prefix, only_dirty).py_err()
    }

    /// A copy of a file's bytes, without waiting for its lock; `ValueError` above `max_size`.
    #[pyo3(signature = (path, max_size=None))]
    fn _read_bytes<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        max_size: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        copy_out(py, &self.fs.snapshot(path).py_err()?, max_size)
    }
}

/// A new `bytes` with a copy of a snapshot's data (the GIL released for a large copy);
/// `ValueError` if it is larger than `max_size`.
fn copy_out<'py>(
    py: Python<'py>,
    snap: &FileSnapshot,
    max_size: Option<i64>,
) -> PyResult<Bound<'py, PyBytes>> {
    loop {
        let n = snap.len();
        if let Some(m) = max_size {
            if i128::from(n) > i128::from(m) {
                return Err(PyValueError::new_err(format!(
                    "File size {n} exceeds max_size={m}."
                )));
            }
        }
        let mut size_now = n;
        let bytes = bytes_filled(py, n as usize, |buf| {
            let (done, sz) = if buf.len() >= RELEASE_GIL_AT {
                py.detach(|| snap.read_into(buf))
            } else {
                snap.read_into(buf)
            };
            size_now = sz;
            done
        })?;
        // A writer changed the size between measuring and copying: measure again.
        if size_now == n {
            return Ok(bytes);
        }
    }
}

/// An open file of a `MemoryFileSystem` (a registered `io.RawIOBase`). It holds the file's
/// lock until closed; collecting it unclosed closes it with a `ResourceWarning`.
#[pyclass(module = "memspace._memspace", name = "MemoryFileHandle", frozen)]
pub(crate) struct PyFileHandle {
    inner: Mutex<FileHandle>,
}

impl Drop for PyFileHandle {
    fn drop(&mut self) {
        let h = self.inner.get_mut().unwrap_or_else(PoisonError::into_inner);
        if !h.is_closed() {
            let msg = format!(
                "MFS MemoryFileHandle for '{}' was not closed properly. \
                 Always use 'with mfs.open(...) as f:' to ensure cleanup.",
                h.path()
            );
            h.close();
            Python::attach(|py| {
                // The handle may be collected while an exception propagates (a failed write on
                // a temporary handle): keep that exception aside while warning.
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

impl PyFileHandle {
    /// Locks the handle; waits with the GIL released if another thread is using it.
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, FileHandle> {
        lock_unheld(py, &self.inner)
    }

    fn read_n<'py>(
        py: Python<'py>,
        h: &mut FileHandle,
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

/// A Python size or hint (`None` or negative: no limit) -> a core limit.
fn limit_arg(n: Option<i64>) -> Option<u64> {
    n.and_then(|n| u64::try_from(n).ok())
}

#[pymethods]
impl PyFileHandle {
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
        let h: &mut FileHandle = &mut guard;
        let run = |h: &mut FileHandle| {
            // SAFETY: `buf` holds a writable, C-contiguous export of n bytes at ptr for the
            // whole call; nothing else in this process writes it through memspace.
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
        // A hint of 0 (or less) means no limit, as in `io`.
        let hint = limit_arg(hint).filter(|&h| h > 0);
        let lines = self.lock(py).read_lines(hint).py_err()?;
        PyList::new(py, lines.iter().map(|l| PyBytes::new(py, l)))
    }

    /// Writes a bytes-like object; returns its length.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut guard = self.lock(py);
        let h: &mut FileHandle = &mut guard;
        if let Ok(b) = data.cast::<PyBytes>() {
            let bytes = b.as_bytes();
            // Kept instead of copied (an append to a sequential file): no copy, so no reason
            // to release the GIL. Any other write copies, below.
            if bytes.len() >= KEEP_BYTES_AT && h.keeps_shared() {
                let kept: Arc<dyn SharedBytes> = Arc::new(KeptBytes {
                    ptr: bytes.as_ptr() as usize,
                    len: bytes.len(),
                    _owner: b.clone().unbind(),
                });
                return h.write_shared(kept).py_err();
            }
            if bytes.len() < RELEASE_GIL_AT {
                return h.write(bytes).py_err();
            }
        }
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

    /// Does nothing (there is no buffer), but fails on a closed handle like `io` does.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.lock(py).ensure_open().py_err()
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

    /// Releases the file's lock. Idempotent.
    fn close(&self, py: Python<'_>) {
        self.lock(py).close();
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
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
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
            "<memspace.MemoryFileHandle name='{}' mode='{}'{state}>",
            h.path(),
            h.mode().as_str()
        )
    }
}
