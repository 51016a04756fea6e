"""pytest plugin (entry point ``pytest11``): a simulator and a client wired to it.

Fixtures:

- ``sms_simulator`` — a fresh :class:`Simulator` (classic dialect, manual clock, codes within
  1–3 simulated seconds, windows of the real protocol). Override the ``sms_simulator_options``
  fixture to change its arguments.
- ``sms_client`` — an unopened :class:`SMSActivate` on the simulator, with a short poll interval;
  use ``async with sms_client:`` in an async test.
- ``sms_replay`` — a factory: ``sms_replay("traffic.jsonl", provider="herosms")`` is an unopened
  client that answers from a recording (``SMSActivate(record=...)``, ``smsactivate doctor --record``),
  so a run against a real provider becomes a regression test.
"""

from __future__ import annotations

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
        provider=sms_simulator.dialect,  # every simulator dialect has its provider preset
        transport=sms_simulator.transport(),
        poll_interval=0.01,
        rate_limit=None,
    )


@pytest.fixture
def sms_replay() -> Any:
    """``sms_replay(path, provider=..., **options)``: a client answering from a recording."""
    from .._client import SMSActivate
    from .._record import ReplayTransport

    def make(path: Any, provider: str = "sms-activate", **options: Any) -> Any:
        settings: dict[str, Any] = {"poll_interval": 0.01, "rate_limit": None}
        settings.update(options)
        return SMSActivate("replayed-key", provider=provider, transport=ReplayTransport(path), **settings)

    return make
