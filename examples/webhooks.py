"""Codes by webhook, polling as the safety net: the receiver served in the bot's own event loop.

Run: python examples/webhooks.py   (the simulator pushes its codes to the receiver over loopback HTTP)

With a real provider: set SMSACTIVATE_API_KEY and SMSACTIVATE_WEBHOOK_SECRET, make port 8080
reachable (usually behind your HTTPS reverse proxy: then pass ``trusted_proxies=["127.0.0.1"]``),
and register ``https://<your host>/sms/<secret>`` in the provider's panel.
"""

from __future__ import annotations

import contextlib
import os
import secrets

import anyio
from _setup import make

from smsactivate_async.simulator import free_port
from smsactivate_async.webhooks import serve


async def main(count: int = 5) -> dict[str, str]:
    client, sim = make()
    secret = os.environ.get("SMSACTIVATE_WEBHOOK_SECRET") or secrets.token_urlsafe(24)
    host, port = ("127.0.0.1", free_port()) if sim else ("0.0.0.0", 8080)
    codes: dict[str, str] = {}
    async with client, anyio.create_task_group() as server:
        # Pushes are only news: each is confirmed with one getStatus before a waiter sees a code.
        # While they arrive, the scan slows to every 30 s; if they stop, polling resumes.
        app = client.webhook_app("/sms", secret=secret, fallback_interval=30.0,
                                 allowed_sources=None if sim else "provider")  # the simulator is on loopback
        server.start_soon(serve, app, host, port)
        if sim is not None:
            sim.webhook_url = f"http://127.0.0.1:{port}{app.path}"

        async def one() -> None:
            async with client.activation(service="tg", country=6) as act:
                codes[act.phone_number] = await act.wait_for_code(timeout=300)

        async with sim.running() if sim else contextlib.nullcontext(), anyio.create_task_group() as waiters:
            for _ in range(count):
                waiters.start_soon(one)
        server.cancel_scope.cancel()
    print(f"{len(codes)} codes, {app.stats.received} pushes received")
    return codes


if __name__ == "__main__":
    anyio.run(main)
