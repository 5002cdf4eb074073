"""The measured loops: one template per loop, formatted with each transport's own statements.

Every transport is driven by the same code: a template below with the transport's snippets
(`Transport.SEND`, `RECV`, `SEND_MANY`, `RECV_MANY`, see channels.py) pasted in at the same
place, compiled once per process before the clock starts. So every transport runs the same
iteration over the same reused message object, the names its snippets call are locals of the
generated function for everyone (bound methods hoisted for every transport alike, passed in as
arguments), and no transport gets a Python frame per message that another does not get: what
a snippet calls is what that transport's user calls.

What this module must never do: give one transport a statement the others do not have, or call
a snippet through a helper function.
"""

from __future__ import annotations

import builtins
import dis
import functools
import linecache
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from channels import End, Transport

# Snippets are pasted at this indentation (the body of the templates' innermost loop).
_INDENT = " " * 8

# Sends `m` (len(m) == size) n times.
SEND = """
def send(n, m, size, {names}):
    for _ in range(n):
{send}
"""

# Receives n messages; checks each one's length.
RECV = """
{async_}def recv(n, size, {names}):
    for _ in range(n):
{recv}
        if k != size:
            raise AssertionError(k)
"""

# Sends `m` n times in lists of `per`.
SEND_MANY = """
def send_many(n, m, size, per, {names}):
    b = [m] * per
    sent = 0
    while sent < n:
        if n - sent < per:
            b = b[: n - sent]
{send_many}
        sent += len(b)
"""

# Receives n messages in lists of at most `per`; checks each one's length.
RECV_MANY = """
def recv_many(n, size, per, {names}):
    got = 0
    while got < n:
        c = min(per, n - got)
{recv_many}
        for d in ms:
            if len(d) != size:
                raise AssertionError(len(d))
        got += len(ms)
"""

# Several producers: receives until `producers` end markers (empty messages) have arrived.
# Returns (messages, markers).
RECV_UNTIL_ENDS = """
def recv_until_ends(size, producers, {names}):
    got = ends = 0
    while True:
{recv}
        if k == size:
            got += 1
        elif k == 0:
            ends += 1
            if ends == producers:
                return got, ends
        else:
            raise AssertionError(k)
"""

# The same in lists: a list may bring more markers than this consumer's share.
RECV_MANY_UNTIL_ENDS = """
def recv_many_until_ends(size, producers, per, {names}):
    got = ends = 0
    c = per
    while ends < producers:
{recv_many}
        for d in ms:
            k = len(d)
            if k == size:
                got += 1
            elif k == 0:
                ends += 1
            else:
                raise AssertionError(k)
    return got, ends
"""

# One round trip per iteration: send `m` out, wait for the echo; appends nanoseconds to `out`.
PING = """
def ping(n, m, size, clock, out, {names}):
    append = out.append
    for _ in range(n):
        t0 = clock()
{send}
{recv}
        append(clock() - t0)
        if k != size:
            raise AssertionError(k)
"""

# The other end of PING: receive one message, send `m` back.
ECHO = """
def echo(n, m, size, {names}):
    for _ in range(n):
{recv}
        if k != size:
            raise AssertionError(k)
{send}
"""

# Python objects (numpy arrays): the snippets send `m` and set `d` to the object received.
SEND_OBJECTS = """
def send_objects(n, arrays, {names}):
    na = len(arrays)
    for i in range(n):
        m = arrays[i % na]
{send}
"""

RECV_OBJECTS = """
def recv_objects(n, shape, dtype, firsts, lasts, {names}):
    na = len(firsts)
    for i in range(n):
{recv}
        j = i % na
        if d.shape != shape or d.dtype != dtype or d[0] != firsts[j] or d[-1] != lasts[j]:
            raise AssertionError(i)
"""


def _build(template: str, t: type[Transport], names: dict[str, Any], **snippets: str) -> Any:
    for key, code in snippets.items():
        if not code:
            raise NotImplementedError(f"{t.__name__} has no {key.upper()} snippet")
    body = {key: textwrap.indent(code.strip("\n"), _INDENT) for key, code in snippets.items()}
    src = template.format(
        names=", ".join(sorted(names)), async_="async " if t.is_async else "", **body
    )
    func = template.split("def ", 1)[1].split("(", 1)[0]
    filename = f"<{t.__name__}.{func}>"
    # Kept in linecache so that a traceback shows the generated line.
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    scope: dict[str, Any] = {"__builtins__": builtins}
    exec(compile(src, filename, "exec"), scope)  # our own templates, formatted above
    code = scope[func].__code__
    for ins in dis.get_instructions(code):
        # Every name a snippet uses is a local (the End's names, the template's own) or a
        # builtin: a missing End name must fail here, not be looked up per message.
        if ins.opname == "LOAD_GLOBAL" and not hasattr(builtins, ins.argval):
            raise NameError(f"{t.__name__}.{func}: {ins.argval!r} is not one of its End's names")
    return functools.partial(scope[func], **names)


def _merge(a: End, b: End) -> dict[str, Any]:
    """The names of two ends used in one loop (a round trip): they must not clash."""
    out = dict(a.names)
    for key, value in b.names.items():
        if key in out and out[key] is not value:
            raise ValueError(f"both ends name {key!r}: rename one in channels.py")
        out[key] = value
    return out


def sender(t: type[Transport], end: End) -> Callable[[int, bytes, int], None]:
    """`send(n, m, size)`."""
    f: Callable[[int, bytes, int], None] = _build(SEND, t, end.names, send=t.SEND)
    return f


def receiver(t: type[Transport], end: End) -> Callable[[int, int], Any]:
    """`recv(n, size)` (a coroutine function for an asyncio transport)."""
    f: Callable[[int, int], Any] = _build(RECV, t, end.names, recv=t.RECV)
    return f


def batch_sender(t: type[Transport], end: End) -> Callable[[int, bytes, int, int], None]:
    """`send_many(n, m, size, per)`."""
    f: Callable[[int, bytes, int, int], None] = _build(
        SEND_MANY, t, end.names, send_many=t.SEND_MANY
    )
    return f


def batch_receiver(t: type[Transport], end: End) -> Callable[[int, int, int], None]:
    """`recv_many(n, size, per)`."""
    f: Callable[[int, int, int], None] = _build(RECV_MANY, t, end.names, recv_many=t.RECV_MANY)
    return f


def end_counter(t: type[Transport], end: End) -> Callable[[int, int], tuple[int, int]]:
    """`recv_until_ends(size, producers) -> (messages, markers)`."""
    f: Callable[[int, int], tuple[int, int]] = _build(RECV_UNTIL_ENDS, t, end.names, recv=t.RECV)
    return f


def batch_end_counter(t: type[Transport], end: End) -> Callable[[int, int, int], tuple[int, int]]:
    """`recv_many_until_ends(size, producers, per) -> (messages, markers)`."""
    f: Callable[[int, int, int], tuple[int, int]] = _build(
        RECV_MANY_UNTIL_ENDS, t, end.names, recv_many=t.RECV_MANY
    )
    return f


def pinger(t: type[Transport], out: End, back: End) -> Callable[..., None]:
    """`ping(n, m, size, clock, out_list)`."""
    f: Callable[..., None] = _build(PING, t, _merge(out, back), send=t.SEND, recv=t.RECV)
    return f


def echoer(t: type[Transport], back: End, out: End) -> Callable[[int, bytes, int], None]:
    """`echo(n, m, size)`."""
    f: Callable[[int, bytes, int], None] = _build(
        ECHO, t, _merge(back, out), send=t.SEND, recv=t.RECV
    )
    return f


def object_sender(t: type[Transport], end: End) -> Callable[[int, list[Any]], None]:
    """`send_objects(n, arrays)`."""
    f: Callable[[int, list[Any]], None] = _build(SEND_OBJECTS, t, end.names, send=t.SEND)
    return f


def object_receiver(t: type[Transport], end: End) -> Callable[..., None]:
    """`recv_objects(n, shape, dtype, firsts, lasts)`."""
    f: Callable[..., None] = _build(RECV_OBJECTS, t, end.names, recv=t.RECV)
    return f
