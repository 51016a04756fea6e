"""Running the simulator: in process (an httpx transport) or on a loopback port (uvicorn)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import anyio
import httpx

from ._faults import FaultKind, Faults, Receive, Scope, Send, SimulatedFault

__all__ = ["SimulatorTransport", "serve", "serve_in_thread"]


class Served(Protocol):
    """What running a simulator needs of it: its ASGI app and its faults (a :class:`~._app.Simulator`)."""

    faults: Faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


class SimulatorTransport(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` over a simulator, with network faults turned into httpx errors.

    A dropped connection becomes ``httpx.RemoteProtocolError`` and a lost answer
    ``httpx.ReadTimeout`` — what a client sees on a real link.
    """

    def __init__(self, simulator: Served) -> None:
        self.simulator = simulator
        self._asgi = httpx.ASGITransport(app=simulator)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request in process (httpx's transport interface)."""
        try:
            return await self._asgi.handle_async_request(request)
        except SimulatedFault as fault:
            if fault.kind is FaultKind.DROP:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request) from None
            raise httpx.ReadTimeout("The read operation timed out", request=request) from None


class _NetworkFaults:
    """ASGI middleware for a served simulator: drops and lost answers done on the real socket."""

    def __init__(self, simulator: Served) -> None:
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.simulator(scope, receive, send)
        except SimulatedFault as fault:
            if fault.kind is not FaultKind.DROP:
                await anyio.sleep(self.simulator.faults.hang_seconds)
            # Promise a body and close early: the client sees the connection cut mid-answer.
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
            await send({"type": "http.response.body", "body": b"ACCESS", "more_body": False})


def free_port() -> int:
    """A TCP port free on loopback right now (for ``serve_in_thread``, a webhook receiver…)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _QuietDrops(logging.Filter):
    """uvicorn logs the deliberate short body of a simulated drop as an error: not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return "declared Content-Length" not in str(error) and "declared Content-Length" not in record.getMessage()


def _config(simulator: Served, host: str, port: int, log_level: str) -> Any:
    quiet = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in quiet.filters):
        quiet.addFilter(_QuietDrops())
    uvicorn = _uvicorn()
    return uvicorn.Config(_NetworkFaults(simulator), host=host, port=port, log_level=log_level, lifespan="on",
                          access_log=False, server_header=False)  # one Server header, ours [LIVE §A]


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise SystemExit("the simulator server needs uvicorn: pip install 'smsactivate-async[simulator]'") from None
    return uvicorn


def serve(simulator: Served, *, host: str = "127.0.0.1", port: int = 8765, log_level: str = "warning") -> None:
    """Serve until interrupted (``python -m smsactivate_async simulate``)."""
    uvicorn = _uvicorn()
    uvicorn.Server(_config(simulator, host, port, log_level)).run()


@contextlib.contextmanager
def serve_in_thread(simulator: Served, *, host: str = "127.0.0.1", port: int | None = None,
                    log_level: str = "warning") -> Iterator[str]:
    """Serve on a loopback port in a thread; yields the handler URL."""
    uvicorn = _uvicorn()

    port = port or free_port()
    server = uvicorn.Server(_config(simulator, host, port, log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the simulator server did not start")
            threading.Event().wait(0.01)
        yield f"http://{host}:{port}/stubs/handler_api.php"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
