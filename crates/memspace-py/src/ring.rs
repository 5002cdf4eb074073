//! `memspace.Ring`: argument conversion, GIL release and `queue`-style errors over
//! `memspace::Ring`.
//!
//! Speed rule: `put`/`get` first try once with the GIL held (no syscall, no allocation beyond
//! the result); only a call that has to wait releases the GIL, and then checks for signals
//! (Ctrl-C) between the core's wait slices. Roles are claimed on first use unless `open` was
//! given one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use memspace::spsc::{Consumer, Message, Producer, Reservation, Role};
use memspace::{Location, Ring, RingOptions};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyMemoryView};

use crate::args::{block_timeout_arg, channel_args, location_repr, timeout_arg, trust_arg, Data};
use crate::error::{full_on_timeout, is_full, queue_exc, IntoPyResult};
use crate::export::{bytes_at, end_block, exported_view, Exported, Keep};
use crate::gil::{detached, lock_unheld};
use crate::handle::{at_location, closing_handle, located_handle, OpenHandle};
use crate::object::{aligned_copy, decode_copy, unpickle, write_parts, Pickled, DETACH_COPY};
use crate::value::{as_ref, to_owned_value, to_py};

/// A single-producer/single-consumer ring between processes.
#[pyclass(module = "memspace", name = "Ring", frozen)]
pub struct PyRing {
    ring: OpenHandle<Ring>,
    location: Location,
    /// The trust that opens it again (pickling), kept for after `close()`.
    trust: memspace::Trust,
    capacity: u64,
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
            location: ring.location().clone(),
            trust: ring.reopen_trust().clone(),
            capacity: ring.capacity(),
            ring: OpenHandle::new(ring, "Ring"),
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

    /// The ring (a clone of the handle's), or `ValueError` after `close()`.
    fn ring(&self) -> PyResult<Ring> {
        self.ring.get()
    }

    fn tx<'a>(&'a self, py: Python<'_>) -> PyResult<MutexGuard<'a, Option<Producer>>> {
        self.check_open()?;
        if self.reserving.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err(
                "a reserve() of this Ring is still open: commit or abort it first",
            ));
        }
        let mut g = lock_unheld(py, &self.tx);
        // A forked child must not write as its parent's producer: drop the inherited role
        // (the parent keeps its lock) and claim it again, which fails while the parent lives.
        if g.as_ref().is_some_and(Producer::is_inherited) {
            *g = None;
        }
        if g.is_none() {
            *g = Some(self.ring()?.producer().py_err()?);
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
        let mut g = lock_unheld(py, &self.rx);
        if g.as_ref().is_some_and(Consumer::is_inherited) {
            *g = None;
        }
        if g.is_none() {
            *g = Some(self.ring()?.consumer().py_err()?);
        }
        Ok(g)
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

    /// Reserves `n` bytes: first without waiting (GIL held), then, unless `timeout` is zero,
    /// waiting with the GIL released; `queue.Full` if there is no room in time.
    fn reserve_now(
        py: Python<'_>,
        tx: &mut Producer,
        n: usize,
        timeout: Option<Duration>,
    ) -> PyResult<Reservation> {
        match tx.reserve(n, Some(Duration::ZERO), &mut || false) {
            Err(e) if e.is_timeout() && timeout != Some(Duration::ZERO) => {}
            r => return full_on_timeout(py, r.py_err()),
        }
        full_on_timeout(
            py,
            detached(py, |interrupt| tx.reserve(n, timeout, interrupt)),
        )
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
        let a = channel_args(name, capacity, path, max_message_size, mode)?;
        let mut opts = RingOptions::new(a.location, a.capacity).mode(a.mode);
        if let Some(m) = a.max_message_size {
            opts = opts.max_message_size(m);
        }
        let ring = py.detach(|| opts.create()).py_err()?;
        Ok(Self::new(ring))
    }

    /// Opens an existing ring; `role` ("producer" or "consumer") claims that role now,
    /// otherwise the first `put` / `get` claims it.
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None, role=None, trust=None))]
    fn open(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        role: Option<&str>,
        trust: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let trust = trust_arg(trust.as_ref())?;
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
        let this = at_location(py, name, path, |l| Ring::open(l.trusting(trust))).map(Self::new)?;
        match role {
            Some(Role::Producer) => drop(this.tx(py)?),
            Some(Role::Consumer) => drop(this.rx(py)?),
            None => {}
        }
        Ok(this)
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

    /// Takes one message; waits unless `block` is false or `timeout` elapses (then
    /// `queue.Empty`).
    #[pyo3(signature = (block=true, timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let timeout = block_timeout_arg(block, timeout)?;
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

    /// Takes up to `max_count` messages: waits (unless `block` is false; at most `timeout`)
    /// for the first, then takes what is there without waiting. `queue.Empty` if none
    /// arrived in time.
    #[pyo3(signature = (max_count, block=true, timeout=None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max_count: i64,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        if max_count < 1 {
            return Err(PyValueError::new_err(format!(
                "max_count must be >= 1, not {max_count}"
            )));
        }
        let timeout = block_timeout_arg(block, timeout)?;
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
    /// `memspace.View`, so that `get_value` returns it with its type. Waits for room as
    /// `put` does.
    #[pyo3(signature = (value, block=true, timeout=None))]
    fn put_value(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        block_timeout_arg(block, timeout)?;
        let owned = to_owned_value(value, None)?;
        let mut buf = Vec::new();
        memspace::view::codec::encode(&as_ref(&owned)?, &mut buf).py_err()?;
        self.put(py, PyBytes::new(py, &buf).as_any(), block, timeout)
    }

    /// Takes one value sent with `put_value`, with its type; waits as `get` does
    /// (`queue.Empty`). A message that is not a value raises `ValueError` and is left in the
    /// ring for a plain `get()`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get_value(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let timeout = block_timeout_arg(block, timeout)?;
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
        to_py(py, value)
    }

    /// Sends any picklable object (pickle protocol 5), like `Queue.put_object`: out-of-band
    /// buffers (contiguous numpy arrays, `pickle.PickleBuffer`) are copied straight into
    /// the message, not pickled. A pickling error or an object too large for the ring
    /// raises before anything is sent; otherwise waits for room as `put` does.
    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put_object(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let timeout = block_timeout_arg(block, timeout)?;
        self.check_open()?;
        // Pickling runs Python code: done before this handle's producer is locked.
        let pickled = Pickled::new(py, obj)?;
        let mut g = self.tx(py)?;
        let tx = g.as_mut().expect("claimed above");
        pickled.check_fits(self.ring()?.max_message_size(), "ring")?;
        let r = Self::reserve_now(py, tx, pickled.total(), timeout)?;
        let (layout, slices) = (pickled.layout(), pickled.slices());
        let tx_ref: &Producer = tx;
        let write = || write_parts(layout, &slices, |at, bytes| tx_ref.write(&r, at, bytes));
        if r.len() >= DETACH_COPY {
            py.detach(write);
        } else {
            write();
        }
        tx.commit(r);
        Ok(())
    }

    /// Takes the next message sent by `put_object` and unpickles it (its out-of-band buffers
    /// come back as writable, 64-byte aligned memory: one copy out of the ring). Waits as
    /// `get` does (`queue.Empty`). A message not sent by `put_object` raises `ValueError`
    /// and is left in the ring for a plain `get()`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get_object(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let timeout = block_timeout_arg(block, timeout)?;
        let mut g = self.rx(py)?;
        let rx = g.as_mut().expect("claimed above");
        let Some(m) = Self::next_message(py, rx, timeout)? else {
            return Err(queue_exc(py, "Empty"));
        };
        let len = m.len();
        // SAFETY: `m` is a peeked message of `len` bytes at `message_ptr`, which the producer
        // does not write until it is consumed and released (after this call).
        let (ba, pad) = unsafe { aligned_copy(py, rx.message_ptr(&m), len)? };
        // The copy is ours alone: it is validated without trusting the ring.
        let ranges = match decode_copy(&ba, pad, len) {
            Ok(r) => r,
            Err(why) => {
                rx.release();
                return Err(PyValueError::new_err(format!(
                    "get_object(): the next message ({len} bytes) was not sent by put_object \
                     ({why}); it is left in the ring (take it with get())"
                )));
            }
        };
        rx.consume(m);
        rx.release();
        drop(g);
        // Unpickling runs Python code: done after this handle's consumer is unlocked.
        unpickle(py, &ba, pad, &ranges)
    }

    /// Drops every message waiting now (as the consumer: claims the consumer role); returns
    /// how many.
    fn clear(&self, py: Python<'_>) -> PyResult<u64> {
        let mut g = self.rx(py)?;
        g.as_mut().expect("claimed above").clear().py_err()
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

    /// Messages waiting (exact when both sides are idle); `used` gives their bytes.
    fn __len__(&self) -> PyResult<usize> {
        // At most the capacity (checked by the core), so it fits.
        Ok(self.ring()?.len().py_err()? as usize)
    }

    /// True if no message is waiting.
    fn empty(&self) -> PyResult<bool> {
        Ok(self.ring()?.is_empty())
    }

    /// True if not even an empty message would fit now.
    fn full(&self) -> PyResult<bool> {
        Ok(self.ring()?.is_full())
    }

    /// Capacity in bytes (a power of two).
    #[getter]
    fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes the waiting messages take (each 8 bytes of header plus its length rounded up
    /// to 8, and the padding at the end of a lap); `len(ring)` counts them.
    #[getter]
    fn used(&self) -> PyResult<u64> {
        Ok(self.ring()?.used_bytes())
    }

    /// Bytes free for new messages (`capacity - used`).
    #[getter]
    fn free(&self) -> PyResult<u64> {
        Ok(self.ring()?.free_bytes())
    }

    /// Largest message in bytes.
    #[getter]
    fn max_message_size(&self) -> PyResult<u64> {
        Ok(self.ring()?.max_message_size())
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

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Fill level, geometry and who holds the roles (for `memspace inspect`).
    fn inspect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let ring = self.ring()?;
        ring.check_intact().py_err()?;
        let d = PyDict::new(py);
        d.set_item("kind", "ring")?;
        d.set_item("name", self.name())?;
        d.set_item("path", self.path())?;
        d.set_item("capacity", ring.capacity())?;
        d.set_item("max_message_size", ring.max_message_size())?;
        d.set_item("messages", ring.len().py_err()?)?;
        d.set_item("used_bytes", ring.used_bytes())?;
        d.set_item("free_bytes", ring.free_bytes())?;
        d.set_item("producer_alive", ring.role_held(Role::Producer).py_err()?)?;
        d.set_item("consumer_alive", ring.role_held(Role::Consumer).py_err()?)?;
        Ok(d)
    }

    /// Offset of the control block in the segment (tests and tools).
    #[getter]
    fn _control_offset(&self) -> PyResult<u64> {
        Ok(self.ring()?.control_offset())
    }

    /// Offset of the byte ring in the segment (tests and tools).
    #[getter]
    fn _data_offset(&self) -> PyResult<u64> {
        Ok(self.ring()?.data_offset())
    }

    /// Gives up the roles and detaches: the attachment slot and the mapping are released at
    /// once (or, while a zero-copy view of a message is alive, when it is dropped). The ring
    /// and its messages stay. Closing twice does nothing.
    fn close(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Release);
        // The ring first: a role claimed after this point finds the handle closed.
        drop(self.ring.close());
        if let Some(mut tx) = lock_unheld(py, &self.tx).take() {
            tx.flush();
        }
        if let Some(mut rx) = lock_unheld(py, &self.rx).take() {
            rx.release();
        }
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!(
            "Ring({}, capacity={}{state})",
            location_repr(&self.location),
            self.capacity
        )
    }
}

located_handle!(
    PyRing,
    remove = Ring::remove,
    |s| &s.location,
    trust = &s.trust
);
closing_handle!(PyRing, |s, py| {
    s.close(py);
    PyResult::Ok(())
});

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
            Keep::Ring(ring.ring()?),
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
            Keep::Ring(ring.ring()?),
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
