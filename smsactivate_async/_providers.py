"""Provider presets: where a provider lives, which dialect it speaks and how hard it may be pushed."""

from __future__ import annotations

from typing import Literal

import attrs

from ._exceptions import InvalidArgumentError

__all__ = ["PROVIDERS", "Dialect", "Provider", "resolve_provider"]

Dialect = Literal["sms-activate", "herosms"]


@attrs.frozen
class Provider:
    """A compatible provider: base URL, dialect, and the limits to respect.

    ``rate_limit`` is requests per second (``None``: unpaced) with ``burst`` requests allowed at
    once; ``page_size`` is the getActiveActivations page (``None``: one answer holds every row);
    ``supports_ready`` says whether setStatus 1 is accepted; ``honours_order_id`` whether
    getNumberV2's ``orderId`` is idempotent; ``extra_actions`` are wire actions beyond the classic set.
    """

    name: str
    base_url: str
    dialect: Dialect = "sms-activate"
    rate_limit: float | None = 20.0
    burst: int = 20
    poll_interval: float = 5.0
    early_cancel_window: float = 120.0
    page_size: int | None = None
    supports_ready: bool = True
    honours_order_id: bool = True
    has_active_activations: bool = True
    extra_actions: frozenset[str] = frozenset()


SMS_ACTIVATE = Provider(
    name="sms-activate",
    base_url="https://api.sms-activate.ae/stubs/handler_api.php",
    dialect="sms-activate",
)

# HeroSMS answers 429 after a handful of quick requests and blocks for 10 s (FACTS.md §18):
# stay well under that by default. It refuses setStatus 1, pages getActiveActivations, and has
# no orderId idempotency.
HEROSMS = Provider(
    name="herosms",
    base_url="https://hero-sms.com/stubs/handler_api.php",
    dialect="herosms",
    rate_limit=4.0,
    burst=4,
    page_size=100,
    supports_ready=False,
    honours_order_id=False,
    extra_actions=frozenset({"finishActivation", "cancelActivation", "getAllSms"}),
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
