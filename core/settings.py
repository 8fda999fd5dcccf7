"""All settings in one pydantic-settings class, read from the environment and ``.env``.

Environment names are ``MULTINOTES_<FIELD>``; nested values use ``__``, so plugin settings are
bootstrapped as ``MULTINOTES_PLUGINS__<PLUGIN>__<FIELD>``.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Mode = Literal["embedded", "production"]

#: Values that ship in examples and docs; production refuses them.
KNOWN_WEAK_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development", "test"}


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of the app. Built once by the CLI (or a test) and handed to ``create_app``."""

    model_config = SettingsConfigDict(
        env_prefix="MULTINOTES_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        # Fields with an alias (outgoing_allow) still take their own name as an argument.
        validate_by_name=True,
    )

    mode: Mode = "embedded"
    debug: bool = False
    data_dir: Path = Path("multinotes-data")
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = Field(
        default=None, description="External base URL, e.g. https://notes.example.com"
    )

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Embedded default: a SQLite file in the data dir. "
        "Production: mysql+aiomysql://user:pass@host/db",
    )
    redis_url: str | None = Field(default=None, description="redis://host:6379/0 (production)")
    redis_prefix: str = "mn:"

    secret_key: SecretStr | None = Field(
        default=None,
        description="Master key: encrypts stored secrets. Embedded mode generates one in the data "
        "dir when unset.",
    )
    old_secret_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Previous master keys (comma separated), still accepted for decryption.",
    )

    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="IPs or CIDRs whose X-Forwarded-* headers are trusted."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cookie_secure: bool | None = Field(
        default=None, description="Secure flag on cookies; defaults to on in production."
    )
    session_max_age_days: int = 30
    session_idle_minutes: int = Field(
        default=14 * 24 * 60,
        description="A session unused for this long is logged out (the absolute limit is "
        "session_max_age_days).",
    )
    max_request_bytes: int = 10 * 1024 * 1024
    account_deletion_grace_days: int = Field(
        default=14,
        ge=0,
        description="Days between a user deleting their account (deactivated at once, with a "
        "mailed link to cancel) and the hard deletion of their data.",
    )
    data_export_expiry_days: int = Field(
        default=7, ge=1, description="Days a user's data export can be downloaded."
    )
    note_export_max_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1024,
        description="The largest file one export of notes (a note, a conversation, a folder's "
        "ZIP) may make; a larger one fails with a clear error and leaves no file.",
    )

    rate_limit_auth: str = "20/minute"
    rate_limit_api: str = "600/minute"
    rate_limit_generation: str = "60/minute"
    rate_limits_enabled: bool = True
    # Login, registration and password reset: per client IP and per target account (the email
    # address asked about, known or not), on top of the "auth" class above.
    rate_limit_login_ip: str = "200/hour"
    rate_limit_login_account: str = "30/hour"
    rate_limit_register_ip: str = "50/hour"
    rate_limit_register_account: str = "5/hour"
    rate_limit_reset_ip: str = "30/hour"
    rate_limit_reset_account: str = "5/hour"
    # Users an admin put on the "strict" tier get these instead of the classes' limits.
    rate_limit_strict_auth: str = "5/minute"
    rate_limit_strict_api: str = "60/minute"
    rate_limit_strict_generation: str = "5/minute"
    login_lockout_failures: int = Field(
        default=10,
        ge=1,
        description="Failed logins for one email address (known or not) that lock it ...",
    )
    login_lockout_window_seconds: int = Field(
        default=15 * 60, ge=1, description="... within this many seconds ..."
    )
    login_lockout_seconds: int = Field(
        default=15 * 60, ge=1, description="... for this many seconds."
    )
    password_hash_cost: Literal["standard", "test"] = Field(
        default="standard",
        description="Argon2 cost of new password hashes. `test` (the cheapest parameters) is "
        "for test suites only: production refuses to start with it.",
    )
    avatar_max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # Sharing with an address that has no account mails a stranger: limited per sharing account.
    invitations_per_day: int = Field(
        default=20,
        ge=0,
        description="Invitations (shares with addresses without an account) one account may "
        "send in 24 hours.",
    )
    invitations_per_day_trial: int = Field(
        default=5,
        ge=0,
        description="The same for an account on the free trial (it never bought credits).",
    )
    invitations_per_day_unverified: int = Field(
        default=3,
        ge=0,
        description="The same for an account whose own address is not verified yet.",
    )
    # Scheduled runs spend the owner's credits unattended: bounded in frequency and number.
    schedule_min_interval_minutes: int = Field(
        default=15,
        ge=1,
        description="The shortest time between two runs of a schedule (a cron expression that "
        "runs more often is refused).",
    )
    schedules_per_user: int = Field(
        default=50, ge=1, description="How many schedules one account may keep."
    )

    # Files: uploads are streamed to the storage backend; each user has a storage quota.
    max_upload_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1024, description="The largest file one upload may be."
    )
    max_upload_form_files: int = Field(
        default=10,
        ge=1,
        description="Files one upload form may carry (the page's upload without JavaScript); "
        "each is held to max_upload_bytes.",
    )
    default_storage_quota_bytes: int = Field(
        default=5 * 1024**3, ge=0, description="Storage per user until plans set another."
    )
    default_organisation_storage_quota_bytes: int = Field(
        default=50 * 1024**3,
        ge=0,
        description="Storage per organisation (its members' files in its space) until an "
        "administrator sets another for it.",
    )
    storage_backend: Literal["local", "s3"] = Field(
        default="local", description='"local": <data_dir>/files/; "s3": any S3-compatible store.'
    )
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None

    email_verification_required: bool | None = Field(
        default=None,
        description="Unverified accounts may log in but not generate. Default: required in "
        "production, not in embedded mode (so a newcomer can try the demo at once).",
    )
    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for outgoing mail. Unset: mails are written as .eml files to "
        "<data dir>/outbox/.",
    )
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: bool = Field(default=False, description="Implicit TLS (usually port 465).")
    smtp_starttls: bool | None = Field(
        default=None,
        description="Upgrade with STARTTLS: true requires it, false never, unset when offered.",
    )
    smtp_timeout_seconds: float = 30.0
    mail_from: str = Field(
        default="MultinotesAI <no-reply@localhost>", description="The From: of every mail."
    )

    oauth_google_client_id: str | None = Field(
        default=None,
        description="Sign in with Google: the OAuth client id. Google is offered once the id "
        "and secret are set; register <public_url>/api/auth/oauth/google/callback as its "
        "redirect URI.",
    )
    oauth_google_client_secret: SecretStr | None = None
    oauth_google_discovery_url: str = Field(
        default="https://accounts.google.com/.well-known/openid-configuration",
        description="OpenID Connect discovery document (any OIDC provider works here).",
    )
    oauth_facebook_client_id: str | None = Field(
        default=None,
        description="Sign in with Facebook: the app id. Offered once the id and secret are set; "
        "redirect URI <public_url>/api/auth/oauth/facebook/callback.",
    )
    oauth_facebook_client_secret: SecretStr | None = None
    oauth_facebook_auth_url: str = "https://www.facebook.com/v23.0/dialog/oauth"
    oauth_facebook_token_url: str = "https://graph.facebook.com/v23.0/oauth/access_token"
    oauth_facebook_graph_url: str = "https://graph.facebook.com/v23.0"

    outgoing_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        # MULTINOTES_OUTBOUND_ALLOW is the name issue #16 gave it; both are read.
        validation_alias=AliasChoices("multinotes_outgoing_allow", "multinotes_outbound_allow"),
        description="CIDRs and host names outgoing requests (providers, sign-in, S3, webhooks) "
        "may reach although they are internal, e.g. 127.0.0.1/32,10.0.0.0/8,ollama.internal. "
        "Everything else private, loopback, link-local (cloud metadata), CGNAT, multicast or "
        "unspecified is refused at connect time.",
    )
    outgoing_allow_private: bool | None = Field(
        default=None,
        description="Allow outgoing requests to loopback, private and CGNAT addresses (never "
        "link-local or metadata). Default: on in embedded mode (your own machine, e.g. a local "
        "Ollama), off in production.",
    )

    metrics_token: SecretStr | None = Field(
        default=None, description="When set, /metrics needs `Authorization: Bearer <token>`."
    )

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    sentry_dsn: SecretStr | None = Field(
        default=None,
        description="Report unexpected errors to Sentry (or a compatible service) at this DSN; "
        "unset: no error tracking.",
    )
    sentry_environment: str | None = Field(
        default=None, description="Environment tag of reported errors (default: the mode)."
    )
    sentry_traces_sample_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of requests traced for performance (0: none)."
    )

    task_poll_block_ms: int = Field(
        default=2000,
        ge=10,
        description="How long a worker's read of the task stream blocks "
        "(production); also how long a worker takes to notice it should stop.",
    )
    task_claim_idle_seconds: float = Field(
        default=30.0,
        ge=1,
        description="A task a worker took but has not renewed for this long (the worker was "
        "killed or hangs) is taken over by another worker (production). Live workers renew "
        "their tasks every third of it.",
    )
    task_stream_maxlen: int = Field(
        default=100_000,
        ge=1000,
        description="Upper bound (approximate) of the task stream in Redis; finished tasks are "
        "deleted at once, so only a backlog this long would lose its oldest tasks.",
    )
    worker_shutdown_grace_seconds: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM a worker stops taking tasks and lets running ones finish for "
        "this long, then hands the rest back to the queue (keep it under systemd's "
        "TimeoutStopSec).",
    )
    embedded_scheduler: bool = Field(
        default=True,
        description="Embedded mode: run the periodic tasks (sweeps, scheduled prompts, "
        "renewals) inside `multinotes serve`. Off only where something else runs them: tests "
        "that call the sweeps they check.",
    )
    heartbeat_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often workers and the scheduler report to Redis that they are alive; "
        "/readyz counts one as gone after three missed beats.",
    )
    ready_max_task_wait_seconds: float = Field(
        default=300.0,
        gt=0,
        description="/readyz fails when a task has waited this long without a worker taking it.",
    )
    provider_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Default time a provider has for its first chunk and "
        "between chunks (a provider's own `timeout` setting overrides it).",
    )

    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-plugin settings bootstrapped from MULTINOTES_PLUGINS__<PLUGIN>__<FIELD>.",
    )
    plugins_trace: bool = Field(
        default=False,
        description="Log every plugin hook call with the plugin, its duration and its result "
        "(`plugin_hook_call` at INFO): a tracing aid while writing or debugging a plugin.",
    )
    disable_plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Plugin names never to import (comma separated): the kill switch for a "
        "plugin that breaks startup. They are listed as blocked and cannot be enabled.",
    )
    shutdown_timeout: float = Field(
        default=600.0,
        ge=0,
        description="Seconds a stopping web process (SIGTERM) lets open requests, such as "
        "answers still streaming, run to their end; it takes no new connections meanwhile. "
        "The systemd units wait longer than this before they kill it.",
    )
    plugin_refresh_seconds: float = Field(
        default=5.0,
        description="Seconds between re-reads of plugin state (a fallback under "
        "pub/sub, and how CLI changes reach a running embedded server).",
    )

    @field_validator(
        "old_secret_keys",
        "allowed_hosts",
        "trusted_proxies",
        "cors_origins",
        "outgoing_allow",
        "disable_plugins",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("outgoing_allow")
    @classmethod
    def _outgoing_allow(cls, value: list[str]) -> list[str]:
        from multinotes.outgoing import OutgoingPolicy

        OutgoingPolicy.parse(value)
        return value

    # -- derived values -------------------------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.mode == "production"

    @property
    def secure_cookies(self) -> bool:
        return self.is_production if self.cookie_secure is None else self.cookie_secure

    @property
    def requires_email_verification(self) -> bool:
        if self.email_verification_required is None:
            return self.is_production
        return self.email_verification_required

    @property
    def max_upload_form_bytes(self) -> int:
        """The body limit of an upload form: its files, each at most max_upload_bytes."""
        return self.max_upload_bytes * self.max_upload_form_files

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'multinotes.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def master_keys(self) -> list[str]:
        """The master keys, newest first. Embedded mode creates one in the data dir if unset."""
        keys: list[str] = []
        if self.secret_key is not None:
            keys.append(self.secret_key.get_secret_value())
        else:
            keys.append(self._data_dir_secret())
        keys.extend(k.get_secret_value() for k in self.old_secret_keys)
        return keys

    def _data_dir_secret(self) -> str:
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        if self.is_production:
            from multinotes.errors import ConfigError

            raise ConfigError("MULTINOTES_SECRET_KEY must be set in production mode.")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(key + "\n")
        return key

    def plugin_values(self, plugin: str) -> dict[str, Any]:
        return dict(self.plugins.get(plugin.lower(), {}))
