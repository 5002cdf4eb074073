//! A structured segment: a [`Segment`] that starts with a validated header, plus this
//! process's attachment. The building block under every lock, view, record, ring and queue.
//!
//! Creation: exclusive create with the space reserved, the lock file made (see `lockfile`),
//! header written with state INITIALIZING, a slot claimed, the kind's areas initialised by the
//! caller, then READY Release-stored last. Opening: the file checked (type, owner and mode
//! against the caller's [`Trust`]), Acquire-load the state (bounded wait while INITIALIZING),
//! validate the header against the file size and the expected kind, open and check the lock
//! file, and only then claim a slot. A refused open never writes to the segment.
//!
//! A peer allowed to write the segment can still shrink its file under a live mapping; the
//! next touch of a lost page raises `SIGBUS`, which no library can prevent.
//! [`Structured::check_intact`] detects it beforehand where a caller can afford an `fstat`.

use std::fs::File;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::location::Location;
use crate::shm::attach::{self, Attachment};
use crate::shm::error::SegmentError;
use crate::shm::header::{
    table_bytes, Geometry, Kind, LayoutRequest, RawHeader, HEADER_SIZE, MAGIC, STATE_INITIALIZING,
    STATE_OFFSET, STATE_POISONED, STATE_READY,
};
use crate::shm::lockfile;
use crate::shm::segment::{OpenTarget, Segment, SegmentOptions, Trust};
use crate::sync::Ordering;

/// How long `open` waits for a segment that is still INITIALIZING.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_millis(500);

/// A structured segment mapped and attached.
pub struct Structured {
    // Field order matters: the attachment is dropped (slot released) before the mapping.
    attach: Attachment,
    geo: Geometry,
    seg: Segment,
    // Where the liveness and role locks are taken (see `lockfile`).
    lock_file: File,
}

impl std::fmt::Debug for Structured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Structured")
            .field("location", self.seg.location())
            .field("geometry", &self.geo)
            .finish_non_exhaustive()
    }
}

fn state_word(seg: &Segment) -> &crate::sync::AtomicU32 {
    // SAFETY: every structured segment is at least HEADER_SIZE bytes (checked by callers) and
    // the mapping is page-aligned, so the state word is 4-aligned and inside it, for as long as
    // `seg` lives (the returned reference borrows it).
    unsafe { crate::sync::atomic_u32(seg.as_ptr().add(STATE_OFFSET)) }
}

impl Structured {
    /// Creates a new structured segment at `location` with permission bits `mode`.
    /// `init` sets up the kind's areas (the segment is zero-filled before it runs);
    /// `on_claim` is passed to [`Attachment::claim`].
    #[allow(clippy::needless_pass_by_value)] // the location is the segment's from now on
    pub fn create(
        location: Location,
        mode: u32,
        req: &LayoutRequest,
        init: &dyn Fn(&Segment, &Geometry) -> Result<()>,
        on_claim: &dyn Fn(u32),
    ) -> Result<Structured> {
        let geo = Geometry::plan(req)?;
        lockfile::check_name(&location)?;
        let seg = SegmentOptions::at(location.clone())
            .size(geo.total_size)
            .mode(mode)
            .create()?;
        let result = (|| {
            let lock_file = lockfile::create(&seg, mode)?;
            seg.write_at(0, &geo.encode())?;
            init(&seg, &geo)?;
            // SAFETY: the attachment is stored next to `seg` in the returned value and
            // dropped before it; `geo` is the geometry we just wrote.
            let attach = unsafe { Attachment::claim(&seg, &lock_file, &geo, on_claim)? };
            // SYNC: Release pairs with the Acquire load in `open`: everything written above
            // (header, areas, slot record) is visible to whoever sees READY.
            state_word(&seg).store(STATE_READY, Ordering::Release);
            Ok((attach, lock_file))
        })();
        match result {
            Ok((attach, lock_file)) => Ok(Structured {
                attach,
                geo,
                seg,
                lock_file,
            }),
            Err(e) => {
                drop(seg);
                let _ = Segment::unlink(&location);
                Err(e)
            }
        }
    }

    /// Opens the structured segment at `target` (a [`Location`], or one with a [`Trust`]),
    /// which must hold a `kind` (and, if given, a `kind_param` equal to it).
    pub fn open(
        target: impl Into<OpenTarget>,
        kind: Kind,
        kind_param: Option<u64>,
        on_claim: &dyn Fn(u32),
    ) -> Result<Structured> {
        Self::open_with_timeout(target, kind, kind_param, on_claim, DEFAULT_READY_TIMEOUT)
    }

    /// [`Structured::open`] with an explicit wait for INITIALIZING segments.
    pub fn open_with_timeout(
        target: impl Into<OpenTarget>,
        kind: Kind,
        kind_param: Option<u64>,
        on_claim: &dyn Fn(u32),
        ready_timeout: Duration,
    ) -> Result<Structured> {
        let OpenTarget { location, trust } = target.into();
        lockfile::check_name(&location)?;
        let seg = SegmentOptions::at(location.clone())
            .trust(trust.clone())
            .open()?;
        let geo = validate(&seg, ready_timeout)?;
        if geo.kind != kind {
            return Err(Error::Segment(SegmentError::WrongKind {
                location,
                expected: kind.name(),
                found: geo.kind.name().to_owned(),
            }));
        }
        if let Some(p) = kind_param {
            if p != geo.kind_param {
                return Err(Error::Segment(SegmentError::IncompatibleLayout {
                    location,
                    reason: format!(
                        "its {} layout fingerprint is {:#018x}, expected {p:#018x} \
                         (it was created with another definition)",
                        kind.name(),
                        geo.kind_param
                    ),
                }));
            }
        }
        let lock_file = lockfile::open(&seg, &trust)?;
        // SAFETY: as in `create`.
        let attach = unsafe { Attachment::claim(&seg, &lock_file, &geo, on_claim)? };
        Ok(Structured {
            attach,
            geo,
            seg,
            lock_file,
        })
    }

    /// The mapping.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// The validated geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The [`Trust`] that opens this segment again elsewhere ([`Segment::reopen_trust`]).
    pub fn reopen_trust(&self) -> &Trust {
        self.seg.reopen_trust()
    }

    /// The lock file, on which liveness and role locks are taken (at the segment's offsets).
    pub fn lock_file(&self) -> &File {
        &self.lock_file
    }

    /// Checks, with one `fstat`, that the segment's file still has its full size, and then
    /// that its header is still the one validated at attach: a peer allowed to write the
    /// segment may have shrunk the file (touching a lost page would raise `SIGBUS`) or emptied
    /// and regrown it (every page zero). [`SegmentError::Corrupt`] if so; the segment is not
    /// poisoned (a truncated one cannot be written without faulting).
    pub fn check_intact(&self) -> Result<()> {
        let location = self.location();
        let meta = self.seg.file().metadata().map_err(|e| {
            Error::Segment(SegmentError::Os {
                op: "fstat",
                location: location.clone(),
                source: e,
            })
        })?;
        let corrupt = |reason: String| {
            Err(Error::Segment(SegmentError::Corrupt {
                location: location.clone(),
                reason,
            }))
        };
        if meta.len() < self.geo.total_size {
            return corrupt(format!(
                "its file was truncated to {} bytes under a live mapping of {} bytes \
                 (touching the lost part would raise SIGBUS)",
                meta.len(),
                self.geo.total_size
            ));
        }
        let mut bytes = [0u8; HEADER_SIZE];
        self.seg.read_at(0, &mut bytes)?;
        // Everything before the state word is immutable once READY.
        if bytes[..STATE_OFFSET] != self.geo.encode()[..STATE_OFFSET] {
            return corrupt(
                "its header was overwritten or zeroed (the file truncated and grown again?)".into(),
            );
        }
        Ok(())
    }

    /// This process's attachment.
    pub fn attachment(&self) -> &Attachment {
        &self.attach
    }

    /// Where it lives.
    pub fn location(&self) -> &Location {
        self.seg.location()
    }

    /// Start of the lock area (64-byte aligned, `geometry().lock_size` bytes).
    pub fn lock_ptr(&self) -> *mut u8 {
        // SAFETY: lock_off was validated to lie inside the mapping.
        unsafe { self.seg.as_ptr().add(self.geo.lock_off as usize) }
    }

    /// Start of the data area (64-byte aligned, `geometry().data_size` bytes).
    pub fn data_ptr(&self) -> *mut u8 {
        // SAFETY: data_off was validated to lie inside the mapping.
        unsafe { self.seg.as_ptr().add(self.geo.data_off as usize) }
    }

    /// Marks the segment POISONED: later opens refuse it. Used when corruption is detected.
    pub fn poison(&self) {
        // SYNC: Release pairs with the Acquire load in `validate`.
        state_word(&self.seg).store(STATE_POISONED, Ordering::Release);
    }

    /// The error for a corrupt live segment (and poisons it).
    pub fn corrupt(&self, reason: String) -> Error {
        self.poison();
        Error::Segment(SegmentError::Corrupt {
            location: self.location().clone(),
            reason,
        })
    }
}

/// Waits (bounded) for READY and validates the header; never writes.
fn validate(seg: &Segment, ready_timeout: Duration) -> Result<Geometry> {
    let location = seg.location().clone();
    let size = seg.len() as u64;
    if seg.len() < HEADER_SIZE {
        return Err(Error::Segment(SegmentError::IncompatibleLayout {
            location,
            reason: format!("{size} bytes is too small for a memspace header ({HEADER_SIZE})"),
        }));
    }
    let start = Instant::now();
    loop {
        // SYNC: Acquire pairs with the Release store of READY in `create`.
        let state = state_word(seg).load(Ordering::Acquire);
        let mut bytes = [0u8; HEADER_SIZE];
        seg.read_at(0, &mut bytes)?;
        match state {
            STATE_READY => return Geometry::decode(&bytes, size, &location),
            STATE_POISONED => {
                return Err(Error::Segment(SegmentError::Corrupt {
                    location,
                    reason: "it was marked POISONED after corruption was detected".into(),
                }))
            }
            STATE_INITIALIZING => {
                let magic_ok = bytes[..8] == MAGIC || bytes[..8] == [0; 8];
                if !magic_ok {
                    // Not ours (a torn view of our magic would be a prefix of it: re-read
                    // once before refusing).
                    std::thread::sleep(Duration::from_millis(1));
                    seg.read_at(0, &mut bytes)?;
                    if bytes[..8] != MAGIC {
                        return Geometry::decode(&bytes, size, &location);
                    }
                }
                if start.elapsed() >= ready_timeout {
                    let waited_ms = start.elapsed().as_millis() as u64;
                    if bytes[..8] == [0; 8] {
                        // Never given a header: a raw segment (zero-filled, as every new
                        // one is), or a creator that died before writing its header. Not
                        // something `rm --stale` removes (it never removes raw segments).
                        let rm = match &location {
                            Location::Name(n) => format!("memspace rm {n}"),
                            Location::Path(p) => format!("memspace rm --path {}", p.display()),
                        };
                        return Err(Error::Segment(SegmentError::IncompatibleLayout {
                            location,
                            reason: format!(
                                "it has no memspace header (its first bytes are still zero \
                                 after {waited_ms} ms): it is a raw segment, or its creator \
                                 died before writing one; if nothing uses it, `{rm}` \
                                 removes it"
                            ),
                        }));
                    }
                    return Err(Error::Segment(SegmentError::NotReady {
                        location,
                        waited_ms,
                    }));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            other => {
                if bytes[..8] != MAGIC {
                    return Geometry::decode(&bytes, size, &location);
                }
                return Err(Error::Segment(SegmentError::IncompatibleLayout {
                    location,
                    reason: format!("state word {other:#x} is not a known state"),
                }));
            }
        }
    }
}

/// What `rm --stale` decides about a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// Not a memspace structured segment (raw, foreign): never removed as stale.
    NotStructured,
    /// Some process is attached (or a creator is still initialising it).
    InUse,
    /// Structured, and no live process is attached.
    Stale,
}

/// Decides whether the structured segment at `location` has no live attachment. Never
/// writes to it.
pub fn staleness(location: &Location) -> Result<Staleness> {
    // Looking only: any owner (the caller decides what to remove), and no reservation.
    let seg = SegmentOptions::at(location.clone())
        .trust(Trust::Anyone)
        .reserve_on_open(false)
        .open()?;
    if seg.len() < HEADER_SIZE {
        return Ok(Staleness::NotStructured);
    }
    let mut bytes = [0u8; HEADER_SIZE];
    seg.read_at(0, &mut bytes)?;
    if bytes[..8] != MAGIC {
        return Ok(Staleness::NotStructured);
    }
    // No lock file: nobody can be attached (attaching needs it).
    let Some(lock_file) = lockfile::open_to_look(location)? else {
        return Ok(Staleness::Stale);
    };
    // SYNC: Acquire pairs with the Release store of READY in `create`.
    let state = state_word(&seg).load(Ordering::Acquire);
    let locked = match Geometry::decode(&bytes, seg.len() as u64, location) {
        Ok(geo) if state != STATE_INITIALIZING => attach::anyone_locks(
            &lock_file,
            location,
            geo.attach_off,
            table_bytes(geo.attach_slots),
        )?,
        // Initialising or unreadable: in use if anyone holds any lock on the file at all.
        _ => attach::anyone_locks(&lock_file, location, 0, 0)?,
    };
    Ok(if locked {
        Staleness::InUse
    } else {
        Staleness::Stale
    })
}

/// What a structured segment's header says, for tools (`memspace inspect`, `ls`, `rm --stale`):
/// read without attaching and without writing, validated as `open` validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderReport {
    /// The kind the header names (valid headers only).
    pub kind: Option<Kind>,
    /// The state word: initializing, ready or poisoned (valid headers only).
    pub state: Option<u32>,
    /// Bytes of the kind's data area (valid headers only).
    pub data_size: u64,
    /// Pid of the creator (informational; valid headers only).
    pub creator_pid: Option<u32>,
    /// Creation time, ns since the Unix epoch (informational; valid headers only).
    pub created_ns: Option<u64>,
    /// Why the header is not one this build can use (`None`: it is valid).
    pub invalid: Option<String>,
}

/// Reads the header of the segment at `location` (any owner; nothing reserved, nothing
/// written). `Ok(None)` if it has no memspace header (a raw segment).
pub fn header_report(location: &Location) -> Result<Option<HeaderReport>> {
    let seg = SegmentOptions::at(location.clone())
        .trust(Trust::Anyone)
        .reserve_on_open(false)
        .open()?;
    if seg.len() < HEADER_SIZE {
        return Ok(None);
    }
    let mut bytes = [0u8; HEADER_SIZE];
    seg.read_at(0, &mut bytes)?;
    if bytes[..8] != MAGIC {
        return Ok(None);
    }
    Ok(Some(
        match Geometry::decode(&bytes, seg.len() as u64, location) {
            Ok(geo) => {
                let raw = RawHeader::from_bytes(&bytes);
                HeaderReport {
                    kind: Some(geo.kind),
                    // SYNC: Acquire pairs with the Release store of READY in `create`.
                    state: Some(state_word(&seg).load(Ordering::Acquire)),
                    data_size: geo.data_size,
                    creator_pid: Some(raw.creator_pid),
                    created_ns: Some(raw.created_ns),
                    invalid: None,
                }
            }
            Err(e) => HeaderReport {
                kind: None,
                state: None,
                data_size: 0,
                creator_pid: None,
                created_ns: None,
                invalid: Some(e.to_string()),
            },
        },
    ))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn req() -> LayoutRequest {
        LayoutRequest {
            kind: Kind::View,
            attach_slots: 4,
            lock_size: 64,
            data_size: 1 << 16,
            kind_param: 0,
        }
    }

    #[test]
    fn truncation_under_a_live_handle_is_detected() {
        let path = std::env::temp_dir()
            .join(crate::testing::unique_name("structured", "trunc").trim_start_matches('/'));
        let loc = Location::Path(path.clone());
        let st = Structured::create(loc.clone(), 0o600, &req(), &|_, _| Ok(()), &|_| {}).unwrap();
        let intact = st.check_intact();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(4096).unwrap();
        let truncated = st.check_intact();
        let reopened = Structured::open(loc.clone(), Kind::View, None, &|_| {});
        file.set_len(0).unwrap();
        file.set_len(st.geometry().total_size).unwrap();
        let zeroed = st.check_intact();
        drop(st);
        Segment::unlink(&loc).unwrap();
        assert!(intact.is_ok());
        assert!(
            matches!(&truncated, Err(Error::Segment(SegmentError::Corrupt { reason, .. })) if reason.contains("truncated")),
            "{truncated:?}"
        );
        assert!(matches!(
            reopened,
            Err(Error::Segment(SegmentError::IncompatibleLayout { .. }))
        ));
        assert!(
            matches!(&zeroed, Err(Error::Segment(SegmentError::Corrupt { reason, .. })) if reason.contains("header")),
            "{zeroed:?}"
        );
    }
}
