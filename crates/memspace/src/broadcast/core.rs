//! The broadcast's data path: one publisher, many subscribers that each read every record,
//! without waiting.
//!
//! # Algorithm
//!
//! The ring's records (see `channel::frame`) in a power-of-two byte area addressed by monotonic
//! 64-bit positions, with one `head` and one cursor per subscriber, in the style of the
//! Disruptor's multicast ring and of the Linux `perf` buffer's overwrite mode:
//!
//! - `head` counts bytes the publisher has **published**. It writes records beyond `head`
//!   privately, then stores the new `head` (`SeqCst`): that single store commits them. Every data
//!   record's frame payload starts with the message's **index** (u64, native-endian): 0, 1, 2 ...
//!   in publication order, never repeated; a publisher that died with an unpublished batch
//!   leaves a gap (its successor continues from the count it stored).
//! - A subscriber's **cursor** (its slot's line, below) is the position up to which it has
//!   read. It reads records between its position and `head`, then stores the cursor.
//!
//! **Block mode**: the publisher never writes a byte that a live subscriber has not read:
//! a write may reach `floor + capacity`, where `floor` is the lowest cursor found at the last
//! scan (or the published head if there is none). The floor is cached: the publisher rescans
//! the cursors only when the cached floor says "no room", and checks the liveness of a
//! subscriber (a system call, in the segment layer) only when that subscriber holds it back
//! and its cursor has not moved since the previous scan. A subscriber found dead is skipped
//! from then on (until its slot changes hands, which bumps the slot's `gen`).
//!
//! **Overwrite mode**: the publisher never waits and never looks at cursors. `tail` is the
//! start of the oldest record still intact; before writing over old records the publisher
//! raises `tail` past them (a Release store and a Release fence, *then* the new bytes): `tail`
//! is a seqlock's sequence. A subscriber copies a record (racily), then re-reads `tail` after
//! an Acquire fence; if `tail` passed the record's position, the copy may be torn and is
//! discarded. A subscriber whose position is below `tail` was lapped: it jumps to the record at
//! `tail`, reads that record's index (validated the same way), and the difference from the index
//! it expected is the exact number of messages it missed.
//!
//! # Joining (the handshake)
//!
//! A new subscriber must never read bytes the publisher may already be overwriting. It stores a
//! cursor `h0` (a head it read), then (`SeqCst` fence order, `sync::handshake_fence`) re-reads the
//! head `h1` and starts reading at `h1` (storing it if it differs). The publisher's scan loads
//! the cursors (`SeqCst`) after its last head store (`SeqCst`). In the single order of those
//! operations either the scan sees the cursor (and respects it, `h0 <= h1`) or the scan comes
//! first, and then the head it had published is `<= h1`: what that scan allowed overwrites only
//! bytes below the floor it found, `<= h1`. The loom model `loom_join_never_reads_overwritten`
//! checks this.
//!
//! The pair (`head`, `sent`) that a joiner starts from is read under a seqlock of its own
//! (`version`, odd while the publisher stores the pair), so that the message index a subscriber
//! expects first is exact and a lap before its first read is counted exactly too.
//!
//! # Invariants (checked on every load: the other side may be dead, buggy or hostile)
//!
//! Positions are multiples of 8; `head` never moves back; a live subscriber's cursor is at most
//! `head`; in block mode `head - cursor <= capacity` for every live subscriber; in overwrite
//! mode `tail <= head <= tail + capacity` (the publisher publishes before it retires a record it
//! has not published yet). Every record header and index is checked against the geometry and
//! the indices already seen; in overwrite mode a check that fails is first re-validated against
//! `tail` (a torn read is a lap, not corruption). Every loop advances a position or is bounded.
//!
//! This module owns the protocol and its validation; it never waits, never calls the OS and
//! touches the data area only through a [`Region`].

use crate::channel::frame::{record_size, RecordHeader, Region, HEADER};
use crate::channel::geometry::{Corrupt, Geometry};
use crate::sync::{fence, handshake_fence, spin_loop, AtomicU64, Ordering};

/// Bytes of the message index at the start of every data record's frame payload.
pub(crate) const INDEX: u64 = 8;
/// The cursor of a slot that holds no subscriber.
pub(crate) const INACTIVE: u64 = u64::MAX;

/// How many laps a subscriber's read (or a resynchronisation) retries before it reports
/// [`Peek::Contended`]: only a publisher that laps a whole area in the time of one record's copy
/// gets there.
#[cfg(not(loom))]
const ATTEMPTS: u32 = 64;
#[cfg(loom)]
const ATTEMPTS: u32 = 3;
/// Spins a joiner waits for the publisher to finish storing (`sent`, `head`).
#[cfg(not(loom))]
const SNAPSHOT_SPINS: u32 = 1 << 12;
#[cfg(loom)]
const SNAPSHOT_SPINS: u32 = 2;

/// What the publisher does when the slowest subscriber has not read the bytes it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overflow {
    /// Wait for the slowest live subscriber (a dead one is dropped at once).
    Block,
    /// Never wait: overwrite the oldest messages; a subscriber that falls a lap behind is told
    /// how many it missed.
    Overwrite,
}

impl Overflow {
    /// `"block"` or `"overwrite"`.
    pub fn name(self) -> &'static str {
        match self {
            Overflow::Block => "block",
            Overflow::Overwrite => "overwrite",
        }
    }

    /// Parses [`Overflow::name`].
    pub fn parse(s: &str) -> Option<Overflow> {
        match s {
            "block" => Some(Overflow::Block),
            "overwrite" => Some(Overflow::Overwrite),
            _ => None,
        }
    }

    pub(crate) fn bits(self) -> u64 {
        match self {
            Overflow::Block => 0,
            Overflow::Overwrite => 1,
        }
    }

    pub(crate) fn from_bits(b: u64) -> Option<Overflow> {
        match b {
            0 => Some(Overflow::Block),
            1 => Some(Overflow::Overwrite),
            _ => None,
        }
    }
}

/// The publisher's line: what it publishes. Only atomics, so a shared reference over shared
/// memory is sound.
///
/// Layout (128 bytes, 64-aligned): `head` u64 at 0, `sent` u64 at 8 (messages published: the
/// index of the next one), `tail` u64 at 16 (overwrite mode: the oldest intact record),
/// `version` u64 at 24 (odd while `sent` and `head` are being stored), `slots_used` u64 at 32
/// (1 + the highest slot a subscriber ever joined in: the publisher's scans stop there; clamped
/// to the slot count when read); the rest reserved (zero). All-zero bytes are the valid
/// initial state.
#[repr(C, align(64))]
pub(crate) struct PubLine {
    pub(crate) head: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) tail: AtomicU64,
    pub(crate) version: AtomicU64,
    pub(crate) slots_used: AtomicU64,
    _pad: [AtomicU64; 11],
}

/// One subscriber's line, one per attachment slot. Only atomics.
///
/// Layout (128 bytes, 64-aligned): `pos` u64 at 0 (the cursor: bytes read; [`INACTIVE`] when
/// the slot holds no subscriber), `next` u64 at 8 (the index of the next message it reads;
/// advisory), `gen` u64 at 16 (incremented by every process that takes the slot and by every
/// join), `missed` u64 at 24 (messages it lost to laps; advisory); the rest reserved.
#[repr(C, align(64))]
pub(crate) struct SubLine {
    pub(crate) pos: AtomicU64,
    pub(crate) next: AtomicU64,
    pub(crate) gen: AtomicU64,
    pub(crate) missed: AtomicU64,
    _pad: [AtomicU64; 12],
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<PubLine>() == 128);
    assert!(std::mem::align_of::<PubLine>() == 64);
    assert!(std::mem::size_of::<SubLine>() == 128);
    assert!(std::mem::align_of::<SubLine>() == 64);
};

impl PubLine {
    /// A zeroed line on the heap (tests and loom models).
    #[cfg(test)]
    pub(crate) fn new() -> PubLine {
        PubLine {
            head: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            version: AtomicU64::new(0),
            slots_used: AtomicU64::new(0),
            _pad: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl SubLine {
    /// An inactive line on the heap (tests and loom models).
    #[cfg(test)]
    pub(crate) fn new() -> SubLine {
        SubLine {
            pos: AtomicU64::new(INACTIVE),
            next: AtomicU64::new(0),
            gen: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            _pad: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Marks the slot as holding no subscriber (a process that takes the slot, or a
    /// subscriber that leaves). `SeqCst`: the change of condition a blocked publisher's room
    /// eventcount orders against.
    pub(crate) fn clear(&self, new_holder: bool) {
        if new_holder {
            // SYNC: SeqCst with the cursor store below: a publisher that reads the cursor
            // this process stores later reads this generation or a later one.
            self.gen.fetch_add(1, Ordering::SeqCst);
        }
        self.pos.store(INACTIVE, Ordering::SeqCst);
    }
}

/// Every position is below this (2^63 bytes: centuries of publishing), so that a position plus
/// a record or a lap never wraps. A larger one in the segment is corruption.
pub(crate) const POS_LIMIT: u64 = 1 << 63;

fn check_pos(what: &str, pos: u64) -> Result<(), Corrupt> {
    if pos % 8 != 0 || pos >= POS_LIMIT {
        return Err(Corrupt(format!(
            "broadcast {what} {pos} is not a record position"
        )));
    }
    Ok(())
}

/// What a joiner does when the publisher has been between its two version stores (`publish`)
/// for every spin of a snapshot: the segment layer decides, since it knows whether the
/// publisher's role is held and how long it has waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsettled {
    /// Look again (the publisher lives: it finishes its publication in a moment).
    Retry,
    /// The publisher role is free (its holder died mid-publication): the pair as stored is
    /// where the next publisher continues (see [`Publisher::attach`]), hence exact.
    Final,
    /// Give up on exactness (a publisher stopped mid-publication): take `head`, and `sent`
    /// loaded after it (at least the index of the record at `head`).
    Inexact,
}

/// The (`head`, `sent`) pair as one publication stored it, and whether it is exact (see the
/// module docs). The head load is `SeqCst`: it is the second half of a joiner's handshake.
/// `Ok(None)` if the publisher was mid-publication at every spin and there is no `unsettled`
/// to ask.
fn snapshot(
    ctl: &PubLine,
    mut unsettled: Option<&mut dyn FnMut() -> Unsettled>,
) -> Result<Option<(u64, u64, bool)>, Corrupt> {
    loop {
        for _ in 0..SNAPSHOT_SPINS {
            // SYNC: Acquire pairs with the Release store of the even version in `publish`.
            let v1 = ctl.version.load(Ordering::Acquire);
            if v1 % 2 == 0 {
                // SYNC: Relaxed: ordered by the version loads and the fence below.
                let sent = ctl.sent.load(Ordering::Relaxed);
                let head = ctl.head.load(Ordering::SeqCst);
                // SYNC: the Acquire fence orders the two loads above before the re-check; pairs
                // with the Release fence after the odd version store in `publish`.
                fence(Ordering::Acquire);
                // SYNC: Relaxed: ordered by the fence above.
                if ctl.version.load(Ordering::Relaxed) == v1 {
                    check_pos("head", head)?;
                    return Ok(Some((head, sent, true)));
                }
            }
            spin_loop();
        }
        let Some(f) = unsettled.as_mut() else {
            return Ok(None);
        };
        match f() {
            Unsettled::Retry => {}
            Unsettled::Final => {
                // Nobody stores the pair now; a new publisher that takes over meanwhile
                // changes the version first (`attach`), which the re-check sees.
                // SYNC: as in the loop above.
                let v1 = ctl.version.load(Ordering::Acquire);
                // SYNC: Acquire pairs with the dead publisher's stores.
                let sent = ctl.sent.load(Ordering::Acquire);
                let head = ctl.head.load(Ordering::SeqCst);
                // SYNC: as in the loop above.
                fence(Ordering::Acquire);
                // SYNC: Relaxed: ordered by the fence above.
                if ctl.version.load(Ordering::Relaxed) == v1 {
                    check_pos("head", head)?;
                    return Ok(Some((head, sent, true)));
                }
            }
            Unsettled::Inexact => {
                let head = ctl.head.load(Ordering::SeqCst);
                // SYNC: Acquire, after the head: `sent` is stored before `head`, so this is at
                // least the index of the record at `head`.
                let sent = ctl.sent.load(Ordering::Acquire);
                check_pos("head", head)?;
                return Ok(Some((head, sent, false)));
            }
        }
    }
}

/// Checks the publisher's line of a segment being opened (never writes).
pub(crate) fn validate(g: Geometry, mode: Overflow, ctl: &PubLine) -> Result<(), Corrupt> {
    // SYNC: Acquire loads pair with the publisher's Release and SeqCst stores.
    let head = ctl.head.load(Ordering::Acquire);
    check_pos("head", head)?;
    if mode == Overflow::Overwrite {
        // A live publisher may go on between the loads: the head loaded before the tail is at
        // most a lap ahead of it, the one loaded after it at least the tail (see
        // `Subscriber::load_tail`); each bound is checked against the head it holds for.
        // SYNC: Acquire, as above.
        let tail = ctl.tail.load(Ordering::Acquire);
        // SYNC: Acquire, as above.
        let later = ctl.head.load(Ordering::Acquire);
        check_pos("head", later)?;
        check_tail(g, head, tail, later)?;
    }
    Ok(())
}

/// Overwrite mode: `tail` against a head loaded before it (at most a lap ahead) and one loaded
/// after it (at least the tail).
fn check_tail(g: Geometry, before: u64, tail: u64, after: u64) -> Result<(), Corrupt> {
    check_pos("tail", tail)?;
    if tail > after || before.saturating_sub(tail) > g.capacity() {
        return Err(Corrupt(format!(
            "broadcast positions are impossible (head {before}, oldest record {tail}, \
             capacity {})",
            g.capacity()
        )));
    }
    Ok(())
}

/// Room reserved by [`Publisher::reserve`]: write `len` bytes at `offset`, then commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reservation {
    /// Padding in front of the record (to the end of the lap).
    pad: u64,
    /// Offset of the payload in the region.
    pub(crate) offset: usize,
    /// Payload length.
    pub(crate) len: u64,
}

/// The publisher's private state.
#[derive(Debug)]
pub(crate) struct Publisher {
    g: Geometry,
    mode: Overflow,
    /// End of what has been written (published or not).
    head: u64,
    /// What subscribers see.
    published: u64,
    /// Index of the next message written.
    sent: u64,
    /// The pair's seqlock (even between publications).
    version: u64,
    /// Block mode: writes may reach `floor + capacity` (see the module docs).
    floor: u64,
    /// Overwrite mode: the oldest intact record (as stored in the line).
    tail: u64,
    /// Slots (and their generation) whose subscriber was found dead.
    dead: Vec<(usize, u64)>,
    /// Subscribers (slot, generation, cursor) that held the publisher back at the last scan.
    suspects: Vec<(usize, u64, u64)>,
    next_suspects: Vec<(usize, u64, u64)>,
}

impl Publisher {
    /// Takes over the publisher side from `ctl` (a fresh broadcast, or one whose previous
    /// publisher is gone: what it wrote but did not publish is discarded).
    pub(crate) fn attach(g: Geometry, mode: Overflow, ctl: &PubLine) -> Result<Publisher, Corrupt> {
        // SYNC: Acquire loads pair with the previous publisher's Release and SeqCst stores: a
        // takeover continues exactly after what was published.
        let mut version = ctl.version.load(Ordering::Acquire);
        let sent = ctl.sent.load(Ordering::Acquire);
        let head = ctl.head.load(Ordering::Acquire);
        let tail = ctl.tail.load(Ordering::Acquire);
        // The values kept are the ones checked (a hostile peer may change the line meanwhile;
        // nobody else publishes). In block mode `tail` is unused: keep it at the head.
        check_pos("head", head)?;
        let tail = match mode {
            Overflow::Block => head,
            Overflow::Overwrite => {
                check_tail(g, head, tail, head)?;
                tail
            }
        };
        if version % 2 == 1 {
            // Our predecessor died between its version stores: the pair as stored (`sent`
            // stored first, so at most a gap in the indices) is where we continue. Make it
            // consistent for joiners, who wait while the version is odd.
            version = version.wrapping_add(1);
            // SYNC: Release pairs with the Acquire version loads in `snapshot`.
            ctl.version.store(version, Ordering::Release);
        }
        Ok(Publisher {
            g,
            mode,
            head,
            published: head,
            sent,
            version,
            // No write before the first scan (a live subscriber's cursor is >= head - capacity).
            floor: head.saturating_sub(g.capacity()),
            tail,
            dead: Vec::new(),
            suspects: Vec::new(),
            next_suspects: Vec::new(),
        })
    }

    /// Messages written so far (the index of the next one).
    pub(crate) fn sent(&self) -> u64 {
        self.sent
    }

    /// Reserves room for a payload of `len` bytes (writing padding, the header and the index),
    /// without making it visible. `Ok(None)` (block mode only) if the slowest live subscriber
    /// has not read the bytes needed. `subs` are the cursor lines of the attachment slots that
    /// may hold a subscriber; `alive(slot)` tells whether a slot's holder lives (asked only of a
    /// subscriber that holds the publisher back and has not moved since the last scan).
    pub(crate) fn reserve<R: Region>(
        &mut self,
        ctl: &PubLine,
        subs: &[SubLine],
        region: &R,
        len: u64,
        alive: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Option<Reservation>, Corrupt> {
        debug_assert!(
            INDEX + len <= self.g.max_len(),
            "callers check the message size"
        );
        let rec = record_size(INDEX + len);
        let off = self.g.offset(self.head);
        let to_end = self.g.capacity() - off;
        let pad = if rec > to_end { to_end } else { 0 };
        if self.head + pad + rec >= POS_LIMIT {
            return Err(Corrupt(format!(
                "the broadcast's positions are exhausted (head {})",
                self.head
            )));
        }
        match self.mode {
            Overflow::Block => {
                if !self.has_room(ctl, subs, pad + rec, alive)? {
                    return Ok(None);
                }
            }
            Overflow::Overwrite => self.make_room(ctl, region, pad + rec)?,
        }
        let mut at = off;
        if pad > 0 {
            region.write(
                at as usize,
                &RecordHeader::Padding { len: pad - HEADER }.encode(),
            );
            at = 0;
        }
        region.write(
            at as usize,
            &RecordHeader::Data { len: INDEX + len }.encode(),
        );
        region.write((at + HEADER) as usize, &self.sent.to_ne_bytes());
        Ok(Some(Reservation {
            pad,
            offset: (at + HEADER + INDEX) as usize,
            len,
        }))
    }

    /// Makes a reserved message part of the next publication. (A reservation that is never
    /// committed is abandoned: the next one writes over it, padding included.)
    pub(crate) fn commit(&mut self, r: Reservation) {
        self.head += r.pad + record_size(INDEX + r.len);
        // Wrapping: `sent` came from the segment; a wrapped index is refused by subscribers.
        self.sent = self.sent.wrapping_add(1);
    }

    /// Writes one message (reserve, copy, commit). `Ok(false)`: no room now (block mode).
    #[cfg(test)]
    pub(crate) fn try_write<R: Region>(
        &mut self,
        ctl: &PubLine,
        subs: &[SubLine],
        region: &R,
        data: &[u8],
        alive: &mut dyn FnMut(usize) -> bool,
    ) -> Result<bool, Corrupt> {
        match self.reserve(ctl, subs, region, data.len() as u64, alive)? {
            Some(r) => {
                region.write(r.offset, data);
                self.commit(r);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Publishes everything committed so far; false if there was nothing new.
    pub(crate) fn publish(&mut self, ctl: &PubLine) -> bool {
        if self.head == self.published {
            return false;
        }
        self.version = self.version.wrapping_add(1);
        // SYNC: seqlock writer over (sent, head): the odd version (Relaxed), then the Release
        // fence orders it before the two stores below; pairs with the Acquire fence in
        // `snapshot`.
        ctl.version.store(self.version, Ordering::Relaxed);
        fence(Ordering::Release);
        // SYNC: Relaxed: ordered by the fence above and published by the head store below.
        ctl.sent.store(self.sent, Ordering::Relaxed);
        // The commit point: every record below it is complete (subscribers Acquire-load it).
        // SeqCst: the change of condition that the `published` eventcount's notify and the
        // join handshake (`scan`, `Subscriber::join`) order against.
        ctl.head.store(self.head, Ordering::SeqCst);
        self.version = self.version.wrapping_add(1);
        // SYNC: Release pairs with the Acquire load at the start of `snapshot`.
        ctl.version.store(self.version, Ordering::Release);
        self.published = self.head;
        true
    }

    /// Block mode: true if `need` more bytes may be written, rescanning the cursors if the
    /// cached floor says no.
    fn has_room(
        &mut self,
        ctl: &PubLine,
        subs: &[SubLine],
        need: u64,
        alive: &mut dyn FnMut(usize) -> bool,
    ) -> Result<bool, Corrupt> {
        let end = self.head + need;
        if end - self.floor <= self.g.capacity() {
            return Ok(true);
        }
        self.scan(ctl, subs, end, alive)?;
        Ok(end - self.floor <= self.g.capacity())
    }

    /// Recomputes the floor from the cursors: the lowest cursor of a subscriber that is not
    /// known dead, or the published head.
    fn scan(
        &mut self,
        ctl: &PubLine,
        subs: &[SubLine],
        end: u64,
        alive: &mut dyn FnMut(usize) -> bool,
    ) -> Result<(), Corrupt> {
        let cap = self.g.capacity();
        // The handshake with a joining subscriber: our last head store (SeqCst, `publish`)
        // comes before the loads below (SeqCst: the scan bound, then the cursors) in the single
        // order of SeqCst operations; a joiner raises the bound before it stores its cursor.
        // See the module docs.
        handshake_fence();
        let used = (ctl.slots_used.load(Ordering::SeqCst).min(subs.len() as u64)) as usize;
        let subs = &subs[..used];
        // SYNC: SeqCst: a slot that changed hands (a new generation) is no longer dead.
        self.dead.retain(|&(slot, gen)| {
            subs.get(slot)
                .is_some_and(|l| l.gen.load(Ordering::SeqCst) == gen)
        });
        let mut floor = self.published;
        self.next_suspects.clear();
        for (slot, line) in subs.iter().enumerate() {
            let c = line.pos.load(Ordering::SeqCst);
            if c == INACTIVE {
                continue;
            }
            if c % 8 != 0 || c > self.published {
                return Err(Corrupt(format!(
                    "the cursor of the subscriber in slot {slot} is impossible ({c}; head {})",
                    self.published
                )));
            }
            if end - c > cap {
                // It holds us back. Its generation is read after its cursor: a joiner bumps the
                // generation before it stores a cursor, so a cursor it stored is never taken
                // for its dead predecessor's.
                let gen = line.gen.load(Ordering::SeqCst);
                if self.dead.contains(&(slot, gen)) {
                    continue;
                }
                let stuck = self.suspects.contains(&(slot, gen, c));
                self.next_suspects.push((slot, gen, c));
                // A cursor that moved since the last scan belongs to a live subscriber; one that
                // did not is asked about (a stopped process is alive).
                if stuck && !alive(slot) {
                    self.dead.push((slot, gen));
                    continue;
                }
            }
            floor = floor.min(c);
        }
        std::mem::swap(&mut self.suspects, &mut self.next_suspects);
        self.floor = floor;
        Ok(())
    }

    /// Overwrite mode: retires the oldest records until `need` more bytes fit, and tells the
    /// subscribers before any of their bytes is written over.
    fn make_room<R: Region>(
        &mut self,
        ctl: &PubLine,
        region: &R,
        need: u64,
    ) -> Result<(), Corrupt> {
        let cap = self.g.capacity();
        let end = self.head + need;
        if end - self.tail <= cap {
            return Ok(());
        }
        let target = end - cap;
        // Never retire a record that was not published: `tail <= head` for every reader.
        if target > self.published {
            self.publish(ctl);
        }
        let mut t = self.tail;
        while t < target {
            let off = self.g.offset(t);
            let to_end = cap - off;
            let mut hdr = [0u8; 8];
            // Our own records (or our predecessor's): nobody else writes them.
            region.read(off as usize, &mut hdr);
            let size = match RecordHeader::decode(hdr) {
                Some(RecordHeader::Padding { len }) if len + HEADER == to_end => to_end,
                Some(RecordHeader::Data { len })
                    if (INDEX..=self.g.max_len()).contains(&len) && record_size(len) <= to_end =>
                {
                    record_size(len)
                }
                other => {
                    return Err(Corrupt(format!(
                        "invalid record {other:?} ({hdr:02x?}) at position {t} while \
                         overwriting the oldest messages"
                    )))
                }
            };
            t += size;
            if t > self.published {
                return Err(Corrupt(format!(
                    "the record at position {} runs past the published head {}",
                    t - size,
                    self.published
                )));
            }
        }
        self.tail = t;
        // SYNC: the seqlock's writer side. Release store: a subscriber that Acquire-loads this
        // tail also sees the head published before it. Then the Release fence orders this store
        // before every byte written after it (the new records over the retired ones); pairs
        // with the Acquire fence in `Subscriber::overwritten`: a subscriber whose copy saw any
        // of those bytes loads this tail (or a later one) after its fence.
        ctl.tail.store(t, Ordering::Release);
        fence(Ordering::Release);
        Ok(())
    }
}

/// A message found by [`Subscriber::peek`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message {
    /// Position of its record.
    pub(crate) pos: u64,
    /// Offset of the payload in the region.
    pub(crate) offset: usize,
    /// Payload length.
    pub(crate) len: u64,
    /// The message's index.
    pub(crate) index: u64,
}

/// What [`Subscriber::peek`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// The next message (in overwrite mode: intact when its header was read; copy it, then
    /// [`Subscriber::validate`]).
    Message(Message),
    /// Nothing published beyond what was read.
    Empty,
    /// The subscriber was lapped: [`Subscriber::take_missed`] says by how many messages.
    Lagged,
    /// The publisher lapped every attempt to read (overwrite mode, a tiny area): try again.
    Contended,
}

/// A subscriber's private state.
#[derive(Debug)]
pub(crate) struct Subscriber {
    g: Geometry,
    mode: Overflow,
    /// Start of the next record to read.
    pos: u64,
    /// What the cursor says.
    released: u64,
    /// Last head seen.
    cached_head: u64,
    /// Index of the next message (indices only grow; a gap is a dead publisher's batch).
    expected: u64,
    /// False until the first record is read after an inexact join (`expected` may then be
    /// too high by one publication).
    exact: bool,
    /// Messages lost to laps and not yet reported.
    missed: u64,
    /// Messages lost to laps in all.
    total_missed: u64,
}

impl Subscriber {
    /// Joins at the current head through the cursor line `line` of this process's slot (see
    /// the module docs for the handshake). The caller wakes a publisher waiting for room
    /// afterwards (the first cursor it stored may have held it back).
    pub(crate) fn join(
        g: Geometry,
        mode: Overflow,
        ctl: &PubLine,
        subs: &[SubLine],
        slot: usize,
        unsettled: &mut dyn FnMut() -> Unsettled,
    ) -> Result<Subscriber, Corrupt> {
        let line = &subs[slot];
        // SeqCst, both before the cursor stores (see `Publisher::scan`): the scan bound covers
        // this slot, and the generation is new.
        ctl.slots_used.fetch_max(slot as u64 + 1, Ordering::SeqCst);
        line.gen.fetch_add(1, Ordering::SeqCst);
        let settled = |u: &mut dyn FnMut() -> Unsettled| -> Result<(u64, u64, bool), Corrupt> {
            snapshot(ctl, Some(u))?.ok_or_else(|| Corrupt("unreachable: a settled snapshot".into()))
        };
        let (h0, s0, _) = settled(unsettled)?;
        // SYNC: Relaxed: advisory, published by the cursor store.
        line.next.store(s0, Ordering::Relaxed);
        line.pos.store(h0, Ordering::SeqCst);
        // The handshake: the cursor store above comes before the head load in `snapshot`.
        handshake_fence();
        let (h1, s1, exact) = settled(unsettled)?;
        if h1 < h0 {
            return Err(Corrupt(format!(
                "the broadcast's head moved back from {h0} to {h1}"
            )));
        }
        if h1 != h0 {
            // SYNC: as above.
            line.next.store(s1, Ordering::Relaxed);
            line.pos.store(h1, Ordering::SeqCst);
        }
        Ok(Subscriber {
            g,
            mode,
            pos: h1,
            released: h1,
            cached_head: h1,
            expected: s1,
            exact,
            missed: 0,
            total_missed: 0,
        })
    }

    /// The index of the next message this subscriber reads (a lower bound when a publisher
    /// died with a batch: indices then skip).
    pub(crate) fn next_index(&self) -> u64 {
        self.expected
    }

    /// Messages lost to laps in all.
    pub(crate) fn total_missed(&self) -> u64 {
        self.total_missed
    }

    /// The messages missed since the last call (and forgets them).
    pub(crate) fn take_missed(&mut self) -> u64 {
        std::mem::take(&mut self.missed)
    }

    fn read<R: Region>(&self, region: &R, off: u64, dst: &mut [u8]) {
        match self.mode {
            // The publisher never writes what we have not read.
            Overflow::Block => region.read(off as usize, dst),
            // The publisher may be writing it: validated afterwards (`overwritten`).
            Overflow::Overwrite => region.read_racy(off as usize, dst),
        }
    }

    fn load_head(&mut self, ctl: &PubLine) -> Result<u64, Corrupt> {
        // SYNC: Acquire pairs with the publisher's SeqCst head store: every record below it is
        // completely written.
        let h = ctl.head.load(Ordering::Acquire);
        check_pos("head", h)?;
        let cap = self.g.capacity();
        if h < self.cached_head || (self.mode == Overflow::Block && h - self.released > cap) {
            return Err(Corrupt(format!(
                "broadcast positions are impossible (head {h}, previously {}, this \
                 subscriber's cursor {}, capacity {cap})",
                self.cached_head, self.released
            )));
        }
        self.cached_head = h;
        Ok(h)
    }

    /// Overwrite mode: the oldest intact record, checked against the head.
    fn load_tail(&mut self, ctl: &PubLine) -> Result<u64, Corrupt> {
        // SYNC: Acquire pairs with the Release tail store in `make_room`: the head published
        // before it is visible, so `tail <= head` below.
        let t = ctl.tail.load(Ordering::Acquire);
        check_pos("tail", t)?;
        let cap = self.g.capacity();
        // Each bound holds only for one order of the two loads. A head loaded *before* the
        // tail is at most a lap ahead of it (the publisher retires records before it publishes
        // over them, and the tail only grows); a head loaded *after* it is at least the tail
        // (the Acquire above) but may be any number of laps ahead, since the publisher may
        // have gone on publishing between the loads. So the lap bound is checked only against
        // the older head: checking it against a head reloaded here called a live broadcast
        // corrupt when a fast publisher ran ahead of a slow subscriber (found by the killed-
        // publisher process test in overwrite mode).
        if t <= self.cached_head {
            if self.cached_head - t > cap {
                return Err(Corrupt(format!(
                    "broadcast positions are impossible (head {}, oldest record {t}, capacity \
                     {cap})",
                    self.cached_head
                )));
            }
            return Ok(t);
        }
        self.load_head(ctl)?;
        if t > self.cached_head {
            return Err(Corrupt(format!(
                "broadcast positions are impossible (head {}, oldest record {t}, capacity {cap})",
                self.cached_head
            )));
        }
        Ok(t)
    }

    /// Overwrite mode: whether what was copied at `pos` and after (since the last Acquire of
    /// the head or the tail) may have been written over.
    fn overwritten(&self, ctl: &PubLine, pos: u64) -> bool {
        if self.mode == Overflow::Block {
            return false;
        }
        // SYNC: the Acquire fence orders the copies before this load; pairs with the Release
        // fence after the tail store in `make_room`.
        fence(Ordering::Acquire);
        // SYNC: Relaxed: ordered by the fence above.
        pos < ctl.tail.load(Ordering::Relaxed)
    }

    /// The next message without consuming it, skipping padding; a lap is handled (the
    /// position jumps to the oldest record) and reported as [`Peek::Lagged`].
    pub(crate) fn peek<R: Region>(&mut self, ctl: &PubLine, region: &R) -> Result<Peek, Corrupt> {
        let cap = self.g.capacity();
        for _ in 0..ATTEMPTS {
            if self.missed > 0 {
                return Ok(Peek::Lagged);
            }
            if self.pos == self.cached_head && self.pos == self.load_head(ctl)? {
                return Ok(Peek::Empty);
            }
            if self.mode == Overflow::Overwrite && self.pos < self.load_tail(ctl)? {
                if !self.resync(ctl, region)? {
                    return Ok(Peek::Contended);
                }
                continue;
            }
            // In block mode `head - pos <= capacity` (checked at the head load). In overwrite
            // mode `pos >= tail`, and `avail` may exceed the capacity (a head loaded after the
            // tail, see `load_tail`): the checks below stay inside the lap (`to_end`), and what
            // is read is used only after `overwritten` says the publisher has not reached it.
            let avail = self.cached_head - self.pos;
            let off = self.g.offset(self.pos);
            let to_end = cap - off;
            let mut hdr = [0u8; 8];
            self.read(region, off, &mut hdr);
            match RecordHeader::decode(hdr) {
                Some(RecordHeader::Padding { len })
                    if len + HEADER == to_end && to_end <= avail =>
                {
                    if self.overwritten(ctl, self.pos) {
                        if !self.resync(ctl, region)? {
                            return Ok(Peek::Contended);
                        }
                    } else {
                        self.pos += to_end;
                    }
                }
                Some(RecordHeader::Data { len })
                    if (INDEX..=self.g.max_len()).contains(&len)
                        && record_size(len) <= to_end
                        && record_size(len) <= avail =>
                {
                    let mut idx = [0u8; 8];
                    self.read(region, off + HEADER, &mut idx);
                    if self.overwritten(ctl, self.pos) {
                        if !self.resync(ctl, region)? {
                            return Ok(Peek::Contended);
                        }
                        continue;
                    }
                    let index = u64::from_ne_bytes(idx);
                    if index < self.expected && self.exact {
                        return Err(Corrupt(format!(
                            "message index {index} at position {} after index {}",
                            self.pos,
                            self.expected.wrapping_sub(1)
                        )));
                    }
                    return Ok(Peek::Message(Message {
                        pos: self.pos,
                        offset: (off + HEADER + INDEX) as usize,
                        len: len - INDEX,
                        index,
                    }));
                }
                other => {
                    if self.overwritten(ctl, self.pos) {
                        if !self.resync(ctl, region)? {
                            return Ok(Peek::Contended);
                        }
                        continue;
                    }
                    return Err(Corrupt(format!(
                        "invalid record {other:?} ({hdr:02x?}) at position {} ({avail} bytes \
                         published, {to_end} to the end of the lap)",
                        self.pos
                    )));
                }
            }
        }
        Ok(Peek::Contended)
    }

    /// After the payload of `m` was copied: true if the copy is intact. False (overwrite mode)
    /// if it may have been written over meanwhile: the subscriber was lapped, its position
    /// moved to the oldest record, and [`Subscriber::take_missed`] counts `m` among the missed.
    pub(crate) fn validate<R: Region>(
        &mut self,
        ctl: &PubLine,
        region: &R,
        m: &Message,
    ) -> Result<bool, Corrupt> {
        if !self.overwritten(ctl, m.pos) {
            return Ok(true);
        }
        // Settled or not, `m` is gone.
        self.resync(ctl, region)?;
        if self.missed == 0 {
            // A resync that could not settle: `m` is gone all the same.
            self.missed = 1;
            self.total_missed = self.total_missed.saturating_add(1);
            self.expected = m.index.wrapping_add(1);
            self.pos = m.pos + record_size(INDEX + m.len);
        }
        Ok(false)
    }

    /// Consumes the message `peek` returned (the cursor moves at the next release).
    pub(crate) fn consume(&mut self, m: &Message) {
        self.pos = m.pos + record_size(INDEX + m.len);
        // Wrapping: the index came from the segment (a wrapped one is refused at the next).
        self.expected = m.index.wrapping_add(1);
        self.exact = true;
    }

    /// Overwrite mode: jumps from a lapped position to the oldest record still intact, and
    /// counts the messages skipped. False if the publisher was mid-publication for a whole
    /// snapshot's spins (stuck, dead or hostile): the caller reports [`Peek::Contended`] rather
    /// than spin again (each of its attempts spinning as long).
    fn resync<R: Region>(&mut self, ctl: &PubLine, region: &R) -> Result<bool, Corrupt> {
        let cap = self.g.capacity();
        for _ in 0..ATTEMPTS {
            let t = self.load_tail(ctl)?;
            if t <= self.pos {
                return Ok(true);
            }
            // Loaded after the tail: `t <= h`.
            let h = self.load_head(ctl)?;
            if t == h {
                // Everything published is retired (the next record needs the newest one's
                // bytes too): land at the head, whose index the (head, sent) pair gives.
                let Some((h2, sent, _)) = snapshot(ctl, None)? else {
                    return Ok(false); // mid-publication at every spin
                };
                if h2 != t {
                    continue; // published meanwhile: read the record at `t`
                }
                if sent < self.expected && self.exact {
                    return Err(Corrupt(format!(
                        "{sent} messages published, but index {} was expected",
                        self.expected
                    )));
                }
                let missed = sent.saturating_sub(self.expected);
                self.missed = self.missed.saturating_add(missed);
                self.total_missed = self.total_missed.saturating_add(missed);
                self.expected = sent;
                self.exact = true;
                self.pos = t;
                return Ok(true);
            }
            // The first message at or after `t`: maybe behind a padding record.
            let mut p = t;
            let mut found = None;
            for _ in 0..2 {
                let off = self.g.offset(p);
                let to_end = cap - off;
                let mut hdr = [0u8; 8];
                region.read_racy(off as usize, &mut hdr);
                match RecordHeader::decode(hdr) {
                    Some(RecordHeader::Padding { len })
                        if len + HEADER == to_end && to_end < h - p =>
                    {
                        p += to_end;
                    }
                    Some(RecordHeader::Data { len })
                        if (INDEX..=self.g.max_len()).contains(&len)
                            && record_size(len) <= to_end
                            && record_size(len) <= h - p =>
                    {
                        let mut idx = [0u8; 8];
                        region.read_racy(off as usize + HEADER as usize, &mut idx);
                        found = Some(u64::from_ne_bytes(idx));
                        break;
                    }
                    _ => break,
                }
            }
            if self.overwritten(ctl, t) {
                continue;
            }
            let Some(index) = found.filter(|&i| i >= self.expected || !self.exact) else {
                return Err(Corrupt(format!(
                    "no valid message at the oldest record {t} (head {h}, expected index >= {})",
                    self.expected
                )));
            };
            let missed = index.saturating_sub(self.expected);
            // Saturating: a hostile index may claim any count.
            self.missed = self.missed.saturating_add(missed);
            self.total_missed = self.total_missed.saturating_add(missed);
            self.expected = index;
            self.exact = true;
            self.pos = p;
            return Ok(true);
        }
        Ok(true)
    }

    /// Stores the cursor; true if it moved (block mode: then wake a publisher waiting for
    /// room).
    pub(crate) fn release(&mut self, line: &SubLine) -> bool {
        if self.pos == self.released {
            return false;
        }
        // SYNC: Relaxed: advisory (inspection), published by the cursor store below.
        line.next.store(self.expected, Ordering::Relaxed);
        // SYNC: Relaxed: advisory, ours alone.
        line.missed.store(self.total_missed, Ordering::Relaxed);
        // SeqCst: in block mode it pairs with the publisher's SeqCst load in `scan` (our reads
        // of the records below happen before it writes over them) and it is the change of
        // condition the `room` eventcount's notify orders against. In overwrite mode it is
        // advisory, but a plain store costs the same on the subscriber's own line.
        line.pos.store(self.pos, Ordering::SeqCst);
        self.released = self.pos;
        true
    }
}

/// Per-slot figures for inspection: (cursor, next index, messages missed), or `None` for a
/// slot without a subscriber.
pub(crate) fn slot_state(line: &SubLine) -> Option<(u64, u64, u64)> {
    // SYNC: Acquire loads; an advisory snapshot.
    let pos = line.pos.load(Ordering::Acquire);
    (pos != INACTIVE).then(|| {
        (
            pos,
            line.next.load(Ordering::Acquire),
            line.missed.load(Ordering::Acquire),
        )
    })
}

/// The published (head, sent, tail), exact for head and sent.
pub(crate) fn published(ctl: &PubLine) -> Result<(u64, u64, u64), Corrupt> {
    let (h, s, _) = snapshot(ctl, Some(&mut || Unsettled::Inexact))?
        .ok_or_else(|| Corrupt("unreachable: a settled snapshot".into()))?;
    // SYNC: Acquire pairs with the Release tail store.
    Ok((h, s, ctl.tail.load(Ordering::Acquire)))
}

#[cfg(test)]
pub(crate) mod testing {
    //! A region whose copies are relaxed atomic words, so that the overwrite mode's racy
    //! reads are allowed (and checked) under loom.

    use crate::channel::frame::Region;
    use crate::sync::{AtomicU64, Ordering};

    pub(crate) struct AtomicRegion {
        words: Box<[AtomicU64]>,
    }

    impl AtomicRegion {
        pub(crate) fn new(len: usize) -> AtomicRegion {
            AtomicRegion {
                words: (0..len / 8).map(|_| AtomicU64::new(0)).collect(),
            }
        }

        #[cfg(not(loom))]
        pub(crate) fn poke(&self, off: usize, src: &[u8]) {
            self.write(off, src);
        }
    }

    impl Region for AtomicRegion {
        fn len(&self) -> usize {
            self.words.len() * 8
        }

        fn write(&self, off: usize, src: &[u8]) {
            assert!(off + src.len() <= self.len(), "write outside the region");
            let mut i = 0;
            while i < src.len() {
                let at = off + i;
                let w = &self.words[at / 8];
                let start = at % 8;
                let n = (8 - start).min(src.len() - i);
                // SYNC: Relaxed: the protocol's fences order these (see broadcast::core).
                let mut bytes = w.load(Ordering::Relaxed).to_ne_bytes();
                bytes[start..start + n].copy_from_slice(&src[i..i + n]);
                // SYNC: as above.
                w.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
                i += n;
            }
        }

        fn read(&self, off: usize, dst: &mut [u8]) {
            assert!(off + dst.len() <= self.len(), "read outside the region");
            let mut i = 0;
            while i < dst.len() {
                let at = off + i;
                let start = at % 8;
                let n = (8 - start).min(dst.len() - i);
                // SYNC: as in `write`.
                let bytes = self.words[at / 8].load(Ordering::Relaxed).to_ne_bytes();
                dst[i..i + n].copy_from_slice(&bytes[start..start + n]);
                i += n;
            }
        }

        fn as_ptr(&self) -> Option<*mut u8> {
            None
        }

        fn word(&self, off: usize) -> &AtomicU64 {
            assert!(off % 8 == 0, "misaligned word");
            &self.words[off / 8]
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::testing::AtomicRegion;
    use super::*;
    use crate::channel::frame::HeapRegion;
    use proptest::prelude::*;

    struct Bus<R> {
        g: Geometry,
        ctl: PubLine,
        subs: Vec<SubLine>,
        region: R,
    }

    fn bus(cap: u64, slots: usize) -> Bus<HeapRegion> {
        Bus {
            g: Geometry::new(cap, Geometry::max_len_for(cap)).unwrap(),
            ctl: PubLine::new(),
            subs: (0..slots).map(|_| SubLine::new()).collect(),
            region: HeapRegion::new(cap as usize),
        }
    }

    fn atomic_bus(cap: u64, slots: usize) -> Bus<AtomicRegion> {
        Bus {
            g: Geometry::new(cap, Geometry::max_len_for(cap)).unwrap(),
            ctl: PubLine::new(),
            subs: (0..slots).map(|_| SubLine::new()).collect(),
            region: AtomicRegion::new(cap as usize),
        }
    }

    fn all_alive(_: usize) -> bool {
        true
    }

    impl<R: Region> Bus<R> {
        fn publisher(&self, mode: Overflow) -> Publisher {
            Publisher::attach(self.g, mode, &self.ctl).unwrap()
        }

        fn join(&self, mode: Overflow, slot: usize) -> Subscriber {
            Subscriber::join(self.g, mode, &self.ctl, &self.subs, slot, &mut || {
                Unsettled::Inexact
            })
            .unwrap()
        }

        fn write(&self, p: &mut Publisher, data: &[u8]) -> bool {
            let ok = p
                .try_write(&self.ctl, &self.subs, &self.region, data, &mut all_alive)
                .unwrap();
            p.publish(&self.ctl);
            ok
        }

        /// Reads one message: Ok(Some(bytes)), Ok(None) when empty, Err(missed) when lagged.
        fn read(&self, s: &mut Subscriber, slot: usize) -> Result<Option<Vec<u8>>, u64> {
            for _ in 0..2 {
                match s.peek(&self.ctl, &self.region).unwrap() {
                    Peek::Message(m) => {
                        let mut out = vec![0u8; m.len as usize];
                        self.region.read_racy(m.offset, &mut out);
                        if !s.validate(&self.ctl, &self.region, &m).unwrap() {
                            return Err(s.take_missed());
                        }
                        s.consume(&m);
                        s.release(&self.subs[slot]);
                        return Ok(Some(out));
                    }
                    Peek::Empty => return Ok(None),
                    Peek::Lagged => return Err(s.take_missed()),
                    Peek::Contended => {}
                }
            }
            panic!("contended without a concurrent publisher");
        }
    }

    #[test]
    fn every_subscriber_sees_every_message_after_it_joined() {
        let b = bus(256, 3);
        let mut p = b.publisher(Overflow::Block);
        assert!(b.write(&mut p, b"before anyone"));
        let mut s0 = b.join(Overflow::Block, 0);
        assert!(b.write(&mut p, b"one"));
        let mut s1 = b.join(Overflow::Block, 1);
        assert!(b.write(&mut p, b"two"));
        assert_eq!(b.read(&mut s0, 0), Ok(Some(b"one".to_vec())));
        assert_eq!(b.read(&mut s0, 0), Ok(Some(b"two".to_vec())));
        assert_eq!(b.read(&mut s0, 0), Ok(None));
        assert_eq!(b.read(&mut s1, 1), Ok(Some(b"two".to_vec())));
        assert_eq!(b.read(&mut s1, 1), Ok(None));
        assert_eq!(s1.next_index(), 3);
    }

    #[test]
    fn block_mode_waits_for_the_slowest_and_drops_the_dead() {
        let b = bus(128, 2);
        let mut p = b.publisher(Overflow::Block);
        let mut fast = b.join(Overflow::Block, 0);
        let _slow = b.join(Overflow::Block, 1); // never reads
        let mut n = 0;
        while b.write(&mut p, &[7; 16]) {
            n += 1;
        }
        assert_eq!(n, 4, "128 bytes hold four 32-byte records");
        for _ in 0..n {
            assert!(b.read(&mut fast, 0).unwrap().is_some());
        }
        assert!(!b.write(&mut p, &[7; 16]), "the slow one holds it back");
        // The slow one is dead: the first scan sees it stuck ... the next asks and drops it.
        let mut dead = |slot: usize| slot != 1;
        let mut wrote = false;
        for _ in 0..2 {
            wrote = p
                .try_write(&b.ctl, &b.subs, &b.region, &[8; 24], &mut dead)
                .unwrap();
            if wrote {
                break;
            }
        }
        assert!(wrote, "a dead subscriber stops holding the publisher back");
        p.publish(&b.ctl);
        // Known dead: no more questions, as long as the slot keeps its generation.
        let mut asked = false;
        let mut count = |_: usize| {
            asked = true;
            true
        };
        for _ in 0..8 {
            if !p
                .try_write(&b.ctl, &b.subs, &b.region, &[9; 24], &mut count)
                .unwrap()
            {
                break;
            }
            p.publish(&b.ctl);
            while b.read(&mut fast, 0).unwrap().is_some() {}
        }
        assert!(!asked, "liveness is asked only once of a dead subscriber");
        // A new process takes the slot: its cursor counts again.
        b.subs[1].clear(true);
        let _again = b.join(Overflow::Block, 1);
        while b.read(&mut fast, 0).unwrap().is_some() {}
        let mut n = 0;
        while b.write(&mut p, &[1; 16]) {
            n += 1;
        }
        assert!(
            (3..=4).contains(&n),
            "the new subscriber holds it back after a lap ({n})"
        );
    }

    #[test]
    fn moving_laggards_are_not_asked_about() {
        let b = bus(128, 1);
        let mut p = b.publisher(Overflow::Block);
        let mut s = b.join(Overflow::Block, 0);
        let mut asked = 0;
        let mut count = |_: usize| {
            asked += 1;
            true
        };
        for i in 0..1000u32 {
            while !p
                .try_write(&b.ctl, &b.subs, &b.region, &i.to_ne_bytes(), &mut count)
                .unwrap()
            {
                p.publish(&b.ctl);
                assert!(b.read(&mut s, 0).unwrap().is_some());
            }
        }
        assert_eq!(
            asked, 0,
            "a subscriber that keeps reading is never asked about"
        );
    }

    #[test]
    fn unpublished_writes_vanish_with_their_publisher() {
        let b = bus(128, 1);
        let mut p = b.publisher(Overflow::Block);
        let mut s = b.join(Overflow::Block, 0);
        assert!(b.write(&mut p, b"kept"));
        p.try_write(&b.ctl, &b.subs, &b.region, b"lost", &mut all_alive)
            .unwrap();
        // `p` dies here without publishing "lost".
        let mut p2 = b.publisher(Overflow::Block);
        assert!(b.write(&mut p2, b"next"));
        assert_eq!(b.read(&mut s, 0), Ok(Some(b"kept".to_vec())));
        assert_eq!(b.read(&mut s, 0), Ok(Some(b"next".to_vec())));
        assert_eq!(b.read(&mut s, 0), Ok(None));
    }

    #[test]
    fn overwrite_mode_reports_exact_laps_and_continues_from_the_oldest() {
        let b = atomic_bus(256, 2);
        let mut p = b.publisher(Overflow::Overwrite);
        let mut s = b.join(Overflow::Overwrite, 0);
        for i in 0u64..100 {
            let len = (i % 5) as usize * 8;
            let mut m = i.to_le_bytes().to_vec();
            m.resize(8 + len, i as u8);
            assert!(b.write(&mut p, &m), "overwrite mode never refuses");
        }
        let missed = b.read(&mut s, 0).unwrap_err();
        assert!(missed > 80 && missed < 100, "missed {missed}");
        let mut got = Vec::new();
        while let Some(m) = b.read(&mut s, 0).unwrap() {
            got.push(u64::from_le_bytes(m[..8].try_into().unwrap()));
        }
        assert_eq!(
            got[0], missed,
            "continues from the oldest message still there"
        );
        assert_eq!(got, (missed..100).collect::<Vec<_>>());
        assert_eq!(s.total_missed(), missed);
    }

    #[test]
    fn overwrite_mode_detects_a_copy_written_over() {
        let b = atomic_bus(128, 1);
        let mut p = b.publisher(Overflow::Overwrite);
        let mut s = b.join(Overflow::Overwrite, 0);
        assert!(b.write(&mut p, &[1; 24]));
        let Peek::Message(m) = s.peek(&b.ctl, &b.region).unwrap() else {
            panic!("a message")
        };
        // While the subscriber "copies", the publisher laps it.
        for k in 2..8u8 {
            assert!(b.write(&mut p, &[k; 24]));
        }
        assert!(!s.validate(&b.ctl, &b.region, &m).unwrap());
        let missed = s.take_missed();
        assert!(missed >= 1, "the message being read counts as missed");
        let first = b.read(&mut s, 0).unwrap().unwrap();
        assert_eq!(u64::from(first[0]), 1 + missed);
    }

    #[test]
    fn joining_snapshot_is_exact_and_laps_before_the_first_read_are_counted() {
        let b = atomic_bus(128, 1);
        let mut p = b.publisher(Overflow::Overwrite);
        for _ in 0..5 {
            b.write(&mut p, &[0; 8]);
        }
        let mut s = b.join(Overflow::Overwrite, 0);
        assert_eq!(s.next_index(), 5);
        for _ in 0..20 {
            b.write(&mut p, &[0; 8]);
        }
        let missed = b.read(&mut s, 0).unwrap_err();
        let mut rest = 0;
        while b.read(&mut s, 0).unwrap().is_some() {
            rest += 1;
        }
        assert_eq!(missed + rest, 20, "missed {missed}, received {rest}");
    }

    #[test]
    fn corrupt_positions_and_records_are_errors() {
        let b = bus(128, 2);
        let mut p = b.publisher(Overflow::Block);
        let mut s = b.join(Overflow::Block, 0);
        assert!(b.write(&mut p, b"hello"));
        // An unknown kind.
        b.region.poke(0, &[5, 0, 0, 0, 0, 0, 0, 0]);
        assert!(s.peek(&b.ctl, &b.region).is_err());
        // A length that runs past what was published.
        b.region.poke(0, &RecordHeader::Data { len: 60 }.encode());
        assert!(s.peek(&b.ctl, &b.region).is_err());
        // A frame too short for its index.
        b.region.poke(0, &RecordHeader::Data { len: 4 }.encode());
        assert!(s.peek(&b.ctl, &b.region).is_err());
        // An index that goes back.
        b.region.poke(0, &RecordHeader::Data { len: 13 }.encode());
        let mut s2 = b.join(Overflow::Block, 1);
        assert!(b.write(&mut p, b"x"));
        b.region.poke(32, &0u64.to_ne_bytes()); // index 0 again, after s read index 0
        assert_eq!(b.read(&mut s, 0), Ok(Some(b"hello".to_vec())));
        assert!(s.peek(&b.ctl, &b.region).is_err());
        drop(s2.peek(&b.ctl, &b.region));
        // A cursor ahead of the head makes the publisher's scan refuse.
        b.subs[1].pos.store(1 << 20, Ordering::SeqCst);
        for _ in 0..8 {
            if p.try_write(&b.ctl, &b.subs, &b.region, &[0; 24], &mut all_alive)
                .is_err()
            {
                return;
            }
            p.publish(&b.ctl);
        }
        panic!("the impossible cursor was accepted");
    }

    #[test]
    fn overwrite_mode_corruption_is_an_error_not_a_lap() {
        let b = atomic_bus(128, 1);
        let mut p = b.publisher(Overflow::Overwrite);
        let mut s = b.join(Overflow::Overwrite, 0);
        assert!(b.write(&mut p, b"fine"));
        b.region.poke(0, &[9; 8]);
        assert!(
            s.peek(&b.ctl, &b.region).is_err(),
            "a bad header with tail behind it"
        );
        b.ctl.tail.store(4096, Ordering::SeqCst);
        assert!(s.peek(&b.ctl, &b.region).is_err(), "a tail beyond the head");
        // The publisher refuses to retire a record it cannot read.
        b.ctl.tail.store(0, Ordering::SeqCst);
        let mut p = b.publisher(Overflow::Overwrite);
        let mut failed = false;
        for _ in 0..8 {
            if p.try_write(&b.ctl, &b.subs, &b.region, &[1; 24], &mut all_alive)
                .is_err()
            {
                failed = true;
                break;
            }
        }
        assert!(failed, "the corrupt oldest record was retired");
    }

    /// Found by fuzzing (#11): a head near 2^64 (a multiple of 8, so a "position") made the
    /// publisher's next commit overflow; positions now stop below `POS_LIMIT`.
    #[test]
    fn positions_near_the_end_of_the_space_are_errors() {
        for mode in [Overflow::Block, Overflow::Overwrite] {
            let b = bus(256, 1);
            b.ctl.head.store(u64::MAX - 7, Ordering::SeqCst);
            b.ctl.tail.store(u64::MAX - 7, Ordering::SeqCst);
            assert!(Publisher::attach(b.g, mode, &b.ctl).is_err());
            let near = POS_LIMIT - 16;
            b.ctl.head.store(near, Ordering::SeqCst);
            b.ctl.tail.store(near, Ordering::SeqCst);
            b.ctl.sent.store(u64::MAX, Ordering::SeqCst);
            let mut p = b.publisher(mode);
            let r = p.try_write(&b.ctl, &b.subs, &b.region, b"x", &mut all_alive);
            assert!(r.is_err(), "{mode:?}: {r:?}");
            b.ctl.head.store(0, Ordering::SeqCst);
            b.ctl.tail.store(0, Ordering::SeqCst);
            let mut p = b.publisher(mode);
            let mut s = b.join(mode, 0);
            assert!(b.write(&mut p, b"wraps"));
            assert_eq!(b.read(&mut s, 0), Ok(Some(b"wraps".to_vec())));
            assert_eq!(p.sent(), 0, "the index wrapped");
        }
    }

    /// Found by fuzzing (#11): a lapped subscriber over a tail at the head and an odd version
    /// (a publisher stuck mid-publication, or a hostile peer) spun through every attempt of
    /// its read times every attempt of its resynchronisation times every spin of a snapshot
    /// (64 x 64 x 4096 spins) before it answered; it now answers "contended" after one
    /// snapshot's spins.
    #[test]
    fn a_stuck_publication_does_not_multiply_the_spins() {
        let b = bus(256, 1);
        let mut p = b.publisher(Overflow::Overwrite);
        let mut s = b.join(Overflow::Overwrite, 0);
        for i in 0..4u8 {
            assert!(b.write(&mut p, &[i; 40]));
        }
        let h = b.ctl.head.load(Ordering::SeqCst);
        b.ctl.tail.store(h, Ordering::SeqCst);
        b.ctl.version.fetch_add(1, Ordering::SeqCst);
        assert_eq!(s.peek(&b.ctl, &b.region), Ok(Peek::Contended));
        // The publication ends: the lap is counted exactly.
        b.ctl.version.fetch_add(1, Ordering::SeqCst);
        assert_eq!(s.peek(&b.ctl, &b.region), Ok(Peek::Lagged));
        assert_eq!(s.take_missed(), 4);
        assert_eq!(s.peek(&b.ctl, &b.region), Ok(Peek::Empty));
    }

    #[test]
    fn corrupt_publisher_line_is_refused() {
        let b = bus(128, 1);
        b.ctl.head.store(12, Ordering::SeqCst);
        assert!(Publisher::attach(b.g, Overflow::Block, &b.ctl).is_err());
        assert!(
            Subscriber::join(b.g, Overflow::Block, &b.ctl, &b.subs, 0, &mut || {
                Unsettled::Inexact
            })
            .is_err()
        );
        b.ctl.head.store(1024, Ordering::SeqCst);
        b.ctl.tail.store(0, Ordering::SeqCst);
        assert!(Publisher::attach(b.g, Overflow::Overwrite, &b.ctl).is_err());
    }

    #[test]
    fn max_len_message_always_fits() {
        for mode in [Overflow::Block, Overflow::Overwrite] {
            let b = atomic_bus(128, 1);
            let mut p = b.publisher(mode);
            let mut s = b.join(mode, 0);
            let big = vec![7u8; (b.g.max_len() - INDEX) as usize];
            for skew in 0..20u64 {
                let small = vec![1u8; (skew % 5) as usize * 8];
                assert!(b.write(&mut p, &small));
                assert_eq!(b.read(&mut s, 0), Ok(Some(small)));
                assert!(b.write(&mut p, &big), "skew {skew}");
                assert_eq!(b.read(&mut s, 0), Ok(Some(big.clone())));
            }
        }
    }

    proptest! {
        /// Any interleaving of writes, publishes and reads by two subscribers (in one thread)
        /// in block mode delivers exactly the published messages to each, in order.
        #[test]
        fn block_model(ops in proptest::collection::vec((0u8..4, 0usize..40), 1..300)) {
            let b = bus(128, 2);
            let mut p = b.publisher(Overflow::Block);
            let mut subs = [b.join(Overflow::Block, 0), b.join(Overflow::Block, 1)];
            let mut sent: Vec<Vec<u8>> = Vec::new();
            let mut published = 0usize;
            let mut got = [0usize, 0usize];
            for (op, size) in ops {
                match op {
                    0 => {
                        let size = size.min((b.g.max_len() - INDEX) as usize);
                        let m: Vec<u8> = (0..size).map(|i| (sent.len() + i) as u8).collect();
                        if p.try_write(&b.ctl, &b.subs, &b.region, &m, &mut all_alive).unwrap() {
                            sent.push(m);
                        }
                    }
                    1 => { p.publish(&b.ctl); published = sent.len(); }
                    k => {
                        let k = usize::from(k - 2);
                        if let Some(m) = b.read(&mut subs[k], k).unwrap() {
                            prop_assert!(got[k] < published);
                            prop_assert_eq!(&m, &sent[got[k]]);
                            got[k] += 1;
                        } else {
                            prop_assert_eq!(got[k], published);
                        }
                    }
                }
            }
        }

        /// In overwrite mode a subscriber receives an increasing run of intact messages, and
        /// what it received plus what it was told it missed is everything published.
        #[test]
        fn overwrite_model(ops in proptest::collection::vec((0u8..3, 0usize..40), 1..400)) {
            let b = atomic_bus(128, 1);
            let mut p = b.publisher(Overflow::Overwrite);
            let mut s = b.join(Overflow::Overwrite, 0);
            let mut sent = 0u64;
            let (mut received, mut missed) = (0u64, 0u64);
            let mut last = None;
            for (op, size) in ops {
                match op {
                    0 => {
                        let size = size.min((b.g.max_len() - INDEX) as usize).max(8);
                        let mut m = sent.to_le_bytes().to_vec();
                        m.resize(size, sent as u8);
                        prop_assert!(p.try_write(&b.ctl, &b.subs, &b.region, &m, &mut all_alive).unwrap());
                        sent += 1;
                    }
                    // (The publisher also publishes before it overwrites what it has not.)
                    1 => { p.publish(&b.ctl); }
                    _ => match b.read(&mut s, 0) {
                        Ok(Some(m)) => {
                            let i = u64::from_le_bytes(m[..8].try_into().unwrap());
                            prop_assert!(m[8..].iter().all(|&x| x == i as u8), "intact");
                            prop_assert!(last.is_none_or(|l| i > l));
                            prop_assert_eq!(i, received + missed);
                            last = Some(i);
                            received += 1;
                        }
                        Ok(None) => {
                            prop_assert_eq!(received + missed, b.ctl.sent.load(Ordering::SeqCst));
                        }
                        Err(n) => missed += n,
                    },
                }
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::testing::AtomicRegion;
    use super::*;
    use crate::channel::frame::HeapRegion;
    use crate::lock::eventcount::{EventCount, ModelFutex};
    use crate::sync::AtomicU32;
    use loom::sync::Arc;

    /// Bounded preemptions keep the exhaustive search to seconds (`LOOM_MAX_PREEMPTIONS`
    /// overrides it); the models spin (with `yield_now`) while the other side makes progress,
    /// which takes more branches than loom's default allows.
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.max_branches = 100_000;
        b.check(f);
    }

    struct Bus<R> {
        g: Geometry,
        ctl: PubLine,
        subs: Vec<SubLine>,
        region: R,
    }

    fn heap_bus(slots: usize) -> Arc<Bus<HeapRegion>> {
        Arc::new(Bus {
            g: Geometry::new(64, 24).unwrap(),
            ctl: PubLine::new(),
            subs: (0..slots).map(|_| SubLine::new()).collect(),
            region: HeapRegion::new(64),
        })
    }

    /// A joiner's answer to a publisher caught mid-publication: look again (it finishes).
    fn retry() -> Unsettled {
        loom::thread::yield_now();
        Unsettled::Retry
    }

    /// Message `i`: `len` bytes derived from its index.
    fn body(i: u64, len: usize) -> Vec<u8> {
        vec![i as u8 ^ 0x5a; len]
    }

    fn read_one<R: Region>(b: &Bus<R>, s: &mut Subscriber, slot: usize) -> Option<(u64, Vec<u8>)> {
        match s.peek(&b.ctl, &b.region).unwrap() {
            Peek::Message(m) => {
                let mut out = vec![0u8; m.len as usize];
                b.region.read_racy(m.offset, &mut out);
                if !s.validate(&b.ctl, &b.region, &m).unwrap() {
                    return None;
                }
                s.consume(&m);
                s.release(&b.subs[slot]);
                Some((m.index, out))
            }
            Peek::Empty | Peek::Lagged | Peek::Contended => None,
        }
    }

    /// Block mode, one subscriber joined first, three messages whose records force padding
    /// and wrap-around in a 64-byte area: each arrives once, in order, intact, and loom finds
    /// no data race on any payload byte.
    #[test]
    fn loom_block_commit_and_room() {
        model(|| {
            let b = heap_bus(1);
            let mut s =
                Subscriber::join(b.g, Overflow::Block, &b.ctl, &b.subs, 0, &mut retry).unwrap();
            let lens = [16usize, 1, 9];
            let b2 = b.clone();
            let publisher = loom::thread::spawn(move || {
                let b = &*b2;
                let mut p = Publisher::attach(b.g, Overflow::Block, &b.ctl).unwrap();
                for (i, len) in lens.into_iter().enumerate() {
                    let m = body(i as u64, len);
                    while !p
                        .try_write(&b.ctl, &b.subs, &b.region, &m, &mut |_| true)
                        .unwrap()
                    {
                        p.publish(&b.ctl);
                        loom::thread::yield_now();
                    }
                    p.publish(&b.ctl);
                }
            });
            for (i, len) in lens.into_iter().enumerate() {
                loop {
                    if let Some((idx, m)) = read_one(&b, &mut s, 0) {
                        assert_eq!(idx, i as u64);
                        assert_eq!(m, body(i as u64, len));
                        break;
                    }
                    loom::thread::yield_now();
                }
            }
            publisher.join().unwrap();
        });
    }

    /// A subscriber joins while the publisher streams through a 64-byte area (two records a
    /// lap) with nobody else subscribed: what it reads is a run of consecutive messages, each
    /// intact, and loom finds no write to a byte while it reads it (the join handshake).
    #[test]
    fn loom_join_never_reads_overwritten() {
        model(|| {
            let b = heap_bus(1);
            let done = Arc::new(AtomicU32::new(0));
            let (b2, done2) = (b.clone(), done.clone());
            const N: u64 = 4;
            let publisher = loom::thread::spawn(move || {
                let b = &*b2;
                let mut p = Publisher::attach(b.g, Overflow::Block, &b.ctl).unwrap();
                for i in 0..N {
                    let m = body(i, 16);
                    while !p
                        .try_write(&b.ctl, &b.subs, &b.region, &m, &mut |_| true)
                        .unwrap()
                    {
                        p.publish(&b.ctl);
                        loom::thread::yield_now();
                    }
                    p.publish(&b.ctl);
                }
                done2.store(1, Ordering::SeqCst);
            });
            let mut s =
                Subscriber::join(b.g, Overflow::Block, &b.ctl, &b.subs, 0, &mut retry).unwrap();
            let first = s.next_index();
            let mut next = first;
            loop {
                let finished = done.load(Ordering::SeqCst) == 1;
                match read_one(&b, &mut s, 0) {
                    Some((idx, m)) => {
                        assert_eq!(idx, next, "consecutive from the join");
                        assert_eq!(m, body(idx, 16), "intact");
                        next += 1;
                    }
                    None if finished => break,
                    None => loom::thread::yield_now(),
                }
            }
            assert_eq!(next, N, "every message after the join");
            publisher.join().unwrap();
        });
    }

    /// Two subscribers; one is dead (it stopped reading; its liveness is false) and its cursor
    /// holds the publisher back after one lap: the publisher asks about it, drops it and
    /// finishes, while the live one reads everything concurrently.
    #[test]
    fn loom_dead_subscriber_is_dropped() {
        model(|| {
            let b = heap_bus(2);
            let _dead =
                Subscriber::join(b.g, Overflow::Block, &b.ctl, &b.subs, 1, &mut retry).unwrap();
            let mut s =
                Subscriber::join(b.g, Overflow::Block, &b.ctl, &b.subs, 0, &mut retry).unwrap();
            const N: u64 = 3;
            let b2 = b.clone();
            let publisher = loom::thread::spawn(move || {
                let b = &*b2;
                let mut p = Publisher::attach(b.g, Overflow::Block, &b.ctl).unwrap();
                for i in 0..N {
                    let m = body(i, 16);
                    while !p
                        .try_write(&b.ctl, &b.subs, &b.region, &m, &mut |slot| slot != 1)
                        .unwrap()
                    {
                        p.publish(&b.ctl);
                        loom::thread::yield_now();
                    }
                    p.publish(&b.ctl);
                }
            });
            for i in 0..N {
                loop {
                    if let Some((idx, m)) = read_one(&b, &mut s, 0) {
                        assert_eq!((idx, m), (i, body(i, 16)));
                        break;
                    }
                    loom::thread::yield_now();
                }
            }
            publisher.join().unwrap();
        });
    }

    struct Events {
        published: [AtomicU32; 2],
        room: [AtomicU32; 2],
        futex: ModelFutex,
    }

    /// The wake protocol: the publisher sleeps on `room` (block mode) when the subscriber has
    /// not read enough, the subscriber sleeps on `published` when there is nothing: no
    /// interleaving loses a wake-up (loom reports the deadlock it would cause).
    #[test]
    fn loom_wake_protocol_no_lost_wakeup() {
        model(|| {
            let b = heap_bus(1);
            let ev = Arc::new(Events {
                published: [AtomicU32::new(0), AtomicU32::new(0)],
                room: [AtomicU32::new(0), AtomicU32::new(0)],
                futex: ModelFutex::default(),
            });
            let mut s =
                Subscriber::join(b.g, Overflow::Block, &b.ctl, &b.subs, 0, &mut retry).unwrap();
            const N: u64 = 3;
            let (b2, ev2) = (b.clone(), ev.clone());
            let publisher = loom::thread::spawn(move || {
                let b = &*b2;
                let room = EventCount::new(&ev2.room[0], &ev2.room[1]);
                let published = EventCount::new(&ev2.published[0], &ev2.published[1]);
                let mut p = Publisher::attach(b.g, Overflow::Block, &b.ctl).unwrap();
                for i in 0..N {
                    let m = body(i, 16);
                    let write = |p: &mut Publisher| {
                        p.try_write(&b.ctl, &b.subs, &b.region, &m, &mut |_| true)
                            .unwrap()
                    };
                    if !write(&mut p) {
                        loop {
                            let key = room.prepare();
                            if write(&mut p) {
                                room.cancel();
                                break;
                            }
                            room.wait(&ev2.futex, key, None);
                        }
                    }
                    if p.publish(&b.ctl) {
                        published.notify(&ev2.futex);
                    }
                }
            });
            let room = EventCount::new(&ev.room[0], &ev.room[1]);
            let published = EventCount::new(&ev.published[0], &ev.published[1]);
            for i in 0..N {
                let got = loop {
                    if let Some(got) = read_one(&b, &mut s, 0) {
                        break got;
                    }
                    let key = published.prepare();
                    if let Some(got) = read_one(&b, &mut s, 0) {
                        published.cancel();
                        break got;
                    }
                    published.wait(&ev.futex, key, None);
                };
                // `read_one` released the cursor (a SeqCst store): wake a waiting publisher.
                room.notify(&ev.futex);
                assert_eq!(got, (i, body(i, 16)));
            }
            publisher.join().unwrap();
        });
    }

    /// Overwrite mode over a region of relaxed atomic words (so that racy copies are allowed
    /// and torn ones possible): a subscriber that joins while the publisher laps a 64-byte
    /// area never returns a torn message, receives increasing indices, and what it received
    /// plus what it was told it missed is exactly what was published after it joined.
    #[test]
    fn loom_overwrite_seqlock_and_exact_lag() {
        model(|| {
            let b = Arc::new(Bus {
                g: Geometry::new(64, 24).unwrap(),
                ctl: PubLine::new(),
                subs: vec![SubLine::new()],
                region: AtomicRegion::new(64),
            });
            let done = Arc::new(AtomicU32::new(0));
            const N: u64 = 3;
            let (b2, done2) = (b.clone(), done.clone());
            let publisher = loom::thread::spawn(move || {
                let b = &*b2;
                let mut p = Publisher::attach(b.g, Overflow::Overwrite, &b.ctl).unwrap();
                for i in 0..N {
                    assert!(p
                        .try_write(&b.ctl, &b.subs, &b.region, &body(i, 16), &mut |_| true)
                        .unwrap());
                    p.publish(&b.ctl);
                }
                done2.store(1, Ordering::SeqCst);
            });
            let mut s =
                Subscriber::join(b.g, Overflow::Overwrite, &b.ctl, &b.subs, 0, &mut retry).unwrap();
            let first = s.next_index();
            let (mut received, mut missed) = (0u64, 0u64);
            loop {
                let finished = done.load(Ordering::SeqCst) == 1;
                match s.peek(&b.ctl, &b.region).unwrap() {
                    Peek::Message(m) => {
                        let mut out = vec![0u8; m.len as usize];
                        b.region.read_racy(m.offset, &mut out);
                        if s.validate(&b.ctl, &b.region, &m).unwrap() {
                            assert_eq!(out, body(m.index, 16), "never a torn message");
                            assert_eq!(m.index, first + received + missed);
                            s.consume(&m);
                            received += 1;
                        }
                    }
                    Peek::Lagged => missed += s.take_missed(),
                    Peek::Empty if finished => break,
                    Peek::Empty | Peek::Contended => loom::thread::yield_now(),
                }
            }
            missed += s.take_missed();
            assert_eq!(received + missed, N - first);
            publisher.join().unwrap();
        });
    }
}
