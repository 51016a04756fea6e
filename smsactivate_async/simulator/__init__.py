"""A faithful, stateful SMS-Activate protocol server for tests, demos and benchmarks.

In process::

    sim = Simulator(provider="herosms", clock=ManualClock())
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport()) as client: ...

On a port: ``python -m smsactivate_async simulate --port 8765 [--provider herosms]``.

It is built from the protocol documents and captures, not from the client: it imports none of
the client's parsing or models.
"""

from ._app import CatalogueEntry, SimulatedFault, Simulator
from ._core import (
    Account,
    Activation,
    ActivationState,
    CodeSchedule,
    LoopSimClock,
    ManualClock,
    Rent,
    RentSchedule,
    SimClock,
    SystemSimClock,
)
from ._faults import FaultKind, Faults
from ._ledger import Ledger
from ._transport import SimulatorTransport, free_port, serve, serve_in_thread

__all__ = [
    "Account",
    "Activation",
    "ActivationState",
    "CatalogueEntry",
    "CodeSchedule",
    "FaultKind",
    "Faults",
    "Ledger",
    "LoopSimClock",
    "ManualClock",
    "Rent",
    "RentSchedule",
    "SimClock",
    "SimulatedFault",
    "Simulator",
    "SimulatorTransport",
    "SystemSimClock",
    "free_port",
    "serve",
    "serve_in_thread",
]
