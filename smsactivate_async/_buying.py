"""Buying that does not waste money: a policy as data and a bulk runner (the pool of providers that
buy in turn is ``_pool.py``).

A :class:`BuyingPolicy` declares what happens on each answer, in the spirit of botocore's waiter
acceptors — inspectable and testable without a network:

- ``WRONG_MAX_PRICE:<min>`` → buy again at ``<min>`` when it is within ``ceiling`` (a *price step*);
  with ``free_price``, step up through the Free Price levels of ``getTopCountriesByService``
  (its ``freePriceMap``) while a level has no numbers, never above ``ceiling``;
- ``NO_NUMBERS``, or a minimum beyond the ceiling → the next of ``fallbacks`` (country, operator),
  in the order given or ranked by live price or stock (``getPrices``, cached ``price_ttl`` seconds);
- a :class:`SpendingGuard` stops buying (``SpendingGuardError``, nothing more spent) after a money
  budget, after K numbers in a row without a code, or for a (service, country) whose success rate
  over its last N numbers fell under a floor — HeroSMS bans pairs under 6 % (FACTS §18).

Every step and fallback is logged (``smsactivate_async.buying``) and counted in ``client.stats``.
The maximum price sent never exceeds the ceiling, so the provider cannot charge more; a number that
comes back dearer anyway (a provider ignoring ``maxPrice``) is cancelled at once.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio
import anyio.abc
import attrs

from ._clock import SystemClock
from ._exceptions import (
    APIError,
    InvalidArgumentError,
    NoNumbersError,
    PurchaseUncertainError,
    RateLimitedError,
    ServerError,
    SMSActivateError,
    SpendingGuardError,
    TransportError,
    WrongMaxPriceError,
)
from ._hooks import PURCHASE_CHECK
from ._models import Number, Price, TopCountry

if TYPE_CHECKING:
    from collections.abc import MutableSet

    from ._providers import Provider
    from ._telemetry import SessionStats
    from ._waiting import Scheduler

__all__ = ["Buyer", "BuyingPolicy", "Choice", "RunMany", "RunResult", "SpendingGuard", "buy_with_policy"]

log = logging.getLogger("smsactivate_async.buying")
#: the event loop's time (virtual under a mock clock), or monotonic time outside a loop
_now = SystemClock().now

#: at most this many price steps per choice: a minimum that keeps moving does not loop for ever
MAX_STEPS = 5


def _money(name: str, value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, (bool, float)):
        raise InvalidArgumentError(f"{name} must be a Decimal, int or str amount (not {type(value).__name__}), got {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidArgumentError(f"{name} must be an amount, got {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidArgumentError(f"{name} must be a positive amount, got {value!r}")
    return amount


def _max_price(value: object) -> Decimal | None:
    return _money("max_price", value)


def _ceiling(value: object) -> Decimal | None:
    return _money("ceiling", value)


@attrs.frozen
class Choice:
    """Where to buy: a country and, optionally, an operator."""

    country: int
    operator: str | None = None

    def __attrs_post_init__(self) -> None:
        if isinstance(self.country, bool) or not isinstance(self.country, int) or self.country < 0:
            raise InvalidArgumentError(f"a choice's country must be a country id (int >= 0), got {self.country!r}")


def _choices(value: Iterable[Choice | int | tuple[int, str | None]] | None) -> tuple[Choice, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise InvalidArgumentError("fallbacks must be a list of Choice, country ids or (country, operator) pairs")
    result = tuple(v if isinstance(v, Choice) else Choice(*v) if isinstance(v, tuple) else Choice(v) for v in value)
    if not result:
        raise InvalidArgumentError("fallbacks is empty: omit it (None) for no fallbacks")
    return result


@attrs.frozen
class _Reservation:
    """Money set aside for one purchase in flight; ``blind``: no price was known to set aside."""

    amount: Decimal
    blind: bool


class SpendingGuard:
    """Stops buying before money is wasted. Shared by every purchase made under its policy.

    Args:
        budget: money that may be spent in all. Before a purchase is sent, what it can cost is set
            aside: the policy's ceiling (or ``max_price``); without one, the live price of the choice
            (``getPrices``, free, cached the policy's ``price_ttl``), else the dearest price seen so
            far; with no price known at all, one purchase at a time until a price is seen. A purchase
            that the reserved money would take past the budget waits for those in flight to settle,
            and is refused (``SpendingGuardError``) if it still would. So the budget holds whatever the
            concurrency — as long as the provider charges no more than the price it lists (with a
            ceiling it cannot: ``maxPrice`` is sent, and a number sold above it is cancelled).
            A purchase whose outcome is uncertain (its answer lost) stays counted as spent.
        max_no_code_streak: stop after this many numbers in a row closed without a code.
        min_success_rate: stop buying a (service, country) once, over its last ``window`` numbers,
            fewer than this share got a code (other pairs, e.g. fallbacks, go on).
        window: how many numbers per pair the success rate looks at.
        count_refunds: whether money refunded (a number cancelled before a code came) returns to the
            budget. Default ``False``: the budget counts money paid out, refunds or not (safe: it
            never lets more through than the budget while a refund is pending); ``True``: it counts
            net spend, so a run that cancels most numbers can buy more.

    Once a stop is decided (budget, streak, success rate), purchases not yet sent are refused before
    they leave, even those already queued behind the rate limiter; numbers already on the wire then
    — at most the concurrency you chose — still arrive and are closed as usual.
    """

    def __init__(self, *, budget: Decimal | int | str | None = None, max_no_code_streak: int | None = None,
                 min_success_rate: float | None = None, window: int = 50, count_refunds: bool = False) -> None:
        self.budget = _money("budget", budget)
        for name, count in (("max_no_code_streak", max_no_code_streak), ("window", window)):
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
                raise InvalidArgumentError(f"{name} must be a positive int, got {count!r}")
        if min_success_rate is not None and not (isinstance(min_success_rate, (int, float))
                                                 and 0 < min_success_rate <= 1):
            raise InvalidArgumentError(f"min_success_rate must be in (0, 1], got {min_success_rate!r}")
        if not isinstance(count_refunds, bool):
            raise InvalidArgumentError(f"count_refunds must be True or False, got {count_refunds!r}")
        self.max_no_code_streak = max_no_code_streak
        self.min_success_rate = min_success_rate
        self.window = window
        self.count_refunds = count_refunds
        #: money paid out for numbers bought under this guard (before refunds)
        self.spent = Decimal(0)
        #: money returned for numbers cancelled before a code came (counted whatever ``count_refunds``)
        self.refunded = Decimal(0)
        self.bought = 0
        self.no_code_streak = 0
        self._reserved = Decimal(0)
        self._blind = 0  # purchases in flight with no price known to reserve
        #: the dearest price paid or listed so far: what a purchase with no price known is taken to cost
        self.last_price: Decimal | None = None
        self._costs: dict[int, Decimal] = {}  # activation id → what it cost, until closed (for refunds)
        self._settled: anyio.Event | None = None  # made in the event loop, when first awaited
        self._outcomes: dict[tuple[str, int], collections.deque[bool]] = {}

    def __repr__(self) -> str:
        return (f"SpendingGuard(budget={self.budget}, spent={self.spent}, refunded={self.refunded}, "
                f"reserved={self.reserved}, bought={self.bought}, no_code_streak={self.no_code_streak})")

    @property
    def reserved(self) -> Decimal:
        """Money set aside for purchases in flight."""
        return self._reserved

    @property
    def counted(self) -> Decimal:
        """What the budget is measured against: ``spent``, less ``refunded`` with ``count_refunds``."""
        return self.spent - self.refunded if self.count_refunds else self.spent

    def success_rate(self, service: str, country: int) -> float | None:
        """The share of the pair's last ``window`` numbers that got a code (``None``: none closed yet)."""
        outcomes = self._outcomes.get((service, country))
        return sum(outcomes) / len(outcomes) if outcomes else None

    def pair_allowed(self, service: str, country: int) -> bool:
        """Whether the pair may still be bought (not under the success-rate floor)."""
        floor = self.min_success_rate
        outcomes = self._outcomes.get((service, country))
        if floor is None or outcomes is None or len(outcomes) < self.window:
            return True
        return sum(outcomes) / len(outcomes) >= floor

    def check(self, service: str | None = None, country: int | None = None) -> None:
        """Raise ``SpendingGuardError`` if a stop has been decided (the streak, or the pair's success
        rate): called before a purchase is reserved, and again just before it is sent."""
        streak = self.max_no_code_streak
        if streak is not None and self.no_code_streak >= streak:
            raise SpendingGuardError(f"{self.no_code_streak} numbers in a row got no code: buying stopped",
                                     reason="no_code_streak", spent=self.spent)
        if service is not None and country is not None and not self.pair_allowed(service, country):
            rate = 100 * (self.success_rate(service, country) or 0)
            raise SpendingGuardError(f"{service} in country {country}: success rate {rate:.0f}% under the floor "
                                     f"{100 * (self.min_success_rate or 0):.0f}%: buying there stopped",
                                     reason="success_rate", spent=self.spent)

    def before_send(self, service: str, country: int, estimate: Decimal | None, again: bool) -> None:
        """The moment a purchase leaves: a stop decided meanwhile refuses it. ``again``: it is bought
        anew after an attempt whose answer was lost and that the listings did not show — the server
        may yet commit that one (a stray, cancelled and refunded when found), so it is counted as
        spent now, and the new attempt is refused if the budget cannot cover both."""
        self.check(service, country)
        if not again:
            return
        possible = estimate if estimate is not None else (self.last_price or Decimal(0))
        self.spent += possible
        if self.budget is not None and self.counted + self._reserved > self.budget:
            raise SpendingGuardError(
                f"budget {self.budget} reached (spent {self.spent}, counting a purchase whose answer was lost "
                "and that the server may still commit): buying stopped", reason="budget", spent=self.spent)

    async def reserve(self, limit: Decimal | None, *, service: str | None = None,
                      country: int | None = None) -> _Reservation:
        """Before a purchase: set aside what it can cost (``limit``; without one the dearest price
        seen), or refuse (``SpendingGuardError``). A purchase that would pass the budget only because
        of others still in flight waits for them to settle (they may cost less than was set aside,
        or fail), so buying stops within the budget."""
        while True:
            self.check(service, country)
            estimate = limit if limit is not None else self.last_price
            if self.budget is None:
                reservation = _Reservation(estimate or Decimal(0), blind=False)
                break
            committed = self.counted + self._reserved
            if estimate is None:
                # No price known yet: one purchase at a time, until one tells what a number costs.
                if not self._blind and not self._reserved and committed < self.budget:
                    self._blind += 1
                    reservation = _Reservation(Decimal(0), blind=True)
                    break
            elif committed + estimate <= self.budget:
                reservation = _Reservation(estimate, blind=False)
                break
            if not self._reserved and not self._blind:
                raise SpendingGuardError(
                    f"budget {self.budget} reached (spent {self.spent}"
                    f"{f', refunded {self.refunded}' if self.refunded else ''}; a number costs about {estimate})"
                    ": buying stopped", reason="budget", spent=self.spent)
            if self._settled is None:
                self._settled = anyio.Event()
            await self._settled.wait()
        self._reserved += reservation.amount
        return reservation

    def settle(self, reservation: _Reservation, cost: Decimal | None, activation_id: int | None = None) -> None:
        """After a purchase: ``cost`` spent (``None``: nothing bought)."""
        self._reserved -= reservation.amount
        if reservation.blind:
            self._blind -= 1
        if cost is not None:
            self.spent += cost
            self.bought += 1
            if cost > 0 and (self.last_price is None or cost > self.last_price):
                self.last_price = cost
            if activation_id is not None:
                self._costs[activation_id] = cost
        self._wake()

    def saw_price(self, price: Decimal) -> None:
        """A listed price for what is about to be bought: a purchase without a ceiling reserves at least it."""
        if price > 0 and (self.last_price is None or price > self.last_price):
            self.last_price = price

    def closed(self, activation_id: int, state: str) -> None:
        """A number bought under this guard was closed (``"finished"`` / ``"cancelled"`` /
        ``"expired"``): a close before a code is refunded by the provider."""
        cost = self._costs.pop(activation_id, None)
        if cost is not None and state in ("cancelled", "expired"):
            self.refunded += cost
            if self.count_refunds:
                self._wake()

    def _wake(self) -> None:
        if self._settled is not None:
            self._settled.set()
            self._settled = None

    def record(self, service: str, country: int | None, got_code: bool) -> None:
        """A number was closed: with a code or without."""
        self.no_code_streak = 0 if got_code else self.no_code_streak + 1
        if country is not None:
            outcomes = self._outcomes.setdefault((service, country), collections.deque(maxlen=self.window))
            outcomes.append(got_code)


@attrs.frozen
class BuyingPolicy:
    """How to buy: the price to offer and the ceiling, Free Price levels, fallbacks, a guard.

    Attributes:
        max_price: the price offered first (``None``: the ceiling, or no ``maxPrice`` at all).
        ceiling: never pay above this; ``WRONG_MAX_PRICE:<min>`` within it is bought at ``<min>``
            (default: ``max_price``, i.e. no stepping).
        free_price: buy through the Free Price levels up to the ceiling (needs a ceiling).
        fallbacks: (country, operator) choices tried in turn after the first.
        rank: ``"listed"`` (as given), ``"price"`` (cheapest first) or ``"stock"`` (most first),
            from ``getPrices`` cached ``price_ttl`` seconds; choices with no stock go last.
        guard: a :class:`SpendingGuard` shared by every purchase under this policy.
    """

    max_price: Decimal | None = attrs.field(default=None, converter=_max_price)
    ceiling: Decimal | None = attrs.field(default=None, converter=_ceiling)
    free_price: bool = False
    fallbacks: tuple[Choice, ...] | None = attrs.field(default=None, converter=_choices)
    rank: Literal["listed", "price", "stock"] = "listed"
    price_ttl: float = 60.0
    guard: SpendingGuard | None = None

    def __attrs_post_init__(self) -> None:
        if self.max_price is not None and self.ceiling is not None and self.max_price > self.ceiling:
            raise InvalidArgumentError(f"max_price {self.max_price} is above the ceiling {self.ceiling}")
        if self.free_price and self.limit is None:
            raise InvalidArgumentError("free_price needs a ceiling (or max_price): Free Price levels go up to it")
        if self.rank not in ("listed", "price", "stock"):
            raise InvalidArgumentError(f"rank must be 'listed', 'price' or 'stock', got {self.rank!r}")
        if not isinstance(self.price_ttl, (int, float)) or self.price_ttl < 0:
            raise InvalidArgumentError(f"price_ttl must be a number of seconds >= 0, got {self.price_ttl!r}")
        if self.guard is not None and not isinstance(self.guard, SpendingGuard):
            raise InvalidArgumentError("guard must be a SpendingGuard")

    @property
    def limit(self) -> Decimal | None:
        """The most one number may cost under this policy."""
        return self.ceiling if self.ceiling is not None else self.max_price


# --- one purchase under a policy ---------------------------------------------------------------------


class _Catalogue:
    """Live prices and Free Price levels per client, kept ``ttl`` seconds."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    async def get(self, key: tuple[str, str], ttl: float, fetch: Callable[[], Awaitable[Any]]) -> Any:
        hit = self._cache.get(key)
        now = _now()  # the event loop's time: virtual where the loop's is
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        value = await fetch()
        self._cache[key] = (now, value)
        return value


class Buyer(Protocol):
    """What buying under a policy needs of a client: its prices (and their cache), the purchase, the
    spending guards it serves, its counters and its scheduler (a number over the guard is cancelled)."""

    provider: Provider
    _catalogue: _Catalogue

    @property
    def _guards(self) -> MutableSet[SpendingGuard]: ...
    @property
    def stats(self) -> SessionStats: ...
    @property
    def get_number_v2(self) -> Callable[..., Awaitable[Number]]: ...
    @property
    def get_prices(self) -> Callable[..., Awaitable[dict[int, dict[str, Price]]]]: ...
    @property
    def get_top_countries_by_service(self) -> Callable[..., Awaitable[list[TopCountry]]]: ...
    def _get_scheduler(self) -> Scheduler: ...


async def _ranked(client: Buyer, service: str, choices: list[Choice], policy: BuyingPolicy) -> list[Choice]:
    if policy.rank == "listed":
        return choices
    prices = await client._catalogue.get(("prices", service), policy.price_ttl,
                                         lambda: client.get_prices(service=service))

    def key(choice: Choice) -> tuple[int, Decimal | int]:
        price = prices.get(choice.country, {}).get(service)
        if price is None or price.count == 0:
            return (1, 0)  # unknown or out of stock: last, in the given order
        return (0, price.cost if policy.rank == "price" else -(price.count or 0))

    return sorted(choices, key=key)  # stable: ties keep the given order


async def _free_levels(client: Buyer, service: str, country: int, policy: BuyingPolicy) -> list[Decimal]:
    rows = await client._catalogue.get(("free", service), policy.price_ttl,
                                       lambda: client.get_top_countries_by_service(service=service, free_price=True))
    levels: set[Decimal] = set()
    for row in rows:
        if row.country == country:
            levels.update(row.free_price_map or {})
            if row.price is not None:
                levels.add(row.price)
    low, high = policy.max_price, policy.limit
    return sorted(level for level in levels if (low is None or level >= low) and (high is None or level <= high))


#: a purchase that ended in one of these was not made (an answer that says so, or nothing sent)
_REFUSED = (APIError, SpendingGuardError, InvalidArgumentError)
#: …except these, which a purchase may end in after its request was carried out
_MAYBE_DONE = (ServerError, RateLimitedError, PurchaseUncertainError, TransportError)


async def _listed_price(client: Buyer, service: str, country: int, policy: BuyingPolicy) -> Decimal | None:
    """The price the provider lists for the choice (``getPrices``, free, cached), or ``None``."""
    try:
        prices = await client._catalogue.get(("prices", service), policy.price_ttl,
                                             lambda: client.get_prices(service=service))
    except SMSActivateError:
        return None
    price = prices.get(country, {}).get(service)
    return price.cost if price is not None and price.cost else None


async def _purchase(client: Buyer, service: str, choice: Choice, price: Decimal | None, free: bool,
                    policy: BuyingPolicy, options: dict[str, Any]) -> Number:
    guard = policy.guard
    reservation = None
    estimate = price
    if guard is not None:
        if price is None and guard.budget is not None:
            # No ceiling: what the number will cost is its listed price (the dearest seen, if none is listed)
            estimate = await _listed_price(client, service, choice.country, policy)
            if estimate is not None:
                guard.saw_price(estimate)
        reservation = await guard.reserve(estimate, service=service, country=choice.country)
        client._guards.add(guard)
    number: Number | None = None
    cost: Decimal | None = None
    sent = False

    def before_send(again: bool) -> None:
        nonlocal sent
        assert guard is not None
        guard.before_send(service, choice.country, estimate, again)
        sent = True

    token = PURCHASE_CHECK.set(before_send) if guard is not None else None
    try:
        args = {**options, "service": service, "country": choice.country}
        if choice.operator is not None:
            args["operator"] = choice.operator
        if price is not None:
            args["max_price"] = price
        if free:
            args["free_price"] = True
        number = await client.get_number_v2(**args)
        cost = number.activation_cost if number.activation_cost is not None else estimate
    except BaseException as exc:
        # Sent, and not refused for certain (uncertain, a fault after the retries, or the caller's task
        # cancelled while it was on the wire or being reconciled): it may have been bought — counted.
        refused = isinstance(exc, _REFUSED) and not isinstance(exc, _MAYBE_DONE)
        if sent and not refused:
            cost = estimate if estimate is not None else (guard.last_price if guard is not None else None) or Decimal(0)
        raise
    finally:
        if token is not None:
            PURCHASE_CHECK.reset(token)
        if guard is not None and reservation is not None:
            guard.settle(reservation, cost, number.activation_id if number is not None else None)
    limit = policy.limit
    if limit is not None and number.activation_cost is not None and number.activation_cost > limit:
        log.error("activation %s cost %s, above the ceiling %s: cancelling it", number.activation_id,
                  number.activation_cost, limit)
        with anyio.CancelScope(shield=True):
            await client._get_scheduler().cancel(number.activation_id)
        raise SpendingGuardError(f"the provider sold at {number.activation_cost}, above the ceiling {limit}; "
                                 "the number was cancelled", reason="above_ceiling", spent=guard.spent if guard else None)
    return number


async def _buy_choice(client: Buyer, service: str, choice: Choice, policy: BuyingPolicy,
                      options: dict[str, Any]) -> Number:
    limit = policy.limit
    if policy.free_price:
        levels = await _free_levels(client, service, choice.country, policy)
        if not levels:
            raise NoNumbersError(f"no Free Price level for {service} in country {choice.country} within {limit}",
                                 action="getNumberV2")
        last: SMSActivateError | None = None
        for index, level in enumerate(levels):
            if index:
                client.stats.price_steps += 1
                log.info("%s/%s: no number at Free Price %s; stepping to %s", service, choice.country,
                         levels[index - 1], level)
            try:
                return await _purchase(client, service, choice, level, True, policy, options)
            except (NoNumbersError, WrongMaxPriceError) as exc:
                last = exc
        assert last is not None
        raise last
    price = policy.max_price if policy.max_price is not None else limit
    for step in range(MAX_STEPS + 1):
        try:
            return await _purchase(client, service, choice, price, False, policy, options)
        except WrongMaxPriceError as exc:
            minimum = exc.min_price
            if (step == MAX_STEPS or minimum is None or limit is None or minimum > limit
                    or (price is not None and minimum <= price)):
                raise
            client.stats.price_steps += 1
            log.info("%s/%s: minimum price is %s (offered %s); stepping to it, ceiling %s", service, choice.country,
                     minimum, price, limit)
            price = minimum
    raise AssertionError("unreachable")  # pragma: no cover


async def buy_with_policy(client: Buyer, service: str, country: int | None, policy: BuyingPolicy,
                          options: dict[str, Any]) -> tuple[Number, Choice]:
    """Buy one number under ``policy``: the number and the choice it was bought under."""
    options = dict(options)
    operator = options.pop("operator", None)
    for reserved in ("max_price", "free_price", "service", "country"):
        if options.get(reserved) is not None:
            raise InvalidArgumentError(f"with a policy, {reserved} comes from the policy and the choices, not an argument")
        options.pop(reserved, None)
    first = [Choice(country, operator)] if country is not None else []
    choices = await _ranked(client, service, first + list(policy.fallbacks or ()), policy)
    if not choices:
        raise InvalidArgumentError("buying under a policy needs a country or fallbacks")
    guard = policy.guard
    last: SMSActivateError | None = None
    passed_over: list[str] = []  # each choice not bought, and why
    for index, choice in enumerate(choices):
        where = f"country {choice.country}" + (f" (operator {choice.operator})" if choice.operator else "")
        if guard is not None and not guard.pair_allowed(service, choice.country):
            rate = 100 * (guard.success_rate(service, choice.country) or 0)
            passed_over.append(f"{where}: success rate {rate:.0f}% under the floor "
                               f"{100 * (guard.min_success_rate or 0):.0f}%")
            log.warning("%s/%s: success rate %.0f%% under the floor; not buying there", service, choice.country, rate)
            continue
        if index and last is not None:
            client.stats.fallbacks += 1
            log.info("%s: %s in %s; falling back to %s", service, last.code, choices[index - 1], choice)
        try:
            return await _buy_choice(client, service, choice, policy, options), choice
        except NoNumbersError as exc:
            passed_over.append(f"{where}: out of stock ({exc.code})")
            last = exc
        except WrongMaxPriceError as exc:
            limit = policy.limit
            if exc.min_price is not None and limit is not None and exc.min_price > limit:
                passed_over.append(f"{where}: its minimum price {exc.min_price} is above the ceiling {limit}")
            else:
                passed_over.append(f"{where}: price refused ({exc.code}"
                                   f"{f', minimum {exc.min_price}' if exc.min_price is not None else ''})")
            last = exc
    if last is None:
        raise SpendingGuardError(f"no choice for {service} could be bought: {'; '.join(passed_over)}",
                                 reason="success_rate", spent=guard.spent if guard else None)
    if len(passed_over) > 1:
        # one error naming every choice and why it was passed over, of the last one's type
        last.message = f"no choice for {service} could be bought: {'; '.join(passed_over)}"
        last.args = (last.message,)
    if isinstance(last, APIError):
        last.info = {**last.info, "passed_over": tuple(passed_over)}
    raise last




# --- many at once -----------------------------------------------------------------------------------


@attrs.frozen
class RunResult:
    """One activation of a :meth:`SMSActivate.run_many` run: its code, or the error that ended it.

    ``activation_id`` is ``None`` when nothing was bought (no numbers, the guard stopped the run).
    """

    index: int
    activation_id: int | None = None
    phone_number: str | None = None
    code: str | None = None
    cost: Decimal | None = None
    country: int | None = None
    provider: str | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether the activation ended with a code and no error."""
        return self.error is None and self.code is not None


class _Ran(Protocol):
    """What a run reads of each activation it made (``client.activation()``'s block)."""

    @property
    def _number(self) -> Number | None: ...
    @property
    def _bought_country(self) -> int | None: ...
    @property
    def _client(self) -> Buyer: ...
    @property
    def code(self) -> str | None: ...
    async def wait_for_code(self, *, timeout: float, poll_interval: float | None = None) -> str: ...


class RunMany:
    """``async for result in client.run_many(...)``; to stop early, use ``async with`` (it closes
    the run: the numbers in flight are finished or cancelled as usual)."""

    def __init__(self, make: Callable[[], Any], n: int, concurrency: int, timeout: float,
                 handler: Callable[[Any, str], Awaitable[object]] | None, policy: BuyingPolicy | None) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidArgumentError(f"n must be a count >= 0, got {n!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgumentError(f"concurrency must be a positive int, got {concurrency!r}")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidArgumentError(f"timeout must be positive, got {timeout!r}")
        self._make = make
        self._n = n
        self._concurrency = concurrency
        self._timeout = timeout
        self._handler = handler
        self._guard = policy.guard if policy is not None else None
        self._stopped: SpendingGuardError | None = None
        self._iterator: AsyncIterator[RunResult] | None = None

    def __aiter__(self) -> AsyncIterator[RunResult]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    async def __aenter__(self) -> AsyncIterator[RunResult]:
        return self.__aiter__()

    async def __aexit__(self, *exc: object) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()  # type: ignore[attr-defined]

    async def _one(self, index: int) -> RunResult:
        if self._stopped is not None:
            return RunResult(index, error=self._stopped)
        act: _Ran | None = None
        try:
            async with self._make() as act:
                code = await act.wait_for_code(timeout=self._timeout)
                if self._handler is not None:
                    await self._handler(act, code)
        except SpendingGuardError as exc:
            if exc.reason in ("budget", "no_code_streak"):
                self._stopped = exc
            return self._result(index, act, exc)
        except Exception as exc:  # the handler's own errors end that activation, not the run
            return self._result(index, act, exc)
        return self._result(index, act, None)

    @staticmethod
    def _result(index: int, act: _Ran | None, error: BaseException | None) -> RunResult:
        number = act._number if act is not None else None
        if number is None:
            return RunResult(index, error=error)
        return RunResult(index, number.activation_id, number.phone_number, act.code if act else None,
                         number.activation_cost, act._bought_country if act else None,
                         act._client.provider.name if act else None, error)

    async def _run(self) -> AsyncIterator[RunResult]:
        send, receive = anyio.create_memory_object_stream[RunResult](self._n or 1)
        limiter = anyio.Semaphore(self._concurrency)

        async def slot(index: int, out: anyio.abc.ObjectSendStream[RunResult]) -> None:
            async with out:
                async with limiter:
                    result = await self._one(index)
                try:
                    await out.send(result)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # the run was closed early: nobody reads any more

        async with anyio.create_task_group() as group:
            async with send:
                for index in range(self._n):
                    group.start_soon(slot, index, send.clone())
            try:
                async with receive:
                    async for result in receive:  # ends when every slot has sent its result
                        yield result
            except GeneratorExit:
                # Closed early: stop the slots (not re-raised inside the task group, which would
                # report it as an error); each open number is still closed, its exit is shielded.
                group.cancel_scope.cancel()
