"""Argon2id password hashing (argon2-cffi's defaults follow RFC 9106's recommendations) and
the rules a new password must meet.

``common-passwords.txt.gz`` is the list of ~20,000 most common passwords (compiled by Royce
Williams from breach corpora) that Django ships as ``django/contrib/auth/common-passwords.txt.gz``
under its BSD-3-Clause licence; one password a line, checked case-insensitively.
"""

from __future__ import annotations

import functools
import gzip
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

# A dummy hash to verify against when the email is unknown, so timing does not reveal it.
_DUMMY_HASH = _hasher.hash("not-a-real-password-just-for-timing")


def use_cost(cost: HashCost) -> None:
    """Hash new passwords at ``cost`` in this process (``create_app`` applies the
    ``password_hash_cost`` setting). Existing hashes verify whatever their parameters; a login
    re-hashes one made at another cost."""
    global _hasher, _DUMMY_HASH
    if _hasher is HASHERS[cost]:
        return
    _hasher = HASHERS[cost]
    _DUMMY_HASH = _hasher.hash("not-a-real-password-just-for-timing")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


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
