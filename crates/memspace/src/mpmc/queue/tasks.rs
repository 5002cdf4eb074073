//! The queue's task accounting (layout 2.1): [`Queue::task_done`] and [`Queue::join`] with
//! `multiprocessing.JoinableQueue` semantics, counted per attachment slot and crash-aware (a
//! dead or closed handle's unfinished tasks are settled as lost). The words live behind the
//! queue's lock area (see [`segment`](super::super::segment)); this file is the handle's side.

use std::time::{Duration, Instant};

use super::{lock_until, Queue, C_WHAT};
use crate::channel::error::ChannelError;
use crate::channel::signal::Signal;
use crate::channel::wait::{deadline, no_interrupt};
use crate::error::{Error, Result};
use crate::lock::eventcount::OsFutex;
use crate::lock::mutex::{Interrupt, WAIT_SLICE};
use crate::sync::Ordering;

impl Queue {
    fn no_tasks_error(&self) -> Error {
        Error::Segment(crate::shm::error::SegmentError::IncompatibleLayout {
            location: self.location().clone(),
            reason: "this queue was created with layout 2.0, which has no task accounting: \
                     task_done() and join() need a queue created by this memspace or later"
                .into(),
        })
    }

    /// Marks one message this handle took (`pop`, `take`, a view ...) as processed, as
    /// `multiprocessing.JoinableQueue.task_done` does; [`Queue::join`] waits for every
    /// message to be marked. [`ChannelError::TaskDoneTooOften`] if this handle has no taken
    /// message left unmarked (each handle marks what it took itself).
    pub fn task_done(&self) -> Result<()> {
        let s = &*self.shared;
        if !s.has_tasks() {
            return Err(self.no_tasks_error());
        }
        match s.task_done(s.owner()?) {
            crate::mpmc::segment::TaskDone::Done => {}
            crate::mpmc::segment::TaskDone::TooMany => {
                return Err(Error::Channel(ChannelError::TaskDoneTooOften {
                    location: self.location().clone(),
                }))
            }
        }
        if let Some(ev) = s.done_event() {
            ev.notify(&OsFutex);
        }
        Ok(())
    }

    /// One look (no waiting but for the C-lock, as a take): whether unfinished tasks are
    /// left: a message (or a live producer's put) in the queue, or a message taken by a
    /// live handle and not yet marked done. Dead handles' tasks are settled as lost on the
    /// way. `Ok(None)`: the C-lock was held throughout by another.
    fn tasks_left(&self, lock_until: Option<Instant>) -> Result<Option<bool>> {
        let s = &*self.shared;
        let owner = s.owner()?;
        if s.lock(s.c_lock, owner.slot, lock_until, &mut no_interrupt, C_WHAT)?
            .is_none()
        {
            return Ok(None);
        }
        let queued = s
            .q()
            .has_tasks(&mut |o| s.is_dead(o, true))
            .map_err(|c| s.ch.corrupt(c));
        s.unlock(s.c_lock, C_WHAT)?;
        // Only after the look at the queue: a take is then either before it (and counted in
        // its slot) or after it (of a message committed after the look).
        Ok(Some(queued? || s.unfinished_taken() > 0))
    }

    /// Whether every task is finished now (what [`Queue::join`] waits for). `thorough`: one
    /// full look (the C-lock, as a take, and a liveness check per handle holding tasks,
    /// settling dead ones). Otherwise first a look that reads a few words and touches no
    /// lock: if a task is plainly left (a message in the queue, a taken one not marked by a
    /// handle that looks alive) that is the answer, else the full look. A caller that looks
    /// often (at each `task_done`) looks thoroughly now and then, to find dead handles.
    pub fn join_now(&self, thorough: bool) -> Result<bool> {
        if !self.shared.has_tasks() {
            return Err(self.no_tasks_error());
        }
        if !thorough && self.plainly_unfinished() {
            return Ok(false);
        }
        Ok(self.tasks_left(Some(lock_until(Instant::now(), None, true)))? == Some(false))
    }

    /// The lock-free look of [`Queue::join_now`]: a record between the consumer position and
    /// `head`, or a task count in a slot whose generation is still its taker's.
    fn plainly_unfinished(&self) -> bool {
        let c = self.shared.control();
        // SYNC: Acquire loads; a hint only (a thorough look decides).
        c.cons.pos.load(Ordering::Acquire) != c.head.pos.load(Ordering::Acquire)
            || self.shared.tasks_look_held()
    }

    /// Waits at most `timeout` (`None`: forever) until every task is finished, as
    /// `multiprocessing.JoinableQueue.join` does: every message put (committed, or being
    /// written by a live producer) has been taken, and every message taken has been marked
    /// with [`Queue::task_done`] by the handle that took it, or was lost with a handle that
    /// died (or closed) before marking it. [`ChannelError::Timeout`] if tasks are left then.
    ///
    /// Sleeps on the queue's `done` eventcount, which every `task_done` notifies; at each wake
    /// it reads a few words (no lock) and makes the full look of [`Queue::join_now`] only if
    /// no task is plainly left, and at least once per wait slice (which finds handles that
    /// died holding tasks). The first look is always full: `Some(ZERO)` gives a definite
    /// answer.
    pub fn join(&self, timeout: Option<Duration>, interrupt: Interrupt<'_>) -> Result<()> {
        let s = &*self.shared;
        let Some(ev) = s.done_event() else {
            return Err(self.no_tasks_error());
        };
        let until = deadline(timeout);
        let mut first = true;
        let mut thorough_at = Instant::now();
        loop {
            let key = ev.prepare();
            let now = Instant::now();
            let done = if now < thorough_at && self.plainly_unfinished() {
                Ok(false)
            } else {
                thorough_at = now + WAIT_SLICE;
                self.tasks_left(Some(lock_until(now, until, first)))
                    .map(|left| left == Some(false))
            };
            first = false;
            match done {
                Ok(true) => {
                    ev.cancel();
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => {
                    ev.cancel();
                    return Err(e);
                }
            }
            let now = Instant::now();
            let slice = match until {
                Some(u) if u <= now => {
                    ev.cancel();
                    return Err(self.timeout_error("end of the unfinished tasks", timeout));
                }
                Some(u) => (u - now).min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            ev.wait(
                &OsFutex,
                key,
                Some(slice.min(thorough_at.saturating_duration_since(now))),
            );
            if interrupt() {
                return Err(Error::Interrupted);
            }
        }
    }

    /// Messages taken by live handles and not yet marked done (advisory; settles dead
    /// handles' tasks as lost on the way). 0 without task accounting.
    pub fn unfinished_taken(&self) -> u64 {
        self.shared.unfinished_taken()
    }

    /// Tasks settled as lost so far: taken by a handle that died (or closed) before marking
    /// them done.
    pub fn tasks_lost(&self) -> u64 {
        self.shared.tasks_lost()
    }

    /// The eventcount [`Queue::join`] sleeps on (notified at every `task_done`), for waiting
    /// without a thread per wait; an error for a layout 2.0 queue.
    pub fn tasks_signal(&self) -> Result<Signal> {
        let off = self
            .shared
            .done_offset()
            .ok_or_else(|| self.no_tasks_error())?;
        Ok(Signal::new(self.shared.clone(), off))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    // The helpers take results by value: they are called on calls' results directly.
    #![allow(clippy::needless_pass_by_value)]

    use super::super::*;
    use crate::shm::error::SegmentError;

    fn loc(tag: &str) -> Location {
        crate::testing::unique_location("queue-tasks", tag)
    }

    fn too_often(r: Result<()>) -> bool {
        matches!(
            r,
            Err(Error::Channel(ChannelError::TaskDoneTooOften { .. }))
        )
    }

    fn join_now(q: &Queue) -> Result<()> {
        q.join(Some(Duration::ZERO), &mut no_interrupt)
    }

    fn timed_out(r: Result<()>) -> bool {
        matches!(r, Err(Error::Channel(ChannelError::Timeout { .. })))
    }

    #[test]
    fn join_waits_for_every_message_to_be_taken_and_done() {
        let l = loc("basic");
        let q = QueueOptions::new(l.clone(), 4096).create().unwrap();
        join_now(&q).unwrap();
        for m in [b"a", b"b", b"c"] {
            q.try_push(m).unwrap();
        }
        assert!(timed_out(join_now(&q)), "three in the queue");
        assert_eq!(q.pop_many(3, None, &mut no_interrupt).unwrap().len(), 3);
        assert!(timed_out(join_now(&q)), "taken, not done");
        assert_eq!(q.unfinished_taken(), 3);
        q.task_done().unwrap();
        q.task_done().unwrap();
        assert!(timed_out(join_now(&q)));
        q.task_done().unwrap();
        join_now(&q).unwrap();
        assert!(too_often(q.task_done()));
        assert_eq!((q.unfinished_taken(), q.tasks_lost()), (0, 0));
        // clear() counts what it drops as done.
        q.try_push(b"d").unwrap();
        q.try_push(b"e").unwrap();
        assert_eq!(q.clear().unwrap(), 2);
        join_now(&q).unwrap();
        assert!(too_often(q.task_done()));
        Queue::remove(&l).unwrap();
    }

    #[test]
    fn each_handle_marks_what_it_took_and_a_dropped_one_loses_it() {
        let l = loc("handles");
        let q = QueueOptions::new(l.clone(), 4096).create().unwrap();
        let worker = Queue::open(l.clone()).unwrap();
        q.try_push(b"1").unwrap();
        q.try_push(b"2").unwrap();
        assert!(worker.try_pop().unwrap().is_some());
        assert!(too_often(q.task_done()), "another handle's task");
        let clone = worker.clone();
        clone.task_done().unwrap(); // a clone is the same handle
        assert!(worker.try_pop().unwrap().is_some());
        assert!(timed_out(join_now(&q)));
        drop(worker);
        drop(clone); // detaches: its unfinished task is lost with it
        join_now(&q).unwrap();
        assert_eq!(q.tasks_lost(), 1);
        let info = q.info().unwrap();
        assert_eq!((info.unfinished_taken, info.tasks_lost), (Some(0), Some(1)));
        Queue::remove(&l).unwrap();
    }

    /// The lock-free look cannot tell a dead handle from a live one: only the thorough one
    /// settles its tasks (and `join`'s first look is always thorough).
    #[test]
    fn join_now_finds_dead_handles_only_when_thorough() {
        let l = loc("thorough");
        let q = QueueOptions::new(l.clone(), 4096).create().unwrap();
        let worker = Queue::open(l.clone()).unwrap();
        q.try_push(b"job").unwrap();
        assert!(!q.join_now(false).unwrap(), "in the queue");
        assert!(worker.try_pop().unwrap().is_some());
        assert!(!q.join_now(true).unwrap(), "taken by a live handle");
        drop(worker);
        assert!(!q.join_now(false).unwrap(), "looks held: not settled");
        assert_eq!(q.tasks_lost(), 0);
        assert!(q.join_now(true).unwrap());
        assert_eq!(q.tasks_lost(), 1);
        assert!(q.join_now(false).unwrap());
        join_now(&q).unwrap();
        Queue::remove(&l).unwrap();
    }

    #[test]
    fn join_wakes_at_task_done_and_times_out() {
        let l = loc("wake");
        let q = QueueOptions::new(l.clone(), 4096).create().unwrap();
        q.try_push(b"job").unwrap();
        let t0 = Instant::now();
        assert!(timed_out(
            q.join(Some(Duration::from_millis(60)), &mut no_interrupt)
        ));
        assert!(t0.elapsed() >= Duration::from_millis(60));
        let joiner = {
            let q = Queue::open(l.clone()).unwrap();
            std::thread::spawn(move || q.join(Some(Duration::from_secs(30)), &mut no_interrupt))
        };
        std::thread::sleep(Duration::from_millis(30));
        assert!(q.try_pop().unwrap().is_some());
        std::thread::sleep(Duration::from_millis(30));
        q.task_done().unwrap();
        joiner.join().unwrap().unwrap();
        Queue::remove(&l).unwrap();
    }

    #[test]
    fn an_abandoned_claim_is_no_task_and_a_pending_one_is() {
        let l = loc("claims");
        let q = QueueOptions::new(l.clone(), 4096).create().unwrap();
        let r = q.try_claim(10).unwrap().unwrap();
        assert!(timed_out(join_now(&q)), "a put in progress");
        q.abandon(r).unwrap();
        join_now(&q).unwrap();
        let r = q.try_claim(3).unwrap().unwrap();
        q.write(&r, 0, b"abc");
        q.commit(r).unwrap();
        assert!(timed_out(join_now(&q)));
        Queue::remove(&l).unwrap();
    }

    /// A queue of layout 2.0 (no task accounting) still opens and works; only `task_done` and
    /// `join` refuse it, saying why.
    #[test]
    fn a_layout_2_0_queue_opens_without_task_accounting() {
        let l = loc("old");
        let req = LayoutRequest {
            kind: Kind::Queue,
            attach_slots: DEFAULT_SLOTS,
            lock_size: segment::lock_area_2_0(DEFAULT_SLOTS),
            data_size: 4096,
            kind_param: 1024,
        };
        let st = Structured::create(l.clone(), 0o600, &req, &segment::init, &|_| {}).unwrap();
        drop(st);
        let q = Queue::open(l.clone()).unwrap();
        q.try_push(b"still a queue").unwrap();
        assert_eq!(q.try_pop().unwrap().unwrap(), b"still a queue");
        let refused = |r: Result<()>| {
            matches!(r, Err(Error::Segment(SegmentError::IncompatibleLayout { ref reason, .. }))
                if reason.contains("layout 2.0"))
        };
        assert!(refused(q.task_done()));
        assert!(refused(join_now(&q)));
        assert!(q.tasks_signal().is_err());
        let info = q.info().unwrap();
        assert_eq!((info.unfinished_taken, info.tasks_lost), (None, None));
        Queue::remove(&l).unwrap();
    }
}
