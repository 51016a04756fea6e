"""The journal's storage: where purchases, their numbers and the owners' leases live.

A :class:`Store` keeps, per namespace (one provider account):

- **intents**: a purchase about to be sent — action, parameters, order id, owner, time — written
  *before* the request; ``pending`` while a request of it is on the wire, ``queued`` between
  attempts that surely did not reach the server; then settled as ``bought``, ``failed``,
  ``ambiguous`` (its answer was lost and it is being reconciled), ``uncertain`` (reconciliation
  could not tell) or ``recovered``; and ``watching``: a purchase given up as never made that the
  server may still commit late — its owner watches the listings for it, and a survivor takes the
  watch over if the owner dies;
- **entries**: each bought activation or rent — its owner, the intent that bought it, its last code
  and whether it is ``open``, ``finished`` or ``cancelled``;
- **leases**: until when each owner (one client) vouches for its open entries.

Every step is one atomic operation of the backend (one SQL transaction, one Lua script), so that
two clients never both take the same number and a crash leaves the journal as it was after the
last completed step. Three backends implement it: :class:`MemoryStore` (one process, the default),
``sqlite:///path`` (one machine) and ``redis://…`` (any number of machines); a fourth is one module
implementing these methods.
"""

from __future__ import annotations

import abc
import collections
import hashlib
import json
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Literal, Protocol, runtime_checkable

import attrs

from ._exceptions import StoreError

__all__ = [
    "Entry",
    "EntryState",
    "FleetRow",
    "FleetStore",
    "Intent",
    "IntentState",
    "MemoryStore",
    "Push",
    "PushStore",
    "Store",
    "namespace_for",
    "redact_url",
]

IntentState = Literal["pending", "queued", "bought", "failed", "ambiguous", "uncertain", "recovered", "watching"]
EntryState = Literal["open", "finished", "cancelled"]
Kind = Literal["activation", "rent"]
#: intents that may still own a number nobody has recorded
UNSETTLED: frozenset[str] = frozenset({"pending", "ambiguous", "uncertain"})
#: intents that are over: a backend may forget them
FINAL: frozenset[str] = frozenset({"bought", "failed", "recovered"})


@attrs.frozen
class Intent:
    """A purchase as the journal knows it. ``key`` groups purchases that compete for the same
    unknown numbers (action, service, country); ``created`` is wall time (seconds since the epoch)."""

    id: str
    owner: str
    action: str
    params: Mapping[str, str]
    key: str
    kind: Kind
    created: float
    order_id: str | None = None
    state: IntentState = "pending"
    seq: int = 0

    def to_json(self) -> str:
        """The intent as JSON text (how the sqlite and Redis stores keep it)."""
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Intent:
        return cls(**json.loads(text))


def _codes(codes: Iterable[object]) -> tuple[str, ...]:
    return tuple(str(code) for code in codes)


@attrs.frozen
class Entry:
    """One bought activation (or rent) in the journal."""

    kind: Kind
    id: int
    owner: str
    intent_id: str | None
    bought_at: float
    service: str | None = None
    country: str | None = None
    phone: str | None = None
    code: str | None = None
    state: EntryState = "open"
    #: an activation: how many times another code was asked for (status 3); a rent: how many of its
    #: messages were handed over (the cursor ``wait_for_rent_sms`` goes on from after a restart)
    retries: int = 0
    #: suspended by its owner (``aclose(suspend=True)``) until then (wall time): nobody else closes it before
    suspended_until: float | None = None
    #: the codes its owner had handed over before suspending it (not handed over again on resume)
    handed: tuple[str, ...] = attrs.field(default=(), converter=_codes)
    #: the caller's context of a suspended number (``start_activation(context=...)``), when a str or an int
    context: str | int | None = None
    #: a rent: when (wall time) the hours paid for at its purchase end (an extension adds to them unseen)
    paid_until: float | None = None
    #: what it cost, as the purchase's answer named it (a decimal string; ``None``: it named none)
    cost: str | None = None

    def to_json(self) -> str:
        """The entry as JSON text (how the sqlite and Redis stores keep it)."""
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Entry:
        # a field a newer version added is left out, not a TypeError: a fleet is redeployed one worker at a time
        known = attrs.fields_dict(cls)
        return cls(**{name: value for name, value in json.loads(text).items() if name in known})


class Store(abc.ABC):
    """What the journal needs from a backend. Every method is one atomic step."""

    #: whether the journal outlives the process (recovery and leases make sense only then)
    persistent: bool = True
    #: whether several machines may share it (a shared rate budget and one poller per account)
    shared: bool = False

    @abc.abstractmethod
    async def open(self, namespace: str) -> None:
        """Connect (raise ``StoreError`` if the backend cannot be reached) and bind to a namespace."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the store's connections."""

    # --- intents ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_intent(self, intent: Intent) -> int:
        """Record a purchase about to be sent; returns its sequence number (increasing per namespace)."""

    @abc.abstractmethod
    async def set_intent_state(self, intent_id: str, state: IntentState) -> None:
        """Move an intent on: sent, answered, failed or uncertain."""

    @abc.abstractmethod
    async def intents(self, states: Iterable[str]) -> list[Intent]:
        """The intents in any of ``states``, oldest first."""

    @abc.abstractmethod
    async def last_seq(self) -> int:
        """The sequence number of the newest intent (a watermark for reconciliation)."""

    # --- entries ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def claim(self, entry: Entry) -> bool:
        """Record ``entry`` unless its id is already journaled; ``False`` if someone holds it."""

    @abc.abstractmethod
    async def update_entry(self, kind: Kind, entry_id: int, *, state: EntryState | None = None,
                           code: str | None = None, another: bool = False) -> None:
        """Record a code, a closing, or (``another``) that one more code was asked for (status 3)."""

    async def suspend(self, kind: Kind, entry_id: int, until: float | None, handed: Sequence[str] = (),
                      context: str | int | None = None) -> None:
        """Mark an open entry suspended by its owner until ``until`` (wall time), with the codes it had
        handed over and the caller's context; ``until=None``: resumed. (Not abstract: a store written
        before suspension existed refuses it clearly.)"""
        raise StoreError(f"{type(self).__name__} cannot keep suspended numbers")

    @abc.abstractmethod
    async def owners(self, kind: Kind, ids: Iterable[int]) -> dict[int, str]:
        """The owner of each of ``ids`` that the journal holds."""

    @abc.abstractmethod
    async def open_entries(self) -> list[Entry]:
        """Numbers still open (neither finished nor cancelled), of every owner."""

    @abc.abstractmethod
    async def take_over(self, kind: Kind, entry_id: int, from_owner: str, to_owner: str) -> bool:
        """Move an open entry to ``to_owner`` if ``from_owner`` still holds it (recovery's claim)."""

    # --- leases -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def renew(self, owner: str, expires: float) -> None:
        """Extend ``owner``'s lease to ``expires``."""

    async def lease_back(self, owner: str, expires: float) -> bool:
        """Give ``owner`` the lease ``expires`` only if it has none (a store that lost its data gets
        back the lease of an owner already dead, so that recovery sees it expired, not absent).
        Stores shared by several processes override it with one atomic step."""
        if owner in await self.leases():
            return False
        await self.renew(owner, expires)
        return True

    async def prune(self, before: float) -> int:
        """Forget closed entries closed before ``before`` (wall time) and intents settled for good
        before it; the number of records removed. A journal is bounded by the work in flight and the
        retention period, not by its history. (Stores that forget at once need do nothing.)"""
        return 0

    async def history(self, since: float) -> list[Entry]:
        """Every entry bought at or after ``since`` (wall time) that the store still keeps, open or
        closed (closed ones until they are pruned), oldest first — for the fleet console. (Not
        abstract: a store without it says so.)"""
        raise StoreError(f"{type(self).__name__} cannot list its history")

    async def note(self, at: float, text: str) -> None:
        """Keep a line of what happened to the fleet (a recovery), the newest 1 000 (no secrets, no
        phone numbers). A store without notes forgets it."""
        return None

    async def notes(self, since: float) -> list[tuple[float, str]]:
        """The notes made at or after ``since`` (wall time), oldest first."""
        return []

    @abc.abstractmethod
    async def release(self, owner: str) -> None:
        """End ``owner``'s lease (a clean shutdown)."""

    @abc.abstractmethod
    async def leases(self) -> dict[str, float]:
        """Owner → wall time its lease ends."""


#: a getActiveActivations row as the fleet's poller publishes it: (status, code, whether the code is exact)
FleetRow = tuple[str | None, str | None, bool]


@runtime_checkable
class FleetStore(Protocol):
    """A store shared by machines that also carries one poller per account (Redis): the client
    holding the poller's lease scans for everybody and publishes the rows; the others read them."""

    async def lead(self, owner: str, ttl: float) -> bool:
        """Take or renew the poller's lease for ``ttl`` seconds; ``True`` if ``owner`` holds it."""

    async def resign(self, owner: str) -> None:
        """Give the lease back if ``owner`` holds it (it has nothing left to poll for)."""

    async def publish_rows(self, rows: dict[int, FleetRow], at: float, due: float) -> None:
        """Publish one scan's rows, made at wall time ``at``; the poller promises its next by wall time
        ``due``."""

    async def read_rows(self, ids: list[int]) -> tuple[float, float, dict[int, FleetRow]]:
        """The last scan's wall time, the time its next was promised by (0: no promise) and its rows for
        ``ids``."""


@attrs.frozen
class Push:
    """A webhook push one client's receiver accepted, passed on to the account's other clients:
    ``kind`` ``"activation"`` or ``"rent"``, its id, and the receiver's ``fallback`` polling interval
    (while pushes arrive, polling slows to it everywhere)."""

    sender: str
    #: ``"rows"``: not a webhook — the fleet's poller published a scan (``fallback``: the seconds it
    #: promises its next within), so the other clients read it now instead of up to an interval later
    kind: Kind | Literal["rows"]
    id: int
    fallback: float

    def encode(self) -> str:
        return f"{self.sender}|{self.kind}|{self.id}|{self.fallback!r}"

    @classmethod
    def decode(cls, text: str) -> Push | None:
        parts = text.split("|")
        if len(parts) != 4 or parts[1] not in _PUSH_KINDS or not parts[2].isdigit():
            return None
        try:
            fallback = float(parts[3])
        except ValueError:
            return None
        return cls(parts[0], _PUSH_KINDS[parts[1]], int(parts[2]), fallback)


_PUSH_KINDS: dict[str, Kind | Literal["rows"]] = {"activation": "activation", "rent": "rent", "rows": "rows"}


@runtime_checkable
class PushStore(Protocol):
    """A store shared by machines that also carries the provider's webhook pushes (Redis pub/sub):
    a receiver in any process publishes each push it accepted, and every client of the account hears
    it, so that the waiters of every worker get their code as fast as the receiver's own."""

    async def publish_push(self, push: Push) -> None:
        """Tell every client of the account that a push was accepted."""

    def pushes(self) -> AsyncIterator[Push]:
        """The pushes published from now on, until the connection fails (``StoreError``)."""


class MemoryStore(Store):
    """The journal in this process's memory: nothing survives it (``store=None``)."""

    persistent = False

    def __init__(self) -> None:
        self._intents: dict[str, Intent] = {}
        self._entries: dict[tuple[str, int], Entry] = {}
        self._leases: dict[str, float] = {}
        self._seq = 0
        self._notes: collections.deque[tuple[float, str]] = collections.deque(maxlen=1000)

    def __repr__(self) -> str:
        return "MemoryStore()"

    async def open(self, namespace: str) -> None:
        """Open the store for one account's namespace."""
        return None

    async def aclose(self) -> None:
        """Release the store's connections."""
        return None

    async def add_intent(self, intent: Intent) -> int:
        """Record a purchase's intent before it is sent."""
        self._seq += 1
        self._intents[intent.id] = attrs.evolve(intent, seq=self._seq)
        return self._seq

    async def set_intent_state(self, intent_id: str, state: IntentState) -> None:
        """Move an intent on: sent, answered, failed or uncertain."""
        intent = self._intents.get(intent_id)
        if intent is None:
            return
        if state in FINAL:
            del self._intents[intent_id]  # settled: nothing left to reconcile (memory stays flat)
        else:
            self._intents[intent_id] = attrs.evolve(intent, state=state)

    async def intents(self, states: Iterable[str]) -> list[Intent]:
        """Intents newer than a sequence number."""
        wanted = set(states)
        return sorted((i for i in self._intents.values() if i.state in wanted), key=lambda i: i.seq)

    async def last_seq(self) -> int:
        """The sequence number of the newest intent (a watermark for reconciliation)."""
        return self._seq

    async def claim(self, entry: Entry) -> bool:
        """Atomically make an open number ``owner``'s."""
        key = (entry.kind, entry.id)
        if key in self._entries:
            return self._entries[key].owner == entry.owner
        self._entries[key] = entry
        return True

    async def update_entry(self, kind: Kind, entry_id: int, *, state: EntryState | None = None,
                           code: str | None = None, another: bool = False) -> None:
        """Record a number's code, finish or cancel."""
        entry = self._entries.get((kind, entry_id))
        if entry is None:
            return
        if state in ("finished", "cancelled"):
            del self._entries[(kind, entry_id)]  # closed: the in-memory journal forgets it
            return
        self._entries[(kind, entry_id)] = attrs.evolve(
            entry, code=code if code is not None else entry.code, retries=entry.retries + int(another))

    async def suspend(self, kind: Kind, entry_id: int, until: float | None, handed: Sequence[str] = (),
                      context: str | int | None = None) -> None:
        """Mark an open entry suspended (or resumed: ``until=None``)."""
        entry = self._entries.get((kind, entry_id))
        if entry is not None:
            self._entries[(kind, entry_id)] = attrs.evolve(entry, suspended_until=until, handed=tuple(handed),
                                                           context=context)

    async def owners(self, kind: Kind, ids: Iterable[int]) -> dict[int, str]:
        """The owners with a lease, and when each ends."""
        return {i: self._entries[(kind, i)].owner for i in ids if (kind, i) in self._entries}

    async def open_entries(self) -> list[Entry]:
        """Numbers still open (neither finished nor cancelled), of every owner."""
        return [e for e in self._entries.values() if e.state == "open"]

    async def history(self, since: float) -> list[Entry]:
        """The open entries bought since ``since`` (memory forgets closed ones at once)."""
        return sorted((e for e in self._entries.values() if e.bought_at >= since), key=lambda e: e.bought_at)

    async def note(self, at: float, text: str) -> None:
        """Keep a line of what happened (the newest 1 000)."""
        self._notes.append((at, text))

    async def notes(self, since: float) -> list[tuple[float, str]]:
        """The notes made since ``since``."""
        return [n for n in self._notes if n[0] >= since]

    async def take_over(self, kind: Kind, entry_id: int, from_owner: str, to_owner: str) -> bool:
        """Give a dead owner's open numbers to ``owner`` (recovery)."""
        entry = self._entries.get((kind, entry_id))
        if entry is None or entry.owner != from_owner or entry.state != "open":
            return False
        self._entries[(kind, entry_id)] = attrs.evolve(entry, owner=to_owner)
        return True

    async def renew(self, owner: str, expires: float) -> None:
        """Extend ``owner``'s lease by ``ttl`` seconds."""
        self._leases[owner] = expires

    async def release(self, owner: str) -> None:
        """End ``owner``'s lease (a clean shutdown)."""
        self._leases.pop(owner, None)

    async def leases(self) -> dict[str, float]:
        """Every owner's lease end."""
        return dict(self._leases)


def namespace_for(provider: str, api_key: str) -> str:
    """One account's namespace: the provider and a hash of the key (never the key itself)."""
    digest = hashlib.sha256(f"smsactivate-async:{api_key}".encode()).hexdigest()[:20]
    return f"{provider}:{digest}"


def redact_url(url: str) -> str:
    """A store URL fit for a message: the password replaced by ``***``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable store URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urllib.parse.urlunsplit(parts._replace(netloc=user + netloc))
