//! The two ways bytes cross a filesystem's boundary without an extra copy: a destination a
//! read copies straight into ([`ByteSink`], initialised or not), and immutable bytes owned
//! elsewhere that a write may keep instead of copying ([`SharedBytes`]).

use std::mem::MaybeUninit;

/// Immutable bytes owned elsewhere that a file may keep instead of copying them (the Python
/// bindings pass large `bytes` objects this way, as D-MemFS keeps references to them).
///
/// The bytes must never change while the value is alive.
pub trait SharedBytes: Send + Sync {
    /// The bytes.
    fn bytes(&self) -> &[u8];
}

/// A destination for copied-out bytes: initialised (`[u8]`) or not (`[MaybeUninit<u8>]`, so
/// that a caller can copy straight into freshly allocated memory without zeroing it first).
pub trait ByteSink {
    /// Its length in bytes.
    fn len(&self) -> usize;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies `src` to `at..at + src.len()`.
    fn put(&mut self, at: usize, src: &[u8]);
}

impl ByteSink for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
    fn put(&mut self, at: usize, src: &[u8]) {
        self[at..at + src.len()].copy_from_slice(src);
    }
}

impl ByteSink for [MaybeUninit<u8>] {
    fn len(&self) -> usize {
        <[MaybeUninit<u8>]>::len(self)
    }
    fn put(&mut self, at: usize, src: &[u8]) {
        // A plain byte loop: the compiler turns it into memcpy.
        for (d, s) in self[at..at + src.len()].iter_mut().zip(src) {
            d.write(*s);
        }
    }
}
