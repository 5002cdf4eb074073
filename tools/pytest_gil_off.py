"""pytest plugin for `make test-free-threaded`: the run fails unless the interpreter is a
free-threaded build whose GIL is still off when the session ends (an extension module without
free-threading support, imported by any test, would have turned it back on)."""

from __future__ import annotations

import sys
import sysconfig

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        raise pytest.UsageError("tools.pytest_gil_off needs a free-threaded (3.13t) interpreter")


def pytest_report_header(config: pytest.Config) -> str:
    return f"free-threaded build, GIL enabled: {sys._is_gil_enabled()}"  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if sys._is_gil_enabled():  # type: ignore[attr-defined]
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\nthe GIL was enabled during the run: a module without free-threading support")
