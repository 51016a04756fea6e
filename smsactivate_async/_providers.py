"""Provider presets: where a provider lives, which dialect it speaks and how hard it may be pushed."""

from __future__ import annotations

from typing import Literal, Union

import attrs

from ._exceptions import InvalidArgumentError

__all__ = ["PROVIDERS", "Dialect", "Provider", "resolve_provider"]

Dialect = Literal["sms-activate", "herosms"]
#: requests per second, ``None`` (unpaced) or ``"adaptive"`` (follows the provider's answers)
RateSetting = Union[float, None, Literal["adaptive"]]  # noqa: UP007 (a runtime alias)


@attrs.frozen
class Provider:
    """A compatible provider: base URL, dialect, and the limits to respect.

    ``rate_limit`` is requests per second (``None``: unpaced, ``"adaptive"``: starts at ``safe_rate``
    and follows the provider's answers up to ``rate_ceiling``, the provider's published limit) with
    ``burst`` requests allowed at once; ``rate_block_seconds`` is how long the provider blocks an
    account that went over its limit, held when a 429 says no ``Retry-After``; ``page_size`` is the
    getActiveActivations page (``None``: one answer holds every row); ``codes_from_rows`` whether a
    code in a getActiveActivations row (one string, not after a re-request) is delivered without a
    confirming getStatus;
    ``country_required`` names the wire actions that need a ``country`` here (the client refuses
    to send them without one); ``supports_ready`` says whether setStatus 1 is accepted; ``honours_order_id`` whether
    getNumberV2's ``orderId`` is idempotent; ``extra_actions`` are wire actions beyond the classic set;
    ``webhook_sources`` are the addresses the provider documents its webhooks coming from (the
    receiver's default source check; empty: the provider names none).
    """

    name: str
    base_url: str
    dialect: Dialect = "sms-activate"
    rate_limit: RateSetting = 20.0
    burst: int = 20
    rate_ceiling: float | None = None
    safe_rate: float = 4.0
    rate_block_seconds: float | None = None
    codes_from_rows: bool = True
    #: (action, classic wire name, this provider's wire name): parameters the provider names otherwise
    wire_renames: tuple[tuple[str, str, str], ...] = ()
    country_required: frozenset[str] = frozenset()
    poll_interval: float = 5.0
    early_cancel_window: float = 120.0
    page_size: int | None = None
    supports_ready: bool = True
    honours_order_id: bool = True
    has_active_activations: bool = True
    extra_actions: frozenset[str] = frozenset()
    webhook_sources: frozenset[str] = frozenset()


SMS_ACTIVATE = Provider(
    name="sms-activate",
    base_url="https://api.sms-activate.ae/stubs/handler_api.php",
    dialect="sms-activate",
    webhook_sources=frozenset({"188.42.218.183", "142.91.156.119"}),  # [SA-DOC25] FACTS §16
)

# HeroSMS (FACTS.md §18): its rules page allows 50 requests per second per account and blocks an
# account that goes over for 10 s (re-blocked while it goes on); one report saw a 429 after ~6 quick
# requests. So: adaptive pacing from a safe 4/s up to the published 50, and a 429 without
# Retry-After holds the client for the 10 s block. It refuses setStatus 1, pages
# getActiveActivations, and has no orderId idempotency.
HEROSMS = Provider(
    name="herosms",
    base_url="https://hero-sms.com/stubs/handler_api.php",
    dialect="herosms",
    rate_limit="adaptive",
    burst=4,
    rate_ceiling=50.0,
    safe_rate=4.0,
    rate_block_seconds=10.0,
    # supports_ready=False: its current spec lists setStatus 3, 6 and 8 only (its first OpenAPI listed 1;
    # no capture either way, FACTS §7); the simulator's `herosms_accepts_ready` is the same assumption.
    # Its rows are known from the spec's example only (a string smsCode with status "4", REAL_RESPONSES
    # §C): a code seen in a row is confirmed with getStatus until a live capture shows it is exact.
    codes_from_rows=False,
    wire_renames=(("getHistory", "limit", "size"),),  # [HERO-LIVE] FACTS §9: HeroSMS pages history by `size`
    # No default country: HeroSMS has no Russia (0), the classic default; getNumbersStatus answers 422
    # without one [RUSTX-HERO] and its modern purchase requires one [HERO-TR].
    country_required=frozenset({"getNumber", "getNumberV2", "getNumbersStatus"}),
    page_size=100,
    supports_ready=False,
    honours_order_id=False,
    extra_actions=frozenset({"finishActivation", "cancelActivation", "getAllSms"}),
    webhook_sources=frozenset({"84.32.223.53", "185.138.88.87"}),  # [HERO-CN, HERO-TR] FACTS §16
)

PROVIDERS: dict[str, Provider] = {p.name: p for p in (SMS_ACTIVATE, HEROSMS)}


def resolve_provider(provider: str | Provider, base_url: str | None) -> Provider:
    if isinstance(provider, Provider):
        resolved = provider
    else:
        try:
            resolved = PROVIDERS[provider]
        except KeyError:
            names = ", ".join(sorted(PROVIDERS))
            raise InvalidArgumentError(f"unknown provider {provider!r}; known: {names}, or pass a Provider") from None
    if base_url is not None:
        if not base_url.startswith(("http://", "https://")):
            raise InvalidArgumentError(f"base_url must be an http(s) URL, got {base_url!r}")
        resolved = attrs.evolve(resolved, base_url=base_url)
    return resolved
