"""Webhooks the simulator sends: a queue of tries, each delivered in its own task, on the
provider's schedule (retries, timeout), with duplicates, reordering and drops on demand; and the
background pump that applies timed events as they fall due.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Any

import anyio

from ._common import _plain

if TYPE_CHECKING:
    from ._handlers import Server

__all__ = ["pump", "queue_webhook", "webhook_retry_delay"]

log = logging.getLogger("smsactivate_async.simulator")


def queue_webhook(sim: Server, payload: dict[str, Any], url: str) -> None:
    copies = 2 if sim.webhook_duplicate_rate and sim.rng.random() < sim.webhook_duplicate_rate else 1
    for _ in range(copies):
        sim._webhooks.append((sim.clock.now() + webhook_lag(sim), {"url": url, "payload": payload}, 0))
    if sim._wake is not None:
        sim._wake.set()


def webhook_lag(sim: Server) -> float:
    return sim.rng.uniform(0, sim.webhook_reorder) if sim.webhook_reorder else 0.0


def webhook_retry_delay(sim: Server) -> float:
    if sim.webhook_retry_delay is not None:
        return sim.webhook_retry_delay
    # [DOC HeroSMS] at least 7 retries every 20-30 s; [DOC sms-activate] up to 8 tries within 2 hours
    low, high = sim.profile.webhook_retry_delay
    return sim.rng.uniform(low, high) if high > low else low


def due_webhooks(sim: Server) -> list[tuple[dict[str, Any], int]]:
    now = sim.clock.now()
    due: list[tuple[float, dict[str, Any], int]] = []
    later: collections.deque[tuple[float, dict[str, Any], int]] = collections.deque()
    for when, item, tries in sim._webhooks:
        (due if when <= now else later).append((when, item, tries))
    sim._webhooks = later
    due.sort(key=lambda entry: entry[0])
    return [(item, tries) for _, item, tries in due]


async def deliver_webhook(sim: Server, client: Any, item: dict[str, Any], tries: int) -> None:
    """One try: POST, wait up to the timeout for a 200; anything else is a failure, tried again."""
    status = 0
    if sim.webhook_drop_rate and sim.rng.random() < sim.webhook_drop_rate:
        pass  # lost on the way: the receiver never sees it; for the provider it is a failed try
    else:
        try:
            response = await client.post(item["url"], json=_plain(item["payload"]), timeout=sim.webhook_timeout)
            status = response.status_code
        except Exception as exc:  # the receiver is the user's: any failure is a failed try
            log.debug("webhook delivery failed: %s", type(exc).__name__)
    target = item["payload"].get("activationId") or item["payload"].get("rentId") or 0
    sim.ledger.webhook_deliveries.append((sim.clock.now(), int(target), status))
    if status != 200 and tries + 1 < sim.webhook_retries:
        sim._webhooks.append((sim.clock.now() + webhook_retry_delay(sim), item, tries + 1))
        if sim._wake is not None:
            sim._wake.set()


async def pump(sim: Server, interval: float = 0.05) -> None:
    """Apply timed events as they fall due and deliver webhooks, each try in its own task."""
    import httpx

    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits) as client, anyio.create_task_group() as group:
        while True:
            sim._wake = anyio.Event()
            sim.advance()
            for item, tries in due_webhooks(sim):
                group.start_soon(deliver_webhook, sim, client, item, tries)
            now = sim.clock.now()
            wake_at = min([now + interval, *(w for w, _, _ in sim._webhooks)])
            next_event = sim._events.next_at()
            if next_event is not None:
                wake_at = min(wake_at, next_event)
            with anyio.move_on_after(max(0.0, wake_at - now)):
                await sim._wake.wait()
