"""`multinotes check`: the settings checks of ``readiness`` plus the ones that connect.

Each dependency is tried for real, with a short timeout: the database (a supported URL, a
connection, the schema at the Alembic heads), Redis (a valid URL and a PING), the data folder
(a file written and removed), the SMTP server (connect and EHLO, and a login when credentials are
set) and, in production, the proxy trust setting. A failure says what to do about it. Nothing
here prints a password: URLs are shown without theirs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import Any

from multinotes.readiness import Check, production_checks
from multinotes.settings import Settings

#: Seconds each connection attempt may take before it counts as unreachable.
CONNECT_TIMEOUT = 5.0
MYSQL_URL_EXAMPLE = "mysql+aiomysql://multinotes:PASSWORD@127.0.0.1:3306/multinotes?charset=utf8mb4"
SUPPORTED_DRIVERS = {"mysql+aiomysql", "mariadb+aiomysql", "sqlite+aiosqlite"}


async def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order printed: the settings first, then each dependency."""
    static = production_checks(settings)

    async def nothing() -> None:
        return None

    # At the same time, so that several dead servers cost one timeout, not one each.
    (database, schema), redis, mail, data_dir = await asyncio.gather(
        _database_checks(settings),
        _redis_check(settings) if settings.is_production or settings.redis_url else nothing(),
        _smtp_check(settings) if settings.smtp_host else nothing(),
        asyncio.to_thread(_data_dir_check, settings.data_dir),
    )
    live = {check.name: check for check in (database, redis, mail) if check is not None}
    checks = [live.get(c.name, c) for c in static]
    if schema is not None:
        index = next(i for i, c in enumerate(checks) if c.name == "database") + 1
        checks.insert(index, schema)
    checks.append(data_dir)
    if settings.is_production:
        checks.append(_trusted_proxies_check(settings))
    return checks


# -- database -----------------------------------------------------------------------------------


def _unsupported_database(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return (
            "MULTINOTES_DATABASE_URL is not a database URL; set it to MySQL/MariaDB, e.g. "
            + MYSQL_URL_EXAMPLE
        )
    backend = parsed.get_backend_name()
    if parsed.drivername in SUPPORTED_DRIVERS:
        return None
    if backend in ("mysql", "mariadb"):
        return (
            f"the driver {parsed.drivername!r} is not supported (the app is async): write the "
            f"URL as mysql+aiomysql://..., e.g. {MYSQL_URL_EXAMPLE}"
        )
    if backend == "sqlite":
        return "write a SQLite URL as sqlite+aiosqlite:///path/to/multinotes.db"
    return (
        f"{backend} is not supported: MultinotesAI runs on MySQL/MariaDB in production (and "
        f"SQLite in embedded mode); set MULTINOTES_DATABASE_URL to e.g. {MYSQL_URL_EXAMPLE}"
    )


def _mysql_problem(exc: BaseException, where: str, database: str | None) -> str:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    orig = getattr(exc, "orig", None)
    if code is None and orig is not None and orig.args and isinstance(orig.args[0], int):
        code, exc = orig.args[0], orig
    message = str(exc.args[1]) if len(exc.args) > 1 else (str(exc) or type(exc).__name__)
    if code in (2003, 2005) or isinstance(exc, OSError | TimeoutError):
        return (
            f"cannot connect to MySQL/MariaDB at {where} ({message}): start the server "
            "(systemctl start mariadb) or correct the host and port in MULTINOTES_DATABASE_URL"
        )
    if code in (1044, 1045, 1698):  # access denied (to the server, or to that database)
        return (
            f"MySQL/MariaDB at {where} refused the login ({message}): correct the user and "
            "password in MULTINOTES_DATABASE_URL, or grant that user access"
        )
    if code == 1049:
        return (
            f"the database {database!r} does not exist at {where}: create it (CREATE DATABASE "
            f"`{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci) or correct its name "
            "in MULTINOTES_DATABASE_URL"
        )
    return f"cannot use the database at {where}: {message}"


def _applied_revisions(connection: Any) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(connection).get_current_heads())


def _schema_check(current: set[str], blocked: list[str]) -> Check:
    from multinotes.migrations import (
        installed_plugin_migrations,
        is_known,
        is_parkable,
        script_directory,
    )

    plugins = installed_plugin_migrations(blocked)
    script: Any = script_directory(plugins)
    if not current:
        return Check(
            "schema",
            False,
            "the database has no tables of this app (no migration applied): run "
            "`multinotes migrate`",
        )
    unknown = sorted(rev for rev in current if not is_known(script, rev))
    if any(not is_parkable(rev, plugins) for rev in unknown):
        return Check(
            "schema",
            False,
            f"the database is at revision {', '.join(unknown)}, which this version does not "
            "know (a newer release migrated it): install that release again, or restore a "
            "backup taken before the upgrade",
        )
    # A head of a plugin that is not installed now is parked by `multinotes migrate`.
    current = current - set(unknown)
    # What `multinotes migrate` would run from here. Feature areas branch off the core revision
    # and may depend on each other, so the version table need not list every head.
    pending = script._upgrade_revs("heads", tuple(sorted(current)))
    if pending:
        names = ", ".join(sorted(step.revision for step in pending))
        return Check(
            "schema",
            False,
            f"{len(pending)} migration(s) not applied ({names}): run `multinotes migrate`",
        )
    return Check("schema", True, f"migrations applied (revision {', '.join(sorted(current))})")


async def _database_checks(settings: Settings) -> tuple[Check | None, Check | None]:
    """The live database check and the schema check; (None, None) leaves the settings check."""
    if settings.is_sqlite and settings.database_url is None:
        return None, None  # embedded default; the settings check already says it is SQLite
    url = settings.effective_database_url
    problem = _unsupported_database(url)
    if problem:
        return Check("database", False, problem), None
    if settings.is_sqlite:
        return None, None
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    where = f"{parsed.host or 'localhost'}:{parsed.port or 3306}/{parsed.database or ''}"
    engine = create_async_engine(
        url, poolclass=NullPool, connect_args={"connect_timeout": int(CONNECT_TIMEOUT)}
    )
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT * 2), engine.connect() as connection:
            version = (await connection.exec_driver_sql("SELECT VERSION()")).scalar()
            current = await connection.run_sync(_applied_revisions)
    except Exception as exc:
        return Check("database", False, _mysql_problem(exc, where, parsed.database)), None
    finally:
        await engine.dispose()
    database = Check("database", True, f"connected to MySQL/MariaDB {version} at {where}")
    return database, await asyncio.to_thread(_schema_check, current, settings.disable_plugins)


# -- redis --------------------------------------------------------------------------------------


async def _redis_check(settings: Settings) -> Check:
    if not settings.redis_url:
        return Check(
            "redis",
            False,
            "MULTINOTES_REDIS_URL is not set: production needs Redis (rate limits, tasks, "
            "plugin switches); set it to e.g. redis://127.0.0.1:6379/0",
        )
    import redis.asyncio as redis
    from redis.exceptions import AuthenticationError, RedisError, ResponseError

    try:
        client: Any = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=CONNECT_TIMEOUT,
            retry_on_timeout=False,
        )
    except ValueError as exc:
        return Check(
            "redis",
            False,
            f"MULTINOTES_REDIS_URL is not a Redis URL ({exc}); write it as "
            "redis://[:password@]host:6379/0 (or rediss:// for TLS)",
        )
    kwargs = client.connection_pool.connection_kwargs
    where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT * 2):
            await client.ping()
            info = await client.info("server")
    except (AuthenticationError, ResponseError) as exc:
        detail = (
            f"Redis at {where} refused the connection ({exc}): put the password from "
            "redis.conf (requirepass) in MULTINOTES_REDIS_URL as redis://:PASSWORD@host:port/0"
        )
        return Check("redis", False, detail)
    except (RedisError, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        return Check(
            "redis",
            False,
            f"cannot connect to Redis at {where} ({reason}): start it (systemctl start "
            "redis-server) or correct the host and port in MULTINOTES_REDIS_URL",
        )
    finally:
        await client.aclose()
    version = info.get("redis_version", "?")
    return Check("redis", True, f"Redis {version} answers at {where}")


# -- data folder --------------------------------------------------------------------------------


def _data_dir_check(data_dir: Path) -> Check:
    folder = data_dir.resolve()
    probe = folder / f".check-{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        return Check(
            "data_dir",
            False,
            f"cannot write to the data folder {folder} ({exc.strerror or exc}): create it and "
            "give it to the user the app runs as (chown -R multinotes: <folder>), or set "
            "MULTINOTES_DATA_DIR to a writable folder",
        )
    return Check("data_dir", True, f"the data folder {folder} is writable")


# -- mail ---------------------------------------------------------------------------------------


async def _smtp_check(settings: Settings) -> Check:
    import aiosmtplib

    assert settings.smtp_host
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    smtp = aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        use_tls=settings.smtp_tls,
        start_tls=settings.smtp_starttls,
        timeout=min(CONNECT_TIMEOUT, settings.smtp_timeout_seconds),
    )
    step = "connect"
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT * 3):
            await smtp.connect()
            step = "EHLO"
            await smtp.ehlo()
            if settings.smtp_username:
                step = "login"
                secret = settings.smtp_password
                password = secret.get_secret_value() if secret else ""
                await smtp.login(settings.smtp_username, password)
            step = "QUIT"
            await smtp.quit()
    except aiosmtplib.SMTPAuthenticationError as exc:
        return Check(
            "mail",
            False,
            f"the SMTP server at {where} refused the login ({exc.code} {exc.message}): correct "
            "MULTINOTES_SMTP_USERNAME and MULTINOTES_SMTP_PASSWORD",
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        return Check(
            "mail",
            False,
            f"the SMTP server at {where} failed at {step} ({reason}): check "
            "MULTINOTES_SMTP_HOST and MULTINOTES_SMTP_PORT, MULTINOTES_SMTP_TLS (port 465) or "
            "MULTINOTES_SMTP_STARTTLS (587), and that this machine may reach it (firewall)",
        )
    finally:
        smtp.close()
    login = f" and accepts the login of {settings.smtp_username}" if settings.smtp_username else ""
    return Check("mail", True, f"the SMTP server at {where} answers EHLO{login}")


# -- proxies ------------------------------------------------------------------------------------


def _trusted_proxies_check(settings: Settings) -> Check:
    if settings.trusted_proxies:
        return Check(
            "trusted_proxies",
            True,
            f"X-Forwarded-* headers are believed from {', '.join(settings.trusted_proxies)}",
        )
    return Check(
        "trusted_proxies",
        False,
        "MULTINOTES_TRUSTED_PROXIES is not set: behind nginx every client would share nginx's "
        "address (one rate-limit bucket for everybody) and the app would not see https; set it "
        "to the proxy's address, 127.0.0.1/32,::1/128 when nginx runs on this machine",
    )
