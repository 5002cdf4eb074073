"""Deep directory trees (issue #11, finding 1): every tree walk is iterative and linear in the
nodes it visits, so a chain of 100,000 directories neither overflows the stack (which killed
the process with SIGSEGV) nor costs memory quadratic in its depth.

Each case runs in a child process, so a crash is a failed test and not a dead pytest; the
child caps its address space (so that a regression cannot take the machine's memory) and
reports its peak RSS (VmHWM: getrusage's ru_maxrss would include pytest's own, kept across
fork and exec), which must stay far below what quadratic path building would take (a
100,000-deep chain of "/a" has 10^10 bytes of prefixes). Linux only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_child

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="measures memory through /proc (Linux)"
)

DEPTH = 100_000
# Generous: what each case needs is a few tens of MB; quadratic path copies need gigabytes.
MAX_RSS_MB = 1024

_PRELUDE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from memspace import MemoryFileSystem
DEPTH = int(sys.argv[1])
chain = "/a" * DEPTH
m = MemoryFileSystem()
m.mkdir(chain)
with m.open(chain + "/f", "wb") as f:
    f.write(b"deep")
out = {}
"""

_EPILOGUE = """
with open("/proc/self/status") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
out["rss_mb"] = hwm // 1024
print(json.dumps(out))
"""

CASES = {
    "mkdir_exists": """
m.mkdir(chain, exist_ok=True)
out["ok"] = m.is_dir(chain) and m.is_file(chain + "/f")
""",
    "copy_tree": """
m.copy_tree("/a", "/b")
out["ok"] = m.is_file("/b" + "/a" * (DEPTH - 1) + "/f")
m.rmtree("/b")
st = m.stats()
out["ok"] = out["ok"] and st["dir_count"] == DEPTH + 1 and st["file_count"] == 1
""",
    "copy_tree_into_itself": """
m.copy_tree("/a", chain + "/copy")
st = m.stats()
out["ok"] = st["dir_count"] == 2 * DEPTH + 1 and st["file_count"] == 2
out["ok"] = out["ok"] and m.is_file(chain + "/copy" + "/a" * (DEPTH - 1) + "/f")
""",
    "rmtree": """
m.rmtree("/a")
st = m.stats()
out["ok"] = st["dir_count"] == 1 and st["file_count"] == 0 and st["used_bytes"] == 0
""",
    "glob": """
out["ok"] = (
    m.glob("/**/f") == [chain + "/f"]
    and m.glob("/**/*/f") == [chain + "/f"]
    and m.glob("/**/a/**/f") == [chain + "/f"]
    and m.glob("/a/**/nope") == []
)
""",
    "export_tree": """
out["ok"] = m.export_tree() == {chain + "/f": b"deep"}
out["ok"] = out["ok"] and list(m.iter_export_tree("/a")) == [(chain + "/f", b"deep")]
""",
    "rename": """
m.rename("/a", "/b")
out["ok"] = m.is_file("/b" + "/a" * (DEPTH - 1) + "/f") and not m.exists("/a")
""",
    "move": """
m.move("/a", "/x/y")
out["ok"] = m.is_file("/x/y" + "/a" * (DEPTH - 1) + "/f")
""",
    "rename_refused_while_open": """
with m.open(chain + "/f", "rb"):
    try:
        m.rename("/a", "/b")
    except BlockingIOError as e:
        out["ok"] = chain + "/f" in str(e)
""",
    "walk": """
n = 0
for top, dirs, files in m.walk("/"):
    n += 1
    last = (len(top), dirs, files)
out["ok"] = n == DEPTH + 1 and last == (len(chain), [], ["f"])
""",
    "remove": """
m.remove(chain + "/f")
out["ok"] = not m.exists(chain + "/f") and m.stats()["used_bytes"] == 0
""",
    "drop": """
del m
out["ok"] = True
""",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_deep_chain(case: str) -> None:
    proc = run_child(_PRELUDE + CASES[case] + _EPILOGUE, str(DEPTH), timeout=240)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.get("ok") is True, out
    assert out["rss_mb"] < MAX_RSS_MB, out


def test_glob_everything_costs_its_output() -> None:
    # `/**` on a chain returns every prefix: its output is quadratic in the depth by itself
    # (10,000 deep: 10^8 bytes of paths). Memory must stay a small multiple of that output.
    code = (
        _PRELUDE
        + """
g = m.glob("/**")
out["ok"] = len(g) == DEPTH + 1 and g[0] == "/a" and g[-2] == chain and g[-1] == chain + "/f"
out["output_mb"] = sum(map(len, g)) >> 20
"""
        + _EPILOGUE
    )
    out = json.loads(run_child(code, "10000", timeout=240).stdout.strip().splitlines()[-1])
    assert out.get("ok") is True, out
    assert out["rss_mb"] < 3 * out["output_mb"] + 200, out


def test_glob_with_many_double_stars_is_not_exponential() -> None:
    # Recursive matching tries every way to split the chain between the `**`s: C(200+12, 12)
    # ways here, which never finishes. Matching states per node finishes at once.
    code = (
        _PRELUDE
        + """
pattern = "/**" * 12 + "/f"
out["ok"] = m.glob(pattern) == [chain + "/f"] and m.glob("/**" * 12) == m.glob("/**")
"""
        + _EPILOGUE
    )
    out = json.loads(run_child(code, "200", timeout=120).stdout.strip().splitlines()[-1])
    assert out.get("ok") is True, out
