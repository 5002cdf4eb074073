//! The mutex word (`lock::mutex::WordLock`): any value in the word, handles that lock,
//! unlock, die and are replaced, and writes over the word between their calls.

use std::cell::Cell;
use std::time::Duration;

use super::Input;
use crate::lock::eventcount::Futex;
use crate::lock::mutex::{Fault, Holder, Owners, WordLock};
use crate::sync::{AtomicU32, Ordering};

/// Slots of the pretend attachment table (holders of other slots are corrupt).
const SLOTS: u32 = 6;

/// Liveness as the script sets it: per slot, the generation of its current claim and
/// whether a process holds it.
struct ScriptOwners {
    gens: Cell<[u64; SLOTS as usize]>,
    alive: Cell<[bool; SLOTS as usize]>,
}

impl ScriptOwners {
    fn me(&self, slot: u32) -> Holder {
        Holder::new(slot, self.gens.get()[slot as usize])
    }

    fn gone(&self, h: Holder) -> bool {
        let s = h.slot() as usize;
        !self.alive.get()[s] || self.me(h.slot()) != h
    }
}

impl Owners for ScriptOwners {
    fn is_gone(&self, h: Holder) -> Result<bool, Fault> {
        if h.slot() >= SLOTS {
            return Err(Fault::Corrupt(format!(
                "slot {} outside the table",
                h.slot()
            )));
        }
        Ok(self.gone(h))
    }
}

/// A futex that never sleeps (every wait "times out" at once), so that a wait costs only
/// its deadline.
struct NoSleep;

impl Futex for NoSleep {
    fn wait(&self, _word: &AtomicU32, _expected: u32, _timeout: Option<Duration>) -> bool {
        true
    }
    fn wake_one(&self, _word: &AtomicU32) {}
    fn wake_all(&self, _word: &AtomicU32) {}
}

/// The mutex word's protocol from an arbitrary initial word, under a script of try-locks,
/// timed locks (a zero or 100 µs deadline), unlocks, deaths, slot re-claims and writes over
/// the word. Nothing panics and every call returns; an acquisition leaves the word naming the
/// acquirer; and while nobody wrote over the word, the answers are the model's: a free lock
/// is taken, a live holder's is refused, a gone holder's is taken over with `owner_died`, an
/// unlock by the holder frees it.
#[allow(clippy::too_many_lines)] // one script interpreter reads best in one place
pub fn mutex_word(data: &[u8]) {
    let mut inp = Input::new(data);
    let start = if inp.u8() & 1 == 0 {
        0
    } else {
        u32::from_le_bytes([inp.u8(), inp.u8(), inp.u8(), inp.u8()])
    };
    let word = AtomicU32::new(start);
    let owners = ScriptOwners {
        gens: Cell::new([1; SLOTS as usize]),
        alive: Cell::new([true; SLOTS as usize]),
    };
    let lock = WordLock {
        word: &word,
        owners: &owners,
        futex: &NoSleep,
    };
    // The model: who holds it (while nothing wrote over the word).
    let mut intact = start == 0;
    let mut holder: Option<Holder> = None;
    let acquired = |h: Holder, lock: &WordLock<'_, ScriptOwners, NoSleep>| {
        assert_eq!(lock.holder(), Some(h), "an acquisition left another holder");
    };

    while !inp.is_empty() {
        let op = inp.u8();
        let slot = u32::from(inp.u8()) % SLOTS;
        let me = owners.me(slot);
        match op % 8 {
            0 | 1 => {
                let r = lock.try_lock(me);
                match r {
                    Ok(Some(died)) => {
                        acquired(me, &lock);
                        if intact {
                            match holder {
                                None => assert!(!died, "owner_died on a free lock"),
                                Some(h) => assert!(died && owners.gone(h), "took a live lock"),
                            }
                        }
                        holder = Some(me);
                    }
                    Ok(None) => {
                        if intact {
                            let h = holder.expect("a free lock refused");
                            assert!(!owners.gone(h), "a gone holder's lock refused");
                        }
                    }
                    Err(_) => assert!(!intact, "an intact word reported corrupt"),
                }
            }
            2 | 3 => {
                let timeout = if op & 0x80 == 0 {
                    Duration::ZERO
                } else {
                    Duration::from_micros(100)
                };
                match lock.lock(me, Some(timeout), &mut || false) {
                    Ok(died) => {
                        acquired(me, &lock);
                        if intact {
                            match holder {
                                None => assert!(!died, "owner_died on a free lock"),
                                Some(h) => assert!(died && owners.gone(h), "took a live lock"),
                            }
                        }
                        holder = Some(me);
                    }
                    Err(Fault::Timeout) => {
                        // A live holder; or a gone one not probed before the deadline (a lock
                        // probes only after its first sleep; the try-lock checks at once).
                        if intact {
                            assert!(holder.is_some(), "a free lock timed out");
                        }
                    }
                    Err(Fault::Corrupt(_) | Fault::Other(_)) => {
                        assert!(!intact, "an intact word reported corrupt");
                    }
                    Err(Fault::Interrupted) => panic!("interrupted without an interrupt"),
                }
            }
            4 => {
                let r = lock.unlock(me);
                if intact {
                    if holder == Some(me) {
                        assert!(r.is_ok(), "the holder's unlock failed");
                        // SYNC: Relaxed: single-threaded.
                        assert_eq!(word.load(Ordering::Relaxed), 0, "unlock left it held");
                        holder = None;
                    } else {
                        assert!(r.is_err(), "a non-holder's unlock succeeded");
                    }
                } else if r.is_ok() {
                    holder = None;
                }
            }
            5 => {
                // The process in `slot` dies (its handles are gone).
                let mut a = owners.alive.get();
                a[slot as usize] = false;
                owners.alive.set(a);
            }
            6 => {
                // Another process claims `slot`: a new generation, alive.
                let mut g = owners.gens.get();
                g[slot as usize] += 1;
                owners.gens.set(g);
                let mut a = owners.alive.get();
                a[slot as usize] = true;
                owners.alive.set(a);
            }
            _ => {
                let v = u32::from_le_bytes([inp.u8(), inp.u8(), inp.u8(), inp.u8()]);
                // SYNC: Relaxed: single-threaded; a stray write by another process.
                word.store(v, Ordering::Relaxed);
                intact = false;
            }
        }
    }
}
