"""The journal: what this client bought, told to every client of the same account.

The session writes a purchase's intent before sending it, its numbers after, and every code,
finish and cancel; reconciliation asks it which unknown numbers belong to someone else; recovery
closes the numbers of owners whose lease has expired. The journal is a thin layer over a
:class:`Store` that knows the owner, the lease and the wall clock; writes that follow a purchase
are best-effort (logged, never raised: the number is bought, the caller must get it), while the
intent that precedes one must be written or the purchase is not sent.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from functools import partial
from typing import TypeVar

import anyio
import attrs

from ._exceptions import StoreError
from ._store import FINAL, UNSETTLED, Entry, EntryState, Intent, IntentState, Kind, Store

__all__ = ["Journal", "RecoveryReport", "default_owner"]

log = logging.getLogger("smsactivate_async")
T = TypeVar("T")

# the intents someone still acts on: purchases not settled, and watches of purchases given up
_OPEN_INTENTS: frozenset[str] = UNSETTLED | {"watching"}


@attrs.frozen
class RecoveryReport:
    """What ``client.recover()`` did with the numbers of owners whose lease had expired.

    ``finished``: closed with 6 (a code had arrived); ``cancelled``: closed with 8; ``pending``:
    cancels the server refused as too early, carried out in the background once allowed (activation
    ids); ``rents_cancelled`` / ``rents_finished`` / ``rents_kept``: a dead client's rents (rent ids);
    ``watched``: purchases of dead clients that may yet be committed late, now watched for strays.
    """

    finished: list[int] = attrs.field(factory=list)
    cancelled: list[int] = attrs.field(factory=list)
    pending: list[int] = attrs.field(factory=list)
    #: rents of dead clients cancelled (refunded: within the provider's 20 minutes) and finished (later)
    rents_cancelled: list[int] = attrs.field(factory=list)
    rents_finished: list[int] = attrs.field(factory=list)
    #: rents of dead clients past the refund window, adopted by this client and kept open (their paid
    #: hours are not forfeited); also a dead client's rent that this client waits on itself
    rents_kept: list[int] = attrs.field(factory=list)
    #: purchases of dead clients given up as never made, which the server may still commit, as
    #: ``"service/country"``: this client now watches the listings for their numbers (strays found
    #: are counted in ``client.stats``)
    watched: list[str] = attrs.field(factory=list)


class Liveness:
    """Owners recovery must leave alone: this client, every owner whose lease has not run out, and
    an owner with no lease at all until this client has seen it absent for a whole lease of its own
    — absence is not expiry: a store restarted empty has forgotten every lease, not lost every client.
    And everyone for a lease after the store came back from an outage (this client's calls failed, or
    the server restarted): leases ran out because nobody could renew them, not because anyone died."""

    __slots__ = ("_journal", "_leases", "_now")

    def __init__(self, journal: Journal, leases: Mapping[str, float], now: float) -> None:
        self._journal, self._leases, self._now = journal, leases, now

    def __contains__(self, owner: object) -> bool:
        journal = self._journal
        if owner == journal.owner or not isinstance(owner, str) or journal.store_down or self._now < journal.quiet_until:
            return True  # (a store just back from an outage: nobody could renew; wait a lease for them)
        expires = self._leases.get(owner)
        if expires is not None:
            journal.absent_since.pop(owner, None)
            return expires > self._now
        first = journal.absent_since.setdefault(owner, self._now)
        return self._now - first < journal.lease


def default_owner() -> str:
    """Unique per process and client: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Journal:
    def __init__(self, store: Store, *, owner: str, lease: float, stale_after: float,
                 wall: Callable[[], float] = time.time, retention: float = 86_400.0,
                 store_wait: float = 30.0) -> None:
        self.store = store
        self.owner = owner
        self.lease = lease
        #: a pending intent older than this (a request timeout and then some) no longer holds others back
        self.stale_after = stale_after
        self.wall = wall
        #: closed entries and settled intents are forgotten this long after (seconds)
        self.retention = retention
        self.opened = False
        #: the clients (this one included) whose leases were alive at the last renewal: the shares of the
        #: account's budget while the store cannot be asked for it
        self.sharers = 1
        #: owners with entries or intents but no lease, and since when (wall time) this client saw them so
        self.absent_since: dict[str, float] = {}
        #: how long a purchase waits for a store that cannot be reached before it fails (seconds)
        self.store_wait = store_wait
        #: until when (wall time) recovery takes every owner for alive: the store is back from an outage
        self.quiet_until = 0.0
        #: a call of this client to the store failed and no renewal has gone through since
        self.store_down = False
        self._renewed = False
        self._seen_run: str | None = None
        #: writes the store failed (an outage), made again in order after the next renewal
        self._unwritten: collections.deque[tuple[Callable[[], Awaitable[object]], str]] = collections.deque(maxlen=100_000)
        self._flushing = anyio.Lock()
        #: what this client wrote that is still live — its unsettled intents and open entries — to put
        #: back into a store that comes back empty (bounded by the work in flight)
        self._my_intents: dict[str, Intent] = {}
        self._my_entries: dict[tuple[str, int], Entry] = {}
        #: other owners' open entries and unsettled intents as this client's last renewal read them:
        #: put back when the store loses its data (restarted empty), for owners that will not put back
        #: their own — dead ones, whose numbers would otherwise be unknown to everyone
        self._seen: dict[str, tuple[list[Entry], list[Intent]]] = {}
        #: of those owners, the ones whose lease had already run out then (dead): their leases too
        self._seen_expired: dict[str, float] = {}
        #: when (wall time) to settle this client's intents that such a put-back brought back from an
        #: older view than its own (settled since): after the quiet lease, when every put-back is done
        self._tidy_at: float | None = None
        #: the last code written per entry, (kind, id) (a write-dedupe cache, not a record: bounded)
        self._codes: dict[tuple[Kind, int], str] = {}

    @property
    def persistent(self) -> bool:
        return self.store.persistent

    async def open(self, namespace: str) -> None:
        """Open the store and take the lease; a store that cannot be reached (an outage, a worker
        started while Redis restarts) is waited for, ``store_wait`` at most."""
        await self._patiently(partial(self.store.open, namespace), "open")
        self.opened = True
        if self.store.persistent:
            await self._patiently(self.renew, "take the lease in")

    async def _patiently(self, step: Callable[[], Awaitable[None]], what: str) -> None:
        delays = self.store_delays()
        while True:
            try:
                return await step()
            except StoreError as exc:
                delay = next(delays, None)
                if not exc.unreachable or delay is None:
                    raise
                log.warning("journal: cannot %s the store (%s); waiting %.1f s for it", what, exc.message, delay)
                await anyio.sleep(delay)

    async def aclose(self) -> None:
        self.opened = False
        await self.store.aclose()

    # --- leases ---------------------------------------------------------------------------------

    async def renew(self) -> None:
        """Extend this client's lease. After an outage of the store (a renewal failed, or a Redis
        server seen to restart): a lease of quiet for recovery; and if the store
        came back without this client's lease (restarted empty), put back what this client holds."""
        try:
            leases = await self.store.leases() if self._renewed else {}
            await self.store.renew(self.owner, self.wall() + self.lease)
        except StoreError:
            self.store_down = True
            raise
        await self._notice_restart()
        if leases:
            now = self.wall()
            self.sharers = 1 + sum(1 for owner, expires in leases.items() if owner != self.owner and expires > now)
        if self.store_down:
            self.quiet_until = max(self.quiet_until, self.wall() + self.lease)
        self.store_down = False
        if self._renewed and self.owner not in leases:
            await self.restore()
        await self._write_again()
        self._renewed = True
        if self._tidy_at is not None and self.wall() >= self._tidy_at:
            await self._tidy()
        if getattr(self.store, "server_run", None) is not None and not self.quiet:
            # a server that may restart empty: keep what the others hold, at every renewal (the fewer
            # seconds between two looks, the fewer numbers of a client that dies just then go unseen)
            try:
                self.saw(await self.store.open_entries(), await self.store.intents(_OPEN_INTENTS), leases)
            except StoreError as exc:
                log.debug("journal: could not read the others' records: %s", exc.message)

    async def _notice_restart(self) -> None:
        """A store server seen to restart (a new run id): a lease of quiet for recovery."""
        server_run = getattr(self.store, "server_run", None)
        if server_run is None:
            return
        run = str(await server_run())
        if self._seen_run is not None and run != self._seen_run:
            self.quiet_until = max(self.quiet_until, self.wall() + self.lease)
            log.warning("journal: the store's server restarted; no owner is taken for dead, and no unknown "
                        "number adopted, for %.0f s while every client puts its records back", self.lease)
        self._seen_run = run

    @property
    def quiet(self) -> bool:
        """Whether the journal may be missing what live clients hold: its store is down or just back."""
        return self.store_down or self.wall() < self.quiet_until

    async def trustworthy(self) -> bool:
        """Before judging a number unknown from the journal: after an outage of the store, wait (at
        most ``store_wait``) for the quiet lease in which every live client puts its records back.
        Whether it waited: what was read of the server before is stale then (numbers closed since,
        whose records the store may have lost)."""
        try:
            await self._notice_restart()
        except StoreError:
            self.store_down = True
        deadline = anyio.current_time() + self.store_wait
        waited = False
        while self.quiet and anyio.current_time() < deadline:
            waited = True
            await anyio.sleep(min(0.25, max(0.01, self.quiet_until - self.wall())))
        return waited

    async def restore(self) -> None:
        """Put this client's unsettled intents and open entries back into a store that lost them, and
        the other owners' as this client last saw them: a dead owner's numbers would otherwise be
        unknown to everyone, and adopted as lost purchases (a live owner's own, put back at its next
        renewal, win: the same claim, its intents' current states)."""
        self.quiet_until = max(self.quiet_until, self.wall() + self.lease)
        intents, entries = list(self._my_intents.values()), list(self._my_entries.values())
        for intent in intents:
            await self._quietly(partial(self.store.add_intent, intent), f"intent {intent.id} put back", replay=False)
        for entry in entries:
            await self._quietly(partial(self.store.claim, entry), f"{entry.kind} {entry.id} put back", replay=False)
        if intents or entries:
            log.warning("journal: the store came back without this client's records; put back %d intent(s) "
                        "and %d open number(s)", len(intents), len(entries))
        seen, self._seen = self._seen, {}
        expired, self._seen_expired = self._seen_expired, {}
        try:
            for owner, expires in expired.items():
                await self.store.lease_back(owner, expires)  # seen dead: expired, not absent, for recovery
            present = {i.id for i in await self.store.intents(_OPEN_INTENTS)}
            theirs = 0
            for owner_entries, owner_intents in seen.values():
                for intent in owner_intents:
                    if intent.id not in present:
                        await self.store.add_intent(intent)
                        theirs += 1
                for entry in owner_entries:
                    theirs += await self.store.claim(entry)
        except StoreError as exc:
            log.error("journal: could not put back the other owners' records: %s", exc.message)
            return
        if theirs:
            log.warning("journal: put back %d record(s) of other owners, as last seen; those whose owners are "
                        "dead are closed by recovery", theirs)
        self._tidy_at = self.quiet_until

    async def _tidy(self) -> None:
        """Settle this client's intents that another client put back from an older view (settled since)."""
        self._tidy_at = None
        stale = [i for i in await self.store.intents(_OPEN_INTENTS)
                 if i.owner == self.owner and i.id not in self._my_intents]
        for intent in stale:
            await self._quietly(partial(self.store.set_intent_state, intent.id, "failed"), f"stale intent {intent.id}")

    def saw(self, entries: Iterable[Entry], intents: Iterable[Intent], leases: Mapping[str, float]) -> None:
        """What recovery just read of the account, every owner's: kept (other owners') in case the
        store loses it. Not while the store may be missing records (just back from an outage)."""
        if self.quiet:
            return
        seen: dict[str, tuple[list[Entry], list[Intent]]] = {}
        for entry in entries:
            if entry.owner != self.owner:
                seen.setdefault(entry.owner, ([], []))[0].append(entry)
        for intent in intents:
            if intent.owner != self.owner:
                seen.setdefault(intent.owner, ([], []))[1].append(intent)
        self._seen = seen
        now = self.wall()
        self._seen_expired = {owner: leases[owner] for owner in seen if owner in leases and leases[owner] <= now}

    async def live_owners(self) -> set[str]:
        now = self.wall()
        return {owner for owner, expires in (await self.store.leases()).items() if expires > now}

    async def liveness(self) -> Liveness:
        """Who may still be alive, for recovery: ``owner in liveness``."""
        try:
            leases = await self.store.leases()
            await self._notice_restart()
        except StoreError:
            self.store_down = True
            raise
        return Liveness(self, leases, self.wall())

    # --- purchases ------------------------------------------------------------------------------

    async def intend(self, action: str, wire: Mapping[str, str], key: tuple[str, ...], kind: Kind) -> Intent:
        """Write the intent before the purchase is sent; ``StoreError`` means: do not send it."""
        intent = self._new_intent(action, wire, key, kind, "pending")
        if self.store.persistent:
            self._my_intents[intent.id] = intent  # this client's before the store says so (a tidy-up spares it)
        try:
            seq = await self._write_intent(intent)
        except BaseException:
            self._my_intents.pop(intent.id, None)
            raise
        intent = attrs.evolve(intent, seq=seq)
        if self.store.persistent:
            self._my_intents[intent.id] = intent
        return intent

    async def _write_intent(self, intent: Intent) -> int:
        delays = self.store_delays()
        while True:
            try:
                return await self.store.add_intent(intent)
            except StoreError as exc:
                delay = next(delays, None)
                if delay is None:
                    raise StoreError(
                        f"{intent.action} was not sent: its intent could not be written to the journal "
                        f"({exc.message})", action=intent.action,
                    ) from None
                log.info("journal: cannot write an intent (%s); waiting %.1f s for the store", exc.message, delay)
                await anyio.sleep(delay)

    async def watch(self, wire: Mapping[str, str], key: tuple[str, ...], kind: Kind) -> Intent | None:
        """Record a watch for a purchase given up as never made (``watching``): if this client
        dies, a survivor's recovery takes it over. ``None`` when there is nobody to hand it to."""
        if not self.store.persistent:
            return None
        intent = self._new_intent("watch", wire, key, kind, "watching")
        self._my_intents[intent.id] = intent  # as in intend: this client's before the store says so
        try:
            seq = await self._quietly(partial(self.store.add_intent, intent), f"a watch for {intent.key}",
                                      replay=False)
        except BaseException:
            self._my_intents.pop(intent.id, None)
            raise
        if seq is None:
            del self._my_intents[intent.id]
            return None
        intent = attrs.evolve(intent, seq=seq)
        self._my_intents[intent.id] = intent
        return intent

    def _new_intent(self, action: str, wire: Mapping[str, str], key: tuple[str, ...], kind: Kind,
                    state: IntentState) -> Intent:
        return Intent(
            id=uuid.uuid4().hex, owner=self.owner, action=action,
            params={k: v for k, v in wire.items() if k != "action"},
            key="|".join(key), kind=kind, created=self.wall(), order_id=wire.get("orderId"), state=state,
        )

    def store_delays(self) -> Iterator[float]:
        """The waits before trying a failed store again, 0.1 s doubling to 2 s, for as long as
        ``store_wait`` from now lets another one end in time; then the caller gives up."""
        deadline = anyio.current_time() + self.store_wait
        delay = 0.1
        while anyio.current_time() + delay <= deadline:
            yield delay
            delay = min(delay * 2, 2.0)

    async def settle(self, intent: Intent, state: IntentState) -> None:
        mine = self._my_intents.get(intent.id)
        if mine is not None:
            if state in FINAL:
                del self._my_intents[intent.id]
            else:
                self._my_intents[intent.id] = attrs.evolve(mine, state=state)
        await self._quietly(partial(self.store.set_intent_state, intent.id, state), f"intent {intent.action} → {state}")

    async def bought(self, intent: Intent, entries: Iterable[Entry]) -> None:
        for entry in entries:
            if self.store.persistent:
                self._my_entries[(entry.kind, entry.id)] = entry  # ours even if the store missed it
            await self._quietly(partial(self.store.claim, entry), f"{entry.kind} {entry.id} bought")
        await self.settle(intent, "bought")

    def entry(self, intent: Intent | None, kind: Kind, entry_id: int, phone: str | None,
              service: str | None = None, country: str | None = None, cost: Decimal | None = None) -> Entry:
        params = intent.params if intent is not None else {}
        now = self.wall()
        paid_until = None
        if kind == "rent" and intent is not None:
            hours = params.get("rent_time") or "4"  # the protocol's default rent is 4 hours
            paid_until = now + float(hours) * 3600 if hours.isdigit() else None
        return Entry(
            kind=kind, id=entry_id, owner=self.owner, intent_id=intent.id if intent else None, bought_at=now,
            service=service or params.get("service"), country=country or params.get("country"), phone=phone,
            paid_until=paid_until, cost=None if cost is None else str(cost),
        )

    async def adopt(self, entry: Entry) -> bool:
        """Take a listed number as this client's: ``False`` if the journal gives it to someone else."""
        return await self._hold(entry, self.store.claim(entry))

    async def take_over(self, entry: Entry) -> bool:
        """Take a dead owner's number (to close it): ``False`` if someone else did first."""
        return await self._hold(attrs.evolve(entry, owner=self.owner),
                                self.store.take_over(entry.kind, entry.id, entry.owner, self.owner))

    async def give_back(self, entry: Entry) -> None:
        """Hand a number taken over back to its dead owner, for the next recovery to try again."""
        if entry.owner != self.owner:
            self._my_entries.pop((entry.kind, entry.id), None)
        await self.store.take_over(entry.kind, entry.id, self.owner, entry.owner)

    async def _hold(self, entry: Entry, taking: Awaitable[bool]) -> bool:
        # known as this client's before the store says so: a store found empty meanwhile gets it back
        key = (entry.kind, entry.id)
        known = key in self._my_entries
        if self.store.persistent:
            self._my_entries[key] = entry
        taken = False
        try:
            taken = await taking
        finally:
            if not taken and not known:
                self._my_entries.pop(key, None)
        return taken

    async def journaled(self, kind: Kind, ids: Iterable[int]) -> dict[int, str]:
        """The owner of each of ``ids`` the journal knows (closed ones included)."""
        return await self.store.owners(kind, ids)

    async def wait_for_others(self, up_to_seq: int, timeout: float) -> None:
        """Wait until no other live client has a purchase on the wire that began at or before ``up_to_seq``.

        Its number may already be in a listing without being journaled yet. A purchase pending
        longer than ``stale_after`` (its owner stuck or dead) stops holding others back.
        """
        deadline = anyio.current_time() + timeout  # the loop's time: virtual where the loop's is
        delay = 0.02
        while True:
            live = await self.live_owners() if self.store.persistent else {self.owner}
            now = self.wall()
            waiting = [i for i in await self.store.intents(("pending",))
                       if i.seq <= up_to_seq and i.owner != self.owner and i.owner in live
                       and now - i.created < self.stale_after]
            if not waiting or anyio.current_time() >= deadline:
                return
            await anyio.sleep(delay)
            delay = min(0.25, delay * 2)

    async def others_unresolved(self, key: tuple[str, ...]) -> int:
        """Other clients' purchases of ``key`` that may own an unrecorded number on the server."""
        if not self.store.persistent:
            return 0
        joined = "|".join(key)
        live = await self.live_owners()
        count = 0
        for intent in await self.store.intents(UNSETTLED):
            if intent.key != joined or intent.owner == self.owner:
                continue
            # a live client's lost answer, or any unsettled purchase of a client that died
            if intent.state != "pending" or intent.owner not in live:
                count += 1
        return count

    # --- what happened to the numbers -----------------------------------------------------------

    async def prune(self) -> int:
        """Forget what closed or settled more than ``retention`` seconds ago; the records removed."""
        return await self.store.prune(self.wall() - self.retention)

    async def record_code(self, kind: Kind, entry_id: int, code: str) -> None:
        if self._codes.get((kind, entry_id)) == code:
            return
        mine = self._my_entries.get((kind, entry_id))
        if mine is not None:
            self._my_entries[(kind, entry_id)] = attrs.evolve(mine, code=code)
        self._codes[(kind, entry_id)] = code
        if len(self._codes) > 10_000:  # only spares a repeated write: the oldest may go
            del self._codes[next(iter(self._codes))]
        await self._quietly(partial(self.store.update_entry, kind, entry_id, code=code), f"code of {entry_id}")

    async def record_another(self, kind: Kind, entry_id: int) -> None:
        await self._quietly(partial(self.store.update_entry, kind, entry_id, another=True), f"status 3 of {entry_id}")

    async def record_rent_message(self, rent_id: int) -> None:
        """One more of the rent's messages handed over (its cursor: ``Entry.retries`` of a rent)."""
        await self._quietly(partial(self.store.update_entry, "rent", rent_id, another=True),
                            f"a message of rent {rent_id} handed over")

    async def record_closed(self, kind: Kind, entry_id: int, state: EntryState) -> None:
        self._codes.pop((kind, entry_id), None)
        self._my_entries.pop((kind, entry_id), None)
        await self._quietly(partial(self.store.update_entry, kind, entry_id, state=state), f"{entry_id} {state}")

    async def _quietly(self, step: Callable[[], Awaitable[T]], what: str, *, replay: bool = True) -> T | None:
        """One write; if the store fails it, logged and kept to be written again, in order — before
        any later write, and at the next renewal (a store back from an outage learns what happened
        meanwhile, and never a purchase's "bought" without its number's claim)."""
        if replay and self._unwritten:
            self._unwritten.append((step, what))
            await self._write_again()
            return None
        try:
            return await step()
        except StoreError as exc:
            log.error("journal: could not record %s: %s", what, exc.message)
            if replay:
                self._unwritten.append((step, what))
            return None

    async def _write_again(self) -> None:
        """Make the writes the store missed, oldest first, up to the first that fails again. One task
        at a time: the others leave theirs in the queue rather than wait on a store that hangs."""
        if self._flushing.locked():
            return
        written = 0
        async with self._flushing:
            while self._unwritten:
                step, what = self._unwritten[0]
                try:
                    await step()
                except StoreError as exc:
                    log.debug("journal: could not record %s (again): %s", what, exc.message)
                    break
                self._unwritten.popleft()
                written += 1
        if written:
            log.info("journal: %d write(s) the store missed made again", written)
