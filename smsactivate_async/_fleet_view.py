"""The fleet console's reading of a journal: ``smsactivate fleet --store URL [--watch]``.

Read-only: it reads the leases, the open entries, what was bought since a time and the recovery
notes of one account's namespace, and changes no record. What it shows:

- each owner (one client): its lease, whether it is alive, its open numbers and how many of them
  are suspended for a restart (``aclose(suspend=True)``);
- the oldest open number (how long it has been open, whose it is);
- the recoveries noted by survivors (which dead owner's number, closed how);
- the purchases since a time: how many, what they cost (as their answers named it) and what came
  back (numbers closed without a code).

Phone numbers are never shown; activation ids are (an operator acts on them).
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from ._store import Entry, Store
from ._telemetry import decimal_or_none

__all__ = ["FleetView", "OwnerView", "read_fleet"]


@attrs.frozen
class OwnerView:
    """One owner of the account's numbers, as the journal holds it."""

    owner: str
    #: when (wall time) its lease ends; ``None``: it holds numbers but no lease (dead, or a store
    #: restarted empty)
    lease_until: float | None
    alive: bool
    open_activations: int = 0
    open_rents: int = 0
    suspended: int = 0


@attrs.frozen
class FleetView:
    """What the journal says of the fleet at wall time ``at``."""

    at: float
    since: float
    owners: list[OwnerView]
    open_numbers: int
    suspended: int
    #: the oldest open number: (kind, id, owner, seconds open)
    oldest: tuple[str, int, str, float] | None
    recoveries: list[tuple[float, str]]
    bought: int
    #: numbers bought whose answer named no price (not in ``spent``)
    unpriced: int
    spent: Decimal
    refunded: Decimal

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (money as strings)."""
        return {
            "at": self.at, "since": self.since, "open_numbers": self.open_numbers, "suspended": self.suspended,
            "owners": [attrs.asdict(owner) for owner in self.owners],
            "oldest": None if self.oldest is None else dict(zip(("kind", "id", "owner", "seconds_open"), self.oldest,
                                                                strict=True)),
            "recoveries": [{"at": at, "text": text} for at, text in self.recoveries],
            "bought": self.bought, "unpriced": self.unpriced, "spent": str(self.spent), "refunded": str(self.refunded),
        }


async def read_fleet(store: Store, *, now: float, since: float) -> FleetView:
    """The fleet as ``store`` (opened on the account's namespace) holds it at wall time ``now``."""
    leases = await store.leases()
    open_entries = await store.open_entries()
    history: list[Entry] = await store.history(since)
    notes = await store.notes(since)
    by_owner: dict[str, dict[str, int]] = {}
    for entry in open_entries:
        counts = by_owner.setdefault(entry.owner, {"open_activations": 0, "open_rents": 0, "suspended": 0})
        counts["open_rents" if entry.kind == "rent" else "open_activations"] += 1
        if entry.suspended_until is not None:
            counts["suspended"] += 1
    owners = [
        OwnerView(owner, leases.get(owner), leases.get(owner, float("-inf")) > now, **by_owner.get(owner, {}))
        for owner in sorted(set(leases) | set(by_owner))
    ]
    oldest = min(open_entries, key=lambda e: e.bought_at, default=None)
    spent = refunded = Decimal(0)
    unpriced = 0
    for entry in history:
        cost = decimal_or_none(entry.cost)
        if cost is None:
            unpriced += 1
            continue
        spent += cost
        if entry.state == "cancelled" and not entry.code:  # closed without a code: the provider refunds it
            refunded += cost
    return FleetView(
        at=now, since=since, owners=owners, open_numbers=len(open_entries),
        suspended=sum(1 for e in open_entries if e.suspended_until is not None),
        oldest=None if oldest is None else (oldest.kind, oldest.id, oldest.owner, max(0.0, now - oldest.bought_at)),
        recoveries=notes, bought=len(history), unpriced=unpriced, spent=spent, refunded=refunded,
    )
