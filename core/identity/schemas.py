"""The request and response models of accounts, sessions and API keys, shared by the JSON API
(``multinotes.api``) and the pages (``multinotes.web``) so both validate the same way."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from multinotes.db import utcnow
from multinotes.identity import profile
from multinotes.identity import scopes as key_scopes
from multinotes.identity.devices import describe_user_agent
from multinotes.identity.models import ApiKey, AuthSession, User
from multinotes.identity.scopes import Scope


class RegisterIn(BaseModel):
    # Unknown fields (role, balance, ...) are rejected, never silently applied.
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=200)


class ForgotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[Scope] = Field(
        description="What the key can do now (admin only while its owner is an administrator)."
    )
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    expired: bool

    @classmethod
    def of(cls, record: ApiKey, role: str) -> KeyOut:
        expires_at = record.expires_at
        return cls(
            id=record.id,
            name=record.name,
            prefix=record.prefix,
            scopes=key_out_scopes(record, role),
            created_at=record.created_at,
            last_used_at=record.last_used_at,
            expires_at=expires_at,
            expired=expires_at is not None and expires_at <= utcnow(),
        )


def key_out_scopes(record: ApiKey, role: str) -> list[Scope]:
    held = key_scopes.effective(key_scopes.parse(record.scopes), role)
    return [s for s in key_scopes.SCOPES if s in held]


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime = Field(description="Refreshed at most every few minutes.")
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    device: str = Field(description="A short name for the browser, from its User-Agent.")
    current: bool = Field(description="The session making this request.")

    @classmethod
    def of(cls, record: AuthSession, current_id: str | None) -> SessionOut:
        return cls(
            id=record.id,
            created_at=record.created_at,
            last_seen_at=record.last_seen_at,
            expires_at=record.expires_at,
            ip=record.ip,
            user_agent=record.user_agent,
            device=describe_user_agent(record.user_agent),
            current=record.id == current_id,
        )


class ProfileOut(BaseModel):
    id: str
    email: str
    name: str
    role: str
    email_verified: bool = Field(
        description="Whether the address was confirmed through a mailed link. Installs that "
        "require it refuse to generate until it is (error code `email_unverified`)."
    )
    timezone: str = Field(description="An IANA timezone name, e.g. Europe/Berlin.")
    avatar_url: str | None = Field(description="A 256x256 PNG, or null.")
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> ProfileOut:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=user.role,
            email_verified=user.email_verified_at is not None,
            timezone=user.timezone or profile.DEFAULT_TIMEZONE,
            avatar_url=profile.avatar_url(user),
            created_at=user.created_at,
        )


class ProfilePatch(BaseModel):
    # Role, balance, email and anything else unknown is rejected, never silently applied.
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA name; null resets to UTC."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("A name cannot be empty.")
        value = value.strip()
        if not value:
            raise ValueError("A name cannot be empty.")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        problem = None if value is None else profile.timezone_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class EmailChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    new_email: EmailStr = Field(max_length=320)
    password: str = Field(min_length=1, max_length=256, description="Your current password.")
