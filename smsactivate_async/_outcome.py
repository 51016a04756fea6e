"""What became of a number: the one account the library gives wherever it reports an end.

A wait's error (:class:`WaitTimeoutError`, :class:`ClientClosedError`), a handle's state, and what
:meth:`SMSActivate.aclose` returns all speak of a number in these words, so that a bot can tell its
user the truth about their money.
"""

from __future__ import annotations

import datetime as _dt
from typing import Literal

import attrs

__all__ = ["NumberOutcome", "Outcome"]

#: ``"cancelled"``: closed with 8 and confirmed, the money comes back; ``"finished"``: closed with 6
#: (a code came; it is paid for); ``"cancel_deferred"``: the server refused the cancel as too early
#: (or could not be reached), the client — or, with a persistent journal, whichever client of the
#: account is alive — cancels it from ``cancel_at``; ``"left_open"``: open at the server, nobody will
#: close it for you unless ``reason`` says otherwise; ``"waiting"``: open, and the client still waits
#: for its code
Outcome = Literal["cancelled", "finished", "cancel_deferred", "left_open", "waiting"]


@attrs.frozen
class NumberOutcome:
    """One number's account: its id, what became of it, when a deferred cancel is due, and why it
    was left open (``"closing"``: the client closed before it could close it; ``"suspended"``:
    kept open for the next process of its owner; or the error that stopped the close)."""

    activation_id: int
    outcome: Outcome
    cancel_at: _dt.datetime | None = None
    reason: str | None = None
    #: every code received for it, oldest first
    codes: tuple[str, ...] = ()
    #: the caller's value given at purchase (``start_activation(context=...)``)
    context: object = None

    @property
    def refunded(self) -> bool:
        """Whether the money for it comes back (it was cancelled and the server confirmed it)."""
        return self.outcome == "cancelled"

    def describe(self) -> str:
        """A sentence for the number's user, true to the outcome (the recipes' wording)."""
        if self.outcome == "cancelled":
            return "The number was cancelled; its cost is refunded."
        if self.outcome == "finished":
            return "The number was closed after its code came (it is paid for)."
        if self.outcome == "cancel_deferred":
            when = f" at {self.cancel_at:%H:%M:%S} UTC" if self.cancel_at is not None else ""
            return f"No code came. The provider refuses to cancel this early; it will be cancelled{when} and refunded then."
        if self.outcome == "waiting":
            return "No code yet; still waiting for it."
        if self.reason == "suspended":
            return "The service is restarting; your number stays open and its code will reach you after the restart."
        return "The number is still open at the provider and is not refunded yet."
