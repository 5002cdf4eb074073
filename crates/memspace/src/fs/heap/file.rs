//! One file of the heap filesystem, and the two ways to reach its data: an open
//! [`FileHandle`] (which holds the file's lock) and a [`FileSnapshot`] (which does not).
//!
//! The handle's semantics (mode checks, cursor, lines, seeking) are [`Cursor`]'s; this file
//! only gives the cursor the file's data ([`FileAccess`]) and the public methods around it.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::lock::FileLock;
use super::storage::Data;
use super::Shared;
use crate::fs::bytes::{ByteSink, SharedBytes};
use crate::fs::error::FsResult;
use crate::fs::handle::{Cursor, FileAccess, Touch};
use crate::fs::options::{now, OpenMode};
use crate::Result;

pub(super) struct FileData {
    pub(super) data: Data,
    pub(super) generation: u64,
    pub(super) created: f64,
    pub(super) modified: f64,
}

impl FileData {
    /// Records a data change.
    fn touch(&mut self) {
        self.generation += 1;
        self.modified = now();
    }
}

/// A file: its logical lock (held by open handles) and its data (locked only for one copy).
pub(super) struct FileNode {
    pub(super) lock: FileLock,
    data: RwLock<FileData>,
}

impl FileNode {
    pub(super) fn new(data: Data, generation: u64, lock: FileLock) -> Self {
        let t = now();
        Self {
            lock,
            data: RwLock::new(FileData {
                data,
                generation,
                created: t,
                modified: t,
            }),
        }
    }
    // A panic while the data lock is held can only come from a bug (all sizes are checked
    // before copying); the data is still valid memory, so poisoning is not propagated.
    pub(super) fn read(&self) -> RwLockReadGuard<'_, FileData> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }
    pub(super) fn write(&self) -> RwLockWriteGuard<'_, FileData> {
        self.data.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An open file as a [`Cursor`] sees it: the node and the filesystem it charges.
pub(super) struct HeapFile {
    pub(super) shared: Arc<Shared>,
    pub(super) node: Arc<FileNode>,
}

impl FileAccess for HeapFile {
    fn size(&self) -> u64 {
        self.node.read().data.size()
    }
    fn read_at<B: ByteSink + ?Sized>(&self, off: u64, buf: &mut B) -> usize {
        self.node.read().data.read_at(off, buf)
    }
    fn write_at(&self, off: u64, data: &[u8]) -> FsResult<()> {
        let sh = &self.shared;
        let mut d = self.node.write();
        d.data.write_at(off, data, sh.cfg, &sh.quota)?;
        d.touch();
        Ok(())
    }
    fn write_shared_at(&self, off: u64, data: Arc<dyn SharedBytes>) -> FsResult<()> {
        let sh = &self.shared;
        let mut d = self.node.write();
        d.data.write_shared_at(off, data, sh.cfg, &sh.quota)?;
        d.touch();
        Ok(())
    }
    fn keeps_shared_at(&self, off: u64) -> bool {
        self.node.read().data.keeps_at(off)
    }
    fn set_len(&self, size: u64, touch: Touch) -> FsResult<()> {
        let sh = &self.shared;
        let mut d = self.node.write();
        let before = d.data.size();
        d.data.truncate(size, sh.cfg, &sh.quota)?;
        if touch == Touch::Always || before != size {
            d.touch();
        }
        Ok(())
    }
    fn close(&self, mode: OpenMode) {
        if mode.writable() {
            self.node.write().data.shrink_slack();
        }
        self.node.lock.release(mode.lock_kind());
    }
}

/// A file's data, for copying out without the file's lock (see
/// [`MemoryFileSystem::snapshot`](super::MemoryFileSystem::snapshot)).
///
/// ```
/// use memspace::fs::{MemoryFileSystem, OpenMode};
///
/// let fs = MemoryFileSystem::default();
/// let mut w = fs.open("/f", OpenMode::Write, 0, None)?;
/// w.write(b"abc")?;
/// // The writer still holds the file; a snapshot copies what it has written so far.
/// let snap = fs.snapshot("/f")?;
/// let mut buf = [0u8; 3];
/// assert_eq!(snap.read_into(&mut buf[..]), (3, 3));
/// assert_eq!(&buf, b"abc");
/// # Ok::<(), memspace::Error>(())
/// ```
pub struct FileSnapshot {
    pub(super) node: Arc<FileNode>,
}

impl FileSnapshot {
    /// The current size.
    pub fn len(&self) -> u64 {
        self.node.read().data.size()
    }
    /// Whether the file is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies from the start into `buf` (initialised or not); returns `(copied, size at the
    /// time of the copy)`.
    pub fn read_into<B: ByteSink + ?Sized>(&self, buf: &mut B) -> (usize, u64) {
        let d = self.node.read();
        (d.data.read_at(0, buf), d.data.size())
    }
    /// All the bytes, as one consistent state; [`FsError::OutOfMemory`] if they cannot be
    /// allocated.
    ///
    /// [`FsError::OutOfMemory`]: crate::fs::FsError::OutOfMemory
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        Ok(self.node.read().data.to_vec()?)
    }
}

/// An open file: a cursor plus the file's lock (shared for `rb`, exclusive otherwise), held
/// until [`FileHandle::close`] or drop.
///
/// ```
/// use memspace::fs::{MemoryFileSystem, OpenMode};
/// use std::time::Duration;
///
/// let fs = MemoryFileSystem::default();
/// let mut f = fs.open("/f", OpenMode::Write, 0, None)?;
/// f.write(b"hello world")?;
/// f.seek(0, 0)?;
/// f.write(b"J")?; // a random write: the file becomes contiguous random-access storage
/// // While `f` is open for writing, others wait (here: not at all) and time out.
/// assert!(fs.open("/f", OpenMode::Read, 0, Some(Duration::ZERO)).is_err());
/// f.close();
/// let mut r = fs.open("/f", OpenMode::Read, 0, None)?;
/// assert_eq!(r.read_to_end()?, b"Jello world");
/// # Ok::<(), memspace::Error>(())
/// ```
pub struct FileHandle {
    pub(super) cursor: Cursor,
    pub(super) file: HeapFile,
}

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileHandle")
            .field("path", &self.cursor.path())
            .field("mode", &self.cursor.mode())
            .field("pos", &self.cursor.pos())
            .field("closed", &self.cursor.is_closed())
            .finish_non_exhaustive()
    }
}

impl FileHandle {
    /// The normalised path it was opened with.
    pub fn path(&self) -> &str {
        self.cursor.path()
    }
    /// The mode it was opened with.
    pub fn mode(&self) -> OpenMode {
        self.cursor.mode()
    }
    /// Whether it has been closed.
    pub fn is_closed(&self) -> bool {
        self.cursor.is_closed()
    }
    /// Fails if it has been closed (what every operation checks first).
    pub fn ensure_open(&self) -> Result<()> {
        Ok(self.cursor.check_open()?)
    }
    /// The file's current size.
    pub fn size(&self) -> Result<u64> {
        Ok(self.cursor.size(&self.file)?)
    }
    /// Bytes between the cursor and the end (what `read(-1)` would return), for readable
    /// handles.
    pub fn remaining(&self) -> Result<u64> {
        Ok(self.cursor.remaining(&self.file)?)
    }

    /// Reads into `buf` (a `[u8]` or a `[MaybeUninit<u8>]`) from the cursor; returns the count
    /// (0 at the end).
    pub fn read_into<B: ByteSink + ?Sized>(&mut self, buf: &mut B) -> Result<usize> {
        Ok(self.cursor.read_into(&self.file, buf)?)
    }

    /// Reads everything from the cursor to the end.
    pub fn read_to_end(&mut self) -> Result<Vec<u8>> {
        Ok(self.cursor.read_to_end(&self.file)?)
    }

    /// Reads one line: up to and including the next `\n`, at most `limit` bytes (`None`: no
    /// limit). Empty at the end of the file.
    ///
    /// ```
    /// use memspace::fs::{MemoryFileSystem, OpenMode};
    ///
    /// let fs = MemoryFileSystem::default();
    /// fs.open("/t", OpenMode::Write, 0, None)?.write(b"one\ntwo")?;
    /// let mut f = fs.open("/t", OpenMode::Read, 0, None)?;
    /// assert_eq!(f.read_line(None)?, b"one\n");
    /// assert_eq!(f.read_line(Some(2))?, b"tw");
    /// assert_eq!(f.read_line(None)?, b"o");
    /// assert_eq!(f.read_line(None)?, b"");
    /// # Ok::<(), memspace::Error>(())
    /// ```
    pub fn read_line(&mut self, limit: Option<u64>) -> Result<Vec<u8>> {
        Ok(self.cursor.read_line(&self.file, limit)?)
    }

    /// Reads the remaining lines; with `hint`, stops once at least that many bytes were read.
    pub fn read_lines(&mut self, hint: Option<u64>) -> Result<Vec<Vec<u8>>> {
        Ok(self.cursor.read_lines(&self.file, hint)?)
    }

    /// Writes at the cursor (at the end in `ab` mode); returns `data.len()`.
    pub fn write(&mut self, data: &[u8]) -> Result<usize> {
        Ok(self.cursor.write(&self.file, data)?)
    }

    /// Like [`FileHandle::write`], but an append to a sequential file keeps `data` itself
    /// instead of copying it (the quota is charged the same). Other writes copy it.
    pub fn write_shared(&mut self, data: Arc<dyn SharedBytes>) -> Result<usize> {
        Ok(self.cursor.write_shared(&self.file, data)?)
    }

    /// Whether [`FileHandle::write_shared`] now would keep its buffer rather than copy it (so
    /// that a caller can skip wrapping bytes it would copy anyway).
    pub fn keeps_shared(&self) -> bool {
        self.cursor.keeps_shared(&self.file)
    }

    /// Moves the cursor: `whence` 0 (start, `offset >= 0`), 1 (current), 2 (end,
    /// `offset <= 0`). Returns the new position.
    pub fn seek(&mut self, offset: i64, whence: i32) -> Result<u64> {
        Ok(self.cursor.seek(&self.file, offset, whence)?)
    }

    /// The cursor.
    pub fn tell(&self) -> Result<u64> {
        Ok(self.cursor.tell()?)
    }

    /// Resizes the file to `size` (the cursor if `None`); returns the new size.
    pub fn truncate(&mut self, size: Option<u64>) -> Result<u64> {
        Ok(self.cursor.truncate(&self.file, size)?)
    }

    /// Releases the file's lock. Idempotent.
    pub fn close(&mut self) {
        self.cursor.close(&self.file);
    }
}

impl Drop for FileHandle {
    fn drop(&mut self) {
        self.close();
    }
}
