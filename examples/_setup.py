"""Shared by the examples: a real client when SMSACTIVATE_API_KEY is set, else the simulator."""

from __future__ import annotations

import os
from typing import Any

from smsactivate_async import SMSActivate
from smsactivate_async.simulator import CodeSchedule, Simulator


def make(**options: Any) -> tuple[SMSActivate, Simulator | None]:
    """The client, and the simulator behind it when no key is set."""
    key = os.environ.get("SMSACTIVATE_API_KEY")
    if key:
        return SMSActivate(key, provider=os.environ.get("SMSACTIVATE_PROVIDER", "herosms"), **options), None
    sim = Simulator(codes=CodeSchedule.within(0.05, 0.5), early_cancel_seconds=1.0)
    defaults: dict[str, Any] = {"poll_interval": 0.1, "early_cancel_window": 1.0, "rate_limit": None}
    defaults.update(options)
    return SMSActivate(sim.api_key, transport=sim.transport(), **defaults), sim


def make_client(**options: Any) -> SMSActivate:
    return make(**options)[0]
