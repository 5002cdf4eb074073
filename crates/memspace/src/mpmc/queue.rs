//! The segment-backed queue: claims, takes, blocking waits and inspection over the
//! [`core`](super::core) protocol, on the lock area laid out by [`segment`].
//!
//! This module owns the public handle and the wait/wake protocol. It never interprets
//! payloads.
//!
//! # Waiting
//!
//! A producer that finds no room (after reclaiming) and a consumer that finds nothing
//! committed unlock, then wait with the channel layer's `wait_for`: spin briefly, then sleep
//! on their eventcount in slices of [`WAIT_SLICE`](crate::lock::mutex::WAIT_SLICE),
//! re-checking (including the liveness of the owners of stuck records) and running the
//! caller's interrupt check between slices. No lock is held while waiting.
//!
//! Each attempt waits for the P- or C-lock itself, for [`TRY_LOCK_GRACE`] (20 ms) at most and
//! never past the call's deadline: a live holder keeps it for well under a microsecond, so
//! only a descheduled or stopped holder makes an attempt wait, and the call still ends at its
//! deadline. The first attempt of a call that does not wait at all (`timeout` zero, the `try_`
//! calls) waits out the grace anyway, so that a preempted holder is not taken for a full or
//! empty queue.
//!
//! # Full, empty, busy
//!
//! A call that gives up says what it saw: no room (a timeout, or `Ok(false)` / `Ok(None)` for
//! the `try_` calls), nothing committed (`Ok(None)`), or, when its last attempt could not get
//! the lock because another holder kept it (a stopped process keeps it for as long as it is
//! stopped) and the positions read without the lock show room (producers) or messages
//! (consumers), [`ChannelError::Busy`]: the queue was neither full nor empty, only locked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::{self as qcore, Claim, Take, Taken};
use super::parts::PartsLayout;
use super::segment::{self, lock_area, Shared, NOT_EMPTY_OFF, NOT_FULL_OFF};
use crate::channel::error::ChannelError;
use crate::channel::frame::{record_size, Region};
use crate::channel::geometry::Geometry;
use crate::channel::signal::{Interest, Signal};
use crate::channel::wait::{deadline, no_interrupt, wait_for};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::lock::eventcount::OsFutex;
use crate::lock::mutex::Interrupt;
use crate::shm::attach::SlotInfo;
use crate::shm::header::{Kind, LayoutRequest};
use crate::shm::segment::{OpenTarget, Segment};
use crate::shm::structured::Structured;
use crate::sync::Ordering;

mod tasks;

/// Smallest queue memspace creates (bytes).
pub const MIN_CAPACITY: u64 = 64;
/// Largest queue memspace creates (bytes): 2^40 = 1 TiB.
pub const MAX_CAPACITY: u64 = 1 << 40;
/// Default number of attachment slots (processes attached at once).
pub const DEFAULT_SLOTS: u32 = 128;
/// How long a non-blocking call waits for the other side's (short) critical section.
pub const TRY_LOCK_GRACE: Duration = Duration::from_millis(20);

/// Until when an attempt starting at `now` waits for the P- or C-lock: [`TRY_LOCK_GRACE`] at
/// most (a waiting call then goes back to the eventcount, which runs the interrupt check),
/// less if the call's deadline `until` comes sooner, and never past it: once it has passed, a
/// later attempt tries once (`now`). The `first` attempt of a call whose deadline has passed
/// already (a call that does not wait) waits out the whole grace, so that a preempted holder
/// is not taken for a full or empty queue.
fn lock_until(now: Instant, until: Option<Instant>, first: bool) -> Instant {
    let grace = now + TRY_LOCK_GRACE;
    match until {
        Some(u) if u > now => u.min(grace),
        Some(_) if !first => now,
        _ => grace,
    }
}

/// How long the lock has been held by someone else across a call's attempts: whether it was
/// *busy* (kept throughout the last [`TRY_LOCK_GRACE`], or the call's whole timeout if that is
/// shorter) when the call gives up. One failed try at the deadline against a live holder that
/// keeps it for a microsecond is not busy; a stopped holder is.
struct LockWatch {
    since: Option<Instant>,
    need: Duration,
}

impl LockWatch {
    fn new(timeout: Option<Duration>) -> LockWatch {
        LockWatch {
            since: None,
            need: timeout.map_or(TRY_LOCK_GRACE, |t| t.min(TRY_LOCK_GRACE)),
        }
    }

    /// Records an attempt that started at `started` and got the lock (`locked`) or not.
    fn record(&mut self, started: Instant, locked: bool) {
        if locked {
            self.since = None;
        } else if self.since.is_none() {
            self.since = Some(started);
        }
    }

    fn busy(&self) -> bool {
        self.since.is_some_and(|t| t.elapsed() >= self.need)
    }
}

const P_WHAT: &str = "queue producer lock";
const C_WHAT: &str = "queue consumer lock";

/// What an attempt that never waits (not even for a lock) found.
#[derive(Debug)]
pub enum Attempt<T> {
    /// It claimed or took.
    Done(T),
    /// No room (claim) or no committed message (take), seen under the lock.
    Nothing,
    /// Another process or thread held the lock: nothing was decided. Retry with a call that
    /// may wait (a `try_` call waits [`TRY_LOCK_GRACE`] for the lock).
    Busy,
    /// (take) The next record is still being written by a producer, or was by one that has
    /// died, which only a liveness check (a syscall, made by the `try_` and waiting calls)
    /// tells.
    Pending,
}

/// Builder for a new [`Queue`].
#[derive(Debug, Clone)]
pub struct QueueOptions {
    location: Location,
    capacity: u64,
    max_message_size: Option<u64>,
    mode: u32,
    slots: u32,
}

impl QueueOptions {
    /// A queue of at least `capacity` bytes (rounded up to a power of two) at `location`.
    pub fn new(location: Location, capacity: u64) -> QueueOptions {
        QueueOptions {
            location,
            capacity,
            max_message_size: None,
            mode: 0o600,
            slots: DEFAULT_SLOTS,
        }
    }

    /// The largest message (default and maximum: `capacity / 2 - 8`).
    #[must_use]
    pub fn max_message_size(mut self, n: u64) -> QueueOptions {
        self.max_message_size = Some(n);
        self
    }

    /// Permission bits (default `0o600`).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> QueueOptions {
        self.mode = mode;
        self
    }

    /// How many processes may be attached at once (default [`DEFAULT_SLOTS`], at most 4096).
    #[must_use]
    pub fn slots(mut self, slots: u32) -> QueueOptions {
        self.slots = slots;
        self
    }

    /// Creates the queue (exclusively).
    pub fn create(self) -> Result<Queue> {
        let cap = self
            .capacity
            .checked_next_power_of_two()
            .filter(|c| (1..=MAX_CAPACITY).contains(c) && self.capacity > 0)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "queue capacity must be between 1 and {MAX_CAPACITY} bytes, not {}",
                    self.capacity
                ))
            })?
            .max(MIN_CAPACITY);
        if self.slots == 0 || self.slots > qcore::MAX_SLOTS {
            return Err(Error::InvalidArgument(format!(
                "a queue has between 1 and {} attachment slots, not {}",
                qcore::MAX_SLOTS,
                self.slots
            )));
        }
        let limit = Geometry::max_len_for(cap).min(u64::from(u32::MAX) - 1);
        let max_len = self.max_message_size.unwrap_or(limit);
        if max_len == 0 {
            return Err(Error::InvalidArgument(
                "max_message_size must be at least 1 byte".into(),
            ));
        }
        if max_len > limit {
            return Err(Error::InvalidArgument(format!(
                "max_message_size {max_len} is too large for a queue of {cap} bytes (at most {limit})"
            )));
        }
        let g = Geometry::new(cap, max_len).expect("validated above");
        let req = LayoutRequest {
            kind: Kind::Queue,
            attach_slots: self.slots,
            lock_size: lock_area(self.slots),
            data_size: cap,
            kind_param: max_len,
        };
        let st = Structured::create(self.location, self.mode, &req, &segment::init, &|_| {})?;
        Queue::from_structured(st, g)
    }
}

/// A multi-producer/multi-consumer queue of byte messages in a named or file-backed segment,
/// usable from any number of processes and threads.
///
/// ```
/// use memspace::mpmc::{Queue, QueueOptions};
/// use memspace::Location;
///
/// let loc = Location::Name(format!("/memspace-doc-queue-{}", std::process::id()));
/// let q = QueueOptions::new(loc.clone(), 4096).create()?;
/// assert!(q.try_push(b"hello")?);
/// let other = Queue::open(loc.clone())?;
/// assert_eq!(other.try_pop()?.as_deref(), Some(&b"hello"[..]));
/// Queue::remove(&loc)?;
/// # Ok::<(), memspace::Error>(())
/// ```
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("location", self.shared.location())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// Room claimed by [`Queue::claim`] for a message written in place.
#[derive(Debug)]
pub struct Reservation {
    c: Claim,
}

impl Reservation {
    /// Payload length.
    pub fn len(&self) -> usize {
        self.c.len as usize
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.c.len == 0
    }
}

/// A message taken by [`Queue::take`]: readable in place until [`Queue::release`].
#[derive(Debug)]
pub struct Message {
    t: Taken,
}

impl Message {
    /// Payload length.
    pub fn len(&self) -> usize {
        self.t.len as usize
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.t.len == 0
    }
}

/// A snapshot for inspection.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    /// Messages claimed and not yet taken (advisory).
    pub len: u64,
    /// Bytes in use (claimed and not yet reclaimed), with headers and padding.
    pub used_bytes: u64,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Largest message.
    pub max_message_size: u64,
    /// The byte positions (head, consumer position, tail).
    pub positions: (u64, u64, u64),
    /// Attached processes and their liveness.
    pub attached: Vec<SlotInfo>,
    /// Messages taken by live handles and not yet marked with `task_done` (`None` for a
    /// layout 2.0 queue, which has no task accounting).
    pub unfinished_taken: Option<u64>,
    /// Tasks lost with a handle that died (or closed) before marking them done.
    pub tasks_lost: Option<u64>,
}

/// Where one locked attempt puts what it claims or takes: a `Vec` for a batch, an `Option`
/// for a single message (no allocation on the one-message paths).
trait Sink<T> {
    fn put(&mut self, v: T);
    fn count(&self) -> usize;
}

impl<T> Sink<T> for Vec<T> {
    fn put(&mut self, v: T) {
        self.push(v);
    }
    fn count(&self) -> usize {
        self.len()
    }
}

impl<T> Sink<T> for Option<T> {
    fn put(&mut self, v: T) {
        debug_assert!(self.is_none(), "an Option sink holds one");
        *self = Some(v);
    }
    fn count(&self) -> usize {
        usize::from(self.is_some())
    }
}

impl Queue {
    fn from_structured(st: Structured, g: Geometry) -> Result<Queue> {
        Ok(Queue {
            shared: Arc::new(Shared::attach(st, g)?),
        })
    }

    /// Opens an existing queue (a [`Location`], or one with a [`Trust`](crate::Trust));
    /// refuses another kind or an inconsistent geometry.
    pub fn open(location: impl Into<OpenTarget>) -> Result<Queue> {
        let st = Structured::open(location, Kind::Queue, None, &|_| {})?;
        let g = Shared::geometry_of(&st)?;
        Queue::from_structured(st, g)
    }

    /// Removes the queue's segment.
    pub fn remove(location: &Location) -> Result<()> {
        Segment::unlink(location)
    }

    /// Where it lives.
    pub fn location(&self) -> &Location {
        self.shared.location()
    }

    /// The trust that opens this queue again in another process (for pickling).
    pub fn reopen_trust(&self) -> &crate::Trust {
        self.shared.ch.structured().reopen_trust()
    }

    /// Capacity in bytes (a power of two).
    pub fn capacity(&self) -> u64 {
        self.shared.ch.geometry().capacity()
    }

    /// Largest message in bytes.
    pub fn max_message_size(&self) -> u64 {
        self.shared.ch.geometry().max_len()
    }

    /// Messages claimed and not yet taken (exact when nobody is mid-operation).
    pub fn len(&self) -> u64 {
        self.shared.q().len()
    }

    /// True if nothing is claimed beyond what consumers have taken.
    pub fn is_empty(&self) -> bool {
        self.shared.q().is_empty()
    }

    /// Bytes in use (including record headers and padding).
    pub fn used_bytes(&self) -> u64 {
        self.shared.q().used_bytes()
    }

    /// Whether a message of `len` bytes would not fit now (after handing back the space of
    /// messages already consumed; records held by dead processes are counted as used until a
    /// producer reclaims them).
    pub fn is_full_for(&self, len: usize) -> bool {
        // An error here is corruption, which the next put or get reports.
        let _ = self.shared.q().reclaim(None);
        let need = record_size(len as u64);
        self.capacity() - self.used_bytes() < need
    }

    /// A snapshot for inspection.
    pub fn info(&self) -> Result<QueueInfo> {
        // A file shrunk under the mapping is reported, not read (SIGBUS).
        self.shared.ch.structured().check_intact()?;
        let c = self.shared.control();
        // SYNC: Acquire loads; advisory snapshot.
        let positions = (
            c.head.pos.load(Ordering::Acquire),
            c.cons.pos.load(Ordering::Acquire),
            c.tail.pos.load(Ordering::Acquire),
        );
        Ok(QueueInfo {
            len: self.len(),
            used_bytes: self.used_bytes(),
            capacity: self.capacity(),
            max_message_size: self.max_message_size(),
            positions,
            attached: self.shared.ch.structured().attachment().snapshot()?,
            unfinished_taken: self
                .shared
                .has_tasks()
                .then(|| self.shared.unfinished_taken()),
            tasks_lost: self.shared.has_tasks().then(|| self.shared.tasks_lost()),
        })
    }

    fn check_len(&self, len: usize) -> Result<()> {
        let max = self.max_message_size();
        if len as u64 > max {
            return Err(Error::InvalidArgument(format!(
                "a message of {len} bytes exceeds the queue's max_message_size of {max} bytes"
            )));
        }
        Ok(())
    }

    fn timeout_error(&self, what: &'static str, timeout: Option<Duration>) -> Error {
        Error::Channel(ChannelError::Timeout {
            what,
            location: self.location().clone(),
            timeout: timeout.unwrap_or_default(),
        })
    }

    fn busy_error(&self, what: &'static str, timeout: Option<Duration>) -> Error {
        Error::Channel(ChannelError::Busy {
            what,
            location: self.location().clone(),
            waited: match timeout {
                Some(t) if !t.is_zero() => t,
                _ => TRY_LOCK_GRACE,
            },
        })
    }

    /// Why a claim of `len` bytes gave up: [`ChannelError::Busy`] if its last attempt found
    /// the P-lock held by someone else and there is room without it (after handing back the
    /// space consumers have released), else a timeout waiting for room.
    fn claim_failed(&self, len: usize, lock_busy: bool, timeout: Option<Duration>) -> Error {
        if lock_busy && !self.is_full_for(len) {
            self.busy_error(P_WHAT, timeout)
        } else {
            self.timeout_error("room in the queue", timeout)
        }
    }

    /// Whether a take that found nothing must say [`ChannelError::Busy`]: its last attempt
    /// found the C-lock held by someone else while records are queued.
    fn take_failed(&self, lock_busy: bool, timeout: Option<Duration>) -> Result<()> {
        if lock_busy && !self.is_empty() {
            return Err(self.busy_error(C_WHAT, timeout));
        }
        Ok(())
    }

    /// One attempt at claiming `lens` (in order, as many as fit) under one hold of the P-lock.
    /// `deep`: also release records held by dead consumers.
    fn try_claim_many(
        &self,
        lens: &mut dyn Iterator<Item = u64>,
        max: usize,
        out: &mut dyn Sink<Claim>,
        lock_until: Option<Instant>,
        deep: bool,
    ) -> Result<bool> {
        let s = &*self.shared;
        let owner = s.owner()?;
        if s.lock(s.p_lock, owner.slot, lock_until, &mut no_interrupt, P_WHAT)?
            .is_none()
        {
            return Ok(false);
        }
        let r = (|| -> Result<()> {
            let q = s.q();
            if deep {
                q.reclaim(Some(&mut |o| s.is_dead(o, true)))
                    .map_err(|c| s.ch.corrupt(c))?;
            }
            for len in lens.take(max) {
                match q.claim(len, owner).map_err(|c| s.ch.corrupt(c))? {
                    Some(c) => out.put(c),
                    None => break,
                }
            }
            Ok(())
        })();
        s.unlock(s.p_lock, P_WHAT)?;
        r.map(|()| true)
    }

    /// Claims room for a message of `len` bytes written in place, waiting at most `timeout`
    /// (`None`: forever). Write through [`Queue::reservation_ptr`], then [`Queue::commit`]
    /// (or [`Queue::abandon`]). A producer that dies in between loses only this message.
    ///
    /// Gives up with [`ChannelError::Timeout`] (no room in time) or, if the producer lock was
    /// held by another process or thread at the last attempt while there is room,
    /// [`ChannelError::Busy`]. A zero timeout still waits [`TRY_LOCK_GRACE`] for the lock.
    pub fn claim(
        &self,
        len: usize,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Reservation> {
        self.check_len(len)?;
        let until = deadline(timeout);
        let mut out = None;
        let mut calls = 0u32;
        let mut watch = LockWatch::new(timeout);
        // A call that will not wait reclaims the space of dead consumers at once (liveness
        // checks, syscalls, only for records still being read); a waiting call every few
        // attempts.
        let nowait = timeout == Some(Duration::ZERO);
        let found = self.wait_room(until, interrupt, || {
            calls += 1;
            let now = Instant::now();
            let locked = self.try_claim_many(
                &mut std::iter::once(len as u64),
                1,
                &mut out,
                Some(lock_until(now, until, calls == 1)),
                calls % 64 == 0 || (nowait && calls == 1),
            )?;
            watch.record(now, locked);
            Ok(out.take())
        })?;
        match found {
            Some(c) => Ok(Reservation { c }),
            None => Err(self.claim_failed(len, watch.busy(), timeout)),
        }
    }

    fn wait_room<T>(
        &self,
        until: Option<Instant>,
        interrupt: Interrupt<'_>,
        mut attempt: impl FnMut() -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        if let Some(v) = attempt()? {
            return Ok(Some(v));
        }
        let shared = self.shared.clone();
        wait_for(shared.ch.event(NOT_FULL_OFF), until, interrupt, attempt)
    }

    /// Where a reservation's payload goes (`r.len()` bytes, ours alone until committed).
    pub fn reservation_ptr(&self, r: &Reservation) -> *mut u8 {
        let base = self.shared.ch.region().as_ptr().expect("mapped region");
        // SAFETY: the core placed the payload inside the region (offset + len <= capacity).
        unsafe { base.add(r.c.offset) }
    }

    /// Writes `data` into a reservation (at most its length).
    pub fn write(&self, r: &Reservation, at: usize, data: &[u8]) {
        assert!(at + data.len() <= r.len(), "write past the reservation");
        self.shared.ch.region().write(r.c.offset + at, data);
    }

    /// Writes a [`parts`](super::parts) message into a reservation of `layout.total()` bytes:
    /// the frame, then each of `parts` (one per entry of the layout, of its length).
    pub fn write_parts(&self, r: &Reservation, layout: &PartsLayout, parts: &[&[u8]]) {
        assert_eq!(
            r.len(),
            layout.total(),
            "the reservation must fit the layout"
        );
        assert_eq!(parts.len(), layout.parts().len(), "one slice per part");
        layout.each_frame_piece(|at, bytes| self.write(r, at, bytes));
        for (range, data) in layout.parts().iter().zip(parts) {
            assert_eq!(
                range.len(),
                data.len(),
                "part length differs from the layout"
            );
            self.write(r, range.start, data);
        }
    }

    /// Sends one message made of `parts` (see [`parts`](super::parts)), each readable in place
    /// at a 64-byte aligned offset, without joining them first; waits at most `timeout`.
    pub fn push_parts(
        &self,
        parts: &[&[u8]],
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<()> {
        let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
        let layout = PartsLayout::new(&lens)?;
        let r = self.claim(layout.total(), timeout, interrupt)?;
        self.write_parts(&r, &layout, parts);
        self.commit(r)
    }

    /// Commits a reservation (the message becomes visible) and wakes waiting consumers.
    #[allow(clippy::needless_pass_by_value)] // taken by value so it cannot be used twice
    pub fn commit(&self, r: Reservation) -> Result<()> {
        let s = &*self.shared;
        s.q().commit(r.c).map_err(|c| s.ch.corrupt(c))?;
        s.ch.event(NOT_EMPTY_OFF).notify(&OsFutex);
        Ok(())
    }

    /// Gives a reservation up: consumers skip it, nothing is delivered.
    #[allow(clippy::needless_pass_by_value)] // taken by value so it cannot be used twice
    pub fn abandon(&self, r: Reservation) -> Result<()> {
        let s = &*self.shared;
        s.q().abandon(r.c).map_err(|c| s.ch.corrupt(c))?;
        s.ch.event(NOT_EMPTY_OFF).notify(&OsFutex);
        Ok(())
    }

    /// Claims room for a message of `len` bytes if there is room now (waiting only
    /// [`TRY_LOCK_GRACE`] for other producers' claims); `Ok(None)` if the queue is full,
    /// [`ChannelError::Busy`] if another holder kept the producer lock throughout while there
    /// is room. Complete it as for [`Queue::claim`].
    pub fn try_claim(&self, len: usize) -> Result<Option<Reservation>> {
        self.check_len(len)?;
        let mut out = None;
        let locked = self.try_claim_many(
            &mut std::iter::once(len as u64),
            1,
            &mut out,
            Some(lock_until(Instant::now(), None, true)),
            false,
        )?;
        if !locked && !self.is_full_for(len) {
            return Err(self.busy_error(P_WHAT, None));
        }
        Ok(out.map(|c| Reservation { c }))
    }

    /// Claims room for a message of `len` bytes without waiting at all, not even for
    /// another producer's claim to finish ([`Attempt::Busy`] then).
    pub fn claim_now(&self, len: usize) -> Result<Attempt<Reservation>> {
        self.check_len(len)?;
        let mut out = None;
        let locked =
            self.try_claim_many(&mut std::iter::once(len as u64), 1, &mut out, None, false)?;
        Ok(match out {
            Some(c) => Attempt::Done(Reservation { c }),
            None if locked => Attempt::Nothing,
            None => Attempt::Busy,
        })
    }

    /// Sends one message if there is room now (waiting only [`TRY_LOCK_GRACE`] for other
    /// producers' claims); `Ok(false)` if the queue is full, [`ChannelError::Busy`] as for
    /// [`Queue::try_claim`].
    pub fn try_push(&self, data: &[u8]) -> Result<bool> {
        let Some(r) = self.try_claim(data.len())? else {
            return Ok(false);
        };
        self.write(&r, 0, data);
        self.commit(r)?;
        Ok(true)
    }

    /// Sends one message, waiting at most `timeout` for room; [`ChannelError::Timeout`] then
    /// (or [`ChannelError::Busy`], as for [`Queue::claim`]).
    pub fn push(
        &self,
        data: &[u8],
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<()> {
        let r = self.claim(data.len(), timeout, interrupt)?;
        self.write(&r, 0, data);
        self.commit(r)
    }

    /// Sends every message of `items` in order, claiming as many as fit under one lock hold
    /// and waiting for room as needed (all waits bounded by `timeout` in total). Returns how
    /// many were sent; [`ChannelError::Timeout`] (or [`ChannelError::Busy`], as for
    /// [`Queue::claim`]) only if none was.
    pub fn push_many(
        &self,
        items: &[&[u8]],
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<usize> {
        for it in items {
            self.check_len(it.len())?;
        }
        let until = deadline(timeout);
        let mut sent = 0;
        let mut claims = Vec::new();
        let mut watch = LockWatch::new(timeout);
        let mut first = true;
        while sent < items.len() {
            claims.clear();
            let mut lens = items[sent..].iter().map(|d| d.len() as u64);
            let now = Instant::now();
            let locked = self.try_claim_many(
                &mut lens,
                usize::MAX,
                &mut claims,
                Some(lock_until(now, until, first)),
                false,
            )?;
            watch.record(now, locked);
            first = false;
            if claims.is_empty() {
                let mut calls = 0u32;
                let got = self.wait_room(until, &mut *interrupt, || {
                    calls += 1;
                    let mut lens = items[sent..].iter().map(|d| d.len() as u64);
                    let now = Instant::now();
                    let locked = self.try_claim_many(
                        &mut lens,
                        usize::MAX,
                        &mut claims,
                        Some(lock_until(now, until, false)),
                        calls % 64 == 0,
                    )?;
                    watch.record(now, locked);
                    Ok((!claims.is_empty()).then_some(()))
                });
                match got {
                    Ok(Some(())) => {}
                    Ok(None) if sent > 0 => return Ok(sent),
                    Ok(None) => {
                        return Err(self.claim_failed(items[sent].len(), watch.busy(), timeout))
                    }
                    Err(e) => return Err(e),
                }
            }
            let s = &*self.shared;
            for c in claims.drain(..) {
                let data = items[sent];
                self.shared.ch.region().write(c.offset, data);
                s.q().commit(c).map_err(|c| s.ch.corrupt(c))?;
                sent += 1;
            }
            s.ch.event(NOT_EMPTY_OFF).notify(&OsFutex);
        }
        Ok(sent)
    }

    /// One attempt at taking up to `max` messages under one hold of the C-lock.
    fn try_take_many(
        &self,
        max: usize,
        out: &mut dyn Sink<Taken>,
        lock_until: Option<Instant>,
        check_os: bool,
    ) -> Result<Option<bool>> {
        let s = &*self.shared;
        let owner = s.owner()?;
        if s.lock(s.c_lock, owner.slot, lock_until, &mut no_interrupt, C_WHAT)?
            .is_none()
        {
            return Ok(None);
        }
        let before = out.count();
        let r = (|| -> Result<bool> {
            let q = s.q();
            while out.count() < max {
                match q
                    .take(owner, &mut |o| s.is_dead(o, check_os))
                    .map_err(|c| s.ch.corrupt(c))?
                {
                    Take::Got(t) => out.put(t),
                    Take::Empty => return Ok(false),
                    Take::Pending => return Ok(true),
                }
            }
            Ok(false)
        })();
        // Counted as this slot's tasks in the critical section that took them (what `join`
        // relies on: see `segment`).
        let taken = out.count() - before;
        if taken > 0 {
            s.took(owner, taken as u64);
        }
        s.unlock(s.c_lock, C_WHAT)?;
        r.map(Some)
    }

    /// Takes the next committed message without waiting at all, not even for another
    /// consumer's take to finish ([`Attempt::Busy`] then): [`Queue::take_now`] for one
    /// message, without a `Vec`.
    pub fn take_one_now(&self) -> Result<Attempt<Message>> {
        let mut got = None;
        let found = self.try_take_many(1, &mut got, None, false)?;
        Ok(match (got, found) {
            (Some(t), _) => Attempt::Done(Message { t }),
            (None, None) => Attempt::Busy,
            (None, Some(true)) => Attempt::Pending,
            (None, Some(false)) => Attempt::Nothing,
        })
    }

    /// Takes up to `max` committed messages without waiting at all, not even for another
    /// consumer's take to finish ([`Attempt::Busy`] then).
    pub fn take_now(&self, max: usize) -> Result<Attempt<Vec<Message>>> {
        let mut got = Vec::new();
        let found = self.try_take_many(max, &mut got, None, false)?;
        if !got.is_empty() {
            return Ok(Attempt::Done(
                got.into_iter().map(|t| Message { t }).collect(),
            ));
        }
        Ok(match found {
            None => Attempt::Busy,
            Some(true) => Attempt::Pending,
            Some(false) => Attempt::Nothing,
        })
    }

    /// Takes up to `max` messages, waiting at most `timeout` for the first. They stay
    /// readable in place (and their space stays in use) until [`Queue::release`]d.
    ///
    /// Finding none is `Ok(())` with nothing added, unless the last attempt found the
    /// consumer lock held by another process or thread while records are queued:
    /// [`ChannelError::Busy`] then. A zero timeout still waits [`TRY_LOCK_GRACE`] for the lock.
    pub fn take_many(
        &self,
        max: usize,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
        out: &mut Vec<Message>,
    ) -> Result<()> {
        let until = deadline(timeout);
        let mut got = Vec::new();
        // A call that will not wait checks the liveness of a producer whose claim blocks the
        // way (a syscall, only then): a message behind a dead producer's claim is never
        // reported as absent. A waiting call checks every few attempts.
        let nowait = timeout == Some(Duration::ZERO);
        let mut watch = LockWatch::new(timeout);
        let now = Instant::now();
        let locked = self
            .try_take_many(max, &mut got, Some(lock_until(now, until, true)), nowait)?
            .is_some();
        watch.record(now, locked);
        if got.is_empty() && !nowait {
            let mut calls = 0u32;
            let shared = self.shared.clone();
            wait_for(shared.ch.event(NOT_EMPTY_OFF), until, interrupt, || {
                calls += 1;
                let now = Instant::now();
                let locked = self
                    .try_take_many(
                        max,
                        &mut got,
                        Some(lock_until(now, until, false)),
                        calls % 32 == 0,
                    )?
                    .is_some();
                watch.record(now, locked);
                Ok((!got.is_empty()).then_some(()))
            })?;
        }
        if got.is_empty() {
            return self.take_failed(watch.busy(), timeout);
        }
        out.extend(got.into_iter().map(|t| Message { t }));
        Ok(())
    }

    /// Takes one message, waiting at most `timeout` (`Some(ZERO)`: do not wait beyond
    /// [`TRY_LOCK_GRACE`] for the lock); `Ok(None)` if there is none by then
    /// ([`ChannelError::Busy`] as for [`Queue::take_many`]).
    pub fn take(
        &self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<Message>> {
        let mut v = Vec::with_capacity(1);
        self.take_many(1, timeout, interrupt, &mut v)?;
        Ok(v.pop())
    }

    /// Start of a taken message's payload (`m.len()` bytes, stable until released).
    pub fn message_ptr(&self, m: &Message) -> *const u8 {
        let base = self.shared.ch.region().as_ptr().expect("mapped region");
        // SAFETY: the core validated offset + len against the region.
        unsafe { base.add(m.t.offset) }
    }

    /// Copies a taken message out.
    pub fn read(&self, m: &Message, out: &mut [u8]) {
        self.shared
            .ch
            .region()
            .read(m.t.offset, &mut out[..m.len()]);
    }

    /// Hands a taken message's space back (wakes producers waiting for room).
    #[allow(clippy::needless_pass_by_value)] // taken by value so it cannot be used twice
    pub fn release(&self, m: Message) -> Result<()> {
        let s = &*self.shared;
        if s.q().release(m.t).map_err(|c| s.ch.corrupt(c))? {
            s.ch.event(NOT_FULL_OFF).notify(&OsFutex);
        }
        Ok(())
    }

    /// Takes one message now (`Ok(None)` if none is committed).
    pub fn try_pop(&self) -> Result<Option<Vec<u8>>> {
        self.pop(Some(Duration::ZERO), &mut no_interrupt)
    }

    /// Takes one message, waiting at most `timeout`; `Ok(None)` on timeout.
    pub fn pop(
        &self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(m) = self.take(timeout, interrupt)? else {
            return Ok(None);
        };
        let mut out = vec![0u8; m.len()];
        self.read(&m, &mut out);
        self.release(m)?;
        Ok(Some(out))
    }

    /// Takes up to `max` messages, waiting at most `timeout` for the first.
    pub fn pop_many(
        &self,
        max: usize,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        let mut ms = Vec::new();
        self.take_many(max, timeout, interrupt, &mut ms)?;
        let mut out = Vec::with_capacity(ms.len());
        for m in ms {
            let mut v = vec![0u8; m.len()];
            self.read(&m, &mut v);
            self.release(m)?;
            out.push(v);
        }
        Ok(out)
    }

    /// Drops every committed message (as if taken, released and marked done with
    /// [`Queue::task_done`]); returns how many.
    pub fn clear(&self) -> Result<usize> {
        let mut n = 0;
        loop {
            let mut ms = Vec::new();
            self.take_many(1024, Some(Duration::ZERO), &mut no_interrupt, &mut ms)?;
            if ms.is_empty() {
                if n > 0 {
                    if let Some(ev) = self.shared.done_event() {
                        ev.notify(&OsFutex);
                    }
                }
                return Ok(n);
            }
            n += ms.len();
            let owner = self.shared.owner()?;
            for m in ms {
                self.release(m)?;
                self.shared.task_done(owner);
            }
        }
    }

    /// Offsets of the control block and the data area in the segment (inspection, tests).
    pub fn offsets(&self) -> (u64, u64) {
        let g = self.shared.ch.structured().geometry();
        (g.lock_off, g.data_off)
    }

    /// The eventcount consumers ([`Interest::Readable`]) or producers
    /// ([`Interest::Writable`]) sleep on, for waiting without a thread per wait (see
    /// [`Waiter`](crate::Waiter)). The readable one is notified after every commit, the
    /// writable one after every release that hands space back.
    pub fn signal(&self, interest: Interest) -> Signal {
        let off = match interest {
            Interest::Readable => NOT_EMPTY_OFF,
            Interest::Writable => NOT_FULL_OFF,
        };
        Signal::new(self.shared.clone(), off)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::shm::error::SegmentError;

    /// A wait this long means the queue is stuck: fail instead of hanging.
    const STUCK: Duration = Duration::from_secs(60);

    fn loc(tag: &str) -> Location {
        crate::testing::unique_location("queue", tag)
    }

    /// The value of `r`, or `none` for a call that found its lock kept by others throughout
    /// ([`ChannelError::Busy`]); panics on any other error.
    pub(super) fn not_busy<T>(r: Result<T>, none: T) -> T {
        match r {
            Ok(v) => v,
            Err(Error::Channel(ChannelError::Busy { .. })) => none,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn create_open_push_pop() {
        let l = loc("basic");
        let q = QueueOptions::new(l.clone(), 1000).create().unwrap();
        assert_eq!(q.capacity(), 1024);
        assert_eq!(q.max_message_size(), 504);
        let other = Queue::open(l.clone()).unwrap();
        assert!(q.try_push(b"one").unwrap());
        assert!(q.try_push(b"two").unwrap());
        assert_eq!(q.len(), 2);
        assert_eq!(other.try_pop().unwrap().unwrap(), b"one");
        assert_eq!(
            other.pop_many(10, None, &mut no_interrupt).unwrap(),
            [b"two"]
        );
        assert!(other.try_pop().unwrap().is_none());
        assert!(matches!(
            q.try_push(&[0; 505]),
            Err(Error::InvalidArgument(_))
        ));
        Queue::remove(&l).unwrap();
    }

    #[test]
    fn blocking_and_timeouts() {
        let l = loc("block");
        let q = QueueOptions::new(l.clone(), 256).create().unwrap();
        let t0 = Instant::now();
        assert!(q
            .pop(Some(Duration::from_millis(30)), &mut no_interrupt)
            .unwrap()
            .is_none());
        assert!(t0.elapsed() >= Duration::from_millis(30));
        while q.try_push(&[1; 100]).unwrap() {}
        assert!(matches!(
            q.push(
                &[1; 100],
                Some(Duration::from_millis(20)),
                &mut no_interrupt
            ),
            Err(Error::Channel(ChannelError::Timeout { .. }))
        ));
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            q2.pop(None, &mut no_interrupt).unwrap().unwrap()
        });
        q.push(&[2; 100], Some(Duration::from_secs(10)), &mut no_interrupt)
            .unwrap();
        t.join().unwrap();
        assert!(q.clear().unwrap() >= 1);
        assert!(q.is_empty());
        Queue::remove(&l).unwrap();
    }

    #[test]
    fn threads_mpmc_exact_accounting() {
        let name = loc("mpmc");
        let q = QueueOptions::new(name.clone(), 1024).create().unwrap();
        let n = 20_000u32;
        let producers: Vec<_> = (0..3u8)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..n {
                        let mut m = vec![p];
                        m.extend_from_slice(&i.to_le_bytes());
                        m.resize(5 + (i % 40) as usize, p);
                        q.push(&m, Some(STUCK), &mut no_interrupt).unwrap();
                    }
                })
            })
            .collect();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    let mut last = [None::<u32>; 3];
                    loop {
                        let finished = done.load(std::sync::atomic::Ordering::Acquire);
                        // Busy: the C-lock was kept by other consumers (one of them preempted
                        // while holding it, on a loaded machine) for the whole 20 ms.
                        let Some(msg) = not_busy(
                            q.pop(Some(Duration::from_millis(20)), &mut no_interrupt),
                            None,
                        ) else {
                            if finished {
                                break;
                            }
                            continue;
                        };
                        let p = msg[0] as usize;
                        let i = u32::from_le_bytes(msg[1..5].try_into().unwrap());
                        assert_eq!(msg.len(), 5 + (i % 40) as usize);
                        if let Some(l) = last[p] {
                            assert!(i > l, "per-producer order");
                        }
                        last[p] = Some(i);
                        got.push((p, i));
                    }
                    got
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        let mut all: Vec<(usize, u32)> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        let want: Vec<(usize, u32)> = (0..3).flat_map(|p| (0..n).map(move |i| (p, i))).collect();
        assert_eq!(all, want);
        Queue::remove(&name).unwrap();
    }

    /// A lock held by someone else makes the non-waiting calls say `Busy` (never "empty" or
    /// "full"), and the `try_` calls wait the holder out.
    #[test]
    fn held_locks_are_busy_not_empty_or_full() {
        let l = loc("busy");
        let q = QueueOptions::new(l.clone(), 4096).create().unwrap();
        assert!(q.try_push(b"m").unwrap());
        let s = &*q.shared;
        let slot = s.owner().unwrap().slot;
        for (lock, what) in [(s.c_lock, "c"), (s.p_lock, "p")] {
            s.lock(lock, slot, None, &mut no_interrupt, what)
                .unwrap()
                .unwrap();
            let q2 = q.clone();
            let busy = std::thread::spawn(move || {
                if what == "c" {
                    matches!(q2.take_now(1).unwrap(), Attempt::Busy)
                } else {
                    matches!(q2.claim_now(1).unwrap(), Attempt::Busy)
                }
            });
            assert!(busy.join().unwrap(), "{what}: busy");
            let q2 = q.clone();
            let t = std::thread::spawn(move || {
                if what == "c" {
                    q2.try_pop().unwrap().is_some()
                } else {
                    q2.try_push(b"n").unwrap()
                }
            });
            std::thread::sleep(Duration::from_millis(5));
            s.unlock(lock, what).unwrap();
            assert!(t.join().unwrap(), "the try call waited for the {what} lock");
        }
        assert!(matches!(q.take_now(5).unwrap(), Attempt::Done(v) if v.len() == 1));
        assert!(matches!(q.take_now(5).unwrap(), Attempt::Nothing));
        Queue::remove(&l).unwrap();
    }

    /// With a lock held throughout (as by a stopped process), every call ends at its deadline
    /// (before the fix: 64 attempts of 20 ms each, 1.3 s), and says Busy, not full or empty,
    /// when the positions show room or messages; Full and Empty stay what they were.
    #[test]
    fn held_locks_keep_deadlines_and_say_busy() {
        let l = loc("deadline");
        let q = QueueOptions::new(l.clone(), 4096).create().unwrap();
        assert!(q.try_push(b"m").unwrap());
        let s = &*q.shared;
        let slot = s.owner().unwrap().slot;
        let busy = |r: &Result<()>| matches!(r, Err(Error::Channel(ChannelError::Busy { .. })));
        // Generous: a descheduled thread on a loaded 2-core machine overshoots by tens of ms;
        // the bug this catches overshot by more than a second.
        let slack = Duration::from_millis(100);
        let t100 = Duration::from_millis(100);
        for (lock, what) in [(s.c_lock, "c"), (s.p_lock, "p")] {
            s.lock(lock, slot, None, &mut no_interrupt, what)
                .unwrap()
                .unwrap();
            let q2 = q.clone();
            let h = std::thread::spawn(move || {
                let timed = |f: &dyn Fn() -> Result<()>| {
                    let t0 = Instant::now();
                    let r = f();
                    (t0.elapsed(), r)
                };
                let calls: Vec<(Duration, Duration, Result<()>)> = if what == "c" {
                    vec![
                        (
                            t100,
                            timed(&|| q2.pop(Some(t100), &mut no_interrupt).map(|_| ())),
                        ),
                        (Duration::ZERO, timed(&|| q2.try_pop().map(|_| ()))),
                        (
                            t100,
                            timed(&|| q2.pop_many(5, Some(t100), &mut no_interrupt).map(|_| ())),
                        ),
                    ]
                    .into_iter()
                    .map(|(t, (e, r))| (t, e, r))
                    .collect()
                } else {
                    vec![
                        (
                            t100,
                            timed(&|| q2.push(b"n", Some(t100), &mut no_interrupt)),
                        ),
                        (Duration::ZERO, timed(&|| q2.try_push(b"n").map(|_| ()))),
                        (
                            t100,
                            timed(&|| {
                                q2.push_many(&[b"n", b"o"], Some(t100), &mut no_interrupt)
                                    .map(|_| ())
                            }),
                        ),
                    ]
                    .into_iter()
                    .map(|(t, (e, r))| (t, e, r))
                    .collect()
                };
                calls
            });
            for (timeout, elapsed, r) in h.join().unwrap() {
                assert!(busy(&r), "{what}: {r:?}");
                assert!(
                    elapsed < timeout.max(TRY_LOCK_GRACE) + slack,
                    "{what}: {elapsed:?}"
                );
                assert!(
                    elapsed >= timeout.max(TRY_LOCK_GRACE),
                    "{what}: {elapsed:?}"
                );
            }
            s.unlock(lock, what).unwrap();
        }
        // Without the lock held, Empty and Full are what they say.
        assert_eq!(q.try_pop().unwrap().unwrap(), b"m");
        assert!(q.try_pop().unwrap().is_none());
        assert!(q
            .pop(Some(Duration::from_millis(10)), &mut no_interrupt)
            .unwrap()
            .is_none());
        while q.try_push(&[1; 200]).unwrap() {}
        assert!(matches!(
            q.push(
                &[1; 200],
                Some(Duration::from_millis(10)),
                &mut no_interrupt
            ),
            Err(Error::Channel(ChannelError::Timeout { .. }))
        ));
        // A full queue with the P-lock held is full, not busy.
        s.lock(s.p_lock, slot, None, &mut no_interrupt, "p")
            .unwrap()
            .unwrap();
        let q2 = q.clone();
        let r = std::thread::spawn(move || q2.try_push(&[1; 200]))
            .join()
            .unwrap();
        assert!(matches!(r, Ok(false)), "{r:?}");
        s.unlock(s.p_lock, "p").unwrap();
        Queue::remove(&l).unwrap();
    }

    #[test]
    fn parts_messages_round_trip() {
        let l = loc("parts");
        let q = QueueOptions::new(l.clone(), 4096).create().unwrap();
        let big = vec![9u8; 1000];
        q.push_parts(&[b"pickle", &big, b""], None, &mut no_interrupt)
            .unwrap();
        let m = q.try_pop().unwrap().unwrap();
        let parts = super::super::parts::decode(&m).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(&m[parts[0].clone()], b"pickle");
        assert_eq!(&m[parts[1].clone()], &big[..]);
        assert!(parts[2].is_empty());
        let too_big = vec![0u8; q.max_message_size() as usize];
        assert!(matches!(
            q.push_parts(&[&too_big], None, &mut no_interrupt),
            Err(Error::InvalidArgument(_))
        ));
        assert!(q.is_empty());
        Queue::remove(&l).unwrap();
    }

    #[test]
    fn corrupt_positions_poison() {
        let l = loc("corrupt");
        let q = QueueOptions::new(l.clone(), 256).create().unwrap();
        q.shared.control().head.pos.store(4096, Ordering::Relaxed);
        assert!(matches!(
            q.try_pop(),
            Err(Error::Segment(SegmentError::Corrupt { .. }))
        ));
        assert!(matches!(
            Queue::open(l.clone()),
            Err(Error::Segment(SegmentError::Corrupt { .. }))
        ));
        Queue::remove(&l).unwrap();
    }
}
#[cfg(all(test, not(loom)))]
mod batch_tests {
    use super::*;

    /// A wait this long means the queue is stuck: fail instead of hanging.
    const STUCK: Duration = Duration::from_secs(60);

    /// Four producer and four consumer threads through a small queue with `push_many` and
    /// `pop_many`: every message arrives.
    #[test]
    fn threads_batches_through_a_small_queue() {
        let name = crate::testing::unique_location("queue", "batches");
        let q = QueueOptions::new(name.clone(), 4096).create().unwrap();
        let n = 200_000u32;
        let ps: Vec<_> = (0..4u8)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut i = 0;
                    while i < n {
                        let msgs: Vec<Vec<u8>> = (i..i + 32)
                            .map(|k| {
                                let mut m = vec![p];
                                m.extend_from_slice(&k.to_le_bytes());
                                m.resize(5 + (k % 40) as usize, 0);
                                m
                            })
                            .collect();
                        let items: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
                        let mut d = 0;
                        while d < 32 {
                            d += q
                                .push_many(&items[d..], Some(STUCK), &mut no_interrupt)
                                .unwrap();
                        }
                        i += 32;
                    }
                })
            })
            .collect();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cs: Vec<_> = (0..4)
            .map(|_| {
                let q = q.clone();
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut c = 0;
                    loop {
                        let finished = done.load(std::sync::atomic::Ordering::Acquire);
                        let ms = super::tests::not_busy(
                            q.pop_many(64, Some(Duration::from_millis(20)), &mut no_interrupt),
                            Vec::new(),
                        );
                        if ms.is_empty() && finished {
                            return c;
                        }
                        c += ms.len();
                    }
                })
            })
            .collect();
        for p in ps {
            p.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        let total: usize = cs.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(total, 4 * n as usize);
        Queue::remove(&name).unwrap();
    }
}
