"""What a flag or an experiment decides for one user, without I/O: the cached rules and the
stable hash that buckets users.

A user's bucket for a name is the first 8 bytes of SHA-256("<name>:<user id>") modulo 10,000:
the same on every process and every run, independent between names (being in the first 30% of
one flag says nothing about another), and uniform enough that 30% is ~30% of any large group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from multinotes.segments import Segment, Traits

BUCKETS = 10_000


def bucket(name: str, user_id: str) -> int:
    digest = hashlib.sha256(f"{name}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@dataclass(frozen=True)
class FlagRule:
    name: str
    enabled: bool
    rollout: int
    allow_list: frozenset[str]
    segment: Segment

    @property
    def for_everyone(self) -> bool:
        return self.enabled and self.rollout >= 100 and self.segment.everyone

    @property
    def lists_emails(self) -> bool:
        return any("@" in entry for entry in self.allow_list)

    async def decide(
        self,
        user_id: str | None,
        email: str | None,
        traits: Callable[[], Awaitable[Traits | None]],
    ) -> bool:
        """On for this user? Off is off for everyone; then the allow-list; then the segment
        and the rollout must both let them in. A visitor without an account only gets a flag
        that is on for everyone. ``traits`` is called only when the answer depends on them."""
        if not self.enabled:
            return False
        if user_id is None:
            return self.for_everyone
        if user_id in self.allow_list:
            return True
        if self.lists_emails:
            if email is None:
                found = await traits()
                email = found.email if found else None
            if email is not None and email.lower() in self.allow_list:
                return True
        if not self.segment.everyone:
            found = await traits()
            if found is None or not self.segment.matches(found):
                return False
        return bucket(self.name, user_id) < self.rollout * (BUCKETS // 100)


@dataclass(frozen=True)
class ExperimentRule:
    id: str
    name: str
    #: (variant name, weight), the control first.
    variants: tuple[tuple[str, int], ...]
    conversion_event: str

    def assign(self, user_id: str) -> str:
        """The variant for this user: stable, in proportion to the weights."""
        total = sum(weight for _, weight in self.variants)
        # Salted apart from flags: a flag and an experiment of the same name split users
        # independently.
        point = bucket("experiment:" + self.name, user_id) * total // BUCKETS
        for name, weight in self.variants:
            if point < weight:
                return name
            point -= weight
        return self.variants[-1][0]  # unreachable: point < total
