//! The broadcast's protocol (`broadcast::core`) over a publisher line, subscriber cursor lines
//! and a data area holding arbitrary bytes, driven by an arbitrary script that also corrupts
//! them while a publisher and a few subscribers use them.
//!
//! The memory is the channel targets' heap arena, laid out as a segment lays it out: the
//! publisher's line, then one line per attachment slot, then the data area (through a
//! `MapRegion`, so record headers, indices and payloads alias as in a mapping). Properties
//! checked on every input, in both overflow modes: nothing panics (the region's bounds checks
//! included), every call returns (no loop without a bound), every reservation and every
//! delivered message lies inside the data area; and while nothing was corrupted, every
//! subscriber receives exactly the messages published after it joined, intact, in order, once
//! (in overwrite mode: a lap reported as a count of missed messages, which together with what
//! it then receives is exactly what was published).

use super::channels::{assert_inside, corrupt_word, geometry, inp_base, payload, Arena};
use super::Input;
use crate::broadcast::core::{
    Message, Overflow, Peek, PubLine, Publisher, SubLine, Subscriber, Unsettled, INACTIVE, INDEX,
};
use crate::channel::frame::{MapRegion, Region};
use crate::channel::geometry::Geometry;
use crate::sync::Ordering;

/// Attachment slots: the script's subscribers use 0..3; slot 3 holds a stranger whose cursor
/// only corruption moves (alive or dead as the input says).
const SLOTS: usize = 4;
const SUBS: usize = 3;

/// One of the script's subscribers and what the model expects of it.
struct Sub {
    core: Subscriber,
    /// A message peeked and not yet copied (a view held across other steps).
    view: Option<Message>,
    /// Model: the index (in `published`) of the next message it should receive.
    next: usize,
}

/// The broadcast core (both overflow modes): one publisher and up to three subscribers over a
/// control block, cursor lines and a data area decoded from the input, then a script of
/// writes, publications, receives, held views, releases, joins, leaves, deaths (of the
/// publisher or a subscriber) and corruptions of the control words, the cursor lines, the
/// record headers and the data.
#[allow(clippy::too_many_lines)] // one script interpreter reads best in one place
#[allow(clippy::cast_ptr_alignment)] // the arena is 64-aligned, the lines 128 bytes each
pub fn broadcast(data: &[u8]) {
    let mut inp = Input::new(data);
    let g = geometry(&mut inp);
    // A broadcast's frame limit always holds the index (the segment layer refuses others).
    let g = Geometry::new(g.capacity(), g.max_len().max(INDEX)).expect("valid by construction");
    let cap = g.capacity();
    let mode = inp.u8();
    let overflow = if mode & 1 == 0 {
        Overflow::Block
    } else {
        Overflow::Overwrite
    };
    let stranger_alive = mode & 0x80 != 0;
    let unsettled = if mode & 0x40 == 0 {
        Unsettled::Inexact
    } else {
        Unsettled::Final
    };
    let raw = mode & 0x20 != 0;
    let base = inp_base(&mut inp, mode);
    let head = if raw { inp.u64() } else { base };
    let tail = if raw {
        inp.u64()
    } else {
        head.wrapping_sub(u64::from(inp.u8() % 4) * 8)
    };
    let sent = inp.u64();
    let fill = inp.take(cap as usize);
    // The largest payload (the record's frame also holds the index).
    let max_payload = g.max_len() - INDEX;

    let pub_size = std::mem::size_of::<PubLine>();
    let sub_size = std::mem::size_of::<SubLine>();
    let data_at = pub_size + SLOTS * sub_size;
    let arena = Arena::new(data_at + cap as usize);
    // SAFETY: the arena is 64-aligned and zeroed, `PubLine` is only atomics (all-zero is its
    // initial state), and from now on the line's bytes are accessed only through `ctl`.
    let ctl = unsafe { &*arena.at(0).cast::<PubLine>() };
    // SAFETY: as above: `SLOTS` lines of atomics after the publisher's, inside the arena.
    let subs = unsafe { std::slice::from_raw_parts(arena.at(pub_size).cast::<SubLine>(), SLOTS) };
    // SAFETY: `cap` bytes after the lines, inside the arena, which outlives `region` and is
    // accessed through no reference to these bytes.
    let region = unsafe { MapRegion::new(arena.at(data_at), cap as usize) };
    region.write(0, fill);
    for line in subs {
        line.clear(false);
    }
    // SYNC: Relaxed: single-threaded setup.
    ctl.head.store(head, Ordering::Relaxed);
    // SYNC: Relaxed: as above.
    ctl.tail.store(tail, Ordering::Relaxed);
    // SYNC: Relaxed: as above.
    ctl.sent.store(sent, Ordering::Relaxed);

    // The model holds while the broadcast is intact: it started empty (the tail at the head),
    // far from the end of the position space and of the message count (subscribers refuse an
    // index that wrapped), and nothing was corrupted.
    let mut intact = head == tail && head % 8 == 0 && head < 1 << 62 && sent < 1 << 62;
    // Messages published (by model index; the core's index is `sent + model index`).
    let mut published: Vec<Vec<u8>> = Vec::new();
    let mut written: Vec<Vec<u8>> = Vec::new(); // committed, not yet published
    let mut writes = 0u64;
    let mut sender = Publisher::attach(g, overflow, ctl).ok();
    assert!(
        sender.is_some() || !intact,
        "broadcast model: attach refused"
    );
    let mut sub: [Option<Sub>; SUBS] = [None, None, None];
    // Block mode asks about the subscribers that hold the publisher back.
    let alive = |sub: &[Option<Sub>; SUBS], slot: usize| {
        if slot < SUBS {
            sub[slot].is_some()
        } else {
            stranger_alive
        }
    };

    while !inp.is_empty() {
        match inp.u8() % 14 {
            0..=2 => {
                let len = (u64::from(inp.u16()) % (max_payload + 1)) as usize;
                let msg = payload(writes as u32, len);
                if let Some(p) = sender.as_mut() {
                    let mut alive = |slot| alive(&sub, slot);
                    // SYNC: Relaxed: single-threaded.
                    let before = ctl.head.load(Ordering::Relaxed);
                    let reserved = p.reserve(ctl, subs, &region, len as u64, &mut alive);
                    // SYNC: Relaxed: as above.
                    if ctl.head.load(Ordering::Relaxed) != before {
                        // Overwrite mode publishes what it retires records for.
                        published.append(&mut written);
                    }
                    match reserved {
                        Ok(Some(r)) => {
                            assert_inside("broadcast reservation", r.offset, r.len, cap);
                            assert_eq!(r.len, len as u64, "reservation of another length");
                            region.write(r.offset, &msg);
                            p.commit(r);
                            writes += 1;
                            written.push(msg);
                        }
                        Ok(None) => assert!(overflow == Overflow::Block, "overwrite mode waits"),
                        Err(e) => {
                            assert!(!intact, "broadcast model: an intact one reported {e:?}");
                            sender = None;
                        }
                    }
                }
            }
            3 => {
                if let Some(p) = sender.as_mut() {
                    p.publish(ctl);
                    published.append(&mut written);
                }
            }
            4..=6 => {
                // Receive (copy, validate, consume), or finish a held view the same way.
                let k = usize::from(inp.u8()) % SUBS;
                let release = inp.u8() & 1 == 0;
                if let Some(s) = sub[k].as_mut() {
                    if !receive(s, ctl, &region, &published, intact, sent) {
                        sub[k] = None;
                        continue;
                    }
                    if release {
                        s.core.release(&subs[k]);
                    }
                }
            }
            7 => {
                // A view: peek and hold the message across the next steps.
                let k = usize::from(inp.u8()) % SUBS;
                if let Some(s) = sub[k].as_mut() {
                    if s.view.is_none() {
                        match s.core.peek(ctl, &region) {
                            Ok(Peek::Message(m)) => {
                                check_message(&m, cap, max_payload);
                                s.view = Some(m);
                            }
                            Ok(Peek::Lagged) => {
                                let n = s.core.take_missed();
                                lagged(s, n, overflow, intact);
                            }
                            Ok(Peek::Empty | Peek::Contended) => {}
                            Err(e) => {
                                assert!(!intact, "broadcast model: an intact one reported {e:?}");
                                sub[k] = None;
                            }
                        }
                    }
                }
            }
            8 => {
                // Join a free slot, or leave (clearing the slot), or die (the cursor stays).
                let k = usize::from(inp.u8()) % SUBS;
                let how = inp.u8() % 3;
                if sub[k].is_some() {
                    if how == 0 {
                        sub[k] = None; // died: block mode finds it dead when it holds us back
                    } else {
                        subs[k].clear(false);
                        sub[k] = None;
                    }
                } else {
                    match Subscriber::join(g, overflow, ctl, subs, k, &mut || unsettled) {
                        Ok(core) => {
                            if intact {
                                assert_eq!(
                                    core.next_index(),
                                    sent.wrapping_add(published.len() as u64),
                                    "broadcast model: a joiner's first index"
                                );
                            }
                            sub[k] = Some(Sub {
                                core,
                                view: None,
                                next: published.len(),
                            });
                        }
                        Err(e) => assert!(!intact, "broadcast model: join refused: {e:?}"),
                    }
                }
            }
            9 => {
                // The publisher dies and another takes over: what it did not publish is gone.
                sender = Publisher::attach(g, overflow, ctl).ok();
                assert!(
                    sender.is_some() || !intact,
                    "broadcast model: attach refused"
                );
                written.clear();
            }
            10 => {
                let off = usize::from(inp.u16()) % cap as usize;
                let n = 1 + usize::from(inp.u8() % 8);
                let bytes = inp.take(n);
                let n = bytes.len().min(cap as usize - off);
                region.write(off, &bytes[..n]);
                intact = false;
            }
            11 => {
                // A record header or index word (any aligned word of the data area).
                let off = (usize::from(inp.u16()) % cap as usize) & !7;
                corrupt_word(&mut inp, region.word(off));
                intact = false;
            }
            12 => {
                let words = [
                    &ctl.head,
                    &ctl.sent,
                    &ctl.tail,
                    &ctl.version,
                    &ctl.slots_used,
                ];
                let w = words[usize::from(inp.u8() % 5)];
                corrupt_word(&mut inp, w);
                intact = false;
            }
            _ => {
                let line = &subs[usize::from(inp.u8()) % SLOTS];
                let words = [&line.pos, &line.next, &line.gen, &line.missed];
                let w = words[usize::from(inp.u8() % 4)];
                if inp.u8() % 4 == 0 {
                    // SYNC: Relaxed: single-threaded; the protocol's loads see it in order.
                    w.store(INACTIVE, Ordering::Relaxed);
                } else {
                    corrupt_word(&mut inp, w);
                }
                intact = false;
            }
        }
    }

    // What opening and inspection read (they must not fail otherwise than with an error).
    let _ = crate::broadcast::core::validate(g, overflow, ctl);
    if let Ok((h, _, _)) = crate::broadcast::core::published(ctl) {
        assert!(
            h < crate::broadcast::core::POS_LIMIT,
            "published head {h} is not a position"
        );
    }
    for line in subs {
        let _ = crate::broadcast::core::slot_state(line);
    }

    // Drain: publish what is written, then each subscriber reads until it is told "empty".
    // Each step moves its position forward past a record (or to the oldest record, after
    // which it moves forward again), so it ends within a lap plus what was written.
    if let Some(p) = sender.as_mut() {
        p.publish(ctl);
        published.append(&mut written);
    }
    for s in sub.iter_mut().flatten() {
        let mut done = false;
        for _ in 0..2 * (cap / 8 + 2 + writes) {
            if s.view.is_some() {
                if !receive(s, ctl, &region, &published, intact, sent) {
                    done = true;
                    break;
                }
                continue;
            }
            match s.core.peek(ctl, &region) {
                Ok(Peek::Message(m)) => {
                    check_message(&m, cap, max_payload);
                    s.view = Some(m);
                }
                Ok(Peek::Lagged) => {
                    let n = s.core.take_missed();
                    lagged(s, n, overflow, intact);
                }
                Ok(Peek::Empty) => {
                    if intact {
                        assert_eq!(s.next, published.len(), "broadcast lost a message");
                    }
                    done = true;
                    break;
                }
                Ok(Peek::Contended) => {
                    // A publication that never ends (a corrupt version): it would wait.
                    assert!(!intact, "contended without a concurrent writer");
                    done = true;
                    break;
                }
                Err(e) => {
                    assert!(!intact, "broadcast model: an intact one reported {e:?}");
                    done = true;
                    break;
                }
            }
        }
        assert!(
            done,
            "a broadcast subscriber read more records than were ever written"
        );
    }
}

/// What every message handed out must satisfy, corrupt segment or not.
fn check_message(m: &Message, cap: u64, max_payload: u64) {
    assert_inside("broadcast message", m.offset, m.len, cap);
    assert!(
        m.len <= max_payload,
        "broadcast message longer than max_len"
    );
}

/// A lap of `n` messages reported to `s`.
fn lagged(s: &mut Sub, n: u64, overflow: Overflow, intact: bool) {
    if intact {
        assert!(
            overflow == Overflow::Overwrite,
            "block mode lapped a subscriber"
        );
        assert!(n > 0, "a lap of no message");
        s.next += n as usize;
    }
}

/// One message for `s` (its held view, or the next one): copy, validate, consume. False if
/// the subscriber reported corruption (it is dropped).
fn receive(
    s: &mut Sub,
    ctl: &PubLine,
    region: &MapRegion,
    published: &[Vec<u8>],
    intact: bool,
    sent: u64,
) -> bool {
    let m = match s.view.take() {
        Some(m) => m,
        None => match s.core.peek(ctl, region) {
            Ok(Peek::Message(m)) => m,
            Ok(Peek::Lagged) => {
                let n = s.core.take_missed();
                if intact {
                    assert!(n > 0, "a lap of no message");
                    s.next += n as usize;
                }
                return true;
            }
            Ok(Peek::Empty) => {
                if intact {
                    assert_eq!(s.next, published.len(), "broadcast lost a message");
                }
                return true;
            }
            Ok(Peek::Contended) => {
                assert!(!intact, "contended without a concurrent writer");
                return true;
            }
            Err(e) => {
                assert!(!intact, "broadcast model: an intact one reported {e:?}");
                return false;
            }
        },
    };
    assert_inside("broadcast message", m.offset, m.len, region.len() as u64);
    let mut out = vec![0u8; m.len as usize];
    region.read_racy(m.offset, &mut out);
    match s.core.validate(ctl, region, &m) {
        Ok(true) => {
            s.core.consume(&m);
            if intact {
                assert_eq!(
                    m.index,
                    sent.wrapping_add(s.next as u64),
                    "broadcast model: message index"
                );
                assert_eq!(
                    published.get(s.next),
                    Some(&out),
                    "broadcast model: message"
                );
                s.next += 1;
            }
        }
        Ok(false) => {
            // Written over while held (overwrite mode): a lap that counts it.
            let n = s.core.take_missed();
            if intact {
                assert!(n > 0, "a lap of no message");
                s.next += n as usize;
            }
        }
        Err(e) => {
            assert!(!intact, "broadcast model: an intact one reported {e:?}");
            return false;
        }
    }
    true
}
