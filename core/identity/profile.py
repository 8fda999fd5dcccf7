"""Profile: name, timezone, avatar, and changing the email address.

Avatars: the upload is checked by its magic bytes (puremagic: PNG, JPEG, WebP or GIF only, never
by its name or declared type), limited in size and pixels, decoded and re-encoded by Pillow as a
fresh 256x256 PNG (no metadata, no trailing bytes: a polyglot does not survive), and stored in
``<data dir>/avatars/<random id>.png``. The URL carries that random id, not the owner's.

Email change: the password is needed; a single-use link (``user_tokens``, purpose
``change_email``, bound to the new address) is mailed to the new address, and the address only
changes when that link is opened. The old address is told when the change is asked for and when
it happens. As with the other mailed links, the token is made by the background task that sends
it: task arguments travel through the broker and must hold no secret.
"""

from __future__ import annotations

import asyncio
import functools
import io
import re
import secrets
import warnings
import zoneinfo
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import puremagic
import structlog
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from multinotes import audit
from multinotes.db import Database, utcnow
from multinotes.domain_events import stage
from multinotes.errors import Invalid, PayloadTooLarge
from multinotes.identity import service as identity
from multinotes.identity.account_mail import (
    email_verified,
    invalid_link,
    issue_mail_token,
    public_base_url,
    redeem_mail_token,
)
from multinotes.identity.devices import describe_user_agent
from multinotes.identity.models import User, UserToken
from multinotes.identity.passwords import verify_password_async
from multinotes.identity.service import normalize_email, token_hash
from multinotes.keys import DB, SETTINGS, TASKS
from multinotes.mail import queue_mail, send_mail
from multinotes.plugin_host import TaskDef
from multinotes.storage import objects

if TYPE_CHECKING:  # the schemas import this module for its defaults
    from multinotes.identity.schemas import ProfilePatch

log = structlog.get_logger(__name__)

DEFAULT_TIMEZONE = "UTC"

AVATAR_SIZE = 256
AVATAR_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif"}
PILLOW_FORMATS = {"PNG", "JPEG", "WEBP", "GIF"}
MAX_AVATAR_PIXELS = 40_000_000  # a decompression bomb is refused before it is decoded
AVATAR_ID = re.compile(r"^[0-9a-f]{32}$")

CHANGE_EMAIL = "change_email"
CHANGE_EMAIL_LIFETIME = timedelta(hours=24)
CHANGE_EMAIL_TASK = "core.send_email_change"
CHANGE_EMAIL_PATH = "/account/email/confirm"


# -- name, timezone -------------------------------------------------------------------------------


@functools.cache
def timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def timezone_problem(value: str) -> str | None:
    if value not in timezones():
        return "Choose a timezone from the list, e.g. Europe/Berlin or America/New_York."
    return None


async def update_profile(db: Database, user_id: str, changes: dict[str, Any]) -> User:
    """Apply already validated changes (name, timezone) and return the user."""
    if changes:
        async with db.transaction() as session:
            await session.execute(update(User).where(User.id == user_id).values(**changes))
    return await identity.get_user(db, user_id)


# -- avatar -------------------------------------------------------------------------------------


def avatar_key(avatar_id: str) -> str | None:
    """The avatar's key in the storage backend; None for anything but an avatar id."""
    if not AVATAR_ID.match(avatar_id):
        return None
    return objects.avatar_key(avatar_id)


def avatar_url(user: User) -> str | None:
    return f"/avatars/{user.avatar_id}.png" if user.avatar_id else None


def sniff_image(data: bytes) -> str | None:
    """The MIME type the content's magic bytes say, if it is one we take; else None."""
    try:
        matches = puremagic.magic_string(data)
    except puremagic.PureError:
        return None
    if not matches:
        return None
    best = str(matches[0].mime_type)  # puremagic lists the most confident match first
    return best if best in AVATAR_TYPES else None


def unsupported_image() -> Invalid:
    return Invalid(
        "Upload a PNG, JPEG, WebP or GIF image.",
        code="unsupported_image",
        fields={"avatar": "This file is not a PNG, JPEG, WebP or GIF image."},
    )


def reencode_avatar(data: bytes) -> bytes:
    """A fresh square PNG of the image's first frame: nothing of the upload but its pixels."""
    from PIL import Image, ImageOps  # Pillow (~2 MB) loads with the first avatar, not at start

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in PILLOW_FORMATS:
                    raise unsupported_image()
                if image.width * image.height > MAX_AVATAR_PIXELS:
                    raise Invalid(
                        "This image has too many pixels.",
                        code="image_too_large",
                        fields={"avatar": "Use an image under 40 megapixels."},
                    )
                image.seek(0)
                frame = ImageOps.exif_transpose(image.convert("RGBA"))
                square = ImageOps.fit(frame, (AVATAR_SIZE, AVATAR_SIZE), Image.Resampling.LANCZOS)
    except Invalid:
        raise
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ):
        raise Invalid(
            "This image could not be read.",
            code="unreadable_image",
            fields={"avatar": "The file is damaged or not really an image."},
        ) from None
    clean = Image.frombytes("RGBA", square.size, square.tobytes())  # no info, no profiles
    out = io.BytesIO()
    clean.save(out, "PNG", optimize=True)
    return out.getvalue()


async def set_avatar(app: web.Application, user_id: str, data: bytes) -> User:
    """Validate, re-encode and store an uploaded avatar; the previous one is removed."""
    settings = app[SETTINGS]
    if len(data) > settings.avatar_max_bytes:
        raise PayloadTooLarge(
            f"The avatar is larger than {settings.avatar_max_bytes // 1024} KiB.",
            code="avatar_too_large",
        )
    if not data or sniff_image(data) is None:
        raise unsupported_image()
    png = await asyncio.to_thread(reencode_avatar, data)
    avatar_id = secrets.token_hex(16)
    storage = objects.storage_of(app)
    await objects.put_bytes(storage, objects.avatar_key(avatar_id), png)
    user = await identity.get_user(app[DB], user_id)
    async with app[DB].transaction() as session:
        await session.execute(update(User).where(User.id == user_id).values(avatar_id=avatar_id))
    if user.avatar_id:
        await storage.delete(objects.avatar_key(user.avatar_id))
    user.avatar_id = avatar_id
    return user


async def remove_avatar(app: web.Application, user_id: str) -> bool:
    """Remove the avatar; False when there was none."""
    user = await identity.get_user(app[DB], user_id)
    if not user.avatar_id:
        return False
    async with app[DB].transaction() as session:
        await session.execute(update(User).where(User.id == user_id).values(avatar_id=None))
    await objects.storage_of(app).delete(objects.avatar_key(user.avatar_id))
    return True


# -- email change -------------------------------------------------------------------------------


def _email_taken(new_email: str) -> Invalid:
    return Invalid(
        "An account with this email already exists.",
        code="email_taken",
        fields={"new_email": "already registered"},
    )


async def request_email_change(
    request: web.Request, user_id: str, *, new_email: str, password: str
) -> str:
    """Check the password and the new address, then have a confirmation link mailed to it.
    Returns the normalised new address."""
    db = request.app[DB]
    user = await identity.get_user(db, user_id)
    if not await verify_password_async(user.password_hash, password):
        raise Invalid(
            "The password is wrong.",
            code="wrong_password",
            fields={"password": "This is not your current password."},
        )
    new_email = normalize_email(new_email)
    if new_email == user.email:
        raise Invalid(
            "That is already your email address.",
            fields={"new_email": "This is your current address."},
        )
    async with db.read() as session:
        if await session.scalar(select(User.id).where(User.email == new_email)) is not None:
            raise _email_taken(new_email)
    await request.app[TASKS].enqueue(
        CHANGE_EMAIL_TASK,
        user_id=user.id,
        new_email=new_email,
        base_url=public_base_url(request),
    )
    await audit.record(
        request.app,
        request,
        "profile.email_change_requested",
        target_type="user",
        target_id=user.id,
        details={"new_email": audit.mask_email(new_email)},
    )
    return new_email


async def send_email_change(
    app: web.Application, *, user_id: str, new_email: str, base_url: str
) -> None:
    """The task: mail the confirmation link to the new address and a notice to the old one."""
    db = app[DB]
    async with db.read() as session:
        user = await session.get(User, user_id)
    if user is None or not user.is_active:
        log.info("email_change_skipped", reason="no_active_account")
        return
    token = await issue_mail_token(
        db,
        user.id,
        CHANGE_EMAIL,
        email=new_email,
        lifetime=CHANGE_EMAIL_LIFETIME,
        replace_previous=True,
    )
    if token is None:
        log.info("email_change_skipped", reason="cooldown")
        return
    hours = int(CHANGE_EMAIL_LIFETIME.total_seconds() // 3600)
    await send_mail(
        app,
        template="change_email",
        to=new_email,
        context={
            "name": user.name,
            "email": new_email,
            "link": f"{base_url}{CHANGE_EMAIL_PATH}?token={token}",
            "hours": hours,
        },
    )
    await send_mail(
        app,
        template="email_change_notice",
        to=user.email,
        context={"name": user.name, "new_email": new_email, "done": False},
    )


async def confirm_email_change(request: web.Request, token: str) -> User:
    """Apply the change a mailed link stands for. The link works once, within its lifetime,
    while the account is active and the new address is still free."""
    db = request.app[DB]
    async with db.read() as session:
        row = (
            await session.execute(
                select(UserToken, User)
                .join(User, User.id == UserToken.user_id)
                .where(UserToken.token_hash == token_hash(token), UserToken.purpose == CHANGE_EMAIL)
            )
        ).first()
    if row is None:
        raise invalid_link()
    record, user = row[0], row[1]
    now = utcnow()
    if record.used_at is not None or record.expires_at <= now or not user.is_active:
        raise invalid_link()
    old_email = user.email
    try:
        async with db.transaction() as session:
            await redeem_mail_token(session, record.id, now)
            taken = await session.scalar(
                select(User.id).where(User.email == record.email, User.id != user.id)
            )
            if taken is not None:
                raise _email_taken(record.email)
            # Opening the link proves the new inbox: the new address is verified.
            await session.execute(
                update(User)
                .where(User.id == user.id)
                .values(email=record.email, email_verified_at=now)
            )
            stage(session, email_verified(user.id, record.email))
    except IntegrityError:
        raise _email_taken(record.email) from None
    user.email = record.email
    user.email_verified_at = now
    await queue_mail(
        request.app,
        template="email_change_notice",
        to=old_email,
        context={"name": user.name, "new_email": user.email, "done": True},
    )
    await audit.record(
        request.app,
        request,
        "profile.email_changed",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
        details={
            "old_email": audit.mask_email(old_email),
            "new_email": audit.mask_email(user.email),
        },
    )
    return user


def profile_tasks() -> list[TaskDef]:
    return [TaskDef("core", CHANGE_EMAIL_TASK, send_email_change, None)]


# -- shared by the API and the account page -------------------------------------------------

#: What a person may change about themselves. No interface language: the UI is English only, and
#: a setting that changed nothing was removed (users.language is no longer read or written).
PROFILE_FIELDS = ("name", "timezone")


async def apply_profile_patch(request: web.Request, user_id: str, body: ProfilePatch) -> User:
    """Store validated profile changes and audit which fields changed (the API and the page)."""
    changes = {
        name: getattr(body, name) for name in PROFILE_FIELDS if name in body.model_fields_set
    }
    user = await update_profile(request.app[DB], user_id, changes)
    if changes:
        await audit.record(
            request.app,
            request,
            "profile.updated",
            target_type="user",
            target_id=user_id,
            details={"fields": sorted(changes)},
        )
    return user


def email_change_message(new_email: str) -> str:
    return (
        f"We sent a link to {new_email}. Your address changes when you open it (within 24 hours)."
    )


def event_out(entry: audit.AuditEntry, user_id: str) -> dict[str, Any]:
    if entry.actor_id == user_id:
        who = "you"
    elif entry.actor_id is None:
        who = "someone"
    else:
        who = "administrator"
    return {
        "id": entry.id,
        "created_at": entry.created_at,
        "action": entry.action,
        "label": audit.label(entry.action),
        "actor": who,
        "ip": entry.ip,
        "device": describe_user_agent(entry.user_agent),
        "details": entry.details or {},
    }


async def security_events(
    app: web.Application, user_id: str, *, limit: int, before: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the security events of ``user_id``'s account, newest first, and the cursor
    of the next page."""
    entries = await audit.list_entries(app[DB], limit=limit + 1, before=before, subject=user_id)
    more = len(entries) > limit
    entries = entries[:limit]
    cursor = entries[-1].id if more and entries else None
    return [event_out(e, user_id) for e in entries], cursor
