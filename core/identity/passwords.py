"""Argon2id password hashing (argon2-cffi's defaults follow RFC 9106's recommendations) and
the rules a new password must meet.

``common-passwords.txt.gz`` is the list of ~20,000 most common passwords (compiled by Royce
Williams from breach corpora) that Django ships as ``django/contrib/auth/common-passwords.txt.gz``
under its BSD-3-Clause licence; one password a line, checked case-insensitively.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

HashCost = Literal["standard", "test"]

#: ``standard``: argon2-cffi's defaults (RFC 9106's low-memory profile, 64 MiB, 3 passes).
#: ``test``: the cheapest parameters argon2 takes, for test suites only; production refuses it.
HASHERS: dict[HashCost, PasswordHasher] = {
    "standard": PasswordHasher(),
    "test": PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
}

_hasher = HASHERS["standard"]

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt.gz")
MIN_LENGTH = 10
MAX_LENGTH = 256

# Dummy hashes (one per cost) to verify against when the email is unknown, so timing does not
# reveal it. Made when an app chooses its cost (``use_cost``), not at import: every process
# that imports this module (each CLI command, each test worker) paid a full-cost hash.
_DUMMY_HASHES: dict[int, str] = {}


def _dummy_hash() -> str:
    key = id(_hasher)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = _hasher.hash("not-a-real-password-just-for-timing")
    return _DUMMY_HASHES[key]


def use_cost(cost: HashCost) -> None:
    """Hash new passwords at ``cost`` in this process (``create_app`` applies the
    ``password_hash_cost`` setting). Existing hashes verify whatever their parameters; a login
    re-hashes one made at another cost."""
    global _hasher
    _hasher = HASHERS[cost]
    _dummy_hash()  # now, so the first login with an unknown email takes no longer than others


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        checked = _hasher.verify(password_hash or _dummy_hash(), password)
        return checked and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


#: Hashes computed at once in a process. Each takes ~180 ms of CPU and 64 MiB at the standard
#: cost, so a burst of sign-ins given every thread it asks for would starve the event loop of
#: its share of the cores (and fill the default executor, which DNS look-ups, file I/O and mail
#: share): they queue here instead, and pages and answers keep being served.
HASHING_THREADS = max(1, (os.cpu_count() or 2) // 2)
_hashing: ThreadPoolExecutor | None = None


def _hashing_pool() -> ThreadPoolExecutor:
    global _hashing
    if _hashing is None:  # made on first use: a process that never hashes starts no thread
        _hashing = ThreadPoolExecutor(HASHING_THREADS, thread_name_prefix="password-hash")
    return _hashing


async def hash_password_async(password: str) -> str:
    """``hash_password`` off the event loop, in the hashing pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hashing_pool(), hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """``verify_password`` off the event loop, in the hashing pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hashing_pool(), verify_password, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@functools.cache
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines if line.strip())


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    lowered = password.lower()
    local = email.split("@")[0].lower()
    if local and len(local) >= 4 and local in lowered:
        return "Do not use your email address in the password."
    if len(set(password)) < 4:
        return "Use a less repetitive password."
    if lowered in common_passwords():
        return "This password is one of the most common ones. Choose one that is hard to guess."
    return None
