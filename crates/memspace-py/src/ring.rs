//! `memspace.Ring`: argument conversion, GIL release and `queue`-style errors over
//! `memspace::Ring`.
//!
//! Speed rule: `put`/`get` first try once with the GIL held (no syscall, no allocation beyond
//! the result); only a call that has to wait releases the GIL, and then checks for signals
//! (Ctrl-C) between the core's wait slices. Roles are claimed on first use unless `open` was
//! given one.

use std::ffi::{c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use memspace::mpmc::{Message as QueueMessage, Queue};
use memspace::spsc::{Consumer, Message, Producer, Reservation, Role};
use memspace::{Location, Ring, RingOptions};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyMemoryView, PyTuple, PyType};

use crate::error::IntoPyResult;
use crate::lock::{detached, mode_arg, timeout_arg};
use crate::shm::location;

pub(crate) fn queue_exc(py: Python<'_>, which: &'static str) -> PyErr {
    static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let cell = if which == "Empty" { &EMPTY } else { &FULL };
    match cell.import(py, "queue", which) {
        Ok(t) => PyErr::from_type(t.clone(), ()),
        Err(e) => e,
    }
}

/// Whether `e` is a `queue.Full`.
pub(crate) fn is_full(py: Python<'_>, e: &PyErr) -> bool {
    static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    FULL.import(py, "queue", "Full")
        .is_ok_and(|t| e.is_instance(py, t))
}

/// Maps the core's timeout while waiting for room to `queue.Full`.
pub(crate) fn full_on_timeout<T>(py: Python<'_>, r: PyResult<T>) -> PyResult<T> {
    match r {
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py) => {
            Err(queue_exc(py, "Full"))
        }
        r => r,
    }
}

/// Locks a role mutex; if another thread holds it (possibly while waiting with the GIL
/// released), waits for it without holding the GIL.
fn lock_role<'a, T: Send>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    loop {
        match m.try_lock() {
            Ok(g) => return g,
            Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
            // Wait for the holder without the GIL (it may need the GIL to finish), then try
            // again with it: a guard cannot cross the GIL boundary.
            Err(std::sync::TryLockError::WouldBlock) => py.detach(|| drop(m.lock())),
        }
    }
}

/// Checks the `capacity` and `max_message_size` arguments of a channel's `create()`.
pub(crate) fn channel_sizes(
    capacity: Option<i64>,
    max_message_size: Option<i64>,
) -> PyResult<(u64, Option<u64>)> {
    let Some(capacity) = capacity else {
        return Err(PyTypeError::new_err("create() needs a capacity in bytes"));
    };
    let cap = u64::try_from(capacity)
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| PyValueError::new_err(format!("capacity must be > 0, not {capacity}")))?;
    let max_len = max_message_size
        .map(|m| {
            u64::try_from(m).map_err(|_| {
                PyValueError::new_err(format!("max_message_size must be >= 0, not {m}"))
            })
        })
        .transpose()?;
    Ok((cap, max_len))
}

/// A bytes-like argument: `bytes` borrowed directly, anything else through the buffer protocol.
pub(crate) enum Data<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(PyUntypedBuffer),
}

impl Data<'_> {
    pub(crate) fn from<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Data<'py>> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Data::Bytes(b.clone()));
        }
        let buf = PyUntypedBuffer::get(obj).map_err(|_| {
            PyTypeError::new_err(format!(
                "a bytes-like object is required, not {}",
                obj.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        if !buf.is_c_contiguous() {
            return Err(PyBufferError::new_err("data must be a C-contiguous buffer"));
        }
        Ok(Data::Buffer(buf))
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Data::Bytes(b) => b.as_bytes(),
            // SAFETY: the exporter keeps `len_bytes` contiguous bytes at `buf_ptr` while the
            // buffer is held (it is, for as long as `self` lives).
            Data::Buffer(b) => unsafe {
                std::slice::from_raw_parts(b.buf_ptr().cast::<u8>(), b.len_bytes())
            },
        }
    }
}

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

/// A single-producer/single-consumer ring between processes.
#[pyclass(module = "memspace", name = "Ring", frozen)]
pub struct PyRing {
    ring: Ring,
    tx: Mutex<Option<Producer>>,
    rx: Mutex<Option<Consumer>>,
    closed: AtomicBool,
    /// A `reserve()` or `get_view()` is open: other puts/gets on this handle must wait for it.
    reserving: AtomicBool,
    viewing: AtomicBool,
}

impl PyRing {
    fn new(ring: Ring) -> Self {
        Self {
            ring,
            tx: Mutex::new(None),
            rx: Mutex::new(None),
            closed: AtomicBool::new(false),
            reserving: AtomicBool::new(false),
            viewing: AtomicBool::new(false),
        }
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PyValueError::new_err("operation on a closed Ring"));
        }
        Ok(())
    }

    fn tx<'a>(&'a self, py: Python<'_>) -> PyResult<MutexGuard<'a, Option<Producer>>> {
        self.check_open()?;
        if self.reserving.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err(
                "a reserve() of this Ring is still open: commit or abort it first",
            ));
        }
        let mut g = lock_role(py, &self.tx);
        // A forked child must not write as its parent's producer: drop the inherited role
        // (the parent keeps its lock) and claim it again, which fails while the parent lives.
        if g.as_ref().is_some_and(Producer::is_inherited) {
            *g = None;
        }
        if g.is_none() {
            *g = Some(self.ring.producer().py_err()?);
        }
        Ok(g)
    }

    fn rx<'a>(&'a self, py: Python<'_>) -> PyResult<MutexGuard<'a, Option<Consumer>>> {
        self.check_open()?;
        if self.viewing.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err(
                "a get_view() of this Ring is still open: leave its with-block first",
            ));
        }
        let mut g = lock_role(py, &self.rx);
        if g.as_ref().is_some_and(Consumer::is_inherited) {
            *g = None;
        }
        if g.is_none() {
            *g = Some(self.ring.consumer().py_err()?);
        }
        Ok(g)
    }

    fn effective_timeout(block: bool, timeout: Option<f64>) -> PyResult<Option<Duration>> {
        let t = timeout_arg(timeout)?;
        Ok(if block { t } else { Some(Duration::ZERO) })
    }

    /// The next message, waiting as allowed; `None` on timeout.
    fn next_message(
        py: Python<'_>,
        rx: &mut Consumer,
        timeout: Option<Duration>,
    ) -> PyResult<Option<Message>> {
        if let Some(m) = rx.peek().py_err()? {
            return Ok(Some(m));
        }
        if timeout == Some(Duration::ZERO) {
            rx.release();
            return Ok(None);
        }
        detached(py, |interrupt| rx.peek_wait(timeout, interrupt))
    }
}

#[pymethods]
impl PyRing {
    /// Creates a ring of at least `capacity` bytes (rounded up to a power of two).
    #[staticmethod]
    #[pyo3(signature = (name=None, capacity=None, *, path=None, max_message_size=None, mode=0o600))]
    fn create(
        py: Python<'_>,
        name: Option<String>,
        capacity: Option<i64>,
        path: Option<PathBuf>,
        max_message_size: Option<i64>,
        mode: i64,
    ) -> PyResult<Self> {
        let loc = location(name, path)?;
        let (cap, max_len) = channel_sizes(capacity, max_message_size)?;
        let mut opts = RingOptions::new(loc, cap).mode(mode_arg(mode)?);
        if let Some(m) = max_len {
            opts = opts.max_message_size(m);
        }
        let ring = py.detach(|| opts.create()).py_err()?;
        Ok(Self::new(ring))
    }

    /// Opens an existing ring; `role` ("producer" or "consumer") claims that role now,
    /// otherwise the first `put` / `get` claims it.
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None, role=None))]
    fn open(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        role: Option<&str>,
    ) -> PyResult<Self> {
        let loc = location(name, path)?;
        let role = match role {
            None => None,
            Some("producer") => Some(Role::Producer),
            Some("consumer") => Some(Role::Consumer),
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "role must be \"producer\", \"consumer\" or None, not {other:?}"
                )))
            }
        };
        let ring = py.detach(|| Ring::open(loc)).py_err()?;
        let this = Self::new(ring);
        match role {
            Some(Role::Producer) => drop(this.tx(py)?),
            Some(Role::Consumer) => drop(this.rx(py)?),
            None => {}
        }
        Ok(this)
    }

    /// Removes a ring's segment by name or path.
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None))]
    fn remove(name: Option<String>, path: Option<PathBuf>) -> PyResult<()> {
        Ring::remove(&location(name, path)?).py_err()
    }

    /// Sends one message (a bytes-like object); waits for room unless `block` is false or
    /// `timeout` elapses (then `queue.Full`).
    #[pyo3(signature = (data, block=true, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let timeout = Self::effective_timeout(block, timeout)?;
        let data = Data::from(data)?;
        let mut g = self.tx(py)?;
        let tx = g.as_mut().expect("claimed above");
        let slice = data.as_slice();
        if tx.try_push(slice).py_err()? {
            return Ok(());
        }
        if timeout == Some(Duration::ZERO) {
            return Err(queue_exc(py, "Full"));
        }
        full_on_timeout(
            py,
            detached(py, |interrupt| tx.push(slice, timeout, interrupt)),
        )
    }

    /// `put(data, block=False)`.
    fn put_nowait(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.put(py, data, false, None)
    }

    /// Sends one message if there is room now; returns whether it was sent.
    fn try_put(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        let data = Data::from(data)?;
        let mut g = self.tx(py)?;
        g.as_mut()
            .expect("claimed above")
            .try_push(data.as_slice())
            .py_err()
    }

    /// Sends every message of `items` in order, publishing once per run that fits; returns
    /// how many were sent (fewer only if `timeout` elapsed; `queue.Full` if none was).
    #[pyo3(signature = (items, timeout=None))]
    fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let timeout = timeout_arg(timeout)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = self.tx(py)?;
        let tx = g.as_mut().expect("claimed above");
        let mut n = 0usize;
        let result = (|| -> PyResult<()> {
            for item in items.try_iter()? {
                let item = item?;
                let data = Data::from(&item)?;
                let slice = data.as_slice();
                if tx.try_write(slice).py_err()? {
                    n += 1;
                    continue;
                }
                let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                if left == Some(Duration::ZERO) {
                    return Err(queue_exc(py, "Full"));
                }
                // `push` publishes what was written before it waits.
                full_on_timeout(
                    py,
                    detached(py, |interrupt| tx.push(slice, left, interrupt)),
                )?;
                n += 1;
            }
            Ok(())
        })();
        tx.flush();
        match result {
            Ok(()) => Ok(n),
            Err(e) if n > 0 && is_full(py, &e) => Ok(n),
            Err(e) => Err(e),
        }
    }

    /// Takes one message; waits unless `block` is false or `timeout` elapses (then
    /// `queue.Empty`).
    #[pyo3(signature = (block=true, timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let timeout = Self::effective_timeout(block, timeout)?;
        let mut g = self.rx(py)?;
        let rx = g.as_mut().expect("claimed above");
        let Some(m) = Self::next_message(py, rx, timeout)? else {
            return Err(queue_exc(py, "Empty"));
        };
        let out = bytes_at(py, rx.message_ptr(&m), m.len())?;
        rx.consume(m);
        rx.release();
        Ok(out)
    }

    /// `get(block=False)`.
    fn get_nowait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.get(py, false, None)
    }

    /// Takes one message if there is one now, else returns None.
    fn try_get<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut g = self.rx(py)?;
        let rx = g.as_mut().expect("claimed above");
        let Some(m) = rx.peek().py_err()? else {
            return Ok(None);
        };
        let out = bytes_at(py, rx.message_ptr(&m), m.len())?;
        rx.consume(m);
        rx.release();
        Ok(Some(out))
    }

    /// Takes up to `max_count` messages: waits (at most `timeout`) for the first, then takes
    /// what is there without waiting. `queue.Empty` if none arrived in time.
    #[pyo3(signature = (max_count, timeout=None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max_count: i64,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        if max_count < 1 {
            return Err(PyValueError::new_err(format!(
                "max_count must be >= 1, not {max_count}"
            )));
        }
        let timeout = timeout_arg(timeout)?;
        let mut g = self.rx(py)?;
        let rx = g.as_mut().expect("claimed above");
        let Some(first) = Self::next_message(py, rx, timeout)? else {
            return Err(queue_exc(py, "Empty"));
        };
        let out = PyList::empty(py);
        let mut m = first;
        let result = (|| -> PyResult<()> {
            loop {
                out.append(bytes_at(py, rx.message_ptr(&m), m.len())?)?;
                rx.consume(m);
                if out.len() as i64 >= max_count {
                    return Ok(());
                }
                match rx.peek().py_err()? {
                    Some(next) => m = next,
                    None => return Ok(()),
                }
            }
        })();
        rx.release();
        result.map(|()| out)
    }

    /// Sends one typed value (bool, int, float, str or bytes) in the encoding of
    /// `memspace.View`, so that `get_value` returns it with its type.
    #[pyo3(signature = (value, timeout=None))]
    fn put_value(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let owned = crate::view::to_owned_value(value, None)?;
        let mut buf = Vec::new();
        memspace::view::codec::encode(&crate::view::as_ref(&owned)?, &mut buf).py_err()?;
        self.put(py, PyBytes::new(py, &buf).as_any(), true, timeout)
    }

    /// Takes one value sent with `put_value`, with its type.
    #[pyo3(signature = (timeout=None))]
    fn get_value(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let timeout = timeout_arg(timeout)?;
        let mut g = self.rx(py)?;
        let rx = g.as_mut().expect("claimed above");
        let Some(m) = Self::next_message(py, rx, timeout)? else {
            return Err(queue_exc(py, "Empty"));
        };
        let mut buf = vec![0u8; m.len()];
        rx.read(&m, &mut buf);
        // A message that is not a value is left in the ring for a plain get().
        let value = memspace::view::codec::decode(&buf).py_err()?;
        rx.consume(m);
        rx.release();
        crate::view::to_py(py, value)
    }

    /// A context manager whose `__enter__` waits (at most `timeout`) for the next message and
    /// returns a read-only memoryview of it in place; leaving the block consumes it (unless an
    /// exception left it, or a view of it is still exported: then it stays for the next get).
    #[pyo3(signature = (timeout=None))]
    fn get_view(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<PyRingView> {
        let timeout = timeout_arg(timeout)?;
        slf.get().check_open()?;
        Ok(PyRingView {
            ring: slf.clone().unbind(),
            timeout,
            state: Mutex::new(None),
        })
    }

    /// A context manager whose `__enter__` reserves room for a message of `n` bytes and
    /// returns a writable memoryview of it in place; leaving the block sends it (an exception
    /// abandons it instead).
    #[pyo3(signature = (n, timeout=None))]
    fn reserve(slf: &Bound<'_, Self>, n: i64, timeout: Option<f64>) -> PyResult<PyRingReservation> {
        let timeout = timeout_arg(timeout)?;
        let n = usize::try_from(n)
            .map_err(|_| PyValueError::new_err(format!("n must be >= 0, not {n}")))?;
        slf.get().check_open()?;
        Ok(PyRingReservation {
            ring: slf.clone().unbind(),
            n,
            timeout,
            state: Mutex::new(None),
        })
    }

    /// Messages waiting (exact when both sides are idle).
    fn __len__(&self) -> usize {
        self.ring.len() as usize
    }

    /// Capacity in bytes (a power of two).
    #[getter]
    fn capacity(&self) -> u64 {
        self.ring.capacity()
    }

    /// Bytes free for new messages (each message takes 8 bytes of header plus its length
    /// rounded up to 8).
    #[getter]
    fn free(&self) -> u64 {
        self.ring.free_bytes()
    }

    /// Largest message in bytes.
    #[getter]
    fn max_message_size(&self) -> u64 {
        self.ring.max_message_size()
    }

    /// The roles this handle holds: "producer", "consumer", "both" or None.
    #[getter]
    fn role(&self) -> Option<&'static str> {
        let tx = self.tx.lock().is_ok_and(|g| g.is_some());
        let rx = self.rx.lock().is_ok_and(|g| g.is_some());
        match (tx, rx) {
            (true, true) => Some("both"),
            (true, false) => Some("producer"),
            (false, true) => Some("consumer"),
            (false, false) => None,
        }
    }

    /// The POSIX name, or None for a file-backed ring.
    #[getter]
    fn name(&self) -> Option<String> {
        match self.ring.location() {
            Location::Name(n) => Some(n.clone()),
            Location::Path(_) => None,
        }
    }

    /// The file path, or None for a POSIX ring.
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        match self.ring.location() {
            Location::Path(p) => Some(p.clone()),
            Location::Name(_) => None,
        }
    }

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Fill level, geometry and who holds the roles (for `memspace inspect`).
    fn inspect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("kind", "ring")?;
        d.set_item("name", self.name())?;
        d.set_item("path", self.path())?;
        d.set_item("capacity", self.ring.capacity())?;
        d.set_item("max_message_size", self.ring.max_message_size())?;
        d.set_item("messages", self.ring.len())?;
        d.set_item("used_bytes", self.ring.used_bytes())?;
        d.set_item("free_bytes", self.ring.free_bytes())?;
        d.set_item(
            "producer_alive",
            self.ring.role_held(Role::Producer).py_err()?,
        )?;
        d.set_item(
            "consumer_alive",
            self.ring.role_held(Role::Consumer).py_err()?,
        )?;
        Ok(d)
    }

    /// Offset of the control block in the segment (tests and tools).
    #[getter]
    fn _control_offset(&self) -> u64 {
        self.ring.control_offset()
    }

    /// Offset of the byte ring in the segment (tests and tools).
    #[getter]
    fn _data_offset(&self) -> u64 {
        self.ring.data_offset()
    }

    /// Gives up the roles and detaches; the ring (and its messages) stays.
    fn close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Release);
        if let Some(mut tx) = lock_role(py, &self.tx).take() {
            tx.flush();
        }
        if let Some(mut rx) = lock_role(py, &self.rx).take() {
            rx.release();
        }
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    /// Pickles as a reference: unpickling opens the same ring by name or path (so a
    /// handle can be passed to a spawned process); the closed state is not carried over.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        crate::lock::reduce(slf.py(), slf.get_type().as_any(), slf.get().ring.location())
    }

    fn __repr__(&self) -> String {
        let loc = match self.ring.location() {
            Location::Name(n) => format!("name={n:?}"),
            Location::Path(p) => format!("path={:?}", p.display().to_string()),
        };
        let state = if self.closed() { ", closed" } else { "" };
        format!("Ring({loc}, capacity={}{state})", self.ring.capacity())
    }
}

/// What keeps exported bytes valid: the mapping, and for a queue message the message itself
/// (its space is handed back when the exporter goes, so it is never reused under a view).
pub(crate) enum Keep {
    /// Held only to keep the mapping alive.
    Ring(#[allow(dead_code)] Ring),
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
    exports: std::sync::atomic::AtomicUsize,
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
            exports: std::sync::atomic::AtomicUsize::new(0),
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
fn end_block(
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

/// The context manager returned by `Ring.get_view()`.
#[pyclass(module = "memspace._memspace", name = "RingView", frozen)]
pub struct PyRingView {
    ring: Py<PyRing>,
    timeout: Option<Duration>,
    state: Mutex<Option<(Message, Exported)>>,
}

#[pymethods]
impl PyRingView {
    fn __enter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyMemoryView>> {
        let ring = self.ring.get();
        let mut g = ring.rx(py)?;
        let rx = g.as_mut().expect("claimed above");
        let Some(m) = PyRing::next_message(py, rx, self.timeout)? else {
            return Err(queue_exc(py, "Empty"));
        };
        let (exported, mv) = exported_view(
            py,
            Keep::Ring(ring.ring.clone()),
            rx.message_ptr(&m),
            m.len(),
            true,
        )?;
        ring.viewing.store(true, Ordering::Release);
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((m, exported));
        Ok(mv)
    }

    #[pyo3(signature = (exc_type, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let ring = self.ring.get();
        let Some((m, mv)) = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return Ok(false);
        };
        if end_block(py, &mv, &ring.viewing, exc_type, "message was not consumed")? {
            let mut g = ring.rx(py)?;
            let rx = g.as_mut().expect("claimed above");
            rx.consume(m);
            rx.release();
        }
        Ok(false)
    }
}

/// The context manager returned by `Ring.reserve()`.
#[pyclass(module = "memspace._memspace", name = "RingReservation", frozen)]
pub struct PyRingReservation {
    ring: Py<PyRing>,
    n: usize,
    timeout: Option<Duration>,
    state: Mutex<Option<(Reservation, Exported)>>,
}

#[pymethods]
impl PyRingReservation {
    fn __enter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyMemoryView>> {
        let ring = self.ring.get();
        let mut g = ring.tx(py)?;
        let tx = g.as_mut().expect("claimed above");
        let n = self.n;
        let timeout = self.timeout;
        let r = full_on_timeout(
            py,
            detached(py, |interrupt| tx.reserve(n, timeout, interrupt)),
        )?;
        let (exported, mv) = exported_view(
            py,
            Keep::Ring(ring.ring.clone()),
            tx.reservation_ptr(&r),
            r.len(),
            false,
        )?;
        ring.reserving.store(true, Ordering::Release);
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((r, exported));
        Ok(mv)
    }

    #[pyo3(signature = (exc_type, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let ring = self.ring.get();
        let Some((r, mv)) = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return Ok(false);
        };
        if end_block(
            py,
            &mv,
            &ring.reserving,
            exc_type,
            "reserved message was abandoned",
        )? {
            let mut g = ring.tx(py)?;
            g.as_mut().expect("claimed above").commit(r);
        }
        Ok(false)
    }
}
