"""memspace's own exceptions.

Every exception memspace defines derives from :class:`MemspaceError` and, where one fits, from
the builtin exception a Python user would expect (so ``except ValueError`` keeps working).
Errors that have an exact builtin meaning (``FileExistsError``, ``FileNotFoundError``,
``PermissionError``, ``ValueError``, ``IndexError``, ...) are raised as that builtin.
"""

from __future__ import annotations

import queue

__all__ = [
    "CorruptSegmentError",
    "Lagged",
    "LayoutError",
    "LockError",
    "MFSNodeLimitExceededError",
    "MFSQuotaExceededError",
    "MemspaceError",
    "QueueBusy",
    "RoleTakenError",
]


class MemspaceError(Exception):
    """Base class of every exception that memspace defines."""


class LayoutError(MemspaceError, ValueError):
    """A segment exists but cannot be used as asked.

    For example it is not a regular file, it is empty, it is smaller than required, or (for
    structured objects) its header names another kind or an incompatible layout version.
    The segment is never modified when this is raised.
    """


class MFSQuotaExceededError(MemspaceError, OSError):
    """A :class:`~memspace.MemoryFileSystem` write would exceed its byte quota.

    Raised before anything is written or allocated. ``requested`` is the byte count the
    operation needed, ``available`` what was free at the time. Same constructor and attributes
    as ``dmemfs.MFSQuotaExceededError``.
    """

    requested: int
    available: int

    def __init__(self, requested: int, available: int) -> None:
        self.requested = requested
        self.available = available
        super().__init__(
            f"MFS quota exceeded: requested {requested} bytes, only {available} bytes available."
        )


class MFSNodeLimitExceededError(MFSQuotaExceededError):
    """A :class:`~memspace.MemoryFileSystem` already holds ``max_nodes`` nodes.

    ``current`` is the node count (files and directories, the root included) and ``limit`` the
    configured ``max_nodes``; ``requested``/``available`` are ``current + 1`` and
    ``limit - current`` as in dmemfs.
    """

    current: int
    limit: int

    def __init__(self, current: int, limit: int) -> None:
        self.current = current
        self.limit = limit
        super().__init__(requested=current + 1, available=limit - current)
        self.args = (f"MFS node limit exceeded: current {current} nodes, limit is {limit}.",)


class CorruptSegmentError(MemspaceError, ValueError):
    """A live structured segment holds impossible values (corrupted by a bug or a hostile
    process). memspace refused to use them; nothing outside the segment was touched.
    """


class LockError(MemspaceError, RuntimeError):
    """A lock was misused: acquired again by the thread that holds it (which would deadlock),
    or released by a thread that does not hold it.
    """


class RoleTakenError(MemspaceError, RuntimeError):
    """A ring's producer or consumer role, or a broadcast's publisher role, is held by another
    live process (or handle).

    A ring has exactly one producer and one consumer, a broadcast one publisher. A role whose
    holder died is free again and can be taken over; a stopped (``SIGSTOP``) holder is alive
    and keeps its role.
    """


class Lagged(MemspaceError):
    """A :class:`~memspace.Broadcast` subscriber (overwrite mode) fell a lap behind.

    The publisher overwrote ``count`` messages this subscriber had not read (or the one it was
    reading in a ``get_view()`` block: what it read must be discarded). The subscriber
    continues with the oldest message still there: the next ``get`` returns it. ``count`` is
    exact (it is computed from the messages' indices).
    """

    count: int

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(count)

    def __str__(self) -> str:
        return f"the subscriber fell behind and missed {self.count} messages"


class QueueBusy(MemspaceError, queue.Full, queue.Empty):
    """A :class:`~memspace.Queue` call gave up because another process (or thread) kept the
    queue's producer lock (for a put) or consumer lock (for a get) for the whole time it
    waited, while the queue was not full (put) or not empty (get).

    A live holder keeps these locks for well under a microsecond, so this means a stopped
    (``SIGSTOP``) or long-descheduled holder; a stopped process is alive and keeps the lock
    until it runs again (a killed one is replaced). ``put_nowait``/``get_nowait`` raise it after
    waiting 20 ms for the lock; ``put``/``get`` with a timeout at their deadline.

    It derives from both :class:`queue.Full` and :class:`queue.Empty`, so code written for
    ``queue.Queue`` keeps working; a plain ``queue.Full`` or ``queue.Empty`` from a memspace
    queue means full or empty. ``try_put`` returns False and ``try_get`` None in this case.
    """
