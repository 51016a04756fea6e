"""The journal in Redis (redis-py's asyncio client): one account's state for any number of machines.

Each step that reads and then writes is one Lua script, so it is atomic on the server; the rest
are single commands or MULTI/EXEC pipelines. The fleet's rate budget is a GCRA in one script on
the server's own clock (``TIME``), so machines whose clocks drift still share one budget; it grants
a slot only as a request is about to leave (nothing booked ahead).

Layout, under ``smsactivate:{<namespace>}:`` (the braces are a hash tag: one slot per account on
Redis Cluster): ``seq`` (intent counter); ``intent`` / ``iseq`` / ``istate`` (hashes by intent id:
the intent, its sequence number, its state while unsettled);
``entry:{kind}`` / ``owner:{kind}`` / ``code:{kind}`` / ``retries:{kind}`` (hashes by id); ``open`` (set of
``kind:id``); ``leases`` (owner → expiry); ``rate`` / ``rate:block`` (the shared budget).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from ._exceptions import InvalidArgumentError, StoreError
from ._store import FINAL, Entry, EntryState, Intent, IntentState, Kind, Push, Store, redact_url

__all__ = ["RedisStore"]

T = TypeVar("T")

_ADD_INTENT = """
local seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], seq)
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
return seq
"""

_CLAIM = """
local owner = redis.call('HGET', KEYS[2], ARGV[1])
if owner then
  if owner == ARGV[3] then return 1 end
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
return 1
"""

_TAKE_OVER = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[4]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# GCRA on the server's clock. The shared budget grants a slot only when a request is about to leave:
# at the rate in force then, and never during a block. Nothing is booked ahead, so a rate that
# changes applies at once and no slot granted before a throttle can leave during the block after it.
_GRANT = """
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
local cut = redis.call('GET', KEYS[3]) or '0'
local start = math.max(now, tat - tolerance, blocked)
if start > now then
  return {string.format('%.6f', start - now), cut}
end
local new_tat = math.max(tat, now) + interval
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
return {'0', cut}
"""

_BLOCK = """
pcall(redis.replicate_commands)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local untl = now + tonumber(ARGV[1])
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > blocked then
  redis.call('SET', KEYS[3], string.format('%.6f', now))
  redis.call('SET', KEYS[1], string.format('%.6f', untl), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat < untl then redis.call('SET', KEYS[2], string.format('%.6f', untl), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000) end
end
return 1
"""


# Closed entries past the retention period, and their fields, in one step.
_PRUNE = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, member in ipairs(gone) do
  local sep = string.find(member, ':')
  local kind, id = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
  for _, field in ipairs({'entry:', 'owner:', 'code:', 'retries:', 'suspended:', 'state:'}) do
    redis.call('HDEL', ARGV[2] .. field .. kind, id)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return #gone
"""

# The poller's lease: taken when free, kept (renewed) by its holder, lost when it stops renewing.
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# A poller with no more waiters hands the lease back, so that the next client to tick leads at once.
_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _require_asyncio() -> None:
    from ._tasks import current_library

    library = current_library()
    if library != "asyncio":
        raise InvalidArgumentError(f"the Redis store needs asyncio (redis-py's asyncio client), not {library}")


class RedisStore(Store):
    """``redis://[:password@]host:port/db`` (also ``rediss://``, ``unix://``)."""

    shared = True
    #: keeps the account's rate budget for every client on it (``grant`` / ``block``)
    shares_budget = True

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis: Any = None
        self._prefix = ""
        self._scripts: dict[str, Any] = {}
        #: connections to Redis at most; more concurrent calls wait for one
        self.max_connections = 32
        #: whether the URL named a node of a Redis Cluster (found when the store opens)
        self.cluster = False

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise InvalidArgumentError(
                "store=redis://… needs redis-py: pip install 'smsactivate-async[redis]'") from None
        return cls(url)

    def __repr__(self) -> str:
        return f"RedisStore({redact_url(self.url)!r})"

    async def _do(self, work: Callable[[], Awaitable[T]], *, again: bool = True) -> T:
        """One call; a connection that fails is tried once more on a fresh one (``again``): after a
        restart of the server every pooled connection is dead, and the call never reached the new
        server. Not for a call whose repeat would answer differently (a take-over)."""
        import redis.exceptions

        failure: StoreError | None = None
        for attempt in (1, 2):
            try:
                return await work()
            except (redis.exceptions.RedisError, OSError) as exc:
                failure = StoreError(f"the journal {self!r} failed: {type(exc).__name__}",
                                     unreachable=_unreachable(exc))
            if not failure.unreachable:
                break
            await self._drop_idle_connections()
            if not again or attempt == 2:
                break
        assert failure is not None
        raise failure

    async def _drop_idle_connections(self) -> None:
        """After a connection failed: the server may have restarted, and every idle connection of the
        pool with it — drop them all now, or each would fail one more call when next used, for as
        long as it takes to use them all (a write missed seconds after the server is back)."""
        pool = getattr(self._redis, "connection_pool", None)
        if pool is not None:
            try:
                await pool.disconnect(inuse_connections=False)
            except (OSError, RuntimeError):
                pass

    def _key(self, name: str) -> str:
        return f"{self._prefix}{name}"

    async def open(self, namespace: str) -> None:
        import redis.asyncio
        import redis.exceptions

        _require_asyncio()
        # The namespace in braces is a hash tag: every key of one account in one slot, so the scripts that
        # touch several keys work on Redis Cluster too.
        self._prefix = f"smsactivate:{{{namespace}}}:"
        failure: StoreError | None = None
        try:
            # However many calls are in flight, a connection is waited for (bounded), never an error.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self.url, max_connections=self.max_connections, timeout=30, socket_connect_timeout=5.0,
                socket_timeout=10.0, health_check_interval=30)
            self._redis = redis.asyncio.Redis(connection_pool=pool)
            await self._redis.ping()
            if (await self._redis.info("cluster")).get("cluster_enabled"):
                # A node of a Redis Cluster: talk to the cluster (it routes each key to its node; the
                # account's keys share one slot).
                await self._redis.aclose()
                self._redis = None
                self._redis = redis.asyncio.RedisCluster.from_url(
                    self.url, max_connections=self.max_connections, socket_connect_timeout=5.0,
                    socket_timeout=10.0, health_check_interval=30)
                await self._redis.initialize()
                await self._redis.ping()
                self.cluster = True
        except (redis.exceptions.RedisError, OSError, ValueError) as exc:
            failure = StoreError(f"cannot reach the journal {self!r}: {type(exc).__name__}",
                                 unreachable=_unreachable(exc))
        if failure is not None:
            await self.aclose()
            raise failure
        for name, source in (("add", _ADD_INTENT), ("claim", _CLAIM), ("take", _TAKE_OVER), ("grant", _GRANT),
                             ("block", _BLOCK), ("lead", _LEAD), ("resign", _RESIGN),
                             ("prune", _PRUNE)):
            self._scripts[name] = self._redis.register_script(source)

    async def aclose(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    # --- intents --------------------------------------------------------------------------------

    async def add_intent(self, intent: Intent) -> int:
        keys = [self._key("seq"), self._key("intent"), self._key("iseq"), self._key("istate")]
        seq = await self._do(lambda: self._scripts["add"](keys=keys, args=[intent.id, intent.to_json(), intent.state]))
        return int(seq)

    async def set_intent_state(self, intent_id: str, state: IntentState) -> None:
        async def work() -> None:
            if state not in FINAL:
                await self._redis.hset(self._key("istate"), intent_id, state)
                return
            async with self._redis.pipeline(transaction=True) as pipe:
                for name in ("intent", "iseq", "istate"):
                    pipe.hdel(self._key(name), intent_id)
                await pipe.execute()

        await self._do(work)

    async def intents(self, states: Iterable[str]) -> list[Intent]:
        wanted = set(states)

        async def work() -> list[Intent]:
            current: dict[bytes, bytes] = await self._redis.hgetall(self._key("istate"))
            ids = [i for i, s in current.items() if s.decode() in wanted]
            if not ids:
                return []
            bodies = await self._redis.hmget(self._key("intent"), ids)
            seqs = await self._redis.hmget(self._key("iseq"), ids)
            found = []
            for intent_id, body, seq in zip(ids, bodies, seqs, strict=True):
                if body is None or seq is None:
                    continue
                intent = Intent.from_json(body)
                found.append(Intent(**{**_fields(intent), "state": current[intent_id].decode(), "seq": int(seq)}))
            return sorted(found, key=lambda i: i.seq)

        return await self._do(work)

    async def last_seq(self) -> int:
        value = await self._do(lambda: self._redis.get(self._key("seq")))
        return int(value) if value is not None else 0

    # --- entries --------------------------------------------------------------------------------

    async def claim(self, entry: Entry) -> bool:
        keys = [self._key(f"entry:{entry.kind}"), self._key(f"owner:{entry.kind}"), self._key("open")]
        args = [entry.id, entry.to_json(), entry.owner, f"{entry.kind}:{entry.id}"]
        return bool(await self._do(lambda: self._scripts["claim"](keys=keys, args=args)))

    async def update_entry(self, kind: Kind, entry_id: int, *, state: EntryState | None = None,
                           code: str | None = None, another: bool = False) -> None:
        async def work() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                if code is not None:
                    pipe.hset(self._key(f"code:{kind}"), entry_id, code)
                if another:
                    pipe.hincrby(self._key(f"retries:{kind}"), entry_id, 1)
                if state in ("finished", "cancelled"):
                    pipe.hset(self._key(f"state:{kind}"), entry_id, state)
                    pipe.srem(self._key("open"), f"{kind}:{entry_id}")
                    pipe.zadd(self._key("closed"), {f"{kind}:{entry_id}": time.time()})  # pruned after retention
                await pipe.execute()

        await self._do(work)

    async def suspend(self, kind: Kind, entry_id: int, until: float | None, handed: Sequence[str] = (),
                      context: str | int | None = None) -> None:
        key = self._key(f"suspended:{kind}")
        if until is None:
            await self._do(lambda: self._redis.hdel(key, entry_id))
        else:
            body = json.dumps({"until": until, "handed": list(handed), "context": context})
            await self._do(lambda: self._redis.hset(key, entry_id, body))

    async def prune(self, before: float) -> int:
        """Forget entries closed before ``before`` (settled intents are deleted as they settle)."""
        keys = [self._key("closed")]
        gone = await self._do(lambda: self._scripts["prune"](keys=keys, args=[repr(before), self._prefix]))
        return int(gone)

    async def owners(self, kind: Kind, ids: Iterable[int]) -> dict[int, str]:
        wanted = list(ids)
        if not wanted:
            return {}
        found = await self._do(lambda: self._redis.hmget(self._key(f"owner:{kind}"), wanted))
        return {i: o.decode() for i, o in zip(wanted, found, strict=True) if o is not None}

    async def open_entries(self) -> list[Entry]:
        async def work() -> list[Entry]:
            members = [m.decode() for m in await self._redis.smembers(self._key("open"))]
            entries = []
            for kind in ("activation", "rent"):
                ids = [m.split(":", 1)[1] for m in members if m.startswith(kind + ":")]
                entries += await self._entries(kind, ids, open_only=True)
            return sorted(entries, key=lambda e: e.bought_at)

        return await self._do(work)

    async def history(self, since: float) -> list[Entry]:
        """Every entry bought since ``since`` the store keeps (closed ones until pruned)."""
        async def work() -> list[Entry]:
            entries = []
            for kind in ("activation", "rent"):
                ids = [i.decode() for i in await self._redis.hkeys(self._key(f"entry:{kind}"))]
                entries += [e for e in await self._entries(kind, ids, open_only=False) if e.bought_at >= since]
            return sorted(entries, key=lambda e: e.bought_at)

        return await self._do(work)

    async def _entries(self, kind: str, ids: list[str], *, open_only: bool) -> list[Entry]:
        if not ids:
            return []
        bodies = await self._redis.hmget(self._key(f"entry:{kind}"), ids)
        owners = await self._redis.hmget(self._key(f"owner:{kind}"), ids)
        codes = await self._redis.hmget(self._key(f"code:{kind}"), ids)
        retries = await self._redis.hmget(self._key(f"retries:{kind}"), ids)
        suspended = await self._redis.hmget(self._key(f"suspended:{kind}"), ids)
        states = [None] * len(ids) if open_only else await self._redis.hmget(self._key(f"state:{kind}"), ids)
        entries = []
        for body, owner, code, again, held, state in zip(bodies, owners, codes, retries, suspended, states,
                                                         strict=True):
            if body is None or owner is None:
                continue
            entry = Entry.from_json(body)
            pause = json.loads(held) if held is not None else {}
            entries.append(Entry(**{**_fields(entry), "owner": owner.decode(),
                                    "code": code.decode() if code is not None else entry.code,
                                    "retries": int(again) if again is not None else 0,
                                    "suspended_until": pause.get("until"), "handed": pause.get("handed", ()),
                                    "context": pause.get("context"),
                                    "state": state.decode() if state is not None else entry.state}))
        return entries

    async def note(self, at: float, text: str) -> None:
        async def work() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(self._key("notes"), json.dumps([at, text]))
                pipe.ltrim(self._key("notes"), 0, 999)
                await pipe.execute()

        await self._do(work)

    async def notes(self, since: float) -> list[tuple[float, str]]:
        raw = await self._do(lambda: self._redis.lrange(self._key("notes"), 0, -1))
        found = [(float(at), str(text)) for at, text in (json.loads(item) for item in raw)]
        return sorted(n for n in found if n[0] >= since)

    async def take_over(self, kind: Kind, entry_id: int, from_owner: str, to_owner: str) -> bool:
        keys = [self._key(f"owner:{kind}"), self._key("open")]
        args = [entry_id, from_owner, to_owner, f"{kind}:{entry_id}"]
        return bool(await self._do(lambda: self._scripts["take"](keys=keys, args=args), again=False))

    # --- leases ---------------------------------------------------------------------------------

    async def renew(self, owner: str, expires: float) -> None:
        await self._do(lambda: self._redis.hset(self._key("leases"), owner, repr(expires)))

    async def lease_back(self, owner: str, expires: float) -> bool:
        return bool(await self._do(lambda: self._redis.hsetnx(self._key("leases"), owner, repr(expires))))

    async def release(self, owner: str) -> None:
        await self._do(lambda: self._redis.hdel(self._key("leases"), owner))

    async def leases(self) -> dict[str, float]:
        found = await self._do(lambda: self._redis.hgetall(self._key("leases")))
        return {o.decode(): float(e) for o, e in found.items()}

    # --- the fleet's rate budget ----------------------------------------------------------------

    async def grant(self, interval: float, tolerance: float) -> tuple[float, float]:
        """Take a slot of the shared budget now if there is one: (0, …); else (seconds until there may
        be one, …) and nothing is taken. The second value: when the fleet's rate was last cut."""
        keys = [self._key("rate"), self._key("rate:block"), self._key("rate:cut")]
        wait, cut = await self._do(lambda: self._scripts["grant"](keys=keys, args=[repr(interval), repr(tolerance)]))
        return max(0.0, float(wait)), float(cut)

    async def block(self, seconds: float) -> None:
        keys = [self._key("rate:block"), self._key("rate"), self._key("rate:cut")]
        await self._do(lambda: self._scripts["block"](keys=keys, args=[repr(seconds)]))


    # --- one poller per account ----------------------------------------------------------------

    async def lead(self, owner: str, ttl: float) -> bool:
        """Become (or stay) the account's poller for ``ttl`` seconds; ``False`` if another one is."""
        keys = [self._key("poller")]
        return bool(await self._do(lambda: self._scripts["lead"](keys=keys, args=[owner, max(1, int(ttl * 1000))])))

    async def resign(self, owner: str) -> None:
        """Give the poller's lease back if ``owner`` holds it."""
        keys = [self._key("poller")]
        await self._do(lambda: self._scripts["resign"](keys=keys, args=[owner]))

    async def publish_rows(self, rows: dict[int, tuple[str | None, str | None, bool]], at: float, due: float) -> None:
        """The poller's scan of the account, for every client's waiters: id → (status, code, exact); its
        next is promised by wall time ``due``."""
        mapping = {str(i): f"{status or ''}|{int(exact)}|{code or ''}" for i, (status, code, exact) in rows.items()}

        async def work() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key("rows"))
                if mapping:
                    pipe.hset(self._key("rows"), mapping=mapping)
                pipe.set(self._key("rows:at"), repr(at))
                pipe.set(self._key("rows:due"), repr(due))
                await pipe.execute()

        await self._do(work)

    async def read_rows(self, ids: list[int]) -> tuple[float, float, dict[int, tuple[str | None, str | None, bool]]]:
        """When the poller last scanned (wall time; 0 if never), when it promised its next by (0: no
        promise, a poller of an older version) and the rows of ``ids`` it saw."""
        async def work() -> tuple[float, float, dict[int, tuple[str | None, str | None, bool]]]:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(self._key("rows:at"))
                pipe.get(self._key("rows:due"))
                pipe.hmget(self._key("rows"), [str(i) for i in ids] or ["-"])
                at, due, found = await pipe.execute()
            rows: dict[int, tuple[str | None, str | None, bool]] = {}
            for activation_id, value in zip(ids, found, strict=False):
                if value is not None:
                    status, exact, code = value.decode().split("|", 2)
                    rows[activation_id] = (status or None, code or None, exact == "1")
            return (float(at) if at is not None else 0.0), (float(due) if due is not None else 0.0), rows

        return await self._do(work)


    async def server_run(self) -> str:
        """The Redis server's ``run_id``, new at every start: when it changes, the server restarted,
        and leases ran out for want of a server, not of their owners."""
        info = await self._do(lambda: self._redis.info("server"))
        if isinstance(info, dict) and "run_id" not in info:
            info = next((v for v in info.values() if isinstance(v, dict)), {})  # a cluster: per node
        return str(info.get("run_id", ""))

    # --- webhook pushes for every client of the account ---------------------------------------------

    async def publish_push(self, push: Push) -> None:
        await self._do(lambda: self._redis.publish(self._key("push"), push.encode()))

    async def pushes(self) -> AsyncIterator[Push]:
        """Pushes published by any client, on a connection of its own to the URL's node (a cluster
        forwards every PUBLISH to every node)."""
        import redis.asyncio
        import redis.exceptions

        connection = redis.asyncio.Redis.from_url(self.url, socket_connect_timeout=5.0, health_check_interval=30)
        failure: StoreError | None = None
        try:
            async with connection.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(self._key("push"))
                async for message in pubsub.listen():
                    push = Push.decode(bytes(message.get("data", b"")).decode(errors="replace"))
                    if push is not None:
                        yield push
        except (redis.exceptions.RedisError, OSError) as exc:
            failure = StoreError(f"the journal {self!r} stopped carrying pushes: {type(exc).__name__}")
        finally:
            await connection.aclose()
        if failure is not None:
            raise failure


def _unreachable(exc: BaseException) -> bool:
    """A connection refused, reset or timed out (an outage) rather than a refusal (a wrong password,
    a bad URL): what is worth waiting for."""
    import redis.exceptions

    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthorizationError):
        return False
    return isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError | OSError)


def _fields(instance: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(instance, recurse=False)
