//! The rwlock's state machine over borrowed words: the protocol, without the segment.
//!
//! This module owns the algorithm and the encoding of the `state` word and the reader words;
//! where the words live (an rwlock area of a segment, see [`segment`](super::segment)), which
//! lock is the writer lock, how liveness is asked and how failures are worded are the
//! caller's, behind the traits below. It never touches the data the lock protects.
//!
//! # Algorithm
//!
//! - **Writer**: takes the robust writer mutex `W` (so writers sleep on its futex word and a
//!   dead writer's `W` is taken over with `owner_died`), swaps `WRITER | slot+1` into `state` — from that
//!   moment no new reader gets in (writer preference) — and waits until every reader counter
//!   is zero. Release: store `state = 0`, notify, unlock `W`.
//! - **Reader**: if `WRITER` is clear, increments its slot's counter, then re-checks `state`
//!   (both `SeqCst`, a Dekker handshake with the writer's store-then-scan); if a writer came in
//!   between, it backs out (decrement, notify) and waits on the eventcount until `WRITER` clears.
//!   Release: decrement, and notify if `WRITER` is set (a writer is draining).
//! - **Dead reader**: its counter stays up. A draining writer that has waited one slice probes
//!   the liveness of every slot with a non-zero count (the attachment table's OFD locks); a
//!   dead slot's count is compare-and-swapped to zero and the writer is told `owner_died`. A
//!   process that claims a slot clears its counter too (any count there belongs to a dead
//!   predecessor) and bumps the word's generation, so a writer's stale compare-and-swap can
//!   never clear the new holder's reads (ABA).
//! - **A writer that gives up** (timeout, interrupt) after replacing a dead holder leaves
//!   `DIED` in `state`, and the next writer reports `owner_died`: the news is never lost.
//! - **Dead writer**: `state` keeps `WRITER`. A waiting reader whose slice elapsed try-locks `W`:
//!   busy means a writer is alive; acquiring it (taking it over if its holder died) proves
//!   that no live writer set `WRITER`, so the reader clears it, notifies, unlocks, and is told
//!   `owner_died`.
//!
//! The state machine is model-checked with loom (`loom_*` tests below) on heap memory, with
//! the writer mutex and the futex modelled.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::lock::eventcount::{EventCount, Futex};
use crate::lock::mutex::Interrupt;
use crate::sync::{handshake_fence, AtomicU32, Ordering};

/// Set in `state` while a writer holds the lock or drains its readers.
pub(crate) const WRITER: u32 = 1 << 31;
/// Low bits of a reader word: the slot's read holds. The high bits are the slot's claim
/// generation, bumped whenever a process claims the slot, so that a writer clearing a dead
/// reader's count (compare-and-swap on the whole word) can never clear the count of the
/// process that claimed the slot after it (ABA).
pub(crate) const COUNT_MASK: u32 = (1 << 20) - 1;
pub(crate) const GEN_ONE: u32 = 1 << 20;
/// Set (without `WRITER`) by a writer that replaced a dead holder and then gave up (timeout,
/// interrupt, or a try-lock that found readers): the next writer reports `owner_died`.
const DIED: u32 = 1 << 30;
/// Wait slice of rwlock waits: after each, a reader probes for a dead writer and a writer for
/// dead readers, so a dead holder is recognised within about this long.
const PROBE_SLICE: Duration = Duration::from_millis(20);

/// The writer lock of the algorithm (the robust mutex, or a model under loom).
pub(crate) trait WriterLock {
    /// `Ok(None)` if busy, `Ok(Some(owner_died))` if acquired.
    fn try_lock(&self) -> Result<Option<bool>>;
    /// Waits at most `timeout`; returns `owner_died`.
    fn lock(&self, timeout: Option<Duration>, interrupt: Interrupt<'_>) -> Result<bool>;
    fn unlock(&self) -> Result<()>;
}

/// Which attachment slots are alive (the attachment table, or everyone under loom).
pub(crate) trait Liveness {
    fn is_alive(&self, slot: u32) -> Result<bool>;
    /// Slots beyond this have never been claimed.
    fn scan_limit(&self) -> u32;
}

/// What a failed acquisition reports, built by the caller (it knows the location).
pub(crate) trait Failures {
    fn timeout(&self, timeout: Duration) -> Error;
    fn corrupt(&self, reason: String) -> Error;
}

/// The algorithm over borrowed words (see the module docs).
pub(crate) struct RwCore<'a, W, F, L, X> {
    pub(crate) state: &'a AtomicU32,
    pub(crate) ec: EventCount<'a>,
    pub(crate) readers: &'a [AtomicU32],
    pub(crate) w: W,
    pub(crate) futex: F,
    pub(crate) live: L,
    pub(crate) fail: X,
}

fn now() -> Duration {
    #[cfg(not(loom))]
    {
        crate::os::monotonic_now()
    }
    #[cfg(loom)]
    {
        Duration::ZERO
    }
}

impl<W: WriterLock, F: Futex, L: Liveness, X: Failures> RwCore<'_, W, F, L, X> {
    fn reader(&self, slot: u32) -> Result<&AtomicU32> {
        self.readers.get(slot as usize).ok_or_else(|| {
            self.fail
                .corrupt(format!("reader slot {slot} out of range"))
        })
    }

    /// One attempt to enter as a reader.
    fn try_read(&self, slot: u32) -> Result<bool> {
        if self.state.load(Ordering::SeqCst) & WRITER != 0 {
            return Ok(false);
        }
        let r = self.reader(slot)?;
        r.fetch_add(1, Ordering::SeqCst);
        // Dekker handshake with the writer's SeqCst store of WRITER and its SeqCst scan.
        handshake_fence();
        if self.state.load(Ordering::SeqCst) & WRITER == 0 {
            return Ok(true);
        }
        r.fetch_sub(1, Ordering::SeqCst);
        // A writer may be draining and have counted us.
        self.ec.notify(&self.futex);
        Ok(false)
    }

    /// A reader found `WRITER` set for a whole slice: if the writer lock is free (or its
    /// holder is dead), the bit is stale; clear it. Returns `owner_died`.
    fn recover_writer(&self) -> Result<bool> {
        let Some(died) = self.w.try_lock()? else {
            return Ok(false);
        };
        let stale = self.state.load(Ordering::SeqCst) & WRITER != 0;
        if stale {
            self.state.store(0, Ordering::SeqCst);
            self.ec.notify(&self.futex);
        }
        self.w.unlock()?;
        Ok(died || stale)
    }

    /// Read-locks; returns `owner_died` (a dead writer's lock was recovered).
    pub(crate) fn read(
        &self,
        slot: u32,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<bool> {
        let mut died = false;
        if self.try_read(slot)? {
            return Ok(died);
        }
        if timeout == Some(Duration::ZERO) {
            return Err(self.fail.timeout(Duration::ZERO));
        }
        let deadline = timeout.map(|t| now().saturating_add(t));
        loop {
            if self.try_read(slot)? {
                return Ok(died);
            }
            let key = self.ec.prepare();
            if self.state.load(Ordering::SeqCst) & WRITER == 0 {
                self.ec.cancel();
                continue;
            }
            let t = now();
            let slice = match deadline {
                Some(d) if t >= d => {
                    self.ec.cancel();
                    return Err(self.fail.timeout(timeout.unwrap_or_default()));
                }
                Some(d) => d.saturating_sub(t).min(PROBE_SLICE),
                None => PROBE_SLICE,
            };
            if self.ec.wait(&self.futex, key, Some(slice)) {
                if self.state.load(Ordering::SeqCst) & WRITER != 0 {
                    died |= self.recover_writer()?;
                }
                if interrupt() {
                    return Err(Error::Interrupted);
                }
            }
        }
    }

    /// Releases a read hold of `slot`.
    pub(crate) fn read_unlock(&self, slot: u32) -> Result<()> {
        let r = self.reader(slot)?;
        let prev = r.fetch_sub(1, Ordering::SeqCst);
        if prev & COUNT_MASK == 0 {
            r.fetch_add(1, Ordering::SeqCst);
            return Err(self.fail.corrupt(format!(
                "reader count of slot {slot} was 0 at a release by a holder"
            )));
        }
        // Handshake with `write`: either we see WRITER and wake the writer, or the writer's
        // scan sees our decrement.
        handshake_fence();
        if self.state.load(Ordering::SeqCst) & WRITER != 0 {
            self.ec.notify(&self.futex);
        }
        Ok(())
    }

    /// Write-locks; returns `owner_died` (a dead writer's or reader's hold was released).
    pub(crate) fn write(
        &self,
        slot: u32,
        timeout: Option<Duration>,
        interrupt: Interrupt<'_>,
    ) -> Result<bool> {
        // The clock is read only when a wait is needed (a vDSO call costs as much as the
        // whole uncontended path).
        let mut start = None;
        let mut died = match self.w.try_lock()? {
            Some(d) => d,
            None if timeout == Some(Duration::ZERO) => {
                return Err(self.fail.timeout(Duration::ZERO))
            }
            None => {
                let t0 = now();
                start = Some(t0);
                self.w.lock(timeout, interrupt)?
            }
        };
        // Dekker handshake with `try_read` / `read_unlock` (all SeqCst). A swap, to collect
        // the news of a dead holder left by a writer that gave up (see `abort` below).
        if self.state.swap(WRITER | (slot + 1), Ordering::SeqCst) & DIED != 0 {
            died = true;
        }
        handshake_fence();
        // Fast path: no reader at all (no eventcount traffic).
        let limit = self.live.scan_limit().min(self.readers.len() as u32) as usize;
        if self.readers[..limit]
            .iter()
            .all(|r| r.load(Ordering::SeqCst) & COUNT_MASK == 0)
        {
            return Ok(died);
        }
        let start = start.unwrap_or_else(now);
        let deadline = timeout.map(|t| start.saturating_add(t));
        let mut probe = false;
        // Giving up after having replaced a dead holder must not lose that news: it is left
        // in `state` for the next writer.
        let abort = |e: Error, died: bool| -> Result<bool> {
            self.state
                .store(if died { DIED } else { 0 }, Ordering::SeqCst);
            self.ec.notify(&self.futex);
            self.w.unlock()?;
            Err(e)
        };
        loop {
            let key = self.ec.prepare();
            let mut busy = false;
            let limit = self.live.scan_limit().min(self.readers.len() as u32);
            for i in 0..limit {
                let r = &self.readers[i as usize];
                let c = r.load(Ordering::SeqCst);
                if c & COUNT_MASK == 0 {
                    continue;
                }
                if probe && i != slot {
                    let alive = match self.live.is_alive(i) {
                        Ok(a) => a,
                        Err(e) => {
                            self.ec.cancel();
                            return abort(e, died);
                        }
                    };
                    if !alive
                        && r.compare_exchange(
                            c,
                            c & !COUNT_MASK,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        )
                        .is_ok()
                    {
                        died = true;
                        continue;
                    }
                }
                busy = true;
            }
            if !busy {
                self.ec.cancel();
                return Ok(died);
            }
            let t = now();
            let slice = match deadline {
                Some(d) if t >= d => {
                    self.ec.cancel();
                    return abort(self.fail.timeout(timeout.unwrap_or_default()), died);
                }
                Some(d) => d.saturating_sub(t).min(PROBE_SLICE),
                None => PROBE_SLICE,
            };
            if self.ec.wait(&self.futex, key, Some(slice)) {
                probe = true;
                if interrupt() {
                    return abort(Error::Interrupted, died);
                }
            }
        }
    }

    /// Releases the write lock.
    pub(crate) fn write_unlock(&self) -> Result<()> {
        // SeqCst: a reader that sees 0 sees everything written under the write lock, and
        // `notify` needs the change to be SeqCst.
        self.state.store(0, Ordering::SeqCst);
        self.ec.notify(&self.futex);
        self.w.unlock()
    }

    /// True if a writer holds or waits for the lock (informational).
    pub(crate) fn is_write_locked(&self) -> bool {
        self.state.load(Ordering::SeqCst) & WRITER != 0
    }

    /// Sum of reader counts (informational).
    pub(crate) fn reader_count(&self) -> u64 {
        let limit = self.live.scan_limit().min(self.readers.len() as u32) as usize;
        self.readers[..limit]
            .iter()
            .map(|r| u64::from(r.load(Ordering::SeqCst) & COUNT_MASK))
            .sum()
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::lock::eventcount::ModelFutex;
    use loom::sync::Arc;

    /// Bounded preemptions keep the exhaustive search to seconds (`LOOM_MAX_PREEMPTIONS`
    /// overrides it).
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.check(f);
    }

    /// A spin lock standing in for the robust mutex.
    struct ModelWriter<'a>(&'a AtomicU32);

    impl WriterLock for ModelWriter<'_> {
        fn try_lock(&self) -> Result<Option<bool>> {
            Ok(self
                .0
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
                .then_some(false))
        }
        fn lock(&self, _t: Option<Duration>, _i: Interrupt<'_>) -> Result<bool> {
            while self
                .0
                .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                loom::thread::yield_now();
            }
            Ok(false)
        }
        fn unlock(&self) -> Result<()> {
            self.0.store(0, Ordering::SeqCst);
            Ok(())
        }
    }

    struct AllAlive(u32);
    impl Liveness for AllAlive {
        fn is_alive(&self, _slot: u32) -> Result<bool> {
            Ok(true)
        }
        fn scan_limit(&self) -> u32 {
            self.0
        }
    }

    struct Fail;
    impl Failures for Fail {
        fn timeout(&self, _t: Duration) -> Error {
            Error::Interrupted
        }
        fn corrupt(&self, reason: String) -> Error {
            Error::InvalidArgument(reason)
        }
    }

    struct Words {
        state: AtomicU32,
        seq: AtomicU32,
        waiters: AtomicU32,
        w: AtomicU32,
        readers: [AtomicU32; 2],
        futex: ModelFutex,
        // Data "protected" by the lock: writers bump both, readers check they are equal.
        a: AtomicU32,
        b: AtomicU32,
        inside_writers: AtomicU32,
    }

    fn core(w: &Words) -> RwCore<'_, ModelWriter<'_>, &ModelFutex, AllAlive, Fail> {
        RwCore {
            state: &w.state,
            ec: EventCount::new(&w.seq, &w.waiters),
            readers: &w.readers,
            w: ModelWriter(&w.w),
            futex: &w.futex,
            live: AllAlive(2),
            fail: Fail,
        }
    }

    impl Futex for &ModelFutex {
        fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
            (*self).wait(word, expected, timeout)
        }
        fn wake_one(&self, word: &AtomicU32) {
            (*self).wake_one(word);
        }
        fn wake_all(&self, word: &AtomicU32) {
            (*self).wake_all(word);
        }
    }

    fn words() -> Arc<Words> {
        Arc::new(Words {
            state: AtomicU32::new(0),
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            w: AtomicU32::new(0),
            readers: [AtomicU32::new(0), AtomicU32::new(0)],
            futex: ModelFutex::default(),
            a: AtomicU32::new(0),
            b: AtomicU32::new(0),
            inside_writers: AtomicU32::new(0),
        })
    }

    /// One reader (slot 0) and one writer (slot 1): mutual exclusion holds, the reader never
    /// sees a half-done update, and nobody sleeps forever (loom reports deadlocks).
    #[test]
    fn loom_rwlock_reader_writer() {
        model(|| {
            let w = words();
            let w2 = w.clone();
            let t = loom::thread::spawn(move || {
                let c = core(&w2);
                c.write(1, None, &mut || false).unwrap();
                assert_eq!(w2.inside_writers.fetch_add(1, Ordering::SeqCst), 0);
                w2.a.fetch_add(1, Ordering::SeqCst);
                w2.b.fetch_add(1, Ordering::SeqCst);
                w2.inside_writers.fetch_sub(1, Ordering::SeqCst);
                c.write_unlock().unwrap();
            });
            let c = core(&w);
            c.read(0, None, &mut || false).unwrap();
            assert_eq!(w.inside_writers.load(Ordering::SeqCst), 0);
            assert_eq!(w.a.load(Ordering::SeqCst), w.b.load(Ordering::SeqCst));
            c.read_unlock(0).unwrap();
            t.join().unwrap();
            assert_eq!(w.state.load(Ordering::SeqCst), 0);
            assert_eq!(w.readers[0].load(Ordering::SeqCst), 0);
        });
    }

    /// Two readers (slots 0 and 1) and a writer (slot 1, like a second thread of the second
    /// reader's process): exclusion holds and every thread finishes.
    #[test]
    fn loom_rwlock_two_readers_one_writer() {
        model(|| {
            let w = words();
            let w2 = w.clone();
            let writer = loom::thread::spawn(move || {
                let c = core(&w2);
                c.write(1, None, &mut || false).unwrap();
                assert_eq!(w2.inside_writers.fetch_add(1, Ordering::SeqCst), 0);
                w2.a.fetch_add(1, Ordering::SeqCst);
                w2.b.fetch_add(1, Ordering::SeqCst);
                w2.inside_writers.fetch_sub(1, Ordering::SeqCst);
                c.write_unlock().unwrap();
            });
            let w3 = w.clone();
            let reader = loom::thread::spawn(move || {
                let c = core(&w3);
                c.read(1, None, &mut || false).unwrap();
                assert_eq!(w3.inside_writers.load(Ordering::SeqCst), 0);
                assert_eq!(w3.a.load(Ordering::SeqCst), w3.b.load(Ordering::SeqCst));
                c.read_unlock(1).unwrap();
            });
            let c = core(&w);
            c.read(0, None, &mut || false).unwrap();
            assert_eq!(w.inside_writers.load(Ordering::SeqCst), 0);
            c.read_unlock(0).unwrap();
            writer.join().unwrap();
            reader.join().unwrap();
            assert_eq!(w.state.load(Ordering::SeqCst) & WRITER, 0);
        });
    }

    /// Two writers: mutual exclusion and no lost wake-up.
    #[test]
    fn loom_rwlock_two_writers() {
        model(|| {
            let w = words();
            let hs: Vec<_> = (0..2u32)
                .map(|slot| {
                    let w2 = w.clone();
                    loom::thread::spawn(move || {
                        let c = core(&w2);
                        c.write(slot, None, &mut || false).unwrap();
                        assert_eq!(w2.inside_writers.fetch_add(1, Ordering::SeqCst), 0);
                        w2.inside_writers.fetch_sub(1, Ordering::SeqCst);
                        c.write_unlock().unwrap();
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        });
    }
}
