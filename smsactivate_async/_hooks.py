"""The caller's hooks, called so that they can fail without harm.

A hook (``on_request``, ``on_code``, ``on_event``…) is the caller's code running inside the
library's: a purchase's bookkeeping, a webhook's answer, a number's close. One that raises must not
change the outcome of the call it watches nor leave a number open, so every hook is called through
:func:`call_hook`: a failure is logged with its traceback the first time for each kind of hook, then
only counted (a hook that fails on every request would otherwise flood the log).
"""

from __future__ import annotations

import collections
import contextvars
import inspect
import logging
from collections.abc import Callable
from typing import TypeVar

__all__ = ["PURCHASE_CHECK", "call_hook", "call_hook_async", "hook_failures"]

log = logging.getLogger("smsactivate_async")
T = TypeVar("T")

#: a check the caller's purchase must pass the moment it is about to leave — after the rate limiter,
#: before anything is sent (a spending guard's stop decided while the purchase queued refuses it).
#: Its argument: ``True`` when buying anew after an attempt whose answer was lost (which the server
#: may still commit: a second number may be charged)
PURCHASE_CHECK: contextvars.ContextVar[Callable[[bool], None] | None] = contextvars.ContextVar(
    "smsactivate_async_purchase_check", default=None)

#: failures per kind of hook in this process, for a test or an operator to read
hook_failures: collections.Counter[str] = collections.Counter()


def call_hook(kind: str, hook: Callable[..., T], *args: object) -> T | None:
    """``hook(*args)``, or ``None`` if it raised (logged once per ``kind``, counted always)."""
    try:
        return hook(*args)
    except Exception:
        _failed(kind)
        return None


async def call_hook_async(kind: str, hook: Callable[..., object], *args: object) -> None:
    """As :func:`call_hook`, for a hook that may be a coroutine function (its result is awaited)."""
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        _failed(kind)


def _failed(kind: str) -> None:
    hook_failures[kind] += 1
    if hook_failures[kind] == 1:
        log.exception("%s hook failed (it is ignored: the call goes on; later failures of %s hooks are "
                      "counted, not logged)", kind, kind)
    else:
        log.debug("%s hook failed again (%d times)", kind, hook_failures[kind])
