"""Reconciliation: what the account's listings say of purchases whose answers were lost.

A purchase whose answer is lost may have been carried out. What deciding that needs is kept here,
shared by the purchase loop (``_settlement``), the watch for strays (``_strays``) and recovery
(``_recovery``): quiet periods (no purchase of this client on the wire while a listing is read), one
listing per quiet period, the rows nothing explains (not bought by this client, in nobody's journal),
and claiming such rows in the journal and adopting them as a purchase's numbers.

It calls the session (listings) and the journal; it calls nothing above it.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Generic, TypeVar, cast

import anyio

from ._actions import GET_RENT_LIST, Action
from ._exceptions import BadResponseError, PurchaseUncertainError, SMSActivateError
from ._models import ActiveActivation, MultiServiceActivation, Number, Rent, RentListEntry
from ._store import Intent, Kind

if TYPE_CHECKING:
    from ._clock import Clock
    from ._session import Session

__all__ = ["PurchaseGate", "Reconciliation", "Row", "ident", "lost", "matches"]

R = TypeVar("R")
L = TypeVar("L")
#: a row of a listing: an active activation, or a rent of the rent list
Row = TypeVar("Row", ActiveActivation, RentListEntry)


class _Listing(Generic[L]):
    """One listing of the account in a quiet period: what was read, and when it was asked for."""

    def __init__(self) -> None:
        self._read: tuple[float, L] | None = None

    def forget(self) -> None:
        self._read = None

    async def read(self, clock: Clock, fresh_after: float | None, ask: Callable[[], Awaitable[L]]) -> L:
        """The listing read in this quiet period, or a new one if it was asked for before ``fresh_after``."""
        if self._read is not None and (fresh_after is None or self._read[0] >= fresh_after):
            return self._read[1]
        asked_at = clock.now()
        listing = await ask()
        self._read = (asked_at, listing)
        return listing


class PurchaseGate:
    """Lets reconciliation see a quiet moment: no purchase of this client in flight.

    A reconciler waits until every purchase under way has settled (and keeps new ones waiting),
    so each unknown active id on the server belongs to a purchase whose answer was lost.
    """

    def __init__(self) -> None:
        self._cond = anyio.Condition()
        self._in_flight = 0
        self._reconcilers = 0
        #: a quiet period lasts while any reconciler waits or works; no purchase runs during it, so
        #: one listing of the server's activations (and one of its rents) serves every reconciler of
        #: the period
        self.activations: _Listing[list[ActiveActivation]] = _Listing()
        self.rents: _Listing[list[RentListEntry]] = _Listing()
        self.claim_lock = anyio.Lock()
        self._one_purchase = anyio.Lock()
        #: purchases per (action, service, country) that had an attempt which may have been carried
        #: out and are not settled yet: each owns at most one unknown activation on the server
        self.unresolved: collections.Counter[tuple[str, ...]] = collections.Counter()

    def forget_listings(self) -> None:
        self.activations.forget()
        self.rents.forget()

    @asynccontextmanager
    async def purchase(self, pace: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
        # Paced before entering: "in flight" then means on the wire, so that a reconciliation waits
        # for the network, not for the limiter's queue. A purchase held back by a reconciliation
        # takes a fresh slot, so that the held ones do not leave in one burst.
        while True:
            # Purchases enter the limiter one at a time: the others wait here, not holding slots of
            # the budget in advance, so that every other request (a status, a close, a scan) takes
            # the next slot before them — what releases money or a slot goes first, and a stop
            # decided meanwhile (a spending guard's) is seen before the next purchase leaves.
            async with self._one_purchase:
                await pace()
            async with self._cond:
                if not self._reconcilers:
                    self._in_flight += 1
                    break
                while self._reconcilers:
                    await self._cond.wait()
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    @asynccontextmanager
    async def reconcile(self) -> AsyncIterator[None]:
        async with self._cond:
            if not self._reconcilers:
                self.forget_listings()
            self._reconcilers += 1
            while self._in_flight:
                await self._cond.wait()
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._cond:
                    self._reconcilers -= 1
                    self._cond.notify_all()


class Reconciliation:
    """The listings, the rows nothing explains, and claiming them (module docstring)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.journal = session.journal
        self.gate = PurchaseGate()

    async def activations(self, fresh_after: float | None) -> list[ActiveActivation]:
        """The quiet period's listing of active activations, asked for again if it was asked before
        ``fresh_after``."""
        return await self.gate.activations.read(self._session.clock, fresh_after, self._session.active_activations)

    async def rents(self, fresh_after: float | None) -> list[RentListEntry]:
        """The quiet period's rent list, as :meth:`activations`."""
        async def ask() -> list[RentListEntry]:
            rents: list[RentListEntry] = await self._session.call(GET_RENT_LIST, {})
            return rents

        return await self.gate.rents.read(self._session.clock, fresh_after, ask)

    async def _others_settled(self, kind: Kind, ids: list[int]) -> set[int]:
        """Of the unknown ids of a listing just read, those the journal gives to anyone: never candidates.

        Another client's purchase may be in the listing before its answer is journaled: first wait
        for every purchase of another live client that was on the wire when the listing was read.
        """
        if self.journal.persistent:
            await self.journal.wait_for_others(await self.journal.store.last_seq(), timeout=self.journal.stale_after)
        return set(await self.journal.journaled(kind, ids))

    async def unexplained(self, rows: list[Row], kind: Kind = "activation") -> list[Row]:
        """The rows of a listing just read (activations, or ``kind="rent"`` the rent list) that nothing
        explains: not bought by this client, not in anyone's journal (after the purchases other
        clients had on the wire were journaled). What reconciliation, strays and recovery may take
        as a lost purchase's number."""
        known: Container[int] = self._session.known_rents if kind == "rent" else self._session.known_activations
        unknown = [r for r in rows if ident(r) not in known]
        taken = await self._others_settled(kind, [ident(r) for r in unknown])
        return [r for r in unknown if ident(r) not in taken]

    async def claim_in_journal(self, intent: Intent | None,
                               chosen: Sequence[ActiveActivation] | Sequence[RentListEntry]) -> bool:
        """Atomic in the journal: of two clients reconciling at once, one takes each number."""
        for item in chosen:
            if isinstance(item, RentListEntry):
                entry = self.journal.entry(intent, "rent", item.id, item.phone)
            else:
                entry = self.journal.entry(intent, "activation", item.activation_id, item.phone_number,
                                           service=item.service_code,
                                           country=None if item.country_code is None else str(item.country_code),
                                           cost=item.activation_cost)
            if not await self.journal.adopt(entry):
                return False
        return True

    def adopt(self, action: Action[R], chosen: Sequence[ActiveActivation] | Sequence[RentListEntry],
              cause: SMSActivateError | None) -> R:
        """The listed rows as ``action``'s answer: a rent, a number, or a multi-service purchase's list."""
        now = self._session.clock.now()
        first = chosen[0]
        if isinstance(first, RentListEntry):
            self._session.known_rents.add(first.id)
            return cast(R, Rent(id=first.id, number=_listed_phone(action, first.id, first.phone, cause)))
        numbers = []
        for row in chosen:
            assert isinstance(row, ActiveActivation)
            self._session.known_activations[row.activation_id] = now
            numbers.append(Number(
                activation_id=row.activation_id,
                phone_number=_listed_phone(action, row.activation_id, row.phone_number, cause),
                activation_cost=row.activation_cost, currency=row.currency, country_code=row.country_code,
                can_get_another_sms=row.can_get_another_sms, activation_time=row.activation_time,
                service_code=row.service_code,
            ))
        if action.wire == "getMultiServiceNumber":
            return cast(R, [MultiServiceActivation(activation_id=n.activation_id, phone_number=n.phone_number,
                                                   service=n.service_code or "") for n in numbers])
        return cast(R, numbers[0])


def lost(cause: SMSActivateError) -> str:
    """How the answer was lost, with what came back when something unreadable did."""
    return f"{cause.code}: {cause.excerpt}" if isinstance(cause, BadResponseError) else cause.code


def _listed_phone(action: Action[R], ident_: int, phone: str | None, cause: SMSActivateError | None) -> str:
    # Adopted, so it is ours and must be closed, but a number without its phone is no use to the
    # caller: say which one it is rather than hand back an empty phone.
    if phone:
        return phone
    how = "committed late" if cause is None else lost(cause)
    raise PurchaseUncertainError(
        f"{action.wire}: the lost purchase ({how}) is most likely {ident_}, but the server's list shows "
        "no phone for it",
        action=action.wire, candidate_ids=(ident_,), code="PURCHASE_UNCERTAIN",
    )


def ident(item: ActiveActivation | RentListEntry) -> int:
    return item.id if isinstance(item, RentListEntry) else item.activation_id


def matches(row: ActiveActivation, wire: Mapping[str, str]) -> bool:
    """Whether a listed activation may be the number of a purchase of ``wire`` (service, country, open)."""
    service = wire.get("service")
    if service is not None and row.service_code is not None and row.service_code != service:
        return False
    country = wire.get("country")
    if country is not None and row.country_code is not None and str(row.country_code) != country:
        return False
    # A lost purchase may already have its code: only closed rows are ruled out.
    return row.activation_status not in (6, 8, 10)
