"""pytest plugin (entry point ``pytest11``): a simulator and a client wired to it.

Fixtures:

- ``sms_simulator`` — a fresh :class:`Simulator` (classic dialect, manual clock, codes within
  1–3 simulated seconds, windows of the real protocol). Override the ``sms_simulator_options``
  fixture to change its arguments.
- ``sms_client`` — an unopened :class:`SMSActivate` on the simulator, with a short poll interval;
  use ``async with sms_client:`` in an async test.
- ``sms_replay`` — a factory: ``sms_replay("traffic.jsonl", provider="herosms")`` is an unopened
  client that answers from a recording (``SMSActivate(record=...)``, ``smsactivate doctor --record``),
  so a run against a real provider becomes a regression test: in the recording's order (``order=``),
  failing the test if a recorded request was never asked for (``allow_unused=True`` allows it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._app import Simulator
from ._core import CodeSchedule, ManualClock


@pytest.fixture
def sms_simulator_options() -> dict[str, Any]:
    """Keyword arguments for the ``sms_simulator`` fixture; override it in your conftest."""
    return {}


@pytest.fixture
def sms_simulator(sms_simulator_options: dict[str, Any]) -> Simulator:
    options: dict[str, Any] = {"clock": ManualClock(), "codes": CodeSchedule.within(1, 3)}
    options.update(sms_simulator_options)
    return Simulator(**options)


@pytest.fixture
def sms_client(sms_simulator: Simulator) -> Any:
    from .._client import SMSActivate

    return SMSActivate(
        sms_simulator.api_key,
        provider=sms_simulator.provider,  # every simulator dialect has its provider preset
        transport=sms_simulator.transport(),
        poll_interval=0.01,
        rate_limit=None,
    )


@pytest.fixture
def sms_replay() -> Iterator[Any]:
    """``sms_replay(path, provider=..., order="strict", allow_unused=False, **options)``: a client
    answering from a recording. The test fails if a recorded request was never asked for (unless
    ``allow_unused``): a recording is a script, and a request the code stopped making is news."""
    from .._client import SMSActivate
    from .._record import ReplayTransport

    made: list[tuple[ReplayTransport, str]] = []

    def make(path: Any, provider: str = "sms-activate", *, order: Any = "strict", allow_unused: bool = False,
             **options: Any) -> Any:
        settings: dict[str, Any] = {"poll_interval": 0.01, "rate_limit": None}
        settings.update(options)
        transport = ReplayTransport(path, order=order)
        if not allow_unused:
            made.append((transport, str(path)))
        return SMSActivate("replayed-key", provider=provider, transport=transport, **settings)

    yield make
    for transport, path in made:
        unused = transport.unused
        if unused:
            shown = "; ".join(", ".join(f"{k}={v}" for k, v in params.items()) for params in unused[:5])
            pytest.fail(f"{len(unused)} recorded request(s) of {path} never asked for: {shown}"
                        + (" …" if len(unused) > 5 else "") + " (sms_replay(..., allow_unused=True) allows it)",
                        pytrace=False)
