"""Password hashes cost what the settings say: the standard Argon2 cost everywhere except test
suites, which choose the cheapest one through ``password_hash_cost``; production refuses it."""

from __future__ import annotations

import argparse
import asyncio

import pytest
from sqlalchemy import select

from multinotes.app import create_app
from multinotes.cli import load_settings
from multinotes.errors import ConfigError
from multinotes.identity import passwords
from multinotes.keys import DB
from multinotes.models import User
from multinotes.readiness import production_checks
from multinotes.settings import Settings
from multinotes.testing import app_client, embedded_settings
from tests.support.waiting import eventually


async def _hash_of_new_user(settings: Settings) -> str:
    async with app_client(create_app(settings, plugins=[])) as api:
        await api.register_and_login("cost@example.com")
        async with api.app[DB].read() as session:
            found = await session.scalar(select(User.password_hash))
    assert found is not None
    return found


async def test_the_settings_tests_build_hash_at_the_cheap_cost(tmp_path):
    assert embedded_settings(tmp_path).password_hash_cost == "test"
    assert "m=8,t=1,p=1" in await _hash_of_new_user(embedded_settings(tmp_path))


async def test_standard_cost_is_argon2s_default(tmp_path):
    assert Settings(_env_file=None).password_hash_cost == "standard"
    settings = embedded_settings(tmp_path, password_hash_cost="standard")
    assert "m=65536,t=3,p=4" in await _hash_of_new_user(settings)


def test_production_refuses_the_test_cost(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTINOTES_MODE", "production")
    monkeypatch.setenv("MULTINOTES_PASSWORD_HASH_COST", "test")
    monkeypatch.setenv("MULTINOTES_SECRET_KEY", "x7Rk2pQ9vL4mN8sT1wY6zB3cF5hJ0dG-aE_uI")
    args = argparse.Namespace(host=None, port=None, data_dir=tmp_path)
    with pytest.raises(ConfigError, match="MULTINOTES_PASSWORD_HASH_COST"):
        load_settings(args)
    checks = {c.name: c for c in production_checks(Settings(_env_file=None))}
    assert not checks["password_hash_cost"].ok

    monkeypatch.setenv("MULTINOTES_PASSWORD_HASH_COST", "standard")
    assert load_settings(args).password_hash_cost == "standard"


async def test_hashing_runs_beside_the_event_loop_not_on_it(tmp_path, monkeypatch):
    """A standard hash costs ~180 ms of CPU: signing up, logging in and changing a password
    hash in a worker thread, so the process keeps answering everyone else meanwhile (on the
    loop, 1,000 people signing in stalled every request of the process: bench_users.py)."""
    import threading

    loop_thread = threading.get_ident()
    threads: dict[str, set[int]] = {"hash": set(), "verify": set()}
    hash_password, verify_password = passwords.hash_password, passwords.verify_password

    def hashing(password: str) -> str:
        threads["hash"].add(threading.get_ident())
        return hash_password(password)

    def verifying(password_hash: str | None, password: str) -> bool:
        threads["verify"].add(threading.get_ident())
        return verify_password(password_hash, password)

    monkeypatch.setattr(passwords, "hash_password", hashing)
    monkeypatch.setattr(passwords, "verify_password", verifying)
    async with app_client(create_app(embedded_settings(tmp_path), plugins=[])) as api:
        await api.register_and_login("threads@example.com")
    assert threads["hash"] and threads["verify"], threads
    assert loop_thread not in threads["hash"] | threads["verify"], threads


async def test_a_burst_of_sign_ins_waits_its_turn_and_leaves_other_threads_free(monkeypatch):
    """Hashes run in a pool of their own, ``HASHING_THREADS`` at a time: a burst of sign-ins
    queues there instead of taking every thread of the default executor (which DNS look-ups,
    file I/O and mail share) and more cores than the event loop can spare. Under
    bench_users.py's sign-in ramp, answers stalled for a minute while argon2 filled them."""
    import threading

    release = threading.Event()
    lock = threading.Lock()
    running, most = 0, 0

    def held_verify(password_hash: str | None, password: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(30)
        with lock:
            running -= 1
        return True

    monkeypatch.setattr(passwords, "verify_password", held_verify)
    burst = [
        asyncio.create_task(passwords.verify_password_async("h", "p"))
        for _ in range(passwords.HASHING_THREADS + 8)
    ]
    try:
        await eventually(lambda: running == passwords.HASHING_THREADS, timeout=10)
        # Every hashing thread is busy, and the default executor still runs work at once.
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "free"), 10) == "free"
    finally:
        release.set()
    assert all(await asyncio.gather(*burst))
    assert most == passwords.HASHING_THREADS
