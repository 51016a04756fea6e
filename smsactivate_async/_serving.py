"""uvicorn's HTTP/1.1 protocol with the limits a server facing the internet needs.

uvicorn has no time limit for a request's headers or body: a connection that sends half a header,
or declares a body and sends one byte, is held as long as it stays open. :func:`bounded_h11` makes
a protocol class that closes a connection whose request is not whole within ``request_timeout`` of
its first byte (of the connection, for its first request), and refuses connections beyond
``max_connections`` at once. Imported only by :func:`smsactivate_async.webhooks.serve` (uvicorn is
an extra).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["bounded_h11"]


def bounded_h11(request_timeout: float, max_connections: int) -> type[H11Protocol]:
    class BoundedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.abort()  # over the bound: no slot, no answer (a 503 would cost a request's worth)
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and self.conn.their_state is h11.IDLE:
                self._arm()  # a keep-alive connection's next request: its own clock
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE and self.conn.their_state is not h11.SEND_BODY:
                self._disarm()  # the request is whole (or the connection is over)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(request_timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
                self.transport.abort()

    return BoundedH11Protocol
