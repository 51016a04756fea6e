"""Strays: numbers the server committed after the client had given their purchase up.

A purchase whose answer is lost is bought again once two listings of the account agree that it did
not happen (``RetryPolicy.settle``). A server may still commit it later: its number is then open at
the server and owned by nobody, charged if an SMS reaches it. For ``RetryPolicy.stray_watch``
seconds after such a purchase the client looks at the account's listings now and then (5 s apart,
doubling to a minute); one number per purchase given up, of its service and country, that no purchase
of this client and no other client's journal explains, is that purchase's stray. It is claimed in
the journal, then:

- with a code already: finished (it is paid for; a code meant for nobody is handed to nobody);
- else: kept for the next purchase of the same service, country and options within its price, which
  takes it instead of buying; when none came by the time the early-cancel window lets it go, cancelled.

A rent given up is looked for in the rent list, which names no service: any rent nothing explains is
its stray (as reconciliation judges a lost rent's). It is cancelled at once, refunded, while the
provider allows it (20 minutes from the purchase); after that it is finished, so that nothing is left
open under nobody — its paid hours were another purchase's.

``aclose()`` looks once more and closes what is kept. Counted in ``client.stats``: ``strays_found``,
``strays_adopted``, ``strays_closed``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import anyio
import attrs

from . import _actions
from ._convert import to_decimal
from ._exceptions import ActivationStateError, BadRequestError, RentStateError, SMSActivateError
from ._models import ActiveActivation
from ._news import Bought
from ._reconcile import Reconciliation, matches

if TYPE_CHECKING:
    from ._clock import Clock
    from ._session import Session
    from ._store import Intent, IntentState, Kind
    from ._tasks import TaskHost
    from ._waiting import Scheduler, WaitSettings

__all__ = ["Strays"]

log = logging.getLogger("smsactivate_async")

#: the options of a purchase that a stray must share to be handed out in its place (price aside)
_IGNORED = frozenset({"maxPrice", "orderId"})
FIRST_LOOK = 5.0
LONGEST_GAP = 60.0


@attrs.define
class _Watch:
    key: tuple[str, ...]
    wire: dict[str, str]
    until: float
    #: the watch in the journal (``watching``), which a survivor takes over if this client dies
    intent: Intent | None = None
    #: what was given up: an activation (looked for in the active list) or a rent (in the rent list)
    kind: Kind = "activation"


@attrs.define
class _Stray:
    row: ActiveActivation
    wire: dict[str, str]
    release_at: float


class Strays:
    """The client's watch for late-committed purchases, and the numbers it found (module docstring)."""

    def __init__(self, session: Session, reconciliation: Reconciliation, scheduler: Scheduler, host: TaskHost,
                 clock: Clock, settings: WaitSettings) -> None:
        self._session, self._scheduler, self._host, self._clock = session, scheduler, host, clock
        self._reconciliation = reconciliation
        self._settings = settings
        self._watches: list[_Watch] = []
        self._kept: dict[int, _Stray] = {}
        self._running = False
        self._wake = anyio.Event()

    @property
    def kept(self) -> list[int]:
        """Ids of the strays held for the next matching purchase."""
        return sorted(self._kept)

    async def watch(self, key: tuple[str, ...], wire: Mapping[str, str], seconds: float,
                    kind: Kind = "activation") -> None:
        """A purchase of ``wire`` (of ``kind``) was given up as never made: look for it for ``seconds``,
        and say so in the journal, so that a survivor goes on looking if this client dies first."""
        if seconds <= 0 or self._host.closing:
            return
        intent = await self._session.journal.watch(wire, key, kind)
        self._watches.append(_Watch(key, dict(wire), self._clock.now() + seconds, intent, kind))
        if not self._running:
            self._running = True
            self._host.start_soon(self._run, "smsactivate strays")

    def take(self, action: str, wire: Mapping[str, str]) -> ActiveActivation | None:
        """A kept stray that a purchase of ``wire`` may have instead of buying, if there is one."""
        if action not in ("getNumber", "getNumberV2"):
            return None
        wanted = _options(wire)
        ceiling = wire.get("maxPrice")
        for activation_id, stray in sorted(self._kept.items()):
            cost = stray.row.activation_cost
            if _options(stray.wire) != wanted:
                continue
            if ceiling is not None and (cost is None or cost > to_decimal(ceiling)):
                continue
            del self._kept[activation_id]
            self._session.telemetry.stray("adopted")
            log.info("%s: handed stray %s instead of buying", action, activation_id)
            return stray.row
        return None

    async def _run(self) -> None:
        gap = FIRST_LOOK
        next_look = self._clock.now() + gap  # kept across wakes for a release: those do not delay it
        try:
            while self._watches or self._kept:
                now = self._clock.now()
                wake_at = min([next_look if self._watches else float("inf"),
                               *(s.release_at for s in self._kept.values())])
                await self._clock.sleep(max(0.0, wake_at - now))
                await self._release_due()
                if self._watches and self._clock.now() >= next_look:
                    await self._look()
                    gap = min(gap * 2, LONGEST_GAP)
                    next_look = self._clock.now() + gap
        finally:
            self._running = False

    async def aclose(self) -> None:
        """Look once more (while purchases are watched), then close every kept stray. Watches still
        running stay in the journal, where the account's other clients (or the next to start) take
        them over once this client's lease is gone."""
        if self._watches:
            await self._look()
        self._watches.clear()
        for stray in list(self._kept.values()):
            stray.release_at = 0.0
        await self._release_due()

    async def _look(self) -> None:
        session = self._session
        now = self._clock.now()
        for watch in [w for w in self._watches if w.until <= now]:
            self._watches.remove(watch)
            await self._end(watch, "failed")  # nothing came: the purchase did not happen after all
        if not self._watches or session.journal.quiet:
            return  # (a store just back from an outage: what is unknown may be another client's; later)
        try:
            gate = self._reconciliation.gate
            async with gate.reconcile(), gate.claim_lock:
                # every purchase of this client has settled: an unknown number is nobody's of ours
                if any(w.kind == "activation" for w in self._watches):
                    await self._look_for_activations()
                if any(w.kind == "rent" for w in self._watches):
                    await self._look_for_rents()
        except SMSActivateError as exc:
            log.info("strays: the account's listing could not be read (%s); will look again", exc.code)

    async def _unresolved(self, watch: _Watch) -> bool:
        """A purchase of the watch's kind is being reconciled: an unknown number may be its own."""
        return bool(self._reconciliation.gate.unresolved[watch.key]
                    or await self._session.journal.others_unresolved(watch.key))

    async def _look_for_activations(self) -> None:
        session = self._session
        rows = await self._reconciliation.activations(fresh_after=self._clock.now())
        unknown = await self._reconciliation.unexplained(rows)
        taken: set[int] = set()  # claimed by an earlier watch of this look
        for watch in [w for w in self._watches if w.kind == "activation"]:
            if await self._unresolved(watch):
                continue
            for row in unknown:
                if row.activation_id in taken or not matches(row, watch.wire):
                    continue
                entry = session.journal.entry(None, "activation", row.activation_id, row.phone_number,
                                              service=row.service_code or watch.wire.get("service"),
                                              country=watch.wire.get("country"), cost=row.activation_cost)
                taken.add(row.activation_id)
                if not await session.journal.adopt(entry):
                    continue
                self._watches.remove(watch)
                await self._end(watch, "recovered")
                session.known_activations[row.activation_id] = self._clock.now()
                session.telemetry.stray("found")
                # bought (and paid for) after all: news now, whether it is adopted or closed
                session.news.bought(Bought("activation", row.activation_id,
                                           entry.service or "", entry.country or "", row.activation_cost))
                await self._keep_or_close(row, watch.wire)
                break

    async def _look_for_rents(self) -> None:
        """The rent list names no service: any rent nothing explains is a given-up rent's (module)."""
        session = self._session
        rents = await self._reconciliation.rents(fresh_after=self._clock.now())
        unknown = sorted(await self._reconciliation.unexplained(rents, "rent"), key=lambda rent: rent.id)
        for watch in [w for w in self._watches if w.kind == "rent"]:
            if await self._unresolved(watch):
                continue
            while unknown:
                rent = unknown.pop(0)
                service, country = watch.wire.get("service"), watch.wire.get("country")
                if not await session.journal.adopt(session.journal.entry(None, "rent", rent.id, rent.phone,
                                                                         service=service, country=country)):
                    continue  # another client's recovery took it meanwhile
                self._watches.remove(watch)
                await self._end(watch, "recovered")
                session.known_rents.add(rent.id)
                session.telemetry.stray("found")
                session.news.bought(Bought("rent", rent.id, service or "", country or ""))
                await self._close_rent(rent.id)
                break

    async def _end(self, watch: _Watch, outcome: IntentState) -> None:
        if watch.intent is not None:
            await self._session.journal.settle(watch.intent, outcome)

    async def _keep_or_close(self, row: ActiveActivation, wire: dict[str, str]) -> None:
        if not row.phone_number:
            await self._close(row.activation_id, finish=False)  # no phone to hand anybody
            return
        if row.sms_code or row.activation_status not in (None, 4, 1):
            log.warning("stray %s (a purchase committed after it was given up) already has a code: finished",
                        row.activation_id)
            await self._close(row.activation_id, finish=True)
            return
        log.warning("stray %s: a purchase committed after it was given up; kept for the next purchase of "
                    "%s/%s, else cancelled", row.activation_id, wire.get("service"), wire.get("country"))
        self._kept[row.activation_id] = _Stray(row, wire, self._clock.now() + self._settings.early_cancel_window)

    async def _release_due(self) -> None:
        now = self._clock.now()
        for activation_id, stray in sorted(self._kept.items()):
            if stray.release_at <= now:
                del self._kept[activation_id]
                await self._close(activation_id, finish=False)

    async def _close(self, activation_id: int, *, finish: bool) -> None:
        try:
            if finish:
                await self._session.call(_actions.SET_STATUS, {"activation_id": activation_id, "status": 6})
            else:
                await self._scheduler.cancel_number(activation_id)  # too early: kept and retried for us
            self._session.telemetry.stray("closed")
        except SMSActivateError as exc:
            log.warning("stray %s could not be closed (%s); the journal keeps it for recovery", activation_id, exc.code)

    async def _close_rent(self, rent_id: int) -> None:
        log.warning("stray rent %s (a rent committed after it was given up): cancelled, or finished past the "
                    "refund window", rent_id)
        try:
            try:
                await self._session.call(_actions.SET_RENT_STATUS, {"rent_id": rent_id, "status": 2})
            except RentStateError as exc:
                if exc.code != "CANT_CANCEL":
                    raise
                await self._session.call(_actions.SET_RENT_STATUS, {"rent_id": rent_id, "status": 1})
            self._session.telemetry.stray("closed")
        except (ActivationStateError, BadRequestError) as exc:
            log.info("stray rent %s was closed already (%s)", rent_id, exc.code)
            await self._session.journal.record_closed("rent", rent_id, "finished" if "FINISH" in exc.code else "cancelled")
        except SMSActivateError as exc:
            log.warning("stray rent %s could not be closed (%s); the journal keeps it for recovery", rent_id, exc.code)


def _options(wire: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in wire.items() if name not in _IGNORED}

