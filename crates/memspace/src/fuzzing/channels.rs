//! The ring's and the queue's protocols over a control block and a data region holding
//! arbitrary bytes, driven by an arbitrary script that also corrupts them while they run.
//!
//! The memory is a 64-byte aligned heap arena used exactly as production uses a mapping:
//! the control block through `Control::from_ptr`, the data through a `MapRegion` (so header
//! words and payload bytes alias, as in a segment). Properties checked on every input:
//! nothing panics (the region's bounds checks included), every message handed out lies inside
//! the data area, the final drain ends within one lap, and while no corruption happened and
//! the channel started empty, exactly the committed messages arrive, intact, once, in order.

use std::collections::{BTreeMap, VecDeque};

use super::Input;
use crate::channel::frame::{MapRegion, Region};
use crate::channel::geometry::Geometry;
use crate::mpmc::core as mpmc;
use crate::spsc::core as spsc;
use crate::sync::{AtomicU64, Ordering};

/// One cache line, the arena's unit (so that the arena is 64-byte aligned).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Zeroed heap memory standing in for a mapping: accessed only through the channel's atomics
/// and the region's copies, as a segment is.
pub(super) struct Arena {
    lines: Vec<Line>,
    ptr: *mut u8,
}

impl Arena {
    /// `len` bytes (rounded up to whole lines), zero.
    pub(super) fn new(len: usize) -> Arena {
        let mut lines = vec![Line([0; 64]); len.div_ceil(64)];
        // `as_mut_ptr` creates no reference to the elements, so this pointer stays the one
        // every later access derives from (the Vec is not touched again until it drops).
        let ptr = lines.as_mut_ptr().cast::<u8>();
        Arena { lines, ptr }
    }

    /// The pointer `off` bytes in (`off` within the arena).
    pub(super) fn at(&self, off: usize) -> *mut u8 {
        assert!(off <= self.lines.len() * 64);
        // SAFETY: within the allocation (checked), or one past its end.
        unsafe { self.ptr.add(off) }
    }
}

/// A power-of-two capacity 32..=4096 and a message limit up to the largest it allows.
pub(super) fn geometry(inp: &mut Input<'_>) -> Geometry {
    let cap = 32u64 << (inp.u8() % 8);
    let max_len = Geometry::max_len_for(cap) * u64::from(inp.u8()) / 255;
    Geometry::new(cap, max_len).expect("valid by construction")
}

/// A position: either raw (anything, misaligned, far apart) or `base` plus a small multiple
/// of 8 (near-valid states, including ones about to wrap past 2^64).
fn position(inp: &mut Input<'_>, raw: bool, base: u64, cap: u64) -> u64 {
    if raw {
        inp.u64()
    } else {
        base.wrapping_add(u64::from(inp.u16()) % (cap / 8 + 2) * 8)
    }
}

/// A value for a corrupted control word: raw, or near its current value.
pub(super) fn corrupt_word(inp: &mut Input<'_>, w: &AtomicU64) {
    let v = match inp.u8() % 3 {
        0 => inp.u64(),
        1 => w
            .load(Ordering::Relaxed)
            .wrapping_add(u64::from(inp.u8()) * 8),
        _ => w
            .load(Ordering::Relaxed)
            .wrapping_sub(u64::from(inp.u8()) * 8),
    };
    // SYNC: Relaxed: single-threaded; the protocol's own loads see it in program order.
    w.store(v, Ordering::Relaxed);
}

/// A message whose bytes say which one it is (so a mix-up is seen).
pub(super) fn payload(seq: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

/// Fails unless `offset..offset+len` lies in a data area of `cap` bytes.
pub(super) fn assert_inside(what: &str, offset: usize, len: u64, cap: u64) {
    assert!(
        (offset as u64)
            .checked_add(len)
            .is_some_and(|end| end <= cap),
        "{what} at {offset}+{len} outside the {cap}-byte data area"
    );
}

/// The ring (`spsc::core`): a producer and a consumer over a control block and data area
/// decoded from the input, then a script of writes, publishes, reads, releases, re-attaches
/// (a side that died) and corruptions.
#[allow(clippy::too_many_lines)] // one script interpreter reads best in one place
pub fn ring(data: &[u8]) {
    let mut inp = Input::new(data);
    let g = geometry(&mut inp);
    let cap = g.capacity();
    let mode = inp.u8();
    let raw = mode & 1 != 0;
    let base = inp_base(&mut inp, mode);
    let tail = position(&mut inp, raw, base, cap);
    let head = position(&mut inp, raw, tail, cap);
    let fill = inp.take(cap as usize);

    let ctl_size = std::mem::size_of::<spsc::Control>();
    let arena = Arena::new(ctl_size + cap as usize);
    // SAFETY: the arena is 64-aligned, `ctl_size` bytes long before the data area, zeroed
    // (a valid control block), and from now on accessed only through `ctl` and `region`.
    let ctl = unsafe { spsc::Control::from_ptr(arena.at(0)) };
    // SAFETY: `cap` bytes after the control block, inside the arena, which outlives `region`
    // and is accessed through no reference.
    let region = unsafe { MapRegion::new(arena.at(ctl_size), cap as usize) };
    region.write(0, fill);
    // SYNC: Relaxed: single-threaded setup.
    ctl.head.pos.store(head, Ordering::Relaxed);
    // SYNC: Relaxed: as above.
    ctl.tail.pos.store(tail, Ordering::Relaxed);

    // The model holds while the ring is intact: it started empty and nothing was corrupted.
    let mut intact = head == tail && head % 8 == 0;
    let mut written: VecDeque<Vec<u8>> = VecDeque::new(); // committed, not yet published
    let mut published: VecDeque<Vec<u8>> = VecDeque::new(); // visible, not yet released
    let mut read = 0usize; // of `published`, how many the consumer has read
    let mut seq = 0u32;
    let mut writes = 0u64; // successful writes: each may add one record to what can be read
    let mut producer = spsc::Producer::attach(g, ctl).ok();
    let mut consumer = spsc::Consumer::attach(g, ctl).ok();

    while !inp.is_empty() {
        match inp.u8() % 10 {
            0 | 1 => {
                let len = (u64::from(inp.u16()) % (g.max_len() + 1)) as usize;
                let msg = payload(seq, len);
                seq += 1;
                if let Some(p) = producer.as_mut() {
                    match p.try_write(ctl, &region, &msg) {
                        Ok(true) => {
                            writes += 1;
                            written.push_back(msg);
                        }
                        Ok(false) => {
                            // Full: in the model, only if what is unreleased fills it.
                        }
                        Err(_) => {
                            assert!(!intact, "ring model: an intact ring reported corruption");
                            producer = None;
                        }
                    }
                }
            }
            2 => {
                if let Some(p) = producer.as_mut() {
                    p.publish(ctl);
                    published.extend(written.drain(..));
                }
            }
            3 | 4 => {
                if let Some(c) = consumer.as_mut() {
                    match c.peek(ctl, &region) {
                        Ok(Some(m)) => {
                            assert_inside("ring message", m.offset, m.len, cap);
                            assert!(m.len <= g.max_len(), "message longer than max_len");
                            let mut out = vec![0u8; m.len as usize];
                            region.read(m.offset, &mut out);
                            c.consume(m);
                            if intact {
                                assert_eq!(published.get(read), Some(&out), "ring model");
                                read += 1;
                            }
                        }
                        Ok(None) => {
                            if intact {
                                assert_eq!(read, published.len(), "ring lost a message");
                            }
                        }
                        Err(_) => {
                            assert!(!intact, "ring model: an intact ring reported corruption");
                            consumer = None;
                        }
                    }
                }
            }
            5 => {
                if let Some(c) = consumer.as_mut() {
                    c.release(ctl);
                    published.drain(..read);
                    read = 0;
                }
            }
            6 => {
                // The producer dies and another takes over: what it did not publish is gone.
                producer = spsc::Producer::attach(g, ctl).ok();
                assert!(producer.is_some() || !intact, "ring model: attach refused");
                written.clear();
            }
            7 => {
                // The consumer dies: what it read but did not release is read again.
                consumer = spsc::Consumer::attach(g, ctl).ok();
                assert!(consumer.is_some() || !intact, "ring model: attach refused");
                read = 0;
            }
            8 => {
                let off = usize::from(inp.u16()) % cap as usize;
                let n = 1 + usize::from(inp.u8() % 8);
                let bytes = inp.take(n);
                let n = bytes.len().min(cap as usize - off);
                region.write(off, &bytes[..n]);
                intact = false;
            }
            _ => {
                let lines = [
                    &ctl.head.pos,
                    &ctl.tail.pos,
                    &ctl.head.count,
                    &ctl.tail.count,
                ];
                let w = lines[usize::from(inp.u8() % 4)];
                corrupt_word(&mut inp, w);
                intact = false;
            }
        }
    }

    // Drain: with the producer gone quiet, a consumer reads each position at most once, so
    // it ends within what was there (a lap) plus what was written. (Not within one lap: a
    // corrupted `tail` can make a producer that trusts its cached tail overwrite records
    // that a consumer attached on the corrupt value then reads again; wrong, but bounded,
    // and outside the promise for a corrupt segment: no crash, no hang, no access outside.)
    if let Some(p) = producer.as_mut() {
        p.publish(ctl);
        published.extend(written.drain(..));
    }
    let Some(mut c) = consumer.or_else(|| spsc::Consumer::attach(g, ctl).ok()) else {
        return;
    };
    for _ in 0..=cap / 8 + 1 + writes {
        match c.peek(ctl, &region) {
            Ok(Some(m)) => {
                assert_inside("ring message", m.offset, m.len, cap);
                let mut out = vec![0u8; m.len as usize];
                region.read(m.offset, &mut out);
                c.consume(m);
                if intact {
                    assert_eq!(published.get(read), Some(&out), "ring model (drain)");
                    read += 1;
                }
            }
            Ok(None) => {
                if intact {
                    assert_eq!(read, published.len(), "ring lost a message (drain)");
                }
                return;
            }
            Err(_) => {
                assert!(!intact, "ring model: an intact ring reported corruption");
                return;
            }
        }
    }
    panic!("the ring's consumer read more records than were ever written");
}

/// The base of near-valid positions: 0, close below 2^64, or raw.
pub(super) fn inp_base(inp: &mut Input<'_>, mode: u8) -> u64 {
    match (mode >> 1) % 4 {
        0 => 0,
        1 => u64::MAX - u64::from(inp.u16()) * 8 - 7,
        _ => inp.u64() & !7,
    }
}

/// What the queue model knows of a claim or a message.
struct Sent {
    producer: usize,
    seq: u32,
    data: Vec<u8>,
}

/// Producers are slots 0..4, consumers 4..8, each with a generation bumped at its "death".
const SIDES: usize = 8;

/// The queue (`mpmc::core`): producers and consumers (by slot and generation) over a control
/// block and data area decoded from the input, then a script of claims, commits, abandons,
/// takes, releases, reclaims, deaths and corruptions.
#[allow(clippy::too_many_lines)] // one script interpreter reads best in one place
pub fn queue(data: &[u8]) {
    let mut inp = Input::new(data);
    let g = geometry(&mut inp);
    let cap = g.capacity();
    let mode = inp.u8();
    let raw = mode & 1 != 0;
    // Owners the script does not know (slots >= SIDES, as a corrupt word may name) are dead
    // or alive as the input says.
    let strangers_alive = mode & 0x80 != 0;
    let base = inp_base(&mut inp, mode);
    let tail = position(&mut inp, raw, base, cap);
    let cpos = position(&mut inp, raw, tail, cap);
    let head = position(&mut inp, raw, cpos, cap);
    let fill = inp.take(cap as usize);

    let ctl_size = std::mem::size_of::<mpmc::Control>();
    let arena = Arena::new(ctl_size + cap as usize);
    // SAFETY: as in `ring`: 64-aligned, zeroed, accessed only through `ctl` and `region`.
    let ctl = unsafe { mpmc::Control::from_ptr(arena.at(0)) };
    // SAFETY: as in `ring`.
    let region = unsafe { MapRegion::new(arena.at(ctl_size), cap as usize) };
    region.write(0, fill);
    // SYNC: Relaxed: single-threaded setup.
    ctl.head.pos.store(head, Ordering::Relaxed);
    // SYNC: Relaxed: as above.
    ctl.cons.pos.store(cpos, Ordering::Relaxed);
    // SYNC: Relaxed: as above.
    ctl.tail.pos.store(tail, Ordering::Relaxed);
    let q = mpmc::Queue {
        g,
        ctl,
        region: &region,
    };
    let _ = q.validate();

    let mut intact = head == cpos && cpos == tail && head % 8 == 0;
    let gens = std::cell::Cell::new([0u16; SIDES]);
    let owner = |slot: usize| mpmc::Owner {
        slot: slot as u32,
        gen: gens.get()[slot],
    };
    let is_dead = |o: mpmc::Owner| match gens.get().get(o.slot as usize) {
        Some(&gen) => gen != o.gen,
        None => !strangers_alive,
    };
    let mut claims: Vec<(mpmc::Claim, Sent)> = Vec::new();
    let mut takes: Vec<(mpmc::Taken, usize)> = Vec::new();
    // Model: committed messages not yet taken, by claim position.
    let mut committed: BTreeMap<u64, Sent> = BTreeMap::new();
    let mut last_seq = [None::<u32>; SIDES];
    let mut seq = 0u32;
    let mut claimed = 0u64; // successful claims: each may add one record to what can be taken

    let check_taken = |t: &mpmc::Taken,
                       intact: bool,
                       committed: &mut BTreeMap<u64, Sent>,
                       last_seq: &mut [Option<u32>; SIDES]| {
        assert_inside("queue message", t.offset, t.len, cap);
        assert!(t.len <= g.max_len(), "message longer than max_len");
        let mut out = vec![0u8; t.len as usize];
        region.read(t.offset, &mut out);
        if intact {
            let sent = committed
                .remove(&t.pos)
                .expect("queue model: a message nobody committed (or one delivered twice)");
            assert_eq!(out, sent.data, "queue model: message bytes");
            if let Some(l) = last_seq[sent.producer] {
                assert!(sent.seq > l, "queue model: out of per-producer order");
            }
            last_seq[sent.producer] = Some(sent.seq);
        }
    };

    while !inp.is_empty() {
        match inp.u8() % 14 {
            0 | 1 => {
                let p = usize::from(inp.u8() % 4);
                let len = (u64::from(inp.u16()) % (g.max_len() + 1)) as usize;
                match q.claim(len as u64, owner(p)) {
                    Ok(Some(c)) => {
                        assert_inside("queue claim", c.offset, c.len, cap);
                        claimed += 1;
                        let data = payload(seq, len);
                        claims.push((
                            c,
                            Sent {
                                producer: p,
                                seq,
                                data,
                            },
                        ));
                        seq += 1;
                    }
                    Ok(None) => {}
                    Err(_) => assert!(!intact, "queue model: an intact queue reported corruption"),
                }
            }
            2 | 3 => {
                if !claims.is_empty() {
                    let (c, sent) = claims.remove(usize::from(inp.u8()) % claims.len());
                    region.write(c.offset, &sent.data);
                    match q.commit(c) {
                        Ok(()) => {
                            committed.insert(c.pos, sent);
                        }
                        Err(_) => assert!(!intact, "queue model: a live claim was taken"),
                    }
                }
            }
            4 => {
                if !claims.is_empty() {
                    let (c, _) = claims.remove(usize::from(inp.u8()) % claims.len());
                    if q.abandon(c).is_err() {
                        assert!(!intact, "queue model: a live claim was taken");
                    }
                }
            }
            5 | 6 => {
                let c = 4 + usize::from(inp.u8() % 4);
                match q.take(owner(c), &mut |o| is_dead(o)) {
                    Ok(mpmc::Take::Got(t)) => {
                        check_taken(&t, intact, &mut committed, &mut last_seq);
                        takes.push((t, c));
                    }
                    Ok(mpmc::Take::Empty) => {
                        if intact {
                            assert!(committed.is_empty(), "queue model: take missed a message");
                        }
                    }
                    Ok(mpmc::Take::Pending) => {}
                    Err(_) => assert!(!intact, "queue model: an intact queue reported corruption"),
                }
            }
            7 | 8 => {
                if !takes.is_empty() {
                    let (t, _) = takes.remove(usize::from(inp.u8()) % takes.len());
                    if q.release(t).is_err() {
                        assert!(!intact, "queue model: an intact queue reported corruption");
                    }
                }
            }
            9 => {
                if q.reclaim(Some(&mut |o| is_dead(o))).is_err() {
                    assert!(!intact, "queue model: an intact queue reported corruption");
                }
                assert!(q.used_bytes() <= cap);
                let _ = (q.len(), q.is_empty());
            }
            10 => {
                // A producer or consumer dies (its slot gets a new generation).
                let s = usize::from(inp.u8()) % SIDES;
                let mut gs = gens.get();
                gs[s] = gs[s].wrapping_add(1);
                gens.set(gs);
                if s < 4 {
                    claims.retain(|(_, sent)| sent.producer != s);
                } else {
                    // What it took is never released (it was delivered once already); the
                    // space comes back through a reclaim that asks for liveness.
                    takes.retain(|&(_, c)| c != s);
                }
            }
            11 => {
                let off = usize::from(inp.u16()) % cap as usize;
                let n = 1 + usize::from(inp.u8() % 8);
                let bytes = inp.take(n);
                let n = bytes.len().min(cap as usize - off);
                region.write(off, &bytes[..n]);
                intact = false;
            }
            12 => {
                let off = (usize::from(inp.u16()) % cap as usize) & !7;
                corrupt_word(&mut inp, region.word(off));
                intact = false;
            }
            _ => {
                let lines = [
                    &ctl.head.pos,
                    &ctl.cons.pos,
                    &ctl.tail.pos,
                    &ctl.head.count,
                    &ctl.cons.count,
                ];
                let w = lines[usize::from(inp.u8() % 5)];
                corrupt_word(&mut inp, w);
                intact = false;
            }
        }
    }

    // Finish: commit what is claimed, release what is taken, then drain with one consumer.
    // Every position is stepped over or handed out at most once, so this ends within what
    // was there (a lap) plus what was claimed (see the drain of `ring`).
    for (c, sent) in claims.drain(..) {
        region.write(c.offset, &sent.data);
        if q.commit(c).is_ok() {
            committed.insert(c.pos, sent);
        } else {
            assert!(!intact, "queue model: a live claim was taken");
        }
    }
    for (t, _) in takes.drain(..) {
        let _ = q.release(t);
    }
    let drainer = owner(4);
    for _ in 0..=cap / 8 + 1 + claimed {
        match q.take(drainer, &mut |o| is_dead(o)) {
            Ok(mpmc::Take::Got(t)) => {
                check_taken(&t, intact, &mut committed, &mut last_seq);
                let _ = q.release(t);
            }
            Ok(mpmc::Take::Empty) => {
                if intact {
                    assert!(
                        committed.is_empty(),
                        "queue model: lost a committed message"
                    );
                    assert!(q.reclaim(Some(&mut |o| is_dead(o))).is_ok());
                    assert_eq!(q.used_bytes(), 0, "queue model: space not reclaimed");
                }
                return;
            }
            Ok(mpmc::Take::Pending) => {
                assert!(!intact, "queue model: wedged on a committed queue");
                return;
            }
            Err(_) => {
                assert!(!intact, "queue model: an intact queue reported corruption");
                return;
            }
        }
    }
    panic!("the queue's consumer took more records than were ever claimed");
}
