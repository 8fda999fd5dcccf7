"""Tools the deploy tests need from the machine: skipped locally when missing, an error under
CI (like MariaDB and Redis in tests/conftest.py)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import IN_CI


def need(tool: str, package: str) -> str:
    path = shutil.which(tool) or next(
        (p for p in (f"/usr/sbin/{tool}", f"/usr/bin/{tool}") if os.path.exists(p)), None
    )
    if path is None:
        message = f"{tool} is not installed (Debian: apt-get install {package})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path
