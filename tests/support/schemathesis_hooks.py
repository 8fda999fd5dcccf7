"""Schemathesis hooks for tests/test_api_fuzz.py (loaded through ``SCHEMATHESIS_HOOKS``).

The fuzzer follows links: it reads ``GET /api/sessions`` and then deletes what it found, which
would log out the very session (or revoke the very key) the run authenticates with, and every
later request would only test the 401. The ids named in ``MN_FUZZ_PROTECTED_IDS`` (the run's
own session, key and user) are swapped for an id of nothing before a request goes out.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

NO_SUCH_ID = "0" * 32


def _protected() -> frozenset[str]:
    return frozenset(filter(None, os.environ.get("MN_FUZZ_PROTECTED_IDS", "").split(",")))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    protected = _protected()
    params = case.path_parameters or {}
    for name, value in list(params.items()):
        if str(value) in protected:
            params[name] = NO_SUCH_ID
