"""Recovery: the survivors close the numbers of a client that died.

A client's claim on its numbers is a lease in the journal. When it has expired (the process was
killed, the machine went away) — or, with no lease in the journal at all (a store restarted
empty), once this client has seen it missing for a whole lease — any other client of the account may take the numbers over, one by
one and atomically, and close them: 6 where a code arrived (the buyer got what it paid for),
8 otherwise (refunded), with the usual early-cancel deferral. Purchases the dead client had on the
wire are reconciled against the server's list: an active number no client has journaled, of the
service and country of such a purchase, is that purchase's number. A dead client's rents are
cancelled while the provider refunds them (20 minutes), else kept open by the survivor (their paid
hours are not given up): the provider ends them at the end of their time.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from . import _actions
from ._exceptions import ActivationStateError, BadRequestError, RentStateError, SMSActivateError
from ._journal import Journal, Liveness, RecoveryReport
from ._models import RentListEntry, StatusCode
from ._news import Bought
from ._store import UNSETTLED, Entry, Intent
from ._telemetry import decimal_or_none

if TYPE_CHECKING:
    from ._session import Session
    from ._settlement import Settlement
    from ._waiting import Scheduler

__all__ = ["recover"]

log = logging.getLogger("smsactivate_async")

_CLOSED = frozenset({6, 8, 10})
_OUTCOMES = ("finished", "cancelled", "pending", "rents_cancelled", "rents_finished", "rents_kept")


async def _note(journal: Journal, text: str) -> None:
    """A line for the fleet console; a store that cannot keep it loses only the line."""
    try:
        await journal.store.note(journal.wall(), text)
    except SMSActivateError as exc:
        log.debug("recovery note not kept (%s): %s", exc.code, text)


async def recover(settlement: Settlement, scheduler: Scheduler, rent_waited: Callable[[int], bool]) -> RecoveryReport:
    session = settlement.session
    journal = session.journal
    report = RecoveryReport()
    if not journal.persistent:
        return report
    live = await journal.liveness()
    for entry in await journal.store.open_entries():
        if entry.owner in live:
            continue
        if entry.suspended_until is not None and entry.suspended_until > journal.wall():
            continue  # suspended by its owner for a restart: left alone until its deadline
        # Leases are read again right before each take-over: closing a live client's number would
        # cancel it under its waiter, so an owner that renewed meanwhile keeps it.
        live = await journal.liveness()
        if entry.owner in live:
            continue
        if await journal.take_over(entry):
            before = {what: len(getattr(report, what)) for what in _OUTCOMES}
            # held here now: its close (and refund) is counted here
            session.telemetry.holding(entry.id, service=entry.service, country=entry.country,
                                      cost=decimal_or_none(entry.cost), codes=(entry.code,) if entry.code else (),
                                      kind=entry.kind)
            if entry.kind == "rent":
                await _close_rent(session, entry, report, waited=rent_waited(entry.id))
            else:
                await _close(session, scheduler, entry, report)
            done = [what for what in _OUTCOMES if len(getattr(report, what)) > before[what]]
            await _note(journal, f"{journal.owner} took {entry.kind} {entry.id} of dead owner {entry.owner}: "
                                 f"{done[0] if done else 'to be closed again'}")
    for intent in await journal.store.intents(("queued",)):
        if intent.owner not in live:
            await journal.settle(intent, "failed")  # between attempts that surely were not sent: nothing bought
    for watch in await journal.store.intents(("watching",)):
        if watch.owner not in live:
            # A dead client's purchase given up as never made, which the server may still commit:
            # this client watches for it what is left of the watch (its own watch first, then the dead one's ends).
            await _watch(settlement, watch, watch.created + session.retry.stray_watch - journal.wall(), report)
            await journal.settle(watch, "recovered")
    dead = [i for i in await journal.store.intents(UNSETTLED) if i.owner not in live]
    if any(i.kind == "activation" for i in dead):
        await _recover_lost_purchases(settlement, scheduler, [i for i in dead if i.kind == "activation"], live, report)
    if any(i.kind == "rent" for i in dead):
        await _recover_lost_rents(settlement, [i for i in dead if i.kind == "rent"], live, report)
    return report


async def _close_rent(session: Session, entry: Entry, report: RecoveryReport, waited: bool = False) -> None:
    """A dead owner's rent: cancelled (2, refunded) while the provider allows it (20 minutes from the
    purchase); after that it is **kept** — adopted by this client, open, its paid hours not forfeited
    (finishing it would give them up): whoever resumes it reads its messages, and the provider ends it
    at the end of its time. A rent this client itself waits on is only adopted, never closed."""
    journal = session.journal
    age_h = max(0.0, journal.wall() - entry.bought_at) / 3600
    left = _hours_left(journal, entry)
    if waited:
        log.info("recovery: rent %s of dead owner %s is waited on here: adopted, left open (bought %.2f h ago, %s)",
                 entry.id, entry.owner, age_h, left)
        report.rents_kept.append(entry.id)
        return
    try:
        try:
            await session.call(_actions.SET_RENT_STATUS, {"rent_id": entry.id, "status": 2})
            report.rents_cancelled.append(entry.id)
            log.info("recovery: rent %s of dead owner %s cancelled within the refund window (bought %.2f h ago, "
                     "%s, refunded)", entry.id, entry.owner, age_h, left)
        except RentStateError as exc:
            if exc.code != "CANT_CANCEL":
                raise
            status = await session.call(_actions.GET_RENT_STATUS, {"rent_id": entry.id})  # still the provider's?
            report.rents_kept.append(entry.id)
            log.info("recovery: rent %s of dead owner %s kept open (past the refund window, bought %.2f h ago, %s, "
                     "%d message(s)): its paid hours are not given up; resume it with wait_for_rent_sms(%s)",
                     entry.id, entry.owner, age_h, left, status.quantity, entry.id)
    except (ActivationStateError, BadRequestError) as exc:
        # Already closed on the server (its time ran out, or its owner closed it just before dying).
        log.info("recovery: rent %s was already closed (%s)", entry.id, exc.code)
        await journal.record_closed("rent", entry.id, "finished" if "FINISH" in exc.code else "cancelled")
    except SMSActivateError as exc:
        log.warning("recovery: could not close rent %s (%s); will try again", entry.id, exc.code)
        await journal.give_back(entry)


def _hours_left(journal: Journal, entry: Entry) -> str:
    """The rent's paid hours left, as far as the journal knows them: words for the log."""
    if entry.paid_until is None:
        return "its paid hours unknown here"
    left = max(0.0, entry.paid_until - journal.wall()) / 3600
    return f"{left:.2f} h of its paid hours left (more if it was extended)"


async def _recover_lost_rents(settlement: Settlement, dead: list[Intent], live: Liveness,
                              report: RecoveryReport) -> None:
    """Rent purchases a dead client had on the wire: an active rent of the account that nobody has
    journaled is one of theirs (the rent list names no service: any of them)."""
    session = settlement.session
    journal = session.journal
    if any(i.kind == "rent" and i.owner in live for i in await journal.store.intents(UNSETTLED)):
        return  # a live client is reconciling a rent purchase: the unknown rents may be its; next time
    rents: list[RentListEntry] = await session.call(_actions.GET_RENT_LIST, {})
    unknown = sorted(await settlement.reconciliation.unexplained(rents, "rent"), key=lambda r: r.id)
    found: set[str] = set()
    for intent, rent in zip(sorted(dead, key=lambda i: i.seq), unknown, strict=False):
        entry = journal.entry(intent, "rent", rent.id, rent.phone)
        if await journal.adopt(entry):
            found.add(intent.id)
            session.known_rents.add(rent.id)
            await _close_rent(session, entry, report)
    for intent in dead:
        if intent.id not in found:  # none listed: the server may commit it yet, so this client watches for it
            await _watch(settlement, intent, session.retry.stray_watch, report)
        await journal.settle(intent, "recovered")
    log.info("recovery: %d rent purchase(s) left on the wire by dead clients settled", len(dead))


async def _close(session: Session, scheduler: Scheduler, entry: Entry, report: RecoveryReport) -> None:
    journal = session.journal
    # the early-cancel window counts from the purchase, on this client's clock
    session.known_activations[entry.id] = session.clock.now() - max(0.0, journal.wall() - entry.bought_at)
    try:
        code = entry.code
        if code is None:
            # A code may have come that the dead client never read: then the number is finished, not
            # cancelled (the server refuses 8 after a code), and the report says so.
            status = await session.call(_actions.GET_STATUS, {"activation_id": entry.id})
            if status.status is StatusCode.STATUS_CANCEL:
                await journal.record_closed("activation", entry.id, "cancelled")
                report.cancelled.append(entry.id)
                return
            code = status.code
        if code is not None:
            await session.call(_actions.SET_STATUS, {"activation_id": entry.id, "status": 6})
            report.finished.append(entry.id)
        elif await scheduler.cancel(entry.id):
            report.cancelled.append(entry.id)
        else:
            report.pending.append(entry.id)
    except (ActivationStateError, BadRequestError) as exc:
        # Already closed on the server (expired, or closed by its owner just before it died).
        log.info("recovery: %s was already closed (%s)", entry.id, exc.code)
        await journal.record_closed("activation", entry.id, "cancelled")
        report.cancelled.append(entry.id)
    except SMSActivateError as exc:
        # The server could not be reached: give the number back to its dead owner, so that the next
        # recovery (this client's or another's) tries again, instead of holding it unattended.
        log.warning("recovery: could not close %s (%s); will try again", entry.id, exc.code)
        await journal.give_back(entry)


async def _watch(settlement: Settlement, intent: Intent, seconds: float, report: RecoveryReport) -> None:
    if settlement.strays is not None and seconds > 0:
        key = tuple(intent.key.split("|"))
        # the purchase as it was sent: the journal keeps its params without the action, which its key leads
        # with (a stray is handed to a purchase of the same action and options only)
        await settlement.strays.watch(key, {"action": key[0], **intent.params}, seconds, intent.kind)
        report.watched.append(f"{intent.params.get('service', '')}/{intent.params.get('country', '')}")


async def _recover_lost_purchases(
    settlement: Settlement, scheduler: Scheduler, dead: list[Intent], live: Liveness, report: RecoveryReport,
) -> None:
    session = settlement.session
    journal = session.journal
    rows = await session.active_activations()
    unknown = [r for r in await settlement.reconciliation.unexplained(rows) if r.activation_status not in _CLOSED]
    # A live client's purchase of the same kind still unsettled — this client's own included: its
    # number may be in the listing before its answer is read — goes first.
    busy = {i.key for i in await journal.store.intents(UNSETTLED) if i.owner in live}
    by_key: dict[str, list[Intent]] = collections.defaultdict(list)
    for intent in dead:
        by_key[intent.key].append(intent)
    for key, intents in by_key.items():
        if key in busy:
            continue
        service, country = intents[0].params.get("service"), intents[0].params.get("country")
        matching = sorted(
            (r for r in unknown if (service is None or r.service_code in (None, service))
             and (country is None or r.country_code is None or str(r.country_code) == country)),
            key=lambda r: r.activation_id,
        )
        found: set[str] = set()
        for intent, row in zip(intents, matching, strict=False):
            entry = journal.entry(intent, "activation", row.activation_id, row.phone_number,
                                  service=row.service_code, country=country, cost=row.activation_cost)
            if not await journal.adopt(entry):
                continue
            # a purchase its buyer never heard of: the account's all the same, and counted here
            session.news.bought(Bought("activation", row.activation_id, row.service_code or service or "",
                                       country or "", row.activation_cost))
            found.add(intent.id)
            unknown.remove(row)
            code = row.sms_code[-1] if row.sms_code else None
            await _close(session, scheduler, attrs.evolve(entry, code=code), report)
        for intent in intents:
            # Its number, if it had one, is closed now; with none listed, the purchase did not happen
            # yet — the server may still commit it, so this client watches for it.
            if intent.id not in found:
                await _watch(settlement, intent, session.retry.stray_watch, report)
            await journal.settle(intent, "recovered")
        log.info("recovery: %d purchase(s) of %s left on the wire by dead clients settled", len(intents), key)


