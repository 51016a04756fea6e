"""What the client counts, at one choke point each: ``client.stats`` and OpenTelemetry.

Every count is made in one place and feeds both the in-process :class:`SessionStats` and, when
``opentelemetry-api`` is installed (the ``otel`` extra), the OpenTelemetry instruments named in the
contract (../shared/API.md, "Observability"):

- a request — ``Session._attempt``, each attempt that left (one that could not connect did not
  reach the server and is not a request): ``smsactivate.requests`` {action, outcome},
  ``smsactivate.request.duration`` {action}; a span per call (``smsactivate <action>``);
- the rate limiter — ``smsactivate.rate_limit.wait`` (time a request waited for its slot) and
  ``smsactivate.rate_limit.blocks`` (throttle answers: a block began or was extended);
- a purchase settled — :meth:`NumberNews.bought`: ``smsactivate.purchases`` {service, country,
  provider} and ``smsactivate.spend`` {service, country} from the price the answer names
  (``getNumberV2`` and listings do; ``getNumber``'s text answer, a rent and a multi-service purchase
  name none: those are counted in ``smsactivate.purchases.unpriced``);
- a code became news — :meth:`NumberNews.code`: ``smsactivate.codes`` {service}, each code once per
  number, and ``smsactivate.code.latency`` (purchase → first code);
- a number closed — :meth:`NumberNews.closed`: ``smsactivate.closed`` {how: finished | cancelled |
  expired} and ``smsactivate.refunds`` {service, country} (a close without a code, of a number whose
  price is known);
- now: ``smsactivate.open_numbers``, ``smsactivate.waiters``, ``smsactivate.open_numbers.oldest_age``
  (observed when read);
- the fleet: ``smsactivate.recovery.actions`` {what}, ``smsactivate.strays`` {what},
  ``smsactivate.suspended``.

No attribute carries a key, a phone number or an activation id. Without an SDK configured the API's
instruments do nothing (a fraction of a microsecond a call) and no span is started.
"""

from __future__ import annotations

import collections
import contextlib
import weakref
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ._news import Bought, NumberNews

if TYPE_CHECKING:
    from ._clock import Clock
    from ._journal import RecoveryReport

__all__ = ["SessionStats", "Span", "Telemetry", "decimal_or_none", "otel_available"]

_NAME = "smsactivate_async"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("smsactivate-async")
    except Exception:  # running from a source tree
        return "0"



class Span(Protocol):
    """What a call does with its OpenTelemetry span (``opentelemetry.trace.Span`` is one)."""

    def set_attribute(self, key: str, value: str | int) -> None: ...


@attrs.define
class SessionStats:
    """The client's counters, in this process (``client.stats``); the same choke points feed the
    OpenTelemetry metrics."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    reconciliations: int = 0
    adopted: int = 0
    #: requests per second in force (the adaptive limiter's current rate; ``None``: unpaced)
    rate: float | None = None
    #: buying policies: purchases retried at a higher price (WRONG_MAX_PRICE minimum, Free Price level)
    price_steps: int = 0
    #: buying policies: purchases moved on to a fallback choice
    fallbacks: int = 0
    #: numbers the server committed after their purchase was given up (``RetryPolicy.stray_watch``)
    strays_found: int = 0
    #: of those, handed to a later purchase of the same kind instead of buying
    strays_adopted: int = 0
    #: of those, closed (cancelled; finished when a code had come)
    strays_closed: int = 0
    #: numbers bought (activations and rents, adopted ones included)
    purchases: int = 0
    #: money spent on purchases whose answer named the price (``Decimal``, the account's currency)
    spent: Decimal = attrs.field(factory=Decimal)
    #: money the provider returned: numbers of known price closed without a code
    refunded: Decimal = attrs.field(factory=Decimal)
    #: codes received (each code once per number)
    codes: int = 0
    #: numbers closed, by how: ``finished``, ``cancelled``, ``expired`` (closed at the server unasked)
    closed: collections.Counter[str] = attrs.field(factory=collections.Counter)
    #: requests that could not connect (they never reached the server: not in ``requests``)
    unsent: int = 0
    by_action: collections.Counter[str] = attrs.field(factory=collections.Counter)

    @property
    def throttles(self) -> int:
        """Throttles seen: 429s, rate blocks and the edge's 1020 pages (the same count as ``rate_limited``)."""
        return self.rate_limited


@attrs.define
class _Open:
    service: str
    country: str
    cost: Decimal | None
    bought_at: float
    codes: set[str] = attrs.field(factory=set)


def decimal_or_none(text: str | None) -> Decimal | None:
    """A journal entry's cost (a decimal string) as money; ``None`` when absent or unreadable."""
    if text is None:
        return None
    try:
        return Decimal(text)
    except ArithmeticError:
        return None


def otel_available() -> bool:
    """Whether ``opentelemetry-api`` can be imported."""
    try:
        import opentelemetry.metrics
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


class _Instruments:
    """The OpenTelemetry instruments of one meter provider, shared by every client that reports to it
    (only built when the API is installed). Made once per provider: a meter and its instruments made
    per client would stay in the global proxy provider for good (it keeps them to hand them to an SDK
    configured later), and with them every client."""

    def __init__(self, meter_provider: Any) -> None:
        from opentelemetry import metrics

        #: the clients reporting here now (their "now" gauges are summed)
        self.clients: weakref.WeakSet[Telemetry] = weakref.WeakSet()
        meter = meter_provider.get_meter(_NAME, _version())
        self.requests = meter.create_counter("smsactivate.requests", "{request}", "requests the server received")
        self.unsent = meter.create_counter("smsactivate.requests.unsent", "{request}",
                                           "requests that could not connect (never reached the server)")
        self.duration = meter.create_histogram("smsactivate.request.duration", "s", "time of one request")
        self.purchases = meter.create_counter("smsactivate.purchases", "{number}", "numbers bought")
        self.unpriced = meter.create_counter("smsactivate.purchases.unpriced", "{number}",
                                             "numbers bought whose answer named no price (not in smsactivate.spend)")
        self.spend = meter.create_counter("smsactivate.spend", "{currency}", "money spent on purchases")
        self.refunds = meter.create_counter("smsactivate.refunds", "{currency}", "money returned by the provider")
        self.codes = meter.create_counter("smsactivate.codes", "{code}", "codes received")
        self.closed = meter.create_counter("smsactivate.closed", "{number}", "numbers closed")
        self.blocks = meter.create_counter("smsactivate.rate_limit.blocks", "{block}",
                                           "throttle answers (a rate block began or was extended)")
        self.wait = meter.create_histogram("smsactivate.rate_limit.wait", "s", "time a request waited for the limiter")
        self.latency = meter.create_histogram("smsactivate.code.latency", "s", "time from purchase to the first code")
        self.recovery = meter.create_counter("smsactivate.recovery.actions", "{action}",
                                             "what recovery did with dead clients' numbers")
        self.strays = meter.create_counter("smsactivate.strays", "{number}",
                                           "numbers committed after their purchase was given up")
        self.suspended = meter.create_counter("smsactivate.suspended", "{number}",
                                              "numbers left open for a restart (aclose(suspend=True))")
        clients = self.clients

        def open_numbers(options: Any) -> Iterator[Any]:
            yield metrics.Observation(sum(len(t._open) for t in list(clients)))

        def waiters(options: Any) -> Iterator[Any]:
            yield metrics.Observation(sum(t.waiters() for t in list(clients)))

        def oldest(options: Any) -> Iterator[Any]:
            yield metrics.Observation(max((t.oldest_open() for t in list(clients)), default=0.0))

        meter.create_observable_up_down_counter("smsactivate.open_numbers", [open_numbers], "{number}",
                                                "numbers the clients of this process hold open")
        meter.create_observable_up_down_counter("smsactivate.waiters", [waiters], "{waiter}",
                                                "wait_for_code calls waiting now")
        meter.create_observable_gauge("smsactivate.open_numbers.oldest_age", [oldest], "s",
                                      "how long the oldest number held here has been open (0: none)")


#: instruments per meter provider (made once each; a provider that cannot be weakly referenced is
#: kept by identity — there are few)
_BY_PROVIDER: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_BY_ID: dict[int, tuple[Any, _Instruments]] = {}


def _instruments_for(meter_provider: Any) -> _Instruments:
    from opentelemetry import metrics

    provider = meter_provider or metrics.get_meter_provider()
    try:
        found = _BY_PROVIDER.get(provider)
        if found is None:
            found = _BY_PROVIDER[provider] = _Instruments(provider)
        return found
    except TypeError:
        held = _BY_ID.get(id(provider))
        if held is None or held[0] is not provider:
            held = _BY_ID[id(provider)] = (provider, _Instruments(provider))
        return held[1]


class Telemetry:
    """The counting choke points of one client (see the module)."""

    def __init__(self, *, clock: Clock, provider: str, meter_provider: Any = None, tracer_provider: Any = None,
                 use_otel: bool | None = None, waiters: Callable[[], int] = lambda: 0) -> None:
        self.stats = SessionStats()
        self._clock = clock
        self._provider = provider
        self._open: dict[tuple[str, int], _Open] = {}
        #: how many activations are waited on now (the client asks its scheduler)
        self.waiters = waiters
        enabled = otel_available() if use_otel is None else use_otel
        self._otel: _Instruments | None = _instruments_for(meter_provider) if enabled else None
        if self._otel is not None:
            self._otel.clients.add(self)
        self._tracer_provider = tracer_provider
        self._tracer: Any = None
        self._tracing = enabled

    def oldest_open(self) -> float:
        """Seconds the oldest number held here has been open (0 when none): past an activation's timeout
        and early-cancel window, something failed to close it."""
        if not self._open:
            return 0.0
        return max(0.0, self._clock.now() - min(held.bought_at for held in self._open.values()))

    def listen(self, news: NumberNews) -> None:
        news.on_bought(self.bought)
        news.on_code(self.code)
        news.on_closed(self.closed)
        news.on_rent_closed(lambda rent_id, how: self.closed(rent_id, how, "rent"))

    # --- requests ----------------------------------------------------------------------------

    def request(self, action: str, outcome: str, elapsed: float, sent: bool) -> None:
        if not sent:
            self.stats.unsent += 1
            if self._otel is not None:
                self._otel.unsent.add(1, {"action": action})
            return
        self.stats.requests += 1
        self.stats.by_action[action] += 1
        if self._otel is not None:
            self._otel.requests.add(1, {"action": action, "outcome": outcome})
            self._otel.duration.record(elapsed, {"action": action})

    def rate_wait(self, seconds: float) -> None:
        if self._otel is not None:
            self._otel.wait.record(seconds)

    def rate_block(self) -> None:
        self.stats.rate_limited += 1
        if self._otel is not None:
            self._otel.blocks.add(1)

    @contextlib.contextmanager
    def span(self, action: str) -> Iterator[Span | None]:
        """A span for one call (all its attempts), or ``None`` when no tracer provider is configured."""
        tracer = self._live_tracer()
        if tracer is None:
            yield None
            return
        from opentelemetry.trace import SpanKind

        with tracer.start_as_current_span(f"smsactivate {action}", kind=SpanKind.CLIENT,
                                          attributes={"smsactivate.action": action}) as span:
            yield span

    def _live_tracer(self) -> Any:
        if not self._tracing:
            return None
        if self._tracer is not None:
            return self._tracer
        from opentelemetry import trace

        provider = self._tracer_provider or trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None  # nothing configured (yet): asked again at the next call
        self._tracer = provider.get_tracer(_NAME, _version())
        return self._tracer

    # --- numbers -----------------------------------------------------------------------------

    def bought(self, purchase: Bought) -> None:
        self.stats.purchases += 1
        self._open[(purchase.kind, purchase.id)] = _Open(purchase.service, purchase.country, purchase.cost, self._clock.now())
        if purchase.cost is not None:
            self.stats.spent += purchase.cost
        if self._otel is not None:
            where = {"service": purchase.service, "country": purchase.country}
            self._otel.purchases.add(1, {**where, "provider": self._provider})
            if purchase.cost is not None:
                self._otel.spend.add(float(purchase.cost), where)
            else:
                self._otel.unpriced.add(1, {**where, "provider": self._provider})

    def holding(self, number_id: int, *, service: str | None, country: str | None, cost: Decimal | None,
                codes: tuple[str, ...] = (), kind: str = "activation") -> None:
        """A number bought by another process is held here now (resumed, taken over by recovery):
        its close and refund are counted here, not its purchase."""
        if (kind, number_id) not in self._open:
            self._open[(kind, number_id)] = _Open(service or "", country or "", cost, self._clock.now(), set(codes))

    def code(self, activation_id: int, code: str) -> None:
        held = self._open.get(("activation", activation_id))
        if held is None or code in held.codes:
            return
        first = not held.codes
        held.codes.add(code)
        self.stats.codes += 1
        if self._otel is not None:
            self._otel.codes.add(1, {"service": held.service})
            if first:
                self._otel.latency.record(self._clock.now() - held.bought_at)

    def closed(self, number_id: int, how: str, kind: str = "activation") -> None:
        self.stats.closed[how] += 1
        held = self._open.pop((kind, number_id), None)
        refund = held is not None and how != "finished" and not held.codes and held.cost is not None
        if refund:
            assert held is not None and held.cost is not None
            self.stats.refunded += held.cost
        if self._otel is not None:
            self._otel.closed.add(1, {"how": how})
            if refund:
                assert held is not None and held.cost is not None
                self._otel.refunds.add(float(held.cost), {"service": held.service, "country": held.country})

    def released(self, number_id: int) -> None:
        """A number left this process open (suspended for a restart)."""
        if self._open.pop(("activation", number_id), None) is not None and self._otel is not None:
            self._otel.suspended.add(1)

    # --- the fleet ---------------------------------------------------------------------------

    def recovered(self, report: RecoveryReport) -> None:
        if self._otel is None:
            return
        for what in ("finished", "cancelled", "pending", "rents_cancelled", "rents_finished", "rents_kept", "watched"):
            count = len(getattr(report, what))
            if count:
                self._otel.recovery.add(count, {"what": what})

    def stray(self, what: str) -> None:
        """A stray ``found``, ``adopted`` or ``closed``."""
        if what == "found":
            self.stats.strays_found += 1
        elif what == "adopted":
            self.stats.strays_adopted += 1
        else:
            self.stats.strays_closed += 1
        if self._otel is not None:
            self._otel.strays.add(1, {"what": what})
