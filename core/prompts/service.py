"""Keeping prompt templates: create, change and delete (the owner only; admins for the built-in
starters; for a template in an organisation's space also that organisation's owner and admins),
and every read through "templates as seen by user U" (their own, those shared with them, those in
the space of an organisation they belong to, the public ones, which include the built-in
starters). Who may see and change a template in an organisation's space is decided with the
rules in ``multinotes.sharing.access``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Exists,
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database, utcnow
from multinotes.errors import Forbidden, Invalid, NotFound
from multinotes.identity.models import User
from multinotes.organisations.models import Organisation
from multinotes.prompts import variables as vars_
from multinotes.prompts.models import (
    VISIBILITIES,
    PromptTemplate,
    PromptTemplateFavourite,
    PromptTemplateShare,
    PromptTemplateTag,
    PromptTemplateUse,
)
from multinotes.prompts.starters import BUILTIN_OWNER
from multinotes.sharing import access

#: "Trending" counts the uses of this many last days.
TRENDING_DAYS = 7
MAX_TAGS = 10
MAX_SHARES = 50
#: Fields a change may not set to null.
NOT_NULL = ("title", "description", "body", "variables", "preferred_models", "visibility")
TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")

Scope = Literal["all", "mine", "organisation", "shared", "public", "favourites", "builtin"]
Sort = Literal["recent", "popular", "trending", "title"]


@dataclass
class TemplateView:
    """A template as one user sees it, with its counts."""

    template: PromptTemplate
    owner_name: str
    tags: list[str]
    use_count: int
    recent_uses: int
    favourite: bool
    is_owner: bool
    shared_with: list[str] = field(default_factory=list)
    #: A built-in starter (no owner): admins change it.
    builtin: bool = False
    #: Whether the viewer may change and delete it (its owner; an admin for a starter).
    can_edit: bool = False
    #: The name of the organisation whose space it is in (None: its owner's own library).
    organisation_name: str | None = None

    @property
    def variables(self) -> list[vars_.Variable]:
        return [vars_.Variable.model_validate(v) for v in self.template.variables]


@dataclass
class Listing:
    templates: list[TemplateView]
    total: int
    tags: list[tuple[str, int]]


def normalise_tags(tags: list[str]) -> list[str]:
    """Lower-case, de-duplicated tags; ``Invalid`` on ``tags`` for a malformed one."""
    cleaned = list(dict.fromkeys(t.strip().lower().lstrip("#") for t in tags if t.strip()))
    bad = [t for t in cleaned if not TAG_PATTERN.match(t)]
    if bad:
        raise Invalid(
            fields={"tags": f"{bad[0]!r}: letters, digits, - and _ only, at most 40 characters."}
        )
    if len(cleaned) > MAX_TAGS:
        raise Invalid(fields={"tags": f"At most {MAX_TAGS} tags."})
    return cleaned


def visible_to(user_id: str) -> ColumnElement[bool]:
    """The templates ``user_id`` may see: theirs, shared with them, in the space of an
    organisation they belong to (read in this query: a removed member stops seeing them at
    once), public."""
    shared = exists().where(
        PromptTemplateShare.template_id == PromptTemplate.id,
        PromptTemplateShare.user_id == user_id,
    )
    return or_(
        PromptTemplate.owner_id == user_id,
        PromptTemplate.visibility == "public",
        and_(PromptTemplate.visibility == "shared", shared),
        access.in_member_space(PromptTemplate.organisation_id, user_id),
    )


def _counts(user_id: str) -> tuple[Any, Any, Any]:
    since = utcnow() - timedelta(days=TRENDING_DAYS)
    uses = (
        select(func.count())
        .where(PromptTemplateUse.template_id == PromptTemplate.id)
        .correlate(PromptTemplate)
        .scalar_subquery()
    )
    recent = (
        select(func.count())
        .where(
            PromptTemplateUse.template_id == PromptTemplate.id, PromptTemplateUse.used_at >= since
        )
        .correlate(PromptTemplate)
        .scalar_subquery()
    )
    return (
        uses.label("use_count"),
        recent.label("recent_uses"),
        _favourite(user_id).label("favourite"),
    )


def _favourite(user_id: str) -> Exists:
    return exists().where(
        PromptTemplateFavourite.template_id == PromptTemplate.id,
        PromptTemplateFavourite.user_id == user_id,
    )


def _query(user_id: str) -> tuple[Select[Any], Any, Any]:
    """Templates ``user_id`` sees with owner name, counts and favourite; and the two counts (to
    order by)."""
    uses, recent, favourite = _counts(user_id)
    query = (
        select(PromptTemplate, User.name, uses, recent, favourite)
        .outerjoin(User, User.id == PromptTemplate.owner_id)
        .where(visible_to(user_id))
    )
    return query, uses, recent


async def _views(
    session: AsyncSession, user_id: str, rows: list[Any], admin: bool = False
) -> list[TemplateView]:
    ids = [row[0].id for row in rows]
    tags: dict[str, list[str]] = {i: [] for i in ids}
    shared: dict[str, list[str]] = {i: [] for i in ids}
    managed: set[str] = set()
    org_names: dict[str, str] = {}
    org_ids = {row[0].organisation_id for row in rows if row[0].organisation_id}
    if org_ids:
        managed = set(
            await session.scalars(access.member_organisations(user_id, managers_only=True))
        )
        org_names = dict(
            (
                await session.execute(
                    select(Organisation.id, Organisation.name).where(Organisation.id.in_(org_ids))
                )
            ).all()
        )
    if ids:
        for template_id, tag in await session.execute(
            select(PromptTemplateTag.template_id, PromptTemplateTag.tag)
            .where(PromptTemplateTag.template_id.in_(ids))
            .order_by(PromptTemplateTag.tag)
        ):
            tags[template_id].append(tag)
        own = [row[0].id for row in rows if row[0].owner_id == user_id]
        if own:
            for template_id, email in await session.execute(
                select(PromptTemplateShare.template_id, User.email)
                .join(User, User.id == PromptTemplateShare.user_id)
                .where(PromptTemplateShare.template_id.in_(own))
                .order_by(User.email)
            ):
                shared[template_id].append(email)
    return [
        TemplateView(
            template=template,
            owner_name=owner_name or BUILTIN_OWNER,
            tags=tags[template.id],
            use_count=int(use_count or 0),
            recent_uses=int(recent_uses or 0),
            favourite=bool(favourite),
            is_owner=template.owner_id == user_id,
            shared_with=shared[template.id],
            builtin=template.builtin_key is not None,
            can_edit=template.owner_id == user_id
            or (admin and template.builtin_key is not None)
            or (template.organisation_id is not None and template.organisation_id in managed),
            organisation_name=org_names.get(template.organisation_id or ""),
        )
        for template, owner_name, use_count, recent_uses, favourite in rows
    ]


async def get(db: Database, user_id: str, template_id: str, *, admin: bool = False) -> TemplateView:
    """The template as ``user_id`` sees it (``admin``: whether they are one, which lets them
    change the starters); ``NotFound`` when they may not see it."""
    async with db.read() as session:
        row = (
            await session.execute(_query(user_id)[0].where(PromptTemplate.id == template_id))
        ).first()
        if row is None:
            raise NotFound("No such template.", code="template_not_found")
        return (await _views(session, user_id, [row], admin))[0]


async def list_templates(
    db: Database,
    user_id: str,
    *,
    q: str = "",
    tag: str = "",
    scope: Scope = "all",
    sort: Sort = "recent",
    limit: int = 50,
    offset: int = 0,
    admin: bool = False,
) -> Listing:
    """The templates ``user_id`` can see, filtered by words in the title, description, body or
    tags (``q``), one tag, and whose they are (``scope``)."""
    query, uses, recent = _query(user_id)
    if scope == "mine":
        query = query.where(PromptTemplate.owner_id == user_id)
    elif scope == "organisation":
        query = query.where(access.in_member_space(PromptTemplate.organisation_id, user_id))
    elif scope == "shared":
        query = query.where(
            PromptTemplate.owner_id != user_id, PromptTemplate.visibility == "shared"
        )
    elif scope == "public":
        query = query.where(PromptTemplate.visibility == "public")
    elif scope == "favourites":
        query = query.where(_favourite(user_id))
    elif scope == "builtin":
        query = query.where(PromptTemplate.builtin_key.is_not(None))
    if tag:
        query = query.where(
            exists().where(
                PromptTemplateTag.template_id == PromptTemplate.id,
                PromptTemplateTag.tag == tag.strip().lower().lstrip("#"),
            )
        )
    for word in q.split()[:8]:
        needle = word.lower()
        query = query.where(
            or_(
                func.lower(PromptTemplate.title).contains(needle, autoescape=True),
                func.lower(PromptTemplate.description).contains(needle, autoescape=True),
                func.lower(PromptTemplate.body).contains(needle, autoescape=True),
                exists().where(
                    PromptTemplateTag.template_id == PromptTemplate.id,
                    PromptTemplateTag.tag.contains(needle.lstrip("#"), autoescape=True),
                ),
            )
        )
    order: list[Any] = {
        "recent": [PromptTemplate.updated_at.desc()],
        "popular": [uses.desc(), PromptTemplate.updated_at.desc()],
        "trending": [recent.desc(), uses.desc(), PromptTemplate.updated_at.desc()],
        "title": [PromptTemplate.title],
    }[sort]
    async with db.read() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(
            await session.execute(
                query.order_by(*order, PromptTemplate.id).limit(limit).offset(offset)
            )
        )
        views = await _views(session, user_id, rows, admin)
        tag_rows = await session.execute(
            select(PromptTemplateTag.tag, func.count())
            .join(PromptTemplate, PromptTemplate.id == PromptTemplateTag.template_id)
            .where(visible_to(user_id))
            .group_by(PromptTemplateTag.tag)
            .order_by(func.count().desc(), PromptTemplateTag.tag)
            .limit(30)
        )
        tags = [(name, int(count)) for name, count in tag_rows]
    return Listing(views, int(total), tags)


async def _share_targets(session: AsyncSession, owner_id: str, emails: list[str]) -> list[str]:
    wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e.strip()))
    if len(wanted) > MAX_SHARES:
        raise Invalid(fields={"shared_with": f"At most {MAX_SHARES} people."})
    if not wanted:
        return []
    found = dict(
        (email.lower(), uid)
        for uid, email in await session.execute(
            select(User.id, User.email).where(
                func.lower(User.email).in_(wanted), User.is_active.is_(True)
            )
        )
    )
    missing = [e for e in wanted if e not in found]
    if missing:
        raise Invalid(
            f"No account with the email {missing[0]}.",
            code="unknown_user",
            fields={"shared_with": f"No account with the email {missing[0]}."},
        )
    return [uid for uid in found.values() if uid != owner_id]


def _check(values: dict[str, Any]) -> None:
    if values.get("visibility") not in VISIBILITIES:
        raise Invalid(fields={"visibility": "One of: " + ", ".join(VISIBILITIES) + "."})
    variables = [vars_.Variable.model_validate(v) for v in values["variables"]]
    vars_.check_template(values["body"], values.get("system_prompt"), variables)


async def _write_children(
    session: AsyncSession,
    template: PromptTemplate,
    tags: list[str] | None,
    shares: list[str] | None,
) -> None:
    if tags is not None:
        await session.execute(
            delete(PromptTemplateTag).where(PromptTemplateTag.template_id == template.id)
        )
        session.add_all(PromptTemplateTag(template_id=template.id, tag=t) for t in tags)
    if shares is not None:
        await session.execute(
            delete(PromptTemplateShare).where(PromptTemplateShare.template_id == template.id)
        )
        session.add_all(PromptTemplateShare(template_id=template.id, user_id=u) for u in shares)


async def create(db: Database, owner_id: str, data: dict[str, Any]) -> str:
    """A new template from validated fields (title, body, variables as dicts, ...); its id."""
    fields = {k: v for k, v in data.items() if k not in ("tags", "shared_with")}
    fields["variables"] = list(fields.get("variables") or [])
    fields.setdefault("visibility", "private")
    _check(fields)
    tags = normalise_tags(list(data.get("tags") or []))
    async with db.transaction() as session:
        shares = await _share_targets(session, owner_id, list(data.get("shared_with") or []))
        template = PromptTemplate(owner_id=owner_id, **fields)
        session.add(template)
        await session.flush()
        await _write_children(session, template, tags, shares)
    return template.id


async def _owned(
    session: AsyncSession, user_id: str, template_id: str, doing: str, admin: bool
) -> PromptTemplate:
    template = await session.scalar(
        select(PromptTemplate)
        .where(PromptTemplate.id == template_id, visible_to(user_id))
        .with_for_update()
    )
    if template is None:
        raise NotFound("No such template.", code="template_not_found")
    if template.builtin_key is not None:
        if not admin:
            raise Forbidden(f"Only an administrator can {doing}.", code="not_owner")
    elif template.owner_id != user_id and not await access.manages_space(
        session, user_id, template.organisation_id
    ):
        if template.organisation_id is not None:
            raise Forbidden(
                f"Only the template's owner or the organisation's owner and admins can {doing}.",
                code="not_owner",
            )
        raise Forbidden(f"Only the template's owner can {doing}.", code="not_owner")
    return template


async def update(
    db: Database, user_id: str, template_id: str, changes: dict[str, Any], *, admin: bool = False
) -> None:
    """Change what ``changes`` holds (validated together with what stays). A built-in starter
    stays public to everyone (``admin`` may change the rest)."""
    # Only the system prompt can be cleared with null; tags and shared_with null mean "keep".
    cleared = [n for n in NOT_NULL if n in changes and changes[n] is None]
    if cleared:
        raise Invalid(fields={n: "Cannot be null." for n in cleared})
    tags = normalise_tags(changes["tags"]) if changes.get("tags") is not None else None
    async with db.transaction() as session:
        template = await _owned(session, user_id, template_id, "change it", admin)
        if template.builtin_key is not None:
            _check_builtin(changes)
        fields = {k: v for k, v in changes.items() if k not in ("tags", "shared_with")}
        merged = {
            "body": fields.get("body", template.body),
            "system_prompt": fields.get("system_prompt", template.system_prompt),
            "variables": fields.get("variables", template.variables),
            "visibility": fields.get("visibility", template.visibility),
        }
        _check(merged)
        shares = None
        if changes.get("shared_with") is not None:
            shares = await _share_targets(
                session, template.owner_id or user_id, changes["shared_with"]
            )
        for name, value in fields.items():
            setattr(template, name, value)
        template.updated_at = utcnow()
        await _write_children(session, template, tags, shares)


def _check_builtin(changes: dict[str, Any]) -> None:
    problems = {}
    if changes.get("visibility") not in (None, "public"):
        problems["visibility"] = "A built-in template stays public."
    if changes.get("shared_with"):
        problems["shared_with"] = "A built-in template is public: it is not shared with people."
    if problems:
        raise Invalid(fields=problems)


async def remove(db: Database, user_id: str, template_id: str, *, admin: bool = False) -> None:
    """Delete a template (its owner; an admin for a built-in starter, which is not seeded
    again)."""
    async with db.transaction() as session:
        template = await _owned(session, user_id, template_id, "delete it", admin)
        await session.delete(template)


async def set_favourite(db: Database, user_id: str, template_id: str, on: bool) -> None:
    """Star or unstar a template ``user_id`` can see (doing it twice changes nothing)."""
    async with db.transaction() as session:
        seen = await session.scalar(
            select(PromptTemplate.id).where(PromptTemplate.id == template_id, visible_to(user_id))
        )
        if seen is None:
            raise NotFound("No such template.", code="template_not_found")
        key = {"template_id": template_id, "user_id": user_id}
        existing = await session.get(PromptTemplateFavourite, key)
        if on and existing is None:
            session.add(PromptTemplateFavourite(**key))
        elif not on and existing is not None:
            await session.delete(existing)


def render(view: TemplateView, values: dict[str, Any]) -> tuple[str, str | None]:
    t = view.template
    return vars_.render(t.body, t.system_prompt, view.variables, values)


async def record_use(db: Database, user_id: str, template_id: str) -> None:
    """Count one run of a template ``user_id`` can see."""
    async with db.transaction() as session:
        seen = await session.scalar(
            select(PromptTemplate.id).where(PromptTemplate.id == template_id, visible_to(user_id))
        )
        if seen is None:
            raise NotFound("No such template.", code="template_not_found")
        session.add(PromptTemplateUse(template_id=template_id, user_id=user_id))


#: Words too common to say which template a prompt wants.
STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "that",
        "this",
        "from",
        "what",
        "which",
        "into",
        "your",
        "you",
        "are",
        "was",
        "were",
        "have",
        "has",
        "can",
        "could",
        "would",
        "should",
        "about",
        "please",
        "write",
        "give",
        "make",
        "tell",
        "some",
        "any",
        "all",
        "not",
        "but",
        "how",
        "why",
        "when",
        "where",
        "who",
        "them",
        "they",
        "their",
        "its",
        "our",
        "out",
        "use",
        "using",
        "one",
        "two",
        "more",
        "most",
        "than",
        "then",
        "there",
        "here",
        "also",
        "just",
    ]
)
SUGGEST_WORDS = 12


def _keywords(text: str) -> list[str]:
    """The words of ``text`` that may match a template, cut to a stem-like prefix (so
    "summarize" finds "Summarise", "translation" finds "Translate")."""
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 3]
    stems = [w[:6] if len(w) > 7 else w for w in words if w not in STOPWORDS]
    return list(dict.fromkeys(stems))[:SUGGEST_WORDS]


async def suggest(
    db: Database, user_id: str, text: str, *, limit: int = 3, admin: bool = False
) -> list[TemplateView]:
    """Templates ``user_id`` can see that fit what they are typing: ranked by how many of its
    words the title (twice the weight), description or tags hold, then favourites, then uses."""
    words = _keywords(text)
    if not words:
        return []
    query, uses, _recent = _query(user_id)
    in_title = [func.lower(PromptTemplate.title).contains(w, autoescape=True) for w in words]
    elsewhere = [
        or_(
            func.lower(PromptTemplate.description).contains(word, autoescape=True),
            exists().where(
                PromptTemplateTag.template_id == PromptTemplate.id,
                PromptTemplateTag.tag.startswith(word, autoescape=True),
            ),
        )
        for word in words
    ]
    matches = in_title + elsewhere
    # A word in the title counts twice what it counts in the description or the tags.
    score = sum(
        (case((m, 2 if i < len(in_title) else 1), else_=0) for i, m in enumerate(matches)),
        literal(0),
    )
    query = query.where(or_(*matches)).order_by(
        score.desc(), _favourite(user_id).desc(), uses.desc(), PromptTemplate.title
    )
    async with db.read() as session:
        rows = list(await session.execute(query.limit(limit)))
        return await _views(session, user_id, rows, admin)
