//! Where everything lives in the filesystem's region, and how its records are encoded (the
//! tables are in the module documentation of `fs::shared`). Nothing here reads shared
//! memory except [`Layout::decode`], which validates a superblock and recomputes every offset
//! from its parameters instead of trusting stored offsets.

use super::region::{bad, BadResult, Region};
use crate::shm::header::fnv1a64;

pub(crate) const SB_MAGIC: u64 = u64::from_ne_bytes(*b"MSFS0001");
/// Layout version of the region (also folded into the header's `kind_param`).
pub(crate) const VERSION: u32 = 1;
pub(crate) const SB_SIZE: u64 = 4096;
const SB_CHECKSUM: u64 = 248;

// Live words of the superblock, each on its own cache line.
pub(crate) const ROOT: u64 = 256;
pub(crate) const SEQ0: u64 = 320;
pub(crate) const SEQ1: u64 = 384;
pub(crate) const LOG_GEN: u64 = 448;
pub(crate) const LOG_LEN: u64 = 456;
pub(crate) const EVC_SEQ: u64 = 512;
pub(crate) const EVC_WAITERS: u64 = 516;
/// `LOG_LEN` value meaning "the last commit's ranges did not fit: copy everything".
pub(crate) const LOG_OVERFLOW: u64 = u64::MAX;

pub(crate) const HDR_SIZE: u64 = 256;
pub(crate) const INODE_SIZE: u64 = 96;
pub(crate) const FREE_SIZE: u64 = 16;
pub(crate) const LIMBO_SIZE: u64 = 32;
pub(crate) const LT_SIZE: u64 = 64;
pub(crate) const LOG_ENTRY: u64 = 16;
pub(crate) const SLOT_REC: u64 = 1024;
/// Reader entries per slot record (files one process has open for reading at once).
pub(crate) const READERS_PER_SLOT: u64 = 96;
/// Offset of the reader entries in a slot record: `(ino << 32) | handles`, 0 = free.
pub(crate) const READERS_OFF: u64 = 128;
pub(crate) const PINS_PER_SLOT: u64 = 4;
pub(crate) const PIN_SIZE: u64 = 24;

pub(crate) const ROOT_INO: u32 = 1;
pub(crate) const KIND_FREE: u8 = 0;
pub(crate) const KIND_FILE: u8 = 1;
pub(crate) const KIND_DIR: u8 = 2;
/// `chunks` of a random-access file.
pub(crate) const RANDOM: u64 = u64::MAX;
pub(crate) const LT_READ: u32 = 1;
pub(crate) const LT_WRITE: u32 = 2;
/// A write entry whose handle holds a private extent (`pend_*` valid).
pub(crate) const LT_WRITE_PENDING: u32 = 3;
/// A writer waiting for the file: new readers are held back (writers are preferred).
pub(crate) const LT_WAIT: u32 = 4;
/// Longest name of one path component, in bytes.
pub(crate) const MAX_NAME: usize = 4095;

/// The parameters a filesystem is created with; everything else is derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    /// Inodes, the root included (`max_nodes`).
    pub(crate) nodes: u32,
    /// Lock-table entries (open handles at once, all processes together).
    pub(crate) locks: u32,
    /// Attachment slots.
    pub(crate) slots: u32,
    /// Bytes of the name heap.
    pub(crate) names: u64,
    /// Entries of the commit log.
    pub(crate) log: u32,
    /// Bytes of the data area.
    pub(crate) data: u64,
    pub(crate) max_quota: u64,
    pub(crate) chunk_overhead: u64,
    pub(crate) promotion_hard_limit: u64,
    /// 0 auto, 1 sequential, 2 random access.
    pub(crate) storage: u32,
    /// `u64::MAX`: wait forever.
    pub(crate) lock_timeout_ns: u64,
}

/// Offsets derived from [`Params`] (relative to the region; copy-relative where noted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) p: Params,
    pub(crate) hash_cap: u32,
    pub(crate) free_cap: u32,
    pub(crate) limbo_cap: u32,
    // Copy-relative offsets.
    pub(crate) inodes: u64,
    pub(crate) hash: u64,
    pub(crate) names: u64,
    pub(crate) free: u64,
    pub(crate) limbo: u64,
    pub(crate) lt: u64,
    pub(crate) copy_size: u64,
    // Region offsets.
    pub(crate) log: u64,
    pub(crate) slots: u64,
    pub(crate) copies: [u64; 2],
    pub(crate) data: u64,
    pub(crate) total: u64,
}

fn align(v: u64, a: u64) -> Option<u64> {
    v.checked_add(a - 1).map(|x| x / a * a)
}

impl Layout {
    /// Plans the region for `p`; `None` if the sizes overflow.
    pub(crate) fn plan(p: Params) -> Option<Layout> {
        if p.nodes < 1 || p.locks < 1 || p.slots < 1 || p.log < 16 {
            return None;
        }
        let hash_cap = (u64::from(p.nodes) * 2).next_power_of_two();
        let hash_cap = u32::try_from(hash_cap).ok()?;
        let limbo_cap = p.nodes.checked_add(p.locks)?;
        // Holes between allocated extents: at most one more than the extents that exist
        // (files, private extents, old versions), so freeing never overflows the array.
        let free_cap = p
            .nodes
            .checked_add(p.locks)?
            .checked_add(limbo_cap)?
            .checked_add(2)?;
        let inodes = HDR_SIZE;
        let hash = align(inodes + (u64::from(p.nodes) + 1) * INODE_SIZE, 64)?;
        let names = align(hash + u64::from(hash_cap) * 4, 64)?;
        let free = align(names.checked_add(p.names)?, 64)?;
        let limbo = align(free + u64::from(free_cap) * FREE_SIZE, 64)?;
        let lt = align(limbo + u64::from(limbo_cap) * LIMBO_SIZE, 64)?;
        let copy_size = align(lt + (u64::from(p.locks) + 1) * LT_SIZE, 4096)?;
        let log = SB_SIZE;
        let slots = align(log + u64::from(p.log) * LOG_ENTRY, 64)?;
        let c0 = align(slots + u64::from(p.slots) * SLOT_REC, 4096)?;
        let c1 = c0.checked_add(copy_size)?;
        let data = c1.checked_add(copy_size)?;
        let total = align(data.checked_add(p.data)?, 4096)?;
        Some(Layout {
            p,
            hash_cap,
            free_cap,
            limbo_cap,
            inodes,
            hash,
            names,
            free,
            limbo,
            lt,
            copy_size,
            log,
            slots,
            copies: [c0, c1],
            data,
            total,
        })
    }

    /// A fingerprint of the record formats (the header's `kind_param`).
    pub(crate) fn fingerprint() -> u64 {
        let mut b = Vec::new();
        for v in [
            u64::from(VERSION),
            HDR_SIZE,
            INODE_SIZE,
            FREE_SIZE,
            LIMBO_SIZE,
            LT_SIZE,
            LOG_ENTRY,
            SLOT_REC,
            READERS_PER_SLOT,
            READERS_OFF,
            PINS_PER_SLOT,
            PIN_SIZE,
        ] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        fnv1a64(&b)
    }

    /// The immutable superblock bytes (the live words after them start at zero).
    pub(crate) fn encode(&self) -> [u8; 256] {
        let p = &self.p;
        let mut b = [0u8; 256];
        let mut put = |off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        put(0, SB_MAGIC);
        put(8, u64::from(VERSION));
        put(16, u64::from(p.nodes));
        put(24, u64::from(p.locks));
        put(32, u64::from(p.slots));
        put(40, p.names);
        put(48, u64::from(p.log));
        put(56, p.data);
        put(64, p.max_quota);
        put(72, p.chunk_overhead);
        put(80, p.promotion_hard_limit);
        put(88, u64::from(p.storage));
        put(96, p.lock_timeout_ns);
        let sum = fnv1a64(&b[..SB_CHECKSUM as usize]);
        b[SB_CHECKSUM as usize..].copy_from_slice(&sum.to_ne_bytes());
        b
    }

    /// Reads and validates the superblock of `r`, and recomputes the layout from it.
    pub(crate) fn decode(r: &Region) -> BadResult<Layout> {
        let mut b = [0u8; 256];
        r.read(0, &mut b)?;
        let get = |off: usize| u64::from_ne_bytes(b[off..off + 8].try_into().unwrap_or([0; 8]));
        if get(0) != SB_MAGIC {
            return bad!("filesystem magic {:#x} is wrong", get(0));
        }
        let sum = fnv1a64(&b[..SB_CHECKSUM as usize]);
        if get(SB_CHECKSUM as usize) != sum {
            return bad!("superblock checksum mismatch");
        }
        if get(8) != u64::from(VERSION) {
            return bad!(
                "filesystem layout version {} (this build reads {VERSION})",
                get(8)
            );
        }
        let u32_of = |off: usize| u32::try_from(get(off)).map_err(|_| ());
        let (Ok(nodes), Ok(locks), Ok(slots), Ok(log), Ok(storage)) =
            (u32_of(16), u32_of(24), u32_of(32), u32_of(48), u32_of(88))
        else {
            return bad!("superblock parameters out of range");
        };
        let p = Params {
            nodes,
            locks,
            slots,
            names: get(40),
            log,
            data: get(56),
            max_quota: get(64),
            chunk_overhead: get(72),
            promotion_hard_limit: get(80),
            storage,
            lock_timeout_ns: get(96),
        };
        if storage > 2 || nodes > 1 << 28 || locks > 1 << 24 || log > 1 << 20 {
            return bad!("superblock parameters out of range");
        }
        let Some(l) = Layout::plan(p) else {
            return bad!("superblock sizes overflow");
        };
        if l.total > r.len() {
            return bad!(
                "the layout needs {} bytes, the region has {}",
                l.total,
                r.len()
            );
        }
        Ok(l)
    }
}

/// One inode (96 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Inode {
    pub(crate) kind: u8,
    /// Bit 0: written since creation or import (`only_dirty`).
    pub(crate) flags: u8,
    pub(crate) name_len: u16,
    pub(crate) name_off: u32,
    pub(crate) parent: u32,
    pub(crate) first: u32,
    pub(crate) next: u32,
    pub(crate) prev: u32,
    pub(crate) lock_head: u32,
    pub(crate) size: u64,
    pub(crate) off: u64,
    pub(crate) cap: u64,
    pub(crate) chunks: u64,
    pub(crate) born: u64,
    pub(crate) created: f64,
    pub(crate) modified: f64,
    pub(crate) generation: u64,
}

fn g64(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}
fn g32(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}
fn p64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_ne_bytes());
}
fn p32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
}

impl Inode {
    pub(crate) fn decode(b: &[u8; INODE_SIZE as usize]) -> Inode {
        Inode {
            kind: b[0],
            flags: b[1],
            name_len: u16::from_ne_bytes([b[2], b[3]]),
            name_off: g32(b, 4),
            parent: g32(b, 8),
            first: g32(b, 12),
            next: g32(b, 16),
            prev: g32(b, 20),
            lock_head: g32(b, 24),
            size: g64(b, 32),
            off: g64(b, 40),
            cap: g64(b, 48),
            chunks: g64(b, 56),
            born: g64(b, 64),
            created: f64::from_bits(g64(b, 72)),
            modified: f64::from_bits(g64(b, 80)),
            generation: g64(b, 88),
        }
    }

    pub(crate) fn encode(&self) -> [u8; INODE_SIZE as usize] {
        let mut b = [0u8; INODE_SIZE as usize];
        b[0] = self.kind;
        b[1] = self.flags;
        b[2..4].copy_from_slice(&self.name_len.to_ne_bytes());
        p32(&mut b, 4, self.name_off);
        p32(&mut b, 8, self.parent);
        p32(&mut b, 12, self.first);
        p32(&mut b, 16, self.next);
        p32(&mut b, 20, self.prev);
        p32(&mut b, 24, self.lock_head);
        p64(&mut b, 32, self.size);
        p64(&mut b, 40, self.off);
        p64(&mut b, 48, self.cap);
        p64(&mut b, 56, self.chunks);
        p64(&mut b, 64, self.born);
        p64(&mut b, 72, self.created.to_bits());
        p64(&mut b, 80, self.modified.to_bits());
        p64(&mut b, 88, self.generation);
        b
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.kind == KIND_DIR
    }

    /// The quota this file is charged (D-MemFS: size plus the overhead of each chunk).
    pub(crate) fn charge(&self, overhead: u64) -> u64 {
        charge(self.size, self.chunks, overhead)
    }
}

/// The quota of a file of `size` bytes in `chunks` chunks ([`RANDOM`]: random access).
pub(crate) fn charge(size: u64, chunks: u64, overhead: u64) -> u64 {
    if chunks == RANDOM {
        size
    } else {
        size.saturating_add(chunks.saturating_mul(overhead))
    }
}

/// The copy header (256 bytes; the counters of one committed state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) gen: u64,
    pub(crate) nodes: u64,
    pub(crate) files: u64,
    pub(crate) dirs: u64,
    /// Quota charged: committed files, with each file that has a private extent counted at
    /// that extent's charge instead.
    pub(crate) used: u64,
    /// Chunks of committed sequential files.
    pub(crate) chunks: u64,
    pub(crate) ino_free: u32,
    pub(crate) ino_hwm: u32,
    pub(crate) names_top: u64,
    pub(crate) names_dead: u64,
    pub(crate) free_len: u32,
    pub(crate) limbo_len: u32,
    pub(crate) lt_free: u32,
    pub(crate) lt_hwm: u32,
    pub(crate) lt_used: u32,
    /// When `gen` was committed, ns since the Unix epoch.
    pub(crate) committed_ns: u64,
}

impl Header {
    pub(crate) fn decode(b: &[u8; HDR_SIZE as usize]) -> Header {
        Header {
            gen: g64(b, 0),
            nodes: g64(b, 8),
            files: g64(b, 16),
            dirs: g64(b, 24),
            used: g64(b, 32),
            chunks: g64(b, 40),
            ino_free: g32(b, 48),
            ino_hwm: g32(b, 52),
            names_top: g64(b, 56),
            names_dead: g64(b, 64),
            free_len: g32(b, 72),
            limbo_len: g32(b, 76),
            lt_free: g32(b, 80),
            lt_hwm: g32(b, 84),
            lt_used: g32(b, 88),
            committed_ns: g64(b, 96),
        }
    }

    pub(crate) fn encode(&self) -> [u8; HDR_SIZE as usize] {
        let mut b = [0u8; HDR_SIZE as usize];
        p64(&mut b, 0, self.gen);
        p64(&mut b, 8, self.nodes);
        p64(&mut b, 16, self.files);
        p64(&mut b, 24, self.dirs);
        p64(&mut b, 32, self.used);
        p64(&mut b, 40, self.chunks);
        p32(&mut b, 48, self.ino_free);
        p32(&mut b, 52, self.ino_hwm);
        p64(&mut b, 56, self.names_top);
        p64(&mut b, 64, self.names_dead);
        p32(&mut b, 72, self.free_len);
        p32(&mut b, 76, self.limbo_len);
        p32(&mut b, 80, self.lt_free);
        p32(&mut b, 84, self.lt_hwm);
        p32(&mut b, 88, self.lt_used);
        p64(&mut b, 96, self.committed_ns);
        let sum = hdr_sum(&b);
        p64(&mut b, 248, sum);
        b
    }

    pub(crate) fn checksum_ok(b: &[u8; HDR_SIZE as usize]) -> bool {
        g64(b, 248) == hdr_sum(b)
    }
}

/// The header's checksum: a word-at-a-time multiplicative hash of its fields (bytes 0..104;
/// the rest is reserved and zero). Read on every transaction and snapshot, so it must be
/// cheap; it catches torn and stray writes, not adversaries (nothing here can).
fn hdr_sum(b: &[u8; HDR_SIZE as usize]) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in b[..104].chunks_exact(8) {
        let v = u64::from_ne_bytes(w.try_into().unwrap_or([0; 8]));
        h = (h ^ v).wrapping_mul(0x0100_0000_01b3).rotate_left(29);
    }
    h
}

/// One lock-table entry (64 bytes): a handle's lock on a file, and a writer's private extent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LockEntry {
    pub(crate) ino: u32,
    pub(crate) next: u32,
    pub(crate) kind: u32,
    pub(crate) slot: u32,
    pub(crate) epoch: u64,
    pub(crate) count: u64,
    pub(crate) pend_off: u64,
    pub(crate) pend_cap: u64,
    pub(crate) pend_size: u64,
    pub(crate) pend_chunks: u64,
}

impl LockEntry {
    pub(crate) fn decode(b: &[u8; LT_SIZE as usize]) -> LockEntry {
        LockEntry {
            ino: g32(b, 0),
            next: g32(b, 4),
            kind: g32(b, 8),
            slot: g32(b, 12),
            epoch: g64(b, 16),
            count: g64(b, 24),
            pend_off: g64(b, 32),
            pend_cap: g64(b, 40),
            pend_size: g64(b, 48),
            pend_chunks: g64(b, 56),
        }
    }

    pub(crate) fn encode(&self) -> [u8; LT_SIZE as usize] {
        let mut b = [0u8; LT_SIZE as usize];
        p32(&mut b, 0, self.ino);
        p32(&mut b, 4, self.next);
        p32(&mut b, 8, self.kind);
        p32(&mut b, 12, self.slot);
        p64(&mut b, 16, self.epoch);
        p64(&mut b, 24, self.count);
        p64(&mut b, 32, self.pend_off);
        p64(&mut b, 40, self.pend_cap);
        p64(&mut b, 48, self.pend_size);
        p64(&mut b, 56, self.pend_chunks);
        b
    }

    pub(crate) fn is_write(&self) -> bool {
        self.kind == LT_WRITE || self.kind == LT_WRITE_PENDING
    }
}

/// An extent freed by commit `last + 1`, visible in generations `born..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limbo {
    pub(crate) off: u64,
    pub(crate) len: u64,
    pub(crate) born: u64,
    pub(crate) last: u64,
}
