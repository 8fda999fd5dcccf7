"""The legal pages: privacy policy, terms of service and cookie policy.

Admins edit them as Markdown (``app_settings`` keys ``legal.<doc>``); until they do, a default text
describes what this software actually does. Pages render them with ``render_markdown`` (sanitised
HTML), so even an admin's text cannot run script in a visitor's browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from multinotes.app_settings import AppSetting, set_setting
from multinotes.db import Database
from multinotes.errors import NotFound
from multinotes.markdown import render_markdown
from multinotes.settings import Settings

DOCUMENTS: dict[str, str] = {
    "privacy": "Privacy policy",
    "terms": "Terms of service",
    "cookies": "Cookie policy",
}
MAX_LENGTH = 100_000


def setting_key(doc: str) -> str:
    return f"legal.{doc}"


@dataclass(frozen=True)
class LegalDocument:
    doc: str
    title: str
    markdown: str
    html: str
    is_default: bool
    updated_at: datetime | None


def check_doc(doc: str) -> str:
    if doc not in DOCUMENTS:
        raise NotFound("No such page.")
    return doc


async def legal_document(db: Database, settings: Settings, doc: str) -> LegalDocument:
    check_doc(doc)
    async with db.read() as session:
        row = await session.scalar(select(AppSetting).where(AppSetting.key == setting_key(doc)))
    text = row.value if row is not None and isinstance(row.value, str) and row.value else None
    markdown = text if text is not None else default_text(doc, settings)
    return LegalDocument(
        doc=doc,
        title=DOCUMENTS[doc],
        markdown=markdown,
        html=render_markdown(markdown),
        is_default=text is None,
        updated_at=row.updated_at if text is not None and row is not None else None,
    )


async def save_legal_text(db: Database, doc: str, markdown: str) -> None:
    """Store an admin's text; an empty text brings the default back."""
    check_doc(doc)
    await set_setting(db, setting_key(doc), markdown.strip() or None)


def default_text(doc: str, settings: Settings) -> str:
    return DEFAULTS[doc].format(
        grace_days=settings.account_deletion_grace_days,
        export_days=settings.data_export_expiry_days,
        session_days=settings.session_max_age_days,
    )


PRIVACY = """\
# Privacy policy

This service runs MultinotesAI, a workspace for sending prompts to AI models, keeping their
answers and paying for usage with credits. This page says what it stores about you, why, for how
long, and what you can do about it. The operator of this site is responsible for your data;
contact its administrators with any question.

## What we store

- **Your account**: name, email address, a hash of your password (never the password itself),
  timezone and your avatar if you upload one. If you sign in with Google or Facebook,
  we keep the account id the provider gives us and the email address it reports.
- **Sessions**: for each browser you are logged in on, its IP address, a description of the
  browser (User-Agent) and when it was last used. API keys are stored only as a hash.
- **Your work**: conversations, your prompts and attachments, the answers of the models, the
  images and audio they produce, the options you chose, token usage, cost and timing, and your
  ratings of answers.
- **Credits**: your balance and every movement of credits (trial, usage, purchases,
  adjustments).
- **Security events**: logins, failed logins, password and email changes, API keys created or
  revoked, with the IP address and browser they came from. You can see yours on your account
  page.
- **Server logs**: requests (path, status, time, IP address) to operate and protect the service.
  Logs never contain passwords, session tokens or API keys.

## Who else receives your data

When you send a prompt, it goes, with its attachments and the earlier messages of the
conversation, to the providers of the models you chose (for example OpenAI, Google or Together
AI). Their own terms and privacy policies apply to what they receive. Mail (verification links,
password resets, notices) goes through the mail server of this site.

We do not sell your data, show ads, or use analytics or tracking services.

## How long we keep it

As long as your account exists. Sessions end after {session_days} days at most; data exports are
deleted after {export_days} days. When you delete your account, it stops working at once and is
deleted for good {grace_days} days later (you can cancel until then with the link we mail you):
everything you stored goes, except the record of credit movements, which is kept without your
name or email address for accounting, and security events, kept without anything that identifies
you.

## Your rights

- **See and download** everything we hold about you: *Account → Privacy → Download your data*.
- **Correct** your name, email address and other details on your account page.
- **Delete** your account: *Account → Privacy → Delete your account*.
"""

TERMS = """\
# Terms of service

By creating an account you accept these terms.

## Your account

Keep your password and API keys secret; you are responsible for what is done with them. You must
give a working email address. One person, one account, unless the operator agreed otherwise.

## Using the service

You may send prompts to the AI models offered here and keep their answers. Do not use the service
to break the law, to harm others, to attack the service or other people's accounts, or against
the terms of the model providers. Answers of AI models can be wrong: check them before relying
on them.

## Your content

What you write and what you generate stays yours. You allow the service to store it, process it
and send it to the model providers you choose, only to provide the service to you.

## Credits

Usage is paid for with credits. Each answer costs what the model's price says for the tokens,
images or audio it used; the cost is reserved before the model is called and settled to the real
cost afterwards. Trial credits may expire.

## Ending

You can delete your account at any time (see the privacy policy). The operator may suspend an
account that breaks these terms.

## No warranty

The service is provided as it is, without warranty; within what the law allows, the operator is
not liable for indirect damage.
"""

COOKIES = """\
# Cookie policy

This site uses only the cookies it needs to work. There are no advertising, analytics or
tracking cookies, and no cookies of other companies, so there is nothing to consent to.

- **`mn_session`** (`__Host-mn_session` over HTTPS) keeps you logged in. It holds a random
  token; the server stores only its hash. It lasts until you log out, or {session_days} days at
  most.
- **`mn_flash`** carries a one-time message ("Your password was changed") to the next page
  after a form. It lasts 60 seconds, or until the message is shown.
- **`mn_oauth`** (`__Secure-mn_oauth` over HTTPS) ties a Google or Facebook sign-in to the
  browser that started it. It is set only while you sign in with them, for 10 minutes.
- **`mn_webhook_secret`** carries the signing secret of a webhook you just added (or whose
  secret you renewed) to the next page, encrypted, so it is shown to you once. It lasts 5
  minutes, or until the secret is shown.

All are HttpOnly (scripts cannot read them) and SameSite=Lax or Strict (other sites cannot send
them along with their requests). The site stores nothing else in your browser.
"""

DEFAULTS: dict[str, str] = {"privacy": PRIVACY, "terms": TERMS, "cookies": COOKIES}
