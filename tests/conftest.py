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
from tests.support.own_redis import OwnRedis, own_redis

MYSQL = os.environ.get("MULTINOTES_TEST_MYSQL", "root@127.0.0.1:3306")
REDIS = os.environ.get("MULTINOTES_TEST_REDIS", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
RUN_ID = f"{os.getpid()}{secrets.token_hex(2)}"
BUILTIN = "builtin"  # marker value: load the built-in plugins from entry points


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` runs two workers per core: most of a test's time is spent waiting (on a
    browser, a server process, MariaDB, Redis, a fake provider's pacing), so one worker per core
    left the cores half idle (a sample of 387 tests used 0.6 CPU-seconds per test against 1.6
    worker-seconds). ``MULTINOTES_TEST_WORKERS`` sets the count outright."""
    wanted = os.environ.get("MULTINOTES_TEST_WORKERS", "")
    if wanted.isdigit() and int(wanted) > 0:
        return int(wanted)
    return 2 * (os.cpu_count() or 1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: sync playwright keeps an event loop running in the main thread for
    the rest of the session, which would stop later fixtures from running their own.

    Within each group the tests marked ``long`` (a minute or more) go first, and xdist hands out
    one test at a time (``--maxschedchunk=1`` in pyproject.toml): a long test that started near
    the end kept its worker busy for minutes after the others had run out of work."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("browser") is not None,
            item.get_closest_marker("long") is None,
        )
    )


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
    return {
        "user": user or "root",
        "password": password,
        "host": host,
        "port": int(port or 3306),
        # PyMySQL otherwise builds a TLS context (reading the system's CA bundle, ~0.1 s) for
        # every connection; the app's own driver (aiomysql) speaks plain TCP to it as well.
        "ssl_disabled": True,
    }


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
        _close_reset_connection()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
        import redis

        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(f"mntest{RUN_ID}:*"):
            client.delete(key)


#: This process's connection to the test database for resets, kept between tests (a new
#: connection per test costs more than the emptying it is for): (database, connection).
_reset_connection: tuple[str, Any] | None = None


def _reset_cursor(database: str) -> Any:
    global _reset_connection
    import pymysql

    if _reset_connection is not None and _reset_connection[0] == database:
        try:
            _reset_connection[1].ping(reconnect=False)
        except pymysql.err.Error:  # the server restarted or dropped it: a new one
            _close_reset_connection()
    if _reset_connection is None or _reset_connection[0] != database:
        _close_reset_connection()
        conn = pymysql.connect(**_mysql_parts(), database=database, autocommit=True)
        _reset_connection = (database, conn)
    return _reset_connection[1].cursor()


def _close_reset_connection() -> None:
    global _reset_connection
    if _reset_connection is not None:
        with contextlib.suppress(Exception):
            _reset_connection[1].close()
        _reset_connection = None


def _reset_production(services: dict[str, str]) -> None:
    """Empty every table of the test database (the core's and plugins' own, like the webhooks
    plugin's; only Alembic's version table stays) and the run's Redis keys. One query finds
    the tables that hold rows; only those are emptied."""
    import redis

    with _reset_cursor(services["database"]) as cur:
        cur.execute("SHOW TABLES")
        tables = [name for (name,) in cur.fetchall() if name != "alembic_version"]
        if tables:
            cur.execute("SELECT " + ", ".join(f"EXISTS(SELECT 1 FROM `{t}`)" for t in tables))
            filled = [table for table, rows in zip(tables, cur.fetchone(), strict=True) if rows]
        else:
            filled = []
        if filled:
            cur.execute("SET FOREIGN_KEY_CHECKS=0")
            try:
                for table in filled:
                    cur.execute(f"DELETE FROM `{table}`")
            finally:
                cur.execute("SET FOREIGN_KEY_CHECKS=1")
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
def redis_server(tmp_path: Path) -> Iterator[OwnRedis]:
    """A private redis-server, for a test that stops, restarts or flushes Redis (never the
    shared one); killed after the test."""
    with own_redis(tmp_path / "redis") as server:
        yield server


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
