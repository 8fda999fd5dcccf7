"""Cron expressions, read in a time zone.

Five fields (minute hour day-of-month month day-of-week) or one of croniter's ``@hourly``,
``@daily``, ``@weekly``, ``@monthly``, ``@yearly``. Evaluated on the zone's wall clock, with the
DST rules cron users expect: a time skipped when clocks go forward runs once, just after the
jump (croniter's behaviour); a time repeated when clocks go back runs once, at its first
occurrence, unless the expression runs every hour anyway (``*`` in the hour field), which keeps
its pace in real time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from multinotes.errors import Invalid

ALIASES = frozenset(
    {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}
)
#: Occurrences looked at to find the shortest gap between two runs: any gap shorter than an hour
#: shows within the first matching hours, which come first from any start.
GAP_SAMPLE = 200
#: A fixed start for the frequency check, so the answer does not depend on today's date.
SAMPLE_START = datetime(2030, 1, 1, tzinfo=UTC)


def normalise(expression: str) -> str:
    """Single spaces between fields; aliases in lower case."""
    tidy = " ".join(expression.split())
    return tidy.lower() if tidy.startswith("@") else tidy


def check(expression: str, *, min_interval_minutes: int) -> str:
    """The expression, tidied; ``Invalid`` on field ``cron`` when it is malformed, never fires,
    or fires more often than every ``min_interval_minutes``."""
    expr = normalise(expression)
    if not expr:
        raise Invalid("Write a cron expression.", fields={"cron": "required"})
    if not (expr in ALIASES or (len(expr.split(" ")) == 5 and croniter.is_valid(expr))):
        raise Invalid(
            "That is not a cron expression: five fields, minute hour day month weekday, "
            "e.g. 0 9 * * 1-5 (weekdays at 09:00).",
            code="invalid_cron",
            fields={"cron": "malformed"},
        )
    try:
        it = croniter(expr, SAMPLE_START)
        times = [it.get_next(datetime) for _ in range(GAP_SAMPLE)]
    except (CroniterBadCronError, CroniterBadDateError):
        raise Invalid(
            "That schedule never runs (no such date).",
            code="invalid_cron",
            fields={"cron": "never runs"},
        ) from None
    shortest = min(b - a for a, b in pairwise(times))
    if shortest < timedelta(minutes=min_interval_minutes):
        raise Invalid(
            f"That runs too often: at most once every {min_interval_minutes} minutes.",
            code="cron_too_frequent",
            fields={"cron": f"more often than every {min_interval_minutes} minutes"},
        )
    return expr


def _every_hour(expr: str) -> bool:
    return expr == "@hourly" or (not expr.startswith("@") and expr.split(" ")[1] == "*")


def _repeated_wall_time(moment: datetime, zone: ZoneInfo) -> bool:
    """Whether ``moment`` is the second time its wall-clock time happens (clocks went back)."""
    first = moment.replace(tzinfo=None).replace(tzinfo=zone, fold=0)
    return first.astimezone(UTC) < moment.astimezone(UTC)


def next_runs(expression: str, timezone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next ``count`` run times strictly after ``after``, as aware UTC datetimes."""
    zone = ZoneInfo(timezone)
    it = croniter(expression, after.astimezone(zone))
    found: list[datetime] = []
    skip_repeats = not _every_hour(expression)
    while len(found) < count:
        moment: datetime = it.get_next(datetime)
        if skip_repeats and _repeated_wall_time(moment, zone):
            continue
        found.append(moment.astimezone(UTC))
    return found


def next_run(expression: str, timezone: str, after: datetime) -> datetime:
    return next_runs(expression, timezone, after, 1)[0]


def describe(moment: datetime, timezone: str) -> str:
    """A run time as people read it, on the schedule's wall clock: ``Mon 7 Dec 2026, 09:00``."""
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"
