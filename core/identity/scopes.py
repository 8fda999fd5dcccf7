"""What an API key may do: its scopes, and which scope each route needs.

A key carries one or more scopes; a session (a person in a browser) is not limited by scopes.

==========  ==================================================================================
scope       allows
==========  ==================================================================================
``read``    every GET (and HEAD) of the owner's data: notes, folders, files, shares,
            conversations, wallet, profile, keys, search, ... (never an admin route)
``notes``   writes (POST, PUT, PATCH, DELETE) to notes, folders, files, shares, comments,
            notifications, the trash and search history, saving answers as notes, exports
            of notes, folders and conversations, and prompt templates (recording a template's
            use is ``chat``)
``chat``    writes to conversations and messages: sending prompts, regenerating, rating,
            stopping generations, re-running a saved note's prompt, scheduled runs (all that
            spends credits)
``admin``   every administrator route (``access="admin"``: ``/api/admin/*``, ``/admin/*``),
            whatever the method; only an administrator's key can hold it, and it stops
            counting the moment the owner is no longer an administrator
==========  ==================================================================================

Every other write (the account itself: profile, password, email, keys, sessions, data export,
deletion) needs a *full* key: one holding ``read``, ``notes`` and ``chat``. Public routes need
no scope. The decision is made once, in the auth middleware, from the matched route; handlers
never check scopes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Scope = Literal["read", "notes", "chat", "admin"]
#: In the order the UI lists them.
SCOPES: tuple[Scope, ...] = ("read", "notes", "chat", "admin")
#: What a key without any narrowing can do for someone who is not an administrator.
FULL: frozenset[str] = frozenset({"read", "notes", "chat"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

DESCRIPTIONS: dict[str, str] = {
    "read": "Read your notes, files, conversations and account (GET only)",
    "notes": "Change notes, folders, files, shares and comments",
    "chat": "Send prompts and manage conversations (spends credits)",
    "admin": "Use the admin API",
}

#: Path prefixes of the writes each area covers; the longest matching prefix wins, so
#: ``/api/documents/{id}/rerun`` (a prompt sent again) is chat while the rest of
#: ``/api/documents`` is notes.
AREAS: dict[str, str] = {
    # notes
    "/api/documents": "notes",
    "/api/folders": "notes",
    "/api/files": "notes",
    "/api/shares": "notes",
    "/api/comments": "notes",
    "/api/trash": "notes",
    "/api/notifications": "notes",
    "/api/search": "notes",
    "/api/exports": "notes",
    "/api/messages/{id}/save": "notes",
    "/api/messages/{id}/save-comparison": "notes",
    "/notes": "notes",
    "/files": "notes",
    "/share": "notes",
    "/shared": "notes",
    "/comments": "notes",
    "/documents": "notes",
    "/notifications": "notes",
    "/trash": "notes",
    "/search": "notes",
    "/exports": "notes",
    "/api/templates": "notes",
    "/prompts": "notes",
    "/api/me/assist": "notes",
    # chat
    "/api/conversations": "chat",
    "/api/messages": "chat",
    "/api/generations": "chat",
    "/api/media": "chat",
    "/api/me/model-favourites": "chat",
    "/api/documents/{id}/rerun": "chat",
    # A note's suggested tags and summary: asking spends credits (dismissing goes with it).
    "/api/documents/{id}/suggestion": "chat",
    "/notes/{id}/assist/suggest": "chat",
    "/api/comparisons": "chat",
    # Batch runs send prompts for every row (spending credits).
    "/api/batches": "chat",
    "/batches": "chat",
    "/comparisons": "chat",
    "/api/templates/{id}/uses": "chat",
    # Chains run prompts (spending credits); their definitions go with them.
    "/api/chains": "chat",
    "/chains": "chat",
    "/api/schedules": "chat",
    "/schedules": "chat",
    "/chat": "chat",
}


def allowed_for_role(role: str) -> frozenset[str]:
    """Every scope a key of someone with this role may hold."""
    return FULL | {"admin"} if role == "admin" else FULL


def default_scopes(role: str) -> frozenset[str]:
    """A new key's scopes when none are asked for: all but admin (ask for that explicitly)."""
    return FULL


def parse(stored: str | None) -> frozenset[str]:
    return frozenset(s for s in (stored or "").split() if s in SCOPES)


def serialize(scopes: Iterable[str]) -> str:
    return " ".join(ordered(scopes))


def ordered(scopes: Iterable[str]) -> list[str]:
    wanted = set(scopes)
    return [s for s in SCOPES if s in wanted]


def effective(stored: Iterable[str], role: str) -> frozenset[str]:
    """What a key can do today: its scopes, less what its owner's role no longer allows."""
    return frozenset(stored) & allowed_for_role(role)


def _area(path: str) -> str | None:
    matching = [p for p in AREAS if path == p or path.startswith(p + "/")]
    return AREAS[max(matching, key=len)] if matching else None


def required(method: str, path: str, access: str) -> frozenset[str]:
    """The scopes a key needs to call ``method path`` (``path`` as the router declares it,
    ``/api/documents/{id}``) on a route declared with ``access``. Empty: no scope needed."""
    if access == "public":
        return frozenset()
    if access == "admin" or path.startswith(("/api/admin/", "/admin/")) or path == "/admin":
        return frozenset({"admin"})
    if method.upper() in SAFE_METHODS:
        return frozenset({"read"})
    area = _area(path)
    return frozenset({area}) if area else FULL
