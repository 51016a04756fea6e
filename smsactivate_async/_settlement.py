"""Settlement: every purchase ends bought (once), surely not made, or named uncertain.

The client's calls come here (:meth:`Settlement.call`); what buys nothing goes straight on to the
session. A purchase is journaled before it leaves (an intent), sent through the session's attempt,
and settled in one place whatever happens on the wire: retried only where that cannot buy twice
(an order id the provider honours, or a lost answer that two listings of the account agree was not
carried out), adopted from the listings where it was (``_reconcile``), watched for a late commit
(``_strays``) where the provider may yet carry it out. Every purchase that settled as bought becomes
news once, here (:class:`~._news.NumberNews`: the scheduler, ``client.stats`` and the metrics hear it).

It calls the session, the reconciliation and the watch for strays; nothing above it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, TypeVar

import anyio

from ._actions import Action, Repeat
from ._exceptions import (
    ClientClosedError,
    OrderAlreadyExistsError,
    PurchaseUncertainError,
    RateLimitedError,
    SMSActivateError,
    StoreError,
    TransportError,
)
from ._hooks import PURCHASE_CHECK
from ._models import ActiveActivation, MultiServiceActivation, Number, Rent, RentListEntry
from ._news import Bought
from ._policy import RetryPolicy
from ._reconcile import Reconciliation, ident, lost, matches
from ._session import Session, is_transient
from ._store import Entry, Intent, IntentState, Kind

if TYPE_CHECKING:
    from ._strays import Strays
    from ._telemetry import Span

__all__ = ["Settlement", "purchases_in"]

log = logging.getLogger("smsactivate_async")
R = TypeVar("R")
#: an intent that took longer than this to write was held back by the store (not by a busy disk)
_STORE_HELD = 0.5
#: actions that spend money: refused once the client is closing
_PAID = frozenset({Repeat.ORDER_ID, Repeat.PURCHASE_ACTIVATION, Repeat.PURCHASE_RENT, Repeat.PURCHASE_OTHER})


class _Absent(enum.Enum):
    """``_claim``'s answer when the listing shows no trace of the lost purchase."""

    ABSENT = "absent"


_ABSENT = _Absent.ABSENT


def _maybe_executed(error: SMSActivateError) -> bool:
    """Whether the server may have carried the request out despite the failure."""
    if isinstance(error, TransportError):
        return error.maybe_sent
    return not isinstance(error, RateLimitedError)


class Settlement:
    """Where the client's calls go, and where a purchase settles (module docstring)."""

    def __init__(self, session: Session, reconciliation: Reconciliation, strays: Strays | None = None) -> None:
        self.session = session
        self.reconciliation = reconciliation
        #: the watch for purchases committed after they were given up
        self.strays = strays
        self._gate = reconciliation.gate
        self.journal = session.journal
        self.clock = session.clock

    async def call(self, action: Action[R], args: Mapping[str, object], *, retry: RetryPolicy | None = None) -> R:
        """Any declared action: a purchase is settled here, anything else is the session's."""
        if action.repeat in (Repeat.SAFE, Repeat.STATUS):
            return await self.session.call(action, args, retry=retry)
        session = self.session
        if session.closing and action.repeat in _PAID:
            raise ClientClosedError(f"the client is closing: {action.name}() was refused before anything was sent "
                                    "(nothing bought)", action=action.wire, reason="closing")
        wire = session.encode(action, args)
        repeat = action.repeat
        if repeat is Repeat.ORDER_ID and not session.provider.honours_order_id:
            repeat = Repeat.PURCHASE_ACTIVATION
        with session.telemetry.span(action.wire) as span:
            result = await self._purchase(action, wire, retry or session.retry, repeat, span)
        for purchase in purchases_in(result, wire):  # however it settled: the one place a purchase becomes news
            session.news.bought(purchase)
        return result

    async def _purchase(self, action: Action[R], wire: dict[str, str], policy: RetryPolicy, repeat: Repeat,
                        span: Span | None = None) -> R:
        session = self.session
        # The rent list names no service: every rent purchase competes for the same unknown rents.
        key = (action.wire,) if repeat is Repeat.PURCHASE_RENT else (
            action.wire, wire.get("service", wire.get("multiService", "")), wire.get("country", ""))
        kind: Kind = "rent" if action.result == "Rent" else "activation"
        stray = self.strays.take(action.wire, wire) if self.strays is not None else None
        if stray is not None:
            return self.reconciliation.adopt(action, [stray], None)
        intent: Intent | None = None
        attempt = 0
        ambiguous = False  # an attempt may have been carried out, and this purchase is not settled
        maybe_sent = False  # some attempt may have reached the server
        settled: IntentState | None = None
        try:
            while True:
                attempt += 1
                error: SMSActivateError | None = None
                async with self._gate.purchase(session.pace):
                    check = PURCHASE_CHECK.get() if attempt == 1 or (maybe_sent and not ambiguous) else None
                    if check is not None:
                        # e.g. a spending guard that stopped while this purchase queued: nothing sent. Again
                        # before buying anew after a lost answer the listings could not find: the server may
                        # still commit that one (a stray), so the guard counts it.
                        check(attempt > 1)
                    # The intent is written before the request leaves, and says "pending" only while
                    # a request is on the wire: other clients' reconciliations wait for those alone.
                    # A purchase the journal cannot record is not made (StoreError, nothing sent).
                    if intent is None:
                        asked = self.clock.now()
                        intent = await self.journal.intend(action.wire, wire, key, kind)
                        if self.clock.now() - asked > _STORE_HELD:
                            # Held back by the store (an outage): take a fresh slot of the budget, so that
                            # the purchases held meanwhile leave at the account's pace, not in one burst.
                            await session.pace()
                    elif not ambiguous:
                        await self.journal.settle(intent, "pending")
                    try:
                        result = await session.attempt(action, wire, attempt, paced=True, span=span)
                    except SMSActivateError as exc:
                        error = exc
                failed_at = self.clock.now()
                if error is None:
                    self._remember(result)
                    settled = "bought"
                    await self.journal.bought(intent, self._entries(intent, kind, result))
                    return result
                if isinstance(error, OrderAlreadyExistsError) and maybe_sent:
                    # An earlier attempt went through and only its answer was lost.
                    recovered = await self._recover(action, wire, repeat, error, key, failed_at, policy, intent)
                    if recovered is None:  # an order that exists is found, or uncertain: never "not made"
                        raise error
                    settled = "bought"
                    return recovered
                if not is_transient(error):
                    settled = "uncertain" if ambiguous else "failed"
                    raise error
                if _maybe_executed(error):
                    maybe_sent = True
                    if not ambiguous:
                        ambiguous = True
                        self._gate.unresolved[key] += 1
                        await self.journal.settle(intent, "ambiguous")
                    if repeat is not Repeat.ORDER_ID:
                        adopted = await self._recover(action, wire, repeat, error, key, failed_at, policy, intent)
                        if adopted is not None:
                            settled = "bought"
                            return adopted
                        ambiguous = False  # reconciliation showed the purchase did not happen
                        self._gate.unresolved[key] -= 1
                        await self.journal.settle(intent, "queued")
                        await self._watch_for_stray(repeat, key, wire, policy)
                elif not ambiguous:
                    await self.journal.settle(intent, "queued")  # surely not sent: nobody need wait on it
                if not await session.backoff(error, attempt, policy):
                    if ambiguous and repeat is Repeat.ORDER_ID:
                        # Every try's answer was lost: the order may exist. Look before giving up:
                        # adopt it, or raise the error only once two listings agree it does not.
                        adopted = await self._recover(action, wire, repeat, error, key, failed_at, policy, intent)
                        if adopted is not None:
                            settled = "bought"
                            return adopted
                        settled = "failed"
                        await self._watch_for_stray(repeat, key, wire, policy)
                        raise error
                    settled = "uncertain" if ambiguous else "failed"
                    raise error
        except PurchaseUncertainError:
            settled = "uncertain"
            raise
        finally:
            if ambiguous:
                self._gate.unresolved[key] -= 1
            if settled != "bought" and intent is not None:
                # Cancelled mid-way or failed: never leave the intent "pending" (others would wait on it).
                with anyio.CancelScope(shield=True):
                    await self.journal.settle(intent, settled or ("uncertain" if ambiguous else "failed"))

    async def _watch_for_stray(self, repeat: Repeat, key: tuple[str, ...], wire: Mapping[str, str],
                               policy: RetryPolicy) -> None:
        """Two listings said the purchase did not happen; it may yet be committed late."""
        if self.strays is not None:
            await self.strays.watch(key, wire, policy.stray_watch,
                                    "rent" if repeat is Repeat.PURCHASE_RENT else "activation")

    def _entries(self, intent: Intent | None, kind: Kind, result: object) -> list[Entry]:
        """The journal entries of a purchase's result."""
        if isinstance(result, Number):
            return [self.journal.entry(intent, kind, result.activation_id, result.phone_number,
                                       service=result.service_code, cost=result.activation_cost)]
        if isinstance(result, Rent):
            return [self.journal.entry(intent, "rent", result.id, result.number)]
        if isinstance(result, list):
            return [self.journal.entry(intent, "activation", item.activation_id, item.phone_number,
                                       service=item.service)
                    for item in result if isinstance(item, MultiServiceActivation)]
        return []

    def _remember(self, result: object) -> None:
        now = self.clock.now()
        for bought in purchases_in(result, {}):
            if bought.kind == "rent":
                self.session.known_rents.add(bought.id)
            else:
                self.session.known_activations[bought.id] = now

    async def _recover(
        self, action: Action[R], wire: Mapping[str, str], repeat: Repeat, cause: SMSActivateError,
        key: tuple[str, ...], failed_at: float, policy: RetryPolicy, intent: Intent | None = None,
    ) -> R | None:
        """Find the purchase whose answer was lost; ``None`` if it surely did not happen.

        "Surely" takes two listings that both lack it, the second read at least ``policy.settle``
        seconds after the failure: a server may still be committing the purchase when the first is
        read. Between the two, purchases are not held back. A listing that cannot be read proves
        nothing: the purchase is then uncertain, never "did not happen".
        """
        self.session.stats.reconciliations += 1
        if repeat is Repeat.PURCHASE_OTHER:
            raise PurchaseUncertainError(
                f"{action.wire} may have been carried out, but its answer was lost ({lost(cause)}); "
                "check the account before buying again",
                action=action.wire, code=cause.code,
            )
        try:
            first = await self._reconcile_once(action, wire, repeat, cause, key, None, intent)
            if first is not _ABSENT:
                return first
            settled = failed_at + policy.settle
            delay = settled - self.clock.now()
            if delay > 0:
                log.info("%s: the lost purchase is not listed; looking again in %.1fs", action.wire, delay)
                await self.clock.sleep(delay)
            outcome = await self._reconcile_once(action, wire, repeat, cause, key, settled, intent)
        except PurchaseUncertainError as exc:
            if isinstance(cause, OrderAlreadyExistsError) and not exc.candidate_ids:
                # the order exists and is listed nowhere yet: when it is, it is a stray
                await self._watch_for_stray(repeat, key, wire, policy)
            raise
        if outcome is _ABSENT:
            log.info("%s: the lost purchase did not happen (two listings agree); buying again", action.wire)
            return None
        return outcome

    async def _reconcile_once(
        self, action: Action[R], wire: Mapping[str, str], repeat: Repeat, cause: SMSActivateError,
        key: tuple[str, ...], fresh_after: float | None, intent: Intent | None,
    ) -> R | Literal[_Absent.ABSENT]:
        async with self._gate.reconcile(), self._gate.claim_lock:
            delays = self.journal.store_delays()
            while True:
                try:
                    # a store just back from an outage may not hold yet what other clients bought: an
                    # unknown number might be theirs until they have put their records back; and a
                    # listing read before that wait may show numbers closed since, whose records the
                    # store lost with the rest — it is read again
                    if self.journal.persistent and await self.journal.trustworthy():
                        self._gate.forget_listings()
                    return await self._claim(action, wire, repeat, cause, key, fresh_after, intent)
                except PurchaseUncertainError:
                    raise
                except StoreError as exc:
                    # the journal is down: wait for it (bounded) rather than call the purchase uncertain
                    delay = next(delays, None)
                    if delay is None:
                        failure = _uncertain(action, cause, exc)
                        break
                    await anyio.sleep(delay)
                except SMSActivateError as exc:
                    failure = _uncertain(action, cause, exc)
                    break
        raise failure

    async def _claim(
        self, action: Action[R], wire: Mapping[str, str], repeat: Repeat, cause: SMSActivateError,
        key: tuple[str, ...], fresh_after: float | None, intent: Intent | None,
    ) -> R | Literal[_Absent.ABSENT]:
        groups: dict[object, Sequence[ActiveActivation] | Sequence[RentListEntry]]
        if repeat is Repeat.PURCHASE_RENT:
            rents = await self.reconciliation.rents(fresh_after)
            # one candidate per rent id
            groups = {rent.id: [rent] for rent in await self.reconciliation.unexplained(rents, "rent")}
        else:
            rows = await self.reconciliation.activations(fresh_after)
            unknown = [r for r in await self.reconciliation.unexplained(rows) if matches(r, wire)]
            if action.wire == "getMultiServiceNumber":
                # One purchase is one phone with an activation per service: adopt them together.
                wanted = sorted(wire["multiService"].split(","))
                by_phone: dict[object, list[ActiveActivation]] = {}
                for row in unknown:
                    by_phone.setdefault(row.phone_number, []).append(row)
                groups = {phone: group for phone, group in by_phone.items()
                          if sorted(r.service_code or "" for r in group) == wanted}
            else:
                groups = {row.activation_id: [row] for row in unknown}
        candidates = sorted((min(ident(item) for item in group), name) for name, group in groups.items())
        ids = tuple(ident(item) for _, name in candidates for item in groups[name])
        if not candidates and isinstance(cause, OrderAlreadyExistsError):
            detail = "none found"
        elif not candidates:
            return _ABSENT
        elif len(candidates) <= self._gate.unresolved[key] + await self.journal.others_unresolved(key):
            for _, name in candidates:
                chosen = groups[name]
                # Atomic in the journal: of two clients reconciling at once, one takes each number.
                if await self.reconciliation.claim_in_journal(intent, chosen):
                    self.session.stats.adopted += 1
                    log.info("%s: adopted %s after a lost answer", action.wire, [ident(item) for item in chosen])
                    return self.reconciliation.adopt(action, chosen, cause)
            if not isinstance(cause, OrderAlreadyExistsError):
                # Another client took each of them meanwhile: journaled as theirs, they are not ours,
                # just as if they had been taken before this listing was read.
                return _ABSENT
            detail = ", ".join(map(str, ids)) + " (all taken by other clients meanwhile)"
        else:
            detail = ", ".join(map(str, ids))
        raise PurchaseUncertainError(
            f"{action.wire} may have been carried out, but its answer was lost ({lost(cause)}) and the "
            f"server's list does not say which number it is (candidates: {detail})",
            action=action.wire, candidate_ids=ids, code="PURCHASE_UNCERTAIN",
        )


def _uncertain(action: Action[R], cause: SMSActivateError, exc: SMSActivateError) -> PurchaseUncertainError:
    return PurchaseUncertainError(
        f"{action.wire} may have been carried out, but its answer was lost ({lost(cause)}) and the "
        f"server's list could not be read ({exc.code}); check the account before buying again",
        action=action.wire, code="PURCHASE_UNCERTAIN",
    )


def purchases_in(result: object, wire: Mapping[str, str]) -> list[Bought]:
    """The numbers a purchase's result names — a rent, a number, or a list of them (multi-service);
    none for a partner product — each with its service, country and price as the answer names them,
    else as the request asked (``wire``)."""
    service, country = wire.get("service", ""), wire.get("country", "")
    if isinstance(result, Rent):
        return [Bought("rent", result.id, service, country)]
    found = []
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, Number):
            found.append(Bought("activation", item.activation_id, item.service_code or service,
                                country if item.country_code is None else str(item.country_code), item.activation_cost))
        elif isinstance(item, MultiServiceActivation):
            found.append(Bought("activation", item.activation_id, item.service, country))
    return found
