"""The ledger: every request, purchase, status change, refund and webhook try, for assertions.

Written from the protocol documents, not from the client.
"""

from __future__ import annotations

import collections
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["Ledger", "PurchaseRecord", "RefundRecord", "RequestRecord", "StatusRecord"]


@attrs.frozen
class RequestRecord:
    at: float
    action: str
    status: int
    fault: str | None


@attrs.frozen
class PurchaseRecord:
    at: float
    kind: str  # "activation" | "rent" | "product"
    id: int
    key: str
    cost: Decimal
    service: str
    order_id: str | None


@attrs.frozen
class StatusRecord:
    at: float
    id: int
    old: str
    new: str
    cause: str


@attrs.frozen
class RefundRecord:
    at: float
    id: int
    amount: Decimal
    reason: str


@attrs.define
class Ledger:
    """Everything that happened, for assertions: requests, purchases, status changes, refunds."""

    requests: list[RequestRecord] = attrs.field(factory=list)
    purchases: list[PurchaseRecord] = attrs.field(factory=list)
    status_changes: list[StatusRecord] = attrs.field(factory=list)
    refunds: list[RefundRecord] = attrs.field(factory=list)
    webhook_deliveries: list[tuple[float, int, int]] = attrs.field(factory=list)
    #: requests refused for going over the account's budget (the first of a block included)
    over_budget: int = 0
    #: (start, end) of each block of the account, as finally extended
    blocks: list[list[float]] = attrs.field(factory=list)

    def requests_for(self, action: str) -> int:
        """How many requests of ``action`` were answered."""
        return sum(1 for r in self.requests if r.action == action)

    def max_requests_in_window(self, window: float = 1.0) -> int:
        """The most requests that arrived within any ``window`` seconds."""
        times = sorted(r.at for r in self.requests)
        best = 0
        start = 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def duplicate_orders(self) -> dict[str, int]:
        """Order ids bought more than once (must be empty)."""
        counts = collections.Counter(p.order_id for p in self.purchases if p.order_id)
        return {order: n for order, n in counts.items() if n > 1}

    def spent(self) -> Decimal:
        """Money spent on purchases in all."""
        return sum((p.cost for p in self.purchases), Decimal("0"))

    def refunded(self) -> Decimal:
        """Money refunded in all."""
        return sum((r.amount for r in self.refunds), Decimal("0"))

    def summary(self) -> dict[str, Any]:
        """What happened, as JSON-ready data: what ``smsactivate simulate`` serves on its admin path and
        prints at exit (money as strings, exact)."""
        by_action = collections.Counter(r.action for r in self.requests)
        return {
            "requests": len(self.requests),
            "requests_by_action": dict(sorted(by_action.items())),
            "max_requests_in_a_second": self.max_requests_in_window(1.0),
            "over_budget": self.over_budget,
            "blocks": [[round(start, 3), round(end, 3)] for start, end in self.blocks],
            "purchases": len(self.purchases),
            "duplicate_orders": self.duplicate_orders(),
            "spent": str(self.spent()),
            "refunded": str(self.refunded()),
            "webhook_deliveries": len(self.webhook_deliveries),
        }

    def records(self) -> dict[str, Any]:
        """Every request and purchase, as JSON-ready rows: what ``/_simulator/ledger?records=1`` adds for
        a benchmark that runs the simulator in a process of its own (``at`` in simulator seconds).
        Requests are ``[at, action, status, fault]``; purchases ``[at, kind, id, order_id, cost]``; no key."""
        return {
            "requests": [[round(r.at, 4), r.action, r.status, r.fault] for r in self.requests],
            "purchases": [[round(p.at, 4), p.kind, p.id, p.order_id, str(p.cost)] for p in self.purchases],
        }
