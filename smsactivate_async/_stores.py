"""Which store ``store=`` names: memory, a sqlite file or a Redis server.

Above the backends (``_store_sqlite``, ``_store_redis``) and the protocol they implement
(``_store``), so that none of them needs another to be imported; Redis is imported only when a
``redis://`` URL asks for it (an optional extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._exceptions import InvalidArgumentError
from ._store import MemoryStore, Store, redact_url

__all__ = ["open_store"]


def open_store(store: str | Store | None, *, options: Mapping[str, Any] | None = None) -> Store:
    """A :class:`Store` from ``store=``: ``None`` (memory), ``sqlite:///path``, ``redis://…`` or a ``Store``."""
    if store is None:
        return MemoryStore()
    if isinstance(store, Store):
        return store
    if not isinstance(store, str):
        raise InvalidArgumentError(f"store must be None, a URL or a Store, got {type(store).__name__}")
    scheme = store.split(":", 1)[0].lower() if ":" in store else ""
    # each backend imported when a URL asks for it: nothing at start-up for the memory store, and redis is
    # an optional extra
    if scheme == "sqlite":
        from ._store_sqlite import SqliteStore

        return SqliteStore.from_url(store)
    if scheme in ("redis", "rediss", "unix"):
        from ._store_redis import RedisStore

        return RedisStore.from_url(store)
    raise InvalidArgumentError(
        f"cannot use store {redact_url(store)!r}: expected sqlite:///path/to/journal.db or redis://host:port/db"
    )
