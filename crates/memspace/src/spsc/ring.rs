//! The segment-backed ring: roles, blocking waits and inspection over the [`core`](super::core)
//! data path.
//!
//! This module owns the layout of a ring segment's lock and data areas, the claiming of the
//! producer and consumer roles, and the wait/wake protocol. It never interprets payloads.
//!
//! # Layout (kind [`Kind::Ring`]; offsets from the lock area, native-endian)
//!
//! | offset | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | `head` | u64 (atomic) | bytes published by the producer (the commit point) |
//! | 8 | `sent` | u64 (atomic) | messages published (for `len`; advisory) |
//! | 128 | `tail` | u64 (atomic) | bytes released by the consumer |
//! | 136 | `received` | u64 (atomic) | messages released (for `len`; advisory) |
//! | 256 | producer role byte | - | the producer holds an OFD lock on this byte of the file |
//! | 257 | consumer role byte | - | the consumer holds an OFD lock on this byte |
//! | 320 | `not_empty` | eventcount (2 × u32) | the consumer sleeps here; the producer wakes it |
//! | 384 | `not_full` | eventcount (2 × u32) | the producer sleeps here; the consumer wakes it |
//!
//! The data area is the byte ring itself (`capacity` bytes, a power of two); the header's
//! `kind_param` is `max_message_size`. Head and tail live 128 bytes apart, so the two sides
//! never write the same cache line (nor an adjacent-line-prefetch pair).
//!
//! # Roles
//!
//! A role is held by holding an OFD lock (`fcntl(F_OFD_SETLK)`) on its byte through a file
//! description private to the role handle (the channel layer's `role`). The kernel drops it
//! when the holder dies, however it dies, so claiming a role is a non-blocking lock attempt: it
//! fails while the holder is alive (a stopped process included) and succeeds once it is dead.
//! The new holder then continues from the shared positions: a dead producer's unpublished bytes
//! are overwritten, a dead consumer's unreleased messages are read again.
//!
//! # Waiting
//!
//! A side that cannot proceed first publishes what it has (so no batch size can deadlock),
//! then waits with the channel layer's `wait_for`: spins briefly, then sleeps on its
//! eventcount in slices of [`WAIT_SLICE`](crate::lock::mutex::WAIT_SLICE), running the
//! caller's interrupt check between slices. The other side wakes it after every publish or
//! release; that costs no syscall when nobody sleeps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::{self as ring_core, Control};
use crate::channel::error::ChannelError;
use crate::channel::frame::{record_size, Region};
use crate::channel::geometry::{Corrupt, Geometry};
use crate::channel::role::{self, RoleLock};
use crate::channel::segment::ChannelSegment;
use crate::channel::wait::{deadline, wait_for};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::lock::eventcount::OsFutex;
use crate::lock::mutex::Interrupt;
use crate::shm::error::SegmentError;
use crate::shm::header::{Kind, LayoutRequest};
use crate::shm::segment::{OpenTarget, Segment};
use crate::shm::structured::Structured;
use crate::sync::Ordering;

const LOCK_AREA: u64 = 512;
const PRODUCER_ROLE_OFF: u64 = 256;
const CONSUMER_ROLE_OFF: u64 = 257;
const NOT_EMPTY_OFF: usize = 320;
const NOT_FULL_OFF: usize = 384;

/// Smallest ring memspace creates (bytes).
pub const MIN_CAPACITY: u64 = 64;
/// Largest ring memspace creates (bytes): 2^40 = 1 TiB.
pub const MAX_CAPACITY: u64 = 1 << 40;
/// Default number of attachment slots of a ring segment.
pub const DEFAULT_SLOTS: u32 = 32;

/// Which end of a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The single writer.
    Producer,
    /// The single reader.
    Consumer,
}

impl Role {
    /// `"producer"` or `"consumer"`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }

    fn lock_offset(self, lock_off: u64) -> u64 {
        lock_off
            + match self {
                Role::Producer => PRODUCER_ROLE_OFF,
                Role::Consumer => CONSUMER_ROLE_OFF,
            }
    }
}

/// Builder for a new [`Ring`].
#[derive(Debug, Clone)]
pub struct RingOptions {
    location: Location,
    capacity: u64,
    max_message_size: Option<u64>,
    mode: u32,
    slots: u32,
}

impl RingOptions {
    /// A ring of at least `capacity` bytes (rounded up to a power of two) at `location`.
    pub fn new(location: Location, capacity: u64) -> RingOptions {
        RingOptions {
            location,
            capacity,
            max_message_size: None,
            mode: 0o600,
            slots: DEFAULT_SLOTS,
        }
    }

    /// The largest message (default and maximum: `capacity / 2 - 8`).
    #[must_use]
    pub fn max_message_size(mut self, n: u64) -> RingOptions {
        self.max_message_size = Some(n);
        self
    }

    /// Permission bits (default `0o600`).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> RingOptions {
        self.mode = mode;
        self
    }

    /// Creates the ring (exclusively).
    pub fn create(self) -> Result<Ring> {
        let cap = self
            .capacity
            .checked_next_power_of_two()
            .filter(|c| (MIN_CAPACITY..=MAX_CAPACITY).contains(c) && self.capacity > 0)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "ring capacity must be between 1 and {MAX_CAPACITY} bytes, not {}",
                    self.capacity
                ))
            })?
            .max(MIN_CAPACITY);
        let limit = Geometry::max_len_for(cap).min(u64::from(u32::MAX) - 1);
        let max_len = self.max_message_size.unwrap_or(limit);
        if max_len == 0 {
            return Err(Error::InvalidArgument(
                "max_message_size must be at least 1 byte".into(),
            ));
        }
        if max_len > limit {
            return Err(Error::InvalidArgument(format!(
                "max_message_size {max_len} is too large for a ring of {cap} bytes (at most {limit})"
            )));
        }
        let g = Geometry::new(cap, max_len).expect("validated above");
        let req = LayoutRequest {
            kind: Kind::Ring,
            attach_slots: self.slots,
            lock_size: LOCK_AREA,
            data_size: cap,
            kind_param: max_len,
        };
        // A fresh segment is zero-filled: positions 0, counters 0, eventcounts 0 are the
        // valid initial state, so there is nothing else to initialise.
        let st = Structured::create(self.location, self.mode, &req, &|_, _| Ok(()), &|_| {})?;
        Ring::from_structured(st, g)
    }
}

/// State shared by a ring handle and its role handles: the channel segment, whose lock area
/// is laid out as in the module docs.
struct Shared {
    ch: ChannelSegment,
}

impl Shared {
    fn control(&self) -> &Control {
        // SAFETY: the lock area starts 64-aligned with LOCK_AREA >= 256 bytes (checked at
        // open), and everyone accesses the control block through atomics only.
        unsafe { Control::from_ptr(self.ch.structured().lock_ptr()) }
    }

    fn g(&self) -> Geometry {
        self.ch.geometry()
    }

    fn location(&self) -> &Location {
        self.ch.location()
    }
}

/// A single-producer/single-consumer ring in a named or file-backed segment.
///
/// The handle itself holds no role; [`Ring::producer`] and [`Ring::consumer`] claim one.
///
/// ```
/// use memspace::spsc::{Ring, RingOptions};
/// use memspace::Location;
///
/// let loc = Location::Name(format!("/memspace-doc-ring-{}", std::process::id()));
/// let ring = RingOptions::new(loc.clone(), 4096).create()?;
/// let mut tx = ring.producer()?;
/// let mut rx = ring.consumer()?;
/// tx.try_push(b"hello")?;
/// assert_eq!(rx.try_pop()?.as_deref(), Some(&b"hello"[..]));
/// Ring::remove(&loc)?;
/// # Ok::<(), memspace::Error>(())
/// ```
#[derive(Clone)]
pub struct Ring {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("location", self.shared.location())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl Ring {
    fn from_structured(st: Structured, g: Geometry) -> Result<Ring> {
        let shared = Shared {
            ch: ChannelSegment::new(st, g),
        };
        // Validate the shared positions once at attach; every later load is checked again.
        let c = shared.control();
        let head = c.head.pos.load(Ordering::Acquire);
        let tail = c.tail.pos.load(Ordering::Acquire);
        if head.wrapping_sub(tail) > g.capacity() || head % 8 != 0 || tail % 8 != 0 {
            return Err(shared.ch.corrupt(Corrupt(format!(
                "ring positions are impossible (head {head}, tail {tail}, capacity {})",
                g.capacity()
            ))));
        }
        Ok(Ring {
            shared: Arc::new(shared),
        })
    }

    /// Opens an existing ring (a [`Location`], or one with a [`Trust`](crate::Trust)); refuses
    /// another kind or an inconsistent geometry.
    pub fn open(location: impl Into<OpenTarget>) -> Result<Ring> {
        let st = Structured::open(location, Kind::Ring, None, &|_| {})?;
        let geo = *st.geometry();
        let g = Geometry::new(geo.data_size, geo.kind_param)
            .filter(|_| geo.lock_size >= LOCK_AREA)
            .ok_or_else(|| {
                Error::Segment(SegmentError::IncompatibleLayout {
                    location: st.location().clone(),
                    reason: format!(
                        "a ring of {} bytes with max_message_size {} and a {}-byte lock area is \
                     not a valid ring geometry",
                        geo.data_size, geo.kind_param, geo.lock_size
                    ),
                })
            })?;
        Ring::from_structured(st, g)
    }

    /// Removes the ring's segment.
    pub fn remove(location: &Location) -> Result<()> {
        Segment::unlink(location)
    }

    /// Where it lives.
    pub fn location(&self) -> &Location {
        self.shared.location()
    }

    /// The trust that opens this ring again in another process (for pickling).
    pub fn reopen_trust(&self) -> &crate::Trust {
        self.shared.ch.structured().reopen_trust()
    }

    /// Capacity in bytes (a power of two).
    pub fn capacity(&self) -> u64 {
        self.shared.g().capacity()
    }

    /// Largest message in bytes.
    pub fn max_message_size(&self) -> u64 {
        self.shared.g().max_len()
    }

    /// Messages published and not yet released (exact when both sides are idle).
    /// [`SegmentError::Corrupt`] for counters no ring can have (more received than sent, or
    /// more messages than bytes); the figure is advisory, so that does not poison the ring.
    pub fn len(&self) -> Result<u64> {
        // SYNC: Acquire loads pair with the Release stores of the counters beside the
        // positions; the figure is advisory while the sides are active. `received` first:
        // both only grow, and a count is stored before the messages it counts are published,
        // so `sent >= received` holds for the values loaded in this order.
        let received = self.shared.control().tail.count.load(Ordering::Acquire);
        let sent = self.shared.control().head.count.load(Ordering::Acquire);
        match sent.checked_sub(received) {
            Some(n) if n <= self.capacity() => Ok(n),
            _ => Err(Error::Segment(SegmentError::Corrupt {
                location: self.location().clone(),
                reason: format!(
                    "its message counters are impossible (sent {sent}, received {received}, \
                     capacity {} bytes)",
                    self.capacity()
                ),
            })),
        }
    }

    /// Checks that the segment's file was not truncated under this handle (one `fstat`; see
    /// [`Structured::check_intact`]).
    pub fn check_intact(&self) -> Result<()> {
        self.shared.ch.structured().check_intact()
    }

    /// True if no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.used_bytes() == 0
    }

    /// Bytes in use (published and not released), including record headers and padding.
    pub fn used_bytes(&self) -> u64 {
        let c = self.shared.control();
        // SYNC: Acquire loads; advisory snapshot.
        let tail = c.tail.pos.load(Ordering::Acquire);
        let head = c.head.pos.load(Ordering::Acquire);
        head.wrapping_sub(tail).min(self.capacity())
    }

    /// Bytes free for new records.
    pub fn free_bytes(&self) -> u64 {
        self.capacity() - self.used_bytes()
    }

    /// True if not even an empty message fits now (a record takes at least its 8-byte
    /// header, and every record and gap is a multiple of 8 bytes).
    pub fn is_full(&self) -> bool {
        self.free_bytes() < Consumer::record_size(0)
    }

    /// Whether a live process holds `role` (a stopped one counts as alive).
    pub fn role_held(&self, role: Role) -> Result<bool> {
        let st = self.shared.ch.structured();
        role::is_held(st, role.lock_offset(st.geometry().lock_off))
    }

    /// Offset of the control block in the segment (for inspection and tests).
    pub fn control_offset(&self) -> u64 {
        self.shared.ch.structured().geometry().lock_off
    }

    /// Offset of the byte ring in the segment (for inspection and tests).
    pub fn data_offset(&self) -> u64 {
        self.shared.ch.structured().geometry().data_off
    }

    fn claim(&self, role: Role) -> Result<RoleLock> {
        let st = self.shared.ch.structured();
        RoleLock::claim(st, role.lock_offset(st.geometry().lock_off), role.name())
    }

    /// Claims the producer role; [`ChannelError::RoleTaken`] while another live process holds it.
    pub fn producer(&self) -> Result<Producer> {
        let role = self.claim(Role::Producer)?;
        let core = ring_core::Producer::attach(self.shared.g(), self.shared.control())
            .map_err(|c| self.shared.ch.corrupt(c))?;
        Ok(Producer {
            shared: self.shared.clone(),
            core,
            sent: self.shared.control().head.count.load(Ordering::Acquire),
            role,
        })
    }

    /// Claims the consumer role; [`ChannelError::RoleTaken`] while another live process holds it.
    pub fn consumer(&self) -> Result<Consumer> {
        let role = self.claim(Role::Consumer)?;
        let core = ring_core::Consumer::attach(self.shared.g(), self.shared.control())
            .map_err(|c| self.shared.ch.corrupt(c))?;
        Ok(Consumer {
            shared: self.shared.clone(),
            core,
            received: self.shared.control().tail.count.load(Ordering::Acquire),
            pending: 0,
            role,
        })
    }
}

/// The producer end (single owner: not `Clone`).
pub struct Producer {
    shared: Arc<Shared>,
    core: ring_core::Producer,
    sent: u64,
    role: RoleLock,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("location", self.shared.location())
            .finish_non_exhaustive()
    }
}

/// Room reserved by [`Producer::reserve`] for a message written in place.
#[derive(Debug, Clone, Copy)]
pub struct Reservation {
    r: ring_core::Reservation,
}

impl Reservation {
    /// Payload length.
    pub fn len(&self) -> usize {
        self.r.len as usize
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.r.len == 0
    }
}

impl Producer {
    fn check_len(&self, len: usize) -> Result<()> {
        let max = self.shared.g().max_len();
        if len as u64 > max {
            return Err(Error::InvalidArgument(format!(
                "a message of {len} bytes exceeds the ring's max_message_size of {max} bytes"
            )));
        }
        Ok(())
    }

    fn corrupt(&self, c: Corrupt) -> Error {
        self.shared.ch.corrupt(c)
    }

    /// True in a process forked after this handle claimed the role: the role (and the right
    /// to write) stays with the parent; claim it again with [`Ring::producer`].
    pub fn is_inherited(&self) -> bool {
        self.role.inherited()
    }

    /// Capacity and limits.
    pub fn ring_capacity(&self) -> u64 {
        self.shared.g().capacity()
    }

    /// Writes one message into the ring without publishing it (see [`Producer::flush`]).
    /// `Ok(false)`: no room now.
    pub fn try_write(&mut self, data: &[u8]) -> Result<bool> {
        self.check_len(data.len())?;
        let ok = self
            .core
            .try_write(self.shared.control(), self.shared.ch.region(), data)
            .map_err(|c| self.corrupt(c))?;
        if ok {
            self.sent += 1;
        }
        Ok(ok)
    }

    /// Publishes everything written and wakes a sleeping consumer.
    pub fn flush(&mut self) {
        let c = self.shared.control();
        // SYNC: Release, before the head store: a reader that sees the head sees a count at
        // least this large (advisory).
        c.head.count.store(self.sent, Ordering::Release);
        if self.core.publish(c) {
            self.shared.ch.event(NOT_EMPTY_OFF).notify(&OsFutex);
        }
    }

    /// Writes and publishes one message; `Ok(false)` if the ring is full now.
    pub fn try_push(&mut self, data: &[u8]) -> Result<bool> {
        let ok = self.try_write(data)?;
        if ok {
            self.flush();
        }
        Ok(ok)
    }

    /// Writes and publishes one message, waiting for room at most `timeout` (`None`: no
    /// limit). [`ChannelError::Timeout`] if there is still no room then.
    pub fn push(
        &mut self,
        data: &[u8],
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<()> {
        if self.try_write(data)? {
            self.flush();
            return Ok(());
        }
        self.wait_room(data, deadline(timeout), interrupt, timeout)?;
        self.flush();
        Ok(())
    }

    fn wait_room(
        &mut self,
        data: &[u8],
        deadline: Option<Instant>,
        interrupt: Interrupt<'_>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        // Publish what we have first: the consumer may be waiting for it to make room.
        self.flush();
        let shared = self.shared.clone();
        let done = wait_for(shared.ch.event(NOT_FULL_OFF), deadline, interrupt, || {
            Ok(self.try_write(data)?.then_some(()))
        })?;
        done.ok_or_else(|| {
            Error::Channel(ChannelError::Timeout {
                what: "room in the ring",
                location: self.shared.location().clone(),
                timeout: timeout.unwrap_or_default(),
            })
        })
    }

    /// Writes every message of `items` in order, publishing once per run that fits and
    /// waiting for room as needed (each wait bounded by what is left of `timeout`). Returns
    /// how many were written before a timeout (then also [`ChannelError::Timeout`] if none).
    pub fn push_many<'a, I>(
        &mut self,
        items: I,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<usize>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let deadline = deadline(timeout);
        let mut n = 0;
        for data in items {
            if !self.try_write(data)? {
                match self.wait_room(data, deadline, &mut *interrupt, timeout) {
                    Ok(()) => {}
                    Err(Error::Channel(ChannelError::Timeout { .. })) if n > 0 => {
                        self.flush();
                        return Ok(n);
                    }
                    Err(e) => {
                        self.flush();
                        return Err(e);
                    }
                }
            }
            n += 1;
        }
        self.flush();
        Ok(n)
    }

    /// Reserves room for a message of `len` bytes written in place, waiting at most
    /// `timeout`. Write the payload through [`Producer::reservation_ptr`], then
    /// [`Producer::commit`]; dropping the reservation without committing abandons it.
    pub fn reserve(
        &mut self,
        len: usize,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Reservation> {
        self.check_len(len)?;
        let shared = self.shared.clone();
        let try_reserve = |p: &mut Producer| -> Result<Option<Reservation>> {
            p.core
                .reserve(shared.control(), shared.ch.region(), len as u64)
                .map(|r| r.map(|r| Reservation { r }))
                .map_err(|c| shared.ch.corrupt(c))
        };
        if let Some(r) = try_reserve(self)? {
            return Ok(r);
        }
        self.flush();
        let found = wait_for(
            shared.ch.event(NOT_FULL_OFF),
            deadline(timeout),
            interrupt,
            || try_reserve(self),
        )?;
        found.ok_or_else(|| {
            Error::Channel(ChannelError::Timeout {
                what: "room in the ring",
                location: self.shared.location().clone(),
                timeout: timeout.unwrap_or_default(),
            })
        })
    }

    /// Where a reservation's payload goes: valid for `r.len()` bytes until it is committed or
    /// another reservation is made. Nobody else reads or writes those bytes until then.
    pub fn reservation_ptr(&self, r: &Reservation) -> *mut u8 {
        let base = self.shared.ch.region().as_ptr().expect("mapped region");
        // SAFETY: the core placed the payload inside the region (offset + len <= capacity).
        unsafe { base.add(r.r.offset) }
    }

    /// Writes `data` into a reservation at `at` (a message written in pieces, such as the
    /// frame and parts of Python's `put_object`). Panics if it would go past the reservation.
    pub fn write(&self, r: &Reservation, at: usize, data: &[u8]) {
        assert!(
            at.checked_add(data.len()).is_some_and(|end| end <= r.len()),
            "write past the reservation"
        );
        self.shared.ch.region().write(r.r.offset + at, data);
    }

    /// Commits a reservation and publishes it.
    pub fn commit(&mut self, r: Reservation) {
        self.core.commit(r.r);
        self.sent += 1;
        self.flush();
    }
}

/// The consumer end (single owner: not `Clone`).
pub struct Consumer {
    shared: Arc<Shared>,
    core: ring_core::Consumer,
    received: u64,
    /// Messages consumed and not yet released.
    pending: u64,
    role: RoleLock,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("location", self.shared.location())
            .finish_non_exhaustive()
    }
}

/// A message found by [`Consumer::peek`]: readable in place until consumed.
#[derive(Debug, Clone, Copy)]
pub struct Message {
    m: ring_core::Message,
}

impl Message {
    /// Payload length.
    pub fn len(&self) -> usize {
        self.m.len as usize
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.m.len == 0
    }
}

impl Consumer {
    /// True in a process forked after this handle claimed the role (see
    /// [`Producer::is_inherited`]).
    pub fn is_inherited(&self) -> bool {
        self.role.inherited()
    }

    /// The next message without consuming it (`Ok(None)` if empty now).
    pub fn peek(&mut self) -> Result<Option<Message>> {
        let shared = &self.shared;
        self.core
            .peek(shared.control(), shared.ch.region())
            .map(|m| m.map(|m| Message { m }))
            .map_err(|c| shared.ch.corrupt(c))
    }

    /// Waits at most `timeout` for the next message without consuming it; `Ok(None)` on
    /// timeout. Releases what was consumed before waiting.
    pub fn peek_wait(
        &mut self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<Message>> {
        if let Some(m) = self.peek()? {
            return Ok(Some(m));
        }
        self.release();
        let shared = self.shared.clone();
        wait_for(
            shared.ch.event(NOT_EMPTY_OFF),
            deadline(timeout),
            interrupt,
            || self.peek(),
        )
    }

    /// Start of a message's payload, valid for `m.len()` bytes until it is consumed and
    /// released. The producer does not write those bytes until then.
    pub fn message_ptr(&self, m: &Message) -> *const u8 {
        let base = self.shared.ch.region().as_ptr().expect("mapped region");
        // SAFETY: the core validated offset + len against the region.
        unsafe { base.add(m.m.offset) }
    }

    /// Copies a message's payload out.
    pub fn read(&self, m: &Message, out: &mut [u8]) {
        self.shared
            .ch
            .region()
            .read(m.m.offset, &mut out[..m.len()]);
    }

    /// Consumes a peeked message (handed back to the producer at the next release).
    pub fn consume(&mut self, m: Message) {
        self.core.consume(m.m);
        self.pending += 1;
    }

    /// Hands consumed messages' space back to the producer and wakes it if it sleeps.
    pub fn release(&mut self) {
        if self.pending == 0 {
            return;
        }
        self.received += self.pending;
        self.pending = 0;
        // SYNC: Release: advisory count for `len`.
        self.shared
            .control()
            .tail
            .count
            .store(self.received, Ordering::Release);
        if self.core.release(self.shared.control()) {
            self.shared.ch.event(NOT_FULL_OFF).notify(&OsFutex);
        }
    }

    /// Drops every message waiting now and hands their space back; returns how many.
    pub fn clear(&mut self) -> Result<u64> {
        let mut n = 0;
        while let Some(m) = self.peek()? {
            self.consume(m);
            n += 1;
        }
        self.release();
        Ok(n)
    }

    /// Takes one message now (`Ok(None)` if empty).
    pub fn try_pop(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(m) = self.peek()? else {
            return Ok(None);
        };
        let mut out = vec![0u8; m.len()];
        self.read(&m, &mut out);
        self.consume(m);
        self.release();
        Ok(Some(out))
    }

    /// Takes one message, waiting at most `timeout`; `Ok(None)` on timeout.
    pub fn pop(
        &mut self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(m) = self.peek_wait(timeout, interrupt)? else {
            return Ok(None);
        };
        let mut out = vec![0u8; m.len()];
        self.read(&m, &mut out);
        self.consume(m);
        self.release();
        Ok(Some(out))
    }

    /// Bytes a message of `len` payload bytes occupies in the ring.
    pub fn record_size(len: usize) -> u64 {
        record_size(len as u64)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::channel::wait::no_interrupt;
    use std::time::Instant;

    fn loc(tag: &str) -> Location {
        crate::testing::unique_location("ring", tag)
    }

    #[test]
    fn create_open_push_pop() {
        let l = loc("basic");
        let ring = RingOptions::new(l.clone(), 1000).create().unwrap();
        assert_eq!(ring.capacity(), 1024);
        assert_eq!(ring.max_message_size(), 504);
        let mut tx = ring.producer().unwrap();
        let other = Ring::open(l.clone()).unwrap();
        let mut rx = other.consumer().unwrap();
        assert!(tx.try_push(b"one").unwrap());
        assert_eq!(ring.len().unwrap(), 1);
        assert_eq!(rx.try_pop().unwrap().unwrap(), b"one");
        assert_eq!(ring.len().unwrap(), 0);
        assert!(rx.try_pop().unwrap().is_none());
        Ring::remove(&l).unwrap();
    }

    #[test]
    fn clear_full_and_pieced_writes() {
        let l = loc("clear");
        let ring = RingOptions::new(l.clone(), 256).create().unwrap();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        assert!(ring.is_empty() && !ring.is_full());
        while tx.try_push(b"").unwrap() {}
        assert!(ring.is_full());
        assert_eq!(rx.clear().unwrap(), 256 / 8);
        assert!(ring.is_empty() && !ring.is_full());
        assert_eq!(rx.clear().unwrap(), 0);
        let r = tx.reserve(6, None, &mut || false).unwrap();
        tx.write(&r, 0, b"abc");
        tx.write(&r, 3, b"def");
        tx.commit(r);
        assert_eq!(rx.try_pop().unwrap().as_deref(), Some(&b"abcdef"[..]));
        Ring::remove(&l).unwrap();
    }

    #[test]
    fn roles_are_exclusive_until_dropped() {
        let l = loc("roles");
        let ring = RingOptions::new(l.clone(), 256).create().unwrap();
        let tx = ring.producer().unwrap();
        assert!(matches!(
            ring.producer(),
            Err(Error::Channel(ChannelError::RoleTaken {
                role: "producer",
                by_this_process: true,
                ..
            }))
        ));
        assert!(ring.role_held(Role::Producer).unwrap());
        assert!(!ring.role_held(Role::Consumer).unwrap());
        drop(tx);
        assert!(!ring.role_held(Role::Producer).unwrap());
        let _tx2 = ring.producer().unwrap();
        Ring::remove(&l).unwrap();
    }

    #[test]
    fn oversize_and_bad_capacity_are_refused() {
        let l = loc("bad");
        assert!(RingOptions::new(l.clone(), 0).create().is_err());
        assert!(RingOptions::new(l.clone(), MAX_CAPACITY + 1)
            .create()
            .is_err());
        assert!(RingOptions::new(l.clone(), 256)
            .max_message_size(121)
            .create()
            .is_err());
        let ring = RingOptions::new(l.clone(), 256)
            .max_message_size(16)
            .create()
            .unwrap();
        let mut tx = ring.producer().unwrap();
        assert!(matches!(
            tx.try_push(&[0; 17]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(tx.try_push(&[0; 16]).unwrap());
        Ring::remove(&l).unwrap();
    }

    #[test]
    fn blocking_pop_times_out_and_wakes() {
        let l = loc("block");
        let ring = RingOptions::new(l.clone(), 4096).create().unwrap();
        let mut rx = ring.consumer().unwrap();
        let t0 = Instant::now();
        assert!(rx
            .pop(Some(Duration::from_millis(30)), &mut no_interrupt)
            .unwrap()
            .is_none());
        assert!(t0.elapsed() >= Duration::from_millis(30));
        let r2 = ring.clone();
        let t = std::thread::spawn(move || {
            let mut tx = r2.producer().unwrap();
            std::thread::sleep(Duration::from_millis(50));
            tx.push(b"late", None, &mut no_interrupt).unwrap();
        });
        assert_eq!(
            rx.pop(Some(Duration::from_secs(10)), &mut no_interrupt)
                .unwrap()
                .unwrap(),
            b"late"
        );
        t.join().unwrap();
        Ring::remove(&l).unwrap();
    }

    #[test]
    fn threads_stream_in_order_through_a_small_ring() {
        let l = loc("stream");
        let ring = RingOptions::new(l.clone(), 256).create().unwrap();
        let r2 = ring.clone();
        let n = 100_000u32;
        let t = std::thread::spawn(move || {
            let mut tx = r2.producer().unwrap();
            let msgs: Vec<Vec<u8>> = (0..n)
                .map(|i| i.to_le_bytes().repeat((i % 7) as usize))
                .collect();
            let sent = tx
                .push_many(
                    msgs.iter().map(Vec::as_slice),
                    Some(Duration::from_secs(30)),
                    &mut no_interrupt,
                )
                .unwrap();
            assert_eq!(sent, n as usize);
        });
        let mut rx = ring.consumer().unwrap();
        for i in 0..n {
            let m = rx
                .pop(Some(Duration::from_secs(30)), &mut no_interrupt)
                .unwrap()
                .unwrap();
            assert_eq!(m, i.to_le_bytes().repeat((i % 7) as usize));
        }
        t.join().unwrap();
        Ring::remove(&l).unwrap();
    }

    #[test]
    fn corrupt_positions_poison_the_ring() {
        let l = loc("corrupt");
        let ring = RingOptions::new(l.clone(), 256).create().unwrap();
        ring.shared
            .control()
            .head
            .pos
            .store(4096, Ordering::Relaxed);
        assert!(matches!(
            ring.consumer(),
            Err(Error::Segment(SegmentError::Corrupt { .. }))
        ));
        assert!(matches!(
            Ring::open(l.clone()),
            Err(Error::Segment(SegmentError::Corrupt { .. }))
        ));
        Ring::remove(&l).unwrap();
    }
}
