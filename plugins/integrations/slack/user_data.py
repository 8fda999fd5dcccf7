"""The user's Slack rows in their data export (``register_user_data``): the workspaces they
added (without the bot token), their linked Slack accounts, their commands (without the
``response_url``) and the answers they kept as notes from Slack."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from multinotes.plugin import UserDataExport, plugin_context

from .service import PLUGIN
from .tables import Command, Install, Link, Saved


async def collect(app: web.Application, user_id: str) -> dict[str, Any]:
    ctx = plugin_context(app, PLUGIN)
    async with ctx.read() as session:
        installs = await session.scalars(
            select(Install).where(Install.installed_by == user_id).order_by(Install.installed_at)
        )
        links = await session.scalars(
            select(Link).where(Link.user_id == user_id).order_by(Link.created_at)
        )
        commands = await session.scalars(
            select(Command).where(Command.user_id == user_id).order_by(Command.created_at)
        )
        saved = await session.scalars(
            select(Saved).where(Saved.user_id == user_id).order_by(Saved.created_at)
        )
        return {
            "workspaces_added": [
                {
                    "team_id": i.team_id,
                    "team_name": i.team_name,
                    "scope": i.scope,
                    "installed_at": i.installed_at,
                }
                for i in installs
            ],
            "linked_accounts": [
                {
                    "team_id": link.team_id,
                    "team_name": link.team_name,
                    "slack_user_id": link.slack_user_id,
                    "slack_name": link.slack_name,
                    "default_model": link.default_model,
                    "created_at": link.created_at,
                }
                for link in links
            ],
            "commands": [
                {
                    "team_id": c.team_id,
                    "channel_id": c.channel_id,
                    "slack_user_id": c.slack_user_id,
                    "prompt": c.prompt,
                    "models": c.models,
                    "status": c.status,
                    "answer_message_ids": c.answer_ids,
                    "created_at": c.created_at,
                }
                for c in commands
            ],
            "saved_answers": [
                {"message_id": s.message_id, "note_id": s.note_id, "created_at": s.created_at}
                for s in saved
            ],
        }


SLACK_EXPORT = UserDataExport(
    "slack.json",
    collect,
    tables=frozenset({"slack_installs", "slack_links", "slack_commands", "slack_saved_answers"}),
    description="the Slack workspaces you added (without their bot tokens), your linked Slack "
    "accounts, your /multinotes commands and the answers you saved from Slack",
)
