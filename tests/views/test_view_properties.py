"""Property: whatever list of values is written to a View reads back equal, with its tags."""

from __future__ import annotations

import memspace
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import unique_name

pytestmark = pytest.mark.timeout(120)

values = st.one_of(
    st.booleans().map(lambda v: (v, "bool")),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: (v, "int")),
    st.floats(allow_nan=False).map(lambda v: (v, "float")),
    st.text(max_size=40).map(lambda v: (v, "str")),
    st.binary(max_size=40).map(lambda v: (v, "bytes")),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: (v, "i32")),
    st.integers(0, 255).map(lambda v: (v, "u8")),
    st.integers(0, 2**32 - 1).map(lambda v: (v, "u32")),
    st.integers(0, 2**64 - 1).map(lambda v: (v, "u64")),
)


@pytest.fixture(scope="module")
def view() -> object:
    name = unique_name("prop")
    v = memspace.View.create(name, 8192)
    yield v
    memspace.View.remove(name)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(values, max_size=30), st.integers(0, 64))
def test_write_then_read_roundtrip(
    view: memspace.View, items: list[tuple[object, str]], start: int
) -> None:
    view.seek(start)
    for value, tag in items:
        view.write(value, tag=tag)  # type: ignore[arg-type]
    end = view.tell()
    view.seek(start)
    got = [view.read(tag) for _, tag in items]
    assert got == [v for v, _ in items]
    assert view.tell() == end
    if items:
        view.seek(start)
        assert view.read_mixed([(tag, 1) for _, tag in items]) == got
