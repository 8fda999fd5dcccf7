"""Password hashes cost what the settings say: the standard Argon2 cost everywhere except test
suites, which choose the cheapest one through ``password_hash_cost``; production refuses it."""

from __future__ import annotations

import argparse

import pytest
from sqlalchemy import select

from multinotes.app import create_app
from multinotes.cli import load_settings
from multinotes.errors import ConfigError
from multinotes.keys import DB
from multinotes.models import User
from multinotes.readiness import production_checks
from multinotes.settings import Settings
from multinotes.testing import app_client, embedded_settings


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
