"""The journal in a sqlite file: crash-safe on one machine, shared by its processes.

The standard library's ``sqlite3``, driven from a worker thread (anyio's ``to_thread``) so that
the event loop never waits on the disk. WAL mode lets readers and one writer work at once across
processes; ``synchronous=FULL`` makes each committed step survive a crash of the process and of
the machine; every step is one transaction (``BEGIN IMMEDIATE`` where it reads, then writes).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio.lowlevel
import anyio.to_thread

from ._exceptions import InvalidArgumentError, StoreError
from ._store import Entry, EntryState, Intent, IntentState, Kind, Store

__all__ = ["SqliteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    ns TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, owner TEXT NOT NULL, action TEXT NOT NULL,
    params TEXT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, created REAL NOT NULL, order_id TEXT,
    state TEXT NOT NULL, PRIMARY KEY (ns, id));
CREATE INDEX IF NOT EXISTS intents_state ON intents (ns, state, seq);
CREATE TABLE IF NOT EXISTS entries (
    ns TEXT NOT NULL, kind TEXT NOT NULL, id INTEGER NOT NULL, owner TEXT NOT NULL, intent_id TEXT,
    bought_at REAL NOT NULL, service TEXT, country TEXT, phone TEXT, code TEXT, state TEXT NOT NULL,
    retries INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (ns, kind, id));
CREATE INDEX IF NOT EXISTS entries_open ON entries (ns, state);
CREATE TABLE IF NOT EXISTS leases (ns TEXT NOT NULL, owner TEXT NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (ns, owner));
CREATE TABLE IF NOT EXISTS seqs (ns TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS closed (ns TEXT NOT NULL, kind TEXT NOT NULL, id INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (ns, kind, id));
CREATE INDEX IF NOT EXISTS closed_at ON closed (ns, at);
CREATE TABLE IF NOT EXISTS notes (ns TEXT NOT NULL, at REAL NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS notes_at ON notes (ns, at);
CREATE TABLE IF NOT EXISTS budget (ns TEXT PRIMARY KEY, tat REAL NOT NULL, blocked REAL NOT NULL,
    cut REAL NOT NULL);
"""


def _secure(path: Path) -> None:
    """Make the journal's file private (0600) before sqlite opens it, and refuse one that another
    local user could rewrite: its owners and leases decide which numbers get cancelled.

    sqlite gives its ``-wal`` and ``-shm`` files the main file's mode, so a private main file keeps
    them private too; existing ones are checked all the same."""
    if not hasattr(os, "geteuid"):  # Windows: no POSIX modes to check (ACLs are the folder's)
        return
    if str(path) == ":memory:" or str(path).startswith("file:"):  # no file of ours to guard
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        pass
    else:
        os.close(fd)
    me = os.geteuid()
    for name in (str(path), f"{path}-wal", f"{path}-shm"):
        try:
            info = os.lstat(name)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):
            raise StoreError(f"the journal file {name!r} is a symbolic link: use the file itself, in a folder only "
                             "you can write", code="STORE_INSECURE")
        if info.st_uid != me:
            raise StoreError(
                f"the journal file {name!r} belongs to another user (uid {info.st_uid}): whoever owns it can rewrite "
                f"which numbers this client holds. Use a journal file you own (run `chown {me} {name}` or remove it)",
                code="STORE_INSECURE")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise StoreError(
                f"the journal file {name!r} can be written by other users (mode {stat.S_IMODE(info.st_mode):o}): anyone "
                f"on this machine could reassign or cancel your numbers. Fix it with `chmod 600 {name}`",
                code="STORE_INSECURE")
        if info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
            os.chmod(name, 0o600)  # ours, only too readable (made by an older version): phone numbers stay private


class SqliteStore(Store):
    """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's spelling)."""

    #: keeps the account's rate budget for the processes of this machine (``grant`` / ``block``)
    shares_budget = True

    def __init__(self, path: str | Path, *, wall: Callable[[], float] = time.time, threaded: bool = True) -> None:
        """``wall``: the wall clock of the shared budget and of closing times (every process on the
        machine must read the same one); ``threaded=False`` runs each step in the event loop's own
        thread — for a simulated world on virtual time, where a thread's real duration would move
        the clock."""
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._ns = ""
        self._wall = wall
        self._threaded = threaded

    async def _call(self, step: Callable[[], T]) -> T:
        if self._threaded:
            return await anyio.to_thread.run_sync(step)
        await anyio.lowlevel.checkpoint()
        return step()

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        if not url.lower().startswith("sqlite:///") or len(url) <= len("sqlite:///"):
            raise InvalidArgumentError(
                f"cannot use store {url!r}: write sqlite:///relative/journal.db or sqlite:////absolute/journal.db"
            )
        return cls(url[len("sqlite:///"):])

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # --- plumbing -----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        _secure(self.path)
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(entries)")}
        for column, kind in (("suspended_until", "REAL"), ("handed", "TEXT"), ("context", "TEXT"),
                             ("paid_until", "REAL"), ("cost", "TEXT")):  # an older journal
            if column not in columns:
                try:
                    conn.execute(f"ALTER TABLE entries ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError:  # another process added it meanwhile
                    pass
        return conn

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        def step() -> T:
            with self._lock:
                conn = self._conn
                if conn is None:
                    raise StoreError(f"the journal {self!r} is not open", code="STORE_CLOSED")
                if not write:
                    return work(conn)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result

        failure: StoreError | None = None
        try:
            return await self._call(step)
        except sqlite3.Error as exc:
            failure = StoreError(f"the journal {self!r} failed: {type(exc).__name__}: {exc}")
        raise failure

    async def open(self, namespace: str) -> None:
        self._ns = namespace
        failure: StoreError | None = None
        try:
            if self.path.parent and not self.path.parent.exists():
                raise StoreError(f"cannot open the journal {self!r}: the folder {str(self.path.parent)!r} does not exist")
            self._conn = await self._call(self._connect)
        except (sqlite3.Error, OSError) as exc:
            failure = StoreError(f"cannot open the journal {self!r}: {type(exc).__name__}: {exc}")
        if failure is not None:
            raise failure

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._call(conn.close)

    # --- the rate budget of the processes sharing the file -------------------------------------------

    async def grant(self, interval: float, tolerance: float) -> tuple[float, float]:
        """Take a slot of the shared budget now if there is one: (0, …); else (seconds until there may
        be one, …) and nothing is taken. The second value: when the rate was last cut by a throttle.
        On the machine's wall clock, which every process on it shares."""
        def work(conn: sqlite3.Connection) -> tuple[float, float]:
            now = self._wall()
            row = conn.execute("SELECT tat, blocked, cut FROM budget WHERE ns = ?", (self._ns,)).fetchone()
            tat, blocked, cut = row if row is not None else (0.0, 0.0, 0.0)
            start = max(now, tat - tolerance, blocked)
            if start > now:
                return start - now, cut
            conn.execute("INSERT INTO budget (ns, tat, blocked, cut) VALUES (?, ?, ?, ?) ON CONFLICT (ns) DO "
                         "UPDATE SET tat = excluded.tat", (self._ns, max(tat, now) + interval, blocked, cut))
            return 0.0, cut

        return await self._run(work, write=True)

    async def block(self, seconds: float) -> None:
        """A throttle: every process of the account holds back ``seconds``."""
        def work(conn: sqlite3.Connection) -> None:
            now = self._wall()
            row = conn.execute("SELECT tat, blocked FROM budget WHERE ns = ?", (self._ns,)).fetchone()
            tat, blocked = row if row is not None else (0.0, 0.0)
            until = now + seconds
            if until > blocked:
                conn.execute("INSERT INTO budget (ns, tat, blocked, cut) VALUES (?, ?, ?, ?) ON CONFLICT (ns) DO "
                             "UPDATE SET tat = excluded.tat, blocked = excluded.blocked, cut = excluded.cut",
                             (self._ns, max(tat, until), until, now))

        await self._run(work, write=True)

    # --- intents --------------------------------------------------------------------------------

    async def add_intent(self, intent: Intent) -> int:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO seqs (ns, seq) VALUES (?, 1) ON CONFLICT (ns) DO UPDATE SET seq = seq + 1",
                         (self._ns,))
            (seq,) = conn.execute("SELECT seq FROM seqs WHERE ns = ?", (self._ns,)).fetchone()
            conn.execute(
                "INSERT INTO intents (ns, id, seq, owner, action, params, key, kind, created, order_id, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self._ns, intent.id, seq, intent.owner, intent.action, json.dumps(dict(intent.params)), intent.key,
                 intent.kind, intent.created, intent.order_id, intent.state),
            )
            return int(seq)

        return await self._run(work, write=True)

    async def set_intent_state(self, intent_id: str, state: IntentState) -> None:
        await self._run(lambda conn: conn.execute(
            "UPDATE intents SET state = ? WHERE ns = ? AND id = ?", (state, self._ns, intent_id)), write=True)

    async def intents(self, states: Iterable[str]) -> list[Intent]:
        wanted = list(states)
        marks = ",".join("?" * len(wanted))

        def work(conn: sqlite3.Connection) -> list[Intent]:
            rows = conn.execute(
                f"SELECT id, owner, action, params, key, kind, created, order_id, state, seq FROM intents "
                f"WHERE ns = ? AND state IN ({marks}) ORDER BY seq", (self._ns, *wanted)).fetchall()
            return [Intent(id=r[0], owner=r[1], action=r[2], params=json.loads(r[3]), key=r[4], kind=r[5],
                           created=r[6], order_id=r[7], state=r[8], seq=r[9]) for r in rows]

        return await self._run(work)

    async def last_seq(self) -> int:
        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT seq FROM seqs WHERE ns = ?", (self._ns,)).fetchone()
            return int(row[0]) if row else 0

        return await self._run(work)

    # --- entries --------------------------------------------------------------------------------

    async def claim(self, entry: Entry) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT owner FROM entries WHERE ns = ? AND kind = ? AND id = ?",
                               (self._ns, entry.kind, entry.id)).fetchone()
            if row is not None:
                return bool(row[0] == entry.owner)
            conn.execute(
                "INSERT INTO entries (ns, kind, id, owner, intent_id, bought_at, service, country, phone, code, state, "
                "paid_until, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self._ns, entry.kind, entry.id, entry.owner, entry.intent_id, entry.bought_at, entry.service,
                 entry.country, entry.phone, entry.code, entry.state, entry.paid_until, entry.cost),
            )
            return True

        return await self._run(work, write=True)

    async def update_entry(self, kind: Kind, entry_id: int, *, state: EntryState | None = None,
                           code: str | None = None, another: bool = False) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE entries SET state = COALESCE(?, state), code = COALESCE(?, code), retries = retries + ? "
                "WHERE ns = ? AND kind = ? AND id = ?", (state, code, int(another), self._ns, kind, entry_id))
            if state in ("finished", "cancelled"):  # kept for the retention period, then pruned
                conn.execute("INSERT OR REPLACE INTO closed (ns, kind, id, at) VALUES (?, ?, ?, ?)",
                             (self._ns, kind, entry_id, self._wall()))

        await self._run(work, write=True)

    async def suspend(self, kind: Kind, entry_id: int, until: float | None, handed: Sequence[str] = (),
                      context: str | int | None = None) -> None:
        await self._run(lambda conn: conn.execute(
            "UPDATE entries SET suspended_until = ?, handed = ?, context = ? WHERE ns = ? AND kind = ? AND id = ? "
            "AND state = 'open'", (until, json.dumps(list(handed)), json.dumps(context), self._ns, kind, entry_id)),
            write=True)

    async def prune(self, before: float) -> int:
        """Forget entries closed before ``before`` and intents settled for good before it."""
        def work(conn: sqlite3.Connection) -> int:
            gone = conn.execute(
                "DELETE FROM entries WHERE ns = ? AND state != 'open' AND EXISTS (SELECT 1 FROM closed c WHERE "
                "c.ns = entries.ns AND c.kind = entries.kind AND c.id = entries.id AND c.at < ?)",
                (self._ns, before)).rowcount
            conn.execute("DELETE FROM closed WHERE ns = ? AND at < ?", (self._ns, before))
            gone += conn.execute("DELETE FROM intents WHERE ns = ? AND state IN ('bought', 'failed', 'recovered') "
                                 "AND created < ?", (self._ns, before)).rowcount
            return int(gone)

        return await self._run(work, write=True)

    async def owners(self, kind: Kind, ids: Iterable[int]) -> dict[int, str]:
        wanted = list(ids)
        if not wanted:
            return {}

        def work(conn: sqlite3.Connection) -> dict[int, str]:
            found: dict[int, str] = {}
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for entry_id, owner in conn.execute(
                        f"SELECT id, owner FROM entries WHERE ns = ? AND kind = ? AND id IN ({marks})",
                        (self._ns, kind, *chunk)):
                    found[int(entry_id)] = str(owner)
            return found

        return await self._run(work)

    async def open_entries(self) -> list[Entry]:
        def work(conn: sqlite3.Connection) -> list[Entry]:
            rows = conn.execute(f"SELECT {_ENTRY} FROM entries WHERE ns = ? AND state = 'open' ORDER BY bought_at",
                                (self._ns,)).fetchall()
            return [Entry(*_row(r)) for r in rows]

        return await self._run(work)

    async def history(self, since: float) -> list[Entry]:
        def work(conn: sqlite3.Connection) -> list[Entry]:
            rows = conn.execute(f"SELECT {_ENTRY} FROM entries WHERE ns = ? AND bought_at >= ? ORDER BY bought_at",
                                (self._ns, since)).fetchall()
            return [Entry(*_row(r)) for r in rows]

        return await self._run(work)

    async def note(self, at: float, text: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO notes (ns, at, text) VALUES (?, ?, ?)", (self._ns, at, text))
            conn.execute("DELETE FROM notes WHERE ns = ? AND rowid NOT IN (SELECT rowid FROM notes WHERE ns = ? "
                         "ORDER BY at DESC LIMIT 1000)", (self._ns, self._ns))

        await self._run(work, write=True)

    async def notes(self, since: float) -> list[tuple[float, str]]:
        def work(conn: sqlite3.Connection) -> list[tuple[float, str]]:
            rows = conn.execute("SELECT at, text FROM notes WHERE ns = ? AND at >= ? ORDER BY at",
                                (self._ns, since)).fetchall()
            return [(float(at), str(text)) for at, text in rows]

        return await self._run(work)

    async def take_over(self, kind: Kind, entry_id: int, from_owner: str, to_owner: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE entries SET owner = ? WHERE ns = ? AND kind = ? AND id = ? AND owner = ? AND state = 'open'",
                (to_owner, self._ns, kind, entry_id, from_owner))
            return cursor.rowcount == 1

        return await self._run(work, write=True)

    # --- leases ---------------------------------------------------------------------------------

    async def renew(self, owner: str, expires: float) -> None:
        await self._run(lambda conn: conn.execute(
            "INSERT INTO leases (ns, owner, expires) VALUES (?, ?, ?) "
            "ON CONFLICT (ns, owner) DO UPDATE SET expires = excluded.expires", (self._ns, owner, expires)), write=True)

    async def lease_back(self, owner: str, expires: float) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute("INSERT INTO leases (ns, owner, expires) VALUES (?, ?, ?) ON CONFLICT (ns, owner) "
                                "DO NOTHING", (self._ns, owner, expires)).rowcount > 0

        return await self._run(work, write=True)

    async def release(self, owner: str) -> None:
        await self._run(lambda conn: conn.execute(
            "DELETE FROM leases WHERE ns = ? AND owner = ?", (self._ns, owner)), write=True)

    async def leases(self) -> dict[str, float]:
        def work(conn: sqlite3.Connection) -> dict[str, float]:
            return {str(o): float(e) for o, e in conn.execute("SELECT owner, expires FROM leases WHERE ns = ?",
                                                                (self._ns,))}

        return await self._run(work)


_ENTRY = ("kind, id, owner, intent_id, bought_at, service, country, phone, code, state, retries, suspended_until, "
          "handed, context, paid_until, cost")


def _row(r: Any) -> tuple[Any, ...]:
    return (r[0], int(r[1]), r[2], r[3], float(r[4]), r[5], r[6], r[7], r[8], r[9], int(r[10]),
            None if r[11] is None else float(r[11]), tuple(json.loads(r[12])) if r[12] else (),
            json.loads(r[13]) if r[13] else None, None if r[14] is None else float(r[14]), r[15])
