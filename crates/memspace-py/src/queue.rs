//! `memspace.Queue`: the MPMC queue's Python face (argument conversion, GIL release, error
//! mapping). Fast paths run with the GIL held; waits release it and check for signals.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use memspace::mpmc::{Attempt, Message, Queue, QueueOptions, Reservation};
use memspace::Location;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyMemoryView};

use crate::args::{block_timeout_arg, channel_args, location_repr, timeout_arg, trust_arg, Data};
use crate::error::{full_on_timeout, is_busy, is_full, queue_exc, IntoPyResult};
use crate::export::{bytes_at, exported_view, release_view, Exported, Keep};
use crate::gil::detached;
use crate::handle::{at_location, closing_handle, located_handle, OpenHandle};
use crate::object::{aligned_copy, decode_copy, unpickle, Pickled, DETACH_COPY};

/// A multi-producer/multi-consumer queue between processes.
#[pyclass(module = "memspace", name = "Queue", frozen)]
pub struct PyQueue {
    q: OpenHandle<Queue>,
    location: Location,
    /// The trust that opens it again (pickling), kept for after `close()`.
    trust: memspace::Trust,
    capacity: u64,
}

/// Takes up to `max` messages: first without waiting (GIL held), then, unless `timeout` is
/// zero, waiting with the GIL released.
fn take_messages(
    py: Python<'_>,
    q: &Queue,
    max: usize,
    timeout: Option<Duration>,
) -> PyResult<Vec<Message>> {
    match q.take_now(max).py_err()? {
        Attempt::Done(ms) => Ok(ms),
        Attempt::Nothing if timeout == Some(Duration::ZERO) => Ok(Vec::new()),
        Attempt::Nothing | Attempt::Busy | Attempt::Pending => wait_messages(py, q, max, timeout),
    }
}

/// `take_messages` for one message (no `Vec` on the fast path).
fn take_message(py: Python<'_>, q: &Queue, timeout: Option<Duration>) -> PyResult<Option<Message>> {
    match q.take_one_now().py_err()? {
        Attempt::Done(m) => Ok(Some(m)),
        Attempt::Nothing if timeout == Some(Duration::ZERO) => Ok(None),
        Attempt::Nothing | Attempt::Busy | Attempt::Pending => {
            Ok(wait_messages(py, q, 1, timeout)?.pop())
        }
    }
}

/// The slow path of a take, GIL released. With a zero timeout (after Busy or Pending) it
/// waits out the other consumer's take, or checks whether the producer in the way is alive,
/// so that "empty" always means empty.
fn wait_messages(
    py: Python<'_>,
    q: &Queue,
    max: usize,
    timeout: Option<Duration>,
) -> PyResult<Vec<Message>> {
    detached(py, |interrupt| {
        let mut v = Vec::new();
        q.take_many(max, timeout, interrupt, &mut v)?;
        Ok(v)
    })
}

/// Claims `len` bytes: first without waiting (GIL held), then waiting with the GIL released;
/// `queue.Full` if there is no room in time. A zero timeout still waits out another
/// producer's claim and reclaims dead consumers' space (briefly, GIL released), so
/// `queue.Full` always means "no room", never "someone else was claiming".
fn claim(
    py: Python<'_>,
    q: &Queue,
    len: usize,
    timeout: Option<Duration>,
) -> PyResult<Reservation> {
    // Nothing (no room) falls through too: the waiting call first reclaims the space of
    // consumers that died holding messages, so `queue.Full` means full.
    if let Attempt::Done(r) = q.claim_now(len).py_err()? {
        return Ok(r);
    }
    full_on_timeout(
        py,
        detached(py, |interrupt| q.claim(len, timeout, interrupt)),
    )
}

/// Writes a reservation's payload with `write`, releasing the GIL for a large one (the caller
/// keeps the sources pinned: they outlive this call).
fn fill(
    py: Python<'_>,
    q: &Queue,
    r: &Reservation,
    write: impl FnOnce(&Queue, &Reservation) + Send,
) {
    if r.len() >= DETACH_COPY {
        py.detach(|| write(q, r));
    } else {
        write(q, r);
    }
}

/// Takes one message as a new `bytes` (no list in between: the `get` fast path).
fn take_one<'py>(
    py: Python<'py>,
    q: &Queue,
    timeout: Option<Duration>,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let Some(m) = take_message(py, q, timeout)? else {
        return Ok(None);
    };
    let b = bytes_at(py, q.message_ptr(&m), m.len());
    q.release(m).py_err()?;
    b.map(Some)
}

fn take_into<'py>(
    py: Python<'py>,
    q: &Queue,
    max: usize,
    timeout: Option<Duration>,
) -> PyResult<Bound<'py, PyList>> {
    let ms = take_messages(py, q, max, timeout)?;
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

impl PyQueue {
    fn new(q: Queue) -> Self {
        Self {
            location: q.location().clone(),
            trust: q.reopen_trust().clone(),
            capacity: q.capacity(),
            q: OpenHandle::new(q, "Queue"),
        }
    }

    /// The queue (a clone of the handle's), or `ValueError` after `close()`.
    fn q(&self) -> PyResult<Queue> {
        self.q.get()
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
        let a = channel_args(name, capacity, path, max_message_size, mode)?;
        let mut opts = QueueOptions::new(a.location, a.capacity).mode(a.mode);
        if let Some(m) = a.max_message_size {
            opts = opts.max_message_size(m);
        }
        let q = py.detach(|| opts.create()).py_err()?;
        Ok(Self::new(q))
    }

    /// Opens an existing queue (`trust`: whose segment to accept).
    #[staticmethod]
    #[pyo3(signature = (name=None, *, path=None, trust=None))]
    fn open(
        py: Python<'_>,
        name: Option<String>,
        path: Option<PathBuf>,
        trust: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let trust = trust_arg(trust.as_ref())?;
        at_location(py, name, path, |l| Queue::open(l.trusting(trust))).map(Self::new)
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
        let q = self.q()?;
        let timeout = block_timeout_arg(block, timeout)?;
        let data = Data::from(data)?;
        let bytes = data.as_slice();
        let r = claim(py, &q, bytes.len(), timeout)?;
        fill(py, &q, &r, |q, r| q.write(r, 0, bytes));
        q.commit(r).py_err()
    }

    /// `put(data, block=False)`.
    fn put_nowait(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.put(py, data, false, None)
    }

    /// Sends one message if there is room now; returns whether it was sent (False: no room,
    /// or the producer lock kept by another process throughout the 20 ms grace).
    fn try_put(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        let q = self.q()?;
        let data = Data::from(data)?;
        let bytes = data.as_slice();
        match claim(py, &q, bytes.len(), Some(Duration::ZERO)) {
            Ok(r) => {
                fill(py, &q, &r, |q, r| q.write(r, 0, bytes));
                q.commit(r).py_err()?;
                Ok(true)
            }
            Err(e) if is_full(py, &e) => Ok(false),
            Err(e) => Err(e),
        }
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
        let q = self.q()?;
        let timeout = timeout_arg(timeout)?;
        let datas: Vec<Data<'_>> = items
            .try_iter()?
            .map(|it| Data::from(&it?))
            .collect::<PyResult<_>>()?;
        let max = q.max_message_size();
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
        let r = detached(py, |interrupt| {
            // SAFETY: `datas` (which pins these bytes) outlives this call.
            let items: Vec<&[u8]> = slices
                .iter()
                .map(|&(p, n)| unsafe { std::slice::from_raw_parts(p as *const u8, n) })
                .collect();
            q.push_many(&items, timeout, interrupt)
        });
        full_on_timeout(py, r)
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
        let q = self.q()?;
        let timeout = block_timeout_arg(block, timeout)?;
        take_one(py, &q, timeout)?.ok_or_else(|| queue_exc(py, "Empty"))
    }

    /// `get(block=False)`.
    fn get_nowait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.get(py, false, None)
    }

    /// Takes one message if there is one now, else returns None (none committed, or the
    /// consumer lock kept by another process throughout the 20 ms grace).
    fn try_get<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let q = self.q()?;
        match take_one(py, &q, Some(Duration::ZERO)) {
            Err(e) if is_busy(py, &e) => Ok(None),
            r => r,
        }
    }

    /// Takes up to `max_count` messages: waits (unless `block` is false; at most `timeout`)
    /// for the first, then takes what is there. `queue.Empty` if none arrived in time.
    #[pyo3(signature = (max_count, block=true, timeout=None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max_count: i64,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let q = self.q()?;
        if max_count < 1 {
            return Err(PyValueError::new_err(format!(
                "max_count must be >= 1, not {max_count}"
            )));
        }
        let timeout = block_timeout_arg(block, timeout)?;
        let l = take_into(py, &q, max_count as usize, timeout)?;
        if l.is_empty() {
            return Err(queue_exc(py, "Empty"));
        }
        Ok(l)
    }

    /// A context manager whose `__enter__` takes the next message (waiting at most
    /// `timeout`, then `queue.Empty`) and returns a read-only memoryview of it in place. The
    /// message is taken on entry: leaving the block, normally or by an exception, hands its
    /// space back. A view of it still exported at the end of the block (e.g. a numpy array)
    /// is a `BufferError`; the space then comes back when the last view is dropped.
    #[pyo3(signature = (timeout=None))]
    fn get_view(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<PyQueueView> {
        let timeout = timeout_arg(timeout)?;
        slf.get().q()?;
        Ok(PyQueueView {
            queue: slf.clone().unbind(),
            timeout,
            state: Mutex::new(None),
        })
    }

    /// Sends any picklable object (pickle protocol 5). Out-of-band buffers (numpy arrays,
    /// `pickle.PickleBuffer`) are copied straight into the message, not pickled. A pickling
    /// error or an oversize object raises before anything is sent.
    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put_object(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let q = self.q()?;
        let timeout = block_timeout_arg(block, timeout)?;
        let pickled = Pickled::new(py, obj)?;
        pickled.check_fits(q.max_message_size(), "queue")?;
        let r = claim(py, &q, pickled.total(), timeout)?;
        let slices = pickled.slices();
        let layout = pickled.layout();
        fill(py, &q, &r, |q, r| q.write_parts(r, layout, &slices));
        q.commit(r).py_err()
    }

    /// Takes the next message sent by `put_object` and unpickles it; its out-of-band buffers
    /// come back as writable memory (one copy out of the queue, no unpickling of their
    /// bytes). `queue.Empty` as for `get`. A message not sent by `put_object` is a
    /// `ValueError` (it is consumed). Unpickling runs code chosen by whoever wrote the
    /// message: `open()` refuses a queue another user made or may write, unless `trust=`
    /// says otherwise.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get_object(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let q = self.q()?;
        let timeout = block_timeout_arg(block, timeout)?;
        let Some(m) = take_message(py, &q, timeout)? else {
            return Err(queue_exc(py, "Empty"));
        };
        let len = m.len();
        // SAFETY: `m` is a taken message of `len` bytes at `message_ptr`, which nobody writes
        // until it is released just below.
        let copied = unsafe { aligned_copy(py, q.message_ptr(&m), len) };
        q.release(m).py_err()?;
        drop(q);
        let (ba, pad) = copied?;
        // The copy is ours alone: it is validated and sliced without trusting the queue.
        let ranges = decode_copy(&ba, pad, len).map_err(|why| {
            PyValueError::new_err(format!(
                "get_object(): the message ({len} bytes) was not sent by put_object ({why}); \
                 it has been consumed"
            ))
        })?;
        unpickle(py, &ba, pad, &ranges)
    }

    /// Messages waiting (approximate while others are active).
    fn qsize(&self) -> PyResult<u64> {
        Ok(self.q()?.len())
    }

    /// True if no message is waiting.
    fn empty(&self) -> PyResult<bool> {
        Ok(self.q()?.is_empty())
    }

    /// True if not even an empty message would fit now.
    fn full(&self) -> PyResult<bool> {
        Ok(self.q()?.is_full_for(0))
    }

    /// Bytes the waiting messages take in the queue (each 8 bytes of header plus its length
    /// rounded up to 8); `qsize()` counts them.
    #[getter]
    fn used(&self) -> PyResult<u64> {
        Ok(self.q()?.used_bytes())
    }

    /// Drops every waiting message; returns how many.
    fn clear(&self, py: Python<'_>) -> PyResult<usize> {
        let q = self.q()?;
        py.detach(|| q.clear()).py_err()
    }

    /// Capacity in bytes.
    #[getter]
    fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Largest message in bytes.
    #[getter]
    fn max_message_size(&self) -> PyResult<u64> {
        Ok(self.q()?.max_message_size())
    }

    /// True after `close()`.
    #[getter]
    fn closed(&self) -> bool {
        self.q.is_closed()
    }

    /// Depth, bytes used and attached processes (for `memspace inspect`).
    fn inspect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let q = self.q()?;
        let info = q.info().py_err()?;
        let d = PyDict::new(py);
        d.set_item("kind", "queue")?;
        match q.location() {
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
    fn _control_offset(&self) -> PyResult<u64> {
        Ok(self.q()?.offsets().0)
    }

    /// Offset of the byte ring in the segment (tests and tools).
    #[getter]
    fn _data_offset(&self) -> PyResult<u64> {
        Ok(self.q()?.offsets().1)
    }

    /// Detaches this handle: its attachment slot and mapping are released at once (or, if a
    /// `get_view()` message or an operation in another thread still uses them, when that
    /// ends). The queue and its messages stay. Closing twice does nothing.
    fn close(&self) {
        drop(self.q.close());
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!(
            "Queue({}, capacity={}{state})",
            location_repr(&self.location),
            self.capacity
        )
    }
}

located_handle!(
    PyQueue,
    remove = Queue::remove,
    |s| &s.location,
    trust = &s.trust
);
closing_handle!(PyQueue, |s, _py| {
    s.close();
    PyResult::Ok(())
});

/// The context manager returned by `Queue.get_view()`.
#[pyclass(module = "memspace._memspace", name = "QueueView", frozen)]
pub struct PyQueueView {
    queue: Py<PyQueue>,
    timeout: Option<Duration>,
    state: Mutex<Option<Exported>>,
}

impl PyQueueView {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, Option<Exported>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl PyQueueView {
    fn __enter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyMemoryView>> {
        let q = self.queue.get().q()?;
        let already_open = || {
            PyValueError::new_err(
                "this get_view() block is already open (call get_view() again for another)",
            )
        };
        // The state lock is never held while waiting (a wait releases the GIL, and another
        // thread holding the GIL could then block on this lock).
        if self.lock_state().is_some() {
            return Err(already_open());
        }
        let Some(m) = take_message(py, &q, self.timeout)? else {
            return Err(queue_exc(py, "Empty"));
        };
        let (ptr, len) = (q.message_ptr(&m), m.len());
        let keep = Keep::QueueMessage {
            q,
            m: Mutex::new(Some(m)),
            pid: std::process::id(),
        };
        // On failure (here or below) the exporter is dropped, which releases the message.
        let (exported, mv) = exported_view(py, keep, ptr, len, true)?;
        let mut state = self.lock_state();
        if state.is_some() {
            return Err(already_open());
        }
        *state = Some(exported);
        Ok(mv)
    }

    #[pyo3(signature = (_exc_type, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let Some(exported) = self.lock_state().take() else {
            return Ok(false);
        };
        if release_view(py, &exported)? {
            exported.0.get().release_message().py_err()?;
            return Ok(false);
        }
        Err(PyBufferError::new_err(
            "a view of the message is still exported (e.g. a numpy array) at the end of the \
             get_view() block: its space returns to the queue only when the last view is \
             dropped; drop every view (or copy the data) before leaving the block",
        ))
    }
}
