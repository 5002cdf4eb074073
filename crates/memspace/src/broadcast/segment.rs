//! The segment-backed broadcast: its layout, creation and opening, the publisher role,
//! subscriptions and inspection, over the [`core`](super::core) protocol.
//!
//! This module owns the layout of a broadcast segment's lock area and the rules that tie the
//! protocol to processes: a subscriber's cursor is the line of its attachment slot, so "is this
//! subscriber alive?" is "is its attachment slot's lock held?" (see `shm::attach`), and every
//! process that takes a slot first marks that slot's line as holding no subscriber (a dead
//! predecessor's cursor is never mistaken for its own). It never interprets payloads.
//!
//! # Layout (kind [`Kind::Broadcast`]; offsets from the lock area, native-endian)
//!
//! | offset | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | `head` | u64 (atomic) | bytes published (the commit point) |
//! | 8 | `sent` | u64 (atomic) | messages published: the index of the next one |
//! | 16 | `tail` | u64 (atomic) | overwrite mode: the oldest record still intact (the seqlock word) |
//! | 24 | `version` | u64 (atomic) | odd while the publisher stores `sent` and `head` |
//! | 32 | `slots_used` | u64 (atomic) | 1 + the highest slot a subscriber joined in (bounds scans) |
//! | 128 | publisher role byte | - | the publisher holds an OFD write lock on this offset of the lock file (`shm::lockfile`) |
//! | 192 | `published` | eventcount (2 × u32) | subscribers sleep here; a publication wakes them all |
//! | 256 | `room` | eventcount (2 × u32) | block mode: the publisher sleeps here; subscribers wake it |
//! | 384 + 128·i | cursor line of slot i | 4 × u64 (atomic) | `pos` (bytes read; `u64::MAX`: no subscriber), `next` (next index), `gen`, `missed` |
//!
//! The data area is the byte ring (`capacity` bytes, a power of two) of the ring's records,
//! whose frame payload starts with the message's u64 index. The header's `kind_param` is
//! `frame_limit | overflow << 32`, where `frame_limit` is `max_message_size + 8` and `overflow` is
//! 0 (block) or 1 (overwrite). Each cursor line, and the publisher's line, has two cache lines
//! to itself.

use std::sync::Arc;

use std::time::{Duration, Instant};

use super::core::{self as bcore, Overflow, Unsettled, INDEX};
use super::endpoints::{Publisher, Subscriber};
use super::shared::{Shared, LINE, PUBLISHED_OFF, ROOM_OFF, SUBS_OFF};
use crate::channel::geometry::Geometry;
use crate::channel::role::{self, RoleLock};
use crate::channel::segment::ChannelSegment;
use crate::channel::signal::{Interest, Signal};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::lock::eventcount::OsFutex;
use crate::shm::error::SegmentError;
use crate::shm::header::{Kind, LayoutRequest, MAX_ATTACH_SLOTS};
use crate::shm::segment::{OpenTarget, Segment};
use crate::shm::structured::Structured;
use crate::sync::{AtomicU32, Ordering};

const PUBLISHER_ROLE_OFF: u64 = 128;
/// How long a joiner waits for a live publisher caught mid-publication.
const JOIN_PATIENCE: Duration = Duration::from_millis(100);

/// Bytes of the lock area of a broadcast with `slots` attachment slots.
fn lock_area(slots: u32) -> u64 {
    SUBS_OFF + LINE * u64::from(slots)
}

/// Smallest broadcast memspace creates (bytes).
pub const MIN_CAPACITY: u64 = 64;
/// Largest broadcast memspace creates (bytes): 2^40 = 1 TiB.
pub const MAX_CAPACITY: u64 = 1 << 40;
/// Default number of attachment slots: how many processes (publisher, subscribers, inspectors)
/// may be attached at once.
pub const DEFAULT_SLOTS: u32 = 64;

/// Builder for a new [`Broadcast`].
#[derive(Debug, Clone)]
pub struct BroadcastOptions {
    location: Location,
    capacity: u64,
    max_message_size: Option<u64>,
    overflow: Overflow,
    mode: u32,
    slots: u32,
}

impl BroadcastOptions {
    /// A broadcast of at least `capacity` bytes (rounded up to a power of two) at `location`,
    /// in [`Overflow::Block`] mode.
    pub fn new(location: Location, capacity: u64) -> BroadcastOptions {
        BroadcastOptions {
            location,
            capacity,
            max_message_size: None,
            overflow: Overflow::Block,
            mode: 0o600,
            slots: DEFAULT_SLOTS,
        }
    }

    /// The largest message (default and maximum: `capacity / 2 - 16`).
    #[must_use]
    pub fn max_message_size(mut self, n: u64) -> BroadcastOptions {
        self.max_message_size = Some(n);
        self
    }

    /// What the publisher does when a subscriber falls behind (default [`Overflow::Block`]).
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> BroadcastOptions {
        self.overflow = overflow;
        self
    }

    /// Permission bits (default `0o600`).
    #[must_use]
    pub fn mode(mut self, mode: u32) -> BroadcastOptions {
        self.mode = mode;
        self
    }

    /// How many processes may be attached at once (default [`DEFAULT_SLOTS`], at most 1024).
    #[must_use]
    pub fn slots(mut self, slots: u32) -> BroadcastOptions {
        self.slots = slots;
        self
    }

    /// Creates the broadcast (exclusively).
    pub fn create(self) -> Result<Broadcast> {
        let cap = self
            .capacity
            .checked_next_power_of_two()
            .filter(|c| *c <= MAX_CAPACITY && self.capacity > 0)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "broadcast capacity must be between 1 and {MAX_CAPACITY} bytes, not {}",
                    self.capacity
                ))
            })?
            .max(MIN_CAPACITY);
        if self.slots == 0 || self.slots > MAX_ATTACH_SLOTS {
            return Err(Error::InvalidArgument(format!(
                "a broadcast has between 1 and {MAX_ATTACH_SLOTS} attachment slots, not {}",
                self.slots
            )));
        }
        let limit = (Geometry::max_len_for(cap) - INDEX).min(u64::from(u32::MAX) - 1 - INDEX);
        let max_len = self.max_message_size.unwrap_or(limit);
        if max_len == 0 {
            return Err(Error::InvalidArgument(
                "max_message_size must be at least 1 byte".into(),
            ));
        }
        if max_len > limit {
            return Err(Error::InvalidArgument(format!(
                "max_message_size {max_len} is too large for a broadcast of {cap} bytes (at \
                 most {limit})"
            )));
        }
        let g = Geometry::new(cap, max_len + INDEX).expect("validated above");
        let slots = self.slots;
        let req = LayoutRequest {
            kind: Kind::Broadcast,
            attach_slots: slots,
            lock_size: lock_area(slots),
            data_size: cap,
            kind_param: (max_len + INDEX) | (self.overflow.bits() << 32),
        };
        // The segment is zero-filled: positions, counters and eventcounts start at 0; only the
        // cursors must start as "no subscriber".
        let init = |seg: &Segment, geo: &crate::shm::header::Geometry| -> Result<()> {
            for i in 0..u64::from(slots) {
                seg.write_at(geo.lock_off + SUBS_OFF + LINE * i, &u64::MAX.to_ne_bytes())?;
            }
            Ok(())
        };
        let st = Structured::create(self.location, self.mode, &req, &init, &|_| {})?;
        Broadcast::from_structured(st, g, self.overflow)
    }
}

/// A broadcast of byte messages from one publisher to any number of subscribers, in a named or
/// file-backed segment.
///
/// The handle itself holds no role: [`Broadcast::publisher`] claims the publisher role,
/// [`Broadcast::subscribe`] subscribes (one subscriber per handle: open the broadcast again for
/// another).
///
/// ```
/// use memspace::broadcast::{Broadcast, BroadcastOptions, Overflow};
/// use memspace::spsc::never_interrupted;
/// use memspace::Location;
///
/// let loc = Location::Name(format!("/memspace-doc-bcast-{}", std::process::id()));
/// let b = BroadcastOptions::new(loc.clone(), 4096).overflow(Overflow::Block).create()?;
/// let mut tx = b.publisher()?;
/// let mut a = Broadcast::open(loc.clone())?.subscribe()?;   // in any process
/// let mut c = Broadcast::open(loc.clone())?.subscribe()?;
/// tx.push(b"tick", None, &mut never_interrupted())?;
/// assert_eq!(a.try_recv()?.as_deref(), Some(&b"tick"[..]));
/// assert_eq!(c.try_recv()?.as_deref(), Some(&b"tick"[..]));
/// Broadcast::remove(&loc)?;
/// # Ok::<(), memspace::Error>(())
/// ```
#[derive(Clone)]
pub struct Broadcast {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Broadcast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcast")
            .field("location", self.shared.location())
            .field("capacity", &self.capacity())
            .field("overflow", &self.shared.overflow)
            .finish_non_exhaustive()
    }
}

/// One subscriber, for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberInfo {
    /// Its attachment slot.
    pub slot: u32,
    /// The pid of the process in the slot.
    pub pid: u32,
    /// Bytes read (its cursor).
    pub cursor: u64,
    /// The index of the next message it reads.
    pub next_index: u64,
    /// Messages published that it has not read (in overwrite mode, some may be gone).
    pub lag_messages: u64,
    /// Bytes published that it has not read, record headers and padding included.
    pub lag_bytes: u64,
    /// Messages it lost to laps (overwrite mode).
    pub missed: u64,
}

/// A snapshot for inspection.
#[derive(Debug, Clone)]
pub struct BroadcastInfo {
    /// Capacity in bytes.
    pub capacity: u64,
    /// Largest message.
    pub max_message_size: u64,
    /// The overflow mode.
    pub overflow: Overflow,
    /// Bytes published.
    pub head: u64,
    /// Messages published.
    pub published: u64,
    /// Overwrite mode: the oldest record still intact (0 in block mode).
    pub oldest: u64,
    /// Whether a live process holds the publisher role.
    pub publisher_alive: bool,
    /// The live subscribers.
    pub subscribers: Vec<SubscriberInfo>,
    /// Cursors left by subscribers that died (skipped by the publisher; cleared when their slot
    /// is taken again).
    pub dead_subscribers: u32,
}

impl Broadcast {
    fn from_structured(st: Structured, g: Geometry, overflow: Overflow) -> Result<Broadcast> {
        let shared = Shared {
            ch: ChannelSegment::new(st, g),
            overflow,
            subscribed: AtomicU32::new(0),
        };
        // Validate the shared positions once at attach (every later load is checked again),
        // then mark our slot as holding no subscriber.
        bcore::validate(g, overflow, shared.control()).map_err(|c| shared.corrupt(c))?;
        let slot = shared.own_slot()?;
        shared.take_slot(slot);
        Ok(Broadcast {
            shared: Arc::new(shared),
        })
    }

    /// Opens an existing broadcast (a [`Location`], or one with a [`Trust`](crate::Trust));
    /// refuses another kind or an inconsistent geometry.
    pub fn open(location: impl Into<OpenTarget>) -> Result<Broadcast> {
        let st = Structured::open(location, Kind::Broadcast, None, &|_| {})?;
        let geo = *st.geometry();
        let frame_limit = geo.kind_param & 0xFFFF_FFFF;
        let overflow = Overflow::from_bits(geo.kind_param >> 32);
        let g = Geometry::new(geo.data_size, frame_limit)
            .filter(|_| frame_limit >= INDEX && geo.lock_size >= lock_area(geo.attach_slots));
        let (Some(g), Some(overflow)) = (g, overflow) else {
            return Err(Error::Segment(SegmentError::IncompatibleLayout {
                location: st.location().clone(),
                reason: format!(
                    "a broadcast of {} bytes with parameter {:#x}, {} slots and a {}-byte lock \
                     area is not a valid broadcast geometry",
                    geo.data_size, geo.kind_param, geo.attach_slots, geo.lock_size
                ),
            }));
        };
        Broadcast::from_structured(st, g, overflow)
    }

    /// Removes the broadcast's segment.
    pub fn remove(location: &Location) -> Result<()> {
        Segment::unlink(location)
    }

    /// Where it lives.
    pub fn location(&self) -> &Location {
        self.shared.location()
    }

    /// The trust that opens this broadcast again in another process (for pickling).
    pub fn reopen_trust(&self) -> &crate::Trust {
        self.shared.ch.structured().reopen_trust()
    }

    /// Checks that the segment's file was not truncated under this handle (one `fstat`; see
    /// [`Structured::check_intact`]).
    pub fn check_intact(&self) -> Result<()> {
        self.shared.ch.structured().check_intact()
    }

    /// Capacity in bytes (a power of two).
    pub fn capacity(&self) -> u64 {
        self.shared.g().capacity()
    }

    /// Largest message in bytes.
    pub fn max_message_size(&self) -> u64 {
        self.shared.g().max_len() - INDEX
    }

    /// The overflow mode.
    pub fn overflow(&self) -> Overflow {
        self.shared.overflow
    }

    fn role_offset(&self) -> u64 {
        self.shared.ch.structured().geometry().lock_off + PUBLISHER_ROLE_OFF
    }

    /// Whether a live process holds the publisher role (a stopped one counts as alive).
    pub fn publisher_alive(&self) -> Result<bool> {
        role::is_held(self.shared.ch.structured(), self.role_offset())
    }

    /// Claims the publisher role; [`ChannelError::RoleTaken`](crate::ChannelError::RoleTaken)
    /// while another live process (or handle) holds it. A new publisher continues after what
    /// its dead predecessor published.
    pub fn publisher(&self) -> Result<Publisher> {
        let role = RoleLock::claim(self.shared.ch.structured(), self.role_offset(), "publisher")?;
        let core =
            bcore::Publisher::attach(self.shared.g(), self.shared.overflow, self.shared.control())
                .map_err(|c| self.shared.corrupt(c))?;
        Ok(Publisher::new(self.shared.clone(), core, role))
    }

    /// Subscribes: the subscriber sees every message published after this call returns, in
    /// order, exactly once (in overwrite mode: or is told how many it missed). One subscriber
    /// per handle at a time (`InvalidArgument` otherwise).
    pub fn subscribe(&self) -> Result<Subscriber> {
        // SYNC: AcqRel pairs with the Release store in `Subscriber`'s drop (or below): one
        // subscriber per handle, in this process only.
        if self.shared.subscribed.swap(1, Ordering::AcqRel) == 1 {
            return Err(Error::InvalidArgument(
                "this broadcast handle already has a subscriber: open the broadcast again for \
                 another"
                    .into(),
            ));
        }
        match self.join() {
            Ok(s) => Ok(s),
            Err(e) => {
                // SYNC: Release pairs with the swap above.
                self.shared.subscribed.store(0, Ordering::Release);
                Err(e)
            }
        }
    }

    fn join(&self) -> Result<Subscriber> {
        let s = &self.shared;
        let slot = s.own_slot()?;
        // A publisher caught between its two stores of (sent, head) finishes in nanoseconds
        // unless it died (then the pair is final) or is stopped or descheduled (then wait a
        // little, and settle for an index that is exact from the first message read).
        let start = Instant::now();
        let mut unsettled = || {
            if !self.publisher_alive().unwrap_or(true) {
                Unsettled::Final
            } else if start.elapsed() < JOIN_PATIENCE {
                std::thread::sleep(Duration::from_micros(50));
                Unsettled::Retry
            } else {
                Unsettled::Inexact
            }
        };
        let core = bcore::Subscriber::join(
            s.g(),
            s.overflow,
            s.control(),
            s.subs(),
            slot as usize,
            &mut unsettled,
        )
        .map_err(|c| s.corrupt(c))?;
        // The first cursor the join stored may have held a waiting publisher back.
        s.room_event().notify(&OsFutex);
        Ok(Subscriber::new(self.shared.clone(), core, slot))
    }

    /// A snapshot for inspection.
    pub fn info(&self) -> Result<BroadcastInfo> {
        let s = &self.shared;
        let (head, published, tail) = bcore::published(s.control()).map_err(|c| s.corrupt(c))?;
        let mut subscribers = Vec::new();
        let mut dead_subscribers = 0;
        for a in s.ch.structured().attachment().snapshot()? {
            let Some((cursor, next, missed)) =
                s.subs().get(a.slot as usize).and_then(bcore::slot_state)
            else {
                continue;
            };
            if !a.alive {
                dead_subscribers += 1;
                continue;
            }
            subscribers.push(SubscriberInfo {
                slot: a.slot,
                pid: a.pid,
                cursor,
                next_index: next,
                lag_messages: published.saturating_sub(next),
                lag_bytes: head.saturating_sub(cursor),
                missed,
            });
        }
        Ok(BroadcastInfo {
            capacity: self.capacity(),
            max_message_size: self.max_message_size(),
            overflow: s.overflow,
            head,
            published,
            oldest: if s.overflow == Overflow::Overwrite {
                tail
            } else {
                0
            },
            publisher_alive: self.publisher_alive()?,
            subscribers,
            dead_subscribers,
        })
    }

    /// The eventcount subscribers ([`Interest::Readable`]: notified after every publication)
    /// or a blocking publisher ([`Interest::Writable`]: notified when a subscriber's progress
    /// may have made room) sleeps on, for waiting without a thread per wait (see
    /// [`Waiter`](crate::Waiter)). A subscriber that dies notifies nobody: a waiter's
    /// [`RECHECK`](crate::RECHECK) makes the publisher try again and find it dead.
    pub fn signal(&self, interest: Interest) -> Signal {
        let off = match interest {
            Interest::Readable => PUBLISHED_OFF,
            Interest::Writable => ROOM_OFF,
        };
        Signal::new(self.shared.clone(), off)
    }

    /// Offset of the publisher's line (the lock area) in the segment (for inspection and
    /// tests).
    pub fn control_offset(&self) -> u64 {
        self.shared.ch.structured().geometry().lock_off
    }

    /// Offset of the byte ring in the segment (for inspection and tests).
    pub fn data_offset(&self) -> u64 {
        self.shared.ch.structured().geometry().data_off
    }

    /// Offset of attachment slot `slot`'s cursor line in the segment (for tests).
    pub fn cursor_offset(&self, slot: u32) -> u64 {
        self.control_offset() + SUBS_OFF + LINE * u64::from(slot)
    }
}
