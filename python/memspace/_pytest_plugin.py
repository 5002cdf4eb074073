"""D-MemFS's plugin path under memspace's name: ``pytest_plugins = ["memspace._pytest_plugin"]``.

D-MemFS documents ``pytest_plugins = ["dmemfs._pytest_plugin"]``; after the drop-in rename
(``dmemfs`` -> ``memspace``) that line must keep working, so this module is
:mod:`memspace.pytest_plugin` (the ``mfs`` fixture) under the underscored name.
"""

from __future__ import annotations

from memspace.pytest_plugin import mfs

__all__ = ["mfs"]
