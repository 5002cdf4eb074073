//! [`SharedFileSystem`]: the bounded filesystem in one segment that any number of processes
//! map at once, crash-safe under `SIGKILL` at any instruction.
//!
//! It reuses what every filesystem here shares (`path`, `glob`, `options`, `error`,
//! `handle`'s cursor) and the segment machinery (`shm::structured`, the attachment table,
//! the robust mutex, the eventcount). This module owns the filesystem area of a segment of
//! kind [`Kind::FileSystem`](crate::shm::header::Kind); it must never trust a byte of it.
//!
//! # Design (LMDB's, with its three known hurts designed out)
//!
//! - **One commit lock** (the crate's robust mutex, in the segment's lock area) serialises
//!   *commits*, never data copies: a write handle copies its bytes into a private extent
//!   outside it, and takes it only for the short transaction that records a change of size.
//! - **Two copies of the metadata** and a root generation `g`: copy `g & 1` is committed and
//!   immutable; a transaction writes only the other one and commits with one `SeqCst` store
//!   of `g + 1`. A writer that dies before that store leaves the old state current: there is
//!   nothing to repair, only the inactive copy to rebuild (next section).
//! - **Commit log instead of a full copy.** Each commit records the byte ranges it wrote
//!   (merged, at most `log` of them). The next transaction first copies exactly those ranges
//!   from the committed copy into the inactive one (which was one generation behind), so a
//!   commit costs what it changed, not the size of the metadata. After a crash (the inactive
//!   copy's sequence word is odd, or the lock reports its owner died), or when the log
//!   overflowed, the copy is rebuilt whole, once.
//! - **Snapshot reads without a lock** (seqlock over the two copies): a reader loads the
//!   root, the copy's sequence word (even), reads, and re-checks the sequence word; a changed
//!   word means a commit two generations later is rewriting that copy, and the read is
//!   retried (after 64 tries it runs under the commit lock). Torn values are never trusted:
//!   every read is validated and bounded, and only a read whose sequence check passed can
//!   report corruption.
//! - **File data is one contiguous extent per file**, 64-byte aligned, in the data area, so
//!   a read is one copy and [`SharedFileSystem::view`] is a zero-copy read-only view.
//! - **Old versions and pins.** An extent that leaves the committed state (a file replaced
//!   or removed) becomes an *old version* `(off, len, born, last)`: it was visible in
//!   generations `born..=last`. A view or a snapshot copy *pins* the generation it reads in
//!   its process's slot record; an old version is freed only when no live pin lies in
//!   `born..=last`. So a long-lived view holds only the bytes it can see (not, as in LMDB,
//!   everything freed after it), and a dead process's pins count for nothing.
//! - **Dead processes** are told by the attachment table (an OFD lock per slot) plus an
//!   epoch each process writes in its slot record when it attaches: a lock entry or pin of
//!   `(slot, epoch)` is dead when the slot is not held or holds another epoch. Dead entries
//!   are reaped when met (a wait for a file lock re-checks every 50 ms), when space or quota
//!   runs out, when the commit lock reports its previous owner died, and on attach.
//!
//! # Region layout (the segment's data area; all integers native-endian)
//!
//! | offset | size | what |
//! |---:|---:|---|
//! | 0 | 4096 | superblock: parameters (checksummed) and the live words |
//! | 4096 | `log` × 16 | commit log: `(offset, length)` ranges of the last commit |
//! | after, 64-aligned | `slots` × 128 | slot records (epoch, pid, pins) |
//! | 4096-aligned | `copy_size` | metadata copy 0 |
//! | next | `copy_size` | metadata copy 1 |
//! | next | `data` | file data (extents) |
//!
//! Superblock:
//!
//! | offset | field | meaning |
//! |---:|---|---|
//! | 0 | magic u64 | `b"MSFS0001"` |
//! | 8 | version u64 | 1 |
//! | 16 | nodes u64 | inode capacity = `max_nodes` (the root included) |
//! | 24 | locks u64 | lock-table entries (open handles at once) |
//! | 32 | slots u64 | attachment slots (= the header's) |
//! | 40 | names u64 | bytes of the name heap |
//! | 48 | log u64 | commit-log entries |
//! | 56 | data u64 | bytes of the data area |
//! | 64 | `max_quota` u64 | quota |
//! | 72 | `chunk_overhead` u64 | D-MemFS per-chunk charge |
//! | 80 | `promotion_hard_limit` u64 | |
//! | 88 | `storage` u64 | 0 auto, 1 sequential, 2 random access |
//! | 96 | `lock_timeout_ns` u64 | default `open` lock timeout (`u64::MAX`: forever) |
//! | 248 | checksum u64 | FNV-1a over bytes 0..248 |
//! | 256 | root u64 (atomic) | the committed generation `g` (copy `g & 1`) |
//! | 320 / 384 | seq0 / seq1 u64 (atomic) | sequence word of each copy: odd while written |
//! | 448 | `log_gen` u64 | the generation whose ranges the log holds |
//! | 456 | `log_len` u64 | entries in the log (`u64::MAX`: overflowed) |
//! | 512 / 516 | evc seq / waiters u32 (atomic) | eventcount of file-lock waits |
//!
//! Every other offset is recomputed from these parameters ([`layout::Layout::plan`]), never
//! read; the layout must fit the data area the segment header declares.
//!
//! Slot record `s` (128 bytes): `epoch` u64 at 0 (written on attach), `pid` u64 at 8, then 4
//! pin entries of 24 bytes at 16: `lo`, `hi` (a range of pinned generations; `lo` 0 = none),
//! `since_ns`. The last entry covers every old and new range while the others change, so no
//! pinned generation is ever uncovered.
//!
//! Metadata copy (offsets within the copy):
//!
//! | part | entry | fields |
//! |---|---:|---|
//! | header | 256 | gen, nodes, files, dirs, used, chunks, free-inode head, inode high-water mark, name heap top and dead bytes, free/old-version counts, lock free head / high-water / used, commit time (bytes 0..104); a word-wise multiplicative checksum of them at 248 |
//! | inodes | 96 | kind u8 (0 free, 1 file, 2 dir), flags u8 (1: written), `name_len` u16, `name_off` u32, parent, first child, next, prev sibling u32, `lock_head` u32, size, extent off, extent cap, chunks (`u64::MAX`: random access), born generation u64, created, modified f64, generation u64 |
//! | name index | 4 | inode number; open addressing on FNV-1a(parent, name), linear probing, backward-shift deletion (no tombstones) |
//! | name heap | bytes | names, bump-allocated, compacted in place when full |
//! | free extents | 16 | `(off, len)`, sorted by offset, coalesced |
//! | old versions | 32 | `(off, len, born, last)` |
//! | lock table | 64 | inode u32, next u32 (chain per inode), kind u32 (1 read, 2 write, 3 write with a private extent), slot u32, epoch u64, count u64 (read handles of one process), private extent off, cap, size, chunks u64 |
//!
//! # Commit (writer, holding the commit lock)
//!
//! 1. Make the inactive copy's sequence word odd.
//! 2. Bring the copy to generation `g` (nothing, replay the log, or copy it whole).
//! 3. Apply the operation, recording every range written; on failure copy those ranges back
//!    from the committed copy (the state is unchanged) and make the word even.
//! 4. Free old versions no live pin can see; write the header with generation `g + 1`.
//! 5. Write the log (its generation last), make the sequence word even, store root `g + 1`
//!    (`SeqCst`): the commit point. Wake waiters if a file lock was released.
//!
//! # Pins (reader) — the handshake with reclaim
//!
//! A reader stores its pin of `g` (`SeqCst`) and then re-loads the root; only if it still
//! reads `g` does it use generation `g`. A writer frees an old version with `last < g_w`
//! (freed by an already published commit) only after loading every pin (`SeqCst`) inside
//! its transaction. In the single order of `SeqCst` operations either the writer's pin load
//! follows the reader's pin store (the pin is seen), or the reader's root load follows the
//! writer's earlier root publication, so the reader sees a newer root, retries, and never
//! uses a generation whose versions may be freed.
//!
//! # File locks
//!
//! D-MemFS's per-file locks across processes: `rb` handles share, every writable mode is
//! exclusive, `lock_timeout` then `BlockingIOError`. A lock is an entry in the lock table
//! (committed like everything else), owned by `(slot, epoch)`; a waiter re-tries every
//! 50 ms (or when woken through the eventcount) and removes entries of dead owners, so a
//! killed holder blocks nobody for more than a slice. A stopped process is alive and keeps
//! its locks. Views and snapshot copies take no file lock.
//!
//! # Visibility and what `flush` means
//!
//! Metadata operations are visible once they return. A write handle's bytes become visible
//! when it is flushed or closed (one commit swaps the file's extent); a later write after a
//! flush copies the file into a new private extent. A read handle holds the file's shared
//! lock, so no writer can change the file while it is open; a view pins its generation.
//!
//! # Sizing
//!
//! The data area is `2 × max_quota + 64 × max_nodes + 1 MiB` unless given: room for every
//! file plus a rewrite of all of them at once (a private extent beside each committed one),
//! plus the 64-byte rounding of each extent. Old versions that live pins still see, and
//! fragmentation, may still exhaust it: that is [`FsError::NoSpace`](crate::fs::FsError),
//! naming the bytes pinned. The metadata is `2 × copy_size`, with
//! `copy_size ≈ 256 + 96 (nodes+1) + 8 nodes + names + 16 free + 32 (nodes+locks) + 64 locks`
//! (`free` = 2 nodes + 2 locks + 2 entries).

// The record codecs and the checks read best with short names for the values of one record
// (`n` an inode, `e` an entry, `h` a header, `m` a metadata copy) side by side.
#![allow(clippy::many_single_char_names, clippy::similar_names)]

pub(crate) mod core;
pub(crate) mod file;
mod fsck;
pub(crate) mod layout;
pub(crate) mod meta;
mod ops;
pub(crate) mod region;
mod segment;

pub use fsck::{FsckReport, SharedFsInfo};
pub use segment::{SharedFileHandle, SharedFileSystem, SharedFsOptions, SharedView};

#[cfg(all(test, not(loom)))]
mod tests;
