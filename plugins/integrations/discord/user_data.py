"""The user's Discord rows in their data export (``register_user_data``): their linked Discord
account, their ``/ask`` commands (without the interaction tokens) and the answers they kept."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from multinotes.plugin import UserDataExport, plugin_context

from .service import PLUGIN
from .tables import Interaction, Link, Saved


async def collect(app: web.Application, user_id: str) -> dict[str, Any]:
    ctx = plugin_context(app, PLUGIN)
    async with ctx.read() as session:
        links = await session.scalars(
            select(Link).where(Link.user_id == user_id).order_by(Link.created_at)
        )
        asked = await session.scalars(
            select(Interaction)
            .where(Interaction.user_id == user_id)
            .order_by(Interaction.created_at)
        )
        saved = await session.scalars(
            select(Saved).where(Saved.user_id == user_id).order_by(Saved.created_at)
        )
        return {
            "linked_accounts": [
                {
                    "discord_user_id": link.discord_user_id,
                    "discord_name": link.discord_name,
                    "default_model": link.default_model,
                    "created_at": link.created_at,
                }
                for link in links
            ],
            "commands": [
                {
                    "interaction_id": i.id,
                    "discord_user_id": i.discord_user_id,
                    "prompt": i.prompt,
                    "models": i.models,
                    "status": i.status,
                    "answer_message_ids": i.answer_ids,
                    "created_at": i.created_at,
                }
                for i in asked
            ],
            "saved_answers": [
                {"message_id": s.message_id, "note_id": s.note_id, "created_at": s.created_at}
                for s in saved
            ],
        }


DISCORD_EXPORT = UserDataExport(
    "discord.json",
    collect,
    tables=frozenset({"discord_links", "discord_interactions", "discord_saved_answers"}),
    description="your linked Discord account, your /ask commands and the answers you saved "
    "from Discord",
)
