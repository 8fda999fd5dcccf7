"""The user's webhooks in their data export (``register_user_data``): each endpoint they own,
without its signing secrets, with its most recent deliveries and every attempt of those."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from multinotes.plugin import UserDataExport, plugin_context

from .service import PLUGIN, endpoint_json
from .tables import Attempt, Delivery, Endpoint

#: Deliveries per endpoint in the export: the delivery log is a recent history, not an archive.
RECENT_DELIVERIES = 100


async def collect(app: web.Application, user_id: str) -> dict[str, Any]:
    ctx = plugin_context(app, PLUGIN)
    endpoints: list[dict[str, Any]] = []
    async with ctx.read() as session:
        owned = list(
            await session.scalars(
                select(Endpoint)
                .where(Endpoint.user_id == user_id)
                .order_by(Endpoint.created_at, Endpoint.id)
            )
        )
        for endpoint in owned:
            deliveries = list(
                await session.scalars(
                    select(Delivery)
                    .where(Delivery.endpoint_id == endpoint.id)
                    .order_by(Delivery.created_at.desc(), Delivery.id.desc())
                    .limit(RECENT_DELIVERIES)
                )
            )
            attempts: dict[str, list[Attempt]] = {d.id: [] for d in deliveries}
            if deliveries:
                for a in await session.scalars(
                    select(Attempt)
                    .where(Attempt.delivery_id.in_(list(attempts)))
                    .order_by(Attempt.number)
                ):
                    attempts[a.delivery_id].append(a)
            # endpoint_json is what the API shows: no secret, current or previous.
            endpoints.append(
                {
                    **endpoint_json(endpoint),
                    "deliveries": [_delivery(d, attempts[d.id]) for d in deliveries],
                }
            )
    return {"endpoints": endpoints}


def _delivery(delivery: Delivery, attempts: list[Attempt]) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "webhook_id": f"msg_{delivery.id}",
        "type": delivery.event_type,
        "status": delivery.status,
        "created_at": delivery.created_at,
        "body": delivery.body,
        "attempts": [
            {
                "number": a.number,
                "trigger": a.trigger,
                "started_at": a.started_at,
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "response_excerpt": a.response_excerpt,
                "error": a.error,
            }
            for a in attempts
        ],
    }


WEBHOOKS_EXPORT = UserDataExport(
    "webhooks.json",
    collect,
    tables=frozenset({"webhook_endpoints", "webhook_deliveries", "webhook_attempts"}),
    description="your webhook endpoints (without their signing secrets) and the last "
    f"{RECENT_DELIVERIES} deliveries of each, with every attempt",
)
