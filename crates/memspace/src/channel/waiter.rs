//! One thread waiting on many channels' eventcounts at once: what lets a single thread per
//! asyncio event loop (Python's `memspace.aio`) stand for every coroutine of that loop that
//! waits, on however many channels.
//!
//! This module owns the multiplexing and nothing else: a [`Waiter`] holds *watches* (a
//! [`Signal`] and the key its `prepare` returned) and reports, from [`Waiter::wait`], those
//! whose eventcount was notified after their key (or whose recheck time came). It never
//! checks a channel's condition and never takes a message: the caller tries the operation
//! again after a watch fires (see [`signal`](super::signal) for the protocol).
//!
//! # How it sleeps
//!
//! The waiting thread sleeps on every watched sequence word plus its own control word (an
//! eventcount on the heap, notified by `watch` and `close`, so that a new watch never waits for
//! the sleeper to come round) with one `futex_waitv` call (Linux 5.16+). Where that call does
//! not exist, or for more words than it takes, each watched word gets a helper thread that
//! sleeps on it alone and notifies the control word when it changes; the waiting thread then
//! sleeps on the control word. Either way nothing polls: an idle waiter makes no system call
//! except at its watches' recheck times.
//!
//! # Recheck
//!
//! Each watch also fires [`RECHECK`] after it was made, notified or not. That is the
//! asynchronous form of the blocking waits' slices: a condition that comes true without a
//! notify (the space of a consumer that died holding messages, a record left by a producer that
//! died mid-write, a waiter count left wrong in a corrupt segment) is found by the caller's next
//! try, at a cost of one try per watch per [`RECHECK`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::signal::Signal;
use crate::channel::wait::deadline;
use crate::lock::eventcount::{EventCount, Futex, WAIT_ANY_MAX};
use crate::sync::{AtomicU32, AtomicU8, Mutex, Ordering};

/// How long after it was made a watch fires even without a notify (see the module docs).
pub const RECHECK: Duration = Duration::from_secs(1);

/// How long a helper thread (see the module docs) stays when its word has no watch left.
#[cfg(not(loom))]
const HELPER_LINGER: Duration = Duration::from_secs(1);

/// What a waiter watches: an eventcount that lives as long as the value.
pub(crate) trait Watched: Send + Sync + 'static {
    fn event(&self) -> EventCount<'_>;
}

impl Watched for Signal {
    fn event(&self) -> EventCount<'_> {
        Signal::event(self)
    }
}

/// Names one watch of a [`Waiter`] (unique for the waiter's life).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchId(pub u64);

/// What [`Waiter::wait`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitStatus {
    /// At least one watch fired (their ids were appended).
    Ready,
    /// The timeout elapsed first.
    TimedOut,
    /// The waiter was closed: every watch is gone and none will fire.
    Closed,
}

struct Entry {
    id: u64,
    src: Arc<dyn Watched>,
    key: u32,
    recheck_at: Option<Instant>,
    /// (Fallback mode) a helper thread saw it changed and notified the control word.
    reported: bool,
}

impl Entry {
    fn word(&self) -> *const AtomicU32 {
        self.src.event().seq_word()
    }
}

#[derive(Default)]
struct State {
    next: u64,
    entries: Vec<Entry>,
    closed: bool,
    /// The words (by address) that have a helper thread, in the fallback mode.
    #[cfg(not(loom))]
    helpers: Vec<usize>,
}

const WAITV_UNKNOWN: u8 = 0;
const WAITV_NO: u8 = 1;

pub(crate) struct Inner<F> {
    /// The control eventcount: `watch` and `close` (and helper threads) notify it.
    ctl_seq: AtomicU32,
    ctl_waiters: AtomicU32,
    state: Mutex<State>,
    futex: F,
    recheck: Option<Duration>,
    /// `WAITV_NO` once waiting on several words at once turned out to be impossible here.
    waitv: AtomicU8,
}

impl<F: Futex + Send + Sync + 'static> Inner<F> {
    fn ctl(&self) -> EventCount<'_> {
        EventCount::new(&self.ctl_seq, &self.ctl_waiters)
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The waiter over any futex (the OS's, or loom's model); [`Waiter`] is the public face.
pub(crate) struct Core<F> {
    inner: Arc<Inner<F>>,
}

impl<F: Futex + Send + Sync + 'static> Core<F> {
    pub(crate) fn new(futex: F, recheck: Option<Duration>) -> Self {
        Core {
            inner: Arc::new(Inner {
                ctl_seq: AtomicU32::new(0),
                ctl_waiters: AtomicU32::new(0),
                state: Mutex::new(State::default()),
                futex,
                recheck,
                waitv: AtomicU8::new(WAITV_UNKNOWN),
            }),
        }
    }

    pub(crate) fn watch(&self, src: Arc<dyn Watched>, key: u32) -> Option<WatchId> {
        let inner = &*self.inner;
        {
            let mut st = inner.lock();
            if st.closed {
                drop(st);
                src.event().cancel();
                return None;
            }
            st.next += 1;
            let id = st.next;
            st.entries.push(Entry {
                id,
                src,
                key,
                recheck_at: inner.recheck.and_then(|r| Instant::now().checked_add(r)),
                reported: false,
            });
            drop(st);
            // The sleeper (if any) sleeps on the words it saw: wake it to add this one.
            inner.ctl().notify(&inner.futex);
            Some(WatchId(id))
        }
    }

    pub(crate) fn unwatch(&self, id: WatchId) -> bool {
        let mut st = self.inner.lock();
        let Some(i) = st.entries.iter().position(|e| e.id == id.0) else {
            return false;
        };
        let e = st.entries.swap_remove(i);
        drop(st);
        e.src.event().cancel();
        drop(e);
        // The sleeper's snapshot still holds the word (and keeps its mapping alive): wake it
        // to let go of it (no syscall unless it sleeps).
        self.inner.ctl().notify(&self.inner.futex);
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub(crate) fn close(&self) {
        let inner = &*self.inner;
        let entries = {
            let mut st = inner.lock();
            st.closed = true;
            std::mem::take(&mut st.entries)
        };
        for e in entries {
            e.src.event().cancel();
        }
        inner.ctl().notify(&inner.futex);
    }

    pub(crate) fn wait(&self, timeout: Option<Duration>, out: &mut Vec<WatchId>) -> WaitStatus {
        let inner = &*self.inner;
        let until = deadline(timeout);
        let mut words: Vec<(Arc<dyn Watched>, u32)> = Vec::new();
        loop {
            let ctl = inner.ctl();
            let ctl_key = ctl.prepare();
            words.clear();
            let mut next_recheck: Option<Instant> = None;
            {
                let mut st = inner.lock();
                if st.closed {
                    drop(st);
                    ctl.cancel();
                    return WaitStatus::Closed;
                }
                let now = Instant::now();
                let before = out.len();
                let mut fired = Vec::new();
                st.entries.retain(|e| {
                    let due =
                        e.src.event().changed(e.key) || e.recheck_at.is_some_and(|r| r <= now);
                    if due {
                        out.push(WatchId(e.id));
                        fired.push(e.src.clone());
                    }
                    !due
                });
                if out.len() > before {
                    drop(st);
                    ctl.cancel();
                    // The waiter owned these prepares: withdraw them (outside the lock).
                    for src in fired {
                        src.event().cancel();
                    }
                    return WaitStatus::Ready;
                }
                for e in &st.entries {
                    if !words
                        .iter()
                        .any(|(w, _)| std::ptr::eq(w.event().seq_word(), e.word()))
                    {
                        words.push((e.src.clone(), e.key));
                    }
                    if let Some(r) = e.recheck_at {
                        next_recheck = Some(next_recheck.map_or(r, |n| n.min(r)));
                    }
                }
            }
            let now = Instant::now();
            if until.is_some_and(|u| u <= now) {
                ctl.cancel();
                return WaitStatus::TimedOut;
            }
            let wake_at = match (until, next_recheck) {
                (Some(u), Some(r)) => Some(u.min(r)),
                (u, r) => u.or(r),
            };
            let left = wake_at.map(|w| w.saturating_duration_since(now));
            self.sleep(ctl_key, &words, left);
            ctl.cancel();
        }
    }

    /// Sleeps until the control word moves past `ctl_key`, a word of `words` moves past its
    /// key, or `left` elapses (or spuriously).
    fn sleep(&self, ctl_key: u32, words: &[(Arc<dyn Watched>, u32)], left: Option<Duration>) {
        let inner = &*self.inner;
        // SYNC: Relaxed: a hint only; a stale value costs one failed `wait_any` call.
        if words.len() < WAIT_ANY_MAX && inner.waitv.load(Ordering::Relaxed) != WAITV_NO {
            let mut all: Vec<(&AtomicU32, u32)> = Vec::with_capacity(words.len() + 1);
            all.push((&inner.ctl_seq, ctl_key));
            for (w, key) in words {
                all.push((w.event().seq_word(), *key));
            }
            if inner.futex.wait_any(&all, left).is_some() {
                return;
            }
            // SYNC: Relaxed: see the load above.
            inner.waitv.store(WAITV_NO, Ordering::Relaxed);
        }
        self.sleep_with_helpers(ctl_key, words, left);
    }

    #[cfg(not(loom))]
    fn sleep_with_helpers(
        &self,
        ctl_key: u32,
        words: &[(Arc<dyn Watched>, u32)],
        left: Option<Duration>,
    ) {
        let inner = &*self.inner;
        let mut degraded = false;
        for (w, _) in words {
            let addr = std::ptr::from_ref(w.event().seq_word()) as usize;
            let mut st = inner.lock();
            if st.helpers.contains(&addr) {
                continue;
            }
            st.helpers.push(addr);
            drop(st);
            let core = Core {
                inner: self.inner.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name("memspace-waiter".into())
                .spawn(move || core.helper(addr));
            if spawned.is_err() {
                inner.lock().helpers.retain(|&a| a != addr);
                degraded = true;
            }
        }
        // Without a helper for some word (no thread could be started), look again soon.
        let left = if degraded {
            Some(left.map_or(DEGRADED_SLICE, |l| l.min(DEGRADED_SLICE)))
        } else {
            left
        };
        inner.futex.wait(&inner.ctl_seq, ctl_key, left);
    }

    #[cfg(loom)]
    fn sleep_with_helpers(
        &self,
        ctl_key: u32,
        _words: &[(Arc<dyn Watched>, u32)],
        left: Option<Duration>,
    ) {
        // The loom models' futex always waits on several words; this is never reached.
        self.inner.futex.wait(&self.inner.ctl_seq, ctl_key, left);
    }

    /// A helper thread: sleeps on the word at `addr` while a watch of it has not fired, and
    /// notifies the control word when it changes; ends when no watch has used the word for
    /// [`HELPER_LINGER`], or at `close`.
    #[cfg(not(loom))]
    fn helper(&self, addr: usize) {
        let inner = &*self.inner;
        let mut idle_since: Option<Instant> = None;
        loop {
            let ctl = inner.ctl();
            let ctl_key = ctl.prepare();
            let target = {
                let mut st = inner.lock();
                if st.closed {
                    st.helpers.retain(|&a| a != addr);
                    drop(st);
                    ctl.cancel();
                    return;
                }
                let mut any = false;
                let mut report = false;
                let mut pending = None;
                for e in st.entries.iter_mut().filter(|e| e.word() as usize == addr) {
                    any = true;
                    if !e.src.event().changed(e.key) {
                        pending.get_or_insert_with(|| (e.src.clone(), e.key));
                    } else if !e.reported {
                        // Changed, and the waiting thread may not know: it sleeps on the
                        // control word. Tell it once per watch (it fires every changed watch
                        // it sees, and looks before it sleeps).
                        e.reported = true;
                        report = true;
                    }
                }
                if any {
                    idle_since = None;
                } else {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= HELPER_LINGER {
                        st.helpers.retain(|&a| a != addr);
                        drop(st);
                        ctl.cancel();
                        return;
                    }
                }
                (pending, report)
            };
            match target {
                (_, true) => {
                    ctl.cancel();
                    inner.ctl().notify(&inner.futex);
                }
                (Some((src, key)), false) => {
                    ctl.cancel();
                    let ev = src.event();
                    // Sliced only so that a withdrawn watch does not keep the thread forever.
                    inner.futex.wait(ev.seq_word(), key, Some(HELPER_LINGER));
                }
                // Nothing to sleep on (no watch, or every watch of the word has fired and was
                // reported): wait for the watches to change.
                (None, false) => {
                    inner
                        .futex
                        .wait(&inner.ctl_seq, ctl_key, Some(HELPER_LINGER));
                    ctl.cancel();
                }
            }
        }
    }
}

/// How often the fallback looks at its words when no helper thread could be started.
#[cfg(not(loom))]
const DEGRADED_SLICE: Duration = Duration::from_millis(10);

/// Waits on the eventcounts of many channels from one thread (see the module docs).
///
/// ```
/// use std::time::Duration;
/// use memspace::mpmc::{Queue, QueueOptions};
/// use memspace::{Interest, Location, WaitStatus, Waiter};
///
/// let loc = Location::Name(format!("/memspace-doc-waiter-{}", std::process::id()));
/// let q = QueueOptions::new(loc.clone(), 4096).create()?;
/// let signal = q.signal(Interest::Readable);
/// let waiter = Waiter::new();
///
/// // The receive loop of an event loop, for one queue:
/// let key = signal.prepare();
/// assert!(q.try_pop()?.is_none()); // the try after prepare: nothing yet
/// let id = waiter.watch(&signal, key).expect("open");
///
/// let q2 = q.clone();
/// std::thread::spawn(move || q2.try_push(b"hello"));
/// let mut fired = Vec::new();
/// while fired.is_empty() {
///     assert_ne!(waiter.wait(Some(Duration::from_secs(10)), &mut fired), WaitStatus::Closed);
/// }
/// assert_eq!(fired, [id]);
/// assert_eq!(q.try_pop()?.as_deref(), Some(&b"hello"[..]));
/// Queue::remove(&loc)?;
/// # Ok::<(), memspace::Error>(())
/// ```
pub struct Waiter {
    core: Core<crate::lock::eventcount::OsFutex>,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("watches", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for Waiter {
    fn default() -> Self {
        Waiter::new()
    }
}

impl Waiter {
    /// A waiter with no watches.
    pub fn new() -> Waiter {
        Waiter {
            core: Core::new(crate::lock::eventcount::OsFutex, Some(RECHECK)),
        }
    }

    /// The fallback of platforms without `futex_waitv` (a helper thread per watched word),
    /// whatever this platform has: for tests.
    #[doc(hidden)]
    pub fn without_wait_any() -> Waiter {
        let w = Waiter::new();
        // SYNC: Relaxed: set before the waiter is shared.
        w.core.inner.waitv.store(WAITV_NO, Ordering::Relaxed);
        w
    }

    /// Watches `signal` from the key its [`prepare`](Signal::prepare) returned; the waiter now
    /// owns that prepare (it cancels it when the watch fires, is withdrawn, or the waiter
    /// closes). `None` if the waiter is closed (the prepare is cancelled then too).
    pub fn watch(&self, signal: &Signal, key: u32) -> Option<WatchId> {
        self.core.watch(Arc::new(signal.clone()), key)
    }

    /// Withdraws a watch that has not fired: true if it was still there (its prepare is
    /// cancelled), false if it already fired (a `wait` reported it or will).
    pub fn unwatch(&self, id: WatchId) -> bool {
        self.core.unwatch(id)
    }

    /// Waits at most `timeout` (`None`: no limit) until at least one watch fires: its
    /// eventcount was notified after its key, or [`RECHECK`] passed since it was made. Appends
    /// the ids of every watch that fired to `out` (they are gone from the waiter: try the
    /// operation, and watch again if it still cannot proceed). One thread waits at a time.
    pub fn wait(&self, timeout: Option<Duration>, out: &mut Vec<WatchId>) -> WaitStatus {
        self.core.wait(timeout, out)
    }

    /// Withdraws every watch and wakes the waiting thread; every later `wait` returns
    /// [`WaitStatus::Closed`] and `watch` returns `None`.
    pub fn close(&self) {
        self.core.close();
    }

    /// Watches not yet fired.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// True if no watch is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // Withdraws the prepares and ends helper threads.
        self.core.close();
    }
}

#[cfg(test)]
mod test_support {
    use super::Watched;
    use crate::lock::eventcount::EventCount;
    use crate::sync::AtomicU32;

    /// An eventcount on the heap.
    #[derive(Default)]
    pub(super) struct HeapEv {
        pub(super) seq: AtomicU32,
        pub(super) waiters: AtomicU32,
    }

    impl Watched for HeapEv {
        fn event(&self) -> EventCount<'_> {
            EventCount::new(&self.seq, &self.waiters)
        }
    }
}

// Not under Miri: these tests sleep in the kernel (futex_waitv, which Miri does not model, and
// helper threads on real futexes) and one opens a real queue; the loom models below check the
// waiter's handshake itself.
#[cfg(all(test, not(loom), not(miri)))]
mod tests {
    use super::test_support::HeapEv;
    use super::*;
    use crate::lock::eventcount::OsFutex;

    const LONG: Option<Duration> = Some(Duration::from_secs(30));
    /// A wait for a watch that was notified lasting this long means it was stranded.
    const STRANDED: Duration = Duration::from_secs(5);

    fn cores() -> Vec<Core<OsFutex>> {
        let fallback = Core::new(OsFutex, None);
        fallback.inner.waitv.store(WAITV_NO, Ordering::Relaxed);
        vec![Core::new(OsFutex, None), fallback]
    }

    fn waiters(ev: &HeapEv) -> u32 {
        ev.waiters.load(Ordering::SeqCst)
    }

    #[test]
    fn fires_on_a_notify_after_the_key_only() {
        for core in cores() {
            let ev = Arc::new(HeapEv::default());
            let key = ev.event().prepare();
            let id = core.watch(ev.clone(), key).unwrap();
            let mut out = Vec::new();
            let t0 = Instant::now();
            let st = core.wait(Some(Duration::from_millis(30)), &mut out);
            assert_eq!(st, WaitStatus::TimedOut);
            assert!(t0.elapsed() >= Duration::from_millis(30) && out.is_empty());
            let ev2 = ev.clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                ev2.event().notify(&OsFutex);
            });
            assert_eq!(core.wait(LONG, &mut out), WaitStatus::Ready);
            assert_eq!(out, [id]);
            assert_eq!(waiters(&ev), 0, "the waiter cancelled the prepare it owned");
            assert_eq!(core.len(), 0);
            t.join().unwrap();
        }
    }

    #[test]
    fn unwatch_withdraws_the_prepare() {
        for core in cores() {
            let ev = Arc::new(HeapEv::default());
            let id = core.watch(ev.clone(), ev.event().prepare()).unwrap();
            assert_eq!(waiters(&ev), 1);
            assert!(core.unwatch(id));
            assert!(!core.unwatch(id));
            assert_eq!(waiters(&ev), 0);
            // A watch whose key is already stale fires at once.
            let key = ev.event().prepare();
            ev.seq.fetch_add(1, Ordering::SeqCst);
            let id = core.watch(ev.clone(), key).unwrap();
            let mut out = Vec::new();
            assert_eq!(core.wait(LONG, &mut out), WaitStatus::Ready);
            assert_eq!(out, [id]);
            assert!(!core.unwatch(id), "fired: nothing left to withdraw");
            assert_eq!(waiters(&ev), 0);
        }
    }

    #[test]
    fn a_watch_reaches_a_waiter_already_asleep() {
        for core in cores() {
            let core = Arc::new(core);
            let c2 = core.clone();
            let t = std::thread::spawn(move || {
                let mut out = Vec::new();
                (c2.wait(LONG, &mut out), out)
            });
            std::thread::sleep(Duration::from_millis(30));
            let ev = Arc::new(HeapEv::default());
            let id = core.watch(ev.clone(), ev.event().prepare()).unwrap();
            std::thread::sleep(Duration::from_millis(30));
            ev.event().notify(&OsFutex);
            let (st, out) = t.join().unwrap();
            assert_eq!((st, out), (WaitStatus::Ready, vec![id]));
        }
    }

    #[test]
    fn recheck_fires_without_a_notify() {
        let core = Core::new(OsFutex, Some(Duration::from_millis(40)));
        let ev = Arc::new(HeapEv::default());
        let t0 = Instant::now();
        let id = core.watch(ev.clone(), ev.event().prepare()).unwrap();
        let mut out = Vec::new();
        assert_eq!(core.wait(LONG, &mut out), WaitStatus::Ready);
        assert!(t0.elapsed() >= Duration::from_millis(40));
        assert_eq!(out, [id]);
        assert_eq!(waiters(&ev), 0);
    }

    #[test]
    fn close_wakes_the_waiter_and_cancels_everything() {
        for core in cores() {
            let core = Arc::new(core);
            let ev = Arc::new(HeapEv::default());
            core.watch(ev.clone(), ev.event().prepare()).unwrap();
            let c2 = core.clone();
            let t = std::thread::spawn(move || c2.wait(None, &mut Vec::new()));
            std::thread::sleep(Duration::from_millis(30));
            core.close();
            assert_eq!(t.join().unwrap(), WaitStatus::Closed);
            assert_eq!(waiters(&ev), 0);
            assert!(core.watch(ev.clone(), ev.event().prepare()).is_none());
            assert_eq!(waiters(&ev), 0, "a refused watch cancels its prepare");
        }
    }

    /// A notifier streaming against a watcher that watches again after every fire: no watch
    /// is ever stranded (no recheck here: a lost wake-up would time out), whatever the order
    /// of the notify, the waiter's look and (fallback) the helper's.
    #[test]
    fn a_stream_of_notifies_never_strands_a_watch() {
        for core in cores() {
            let ev = Arc::new(HeapEv::default());
            let flag = Arc::new(AtomicU32::new(0));
            let (ev2, f2) = (ev.clone(), flag.clone());
            let n = 3000u32;
            let t = std::thread::spawn(move || {
                for i in 1..=n {
                    f2.store(i, Ordering::SeqCst);
                    ev2.event().notify(&OsFutex);
                    if i % 10 == 0 {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            });
            let mut seen = 0;
            while seen < n {
                let key = ev.event().prepare();
                let v = flag.load(Ordering::SeqCst);
                if v != seen {
                    ev.event().cancel();
                    seen = v;
                    continue;
                }
                let id = core.watch(ev.clone(), key).unwrap();
                let mut out = Vec::new();
                // (A stranded watch would be found at the timeout, by the waiter's last look.)
                let t0 = Instant::now();
                assert_eq!(core.wait(Some(STRANDED), &mut out), WaitStatus::Ready);
                assert!(t0.elapsed() < STRANDED, "stranded at {seen}");
                assert_eq!(out, [id]);
            }
            t.join().unwrap();
            assert_eq!(waiters(&ev), 0);
        }
    }

    /// More words than one `futex_waitv` takes: helper threads cover them all.
    #[test]
    fn more_words_than_one_call_takes() {
        let core = Core::new(OsFutex, None);
        let evs: Vec<Arc<HeapEv>> = (0..WAIT_ANY_MAX + 3)
            .map(|_| Arc::new(HeapEv::default()))
            .collect();
        let ids: Vec<WatchId> = evs
            .iter()
            .map(|ev| core.watch(ev.clone(), ev.event().prepare()).unwrap())
            .collect();
        for pick in [WAIT_ANY_MAX + 1, 3] {
            let ev = evs[pick].clone();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                ev.event().notify(&OsFutex);
            });
            let mut out = Vec::new();
            assert_eq!(core.wait(LONG, &mut out), WaitStatus::Ready);
            assert_eq!(out, [ids[pick]]);
            t.join().unwrap();
        }
        core.close();
        assert!(evs.iter().all(|ev| waiters(ev) == 0));
    }

    /// A real queue's readable signal, notified by a push from another thread.
    #[test]
    fn a_queue_push_fires_its_readable_signal() {
        use crate::channel::signal::Interest;
        use crate::mpmc::QueueOptions;
        let loc = crate::testing::unique_location("waiter", "queue");
        let q = QueueOptions::new(loc.clone(), 4096).create().unwrap();
        let w = Waiter::new();
        let sig = q.signal(Interest::Readable);
        let key = sig.prepare();
        assert!(q.try_pop().unwrap().is_none());
        let id = w.watch(&sig, key).unwrap();
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            q2.try_push(b"x").unwrap()
        });
        let mut out = Vec::new();
        assert_eq!(w.wait(LONG, &mut out), WaitStatus::Ready);
        assert_eq!(out, [id]);
        assert!(t.join().unwrap());
        assert_eq!(q.try_pop().unwrap().unwrap(), b"x");
        assert!(sig.same_as(&q.signal(Interest::Readable)));
        assert!(!sig.same_as(&q.signal(Interest::Writable)));
        crate::mpmc::Queue::remove(&loc).unwrap();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::test_support::HeapEv;
    use super::*;
    use crate::lock::eventcount::ModelFutex;

    /// Every party shares one model futex (as every futex word shares the kernel's).
    #[derive(Clone, Default)]
    struct Model(Arc<ModelFutex>);

    impl Futex for Model {
        fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
            self.0.wait(word, expected, timeout)
        }
        fn wake_one(&self, word: &AtomicU32) {
            self.0.wake_one(word);
        }
        fn wake_all(&self, word: &AtomicU32) {
            self.0.wake_all(word);
        }
        fn wait_any(&self, words: &[(&AtomicU32, u32)], timeout: Option<Duration>) -> Option<bool> {
            self.0.wait_any(words, timeout)
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.check(f);
    }

    /// The split protocol (prepare, try, watch; the waiter reports) against a notifier that
    /// sets the condition concurrently: in every interleaving either the try sees the
    /// condition or the watch fires (a lost wake-up would deadlock the wait).
    #[test]
    fn loom_waiter_no_lost_wakeup() {
        model(|| {
            let futex = Model::default();
            let ev = Arc::new(HeapEv::default());
            let flag = Arc::new(AtomicU32::new(0));
            let (ev2, flag2, f2) = (ev.clone(), flag.clone(), futex.clone());
            let t = loom::thread::spawn(move || {
                flag2.store(1, Ordering::SeqCst);
                ev2.event().notify(&f2);
            });
            let core = Core::new(futex, None);
            let key = ev.event().prepare();
            if flag.load(Ordering::SeqCst) == 1 {
                ev.event().cancel();
            } else {
                let id = core.watch(ev.clone(), key).unwrap();
                let mut out = Vec::new();
                assert_eq!(core.wait(None, &mut out), WaitStatus::Ready);
                assert_eq!(out, [id]);
                assert_eq!(flag.load(Ordering::SeqCst), 1);
            }
            t.join().unwrap();
            assert_eq!(ev.waiters.load(Ordering::SeqCst), 0);
        });
    }

    /// A watch made while the waiting thread sleeps (on its control word only) reaches it,
    /// and the notify that follows fires the watch.
    #[test]
    fn loom_waiter_watch_reaches_the_sleeper() {
        model(|| {
            let futex = Model::default();
            let core = Arc::new(Core::new(futex.clone(), None));
            let c2 = core.clone();
            let t = loom::thread::spawn(move || {
                let mut out = Vec::new();
                let st = c2.wait(None, &mut out);
                (st, out)
            });
            let ev = Arc::new(HeapEv::default());
            let id = core.watch(ev.clone(), ev.event().prepare()).unwrap();
            ev.event().notify(&futex);
            let (st, out) = t.join().unwrap();
            assert_eq!(st, WaitStatus::Ready);
            assert_eq!(out, [id]);
        });
    }
}
