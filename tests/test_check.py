"""`multinotes check` tries every dependency for real and says what to do about each failure.

Run as the operator runs it: the CLI in a subprocess, settings in the environment, against the
real MariaDB and Redis of the test run and the fake SMTP server.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _mysql_parts
from tests.fakes.smtp_server import FakeSMTP, free_port

pytestmark = pytest.mark.slow

STRONG = secrets.token_urlsafe(48)
DB_PASSWORD = "pw-" + secrets.token_hex(8)


def check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MULTINOTES_LOG_LEVEL": "ERROR"}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "multinotes.cli", "check"],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        cwd=cwd,
    )


def line(output: str, name: str) -> str:
    """The line of check ``name``."""
    found = [text for text in output.splitlines() if text.split(" ", 1)[-1].startswith(name + ":")]
    assert len(found) == 1, output
    return found[0]


@pytest.fixture(scope="module")
def smtp() -> Iterator[FakeSMTP]:
    server = FakeSMTP().start()
    yield server
    server.stop()


@pytest.fixture
def good(production_services, smtp, tmp_path) -> dict[str, str]:
    """A production configuration whose every dependency is up."""
    return {
        "MULTINOTES_MODE": "production",
        "MULTINOTES_SECRET_KEY": STRONG,
        "MULTINOTES_ALLOWED_HOSTS": "notes.example.com",
        "MULTINOTES_PUBLIC_URL": "https://notes.example.com",
        "MULTINOTES_TRUSTED_PROXIES": "127.0.0.1/32,::1/128",
        "MULTINOTES_DATABASE_URL": production_services["database_url"],
        "MULTINOTES_REDIS_URL": production_services["redis_url"],
        "MULTINOTES_SMTP_HOST": smtp.host,
        "MULTINOTES_SMTP_PORT": str(smtp.port),
        "MULTINOTES_DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A MariaDB database that exists but was never migrated."""
    import pymysql

    parts = _mysql_parts()
    name = f"multinotes_check_{secrets.token_hex(4)}"
    conn = pymysql.connect(**parts, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    auth = parts["user"] + (f":{parts['password']}" if parts["password"] else "")
    try:
        yield f"mysql+aiomysql://{auth}@{parts['host']}:{parts['port']}/{name}?charset=utf8mb4"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def test_a_production_setup_whose_dependencies_answer_is_ready(good, tmp_path):
    result = check(good, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "[PASS] database: connected to MySQL/MariaDB" in out
    assert "[PASS] schema: migrations applied" in out
    assert "[PASS] redis: Redis " in out
    assert f"[PASS] mail: the SMTP server at 127.0.0.1:{good['MULTINOTES_SMTP_PORT']}" in out
    assert f"[PASS] data_dir: the data folder {tmp_path / 'data'} is writable" in out
    assert "[PASS] trusted_proxies:" in out
    assert "[FAIL]" not in out
    assert out.rstrip().endswith("Ready for production.")
    # the probe file is gone again
    assert list((tmp_path / "data").iterdir()) == []


def unused_port() -> int:
    return free_port()


BROKEN = [
    (
        "unreachable MySQL port",
        lambda port: {
            "MULTINOTES_DATABASE_URL": f"mysql+aiomysql://mn:{DB_PASSWORD}@127.0.0.1:{port}/mn"
        },
        "database",
        "cannot connect to MySQL/MariaDB at 127.0.0.1:{port}/mn",
    ),
    (
        "a PostgreSQL URL",
        lambda port: {
            "MULTINOTES_DATABASE_URL": f"postgresql://mn:{DB_PASSWORD}@127.0.0.1:5432/mn"
        },
        "database",
        "postgresql is not supported: MultinotesAI runs on MySQL/MariaDB",
    ),
    (
        "MySQL without the async driver",
        lambda port: {"MULTINOTES_DATABASE_URL": f"mysql://mn:{DB_PASSWORD}@127.0.0.1/mn"},
        "database",
        "write the URL as mysql+aiomysql://",
    ),
    (
        "a database login that is refused",
        lambda port: {
            "MULTINOTES_DATABASE_URL": f"mysql+aiomysql://nobody_{port}:{DB_PASSWORD}"
            f"@{_mysql_parts()['host']}:{_mysql_parts()['port']}/mn"
        },
        "database",
        "refused the login",
    ),
    (
        "redis://nonsense",
        lambda port: {"MULTINOTES_REDIS_URL": "redis://nonsense"},
        "redis",
        "cannot connect to Redis at nonsense:6379",
    ),
    (
        "a Redis URL without a scheme",
        lambda port: {"MULTINOTES_REDIS_URL": "127.0.0.1:6379"},
        "redis",
        "is not a Redis URL",
    ),
    (
        "an unreachable Redis port",
        lambda port: {"MULTINOTES_REDIS_URL": f"redis://127.0.0.1:{port}/0"},
        "redis",
        "cannot connect to Redis at 127.0.0.1:{port}",
    ),
    (
        "no Redis at all",
        lambda port: {"MULTINOTES_REDIS_URL": ""},
        "redis",
        "MULTINOTES_REDIS_URL is not set",
    ),
    (
        "an unreachable SMTP server",
        lambda port: {"MULTINOTES_SMTP_HOST": "127.0.0.1", "MULTINOTES_SMTP_PORT": str(port)},
        "mail",
        "the SMTP server at 127.0.0.1:{port} failed at connect",
    ),
    (
        "no trusted proxies",
        lambda port: {"MULTINOTES_TRUSTED_PROXIES": ""},
        "trusted_proxies",
        "set it to the proxy's address, 127.0.0.1/32,::1/128",
    ),
]


@pytest.mark.parametrize("name, override, failing, advice", BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_dependency_fails_with_what_to_do(
    good, tmp_path, name, override, failing, advice
):
    port = unused_port()
    result = check(good | override(port), tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = line(result.stdout, failing)
    assert failed.startswith(f"[FAIL] {failing}:")
    assert advice.format(port=port) in failed
    assert "Ready for production." not in result.stdout
    assert DB_PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_an_unmigrated_database_fails_the_schema_check(good, tmp_path, empty_database):
    result = check(good | {"MULTINOTES_DATABASE_URL": empty_database}, tmp_path)
    assert result.returncode == 1
    assert line(result.stdout, "database").startswith("[PASS] database")
    schema = line(result.stdout, "schema")
    assert schema.startswith("[FAIL] schema:")
    assert "run `multinotes migrate`" in schema


def test_an_unwritable_data_dir_fails(good, tmp_path):
    # A folder below a regular file cannot be created, even by root.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = check(good | {"MULTINOTES_DATA_DIR": str(blocker / "data")}, tmp_path)
    assert result.returncode == 1
    failed = line(result.stdout, "data_dir")
    assert failed.startswith(f"[FAIL] data_dir: cannot write to the data folder {blocker / 'data'}")
    assert "MULTINOTES_DATA_DIR" in failed


def test_servers_that_never_answer_fail_within_the_timeout(good, tmp_path):
    with socket.socket() as smtp_port, socket.socket() as redis_port:
        for silent in (smtp_port, redis_port):
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)  # takes connections into the backlog, never says a word
        smtp, redis = smtp_port.getsockname()[1], redis_port.getsockname()[1]
        started = time.monotonic()
        result = check(
            good
            | {
                "MULTINOTES_SMTP_PORT": str(smtp),
                "MULTINOTES_REDIS_URL": f"redis://127.0.0.1:{redis}",
            },
            tmp_path,
        )
        took = time.monotonic() - started
    assert result.returncode == 1
    assert line(result.stdout, "mail").startswith(
        f"[FAIL] mail: the SMTP server at 127.0.0.1:{smtp}"
    )
    assert line(result.stdout, "redis").startswith(
        f"[FAIL] redis: cannot connect to Redis at 127.0.0.1:{redis}"
    )
    assert took < 30


def test_smtp_credentials_are_tried(good, tmp_path):
    server = FakeSMTP(username="mailer", password="right-" + secrets.token_hex(4)).start()
    try:
        base = good | {
            "MULTINOTES_SMTP_PORT": str(server.port),
            "MULTINOTES_SMTP_USERNAME": "mailer",
        }
        wrong = check(base | {"MULTINOTES_SMTP_PASSWORD": "wrong"}, tmp_path)
        right = check(base | {"MULTINOTES_SMTP_PASSWORD": server.password or ""}, tmp_path)
    finally:
        server.stop()
    assert wrong.returncode == 1
    assert "refused the login" in line(wrong.stdout, "mail")
    assert "MULTINOTES_SMTP_PASSWORD" in line(wrong.stdout, "mail")
    assert right.returncode == 0, right.stdout
    assert "accepts the login of mailer" in line(right.stdout, "mail")


@pytest.mark.parametrize(
    "override, failing",
    [
        ({"MULTINOTES_DEBUG": "true"}, "debug"),
        ({"MULTINOTES_SECRET_KEY": "changeme"}, "secret_key"),
        ({"MULTINOTES_SECRET_KEY": "a" * 64}, "secret_key"),
        ({"MULTINOTES_ALLOWED_HOSTS": "*"}, "allowed_hosts"),
        ({"MULTINOTES_CORS_ORIGINS": "*"}, "cors"),
        ({"MULTINOTES_COOKIE_SECURE": "false"}, "cookies"),
    ],
)
def test_each_settings_mistake_fails_a_ready_setup(good, tmp_path, override, failing):
    result = check(good | override, tmp_path)
    assert result.returncode == 1
    assert line(result.stdout, failing).startswith(f"[FAIL] {failing}:")


def test_invalid_settings_are_a_failed_check_not_a_traceback(tmp_path):
    result = check({"MULTINOTES_TRUSTED_PROXIES": "not-an-address"}, tmp_path)
    assert result.returncode == 1
    assert "[FAIL] settings:" in result.stdout
    assert "MULTINOTES_TRUSTED_PROXIES" in result.stdout
    assert "Traceback" not in result.stderr
