"""The handler table: one small function per wire action, registered by area module, and the
:class:`Server` each handler is given — what a handler may use of the simulator, declared here so
that the area modules need not import the simulator's own room (``_app`` imports them)."""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import anyio

    from ._common import CatalogueEntry, _Reply
    from ._core import Account, Activation, ActivationState, EventQueue, Rent, SimClock
    from ._dialects import DialectProfile, Renderer
    from ._ledger import Ledger

__all__ = ["HANDLERS", "Handler", "Server", "handles"]


class Server(Protocol):
    """The simulator as its handlers see it: its state, its settings and the steps they share."""

    profile: DialectProfile
    render: Renderer
    clock: SimClock
    rng: random.Random
    ledger: Ledger
    catalogue: dict[tuple[str, int], CatalogueEntry]
    activations: dict[int, Activation]
    rents: dict[int, Rent]
    orders: dict[tuple[str, str], int]
    early_cancel_seconds: float
    lifetime_seconds: float
    rent_cancel_seconds: float
    status_v2_shape: str
    herosms_number_v2: str
    webhook_retries: int
    webhook_retry_delay: float | None
    webhook_duplicate_rate: float
    webhook_timeout: float
    webhook_drop_rate: float
    webhook_reorder: float
    _countries: dict[int, tuple[str, str, str]]
    _operators: dict[int, list[str]]
    _events: EventQueue
    _rent_ids: collections.abc.Iterator[int]
    _webhooks: collections.deque[tuple[float, dict[str, Any], int]]
    _wake: anyio.Event | None

    @property
    def rent_countries(self) -> tuple[int, ...]: ...
    def advance(self) -> None: ...
    def schedule_rent_sms(self, rent: Rent) -> None: ...
    def _activation(self, account: Account, params: Mapping[str, str], name: str = "id") -> Activation: ...
    def _country(self, params: Mapping[str, str], default: int = 0) -> int: ...
    def _require_country(self, params: Mapping[str, str]) -> None: ...
    def _check_purchase(self, account: Account, params: Mapping[str, str], service: str | None,
                        v2: bool) -> CatalogueEntry: ...
    def _buy(self, account: Account, entry: CatalogueEntry, params: Mapping[str, str], *, phone: str | None = None,
             parent: int | None = None, order_id: str | None = None) -> Activation: ...
    def _extra_entry(self, account: Account, params: Mapping[str, str]) -> tuple[Activation, CatalogueEntry]: ...
    def _early_cancel_check(self, activation: Activation) -> None: ...
    def _change(self, activation: Activation, state: ActivationState, cause: str) -> None: ...
    def _refund(self, activation: Activation, state: ActivationState, cause: str) -> None: ...
    def _schedule_code(self, activation: Activation) -> None: ...
    def _active_row(self, a: Activation) -> dict[str, Any]: ...
    def _history_status(self, a: Activation) -> str: ...
    def _top_rows(self, service: str, free_price: bool) -> dict[str, Any]: ...
    def _free_price_map(self, entry: CatalogueEntry) -> dict[str, int]: ...
    def _rent(self, account: Account, params: Mapping[str, str], *, explain: bool = False) -> Rent: ...
    def _rent_hours(self, params: Mapping[str, str], default: int = 4, *, key: str = "rent_time",
                    least: int = 2, explain: bool = False) -> int: ...
    def _rent_price(self, service: str, country: int, hours: int) -> Decimal: ...


Handler = Callable[[Server, "Account", Mapping[str, str]], "_Reply"]

#: wire action -> handler, for every action of every dialect (a dialect's profile drops or adds)
HANDLERS: dict[str, Handler] = {}


def handles(action: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``action``."""

    def register(handler: Handler) -> Handler:
        if action in HANDLERS:
            raise RuntimeError(f"two handlers for {action}")
        HANDLERS[action] = handler
        return handler

    return register
