"""The billing-backend contract: takes payments that top up the credit wallet."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Checkout:
    """Where to send the buyer, and the backend's reference to match its webhook later."""

    url: str
    reference: str


class BillingBackend(ABC):
    backend_id: ClassVar[str]
    name: ClassVar[str]

    @property
    def id(self) -> str:
        return self.backend_id

    @abstractmethod
    async def create_checkout(
        self, *, user_id: str, plan_id: str, amount_cents: int, currency: str, config: Any
    ) -> Checkout:
        """Start a payment. The wallet is credited only when the backend confirms it."""
