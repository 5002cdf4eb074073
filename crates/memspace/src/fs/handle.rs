//! What an open file handle means, whatever holds the file: the checks of its mode, the
//! cursor, seeking, reading lines, appending at the end, what `open` does to the file once
//! the lock is held, and closing once.
//!
//! A filesystem gives its files' data through [`FileAccess`]; its public handle type is a
//! [`Cursor`] plus that file, and each of its methods is one call into the cursor. So the
//! semantics are written here once, for the heap filesystem and for any other backing.
//!
//! A handle holds its file's lock for its whole life (shared for `rb`, exclusive for every
//! writable mode), so nobody else changes the file's data while a writable handle is open;
//! the cursor relies on that, e.g. it reads the size and then appends there.

use std::sync::Arc;

use super::bytes::{ByteSink, SharedBytes};
use super::error::{FsError, FsResult};
use super::options::OpenMode;

/// When a change of size counts as a data change (generation and modification time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Touch {
    /// Only if the size changed.
    IfChanged,
    /// Always (`wb` empties a file: a change even if it was empty).
    Always,
}

/// One open file's data, as a handle sees it. Implemented by each filesystem's file type; the
/// caller holds the file's lock (see the module documentation).
pub(crate) trait FileAccess {
    /// The current size.
    fn size(&self) -> u64;
    /// Copies from `off` into `buf`; returns how many bytes (0 at or past the end).
    fn read_at<B: ByteSink + ?Sized>(&self, off: u64, buf: &mut B) -> usize;
    /// Writes `data` at `off` (zero-filling any gap), charging the quota; counts as a change.
    fn write_at(&self, off: u64, data: &[u8]) -> FsResult<()>;
    /// Like [`FileAccess::write_at`], but the file may keep `data` instead of copying it.
    fn write_shared_at(&self, off: u64, data: Arc<dyn SharedBytes>) -> FsResult<()> {
        self.write_at(off, data.bytes())
    }
    /// Whether [`FileAccess::write_shared_at`] at `off` would keep its buffer (not copy it).
    fn keeps_shared_at(&self, _off: u64) -> bool {
        false
    }
    /// Resizes to `size` bytes (zero-filled when growing).
    fn set_len(&self, size: u64, touch: Touch) -> FsResult<()>;
    /// The handle closes (called once): release the lock a handle of `mode` holds.
    fn close(&self, mode: OpenMode);
}

/// The first and the largest run `read_line` copies at a time while looking for `\n`.
const LINE_CHUNK_MIN: usize = 256;
const LINE_CHUNK_MAX: usize = 64 * 1024;

/// An open handle's own state (mode, cursor, closed flag, path) and every handle operation,
/// over any [`FileAccess`].
#[derive(Debug)]
pub(crate) struct Cursor {
    mode: OpenMode,
    pos: u64,
    closed: bool,
    path: String,
}

impl Cursor {
    /// The state of a handle just opened (its lock taken) on `path` (normalised).
    pub(crate) fn new(path: String, mode: OpenMode) -> Self {
        Self {
            mode,
            pos: 0,
            closed: false,
            path,
        }
    }

    /// What `open` does once the lock is held: `wb` empties an existing file, `preallocate`
    /// extends the file with zeros to that size (charged now, like writing them), `ab` starts
    /// at the end. On failure the caller closes the handle.
    pub(crate) fn prepare<F: FileAccess>(
        &mut self,
        file: &F,
        created: bool,
        preallocate: u64,
    ) -> FsResult<()> {
        if self.mode == OpenMode::Write && !created {
            file.set_len(0, Touch::Always)?;
        }
        if preallocate > file.size() {
            file.set_len(preallocate, Touch::IfChanged)?;
        }
        if self.mode == OpenMode::Append {
            self.pos = file.size();
        }
        Ok(())
    }

    pub(crate) fn check_open(&self) -> FsResult<()> {
        if self.closed {
            Err(FsError::Closed)
        } else {
            Ok(())
        }
    }
    fn check_readable(&self) -> FsResult<()> {
        self.check_open()?;
        if self.mode.readable() {
            Ok(())
        } else {
            Err(FsError::NotReadable { mode: self.mode })
        }
    }
    fn check_writable(&self) -> FsResult<()> {
        self.check_open()?;
        if self.mode.writable() {
            Ok(())
        } else {
            Err(FsError::NotWritable { mode: self.mode })
        }
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }
    pub(crate) fn mode(&self) -> OpenMode {
        self.mode
    }
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn size<F: FileAccess>(&self, file: &F) -> FsResult<u64> {
        self.check_open()?;
        Ok(file.size())
    }

    pub(crate) fn remaining<F: FileAccess>(&self, file: &F) -> FsResult<u64> {
        self.check_readable()?;
        Ok(file.size().saturating_sub(self.pos))
    }

    pub(crate) fn read_into<F: FileAccess, B: ByteSink + ?Sized>(
        &mut self,
        file: &F,
        buf: &mut B,
    ) -> FsResult<usize> {
        self.check_readable()?;
        let n = file.read_at(self.pos, buf);
        self.pos += n as u64;
        Ok(n)
    }

    pub(crate) fn read_to_end<F: FileAccess>(&mut self, file: &F) -> FsResult<Vec<u8>> {
        let n = self.remaining(file)?;
        let mut v = zeroed(n)?;
        let got = self.read_into(file, &mut v[..])?;
        v.truncate(got);
        Ok(v)
    }

    /// One line: up to and including the next `\n`, at most `limit` bytes (`None`: no limit);
    /// empty at the end.
    pub(crate) fn read_line<F: FileAccess>(
        &mut self,
        file: &F,
        limit: Option<u64>,
    ) -> FsResult<Vec<u8>> {
        self.check_readable()?;
        let left = file.size().saturating_sub(self.pos);
        let max = limit.map_or(left, |l| l.min(left));
        let mut line = Vec::new();
        let mut chunk = LINE_CHUNK_MIN;
        // Copy a run at a time straight into the line and look for `\n` in what arrived; the
        // runs grow so that a long line costs few passes, and what was copied past the `\n`
        // (at most one run) is dropped.
        while (line.len() as u64) < max {
            let start = line.len();
            let want = (max - start as u64).min(chunk as u64) as usize;
            line.try_reserve(want).map_err(|_| FsError::OutOfMemory {
                requested: want as u64,
            })?;
            line.resize(start + want, 0);
            let n = file.read_at(self.pos + start as u64, &mut line[start..]);
            line.truncate(start + n);
            if n == 0 {
                break;
            }
            if let Some(i) = line[start..].iter().position(|&b| b == b'\n') {
                line.truncate(start + i + 1);
                break;
            }
            chunk = (chunk * 2).min(LINE_CHUNK_MAX);
        }
        self.pos += line.len() as u64;
        Ok(line)
    }

    /// The remaining lines; with `hint`, stops once at least that many bytes were read.
    pub(crate) fn read_lines<F: FileAccess>(
        &mut self,
        file: &F,
        hint: Option<u64>,
    ) -> FsResult<Vec<Vec<u8>>> {
        let mut lines = Vec::new();
        let mut total = 0u64;
        loop {
            let line = self.read_line(file, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len() as u64;
            lines.try_reserve(1).map_err(|_| FsError::OutOfMemory {
                requested: std::mem::size_of::<Vec<u8>>() as u64,
            })?;
            lines.push(line);
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    /// Writes at the cursor (at the end in `ab` mode); returns `data.len()`.
    pub(crate) fn write<F: FileAccess>(&mut self, file: &F, data: &[u8]) -> FsResult<usize> {
        self.check_writable()?;
        if data.is_empty() {
            return Ok(0);
        }
        self.seek_end_if_appending(file);
        file.write_at(self.pos, data)?;
        self.pos += data.len() as u64;
        Ok(data.len())
    }

    /// [`Cursor::write`] of bytes the file may keep instead of copying.
    pub(crate) fn write_shared<F: FileAccess>(
        &mut self,
        file: &F,
        data: Arc<dyn SharedBytes>,
    ) -> FsResult<usize> {
        self.check_writable()?;
        let n = data.bytes().len();
        if n == 0 {
            return Ok(0);
        }
        self.seek_end_if_appending(file);
        file.write_shared_at(self.pos, data)?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Whether a [`Cursor::write_shared`] now would keep its buffer instead of copying it
    /// (an append to a sequential file). The handle's lock keeps that true until it writes.
    pub(crate) fn keeps_shared<F: FileAccess>(&self, file: &F) -> bool {
        if self.closed || !self.mode.writable() {
            return false;
        }
        let at = if self.mode == OpenMode::Append {
            file.size()
        } else {
            self.pos
        };
        file.keeps_shared_at(at)
    }

    /// In `ab` mode every write goes to the end (the cursor stays there even if the write
    /// then fails). The handle's exclusive lock keeps the size from changing in between.
    fn seek_end_if_appending<F: FileAccess>(&mut self, file: &F) {
        if self.mode == OpenMode::Append {
            self.pos = file.size();
        }
    }

    /// Moves the cursor: `whence` 0 (start, `offset >= 0`), 1 (current), 2 (end,
    /// `offset <= 0`). Returns the new position.
    pub(crate) fn seek<F: FileAccess>(
        &mut self,
        file: &F,
        offset: i64,
        whence: i32,
    ) -> FsResult<u64> {
        self.check_open()?;
        let base: i128 = match whence {
            0 => {
                if offset < 0 {
                    return Err(FsError::SeekBeforeStart { offset });
                }
                0
            }
            1 => i128::from(self.pos),
            2 => {
                if offset > 0 {
                    return Err(FsError::SeekPastEnd { offset });
                }
                i128::from(file.size())
            }
            whence => return Err(FsError::InvalidWhence { whence }),
        };
        let position = base + i128::from(offset);
        if position < 0 {
            return Err(FsError::NegativePosition { position });
        }
        self.pos = u64::try_from(position).map_err(|_| FsError::PositionTooLarge { position })?;
        Ok(self.pos)
    }

    pub(crate) fn tell(&self) -> FsResult<u64> {
        self.check_open()?;
        Ok(self.pos)
    }

    /// Resizes the file to `size` (the cursor if `None`); returns the new size.
    pub(crate) fn truncate<F: FileAccess>(&mut self, file: &F, size: Option<u64>) -> FsResult<u64> {
        self.check_writable()?;
        let target = size.unwrap_or(self.pos);
        file.set_len(target, Touch::IfChanged)?;
        self.pos = self.pos.min(target);
        Ok(target)
    }

    /// Releases the file's lock. Idempotent.
    pub(crate) fn close<F: FileAccess>(&mut self, file: &F) {
        if !self.closed {
            self.closed = true;
            file.close(self.mode);
        }
    }
}

/// `n` zero bytes, or [`FsError::OutOfMemory`].
pub(crate) fn zeroed(n: u64) -> FsResult<Vec<u8>> {
    let oom = || FsError::OutOfMemory { requested: n };
    let len = usize::try_from(n).map_err(|_| oom())?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| oom())?;
    v.resize(len, 0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A file in a `RefCell`, to test the cursor on its own.
    struct Plain(RefCell<Vec<u8>>);

    impl FileAccess for Plain {
        fn size(&self) -> u64 {
            self.0.borrow().len() as u64
        }
        fn read_at<B: ByteSink + ?Sized>(&self, off: u64, buf: &mut B) -> usize {
            let d = self.0.borrow();
            let off = (off as usize).min(d.len());
            let n = (d.len() - off).min(buf.len());
            buf.put(0, &d[off..off + n]);
            n
        }
        fn write_at(&self, off: u64, data: &[u8]) -> FsResult<()> {
            let mut d = self.0.borrow_mut();
            let end = off as usize + data.len();
            if d.len() < end {
                d.resize(end, 0);
            }
            d[off as usize..end].copy_from_slice(data);
            Ok(())
        }
        fn set_len(&self, size: u64, _touch: Touch) -> FsResult<()> {
            self.0.borrow_mut().resize(size as usize, 0);
            Ok(())
        }
        fn close(&self, _mode: OpenMode) {}
    }

    fn file(bytes: &[u8]) -> Plain {
        Plain(RefCell::new(bytes.to_vec()))
    }

    #[test]
    fn read_line_stops_after_newline_limit_or_end() {
        let f = file(b"ab\ncd\n\nlast");
        let mut c = Cursor::new("/f".to_owned(), OpenMode::Read);
        assert_eq!(c.read_line(&f, None).unwrap(), b"ab\n");
        assert_eq!(c.tell().unwrap(), 3);
        assert_eq!(c.read_line(&f, Some(1)).unwrap(), b"c");
        assert_eq!(c.read_line(&f, Some(0)).unwrap(), b"");
        assert_eq!(c.read_line(&f, Some(100)).unwrap(), b"d\n");
        assert_eq!(c.read_line(&f, None).unwrap(), b"\n");
        assert_eq!(c.read_line(&f, None).unwrap(), b"last");
        assert_eq!(c.read_line(&f, None).unwrap(), b"");
        assert_eq!(c.tell().unwrap(), 11);
    }

    #[test]
    fn read_line_across_many_runs() {
        // Longer than several runs, with the newline in the middle of a later run.
        let mut data = vec![b'x'; 5 * LINE_CHUNK_MIN + 17];
        data.push(b'\n');
        data.extend_from_slice(b"tail");
        let f = file(&data);
        let mut c = Cursor::new("/f".to_owned(), OpenMode::ReadWrite);
        let line = c.read_line(&f, None).unwrap();
        assert_eq!(line.len(), 5 * LINE_CHUNK_MIN + 18);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(c.tell().unwrap(), line.len() as u64);
        assert_eq!(c.read_line(&f, None).unwrap(), b"tail");
        // After a seek past the end there is nothing to read.
        c.seek(&f, 100_000, 0).unwrap();
        assert_eq!(c.read_line(&f, None).unwrap(), b"");
    }

    #[test]
    fn read_lines_with_and_without_hint() {
        let f = file(b"a\nbb\nccc\n");
        let mut c = Cursor::new("/f".to_owned(), OpenMode::Read);
        assert_eq!(c.read_lines(&f, Some(3)).unwrap(), [&b"a\n"[..], b"bb\n"]);
        assert_eq!(c.read_lines(&f, None).unwrap(), [b"ccc\n"]);
        assert!(c.read_lines(&f, None).unwrap().is_empty());
    }

    #[test]
    fn read_line_needs_an_open_readable_handle() {
        let f = file(b"a\n");
        let mut w = Cursor::new("/f".to_owned(), OpenMode::Append);
        assert_eq!(
            w.read_line(&f, None),
            Err(FsError::NotReadable {
                mode: OpenMode::Append
            })
        );
        let mut r = Cursor::new("/f".to_owned(), OpenMode::Read);
        r.close(&f);
        assert_eq!(r.read_line(&f, Some(0)), Err(FsError::Closed));
    }
}
