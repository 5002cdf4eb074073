"""`MFSTextHandle`: text reading and writing over a binary :class:`MemoryFileHandle`.

Unlike :class:`io.TextIOWrapper` it keeps no write buffer (each ``write`` reaches the file,
and the quota, at once) and reads no further than it must, so the binary cursor stays where
the text consumed it. Lines end at ``\\n``, ``\\r\\n`` or a bare ``\\r``.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Any

__all__ = ["MFSTextHandle"]

_BLOCK = 1024


def _ascii_compatible(encoding: str) -> bool:
    """Whether ``\\r`` and ``\\n`` bytes can only ever mean those characters (true of UTF-8,
    Latin-1, the cp125x family, Shift-JIS, EUC...; false of UTF-16/32)."""
    try:
        info = codecs.lookup(encoding)
        return info.encode("\r\nA")[0] == b"\r\nA"
    except (LookupError, UnicodeError):
        return False


class MFSTextHandle:
    """Text I/O over a binary handle from :meth:`MemoryFileSystem.open`.

    Parameters
    ----------
    handle:
        The binary handle (its lifetime stays the caller's: leaving a ``with`` block of this
        object does not close it).
    encoding:
        Text encoding (default ``"utf-8"``).
    errors:
        Error handling for encoding and decoding (default ``"strict"``).

    Example
    -------
    >>> from memspace import MemoryFileSystem, MFSTextHandle
    >>> mfs = MemoryFileSystem()
    >>> with mfs.open("/t.txt", "wb") as f:
    ...     MFSTextHandle(f).write("こんにちは\\n")
    6
    """

    def __init__(self, handle: Any, encoding: str = "utf-8", errors: str = "strict") -> None:
        self._handle = handle
        self._encoding = encoding
        self._errors = errors
        self._pending = ""
        self._fast_lines = _ascii_compatible(encoding)
        self._decoder = codecs.getincrementaldecoder(encoding)(errors=errors)

    @property
    def encoding(self) -> str:
        """The text encoding."""
        return self._encoding

    @property
    def errors(self) -> str:
        """The error handling."""
        return self._errors

    def write(self, text: str) -> int:
        """Encode and write ``text``; returns the number of characters."""
        self._handle.write(text.encode(self._encoding, self._errors))
        return len(text)

    def _take_pending(self, n: int) -> str:
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def read(self, size: int = -1) -> str:
        """Read up to ``size`` characters (``-1``: to the end); ``""`` at the end."""
        if size is None or size < 0:
            text = self._pending + self._decoder.decode(self._handle.read(), final=True)
            self._pending = ""
            return text
        parts = [self._take_pending(size)]
        missing = size - len(parts[0])
        # Each character is at least one byte: reading `missing` bytes never reads past the
        # last character we need.
        while missing > 0:
            raw = self._handle.read(missing)
            text = self._decoder.decode(raw, final=not raw)
            if len(text) > missing:
                self._pending = text[missing:] + self._pending
                text = text[:missing]
            parts.append(text)
            missing -= len(text)
            if not raw:
                break
        return "".join(parts)

    def readline(self, limit: int = -1) -> str:
        """Read one line including its ending (``\\n``, ``\\r\\n`` or ``\\r``), at most
        ``limit`` characters; ``""`` at the end."""
        if self._fast_lines and not self._pending:
            line = self._readline_bytes()
        else:
            line = self._readline_chars()
        if 0 <= limit < len(line):
            self._pending = line[limit:] + self._pending
            line = line[:limit]
        return line

    def _readline_bytes(self) -> str:
        """Find the line end in the bytes (safe for ASCII-compatible encodings) and leave the
        binary cursor just after it."""
        h = self._handle
        start = h.tell()
        buf = bytearray()
        while True:
            block = h.read(_BLOCK)
            if not block:
                break
            base = len(buf)
            buf += block
            cut = -1
            for i in range(base, len(buf)):
                b = buf[i]
                if b == 0x0A:
                    cut = i + 1
                    break
                if b == 0x0D:
                    if i + 1 == len(buf):
                        nxt = h.read(1)
                        buf += nxt
                    cut = i + 2 if i + 1 < len(buf) and buf[i + 1] == 0x0A else i + 1
                    break
            if cut >= 0:
                del buf[cut:]
                h.seek(start + cut)
                break
        return self._decoder.decode(bytes(buf), final=False)

    def _readline_chars(self) -> str:
        chars: list[str] = []
        while True:
            ch = self.read(1)
            if not ch:
                break
            chars.append(ch)
            if ch == "\n":
                break
            if ch == "\r":
                nxt = self.read(1)
                if nxt == "\n":
                    chars.append(nxt)
                elif nxt:
                    self._pending = nxt + self._pending
                break
        return "".join(chars)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __enter__(self) -> MFSTextHandle:
        return self

    def __exit__(self, *args: object) -> None:
        """Leaves the binary handle open (its ``with`` block owns it)."""
