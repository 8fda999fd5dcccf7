"""Models recommended for a prompt, best first, each with the reasons it was chosen.

What the prompt needs comes from its category (given, or guessed from its words): an image
prompt wants image models, anything else text models, and a code prompt prefers models marked
good at code. Among the models that can be used now, each is scored on

- capability: good at code, for code;
- price: cheaper is better (per image for images, per token otherwise), on a log scale;
- the user's own ratings of its answers (stars);
- the instance's leaderboard in the category (Bradley-Terry ratings from blind votes);
- recent traffic (``assist.stats``): availability and median first-token latency.

A signal a model has no data for (never rated, never voted on, no traffic) counts as average,
so a new model is neither favoured nor buried. Nothing here changes anything.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from sqlalchemy import func, select

from multinotes.arena import service as arena
from multinotes.arena.models import CATEGORIES
from multinotes.arena.rating import fit, games_of
from multinotes.assist.stats import NO_TRAFFIC, ModelStats, model_stats
from multinotes.catalog import CatalogEntry
from multinotes.chat.models import Rating
from multinotes.db import Database
from multinotes.keys import CATALOG, DB

Category = Literal["code", "writing", "reasoning", "other", "image"]
CATEGORY_VALUES: tuple[str, ...] = (*CATEGORIES, "image")

#: How much each signal weighs in the score (each signal is 0..1).
WEIGHTS = {
    "capability": 1.0,
    "price": 0.8,
    "ratings": 1.0,
    "leaderboard": 1.0,
    "availability": 1.0,
    "latency": 0.5,
}
NEUTRAL = 0.5

_WORDS = {
    "image": re.compile(
        r"\b(draw|drawing|image|picture|photo|photograph|illustration|illustrate|logo|"
        r"painting|paint|sketch|render|wallpaper|poster|icon)s?\b",
        re.IGNORECASE,
    ),
    "code": re.compile(
        r"```|\b(code|python|javascript|typescript|java|rust|golang|c\+\+|sql|regex|function|"
        r"bug|debug|compile|stack ?trace|exception|refactor|script|api|class|method|html|css)\b",
        re.IGNORECASE,
    ),
    "reasoning": re.compile(
        r"\b(prove|proof|calculate|solve|math|equation|logic|puzzle|probability|why|"
        r"step by step|reason|derive|estimate)\b",
        re.IGNORECASE,
    ),
    "writing": re.compile(
        r"\b(write|rewrite|essay|email|letter|story|poem|blog|article|summari[sz]e|translate|"
        r"draft|proofread|tone|paragraph|headline)\b",
        re.IGNORECASE,
    ),
}


def guess_category(prompt: str) -> str:
    """The category whose words the prompt uses most ("other" when none). An image is asked
    for by naming one next to a verb of making, so "image" needs both."""
    counts = {name: len(pattern.findall(prompt)) for name, pattern in _WORDS.items()}
    makes_image = re.search(
        r"\b(draw|generate|create|make|design|paint|render|sketch)\b", prompt, re.IGNORECASE
    )
    if counts["image"] and makes_image:
        return "image"
    counts.pop("image")
    best = max(counts, key=lambda name: counts[name])
    return best if counts[best] else "other"


def needed_capability(category: str) -> str:
    return "image_generation" if category == "image" else "text"


@dataclass
class Candidate:
    entry: CatalogEntry
    stats: ModelStats
    signals: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        total = sum(WEIGHTS[name] * value for name, value in self.signals.items())
        return total / sum(WEIGHTS[name] for name in self.signals)


def _price_of(entry: CatalogEntry, category: str) -> float:
    pricing = entry.pricing
    if category == "image":
        return pricing.per_image
    return pricing.input_per_million + pricing.output_per_million


def _credits(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:g}"


async def user_ratings(db: Database, user_id: str) -> dict[str, tuple[float, int]]:
    """The user's own average stars and count per model."""
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Rating.model_id, func.avg(Rating.stars), func.count())
                .where(Rating.user_id == user_id)
                .group_by(Rating.model_id)
            )
        ).all()
    return {model: (float(avg), int(count)) for model, avg, count in rows}


async def leaderboard_ratings(db: Database, category: str) -> dict[str, float]:
    """Instance-wide Bradley-Terry ratings from the category's blind votes (all votes for a
    category the arena does not know, such as images)."""
    chosen = await arena.votes(
        db,
        user_id=None,
        category=category if category in CATEGORIES else None,
        since=None,
        until=None,
    )
    return fit(games_of(chosen))


def _score_price(candidates: list[Candidate], category: str) -> None:
    prices = [_price_of(c.entry, category) for c in candidates]
    low, high = min(prices), max(prices)
    unit = "per image" if category == "image" else "per million tokens"
    for candidate, price in zip(candidates, prices, strict=True):
        if high == low:
            candidate.signals["price"] = 1.0
        else:
            span = math.log1p(high) - math.log1p(low)
            candidate.signals["price"] = (math.log1p(high) - math.log1p(price)) / span
        if price == 0:
            candidate.reasons.append("Free to use")
        elif price == low and len(candidates) > 1:
            candidate.reasons.append(f"Cheapest here: {_credits(price)} credits {unit}")


def _score_leaderboard(
    candidates: list[Candidate], ratings: dict[str, float], category: str
) -> None:
    rated = {c.entry.id: ratings[c.entry.id] for c in candidates if c.entry.id in ratings}
    if not rated:
        for candidate in candidates:
            candidate.signals["leaderboard"] = NEUTRAL
        return
    low, high = min(rated.values()), max(rated.values())
    order = sorted(rated, key=lambda m: -rated[m])
    where = f"for {category}" if category in CATEGORIES else "overall"
    for candidate in candidates:
        rating = rated.get(candidate.entry.id)
        if rating is None:
            candidate.signals["leaderboard"] = NEUTRAL
            continue
        candidate.signals["leaderboard"] = 1.0 if high == low else (rating - low) / (high - low)
        place = order.index(candidate.entry.id) + 1
        if place <= 3:
            candidate.reasons.append(f"#{place} on the leaderboard {where} ({rating:.0f})")


def _score_traffic(candidates: list[Candidate]) -> None:
    latencies = [c.stats.p50_latency_ms for c in candidates if c.stats.p50_latency_ms is not None]
    fastest = min(latencies) if latencies else None
    slowest = max(latencies) if latencies else None
    for candidate in candidates:
        stats = candidate.stats
        availability = stats.availability
        candidate.signals["availability"] = NEUTRAL if availability is None else availability
        if availability is not None:
            share = f"{availability * 100:.0f}%"
            if availability >= 0.99:
                candidate.reasons.append(
                    f"Reliable: {share} of {stats.requests} requests succeeded (7 days)"
                )
            elif availability < 0.9:
                candidate.reasons.append(
                    f"Failing often: {share} of {stats.requests} requests succeeded (7 days)"
                )
        latency = stats.p50_latency_ms
        if latency is None or fastest is None or slowest is None:
            candidate.signals["latency"] = NEUTRAL
            continue
        span = math.log(slowest) - math.log(fastest) if fastest > 0 else 0
        candidate.signals["latency"] = (
            1.0 if span <= 0 else (math.log(slowest) - math.log(max(latency, fastest))) / span
        )
        if latency == fastest:
            candidate.reasons.append(f"Fastest first token: {latency:,.0f} ms (median, 7 days)")


async def recommend(
    app: web.Application, user_id: str, prompt: str, category: str | None, limit: int
) -> dict[str, Any]:
    """Usable models ranked for ``prompt`` (at most ``limit``), with reasons and scores."""
    guessed = category is None
    category = category or guess_category(prompt)
    capability = needed_capability(category)
    entries = [
        e
        for e in await app[CATALOG].entries()
        if e.available and capability in e.model.capabilities
    ]
    if not entries:
        return {"category": category, "guessed": guessed, "models": []}
    db = app[DB]
    stats = await model_stats(app, [e.id for e in entries])
    candidates = [Candidate(e, stats.get(e.id, NO_TRAFFIC)) for e in entries]
    for candidate in candidates:
        capabilities = candidate.entry.model.capabilities
        if category == "image":
            candidate.signals["capability"] = 1.0
            candidate.reasons.insert(0, "Makes images")
        elif category == "code":
            strong = "code" in capabilities
            candidate.signals["capability"] = 1.0 if strong else 0.0
            if strong:
                candidate.reasons.insert(0, "Strong at code")
        else:
            candidate.signals["capability"] = 1.0
    _score_price(candidates, category)
    mine = await user_ratings(db, user_id)
    for candidate in candidates:
        rated = mine.get(candidate.entry.id)
        if rated is None:
            candidate.signals["ratings"] = NEUTRAL
            continue
        average, count = rated
        candidate.signals["ratings"] = (average - 1) / 4
        plural = "s" if count != 1 else ""
        candidate.reasons.append(f"You rated it ★{average:.1f} ({count} answer{plural})")
    _score_leaderboard(candidates, await leaderboard_ratings(db, category), category)
    _score_traffic(candidates)
    ranked = sorted(candidates, key=lambda c: (-c.score, c.entry.model.name.lower(), c.entry.id))
    return {
        "category": category,
        "guessed": guessed,
        "models": [
            {
                "model": c.entry.id,
                "name": c.entry.model.name,
                "provider": c.entry.provider.name,
                "score": round(c.score, 3),
                "reasons": c.reasons or ["A usable model for this prompt"],
                "pricing": c.entry.public()["pricing"],
                "stats": c.stats.out(),
            }
            for c in ranked[:limit]
        ],
    }
