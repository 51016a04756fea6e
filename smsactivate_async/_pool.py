"""Several providers that buy in turn: :class:`ProviderPool`.

Above the client (it hands out clients and their activations in its public types); the buying
itself is each client's own (``_buying.py``).
"""

from __future__ import annotations

import collections
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ._buying import BuyingPolicy, RunMany
from ._clock import SystemClock
from ._exceptions import (
    BannedError,
    InsufficientBalanceError,
    InvalidArgumentError,
    NoNumbersError,
    PurchaseUncertainError,
    SMSActivateError,
    SpendingGuardError,
    TransportError,
    WrongMaxPriceError,
)
from ._models import Number

if TYPE_CHECKING:
    from ._client import Activation, SMSActivate

__all__ = ["ProviderPool"]

log = logging.getLogger("smsactivate_async.buying")
#: the event loop's time (virtual under a mock clock), or monotonic time outside a loop
_now = SystemClock().now
#: what sets a provider aside
_SET_ASIDE = (BannedError, InsufficientBalanceError)


class ProviderPool:
    """Several clients (each with its own key, proxy and preset) that buy in turn.

    Tried in the order given, or cheapest first (``order="price"``, from each one's ``getPrices``).
    A provider that answers ``BANNED`` or ``NO_BALANCE``, or fails ``transport_failures`` times in
    a row at the transport, is set aside for ``cooldown`` seconds. ``NO_NUMBERS`` and prices beyond
    the ceiling move on to the next provider. A ``PurchaseUncertainError`` is raised at once: the
    number may have been bought, and buying elsewhere could pay twice.
    Every activation stays with the client that bought it (``act.client``).
    """

    def __init__(self, clients: Sequence[SMSActivate], *, order: Literal["listed", "price"] = "listed",
                 cooldown: float = 300.0, transport_failures: int = 3) -> None:
        clients = list(clients)
        if not clients:
            raise InvalidArgumentError("a ProviderPool needs at least one client")
        accounts = [(c._namespace, c.provider.base_url) for c in clients]
        if len(set(accounts)) != len(accounts):
            raise InvalidArgumentError("a ProviderPool got two clients of the same account (same provider and key): "
                                       "one account is one client; its limits and bans are shared")
        if order not in ("listed", "price"):
            raise InvalidArgumentError(f"order must be 'listed' or 'price', got {order!r}")
        if not isinstance(cooldown, (int, float)) or cooldown < 0:
            raise InvalidArgumentError(f"cooldown must be seconds >= 0, got {cooldown!r}")
        if isinstance(transport_failures, bool) or not isinstance(transport_failures, int) or transport_failures < 1:
            raise InvalidArgumentError(f"transport_failures must be a positive int, got {transport_failures!r}")
        self.clients = clients
        self.order = order
        self.cooldown = cooldown
        self.transport_failures = transport_failures
        self._resting: dict[int, float] = {}
        self._failures: collections.Counter[int] = collections.Counter()

    def available(self) -> list[SMSActivate]:
        """The clients not set aside right now, in the pool's order."""
        now = _now()
        return [c for i, c in enumerate(self.clients) if self._resting.get(i, 0.0) <= now]

    def set_aside(self, client: SMSActivate, seconds: float | None = None) -> None:
        """Leave ``client`` out of purchases for ``seconds`` (default: the pool's cooldown)."""
        index = self.clients.index(client)
        self._resting[index] = _now() + (self.cooldown if seconds is None else seconds)
        log.warning("provider %s set aside for %gs", client.provider.name, self.cooldown if seconds is None else seconds)

    async def _ordered(self, service: str, country: int | None) -> list[SMSActivate]:
        clients = self.available()
        if self.order == "listed" or country is None:
            return clients
        costs: dict[int, Decimal] = {}
        for client in clients:
            try:
                prices = await client._catalogue.get(("prices", service), 60.0, functools.partial(client.get_prices,
                                                                                                  service=service))
            except SMSActivateError:
                continue
            price = prices.get(country, {}).get(service)
            if price is not None and price.count != 0:
                costs[id(client)] = price.cost
        return sorted(clients, key=lambda c: (id(c) not in costs, costs.get(id(c), Decimal(0))))

    async def _attempt(self, service: str, country: int | None,
                       buy: Callable[[SMSActivate], Awaitable[Any]]) -> Any:
        last: SMSActivateError | None = None
        candidates = await self._ordered(service, country)
        if not candidates:
            raise NoNumbersError("every provider of the pool is set aside (cooling down)", code="POOL_EXHAUSTED")
        for client in candidates:
            index = self.clients.index(client)
            try:
                result = await buy(client)
            except PurchaseUncertainError:
                raise
            except _SET_ASIDE as exc:
                self.set_aside(client)
                last = exc
            except TransportError as exc:
                self._failures[index] += 1
                if self._failures[index] >= self.transport_failures:
                    self._failures[index] = 0
                    self.set_aside(client)
                last = exc
            except (NoNumbersError, WrongMaxPriceError, SpendingGuardError) as exc:
                if isinstance(exc, SpendingGuardError) and exc.reason in ("budget", "no_code_streak"):
                    raise  # the guard speaks for the whole run, not for one provider
                last = exc
            else:
                self._failures[index] = 0
                return result
        assert last is not None
        raise last

    async def buy(self, service: str, country: int | None = None, *, policy: BuyingPolicy | None = None,
                  **options: Any) -> tuple[SMSActivate, Number]:
        """Buy from the first provider that has a number: (the client that bought it, the number)."""
        async def one(client: SMSActivate) -> tuple[SMSActivate, Number]:
            return client, await client.buy(service=service, country=country, policy=policy, **options)

        result: tuple[SMSActivate, Number] = await self._attempt(service, country, one)
        return result

    def activation(self, service: str, country: int | None = None, *, policy: BuyingPolicy | None = None,
                   **options: Any) -> _PoolActivation:
        """``async with pool.activation(...) as act:`` — ``client.activation()`` at the first provider
        that has a number; ``act.client`` is that provider's client."""
        return _PoolActivation(self, service, country, policy, options)

    def run_many(self, n: int, *, service: str, country: int | None = None, policy: BuyingPolicy | None = None,
                 concurrency: int = 10, timeout: float = 300.0,
                 handler: Callable[[Activation, str], Awaitable[object]] | None = None, **options: Any) -> RunMany:
        """Like :meth:`SMSActivate.run_many`, across the pool's providers."""
        def make() -> _PoolActivation:
            return self.activation(service, country, policy=policy, **options)

        return RunMany(make, n, concurrency, timeout, handler, policy)


class _PoolActivation:
    def __init__(self, pool: ProviderPool, service: str, country: int | None, policy: BuyingPolicy | None,
                 options: dict[str, Any]) -> None:
        self._pool = pool
        self._args = (service, country, policy, options)
        self._inner: Activation | None = None

    async def __aenter__(self) -> Activation:
        service, country, policy, options = self._args

        async def one(client: SMSActivate) -> Activation:
            act = client.activation(service=service, country=country, policy=policy, **options)
            return await act.__aenter__()

        self._inner = await self._pool._attempt(service, country, one)
        return self._inner

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._inner is not None:
            await self._inner.__aexit__(exc_type, exc, tb)
