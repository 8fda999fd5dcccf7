"""The built-in starter templates an install begins with, and seeding them.

Each starter is seeded once, as a public template that belongs to nobody (``owner_id`` NULL)
and carries its ``builtin_key``. Admins change or delete them like their own templates. Seeding
runs at startup and is idempotent: the keys already seeded are remembered in ``app_settings``
(so a starter an admin deleted stays deleted), and the unique ``builtin_key`` makes two
processes starting at once seed each starter once.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from multinotes.app_settings import AppSetting
from multinotes.db import Database, new_id, utcnow
from multinotes.keys import DB
from multinotes.prompts import variables as vars_
from multinotes.prompts.models import PromptTemplate, PromptTemplateTag

log = structlog.get_logger(__name__)

#: ``app_settings`` key: the starter keys seeded so far.
SEEDED_KEY = "prompts.starters_seeded"
#: The owner name shown for a built-in template.
BUILTIN_OWNER = "MultinotesAI"


def _var(name: str, label: str, kind: str = "text", **more: Any) -> dict[str, Any]:
    return {"name": name, "label": label, "type": kind, **more}


TONES = ["neutral", "friendly", "formal", "persuasive", "playful"]
LANGUAGES = ["English", "French", "German", "Spanish", "Italian", "Portuguese", "Japanese"]

STARTERS: list[dict[str, Any]] = [
    {
        "key": "summarise",
        "title": "Summarise a text",
        "description": "A short summary with the key points as bullets.",
        "body": "Summarise the following text in {{length}}. Then list its key points as "
        "bullets.\n\n{{text}}",
        "variables": [
            _var("text", "Text", "long_text"),
            _var(
                "length",
                "Length",
                "choice",
                options=["one sentence", "three sentences", "one paragraph"],
                default="three sentences",
            ),
        ],
        "tags": ["writing", "summary"],
    },
    {
        "key": "translate",
        "title": "Translate",
        "description": "A faithful translation that keeps the tone and formatting.",
        "body": "Translate the following text into {{language}}. Keep its tone, formatting "
        "and names; do not add explanations.\n\n{{text}}",
        "variables": [
            _var("text", "Text", "long_text"),
            _var("language", "Into", "choice", options=LANGUAGES, default="English"),
        ],
        "tags": ["writing", "translation"],
    },
    {
        "key": "proofread",
        "title": "Proofread and correct",
        "description": "Fix spelling, grammar and punctuation; list what changed.",
        "body": "Proofread the text below. Return the corrected text, then a short list of "
        "the changes you made and why.\n\n{{text}}",
        "variables": [_var("text", "Text", "long_text")],
        "tags": ["writing", "editing"],
    },
    {
        "key": "rewrite-tone",
        "title": "Rewrite in another tone",
        "description": "The same message, in the tone you choose.",
        "body": "Rewrite the text below in a {{tone}} tone. Keep every fact and the length "
        "roughly the same.\n\n{{text}}",
        "variables": [
            _var("text", "Text", "long_text"),
            _var("tone", "Tone", "choice", options=TONES, default="friendly"),
        ],
        "tags": ["writing", "editing"],
    },
    {
        "key": "email-reply",
        "title": "Reply to an email",
        "description": "A clear reply that says what you want to say.",
        "body": "Write a {{tone}} reply to the email below. In the reply I want to say: "
        "{{intent}}\n\nThe email:\n{{email}}",
        "variables": [
            _var("email", "The email you received", "long_text"),
            _var("intent", "What you want to say"),
            _var("tone", "Tone", "choice", options=TONES, default="neutral"),
        ],
        "tags": ["writing", "email"],
    },
    {
        "key": "blog-outline",
        "title": "Blog post outline",
        "description": "A titled outline with sections and key points for a post.",
        "body": "Write an outline for a blog post about {{topic}} for {{audience}}: a working "
        "title, an introduction hook, {{sections}} sections with two or three points each, and "
        "a conclusion.",
        "variables": [
            _var("topic", "Topic"),
            _var("audience", "Audience", default="a general audience"),
            _var("sections", "Sections", "number", default=5),
        ],
        "tags": ["writing", "blog"],
    },
    {
        "key": "social-post",
        "title": "Social media post",
        "description": "A short post for the network you choose.",
        "body": "Write a {{platform}} post announcing: {{news}}. Fit the platform's usual "
        "length and style; at most three hashtags.",
        "variables": [
            _var("news", "What to announce"),
            _var(
                "platform",
                "Platform",
                "choice",
                options=["LinkedIn", "Mastodon", "X", "Instagram"],
                default="LinkedIn",
            ),
        ],
        "tags": ["writing", "marketing"],
    },
    {
        "key": "product-description",
        "title": "Product description",
        "description": "A persuasive description from a product's features.",
        "body": "Write a product description of about {{words}} words for {{product}}. "
        "Features to mention:\n{{features}}",
        "variables": [
            _var("product", "Product"),
            _var("features", "Features", "long_text"),
            _var("words", "Words", "number", default=120),
        ],
        "tags": ["writing", "marketing"],
    },
    {
        "key": "explain-code",
        "title": "Explain code",
        "description": "What a piece of code does, step by step.",
        "body": "Explain what this {{language}} code does, step by step, for someone who "
        "knows programming but not this code base. Point out anything surprising.\n\n"
        "```\n{{code}}\n```",
        "variables": [
            _var("code", "Code", "long_text"),
            _var("language", "Language", default="Python"),
        ],
        "tags": ["code"],
    },
    {
        "key": "review-code",
        "title": "Review code",
        "description": "Bugs, risks and improvements, most important first.",
        "body": "Review this {{language}} code. List bugs, security problems and unclear "
        "parts, most important first, each with a suggested fix.\n\n```\n{{code}}\n```",
        "variables": [
            _var("code", "Code", "long_text"),
            _var("language", "Language", default="Python"),
        ],
        "tags": ["code", "review"],
    },
    {
        "key": "write-tests",
        "title": "Write unit tests",
        "description": "Tests for a function, including the edge cases.",
        "body": "Write unit tests with {{framework}} for the code below. Cover the normal "
        "cases and the edge cases; name each test after the behaviour it checks.\n\n"
        "```\n{{code}}\n```",
        "variables": [
            _var("code", "Code", "long_text"),
            _var("framework", "Test framework", default="pytest"),
        ],
        "tags": ["code", "testing"],
    },
    {
        "key": "fix-error",
        "title": "Fix an error",
        "description": "The cause of an error message and how to fix it.",
        "body": "I get this error:\n\n```\n{{error}}\n```\n\nfrom this code:\n\n```\n{{code}}"
        "\n```\n\nExplain the cause and show the fix.",
        "variables": [
            _var("error", "Error message", "long_text"),
            _var("code", "Code", "long_text", required=False),
        ],
        "tags": ["code", "debugging"],
    },
    {
        "key": "sql-query",
        "title": "Write a SQL query",
        "description": "A query from a plain-language question and the tables.",
        "body": "Write a {{dialect}} query that answers: {{question}}\n\nThe tables:\n"
        "{{schema}}\n\nExplain the query briefly.",
        "variables": [
            _var("question", "Question"),
            _var("schema", "Tables (CREATE TABLE or a description)", "long_text"),
            _var(
                "dialect",
                "Dialect",
                "choice",
                options=["PostgreSQL", "MySQL", "SQLite", "SQL Server"],
                default="PostgreSQL",
            ),
        ],
        "tags": ["code", "sql"],
    },
    {
        "key": "regex",
        "title": "Build a regular expression",
        "description": "A regex with examples of what it matches.",
        "body": "Write a regular expression that matches {{what}}. Explain each part and give "
        "three strings it matches and three it does not.",
        "variables": [_var("what", "What it should match")],
        "tags": ["code"],
    },
    {
        "key": "eli5",
        "title": "Explain simply",
        "description": "A concept explained for the audience you choose.",
        "body": "Explain {{concept}} to {{audience}}. Use one everyday analogy and no jargon.",
        "variables": [
            _var("concept", "Concept"),
            _var(
                "audience",
                "Audience",
                "choice",
                options=["a ten-year-old", "a high-school student", "a busy manager"],
                default="a high-school student",
            ),
        ],
        "tags": ["learning", "reasoning"],
    },
    {
        "key": "pros-cons",
        "title": "Pros and cons",
        "description": "Weigh a decision with its pros, cons and a recommendation.",
        "body": "I am deciding whether to {{decision}}. Context: {{context}}\n\nList the pros "
        "and the cons, the questions I should answer first, and your recommendation.",
        "variables": [
            _var("decision", "The decision"),
            _var("context", "Context", "long_text", required=False),
        ],
        "tags": ["reasoning", "decisions"],
    },
    {
        "key": "step-by-step",
        "title": "Solve step by step",
        "description": "Work through a problem showing each step and check the result.",
        "body": "Solve the following problem. Think step by step, show each step, and check "
        "the result at the end.\n\n{{problem}}",
        "variables": [_var("problem", "Problem", "long_text")],
        "tags": ["reasoning", "math"],
    },
    {
        "key": "meeting-notes",
        "title": "Meeting notes to actions",
        "description": "Decisions, action items with owners, and open questions.",
        "body": "From these meeting notes, list: the decisions taken, the action items (with "
        "owner and due date when mentioned) and the open questions.\n\n{{notes}}",
        "variables": [_var("notes", "Meeting notes", "long_text")],
        "tags": ["work", "summary"],
    },
    {
        "key": "interview-questions",
        "title": "Interview questions",
        "description": "Questions for a role, with what a good answer shows.",
        "body": "Write {{count}} interview questions for a {{role}} position at {{level}} "
        "level. For each, say what a strong answer shows.",
        "variables": [
            _var("role", "Role"),
            _var(
                "level",
                "Level",
                "choice",
                options=["junior", "mid", "senior", "lead"],
                default="mid",
            ),
            _var("count", "Questions", "number", default=8),
        ],
        "tags": ["work", "hiring"],
    },
    {
        "key": "brainstorm",
        "title": "Brainstorm ideas",
        "description": "Many varied ideas, then the three most promising.",
        "body": "Brainstorm {{count}} varied ideas for {{goal}}. Then pick the three most "
        "promising and say why.",
        "variables": [
            _var("goal", "Ideas for"),
            _var("count", "How many", "number", default=15),
        ],
        "tags": ["creativity"],
    },
    {
        "key": "study-quiz",
        "title": "Quiz me",
        "description": "A short quiz on a topic, answers at the end.",
        "body": "Write a quiz of {{count}} questions on {{topic}} (mixed multiple choice and "
        "short answer), with the answers and a one-line explanation each at the end.",
        "variables": [
            _var("topic", "Topic"),
            _var("count", "Questions", "number", default=10),
        ],
        "tags": ["learning"],
    },
]


def check_starters() -> None:
    """Every starter is a valid template (a test calls this; seeding relies on it)."""
    keys = [s["key"] for s in STARTERS]
    if len(set(keys)) != len(keys):
        raise ValueError("starter keys must differ")
    for starter in STARTERS:
        variables = [vars_.Variable.model_validate(v) for v in starter["variables"]]
        vars_.check_template(starter["body"], starter.get("system_prompt"), variables)


async def seed(db: Database) -> list[str]:
    """Add the starters not seeded before; the keys it added."""
    async with db.read() as session:
        row = await session.get(AppSetting, SEEDED_KEY)
        seeded = set(row.value or []) if row is not None else set()
        existing: set[str] = set(
            await session.scalars(
                select(PromptTemplate.builtin_key).where(PromptTemplate.builtin_key.is_not(None))
            )
        )
    missing = [s for s in STARTERS if s["key"] not in seeded and s["key"] not in existing]
    if not missing and seeded >= existing:
        return []
    try:
        async with db.transaction() as session:
            # Two multi-row inserts: this runs whenever an app starts (every test's app too).
            ids = {s["key"]: new_id() for s in missing}
            connection = await session.connection()
            if missing:
                now = utcnow()
                await connection.execute(
                    insert(PromptTemplate),
                    [
                        {
                            "id": ids[starter["key"]],
                            "owner_id": None,
                            "builtin_key": starter["key"],
                            "title": starter["title"],
                            "description": starter["description"],
                            "body": starter["body"],
                            "system_prompt": starter.get("system_prompt"),
                            "variables": [
                                vars_.Variable.model_validate(v).model_dump()
                                for v in starter["variables"]
                            ],
                            "preferred_models": [],
                            "visibility": "public",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for starter in missing
                    ],
                )
                await connection.execute(
                    insert(PromptTemplateTag),
                    [
                        {"template_id": ids[starter["key"]], "tag": tag}
                        for starter in missing
                        for tag in starter["tags"]
                    ],
                )
            keys = sorted(seeded | existing | {s["key"] for s in missing})
            row = await session.get(AppSetting, SEEDED_KEY, with_for_update=True)
            if row is None:
                session.add(AppSetting(key=SEEDED_KEY, value=keys))
            else:
                row.value = sorted(set(row.value or []) | set(keys))
    except IntegrityError:
        return []  # another process seeded them at the same moment
    added = [s["key"] for s in missing]
    if added:
        log.info("prompt_starters_seeded", count=len(added))
    return added


async def seed_on_startup(app: web.Application) -> None:
    await seed(app[DB])
