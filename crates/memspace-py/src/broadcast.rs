//! `memspace.Broadcast`: argument conversion, GIL release and `queue`-style errors over
//! `memspace::Broadcast`.
//!
//! Speed rule (as for the ring): `put`/`get` first try once with the GIL held (no syscall, no
//! allocation beyond the result); only a call that has to wait releases the GIL, and then
//! checks for signals (Ctrl-C) between the core's wait slices. A handle subscribes when it is
//! opened with `role="subscriber"` (the default of `open`); the publisher role is claimed by
//! `open(role="publisher")` or by the first `put`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use memspace::broadcast::{Message, Overflow, Publisher, Reservation, Subscriber};
use memspace::{Broadcast, BroadcastOptions, Location, Trust};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyMemoryView, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::args::{
    block_timeout_arg, channel_args, interest_arg, location_repr, name_of, path_of, timeout_arg,
    trust_arg, trust_to_py, Data,
};
use crate::error::{full_on_timeout, is_full, queue_exc, IntoPyResult};
use crate::export::{bytes_at, end_block, exported_view, Exported, Keep};
use crate::gil::{detached, lock_unheld};
use crate::handle::{at_location, closing_handle, located_handle, OpenHandle};
use crate::signal::PySignal;

/// What `open(role=...)` asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenRole {
    Subscriber,
    Publisher,
    None,
}

fn role_arg(role: Option<&str>) -> PyResult<OpenRole> {
    match role {
        Some("subscriber") => Ok(OpenRole::Subscriber),
        Some("publisher") => Ok(OpenRole::Publisher),
        None => Ok(OpenRole::None),
        Some(other) => Err(PyValueError::new_err(format!(
            "role must be \"subscriber\", \"publisher\" or None, not {other:?}"
        ))),
    }
}

/// One publisher, many subscribers, each seeing every message.
#[pyclass(module = "memspace", name = "Broadcast", frozen)]
pub struct PyBroadcast {
    bc: OpenHandle<Broadcast>,
    location: Location,
    /// The trust that opens it again (pickling), kept for after `close()`.
    trust: Trust,
    capacity: u64,
    overflow: Overflow,
    tx: Mutex<Option<Publisher>>,
    rx: Mutex<Option<Subscriber>>,
    closed: AtomicBool,
    /// A `reserve()` or `get_view()` is open: other puts/gets on this handle must wait for it.
    reserving: AtomicBool,
    viewing: AtomicBool,
}

impl PyBroadcast {
    fn new(bc: Broadcast) -> Self {
        Self {
            location: bc.location().clone(),
            trust: bc.reopen_trust().clone(),
            capacity: bc.capacity(),
            overflow: bc.overflow(),
            bc: OpenHandle::new(bc, "Broadcast"),
            tx: Mutex::new(None),
            rx: Mutex::new(None),
            closed: AtomicBool::new(false),
            reserving: AtomicBool::new(false),
            viewing: AtomicBool::new(false),
        }
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(PyValueError::new_err("operation on a closed Broadcast"));
        }
        Ok(())
    }

    /// The broadcast (a clone of the handle's), or `ValueError` after `close()`.
    fn bc(&self) -> PyResult<Broadcast> {
        self.bc.get()
    }

    fn tx<'a>(&'a self, py: Python<'_>) -> PyResult<MutexGuard<'a, Option<Publisher>>> {
        self.check_open()?;
        if self.reserving.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err(
                "a reserve() of this Broadcast is still open: commit or abort it first",
            ));
        }
        let mut g = lock_unheld(py, &self.tx);
        // A forked child must not publish as its parent: drop the inherited role (the parent
        // keeps its lock) and claim it again, which fails while the parent lives.
        if g.as_ref().is_some_and(Publisher::is_inherited) {
            *g = None;
        }
        if g.is_none() {
            *g = Some(self.bc()?.publisher().py_err()?);
        }
        Ok(g)
    }

    fn rx<'a>(&'a self, py: Python<'_>) -> PyResult<MutexGuard<'a, Option<Subscriber>>> {
        self.check_open()?;
        if self.viewing.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err(
                "a get_view() of this Broadcast is still open: leave its with-block first",
            ));
        }
        let mut g = lock_unheld(py, &self.rx);
        // A forked child's copy of the subscription is its parent's: subscribe anew (the
        // child sees what is published from now on).
        if g.as_ref().is_some_and(Subscriber::is_inherited) {
            *g = None;
            *g = Some(self.bc()?.subscribe().py_err()?);
        }
        if g.is_none() {
            return Err(PyRuntimeError::new_err(
                "this Broadcast handle is not a subscriber: open it with role=\"subscriber\" \
                 (the default of Broadcast.open)",
            ));
        }
        Ok(g)
    }

    fn subscribe(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock_unheld(py, &self.rx);
        if g.is_none() {
            *g = Some(self.bc()?.subscribe().py_err()?);
        }
        Ok(())
    }

    /// The next message, waiting as allowed; `None` on timeout.
    fn next_message(
        py: Python<'_>,
        rx: &mut Subscriber,
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

    /// Copies the next message into a new `bytes` and consumes it; `None` if there is none in
    /// time. `memspace.Lagged` (overwrite mode) if the publisher lapped this subscriber.
    fn take<'py>(
        py: Python<'py>,
        rx: &mut Subscriber,
        timeout: Option<Duration>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(m) = Self::next_message(py, rx, timeout)? else {
            return Ok(None);
        };
        let out = bytes_at(py, rx.message_ptr(&m), m.len())?;
        rx.validate(&m).py_err()?;
        rx.consume(m);
        rx.release();
        Ok(Some(out))
    }

    fn role_name(&self) -> Option<&'static str> {
        let tx = self.tx.lock().is_ok_and(|g| g.is_some());
        let rx = self.rx.lock().is_ok_and(|g| g.is_some());
        match (tx, rx) {
            (true, true) => Some("both"),
            (true, false) => Some("publisher"),
            (false, true) => Some("subscriber"),
            (false, false) => None,
        }
    }
}

#[pymethods]
impl PyBroadcast {
    /// Creates a broadcast of at least `capacity` bytes (rounded up to a power of two). The
    /// handle holds no role: its first `put` claims the publisher role.
    #[staticmethod]
    #[pyo3(signature = (name=None, capacity=None, *, path=None, max_message_size=None, overflow="block", mode=0o600))]
    fn create(
        py: Python<'_>,
        name: Option<String>,
        capacity: Option<i64>,
        path: Option<PathBuf>,
        max_message_size: Option<i64>,
        overflow: &str,
        mode: i64,
    ) -> PyResult<Self> {
        let overflow = Overflow::parse(overflow).ok_or_else(|| {
            PyValueError::new_err(format!(
                "overflow must be \"block\" or \"overwrite\", not {overflow:?}"
            ))
        })?;
        let a = channel_args(name, capacity, path, max_message_size, mode)?;
        let mut opts = BroadcastOptions::new(a.location, a.capacity)
            .mode(a.mode)
            .overflow(overflow);
        if let Some(m) = a.max_message_size {
            opts = opts.max_message_size(m);
        }
        let bc = py.detach(|| opts.create()).py_err()?;
        Ok(Self::new(bc))
    }

    /// Opens an existing broadcast. `role="subscriber"` (the default) subscribes now: the
    /// handle sees every message published after `open` returns. `role="publisher"` claims the
    /// publisher role now (`memspace.RoleTakenError` while a live process holds it). `None`:
    /// neither (the first `put` claims the publisher role).
    #[staticmethod]
    #[pyo3(
        signature = (name=None, *, path=None, role=Some("subscriber"), trust=None),
        text_signature = "(name=None, *, path=None, role='subscriber', trust=None)"
    )]
    fn open(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        role: Option<&str>,
        trust: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let trust = trust_arg(trust.as_ref())?;
        let role = role_arg(role)?;
        let this =
            at_location(py, name, path, |l| Broadcast::open(l.trusting(trust))).map(Self::new)?;
        match role {
            OpenRole::Subscriber => this.subscribe(py)?,
            OpenRole::Publisher => drop(this.tx(py)?),
            OpenRole::None => {}
        }
        Ok(this)
    }

    /// Pickles as a reference: unpickling opens the same broadcast (with the trust that
    /// accepted it here), subscribed if this handle is (a new subscription, from the moment of
    /// unpickling); a publisher handle's copy claims the role at its first `put`.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let this = slf.get();
        let subscribed = this.rx.lock().is_ok_and(|g| g.is_some());
        let reopen = py
            .import("memspace._memspace")?
            .getattr("_reopen_broadcast")?;
        let args = PyTuple::new(
            py,
            [
                name_of(&this.location).into_py_any(py)?,
                path_of(&this.location).into_py_any(py)?,
                subscribed.then_some("subscriber").into_py_any(py)?,
                trust_to_py(py, &this.trust)?,
            ],
        )?;
        Ok((reopen, args))
    }

    /// Sends one message (a bytes-like object) to every subscriber. Block mode: waits for the
    /// slowest live subscriber unless `block` is false or `timeout` elapses (then
    /// `queue.Full`); overwrite mode never waits.
    #[pyo3(signature = (data, block=true, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let timeout = block_timeout_arg(block, timeout)?;
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

    /// Takes the next message; waits unless `block` is false or `timeout` elapses (then
    /// `queue.Empty`). Overwrite mode: `memspace.Lagged` if the publisher lapped this
    /// subscriber (its `count` says how many messages it missed; the next get continues with
    /// the oldest message still there).
    #[pyo3(signature = (block=true, timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let timeout = block_timeout_arg(block, timeout)?;
        let mut g = self.rx(py)?;
        let rx = g.as_mut().expect("checked above");
        Self::take(py, rx, timeout)?.ok_or_else(|| queue_exc(py, "Empty"))
    }

    /// `get(block=False)`.
    fn get_nowait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.get(py, false, None)
    }

    /// Takes the next message if there is one now, else returns None (`memspace.Lagged` as
    /// for `get`).
    fn try_get<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut g = self.rx(py)?;
        let rx = g.as_mut().expect("checked above");
        Self::take(py, rx, Some(Duration::ZERO))
    }

    /// Takes up to `max_count` messages: waits (at most `timeout`) for the first, then takes
    /// what is there without waiting. `queue.Empty` if none arrived in time; a lap noticed
    /// after the first message ends the batch, and the next call raises `memspace.Lagged`.
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
        let rx = g.as_mut().expect("checked above");
        let Some(first) = Self::next_message(py, rx, timeout)? else {
            return Err(queue_exc(py, "Empty"));
        };
        let out = PyList::empty(py);
        let mut m = first;
        let result = (|| -> PyResult<()> {
            loop {
                let b = bytes_at(py, rx.message_ptr(&m), m.len())?;
                if out.is_empty() {
                    rx.validate(&m).py_err()?;
                } else if !rx.is_intact(&m).py_err()? {
                    return Ok(());
                }
                out.append(b)?;
                rx.consume(m);
                if out.len() as i64 >= max_count {
                    return Ok(());
                }
                match rx.peek_more().py_err()? {
                    Some(next) => m = next,
                    None => return Ok(()),
                }
            }
        })();
        rx.release();
        result.map(|()| out)
    }

    /// A context manager whose `__enter__` waits (at most `timeout`) for the next message and
    /// returns a read-only memoryview of it in place; leaving the block consumes it (unless an
    /// exception left it, or a view of it is still exported: then it stays for the next get).
    /// Overwrite mode: the publisher does not wait for the block; if it wrote over the message
    /// while the block ran, leaving the block raises `memspace.Lagged` (discard what was read).
    #[pyo3(signature = (timeout=None))]
    fn get_view(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<PyBroadcastView> {
        let timeout = timeout_arg(timeout)?;
        slf.get().check_open()?;
        Ok(PyBroadcastView {
            bc: slf.clone().unbind(),
            timeout,
            state: Mutex::new(None),
        })
    }

    /// A context manager whose `__enter__` reserves room for a message of `n` bytes and
    /// returns a writable memoryview of it in place; leaving the block publishes it (an
    /// exception abandons it instead).
    #[pyo3(signature = (n, timeout=None))]
    fn reserve(
        slf: &Bound<'_, Self>,
        n: i64,
        timeout: Option<f64>,
    ) -> PyResult<PyBroadcastReservation> {
        let timeout = timeout_arg(timeout)?;
        let n = usize::try_from(n)
            .map_err(|_| PyValueError::new_err(format!("n must be >= 0, not {n}")))?;
        slf.get().check_open()?;
        Ok(PyBroadcastReservation {
            bc: slf.clone().unbind(),
            n,
            timeout,
            state: Mutex::new(None),
        })
    }

    /// Capacity in bytes (a power of two).
    #[getter]
    fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Largest message in bytes.
    #[getter]
    fn max_message_size(&self) -> PyResult<u64> {
        Ok(self.bc()?.max_message_size())
    }

    /// `"block"` or `"overwrite"` (fixed at creation, so known after `close()` too).
    #[getter]
    fn overflow(&self) -> &'static str {
        self.overflow.name()
    }

    /// The roles this handle holds: "publisher", "subscriber", "both" or None.
    #[getter]
    fn role(&self) -> Option<&'static str> {
        self.role_name()
    }

    /// Messages published that this subscriber has not read yet (None if the handle is not a
    /// subscriber).
    #[getter]
    fn lag(&self, py: Python<'_>) -> PyResult<Option<u64>> {
        self.check_open()?;
        let g = lock_unheld(py, &self.rx);
        g.as_ref().map(|rx| rx.lag().py_err()).transpose()
    }

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Geometry, the publisher's position and every live subscriber's lag (for `memspace
    /// inspect`).
    fn inspect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let bc = self.bc()?;
        let info = py
            .detach(|| bc.check_intact().and_then(|()| bc.info()))
            .py_err()?;
        let d = PyDict::new(py);
        d.set_item("kind", "broadcast")?;
        d.set_item("name", self.name())?;
        d.set_item("path", self.path())?;
        d.set_item("capacity", info.capacity)?;
        d.set_item("max_message_size", info.max_message_size)?;
        d.set_item("overflow", info.overflow.name())?;
        d.set_item("head", info.head)?;
        d.set_item("published", info.published)?;
        d.set_item("oldest", info.oldest)?;
        d.set_item("publisher_alive", info.publisher_alive)?;
        let subs = PyList::empty(py);
        for s in &info.subscribers {
            let e = PyDict::new(py);
            e.set_item("slot", s.slot)?;
            e.set_item("pid", s.pid)?;
            e.set_item("lag_messages", s.lag_messages)?;
            e.set_item("lag_bytes", s.lag_bytes)?;
            e.set_item("next_index", s.next_index)?;
            e.set_item("missed", s.missed)?;
            subs.append(e)?;
        }
        d.set_item("subscribers", subs)?;
        d.set_item("dead_subscribers", info.dead_subscribers)?;
        Ok(d)
    }

    /// The eventcount subscribers (`"readable"`) or a blocking publisher (`"writable"`)
    /// sleep on, for `memspace.aio` (internal). It keeps the mapping alive while it exists.
    fn _signal(&self, interest: &str) -> PyResult<PySignal> {
        Ok(PySignal::new(self.bc()?.signal(interest_arg(interest)?)))
    }

    /// Offset of the control block (the lock area) in the segment (tests and tools).
    #[getter]
    fn _control_offset(&self) -> PyResult<u64> {
        Ok(self.bc()?.control_offset())
    }

    /// Offset of the byte ring in the segment (tests and tools).
    #[getter]
    fn _data_offset(&self) -> PyResult<u64> {
        Ok(self.bc()?.data_offset())
    }

    /// Gives up the publisher role and the subscription and detaches: the attachment slot and
    /// the mapping are released at once (or, while a zero-copy view of a message is alive,
    /// when it is dropped). The broadcast and its messages stay. Closing twice does nothing.
    fn close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Release);
        // The broadcast first: a role claimed after this point finds the handle closed.
        drop(self.bc.close());
        if let Some(mut tx) = lock_unheld(py, &self.tx).take() {
            tx.flush();
        }
        drop(lock_unheld(py, &self.rx).take());
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!(
            "Broadcast({}, capacity={}, overflow={:?}{state})",
            location_repr(&self.location),
            self.capacity,
            self.overflow.name()
        )
    }
}

located_handle!(
    PyBroadcast,
    remove = Broadcast::remove,
    |s| &s.location,
    own_reduce
);
closing_handle!(PyBroadcast, |s, py| {
    s.close(py);
    PyResult::Ok(())
});

/// Unpickling helper: `Broadcast.open(name, path=path, role=role, trust=trust)`.
#[pyfunction]
#[pyo3(signature = (name, path, role, trust=None))]
pub(crate) fn _reopen_broadcast<'py>(
    py: Python<'py>,
    name: Option<String>,
    path: Option<PathBuf>,
    role: Option<&str>,
    trust: Option<Bound<'py, PyAny>>,
) -> PyResult<PyBroadcast> {
    PyBroadcast::open(py, name, path, role, trust)
}

/// The context manager returned by `Broadcast.get_view()`.
#[pyclass(module = "memspace._memspace", name = "BroadcastView", frozen)]
pub struct PyBroadcastView {
    bc: Py<PyBroadcast>,
    timeout: Option<Duration>,
    state: Mutex<Option<(Message, Exported)>>,
}

#[pymethods]
impl PyBroadcastView {
    fn __enter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyMemoryView>> {
        let bc = self.bc.get();
        let mut g = bc.rx(py)?;
        let rx = g.as_mut().expect("checked above");
        let Some(m) = PyBroadcast::next_message(py, rx, self.timeout)? else {
            return Err(queue_exc(py, "Empty"));
        };
        let (exported, mv) = exported_view(
            py,
            Keep::Broadcast(bc.bc()?),
            rx.message_ptr(&m),
            m.len(),
            true,
        )?;
        bc.viewing.store(true, Ordering::Release);
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
        let bc = self.bc.get();
        let Some((m, mv)) = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return Ok(false);
        };
        if end_block(py, &mv, &bc.viewing, exc_type, "message was not consumed")? {
            let mut g = bc.rx(py)?;
            let rx = g.as_mut().expect("checked above");
            // Overwrite mode: everything read in the block is validated here.
            rx.validate(&m).py_err()?;
            rx.consume(m);
            rx.release();
        }
        Ok(false)
    }
}

/// The context manager returned by `Broadcast.reserve()`.
#[pyclass(module = "memspace._memspace", name = "BroadcastReservation", frozen)]
pub struct PyBroadcastReservation {
    bc: Py<PyBroadcast>,
    n: usize,
    timeout: Option<Duration>,
    state: Mutex<Option<(Reservation, Exported)>>,
}

#[pymethods]
impl PyBroadcastReservation {
    fn __enter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyMemoryView>> {
        let bc = self.bc.get();
        let mut g = bc.tx(py)?;
        let tx = g.as_mut().expect("claimed above");
        let n = self.n;
        let timeout = self.timeout;
        let r = full_on_timeout(
            py,
            detached(py, |interrupt| tx.reserve(n, timeout, interrupt)),
        )?;
        let (exported, mv) = exported_view(
            py,
            Keep::Broadcast(bc.bc()?),
            tx.reservation_ptr(&r),
            r.len(),
            false,
        )?;
        bc.reserving.store(true, Ordering::Release);
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
        let bc = self.bc.get();
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
            &bc.reserving,
            exc_type,
            "reserved message was abandoned",
        )? {
            let mut g = bc.tx(py)?;
            g.as_mut().expect("claimed above").commit(r);
        }
        Ok(false)
    }
}
