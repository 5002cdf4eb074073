//! The broadcast's endpoints: the publisher (single owner) and a subscriber (one per handle),
//! with blocking waits over the [`core`](super::core) protocol.
//!
//! # Waiting
//!
//! Two eventcounts (see `lock::eventcount`): subscribers sleep on `published`, which every
//! publication notifies (one wake serves every sleeper; no system call when nobody sleeps), and
//! in block mode the publisher sleeps on `room`, which a subscriber notifies when it moves its
//! cursor, joins or leaves (a system call only while the publisher waits). A side that cannot
//! proceed first publishes or releases what it has (so no batch size can deadlock), then waits
//! with the channel layer's `wait_for`: spins briefly, then sleeps in slices of
//! [`WAIT_SLICE`](crate::lock::mutex::WAIT_SLICE), running the caller's interrupt check between
//! slices. Every attempt of a waiting publisher rescans the cursors, so a subscriber that died
//! while it held the publisher back is found dead at the first attempt after its cursor stopped
//! moving (the kernel released its attachment lock when it died).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::{self as bcore, Overflow, Peek, INDEX};
use super::shared::Shared;
use crate::channel::error::ChannelError;
use crate::channel::frame::{record_size, Region};
use crate::channel::role::RoleLock;
use crate::channel::wait::{deadline, wait_for};
use crate::error::{Error, Result};
use crate::lock::eventcount::OsFutex;
use crate::lock::mutex::Interrupt;
use crate::sync::Ordering;

/// The publisher (single owner: not `Clone`).
pub struct Publisher {
    shared: Arc<Shared>,
    core: bcore::Publisher,
    role: RoleLock,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("location", self.shared.location())
            .finish_non_exhaustive()
    }
}

/// Room reserved by [`Publisher::reserve`] for a message written in place.
#[derive(Debug, Clone, Copy)]
pub struct Reservation {
    r: bcore::Reservation,
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

impl Publisher {
    pub(super) fn new(shared: Arc<Shared>, core: bcore::Publisher, role: RoleLock) -> Publisher {
        Publisher { shared, core, role }
    }

    fn check_len(&self, len: usize) -> Result<()> {
        let max = self.shared.g().max_len() - INDEX;
        if len as u64 > max {
            return Err(Error::InvalidArgument(format!(
                "a message of {len} bytes exceeds the broadcast's max_message_size of {max} bytes"
            )));
        }
        Ok(())
    }

    fn timeout_error(&self, timeout: Option<Duration>) -> Error {
        Error::Channel(ChannelError::Timeout {
            what: "room in the broadcast",
            location: self.shared.location().clone(),
            timeout: timeout.unwrap_or_default(),
        })
    }

    /// True in a process forked after this handle claimed the role: the role (and the right
    /// to publish) stays with the parent; claim it again with
    /// [`Broadcast::publisher`](super::Broadcast::publisher).
    pub fn is_inherited(&self) -> bool {
        self.role.inherited()
    }

    /// The overflow mode.
    pub fn overflow(&self) -> Overflow {
        self.shared.overflow
    }

    /// Messages written so far (published or not): the index of the next one.
    pub fn sent(&self) -> u64 {
        self.core.sent()
    }

    /// One reservation attempt (the core rescans the cursors when its cached floor says no).
    fn attempt(&mut self, len: u64) -> Result<Option<bcore::Reservation>> {
        let s = &*self.shared;
        let mut alive = |slot: usize| s.is_alive(slot);
        self.core
            .reserve(s.control(), s.subs(), s.ch.region(), len, &mut alive)
            .map_err(|c| s.corrupt(c))
    }

    /// An attempt that does not wait, but looks twice: a laggard whose cursor did not move
    /// between the two looks is asked whether it lives, so that a dead one never makes a
    /// non-waiting call report "no room".
    fn attempt_now(&mut self, len: u64) -> Result<Option<bcore::Reservation>> {
        match self.attempt(len)? {
            Some(r) => Ok(Some(r)),
            None => self.attempt(len),
        }
    }

    fn write_reserved(&mut self, r: bcore::Reservation, data: &[u8]) {
        self.shared.ch.region().write(r.offset, data);
        self.core.commit(r);
    }

    /// Writes one message without publishing it (see [`Publisher::flush`]). `Ok(false)`: no
    /// room now (block mode: the slowest live subscriber has not read far enough; overwrite
    /// mode never refuses).
    pub fn try_write(&mut self, data: &[u8]) -> Result<bool> {
        self.check_len(data.len())?;
        match self.attempt_now(data.len() as u64)? {
            Some(r) => {
                self.write_reserved(r, data);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Publishes everything written and wakes every sleeping subscriber.
    pub fn flush(&mut self) {
        if self.core.publish(self.shared.control()) {
            self.shared.published_event().notify(&OsFutex);
        }
    }

    /// Writes and publishes one message; `Ok(false)` if there is no room now.
    pub fn try_push(&mut self, data: &[u8]) -> Result<bool> {
        let ok = self.try_write(data)?;
        if ok {
            self.flush();
        }
        Ok(ok)
    }

    /// Writes and publishes one message, waiting for room at most `timeout` (`None`: no
    /// limit; block mode only: overwrite mode never waits). [`ChannelError::Timeout`] if there
    /// is still no room then.
    pub fn push(
        &mut self,
        data: &[u8],
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<()> {
        if !self.try_write(data)? {
            self.wait_write(data, deadline(timeout), interrupt, timeout)?;
        }
        self.flush();
        Ok(())
    }

    fn wait_room(
        &mut self,
        len: u64,
        until: Option<Instant>,
        interrupt: Interrupt<'_>,
        timeout: Option<Duration>,
    ) -> Result<bcore::Reservation> {
        // Publish what we have first: subscribers may be waiting for it to make room.
        self.flush();
        let shared = self.shared.clone();
        wait_for(shared.room_event(), until, interrupt, || self.attempt(len))?
            .ok_or_else(|| self.timeout_error(timeout))
    }

    fn wait_write(
        &mut self,
        data: &[u8],
        until: Option<Instant>,
        interrupt: Interrupt<'_>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let r = self.wait_room(data.len() as u64, until, interrupt, timeout)?;
        self.write_reserved(r, data);
        Ok(())
    }

    /// Writes every message of `items` in order, publishing once per run that fits and
    /// waiting for room as needed (all waits bounded by `timeout` in total). Returns how many
    /// were written before a timeout (then [`ChannelError::Timeout`] if none was).
    pub fn push_many<'a, I>(
        &mut self,
        items: I,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<usize>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let until = deadline(timeout);
        let mut n = 0;
        for data in items {
            if !self.try_write(data)? {
                match self.wait_write(data, until, &mut *interrupt, timeout) {
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
    /// `timeout`. Write the payload through [`Publisher::reservation_ptr`], then
    /// [`Publisher::commit`]; dropping the reservation without committing abandons it.
    pub fn reserve(
        &mut self,
        len: usize,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Reservation> {
        self.check_len(len)?;
        if let Some(r) = self.attempt_now(len as u64)? {
            return Ok(Reservation { r });
        }
        if timeout == Some(Duration::ZERO) {
            return Err(self.timeout_error(timeout));
        }
        let r = self.wait_room(len as u64, deadline(timeout), interrupt, timeout)?;
        Ok(Reservation { r })
    }

    /// Where a reservation's payload goes: valid for `r.len()` bytes until it is committed or
    /// another reservation is made. No subscriber reads those bytes until then.
    pub fn reservation_ptr(&self, r: &Reservation) -> *mut u8 {
        let base = self.shared.ch.region().as_ptr().expect("mapped region");
        // SAFETY: the core placed the payload inside the region (offset + len <= capacity).
        unsafe { base.add(r.r.offset) }
    }

    /// Commits a reservation and publishes it.
    pub fn commit(&mut self, r: Reservation) {
        self.core.commit(r.r);
        self.flush();
    }
}

/// A message found by [`Subscriber::peek`]: readable in place until consumed (see
/// [`Subscriber::validate`] for what overwrite mode promises about it).
#[derive(Debug, Clone, Copy)]
pub struct Message {
    m: bcore::Message,
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

    /// The message's index: 0 for the first message ever published, then one more per message.
    pub fn index(&self) -> u64 {
        self.m.index
    }
}

/// A subscriber (single owner: not `Clone`; one per [`Broadcast`](super::Broadcast) handle).
/// Dropping it unsubscribes.
pub struct Subscriber {
    shared: Arc<Shared>,
    core: bcore::Subscriber,
    slot: u32,
    fork_gen: u64,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("location", self.shared.location())
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    pub(super) fn new(shared: Arc<Shared>, core: bcore::Subscriber, slot: u32) -> Subscriber {
        Subscriber {
            shared,
            core,
            slot,
            fork_gen: crate::sync::fork_generation(),
        }
    }

    /// True in a process forked after this subscriber joined: its cursor belongs to the
    /// parent; subscribe again in the child.
    pub fn is_inherited(&self) -> bool {
        self.fork_gen != crate::sync::fork_generation()
    }

    /// The attachment slot whose cursor line this subscriber uses.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    fn lagged(&mut self) -> Error {
        Error::Channel(ChannelError::Lagged {
            location: self.shared.location().clone(),
            missed: self.core.take_missed(),
        })
    }

    /// The next message without consuming it (`Ok(None)` if there is none now).
    /// [`ChannelError::Lagged`] (overwrite mode) if the publisher lapped this subscriber: the
    /// error says how many messages it missed, and the next call continues with the oldest
    /// message still there.
    pub fn peek(&mut self) -> Result<Option<Message>> {
        let s = &*self.shared;
        match self
            .core
            .peek(s.control(), s.ch.region())
            .map_err(|c| s.corrupt(c))?
        {
            Peek::Message(m) => Ok(Some(Message { m })),
            Peek::Empty | Peek::Contended => Ok(None),
            Peek::Lagged => Err(self.lagged()),
        }
    }

    /// The next message for a batch that already holds some: like [`Subscriber::peek`], but a
    /// lap ends the batch (`Ok(None)`) and is reported by the next `peek`.
    pub fn peek_more(&mut self) -> Result<Option<Message>> {
        let s = &*self.shared;
        match self
            .core
            .peek(s.control(), s.ch.region())
            .map_err(|c| s.corrupt(c))?
        {
            Peek::Message(m) => Ok(Some(Message { m })),
            Peek::Empty | Peek::Contended | Peek::Lagged => Ok(None),
        }
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
        if timeout == Some(Duration::ZERO) {
            return Ok(None);
        }
        let shared = self.shared.clone();
        wait_for(
            shared.published_event(),
            deadline(timeout),
            interrupt,
            || self.peek(),
        )
    }

    /// Start of a message's payload, valid for `m.len()` bytes until it is consumed and
    /// released. In block mode the publisher does not write those bytes until then; in
    /// overwrite mode it may, and [`Subscriber::validate`] tells afterwards.
    pub fn message_ptr(&self, m: &Message) -> *const u8 {
        let base = self.shared.ch.region().as_ptr().expect("mapped region");
        // SAFETY: the core validated offset + len against the region.
        unsafe { base.add(m.m.offset) }
    }

    /// Copies a message's payload out (at most `out.len()` bytes); overwrite mode: then
    /// [`Subscriber::validate`] the copy.
    pub fn read(&self, m: &Message, out: &mut [u8]) {
        let n = m.len().min(out.len());
        self.shared.ch.region().read_racy(m.m.offset, &mut out[..n]);
    }

    /// After reading `m` (a copy, or in place): `Ok(())` if what was read is intact.
    /// Overwrite mode: [`ChannelError::Lagged`] if the publisher may have written over it
    /// meanwhile (discard what was read; `m` counts among the missed, and the subscriber
    /// continues with the oldest message still there). Block mode: always `Ok(())`.
    pub fn validate(&mut self, m: &Message) -> Result<()> {
        let s = &*self.shared;
        if self
            .core
            .validate(s.control(), s.ch.region(), &m.m)
            .map_err(|c| s.corrupt(c))?
        {
            Ok(())
        } else {
            Err(self.lagged())
        }
    }

    /// [`Subscriber::validate`] for a batch that already holds some: `Ok(false)` if `m` may
    /// have been written over (then the lap is reported by the next [`Subscriber::peek`]).
    pub fn is_intact(&mut self, m: &Message) -> Result<bool> {
        let s = &*self.shared;
        self.core
            .validate(s.control(), s.ch.region(), &m.m)
            .map_err(|c| s.corrupt(c))
    }

    /// Consumes a peeked message (its space is handed back at the next release).
    #[allow(clippy::needless_pass_by_value)] // taken by value so it cannot be consumed twice
    pub fn consume(&mut self, m: Message) {
        self.core.consume(&m.m);
    }

    /// Stores the cursor (block mode: wakes the publisher if it waits for room).
    pub fn release(&mut self) {
        let line = &self.shared.subs()[self.slot as usize];
        if self.core.release(line) && self.shared.overflow == Overflow::Block {
            self.shared.room_event().notify(&OsFutex);
        }
    }

    /// Takes one message now (`Ok(None)` if there is none).
    pub fn try_recv(&mut self) -> Result<Option<Vec<u8>>> {
        self.recv(
            Some(Duration::ZERO),
            &mut crate::channel::wait::no_interrupt,
        )
    }

    /// Takes one message, waiting at most `timeout`; `Ok(None)` on timeout;
    /// [`ChannelError::Lagged`] as for [`Subscriber::peek`].
    pub fn recv(
        &mut self,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Option<Vec<u8>>> {
        let Some(m) = self.peek_wait(timeout, interrupt)? else {
            return Ok(None);
        };
        let mut out = vec![0u8; m.len()];
        self.read(&m, &mut out);
        self.validate(&m)?;
        self.consume(m);
        self.release();
        Ok(Some(out))
    }

    /// Takes up to `max` messages: waits at most `timeout` for the first, then takes what is
    /// there. A lap noticed after the first message ends the batch (the next call reports it).
    pub fn recv_many(
        &mut self,
        max: usize,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut next = self.peek_wait(timeout, interrupt)?;
        while let Some(m) = next {
            let mut v = vec![0u8; m.len()];
            self.read(&m, &mut v);
            if out.is_empty() {
                self.validate(&m)?;
            } else if !self.is_intact(&m)? {
                break;
            }
            self.consume(m);
            out.push(v);
            if out.len() >= max {
                break;
            }
            next = self.peek_more()?;
        }
        self.release();
        Ok(out)
    }

    /// Messages published that this subscriber has not read yet (in overwrite mode some of
    /// them may be gone).
    pub fn lag(&self) -> Result<u64> {
        let s = &*self.shared;
        let (_, sent, _) = bcore::published(s.control()).map_err(|c| s.corrupt(c))?;
        Ok(sent.saturating_sub(self.core.next_index()))
    }

    /// Messages this subscriber lost to laps in all (overwrite mode).
    pub fn missed(&self) -> u64 {
        self.core.total_missed()
    }

    /// Bytes a message of `len` payload bytes occupies in the broadcast's area.
    pub fn record_size(len: usize) -> u64 {
        record_size(INDEX + len as u64)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // After a fork the line belongs to the parent's subscriber: leave it alone.
        if !self.is_inherited() {
            if let Some(line) = self.shared.subs().get(self.slot as usize) {
                line.clear(false);
            }
            self.shared.room_event().notify(&OsFutex);
        }
        // SYNC: Release pairs with the AcqRel swap in `Broadcast::subscribe`.
        self.shared.subscribed.store(0, Ordering::Release);
    }
}
