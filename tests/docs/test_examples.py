"""Every Python example in README.md and docs/porting/*.md runs (issue #13 §2), so that a
documentation example can never break silently. (The README's Rust examples are compiled
and run as doctests of the core crate: `cargo test --doc`, see crates/memspace/src/lib.rs.)

How a page is run: its ```python blocks, in order, become one script (a reader runs them one
after the other, so a later block may use what an earlier one made), run in a fresh
interpreter with warnings as errors, in a temporary directory. Segment names the examples
use (a string literal given to create/open/remove/open_or_create) are replaced by names unique
to this test run, and `path="..."` literals by files in the temporary directory, so that runs
never collide; the segments are removed afterwards.

An HTML comment right before a block (blank lines between are fine) says how to run it:

    <!-- test: skip: the reason -->          not run (say why)
    <!-- test: needs dmemfs numpy -->        run only where these modules import
    <!-- test: warnings ok -->               may warn (whether it does depends on the machine)
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import memspace
import pytest

from tests.helpers import PREFIX

ROOT = Path(__file__).resolve().parents[2]
PORTING = ROOT / "docs" / "porting"
PAGES = [ROOT / "README.md", *sorted(PORTING.glob("*.md"))]

FENCE = re.compile(r"^```(\S*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*test:\s*(.*?)\s*-->\s*$")
SEGMENT_NAME = re.compile(
    r"""(?:\.(?:create|open|remove|open_or_create)\(\s*|\bname=)"(/[\w.-]+)\""""
)
PATH_ARG = re.compile(r'\bpath="([^"]+)"')


@dataclass
class Example:
    page: Path
    line: int  # of the first code line, 1-based
    code: str
    skip: str | None = None
    needs: list[str] = field(default_factory=list)
    warnings_ok: bool = False

    @property
    def where(self) -> str:
        return f"{rel(self.page)}:{self.line}"


def rel(page: Path) -> str:
    """`page` relative to the repository (or its name, for a page elsewhere)."""
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


def examples(page: Path) -> list[Example]:
    """The ```python blocks of `page`, with the directives written just before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Example] = []
    pending: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        d = DIRECTIVE.match(line)
        fence = FENCE.match(line)
        if d:
            pending.append(d.group(1))
        elif fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if fence.group(1) == "python":
                ex = Example(page, i + 2, "\n".join(lines[i + 1 : end]) + "\n")
                for p in pending:
                    if p.startswith("skip:"):
                        ex.skip = p.removeprefix("skip:").strip()
                    elif p.startswith("needs "):
                        ex.needs = p.removeprefix("needs ").split()
                    elif p == "warnings ok":
                        ex.warnings_ok = True
                    else:
                        raise AssertionError(f"{ex.where}: unknown test directive {p!r}")
                out.append(ex)
            pending = []
            i = end
        elif line.strip():
            pending = []
        i += 1
    return out


def importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def script_for(page: Path, tmp: Path) -> tuple[str, list[str], list[str]]:
    """The page's runnable examples as one script, with names and paths made unique; also
    the unique segment names it uses and the reasons of blocks left out."""
    runnable, left_out = [], []
    for ex in examples(page):
        missing = [m for m in ex.needs if not importable(m)]
        if ex.skip is not None:
            left_out.append(f"{ex.where}: {ex.skip}")
        elif missing:
            left_out.append(f"{ex.where}: needs {', '.join(missing)}")
        else:
            runnable.append(ex)
    text = "".join(ex.code for ex in runnable)
    tag = re.sub(r"\W", "", page.stem)[:12]
    found_names = sorted(set(SEGMENT_NAME.findall(text)))
    found_paths = sorted(set(PATH_ARG.findall(text)))
    names = {n: f"/{PREFIX}doc-{tag}-{n[1:]}" for n in found_names}
    paths = {p: str(tmp / f"{i}-{Path(p).name}") for i, p in enumerate(found_paths)}
    parts = []
    for ex in runnable:
        code = ex.code
        for old, new in names.items():
            code = code.replace(f'"{old}"', f'"{new}"')
        for old, new in paths.items():
            code = code.replace(f'path="{old}"', f'path="{new}"')
        if ex.warnings_ok:
            lines = code.splitlines(True)
            body = "".join(f"    {line}" if line.strip() else line for line in lines)
            code = (
                "import warnings as _doc_warnings\n"
                "with _doc_warnings.catch_warnings():\n"
                '    _doc_warnings.simplefilter("default")\n' + body
            )
        parts.append(f"# ---- {ex.where} ----\n{code}")
    return "".join(parts), list(names.values()), left_out


@pytest.mark.timeout(600)
@pytest.mark.parametrize("page", PAGES, ids=[rel(p) for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    script, names, left_out = script_for(page, tmp_path)
    assert script, f"{rel(page)} has no runnable Python example"
    path = tmp_path / f"{page.stem}_examples.py"
    path.write_text(script, encoding="utf-8")
    try:
        proc = subprocess.run(
            [sys.executable, "-W", "error", str(path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=540,
            check=False,
        )
    finally:
        for n in names:
            with contextlib.suppress(FileNotFoundError):
                memspace.SharedMemory.remove(n)
    if proc.returncode != 0:
        numbered = "\n".join(f"{i + 1:4} {line}" for i, line in enumerate(script.splitlines()))
        pytest.fail(
            f"the examples of {rel(page)} failed ({proc.returncode}); each block "
            f"starts with a '# ---- file:line ----' comment\n--- stderr:\n{proc.stderr}\n"
            f"--- stdout:\n{proc.stdout}\n--- script:\n{numbered}",
            pytrace=False,
        )
    for reason in left_out:
        print("not run:", reason)


def test_every_seed_has_a_porting_page() -> None:
    pages = {p.stem for p in PORTING.glob("*.md")}
    assert {"d-memfs", "mmap-ipc", "membridge", "blog-struct"} <= pages
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for stem in ("d-memfs", "mmap-ipc", "membridge", "blog-struct"):
        assert f"docs/porting/{stem}.md" in readme, f"the README does not link {stem}.md"


def test_directives_are_understood_and_skips_say_why() -> None:
    for page in PAGES:
        for ex in examples(page):
            assert ex.skip is None or len(ex.skip) > 10, f"{ex.where}: say why it is skipped"
            assert "memspace" in ex.code or ex.needs or ex.skip, (
                f"{ex.where}: an example that does not use memspace should say what it needs"
            )


def test_the_runner_finds_names_and_directives(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- test: skip: shows a syntax error on purpose -->\n\n```python\nx = (\n```\n"
        '```python\nq = memspace.Queue.create("/jobs", 4096)\n'
        'r = memspace.Ring.create(path="/tmp/ring", capacity=4096)\n```\n'
        "<!-- test: needs no_such_module_here -->\n```python\nimport no_such_module_here\n```\n"
        "```sh\nls\n```\n",
        encoding="utf-8",
    )
    exs = examples(page)
    assert [e.line for e in exs] == [6, 9, 14]
    assert exs[0].skip == "shows a syntax error on purpose"
    assert exs[2].needs == ["no_such_module_here"]
    script, names, left_out = script_for(page, tmp_path)
    assert names == [f"/{PREFIX}doc-page-jobs"]
    assert f'"/{PREFIX}doc-page-jobs"' in script
    assert f'path="{tmp_path}/0-ring"' in script
    assert "x = (" not in script
    assert "no_such_module_here" not in script
    assert len(left_out) == 2
