"""The fleet: what a client does for the account's other clients on a shared store.

With a persistent journal, a client renews its lease (thrice per lease) and, apart, recovers the
numbers of owners whose leases ran out (once per lease: ``_recovery``); on a store that carries pushes
(Redis), it passes the pushes its own webhook receiver accepted on to every other client of the
account, and hears theirs. Each loop runs as a task of the client's ``TaskHost``, never in a caller's.

It calls recovery, the settlement's parts, the scheduler, the rent waits and the store; nothing above.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from ._exceptions import SMSActivateError, StoreError
from ._journal import RecoveryReport
from ._recovery import recover
from ._rent import RentWaits
from ._settlement import Settlement
from ._store import Kind, Push, PushStore, Store
from ._tasks import TaskHost
from ._waiting import Scheduler

__all__ = ["Fleet"]

log = logging.getLogger("smsactivate_async")


class Fleet:
    """A client's part in its account's fleet (module docstring)."""

    def __init__(self, settlement: Settlement, scheduler: Scheduler, rents: RentWaits, store: Store, host: TaskHost,
                 *, hear: Callable[[Kind, int], None], is_open: Callable[[], bool]) -> None:
        self._settlement = settlement
        self._session = settlement.session
        self._scheduler = scheduler
        self._rents = rents
        self._store = store
        self._host = host
        #: news of an activation or a rent for this client's waiters (the client's ``notify``)
        self._hear = hear
        self._is_open = is_open

    async def recover(self) -> RecoveryReport:
        """Close the numbers of owners whose leases ran out (``SMSActivate.recover``)."""
        report = await recover(self._settlement, self._scheduler, self._rents.waited)
        self._session.telemetry.recovered(report)
        return report

    def start(self) -> None:
        """The client opened: keep its lease (and recover) on a persistent store, hear the others'
        pushes on a store that carries them."""
        if self._store.persistent:
            self._host.start_soon(self._keep_lease, "smsactivate_async lease")
        if self._store.shared and isinstance(self._store, PushStore):
            self._host.start_soon(self._hear_pushes, "smsactivate_async pushes")

    def pushed(self, kind: Kind, entry_id: int) -> None:
        """A push this process's webhook receiver accepted: news for this client's waiters, and, on a
        store that carries pushes (Redis), for every other client of the account."""
        self._hear(kind, entry_id)
        store, fallback = self._store, self._scheduler.fallback_interval
        if store.shared and isinstance(store, PushStore) and fallback is not None and self._is_open() \
                and not self._host.closing:
            push = Push(self._session.journal.owner, kind, entry_id, fallback)

            async def publish() -> None:
                try:
                    await store.publish_push(push)
                except SMSActivateError as exc:
                    log.warning("webhook push for %s %s not passed on to the other clients: %s", kind, entry_id,
                                exc.code)

            self._host.start_soon(publish, "smsactivate_async publish push")

    async def _hear_pushes(self) -> None:
        """Pushes other clients' receivers accepted, for this client's waiters (Redis pub/sub): from the
        first, this client polls as the receiver does while pushes arrive (its fallback interval)."""
        store = self._store
        assert isinstance(store, PushStore)
        me = self._session.journal.owner
        delay = 0.5
        while True:
            try:
                async for push in store.pushes():
                    delay = 0.5
                    if push.sender == me:
                        continue  # its own receiver told it already
                    if push.kind == "rows":
                        self._scheduler.rows_published()
                        continue
                    if self._scheduler.fallback_interval is None:
                        self._scheduler.fallback_interval = push.fallback
                    self._hear(push.kind, push.id)
            except SMSActivateError as exc:
                log.warning("webhook pushes of other clients not heard (%s); listening again in %.1f s", exc.code, delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _keep_lease(self) -> None:
        """Renew the lease (thrice per lease) and, apart, recover dead owners' numbers (once per lease).

        Apart: a recovery can take long (listings paced behind a busy budget, other clients' purchases
        waited for, cancels retried), and a renewal held behind it let this client's lease run out,
        so that the others took it for dead and closed, or re-bought, what it was buying."""
        async with anyio.create_task_group() as group:
            group.start_soon(self._renew_lease)
            await self._recover_every_lease()

    async def _renew_lease(self) -> None:
        journal = self._session.journal
        while True:
            await anyio.sleep(journal.lease / 3)
            try:
                await journal.renew()
            except SMSActivateError as exc:
                log.error("journal: could not renew the lease of %s: %s", journal.owner, exc.message)

    async def _recover_every_lease(self) -> None:
        journal = self._session.journal
        while True:
            await anyio.sleep(journal.lease)
            try:
                report = await self.recover()
                await self._scheduler.run_due_cancels()
            except SMSActivateError as exc:
                if isinstance(exc, StoreError):
                    journal.store_down = True  # nobody is taken for dead until a renewal goes through
                log.warning("journal: recovery failed (%s); will try again", exc.code)
                continue
            if report.finished or report.cancelled or report.pending:
                log.info("journal: recovered %s", report)
            try:
                pruned = await journal.prune()
            except SMSActivateError as exc:
                log.warning("journal: pruning failed (%s); will try again", exc.code)
            else:
                if pruned:
                    log.debug("journal: forgot %d closed records older than %.0f s", pruned, journal.retention)
