"""How often to poll: as often as a share of the spare request budget allows (issue 45).

A poll tick costs requests — ⌈waiters / page⌉ scans for activations, one ``getRentStatus`` per waited
rent — and the account's budget (the rate limiter's rate) is shared with the work that buys, confirms
and closes numbers. The rule, for each poller (the scheduler's, the rent poller):

    interval = clamp(cost of a tick / (share × spare rate), min_poll_interval, the configured interval)

- *spare rate*: the limiter's rate (this client's part of it when a fleet shares the budget) less
  what the client's other requests used lately (purchases, confirmations, closes: an average over
  the last seconds, polling itself left out). The fleet's one poller scans for every client of the
  account: its cost is the account's pages and its spare rate the account's (its own times the
  clients sharing the budget, each taken to do as much other work as it does);
- *share*: ``poll_share`` (0.25 by default): each poller uses at most that part of what is spare;
- the configured interval (``poll_interval``, the preset's by default, or a wait's own) is never
  exceeded: adapting only ever polls sooner;
- no adapting: without a rate limit (``rate_limit=None``: nothing says what is spare), with
  ``poll_share=0``, for ``poll_quiet`` seconds after a throttle, or when nothing is spare.

At 100 waiters on HeroSMS (50 requests/s, pages of 100) a tick costs one request: the client polls
every ``min_poll_interval`` (0.5 s) — a code is seen a quarter of a second after it comes on average
instead of half the preset's 5 s — for 2 requests a second of 50.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs

from ._exceptions import InvalidArgumentError

if TYPE_CHECKING:
    from ._clock import Clock
    from ._session import Session

__all__ = ["PollBudget", "PollPace", "POLLING_ACTIONS"]

#: the requests of polling itself, left out of "what the other work used"
POLLING_ACTIONS = ("getActiveActivations", "getRentStatus")
#: how long (s) the average of the other work's rate looks back
_WINDOW = 5.0


def _share(value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise InvalidArgumentError(f"poll_share must be a number from 0 to 1, got {value!r}")
    return float(value)


def _positive(value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < math.inf:
        raise InvalidArgumentError(f"min_poll_interval must be a positive number of seconds, got {value!r}")
    return float(value)


@attrs.define
class PollPace:
    """The knobs of adaptive polling (``SMSActivate(poll_share=, min_poll_interval=)``)."""

    #: the part of the spare request budget one poller may use (0: poll at the configured interval)
    share: float = attrs.field(default=0.25, converter=_share)
    #: never sooner than this (seconds)
    min_interval: float = attrs.field(default=0.5, converter=_positive)
    #: after a throttle, this long (seconds) at the configured interval
    quiet: float = 60.0


class PollBudget:
    """The spare request budget of one client, read by its pollers (see the module)."""

    def __init__(self, session: Session, clock: Clock, pace: PollPace) -> None:
        self._session = session
        self._clock = clock
        self.pace = pace
        self._seen_at = clock.now()
        self._seen_other = self._other_requests()
        #: requests per second of the work that is not polling (an average over the last seconds)
        self.other_rate = 0.0

    def _other_requests(self) -> int:
        stats = self._session.stats
        return stats.requests - sum(stats.by_action[action] for action in POLLING_ACTIONS)

    def _look(self, now: float) -> None:
        elapsed = now - self._seen_at
        if elapsed < 0.1:
            return
        other = self._other_requests()
        rate = (other - self._seen_other) / elapsed
        weight = min(1.0, elapsed / _WINDOW)
        self.other_rate += weight * (rate - self.other_rate)
        self._seen_at, self._seen_other = now, other

    def spare(self) -> float | None:
        """Requests per second this client may spend beyond its other work now; ``None``: unknown."""
        session = self._session
        rate = session.limiter.rate
        if rate is None:
            return None
        journal = session.journal
        if journal.store.shared:
            rate /= max(1, journal.sharers)  # the account's budget is every client's
        now = self._clock.now()
        self._look(now)
        return rate - self.other_rate

    def interval(self, configured: float, cost: int, *, for_account: bool = False) -> float:
        """The interval between ticks costing ``cost`` requests, never above ``configured``;
        ``for_account``: the ticks of the fleet's one poller, paid from every sharer's spare budget."""
        pace = self.pace
        if pace.share <= 0 or cost <= 0 or configured <= pace.min_interval:
            return configured
        if self._clock.now() - self._session.last_throttle < pace.quiet:
            return configured
        spare = self.spare()
        if spare is None or spare <= 0:
            return configured
        journal = self._session.journal
        if for_account and journal.store.shared:
            spare *= max(1, journal.sharers)
        return min(configured, max(pace.min_interval, cost / (pace.share * spare)))
