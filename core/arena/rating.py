"""Bradley-Terry ratings from blind votes, with bootstrap confidence intervals.

A vote ranks a comparison's answers; it becomes pairwise games (every pair of answers: the better
ranked one wins, equal ranks are a tie, counted as half a win each). Strengths are fitted with the
minorisation-maximisation algorithm (Hunter 2004) and shown on the familiar Elo scale
(``400·log10``, mean 1000). Intervals resample whole votes (not games: the games of one vote are
not independent) and take the 2.5 and 97.5 percentiles.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

#: One vote: (model id, rank) for each answer, rank 1 best, equal ranks tied.
Vote = list[tuple[str, int]]
#: A small prior (a tie against a virtual average model) keeps an unbeaten model finite.
PRIOR_GAMES = 0.5
ITERATIONS = 200
BOOTSTRAP_ROUNDS = 200


@dataclass
class Rated:
    model_id: str
    rating: float
    low: float
    high: float
    wins: float
    games: int


def games_of(votes: list[Vote]) -> list[tuple[str, str, float]]:
    """Pairwise results ``(a, b, score of a)``: 1 a won, 0.5 tie, 0 b won."""
    games = []
    for vote in votes:
        for (a, rank_a), (b, rank_b) in combinations(vote, 2):
            score = 0.5 if rank_a == rank_b else (1.0 if rank_a < rank_b else 0.0)
            games.append((a, b, score))
    return games


def fit(games: list[tuple[str, str, float]], prior: float = PRIOR_GAMES) -> dict[str, float]:
    """Bradley-Terry strengths on the Elo scale (mean 1000) from pairwise games; ``prior`` is
    the number of tied games against a virtual average model each one starts with."""
    models = sorted({m for a, b, _ in games for m in (a, b)})
    if not models:
        return {}
    wins: dict[str, float] = defaultdict(float)
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    for a, b, score in games:
        wins[a] += score
        wins[b] += 1.0 - score
        pairs[(a, b)] += 1
        pairs[(b, a)] += 1
    strength = dict.fromkeys(models, 1.0)
    for _ in range(ITERATIONS):
        updated = {}
        for model in models:
            # The prior: 2·prior games against a model of strength 1, half of them won.
            denominator = 2 * prior / (strength[model] + 1.0)
            for other in models:
                n = pairs.get((model, other), 0)
                if n:
                    denominator += n / (strength[model] + strength[other])
            updated[model] = (wins[model] + prior) / denominator
        # Fix the scale: geometric mean 1.
        mean_log = sum(math.log(s) for s in updated.values()) / len(updated)
        strength = {m: s / math.exp(mean_log) for m, s in updated.items()}
    return {m: 1000 + 400 * math.log10(s) for m, s in strength.items()}


def leaderboard(votes: list[Vote], *, seed: int = 0, rounds: int = BOOTSTRAP_ROUNDS) -> list[Rated]:
    """Every model that took part, best first, with its 95 % interval. ``seed`` makes the
    intervals reproducible (the same votes always show the same table)."""
    games = games_of(votes)
    ratings = fit(games)
    wins: dict[str, float] = defaultdict(float)
    played: dict[str, int] = defaultdict(int)
    for a, b, score in games:
        wins[a] += score
        wins[b] += 1.0 - score
        played[a] += 1
        played[b] += 1
    samples: dict[str, list[float]] = defaultdict(list)
    rng = random.Random(seed)
    if len(votes) > 1:
        for _ in range(rounds):
            resampled = [votes[rng.randrange(len(votes))] for _ in votes]
            for model, value in fit(games_of(resampled)).items():
                samples[model].append(value)
    rated = []
    for model, value in ratings.items():
        drawn = sorted(samples[model]) or [value]
        low = drawn[int(0.025 * (len(drawn) - 1))]
        high = drawn[math.ceil(0.975 * (len(drawn) - 1))]
        rated.append(
            Rated(model, value, min(low, value), max(high, value), wins[model], played[model])
        )
    rated.sort(key=lambda r: (-r.rating, r.model_id))
    return rated
