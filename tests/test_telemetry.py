"""Issue 43: metrics and traces, each proved against the simulator's ledger (the server's own count).

OpenTelemetry's SDK reads the instruments back (an in-memory reader, an in-memory span exporter);
``client.stats`` is read from the same choke points and must agree with both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from smsactivate_async import ActivationCancelledError, RetryPolicy, SMSActivate, SMSActivateError, WaitTimeoutError
from smsactivate_async.simulator import (
    ActivationState,
    CatalogueEntry,
    CodeSchedule,
    FaultKind,
    Faults,
    LoopSimClock,
    ManualClock,
    Simulator,
)

from .conftest import on_virtual_time

pytestmark = pytest.mark.anyio

#: a number of "tg" always gets its code; one of "wa" never does
CATALOGUE = [CatalogueEntry("tg", 0, Decimal("0.25"), 10_000), CatalogueEntry("wa", 0, Decimal("0.40"), 10_000, 0.0)]


class Readings:
    """The metrics an in-memory reader collected, summed by name and attributes."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.points: dict[str, list[Any]] = {}
        data = reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    self.points.setdefault(metric.name, []).extend(metric.data.data_points)

    def total(self, name: str, **attributes: str) -> float:
        """The sum of a counter (or the count of a histogram) over the points matching ``attributes``."""
        found = 0.0
        for point in self.points.get(name, []):
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                found += point.count if hasattr(point, "count") else point.value
        return found

    def by(self, name: str, attribute: str) -> dict[str, float]:
        found: Counter[str] = Counter()
        for point in self.points.get(name, []):
            found[str(point.attributes.get(attribute))] += point.value
        return dict(found)

    def attributes(self) -> list[dict[str, Any]]:
        return [dict(point.attributes) for points in self.points.values() for point in points]


def make(**options: Any) -> tuple[Simulator, SMSActivate, InMemoryMetricReader, InMemorySpanExporter]:
    sim = Simulator(codes=CodeSchedule.within(0.02, 0.15), catalogue=CATALOGUE, early_cancel_seconds=0,
                    lifetime_seconds=2.0, seed=3)
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(spans))
    client = SMSActivate(sim.api_key, transport=sim.transport(), poll_interval=0.03, early_cancel_window=0,
                         rate_limit=None, meter_provider=MeterProvider(metric_readers=[reader]),
                         tracer_provider=tracing, **options)
    return sim, client, reader, spans


async def test_every_metric_agrees_with_the_ledger() -> None:
    """Requests, purchases, spend, refunds, codes and closes (finished, cancelled, expired), with
    lost answers reconciled and throttles on the way: the client's counts are the server's."""
    sim, client, reader, _ = make(retry=RetryPolicy(attempts=6, base_delay=0, max_delay=0, settle=0.01))
    outcomes: Counter[str] = Counter()

    async def coded() -> None:
        async with client.activation(service="tg", country=0) as act:
            await act.wait_for_code(timeout=5)
            outcomes["coded"] += 1

    async def timed_out() -> None:
        handle = await client.start_activation(service="wa", country=0, timeout=0.1)
        with pytest.raises(WaitTimeoutError):
            await handle.wait_for_code()
        outcomes["timed_out"] += 1

    async def expired() -> None:  # the server ends its life first
        handle = await client.start_activation(service="wa", country=0, timeout=5)
        with pytest.raises(ActivationCancelledError):
            await handle.wait_for_code()
        outcomes["expired"] += 1

    async with client:
        sim.faults.inject("lost_purchase", action="getNumberV2")
        sim.faults.inject("rate_limit", action="getStatus", times=2)
        sim.faults.inject("html_5xx", action="getStatus")
        async with anyio.create_task_group() as group:
            for _ in range(12):
                group.start_soon(coded)
            for _ in range(4):
                group.start_soon(timed_out)
            for _ in range(3):
                group.start_soon(expired)
        await client.get_balance()
        await anyio.sleep(0.05)
        got = Readings(reader)
    assert outcomes == {"coded": 12, "timed_out": 4, "expired": 3}
    ledger = sim.ledger
    states = Counter(a.state for a in sim.activations.values())
    assert states == {ActivationState.FINISHED: 12, ActivationState.CANCELLED: 4, ActivationState.REFUNDED: 3}

    assert got.total("smsactivate.requests") == len(ledger.requests) == client.stats.requests
    for action in {r.action for r in ledger.requests}:
        assert got.total("smsactivate.requests", action=action) == ledger.requests_for(action), action
    assert got.total("smsactivate.requests", action="getStatus", outcome="ok") > 0
    assert got.total("smsactivate.requests", action="getStatus", outcome="RATE_LIMIT") >= 2
    throttled = sum(1 for r in ledger.requests if r.status == 429)
    assert got.total("smsactivate.rate_limit.blocks") == client.stats.rate_limited == throttled >= 2
    assert got.total("smsactivate.request.duration") == len(ledger.requests)

    assert got.total("smsactivate.purchases") == len(ledger.purchases) == client.stats.purchases == 19
    assert got.total("smsactivate.purchases", service="wa", country="0", provider="sms-activate") == 7
    spent = sum(got.by("smsactivate.spend", "service").values())
    assert Decimal(str(round(spent, 6))) == ledger.spent() == client.stats.spent
    refunded = sum(got.by("smsactivate.refunds", "service").values())
    assert Decimal(str(round(refunded, 6))) == ledger.refunded() == client.stats.refunded == Decimal("2.80")
    assert got.by("smsactivate.refunds", "service") == {"wa": pytest.approx(2.80)}

    codes = sum(1 for change in ledger.status_changes if change.new == "CODE_RECEIVED")
    assert got.total("smsactivate.codes") == codes == client.stats.codes == 12
    assert got.total("smsactivate.code.latency") == 12
    assert got.by("smsactivate.closed", "how") == {"finished": 12, "cancelled": 4, "expired": 3}
    assert client.stats.closed == {"finished": 12, "cancelled": 4, "expired": 3}
    assert got.total("smsactivate.open_numbers") == 0
    assert got.total("smsactivate.waiters") == 0


async def test_no_key_and_no_phone_number_in_any_metric_or_span() -> None:
    sim, client, reader, spans = make()
    async with client:
        async with client.activation(service="tg", country=0) as act:
            phone = act.phone_number
            await act.wait_for_code(timeout=5)
        got = Readings(reader)
    finished = spans.get_finished_spans()
    texts = [repr(attributes) for attributes in got.attributes()]
    texts += [repr(dict(span.attributes or {})) + span.name for span in finished]
    assert texts
    for text in texts:
        assert sim.api_key not in text
        assert phone not in text and phone[-7:] not in text
        assert str(act.activation_id) not in text


async def test_one_span_per_call_with_action_outcome_status_and_retries() -> None:
    sim, client, _, spans = make(retry=RetryPolicy(attempts=4, base_delay=0, max_delay=0))
    async with client:
        sim.faults.inject("html_5xx", action="getBalance", times=2)
        await client.get_balance()
        with pytest.raises(SMSActivateError, match="NO_ACTIVATION"):
            await client.get_status(999_999)
    finished = {span.name: span for span in spans.get_finished_spans()}
    balance = finished["smsactivate getBalance"]
    assert balance.attributes is not None
    assert balance.attributes["smsactivate.action"] == "getBalance"
    assert balance.attributes["smsactivate.outcome"] == "ok"
    assert balance.attributes["smsactivate.retries"] == 2
    assert balance.attributes["http.response.status_code"] == 200
    status = finished["smsactivate getStatus"]
    assert status.attributes is not None
    assert status.attributes["smsactivate.outcome"] == "NO_ACTIVATION"
    assert status.attributes["smsactivate.retries"] == 0
    assert not status.status.is_ok  # the error is recorded on the span
    assert sum(1 for span in spans.get_finished_spans() if span.name == "smsactivate getBalance") == 1


async def test_without_a_configured_sdk_no_span_is_started_and_counts_go_on() -> None:
    """The global providers with nothing configured: no tracer is made, the stats still count."""
    sim = Simulator()
    client = SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None)
    async with client:
        await client.get_balance()
    assert client._session.telemetry._tracer is None
    assert client.stats.requests == 1


def test_the_api_is_never_imported_without_the_extra() -> None:
    """With ``opentelemetry`` not importable, the client works and imports nothing of it."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'opentelemetry' or name.startswith('opentelemetry.'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import anyio\n"
        "from smsactivate_async import SMSActivate\n"
        "from smsactivate_async.simulator import Simulator\n"
        "async def main():\n"
        "    sim = Simulator()\n"
        "    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None) as client:\n"
        "        await client.get_balance()\n"
        "    assert client.stats.requests == 1\n"
        "anyio.run(main)\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _meters() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


@on_virtual_time()
async def test_strays_are_bought_once_and_their_refund_counted() -> None:
    """A purchase given up as never made, committed late: found, kept, cancelled — the account paid and
    was refunded, and the counts say so (the ledger again)."""
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), clock=LoopSimClock(), early_cancel_seconds=60,
                    faults=Faults(late_commit_seconds=8.0, hang_seconds=1.0), api_keys={"k": Decimal(100)})
    sim.faults.inject(FaultKind.LATE_PURCHASE, action="getNumberV2")
    meters, reader = _meters()
    client = SMSActivate("k", provider="herosms", transport=sim.transport(), rate_limit=None, timeout=2.0,
                         early_cancel_window=60, retry=RetryPolicy(base_delay=0.01, settle=5.0), meter_provider=meters)
    async with client:
        first = await client.get_number_v2(service="tg", country=2)
        await anyio.sleep(200)  # found, kept for a purchase that never comes, cancelled
        await client.set_status(first.activation_id, 8)
        got = Readings(reader)
    assert got.by("smsactivate.strays", "what") == {"found": 1, "closed": 1}
    assert got.total("smsactivate.purchases") == len(sim.ledger.purchases) == 2
    assert Decimal(str(round(sum(got.by("smsactivate.spend", "service").values()), 6))) == sim.ledger.spent()
    assert Decimal(str(round(sum(got.by("smsactivate.refunds", "service").values()), 6))) == sim.ledger.refunded()
    assert sim.ledger.refunded() == sim.ledger.spent()
    assert got.total("smsactivate.requests") == len(sim.ledger.requests)


async def test_suspend_resume_and_recovery_are_counted_where_they_happen(tmp_path: Path) -> None:
    """Spend where a number was bought, its close and refund where it was closed: the processes'
    counts add up to the ledger across a suspend, a resume and a dead owner's recovery."""
    clock = ManualClock()
    sim = Simulator(codes=CodeSchedule.never(), clock=clock, early_cancel_seconds=0)
    store = f"sqlite:///{tmp_path}/journal.db"
    options: dict[str, Any] = {"transport": sim.transport(), "rate_limit": None, "poll_interval": 0.01,
                               "early_cancel_window": 0, "store": store}
    readers = []
    meters, reader = _meters()
    readers.append(reader)
    async with SMSActivate(sim.api_key, owner="dead", lease=0.2, meter_provider=meters, **options) as dead:
        for _ in range(2):
            await dead.get_number_v2(service="tg", country=0)
    meters, reader = _meters()
    readers.append(reader)
    async with SMSActivate(sim.api_key, owner="web", suspend_on_close=True, meter_provider=meters, **options) as web:
        for _ in range(3):
            await web.start_activation(service="tg", country=0, timeout=600)
    suspended = Readings(reader)
    assert suspended.total("smsactivate.suspended") == 3 and suspended.total("smsactivate.open_numbers") == 0
    await anyio.sleep(0.3)
    meters, reader = _meters()
    readers.append(reader)
    async with SMSActivate(sim.api_key, owner="web", meter_provider=meters, **options) as web:
        assert len(web.resumed) == 3
        resumed = Readings(reader)
        assert resumed.total("smsactivate.open_numbers") == 3 and resumed.total("smsactivate.purchases") == 0
        report = await web.recover()
        for handle in web.resumed:
            await handle.cancel()
        got = Readings(reader)
    assert len(report.cancelled) == 2
    assert got.by("smsactivate.recovery.actions", "what") == {"cancelled": 2}
    assert got.by("smsactivate.closed", "how") == {"cancelled": 5}
    everyone = [Readings(r) for r in readers]
    spent = sum(sum(r.by("smsactivate.spend", "service").values()) for r in everyone)
    refunded = sum(sum(r.by("smsactivate.refunds", "service").values()) for r in everyone)
    assert Decimal(str(round(spent, 6))) == sim.ledger.spent()
    assert Decimal(str(round(refunded, 6))) == sim.ledger.refunded() == sim.ledger.spent()
    assert sum(r.total("smsactivate.requests") for r in everyone) == len(sim.ledger.requests)


async def test_the_rate_limiter_wait_is_measured_per_request() -> None:
    sim = Simulator()
    meters, reader = _meters()
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=20, burst=1,
                           meter_provider=meters) as client:
        for _ in range(6):
            await client.get_balance()
        got = Readings(reader)
    (point,) = got.points["smsactivate.rate_limit.wait"]
    assert point.count == 6 == len(sim.ledger.requests)
    assert 0.15 < point.sum < 1.0  # five waits of about 1/20 s each


async def test_open_numbers_and_waiters_are_what_is_in_flight() -> None:
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    meters, reader = _meters()
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=0.02,
                           early_cancel_window=0, meter_provider=meters) as client:
        handles = [await client.start_activation(service="tg", country=0, timeout=30) for _ in range(5)]
        await anyio.sleep(0.1)
        during = Readings(reader)
        open_then = len(sim.open_activations())
        for handle in handles:
            await handle.cancel()
        await anyio.sleep(0.1)  # the handles' own tasks leave their waits
        after = Readings(reader)
    assert during.total("smsactivate.open_numbers") == 5 == open_then
    assert during.total("smsactivate.waiters") == 5
    assert during.total("smsactivate.open_numbers.oldest_age") >= 0.1
    assert after.total("smsactivate.open_numbers") == 0 and after.total("smsactivate.waiters") == 0
    assert after.total("smsactivate.open_numbers.oldest_age") == 0



async def test_clients_share_their_instruments_and_are_not_kept_alive_by_them() -> None:
    """Found by the harness slowing down: a meter per client stayed in the global proxy provider (it
    keeps every meter for an SDK configured later), and with its callbacks the whole client."""
    import gc
    import weakref

    from opentelemetry import metrics

    sim = Simulator()
    before = len(getattr(metrics.get_meter_provider(), "_meters", []))
    gone = []
    for _ in range(50):
        client = SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None)
        async with client:
            await client.get_balance()
        gone.append(weakref.ref(client))
    del client
    gc.collect()
    assert len(getattr(metrics.get_meter_provider(), "_meters", [])) <= before + 1
    assert sum(1 for ref in gone if ref() is not None) == 0


@pytest.mark.parametrize(("status", "how"), [(2, "cancelled"), (1, "finished")])
async def test_a_rent_closed_by_set_rent_status_is_counted_as_a_rent(status: int, how: str) -> None:
    """Found by mutmut over _session (``_journal_after``): the close a setRentStatus makes is news of a
    rent: the rent is no longer held open (its age no longer counts in ``oldest_open``)."""
    sim = Simulator(codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None) as client:
        rent = await client.get_rent_number(service="tg", rent_time=4, country=0)
        assert client._session.telemetry.oldest_open() >= 0 and len(client._session.telemetry._open) == 1
        await client.set_rent_status(rent.id, status)
        assert client._session.telemetry._open == {}
        assert client.stats.closed == {how: 1}


async def test_a_client_without_an_on_request_hook_calls_none() -> None:
    """Found by mutmut over ``_session`` (issue 37): a client given no ``on_request`` could call ``None``
    at every request (a hook failure, counted and logged once) and pass every test."""
    import httpx

    from smsactivate_async._hooks import hook_failures

    from .conftest import mock_client

    before = hook_failures["on_request"]
    async with mock_client(lambda request: httpx.Response(200, text="ACCESS_BALANCE:1.00"), rate_limit=None) as client:
        await client.get_balance()
    assert hook_failures["on_request"] == before
