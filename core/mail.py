"""Outgoing mail: rendered from templates (plain text + HTML), sent by a background task.

A mail is the pair ``webui/templates/mail/<name>.txt`` and ``<name>.html``; the text template
sets its subject with ``{% set subject = "..." %}``. ``queue_mail`` hands it to the task queue;
the task renders it and delivers it through SMTP (aiosmtplib) when ``smtp_host`` is set, or
writes it as an ``.eml`` file to ``<data dir>/outbox/`` (embedded mode, or no SMTP configured).

Mails carry single-use links, so nothing here ever logs a body, a subject context or a link:
only the template name, the transport and the Message-ID.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import aiosmtplib
import structlog
from aiohttp import web

from multinotes.db import utcnow
from multinotes.keys import SETTINGS, TASKS
from multinotes.plugin_host import TaskDef
from multinotes.settings import Settings

log = structlog.get_logger(__name__)

MAIL_TASK = "core.send_mail"
#: Seconds to wait before each new attempt when the SMTP server fails (tests shorten these).
RETRY_DELAYS: tuple[float, ...] = (2.0, 10.0)
APP_NAME = "MultinotesAI"


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def render_mail(app: web.Application, template: str, context: dict[str, Any]) -> RenderedMail:
    """Render ``mail/<template>.txt`` and ``.html`` with the app's template environment."""
    env = aiohttp_jinja2.get_env(app)
    values = {"app_name": APP_NAME, **context}
    # Plain text is not HTML: escaping would turn "&" in a link into "&amp;".
    text_env = env.overlay(autoescape=False)
    text_module = text_env.get_template(f"mail/{template}.txt").make_module(values)
    subject = str(getattr(text_module, "subject", "") or APP_NAME)
    html = env.get_template(f"mail/{template}.html").render(values)
    return RenderedMail(subject=subject, text=str(text_module).strip() + "\n", html=html)


def build_message(settings: Settings, to: str, mail: RenderedMail) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = mail.subject
    message["From"] = settings.mail_from
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # no vacation replies to no-reply
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


async def deliver(settings: Settings, message: EmailMessage) -> str:
    """Send one message; returns the transport used ("smtp" or "outbox")."""
    if settings.smtp_host:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            use_tls=settings.smtp_tls,
            start_tls=settings.smtp_starttls,
            timeout=settings.smtp_timeout_seconds,
        )
        return "smtp"
    await asyncio.to_thread(write_outbox, settings.outbox_dir, message)
    return "outbox"


def write_outbox(folder: Path, message: EmailMessage) -> Path:
    """Write ``message`` as an .eml file; readers never see a half-written file."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # the links in there are credentials
    name = f"{utcnow():%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}.eml"
    path = folder / name
    partial = folder / f".{name}.part"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(message.as_bytes())
    os.replace(partial, path)
    return path


async def send_mail(
    app: web.Application, *, template: str, to: str, context: dict[str, Any]
) -> None:
    """Render and deliver one mail now, retrying a failing SMTP server a few times."""
    settings = app[SETTINGS]
    message = build_message(settings, to, render_mail(app, template, context))
    for attempt, delay in enumerate((*RETRY_DELAYS, None), start=1):
        try:
            transport = await deliver(settings, message)
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.warning(
                "mail_failed",
                template=template,
                message_id=message["Message-ID"],
                attempt=attempt,
                error=type(exc).__name__,
            )
            if delay is None:
                raise
            await asyncio.sleep(delay)
        else:
            log.info(
                "mail_sent",
                template=template,
                transport=transport,
                message_id=message["Message-ID"],
            )
            return


async def queue_mail(
    app: web.Application, *, template: str, to: str, context: dict[str, Any]
) -> None:
    """Send a mail from the background task queue. ``context`` must be JSON-serialisable and
    must not hold a secret (task arguments travel through the broker)."""
    await app[TASKS].enqueue(MAIL_TASK, template=template, to=to, context=context)


async def _send_mail_task(
    app: web.Application, *, template: str, to: str, context: dict[str, Any]
) -> None:
    await send_mail(app, template=template, to=to, context=context)


def mail_tasks() -> list[TaskDef]:
    return [TaskDef("core", MAIL_TASK, _send_mail_task, None)]
