"""Shared fixtures.

API tests take the ``api`` fixture and run twice: in embedded mode (SQLite file, in-process
everything) and in production mode (MariaDB and Redis over real connections). Production mode is
skipped locally when MariaDB or Redis is down, and is an error under CI (``CI=true``).

Connection settings: ``MULTINOTES_TEST_MYSQL`` (default ``root@127.0.0.1:3306``) and
``MULTINOTES_TEST_REDIS`` (default ``redis://127.0.0.1:6379/15``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from multinotes import outgoing
from multinotes.app import create_app
from multinotes.settings import Settings
from multinotes.testing import LOOPBACK_ALLOW, ApiClient, app_client, embedded_settings

# The logs of the whole session are scanned for every secret the tests used.
from tests.support.log_guard import (  # noqa: F401
    _log_guard_temp_dir,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)

MYSQL = os.environ.get("MULTINOTES_TEST_MYSQL", "root@127.0.0.1:3306")
REDIS = os.environ.get("MULTINOTES_TEST_REDIS", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
RUN_ID = f"{os.getpid()}{secrets.token_hex(2)}"
BUILTIN = "builtin"  # marker value: load the built-in plugins from entry points


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: sync playwright keeps an event loop running in the main thread for
    the rest of the session, which would stop later fixtures from running their own."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(autouse=True)
def _outgoing_to_fakes() -> Iterator[None]:
    """Outgoing requests may reach the loopback fakes, as ``embedded_settings`` allows: tests
    that call a provider without an app get the same policy as the apps, and a test that
    installs another one (or builds an app with other settings) does not leak it."""
    outgoing.install(outgoing.OutgoingPolicy.parse(LOOPBACK_ALLOW))
    yield
    outgoing.install(outgoing.OutgoingPolicy.parse(LOOPBACK_ALLOW))


def _mysql_parts() -> dict[str, Any]:
    userinfo, _, hostport = MYSQL.rpartition("@")
    user, _, password = userinfo.partition(":")
    host, _, port = hostport.partition(":")
    return {"user": user or "root", "password": password, "host": host, "port": int(port or 3306)}


def _services_available() -> str | None:
    try:
        import pymysql
        import redis

        pymysql.connect(**_mysql_parts(), connect_timeout=2).close()
        redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping()
    except Exception as exc:  # pragma: no cover - depends on the machine
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied for each test (migrating once is faster)."""
    from multinotes.db import create_engine
    from multinotes.migrations import upgrade

    path = tmp_path_factory.mktemp("template") / "multinotes.db"

    async def migrate() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    return path


@pytest.fixture(scope="session")
def production_services() -> Iterator[dict[str, str]]:
    """A fresh MariaDB database (migrated) and a Redis key prefix for this test run."""
    problem = _services_available()
    if problem:
        if IN_CI:
            pytest.fail(f"MariaDB/Redis are required under CI: {problem}")
        pytest.skip(f"MariaDB/Redis not reachable: {problem}")
    import pymysql

    from multinotes.db import create_engine
    from multinotes.migrations import upgrade

    name = f"multinotes_test_{RUN_ID}"
    parts = _mysql_parts()
    conn = pymysql.connect(**parts, autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    auth = parts["user"] + (f":{parts['password']}" if parts["password"] else "")
    url = f"mysql+aiomysql://{auth}@{parts['host']}:{parts['port']}/{name}?charset=utf8mb4"

    async def migrate() -> None:
        engine = create_engine(url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    try:
        yield {
            "database_url": url,
            "database": name,
            "redis_url": REDIS,
            "redis_prefix": f"mntest{RUN_ID}:",
        }
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"mntest{RUN_ID}:*"):
            client.delete(key)


def _reset_production(services: dict[str, str]) -> None:
    import pymysql
    import redis

    import multinotes.models_registry as registry
    from multinotes.db import Base

    registry.import_all_models()
    conn = pymysql.connect(**_mysql_parts(), database=services["database"], autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SET FOREIGN_KEY_CHECKS=0")
        for table in reversed(Base.metadata.sorted_tables):
            cur.execute(f"DELETE FROM `{table.name}`")
        # Plugins' tables (the webhooks plugin's) are on their own metadata: empty them too.
        cur.execute("SHOW TABLES")
        known = {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
        for (name,) in cur.fetchall():
            if name not in known:
                cur.execute(f"DELETE FROM `{name}`")
        cur.execute("SET FOREIGN_KEY_CHECKS=1")
    conn.close()
    client = redis.Redis.from_url(services["redis_url"])
    for key in client.scan_iter(services["redis_prefix"] + "*"):
        client.delete(key)


@pytest.fixture(params=["embedded", "production"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_settings(
    mode: str, tmp_path: Path, sqlite_template: Path, request: pytest.FixtureRequest
) -> Callable[..., Settings]:
    """Settings for the current mode; keyword arguments override fields."""
    services = request.getfixturevalue("production_services") if mode == "production" else None
    if services:
        _reset_production(services)
    else:
        shutil.copy(sqlite_template, tmp_path / "multinotes.db")

    def build(**overrides: Any) -> Settings:
        # INFO, as production logs: the session's log scan should see what operators see.
        values: dict[str, Any] = {"log_level": "INFO"}
        if services:
            values.update(
                mode="production",
                database_url=services["database_url"],
                redis_url=services["redis_url"],
                redis_prefix=services["redis_prefix"],
                allowed_hosts=["127.0.0.1", "localhost"],
                cookie_secure=False,  # the test server speaks plain HTTP
                task_poll_block_ms=100,  # the in-test worker stops within 0.1 s
            )
        values.update(overrides)
        return embedded_settings(tmp_path, **values)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def plugins() -> Any:
    """Which plugins the app under test loads; override in a test module to choose."""
    return BUILTIN


@pytest.fixture
async def api(settings: Settings, plugins: Any) -> AsyncIterator[ApiClient]:
    app = create_app(settings, plugins=None if plugins == BUILTIN else plugins)
    async with app_client(app) as client, worker_for(app):
        yield client


@contextlib.asynccontextmanager
async def worker_for(app: Any) -> AsyncIterator[None]:
    """In production mode background tasks go to Redis streams; consume them in this process
    while the test runs, as `multinotes worker` would. (Embedded mode runs them in-process.)

    A plain consume loop over ``broker.listen()`` handing each message to taskiq's receiver:
    taskiq's own listen() shuts down through a shielded wait on the pending stream read, which
    can hang a test's teardown; a cancelled loop cannot."""
    from concurrent.futures import ThreadPoolExecutor

    from taskiq.receiver import Receiver

    from multinotes.keys import SETTINGS, TASKS

    if not app[SETTINGS].is_production:
        yield
        return
    broker = app[TASKS].broker
    broker.is_worker_process = True
    running: set[asyncio.Task[Any]] = set()

    with ThreadPoolExecutor(max_workers=2) as executor:
        receiver = Receiver(broker=broker, executor=executor, max_async_tasks=20)

        async def consume() -> None:
            async for message in broker.listen():
                task = asyncio.create_task(receiver.callback(message=message, raise_err=False))
                running.add(task)
                task.add_done_callback(running.discard)

        consumer = asyncio.create_task(consume())
        # A stream read broken off by the app's shutdown is expected: not an error to log.
        consumer.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            yield
        finally:
            if running:
                await asyncio.wait(running, timeout=5)
            consumer.cancel()
            # Bounded: a stream read interrupted mid-flight must not hold up teardown.
            await asyncio.wait({consumer}, timeout=2)


@pytest.fixture
async def admin(api: ApiClient) -> ApiClient:
    """``api`` logged in as the install's first user (an admin)."""
    await api.register_admin()
    return api


@pytest.fixture
async def user(admin: ApiClient) -> ApiClient:
    """``admin`` with a verified address: someone who may send prompts. A test module whose
    user needs something else (another plugin switched on, no admin rights) overrides this."""
    await admin.mark_verified()
    return admin


@pytest.fixture
async def make_client(api: ApiClient) -> Callable[[], Any]:
    """Another client (its own cookies) against the same running app."""
    from aiohttp.test_utils import TestClient

    opened: list[TestClient] = []

    async def factory() -> ApiClient:
        client = TestClient(api.client.server)
        await client.start_server()
        opened.append(client)
        return ApiClient(client)

    yield factory
    for client in opened:
        await client.session.close()
