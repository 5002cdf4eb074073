//! `memspace.Queue`: the MPMC queue's Python face (argument conversion, GIL release, error
//! mapping). Fast paths run with the GIL held; waits release it and check for signals.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use memspace::mpmc::{Queue, QueueOptions};
use memspace::Location;
use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::error::IntoPyResult;
use crate::lock::{detached, mode_arg, timeout_arg};
use crate::ring::{bytes_at, channel_sizes, queue_exc, Data};
use crate::shm::location;

/// A multi-producer/multi-consumer queue between processes.
#[pyclass(module = "memspace", name = "Queue", frozen)]
pub struct PyQueue {
    q: Queue,
    closed: AtomicBool,
}

impl PyQueue {
    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PyValueError::new_err("operation on a closed Queue"));
        }
        Ok(())
    }

    fn effective_timeout(block: bool, timeout: Option<f64>) -> PyResult<Option<Duration>> {
        let t = timeout_arg(timeout)?;
        Ok(if block { t } else { Some(Duration::ZERO) })
    }

    fn take_into<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout: Option<Duration>,
    ) -> PyResult<Bound<'py, PyList>> {
        let q = &self.q;
        let mut ms = Vec::new();
        q.take_many(max, Some(Duration::ZERO), &mut || false, &mut ms)
            .py_err()?;
        if ms.is_empty() && timeout != Some(Duration::ZERO) {
            ms = detached(py, |interrupt| {
                let mut v = Vec::new();
                q.take_many(max, timeout, interrupt, &mut v)?;
                Ok(v)
            })?;
        }
        let out = PyList::empty(py);
        let mut err = None;
        for m in ms {
            if err.is_none() {
                match bytes_at(py, q.message_ptr(&m), m.len()).and_then(|b| out.append(b)) {
                    Ok(()) => {}
                    Err(e) => err = Some(e),
                }
            }
            q.release(m).py_err()?;
        }
        match err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

#[pymethods]
impl PyQueue {
    /// Creates a queue of at least `capacity` bytes (rounded up to a power of two).
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
        let mut opts = QueueOptions::new(loc, cap).mode(mode_arg(mode)?);
        if let Some(m) = max_len {
            opts = opts.max_message_size(m);
        }
        let q = py.detach(|| opts.create()).py_err()?;
        Ok(Self {
            q,
            closed: AtomicBool::new(false),
        })
    }

    /// Opens an existing queue.
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None))]
    fn open(py: Python<'_>, name: Option<String>, path: Option<PathBuf>) -> PyResult<Self> {
        let loc = location(name, path)?;
        let q = py.detach(|| Queue::open(loc)).py_err()?;
        Ok(Self {
            q,
            closed: AtomicBool::new(false),
        })
    }

    /// Removes a queue's segment by name or path.
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None))]
    fn remove(name: Option<String>, path: Option<PathBuf>) -> PyResult<()> {
        Queue::remove(&location(name, path)?).py_err()
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
        self.check_open()?;
        let timeout = Self::effective_timeout(block, timeout)?;
        let data = Data::from(data)?;
        let bytes = data.as_slice();
        if self.q.try_push(bytes).py_err()? {
            return Ok(());
        }
        if timeout == Some(Duration::ZERO) {
            return Err(queue_exc(py, "Full"));
        }
        let q = &self.q;
        let bytes_ptr = bytes.as_ptr() as usize;
        let len = bytes.len();
        let r = detached(py, |interrupt| {
            // SAFETY: `data` (which owns or pins these bytes) outlives this call.
            let bytes = unsafe { std::slice::from_raw_parts(bytes_ptr as *const u8, len) };
            q.push(bytes, timeout, interrupt)
        });
        match r {
            Err(e) if e.is_instance_of::<PyTimeoutError>(py) => Err(queue_exc(py, "Full")),
            r => r,
        }
    }

    /// `put(data, block=False)`.
    fn put_nowait(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.put(py, data, false, None)
    }

    /// Sends one message if there is room now; returns whether it was sent.
    fn try_put(&self, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.check_open()?;
        let data = Data::from(data)?;
        self.q.try_push(data.as_slice()).py_err()
    }

    /// Sends every message of `items` in order, waiting for room as needed (at most
    /// `timeout` in all). Returns how many were sent; `queue.Full` if none could be.
    #[pyo3(signature = (items, timeout=None))]
    fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        self.check_open()?;
        let timeout = timeout_arg(timeout)?;
        let datas: Vec<Data<'_>> = items
            .try_iter()?
            .map(|it| Data::from(&it?))
            .collect::<PyResult<_>>()?;
        let max = self.q.max_message_size();
        if let Some(d) = datas.iter().find(|d| d.as_slice().len() as u64 > max) {
            return Err(PyValueError::new_err(format!(
                "a message of {} bytes exceeds the queue's max_message_size of {max} bytes",
                d.as_slice().len()
            )));
        }
        if datas.is_empty() {
            return Ok(0);
        }
        let slices: Vec<(usize, usize)> = datas
            .iter()
            .map(|d| (d.as_slice().as_ptr() as usize, d.as_slice().len()))
            .collect();
        let q = &self.q;
        let r = detached(py, |interrupt| {
            // SAFETY: `datas` (which pins these bytes) outlives this call.
            let items: Vec<&[u8]> = slices
                .iter()
                .map(|&(p, n)| unsafe { std::slice::from_raw_parts(p as *const u8, n) })
                .collect();
            q.push_many(&items, timeout, interrupt)
        });
        match r {
            Err(e) if e.is_instance_of::<PyTimeoutError>(py) => Err(queue_exc(py, "Full")),
            r => r,
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
    ) -> PyResult<Bound<'py, PyAny>> {
        self.check_open()?;
        let timeout = Self::effective_timeout(block, timeout)?;
        let l = self.take_into(py, 1, timeout)?;
        if l.is_empty() {
            return Err(queue_exc(py, "Empty"));
        }
        l.get_item(0)
    }

    /// `get(block=False)`.
    fn get_nowait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, false, None)
    }

    /// Takes one message if there is one now, else returns None.
    fn try_get<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.check_open()?;
        let l = self.take_into(py, 1, Some(Duration::ZERO))?;
        Ok(if l.is_empty() {
            None
        } else {
            Some(l.get_item(0)?)
        })
    }

    /// Takes up to `max_count` messages: waits (at most `timeout`) for the first, then takes
    /// what is there. `queue.Empty` if none arrived in time.
    #[pyo3(signature = (max_count, timeout=None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max_count: i64,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.check_open()?;
        if max_count < 1 {
            return Err(PyValueError::new_err(format!(
                "max_count must be >= 1, not {max_count}"
            )));
        }
        let timeout = timeout_arg(timeout)?;
        let l = self.take_into(py, max_count as usize, timeout)?;
        if l.is_empty() {
            return Err(queue_exc(py, "Empty"));
        }
        Ok(l)
    }

    /// Messages waiting (approximate while others are active).
    fn qsize(&self) -> u64 {
        self.q.len()
    }

    /// True if no message is waiting.
    fn empty(&self) -> bool {
        self.q.is_empty()
    }

    /// True if not even an empty message would fit now.
    fn full(&self) -> bool {
        self.q.is_full_for(0)
    }

    /// Drops every waiting message; returns how many.
    fn clear(&self, py: Python<'_>) -> PyResult<usize> {
        self.check_open()?;
        let q = &self.q;
        py.detach(|| q.clear()).py_err()
    }

    /// Capacity in bytes.
    #[getter]
    fn capacity(&self) -> u64 {
        self.q.capacity()
    }

    /// Largest message in bytes.
    #[getter]
    fn max_message_size(&self) -> u64 {
        self.q.max_message_size()
    }

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Depth, bytes used and attached processes (for `memspace inspect`).
    fn inspect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let info = self.q.info().py_err()?;
        let d = PyDict::new(py);
        d.set_item("kind", "queue")?;
        match self.q.location() {
            Location::Name(n) => d.set_item("name", n)?,
            Location::Path(p) => d.set_item("path", p)?,
        }
        d.set_item("capacity", info.capacity)?;
        d.set_item("max_message_size", info.max_message_size)?;
        d.set_item("messages", info.len)?;
        d.set_item("used_bytes", info.used_bytes)?;
        let att = PyList::empty(py);
        for s in info.attached {
            let e = PyDict::new(py);
            e.set_item("slot", s.slot)?;
            e.set_item("pid", s.pid)?;
            e.set_item("alive", s.alive)?;
            att.append(e)?;
        }
        d.set_item("attached", att)?;
        Ok(d)
    }

    /// Offset of the control block in the segment (tests and tools).
    #[getter]
    fn _control_offset(&self) -> u64 {
        self.q.offsets().0
    }

    /// Offset of the byte ring in the segment (tests and tools).
    #[getter]
    fn _data_offset(&self) -> u64 {
        self.q.offsets().1
    }

    /// Stops using this handle (the queue and its messages stay).
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        let loc = match self.q.location() {
            Location::Name(n) => format!("name={n:?}"),
            Location::Path(p) => format!("path={:?}", p.display().to_string()),
        };
        let state = if self.closed() { ", closed" } else { "" };
        format!("Queue({loc}, capacity={}{state})", self.q.capacity())
    }
}
