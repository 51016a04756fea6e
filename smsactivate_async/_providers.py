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
    ``cancel_status`` is the setStatus that cancels (8; -1 where only the old docs' cancel works);
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
    #: the setStatus that cancels: 8, or -1 for a provider that takes only the legacy cancel
    cancel_status: Literal[8, -1] = 8


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
    # Start at the most one client may send under the published limit (50 in any second, less the
    # burst): 50 concurrent purchases leave within about a second, never blocked. A block that comes
    # anyway means the account is shared, and the client learns its share (AdaptiveRateLimiter.block).
    safe_rate=44.0,
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

# Tiger SMS (FACTS §1, §5, §17, §18; live captures [RUSTX-TIGER]): the HeroSMS backend family — real
# HTTP statuses and the {title,details,info} envelope, so it decodes as the herosms dialect (its plain
# 401 BAD_KEY and ACCESS_CANCEL are understood there too). Its edge answers 429 + Retry-After per
# user+service+country on purchases and showed no 429 at <= 1 request/s: adaptive from 1/s.
TIGER = Provider(
    name="tiger",
    base_url="https://api.tiger-sms.com/stubs/handler_api.php",  # [OBS FACTS §1] several public clients call it
    dialect="herosms",
    rate_limit="adaptive",
    burst=1,
    safe_rate=1.0,  # [RUSTX-TIGER] no 429 at <= 1 req/s
    rate_ceiling=10.0,  # [INFER] no published limit
    page_size=100,  # [RUSTX-TIGER] start + limit, at most 100
    codes_from_rows=False,  # [INFER] no capture of its rows: confirm codes with getStatus
    supports_ready=False,  # [INFER] as HeroSMS, its backend family
    honours_order_id=False,  # [INFER] as HeroSMS: reconciled instead
)

# Grizzly SMS (FACTS §2, §3, §4, §7, §17, [GRIZ-DOC], [GRIZ-TEST]): the classic dialect; free-text
# errors (typed as APIError with the text); a cancel is allowed 5 minutes after purchase.
GRIZZLY = Provider(
    name="grizzly",
    base_url="https://api.grizzlysms.com/stubs/handler_api.php",  # [OBS FACTS §1] (older code: grizzlysms.com)
    dialect="sms-activate",
    rate_limit=10.0,  # [INFER] no published limit
    burst=10,
    early_cancel_window=300.0,  # [GRIZ-TEST] activationCancel = purchase + 5 min
    honours_order_id=False,  # [INFER] no source says it takes orderId: reconciled instead
)

# SMSHub (FACTS §3, §17, §18, [SMSHUB]): the classic dialect with `max_price` for the purchase's
# maximum price and its own error words (API_KEY_NOT_VALID, NO_ACTION, WRONG_SERVICE, SERVER_ERROR…,
# all typed). Its clients poll every second; the preset keeps the classic 5 s [INFER].
SMSHUB = Provider(
    name="smshub",
    base_url="https://smshub.org/stubs/handler_api.php",  # [OBS FACTS §1] several public clients call it
    dialect="sms-activate",
    rate_limit=10.0,  # [INFER]
    burst=10,
    wire_renames=(("getNumber", "maxPrice", "max_price"), ("getNumberV2", "maxPrice", "max_price")),
    honours_order_id=False,  # [INFER]
)

# SMSBower: the sources hold nothing beyond "classic", except a getPrices row keyed "" with no
# country id [RUSTX] (skipped, with a log line, by every dialect's decoder).
SMSBOWER = Provider(
    name="smsbower",
    # [OBS FACTS §1] the domain moves: .online, .page and .com all appear in public clients; pass
    # base_url= for the one your account uses
    base_url="https://smsbower.online/stubs/handler_api.php",
    dialect="sms-activate",
    rate_limit=10.0,  # [INFER]
    burst=10,
    honours_order_id=False,  # [INFER]
)

PROVIDERS: dict[str, Provider] = {p.name: p for p in (SMS_ACTIVATE, HEROSMS, TIGER, GRIZZLY, SMSHUB, SMSBOWER)}


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
