"""The handler table: one small function per wire action, registered by area module."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._app import Simulator
    from ._common import _Reply
    from ._core import Account

__all__ = ["HANDLERS", "Handler", "handles"]

Handler = Callable[["Simulator", "Account", Mapping[str, str]], "_Reply"]

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
