//! An eventcount: wait for "something changed" on shared state, without polling and without
//! a syscall on the wake side when nobody waits.
//!
//! This module owns two `u32` words in shared memory and nothing else. The condition being
//! waited for lives elsewhere (an rwlock's state, a ring's indices); the eventcount only makes
//! the sleep/wake race-free. The algorithm is the classic eventcount (Vyukov's formulation,
//! as in Folly's `EventCount` and the Linux futex man page's examples):
//!
//! ```text
//! waiter                                  notifier
//!   key = prepare()   // waiters += 1;      change the condition
//!                     // key = seq
//!   if condition { cancel(); done }        if waiters != 0 { seq += 1; futex_wake(seq, all) }
//!   wait(key)         // futex_wait(seq, key); waiters -= 1
//! ```
//!
//! No lost wake-up: every access above is `SeqCst`, so they fall in one total order. If the
//! waiter's increment comes before the notifier's `waiters` load, the notifier bumps `seq` and
//! wakes (a waiter not yet asleep then finds `seq != key` and `futex_wait` returns at once).
//! Otherwise the waiter's condition check comes after the notifier's change and sees it. The
//! loom tests below check this (see `sync::handshake_fence` for how loom is told).
//!
//! # Encoding (8 bytes, 4-aligned)
//!
//! | offset | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | `seq` | u32 (atomic, futex word) | incremented (wrapping) by every notify |
//! | 4 | `waiters` | u32 (atomic) | processes between `prepare` and the end of `wait` |
//!
//! Untrusted: any values are harmless. A `waiters` count left high by a process that died
//! while waiting only costs the notifier a wake syscall; one left low (corrupted) only delays a
//! waiter until its wait slice ends (every wait has a timeout slice).

use std::time::Duration;

use crate::sync::{handshake_fence, spin_loop, AtomicU32, Ordering};

/// Spins on `seq` this many times before sleeping (a wake round trip through the kernel costs
/// tens of microseconds; a cross-core cache-line round trip about 130 ns).
#[cfg(not(loom))]
const SPIN: u32 = 64;
#[cfg(loom)]
const SPIN: u32 = 1;

/// Sleep/wake on a `u32` word: the futex, or a model of it under loom.
pub(crate) trait Futex {
    /// Sleeps while `*word == expected`, for at most `timeout` (`None`: no limit). Returns
    /// true if the timeout elapsed. May return early (spuriously).
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool;
    /// Wakes one sleeper on `word` (the mutex's unlock).
    fn wake_one(&self, word: &AtomicU32);
    /// Wakes every sleeper on `word`.
    fn wake_all(&self, word: &AtomicU32);
}

/// The operating system's futex (Linux: non-private `FUTEX_WAIT`/`FUTEX_WAKE`, which work
/// across processes on shared mappings).
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OsFutex;

#[cfg(not(loom))]
impl Futex for OsFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
        let t = timeout.unwrap_or(Duration::from_secs(3600));
        // SAFETY: `word` is a live, aligned u32 for the duration of the call.
        let r = unsafe { crate::os::futex_wait(word.as_ptr(), expected, t) };
        r == crate::os::FutexWait::TimedOut
    }

    fn wake_one(&self, word: &AtomicU32) {
        // SAFETY: as above.
        unsafe { crate::os::futex_wake(word.as_ptr(), 1) };
    }

    fn wake_all(&self, word: &AtomicU32) {
        // SAFETY: as above.
        unsafe { crate::os::futex_wake(word.as_ptr(), i32::MAX) };
    }
}

/// Under loom the OS futex is never used (the models use [`ModelFutex`]).
#[cfg(loom)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OsFutex;

#[cfg(loom)]
impl Futex for OsFutex {
    fn wait(&self, _word: &AtomicU32, _expected: u32, _timeout: Option<Duration>) -> bool {
        unimplemented!("no OS futex under loom")
    }

    fn wake_one(&self, _word: &AtomicU32) {
        unimplemented!("no OS futex under loom")
    }

    fn wake_all(&self, _word: &AtomicU32) {
        unimplemented!("no OS futex under loom")
    }
}

/// An eventcount over two words (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventCount<'a> {
    seq: &'a AtomicU32,
    waiters: &'a AtomicU32,
}

impl<'a> EventCount<'a> {
    /// An eventcount over `seq` and `waiters`.
    pub(crate) fn new(seq: &'a AtomicU32, waiters: &'a AtomicU32) -> Self {
        Self { seq, waiters }
    }

    /// Announces a waiter and returns the key to wait on. Must be followed by exactly one
    /// [`EventCount::cancel`] or [`EventCount::wait`].
    pub(crate) fn prepare(&self) -> u32 {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // The SeqCst increment is ordered before every later SeqCst load (the key here and
        // the caller's condition check); pairs with the handshake in `notify`.
        handshake_fence();
        self.seq.load(Ordering::SeqCst)
    }

    /// Withdraws a `prepare` whose condition turned out to hold.
    pub(crate) fn cancel(&self) {
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    /// Sleeps until a notify after `prepare` returned `key`, or `timeout`. Returns true if the
    /// timeout elapsed without a notify.
    pub(crate) fn wait<F: Futex>(&self, futex: &F, key: u32, timeout: Option<Duration>) -> bool {
        for _ in 0..SPIN {
            if self.seq.load(Ordering::SeqCst) != key {
                self.cancel();
                return false;
            }
            spin_loop();
        }
        let timed_out = futex.wait(self.seq, key, timeout);
        self.cancel();
        timed_out && self.seq.load(Ordering::SeqCst) == key
    }

    /// Wakes every waiter. The caller's change of the condition must be a `SeqCst` store or
    /// RMW. When nobody waits this is one load: no write to the shared line, no syscall.
    pub(crate) fn notify<F: Futex>(&self, futex: &F) {
        // Pairs with `prepare`: in the single order of SeqCst operations, either that
        // waiter's increment comes before this load (and we bump `seq` and wake it), or its
        // key and condition loads come after our caller's change (and it does not sleep).
        handshake_fence();
        if self.waiters.load(Ordering::SeqCst) != 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            futex.wake_all(self.seq);
        }
    }
}

/// A model of the futex for loom: a condition variable whose wait re-checks the word under
/// its mutex, exactly as the kernel re-checks it under the futex hash-bucket lock. One model
/// futex serves one word (its sleepers are all of that word's).
#[cfg(loom)]
#[derive(Default)]
pub(crate) struct ModelFutex {
    m: loom::sync::Mutex<()>,
    cv: loom::sync::Condvar,
}

#[cfg(loom)]
impl Futex for ModelFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, _timeout: Option<Duration>) -> bool {
        let g = self.m.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return false;
        }
        drop(self.cv.wait(g).unwrap());
        false
    }

    fn wake_one(&self, _word: &AtomicU32) {
        let _g = self.m.lock().unwrap();
        self.cv.notify_one();
    }

    fn wake_all(&self, _word: &AtomicU32) {
        let _g = self.m.lock().unwrap();
        self.cv.notify_all();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
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

    struct Shared {
        flag: AtomicU32,
        seq: AtomicU32,
        waiters: AtomicU32,
        futex: ModelFutex,
    }

    /// One waiter waits (without timeout) for a flag one notifier sets: in every
    /// interleaving the waiter wakes (a lost wake-up would deadlock, which loom reports).
    #[test]
    fn loom_eventcount_no_lost_wakeup() {
        model(|| {
            let s = Arc::new(Shared {
                flag: AtomicU32::new(0),
                seq: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
                futex: ModelFutex::default(),
            });
            let s2 = s.clone();
            let t = loom::thread::spawn(move || {
                let ec = EventCount::new(&s2.seq, &s2.waiters);
                s2.flag.store(1, Ordering::SeqCst);
                ec.notify(&s2.futex);
            });
            let ec = EventCount::new(&s.seq, &s.waiters);
            loop {
                if s.flag.load(Ordering::SeqCst) == 1 {
                    break;
                }
                let key = ec.prepare();
                if s.flag.load(Ordering::SeqCst) == 1 {
                    ec.cancel();
                    break;
                }
                ec.wait(&s.futex, key, None);
            }
            t.join().unwrap();
            assert_eq!(s.waiters.load(Ordering::SeqCst), 0);
        });
    }

    /// Two waiters, one notifier: both wake.
    #[test]
    fn loom_eventcount_two_waiters() {
        model(|| {
            let s = Arc::new(Shared {
                flag: AtomicU32::new(0),
                seq: AtomicU32::new(0),
                waiters: AtomicU32::new(0),
                futex: ModelFutex::default(),
            });
            let mut hs = Vec::new();
            for _ in 0..2 {
                let s2 = s.clone();
                hs.push(loom::thread::spawn(move || {
                    let ec = EventCount::new(&s2.seq, &s2.waiters);
                    loop {
                        let key = ec.prepare();
                        if s2.flag.load(Ordering::SeqCst) == 1 {
                            ec.cancel();
                            break;
                        }
                        ec.wait(&s2.futex, key, None);
                    }
                }));
            }
            let ec = EventCount::new(&s.seq, &s.waiters);
            s.flag.store(1, Ordering::SeqCst);
            ec.notify(&s.futex);
            for h in hs {
                h.join().unwrap();
            }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wakes_across_threads_and_times_out() {
        let words = Arc::new([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)]);
        let ec = EventCount::new(&words[0], &words[1]);
        let key = ec.prepare();
        let t0 = std::time::Instant::now();
        assert!(ec.wait(&OsFutex, key, Some(Duration::from_millis(20))));
        assert!(t0.elapsed() >= Duration::from_millis(15));
        assert_eq!(words[1].load(Ordering::SeqCst), 0);

        let w2 = words.clone();
        let h = std::thread::spawn(move || {
            let ec = EventCount::new(&w2[0], &w2[1]);
            loop {
                let key = ec.prepare();
                if w2[2].load(Ordering::SeqCst) == 1 {
                    ec.cancel();
                    return;
                }
                ec.wait(&OsFutex, key, Some(Duration::from_secs(10)));
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        words[2].store(1, Ordering::SeqCst);
        ec.notify(&OsFutex);
        h.join().unwrap();
    }
}
