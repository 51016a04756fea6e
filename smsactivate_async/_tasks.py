"""The client's own tasks: background work that belongs to no caller.

Polling, deadlines, deferred cancels, activations bought to be seen through (``start_activation``),
the journal's lease and recovery run here — never inside a caller's task, which its caller may time
out, cancel or abandon at any moment. A :class:`TaskHost` keeps one runner task in the event loop
(``asyncio`` task, or a trio system task), itself holding an anyio task group; the runner starts
with the first job and ends when the last job ends, so an idle client has no task left in the loop
and a client made in one task, used from many, can be closed from yet another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import attrs

__all__ = ["LoopJob", "TaskHost", "current_library"]

log = logging.getLogger("smsactivate_async")

Job = Callable[[], Awaitable[Any]]


def current_library() -> str:
    """``"asyncio"`` or ``"trio"``: the event loop running this task (anyio's two backends here).

    Asked of asyncio itself: anyio no longer brings sniffio along."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "trio"
    return "asyncio"


@attrs.define(eq=False)
class _Runner:
    wake: anyio.Event
    done: anyio.Event
    group: anyio.abc.TaskGroup | None = None
    jobs: int = 0
    backlog: list[tuple[Job, str]] = attrs.field(factory=list)
    task: asyncio.Task[None] | None = None  # kept referenced: asyncio holds only weak references


class TaskHost:
    """Starts the client's background jobs in a task group of their own; :meth:`aclose` ends them."""

    def __init__(self) -> None:
        self._runner: _Runner | None = None
        self._finishing: list[_Runner] = []
        self._closing = False

    @property
    def closing(self) -> bool:
        """Whether :meth:`aclose` has begun (jobs are no longer started)."""
        return self._closing

    @property
    def running(self) -> bool:
        """Whether a job is running or about to (a runner task exists)."""
        return self._runner is not None or any(not r.done.is_set() for r in self._finishing)

    def start_soon(self, job: Job, name: str) -> None:
        """Run ``job()`` in the client's own task group. An exception it raises is logged, never
        passed on: one failing job must not end the others."""
        if self._closing:
            return
        runner = self._runner
        if runner is None:
            runner = self._runner = _Runner(anyio.Event(), anyio.Event())
            self._spawn(runner)
        runner.jobs += 1
        if runner.group is None:
            runner.backlog.append((job, name))
        else:
            runner.group.start_soon(self._guarded, runner, job, name, name=name)

    def _spawn(self, runner: _Runner) -> None:
        if current_library() == "trio":
            import trio

            trio.lowlevel.spawn_system_task(self._run, runner, name="smsactivate_async background")
        else:
            runner.task = asyncio.get_running_loop().create_task(self._run(runner), name="smsactivate_async background")

    async def _run(self, runner: _Runner) -> None:
        try:
            async with anyio.create_task_group() as group:
                runner.group = group
                for job, name in runner.backlog:
                    group.start_soon(self._guarded, runner, job, name, name=name)
                runner.backlog.clear()
                while runner.jobs and not self._closing:
                    await runner.wake.wait()
                    runner.wake = anyio.Event()
                # Detached before the group ends: a job started from now on gets a new runner.
                if self._runner is runner:
                    self._runner = None
                    self._finishing.append(runner)
                group.cancel_scope.cancel()
        except Exception:  # a trio system task must not raise; on asyncio nobody would see it
            log.exception("smsactivate_async: the background runner failed")
        finally:
            if self._runner is runner:
                self._runner = None
            runner.group = None
            runner.done.set()
            if runner in self._finishing:
                self._finishing.remove(runner)

    async def _guarded(self, runner: _Runner, job: Job, name: str) -> None:
        try:
            await job()
        except Exception:
            log.exception("smsactivate_async: background job %s failed", name)
        finally:
            runner.jobs -= 1
            if runner.jobs <= 0:
                runner.wake.set()

    async def aclose(self) -> None:
        """Cancel every job and wait until the runner task has ended (from any task)."""
        self._closing = True
        runners = [r for r in (self._runner, *self._finishing) if r is not None]
        for runner in runners:
            runner.wake.set()
        with anyio.CancelScope(shield=True):
            for runner in runners:
                await runner.done.wait()
        self._runner = None

    def reopen(self) -> None:
        """Accept jobs again after :meth:`aclose` (a client opened anew)."""
        self._closing = False


class LoopJob:
    """One of the client's looping jobs in its task host (the poller, the deadline watcher, the rent poller):
    started by the first work, running while there is some, asleep until a time and woken earlier
    when something comes due sooner."""

    __slots__ = ("_event", "_name", "_started", "_until")

    def __init__(self, name: str) -> None:
        self._name = name
        self._started = False
        self._until = float("inf")  # asleep until then; -inf while busy (it looks again anyway)
        self._event: anyio.Event | None = None

    def wake(self, host: TaskHost, run: Callable[[], Awaitable[None]], when: float) -> None:
        """Start the job if it is not running; else have it look again by ``when``."""
        if not self._started:
            self._started = True
            host.start_soon(run, self._name)
        elif when < self._until and self._event is not None:
            self._event.set()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Around the job's loop: once it ends, the next :meth:`wake` starts it again."""
        try:
            yield
        finally:
            self._started = False
            self._until = float("inf")

    async def sleep(self, now: float, until: float) -> None:
        """Sleep until ``until`` (clock time), or until woken."""
        self._event = anyio.Event()
        self._until = until
        try:
            with anyio.move_on_after(max(0.0, until - now)):
                await self._event.wait()
        finally:
            self._until = float("-inf")
