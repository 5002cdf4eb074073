"""The optional physical-memory guard of :class:`MemoryFileSystem` (``memory_guard=``).

The quota bounds what the filesystem may hold; the guard additionally compares a quota or a
write against the memory the machine (or its cgroup) has available, and warns
(``ResourceWarning``) or raises ``MemoryError``. It never changes what is stored.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings

__all__ = ["MemoryGuard", "available_memory"]


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes of memory available to this process now, or ``None`` if unknown.

    Linux: the cgroup v2 limit minus its usage when a limit is set, else ``MemAvailable`` from
    ``/proc/meminfo``. Other platforms: ``None`` (the guard then never triggers).
    """
    if not sys.platform.startswith("linux"):
        return None
    limit = _read_int("/sys/fs/cgroup/memory.max")
    if limit is not None:
        current = _read_int("/sys/fs/cgroup/memory.current") or 0
        return max(0, limit - current)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class MemoryGuard:
    """Checks quota and writes against available memory (``mode``: none, init, per_write)."""

    def __init__(self, mode: str, action: str, interval: float) -> None:
        self.mode = mode
        self.action = action
        self.interval = interval
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._available: int | None = None

    def _violation(self, message: str) -> None:
        if self.action == "raise":
            raise MemoryError(message)
        warnings.warn(message, ResourceWarning, stacklevel=4)

    def check_init(self, max_quota: int) -> None:
        """At construction (modes ``init`` and ``per_write``)."""
        if self.mode == "none":
            return
        avail = available_memory()
        with self._lock:
            self._available = avail
            self._checked_at = time.monotonic()
        if avail is not None and max_quota > avail:
            self._violation(
                f"max_quota ({max_quota:,} bytes) exceeds available physical RAM "
                f"({avail:,} bytes). MemoryError may occur before quota limit is reached."
            )

    def check_write(self, size: int) -> None:
        """Before a write of ``size`` bytes (mode ``per_write``; at most one probe per
        ``interval`` seconds)."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked_at >= self.interval:
                self._available = available_memory()
                self._checked_at = now
            avail = self._available
        if avail is not None and size > avail:
            self._violation(
                f"Write of {size:,} bytes requested but only {avail:,} bytes of "
                "physical RAM available."
            )
