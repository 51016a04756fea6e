from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from smsactivate_async import SMSActivate

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    """asyncio by default; test_waiting.py runs on trio as well."""
    return "asyncio"


def mock_client(handler: Handler, provider: str = "sms-activate", **kwargs: object) -> SMSActivate:
    """A client over ``httpx.MockTransport`` with pacing off and fast retries."""
    from smsactivate_async import RetryPolicy

    options: dict[str, object] = {"rate_limit": None, "retry": RetryPolicy(attempts=3, base_delay=0, max_delay=0)}
    options.update(kwargs)
    return SMSActivate("SECRET-KEY-123", provider=provider, transport=httpx.MockTransport(handler), **options)  # type: ignore[arg-type]


def replying(status: int, body: str | bytes, content_type: str = "text/html; charset=UTF-8", **headers: str) -> Handler:
    data = body.encode() if isinstance(body, str) else body

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=data, headers={"content-type": content_type, **headers})

    return handler
