"""Production readiness: what `multinotes check` reports and what production refuses to run with."""

from __future__ import annotations

from dataclasses import dataclass

from multinotes.settings import KNOWN_WEAK_SECRETS, Settings

MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: Fatal checks stop a production process from starting at all.
    fatal: bool = False


def _secret_strength(value: str | None) -> str | None:
    if value is None:
        return "MULTINOTES_SECRET_KEY is not set."
    if value.strip().lower() in KNOWN_WEAK_SECRETS or len(value) < MIN_SECRET_LENGTH:
        return (
            f"MULTINOTES_SECRET_KEY is weak: use `multinotes gen-secret` (at least "
            f"{MIN_SECRET_LENGTH} characters)."
        )
    if len(set(value)) < 10:
        return "MULTINOTES_SECRET_KEY is too repetitive: use `multinotes gen-secret`."
    return None


def _storage_check(settings: Settings) -> Check:
    if settings.storage_backend == "local":
        return Check(
            "storage", True, f"files are kept in {settings.data_dir / 'files'} on this machine"
        )
    missing = [
        f"MULTINOTES_{name.upper()}"
        for name in ("s3_endpoint_url", "s3_bucket", "s3_access_key", "s3_secret_key")
        if not getattr(settings, name)
    ]
    return Check(
        "storage",
        not missing,
        "storage_backend is s3 but these are unset: " + ", ".join(missing)
        if missing
        else f"files are kept in the S3 bucket {settings.s3_bucket} at {settings.s3_endpoint_url}",
        fatal=True,
    )


def production_checks(settings: Settings) -> list[Check]:
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    weak = _secret_strength(secret)
    hosts = settings.allowed_hosts
    return [
        Check("mode", settings.is_production, f"mode is {settings.mode!r} (want 'production')"),
        Check(
            "debug",
            not settings.debug,
            "debug is on" if settings.debug else "debug is off",
            fatal=True,
        ),
        Check("secret_key", weak is None, weak or "secret key is strong", fatal=True),
        Check(
            "password_hash_cost",
            settings.password_hash_cost == "standard",
            "passwords are hashed at the standard Argon2 cost"
            if settings.password_hash_cost == "standard"
            else "MULTINOTES_PASSWORD_HASH_COST is 'test', which is for test suites only: unset it",
        ),
        Check(
            "allowed_hosts",
            bool(hosts) and "*" not in hosts,
            "MULTINOTES_ALLOWED_HOSTS must list the host names served"
            if not hosts or "*" in hosts
            else f"allowed hosts: {', '.join(hosts)}",
        ),
        Check(
            "cors",
            "*" not in settings.cors_origins,
            "CORS allows any origin ('*')"
            if "*" in settings.cors_origins
            else "CORS allowlist is explicit",
        ),
        Check(
            "cookies",
            settings.secure_cookies,
            "cookies are Secure"
            if settings.secure_cookies
            else "cookies would travel over plain HTTP (MULTINOTES_COOKIE_SECURE=false)",
        ),
        Check(
            "database",
            not settings.is_sqlite,
            "SQLite is for embedded mode; set MULTINOTES_DATABASE_URL to MySQL/MariaDB"
            if settings.is_sqlite
            else "database is a server",
        ),
        Check(
            "redis",
            bool(settings.redis_url),
            "MULTINOTES_REDIS_URL is set"
            if settings.redis_url
            else "MULTINOTES_REDIS_URL is not set",
        ),
        Check(
            "mail",
            bool(settings.smtp_host),
            f"mail goes through {settings.smtp_host}"
            if settings.smtp_host
            else "MULTINOTES_SMTP_HOST is not set: verification and reset mails would only be "
            "written to the outbox folder",
        ),
        Check(
            "public_url",
            bool(settings.public_url),
            f"links in mails point to {settings.public_url}"
            if settings.public_url
            else "MULTINOTES_PUBLIC_URL is not set: links in mails would follow the Host header "
            "of the request that asked for them",
        ),
        _storage_check(settings),
    ]


def fatal_problems(settings: Settings) -> list[str]:
    if not settings.is_production:
        return []
    return [c.detail for c in production_checks(settings) if c.fatal and not c.ok]
