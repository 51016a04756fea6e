"""The scheduler's arithmetic and bookkeeping, exactly (issue 37: tests written for the survivors of a
mutmut pass over ``_waiting.py`` — each asserts what a changed operator or constant would change)."""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import anyio.lowlevel
import httpx
import pytest

from smsactivate_async import Provider, SMSActivate, WaitTimeoutError
from smsactivate_async._deadlines import Deadlines
from smsactivate_async._waiting import _Track, _Waiter, _Wakeup
from smsactivate_async.simulator import ActivationState, CodeSchedule, Simulator

from .conftest import FakeClock

pytestmark = pytest.mark.anyio


def _scheduler(poll_interval: float = 2.0) -> tuple[SMSActivate, FakeClock]:
    clock = FakeClock()
    client = SMSActivate("k", transport=Simulator().transport(), rate_limit=None, poll_interval=poll_interval,
                         clock=clock)
    return client, clock


def test_a_push_takes_one_of_two_confirmations_refilled_one_per_poll_interval() -> None:
    """Each activation may have its pushes confirmed twice at once, then once per poll interval (the
    polling's own cost): what a forged flood can make the client spend, and no more."""
    client, _ = _scheduler(poll_interval=2.0)
    scheduler = client._get_scheduler()
    track = _Track(7)
    take = scheduler._push_token
    assert [take(track, 0.0), take(track, 0.0)] == [0.0, 0.0]  # the burst of two
    assert take(track, 0.0) == pytest.approx(2.0)  # empty: a whole interval until the next
    assert take(track, 1.0) == pytest.approx(1.0)  # half refilled: half an interval (none taken)
    assert track.push_tokens == pytest.approx(0.5)
    assert take(track, 3.0) == 0.0 and track.push_tokens == pytest.approx(0.5)  # 0.5 + 1 refilled, one taken
    assert take(track, 100.0) == 0.0 and track.push_tokens == pytest.approx(1.0)  # never more than two
    scheduler._intervals[0.5] += 1  # a waiter polling faster: refilled at its pace
    assert [take(track, 100.0), take(track, 100.0)] == [0.0, pytest.approx(0.5)]


async def test_a_number_found_closed_is_news_once_and_forgotten() -> None:
    """``closed_number``: the news goes out under the activation's id and state ("expired" unless
    told), so the stats count it and the scheduler forgets the codes it handed out."""
    client, _ = _scheduler()
    scheduler = client._get_scheduler()
    scheduler.codes.mark(5, "1234")
    scheduler.codes.mark(6, "5678")
    scheduler._pushed.add(5)  # a push for it that nobody waited on
    scheduler.closed_number(5)
    scheduler.closed_number(6, "finished")
    assert dict(client.stats.closed) == {"expired": 1, "finished": 1}
    assert scheduler.codes.seen(5) == frozenset() and scheduler.codes.seen(6) == frozenset()
    assert scheduler._pushed.pop(5) is None  # forgotten with the rest


async def test_pushes_beyond_the_confirmations_are_held_back_counted_and_confirmed_when_due() -> None:
    """A push while one is confirmed is coalesced; past the two confirmations it waits for the next
    (never dropped), counted each time; when due it is confirmed; a push for a number nobody waits on
    yet is remembered (all synchronous here: the poller, started on the way, cannot run in between)."""
    client, clock = _scheduler(poll_interval=2.0)
    async with client:
        scheduler = client._get_scheduler()
        track = scheduler._tracks[7] = _Track(7)
        scheduler.notify(7)
        assert track.pushed and 7 in scheduler._urgent and scheduler.pushes_coalesced == 0
        scheduler.notify(7)  # its confirmation is under way: once more after it, if it finds nothing
        assert track.push_again and scheduler.pushes_coalesced == 1
        scheduler.notify(7)  # and again: still that one more, counted once more
        assert track.push_again and scheduler.pushes_coalesced == 2
        scheduler.pushes_coalesced = 1
        track.pushed = False  # that confirmation ended
        scheduler._urgent.clear()
        scheduler.notify(7)  # the second of two
        assert track.pushed and 7 in scheduler._urgent and scheduler.pushes_coalesced == 1
        track.pushed = False
        scheduler._urgent.clear()
        scheduler.notify(7)  # none left: held back a whole interval
        scheduler.notify(7)
        assert scheduler._push_later == {7: 2.0} and scheduler.pushes_coalesced == 3 and not track.pushed
        clock.t = 1.0
        scheduler._pushes_due(1.0)  # not yet
        assert scheduler._push_later == {7: 2.0} and not track.pushed
        scheduler._tracks[9] = _Track(9)
        scheduler._push_later = {9: 5.0, **scheduler._push_later}  # another, due later, looked at first
        clock.t = 2.0
        scheduler._pushes_due(2.0)
        assert scheduler._push_later == {9: 5.0} and track.pushed and 7 in scheduler._urgent
        scheduler.notify(8)  # nobody waits on 8: a wait that starts soon is confirmed at once
        assert scheduler._pushed.pop(8) is not None and 8 not in scheduler._tracks
        del scheduler._tracks[7], scheduler._tracks[9]
        scheduler._push_later.clear()


@pytest.mark.parametrize("voice", [True, False])
async def test_a_voice_code_only_getstatusv2_shows_is_asked_for_on_a_voice_wait(voice: bool) -> None:
    """getStatus still says STATUS_WAIT_CODE when the code came by a call: a voice wait asks
    getStatusV2 for that activation (by its id) and takes the call's code; any other wait never asks."""
    asked: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        asked.append(params["action"])
        if params["action"] == "getStatus":
            return httpx.Response(200, text="STATUS_WAIT_CODE")
        assert params["action"] == "getStatusV2" and params["id"] == "4000000001"
        return httpx.Response(200, json={"verificationType": 2, "sms": None, "call": {
            "from": "79000000000", "text": "your code", "code": "24680", "dateTime": "2026-12-07 04:00:00"}})

    provider = Provider(name="plain", base_url="http://x/stubs/handler_api.php", has_active_activations=False,
                        rate_limit=None)
    async with SMSActivate("k", provider=provider, transport=httpx.MockTransport(server), poll_interval=0.05) as c:
        if voice:
            assert await c.wait_for_code(4000000001, timeout=2, voice=True, cancel_on_timeout=False) == "24680"
            assert asked.count("getStatusV2") == 1 and asked[-1] == "getStatusV2"
        else:
            with pytest.raises(WaitTimeoutError):
                await c.wait_for_code(4000000001, timeout=0.3, cancel_on_timeout=False)
            assert "getStatusV2" not in asked and asked.count("getStatus") >= 2


def test_the_code_book_keeps_every_code_handed_out_until_retention_or_close() -> None:
    """Found by mutmut over _waiting: a code once handed out is never news again — all of them, not the
    last one only — and an activation's record goes ``retention`` seconds after it was last touched."""
    from smsactivate_async._waiting import CodeBook

    clock = FakeClock()
    book = CodeBook(clock, retention=100.0)
    book.mark(1, "111")
    book.mark(1, "222")  # after status 3: the first is still not news
    book.mark(2, "333")
    assert book.seen(1) == {"111", "222"} and book.seen(2) == {"333"} and len(book) == 2
    clock.t = 100.0
    book.mark(3, "444")  # 1 and 2 are exactly 100 s old: kept
    assert len(book) == 3
    clock.t = 100.5
    book.mark(2, "555")  # touched again: kept with both its codes; 1 is older than retention: gone
    assert book.seen(1) == frozenset() and book.seen(2) == {"333", "555"} and len(book) == 2
    book.forget(2)
    assert book.seen(2) == frozenset() and len(book) == 1


@pytest.mark.parametrize("provider", ["sms-activate", "herosms"])
async def test_a_number_cancelled_at_the_server_ends_the_wait_with_what_happened(provider: str) -> None:
    """Found by mutmut over _waiting: a getStatus that says STATUS_CANCEL ends the waits with an
    ActivationCancelledError naming the activation, its code and the action that saw it — whether the
    tick swept one answer (the classic listing) or compared pages of rows (HeroSMS's: ``_compare``'s
    number gone from the list)."""
    from smsactivate_async import ActivationCancelledError
    from smsactivate_async.simulator._core import ActivationState

    sim = Simulator(provider=provider, early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, provider=provider, transport=sim.transport(), rate_limit=None,
                           poll_interval=0.05, early_cancel_window=0) as client:
        number = await client.get_number_v2(service="tg", country=2 if provider == "herosms" else 0)
        sim.activations[number.activation_id].state = ActivationState.CANCELLED  # closed by someone else
        with pytest.raises(ActivationCancelledError) as info:
            await client.wait_for_code(number.activation_id, timeout=5)
    error = info.value
    assert error.code == "STATUS_CANCEL" and error.action == "getStatus"
    assert error.message == f"activation {number.activation_id} was cancelled (or finished) while waiting for a code"


async def test_a_code_an_exact_row_carries_costs_no_getstatus() -> None:
    """Found by mutmut over _waiting: where the provider's getActiveActivations row carries the code as
    one string (``codes_from_rows``, the classic preset), the scan hands it over; no getStatus is asked."""
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=0.05,
                           early_cancel_window=0) as client:
        assert client.provider.codes_from_rows
        number = await client.get_number_v2(service="tg", country=0)
        sim.deliver_sms(number.activation_id, "Your code is 864200")
        assert await client.wait_for_code(number.activation_id, timeout=5) == "864200"
        await client.set_status(number.activation_id, 6)
        assert client._get_scheduler().row_deliveries == 1
    assert sim.ledger.requests_for("getStatus") == 0


async def test_a_tick_leaves_out_a_wait_that_has_ended_but_not_left_yet() -> None:
    """A waiter whose wait ended (a code from elsewhere) is out of the next tick even before its task
    has run to leave: its row is not delivered again, nor confirmed; once it has left, the count of
    such waiters is back to zero (the tick then takes every track as it is)."""
    sim = Simulator(codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=60.0) as client:
        first, second = [(await client.get_number_v2(service="tg", country=0)).activation_id for _ in range(2)]
        scheduler = client._get_scheduler()
        codes: dict[int, str] = {}

        async def wait(activation_id: int) -> None:
            codes[activation_id] = await client.wait_for_code(activation_id, timeout=600)

        async with anyio.create_task_group() as group:
            group.start_soon(wait, first)
            group.start_soon(wait, second)
            while scheduler.waiting < 2:
                await anyio.lowlevel.checkpoint()
            sim.deliver_sms(first, "code 1111", code="1111")
            sim.deliver_sms(second, "code 2222", code="2222")
            requests = len(sim.ledger.requests)
            scheduler.observe(first, code="1111")  # the caller's own getStatus read it, say
            assert scheduler._ended == 1
            await scheduler._tick()  # before the first waiter's task has run to leave
            assert scheduler.row_deliveries == 1  # the second's row alone
            assert [w.code for w in scheduler._tracks[second].waiters] == ["2222"]  # (its task has not run yet)
            assert [r.action for r in sim.ledger.requests[requests:]] == ["getActiveActivations"]
        assert codes == {first: "1111", second: "2222"}
        assert scheduler._ended == 0 and scheduler.waiting == 0


@pytest.mark.parametrize(("waited", "pages"), [(0, 1), (149, 2)])
async def test_a_tick_reads_the_pages_of_the_listing_until_every_waited_activation_is_seen(waited: int, pages: int) -> None:
    """A paged listing (HeroSMS: 100 rows a page) is read until every waited activation has been seen,
    not to its end: waiting on the first of 150 costs one page a tick, on the last two."""
    sim = Simulator(provider="herosms", codes=CodeSchedule.never())
    sim.set_stock("tg", 2, 1000)
    async with SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(), rate_limit=None,
                           poll_interval=600.0) as client:
        bought = [(await client.get_number_v2(service="tg", country=2)).activation_id for _ in range(150)]
        scheduler = client._get_scheduler()
        async with anyio.create_task_group() as group:
            group.start_soon(functools.partial(client.wait_for_code, bought[waited], timeout=600))
            while scheduler.waiting < 1:
                await anyio.lowlevel.checkpoint()
            before = sim.ledger.requests_for("getActiveActivations")
            await scheduler._tick()
            assert sim.ledger.requests_for("getActiveActivations") - before == pages
            group.cancel_scope.cancel()


def _listing_server(row: dict[str, object], asked: list[str]) -> httpx.MockTransport:
    """A provider whose listing always holds ``row`` for activation 4000000001 and whose getStatus always
    says it is still waiting: what the tick asks of it is what it makes of the row."""

    def server(request: httpx.Request) -> httpx.Response:
        action = request.url.params["action"]
        asked.append(action)
        if action == "getActiveActivations":
            return httpx.Response(200, json={"status": "success", "activeActivations": [
                {"activationId": "4000000001", "serviceCode": "tg", "phoneNumber": "79000000000",
                 "activationCost": "10.00", "activationTime": "2026-12-07 04:00:00", **row}]})
        assert action == "getStatus"
        return httpx.Response(200, text="STATUS_WAIT_CODE")

    return httpx.MockTransport(server)


@pytest.mark.parametrize(("trusted", "row", "handed_out", "confirms"), [
    (False, {"activationStatus": "2", "smsCode": None}, (), 1),  # a code came that the row does not show
    (False, {"activationStatus": "4", "smsCode": ["1234"]}, (), 1),  # a code under a waiting status
    (False, {"activationStatus": "4", "smsCode": None}, (), 0),  # nothing new: no request
    (False, {"activationStatus": "4", "smsCode": ["1234"]}, ("1234",), 0),  # a code handed out already
    (False, {"activationStatus": "4", "smsCode": ["5678"]}, ("1234",), 1),  # another one after it
    (False, {"activationStatus": "8", "smsCode": None}, (), 1),  # closed: ask how
    (False, {"activationStatus": "6", "smsCode": None}, (), 1),
    (True, {"activationStatus": "3", "smsCode": "1234"}, (), 1),  # after status 3 the row's code may be the old one
])
async def test_a_tick_confirms_a_row_that_says_something_new_once_and_no_other(
        trusted: bool, row: dict[str, object], handed_out: tuple[str, ...], confirms: int) -> None:
    """Found by mutmut over _waiting (Scheduler._tick): a row is confirmed by getStatus when it shows a
    code not handed out yet, status 2 (code received) or a closed status; a row the provider's rows may
    speak for (``codes_from_rows``) is taken at its word except under status 3; a quiet row costs
    nothing; and a row seen once is not confirmed again at the next ticks while it stays the same."""
    asked: list[str] = []
    provider = Provider(name="plain", base_url="http://x/stubs/handler_api.php", rate_limit=None,
                        codes_from_rows=trusted)
    async with SMSActivate("k", provider=provider, transport=_listing_server(row, asked), poll_interval=600.0) as c:
        scheduler = c._get_scheduler()
        for code in handed_out:
            scheduler.codes.mark(4000000001, code)
        async with anyio.create_task_group() as group:
            group.start_soon(functools.partial(c.wait_for_code, 4000000001, timeout=600, cancel_on_timeout=False))
            with anyio.fail_after(5):
                while scheduler.waiting < 1:
                    await anyio.lowlevel.checkpoint()
            await anyio.sleep(0.05)  # the poller's first tick (the waiter may have come just after it) has ended
            ticks, listings = scheduler.ticks, asked.count("getActiveActivations")
            for _ in range(2):
                await scheduler._tick()  # the row again: nothing new, at the latest the second time
            assert scheduler.ticks == ticks + 2 and asked.count("getActiveActivations") == listings + 2
            assert asked.count("getStatus") == confirms
            assert scheduler.row_deliveries == 0
            group.cancel_scope.cancel()


async def test_codes_handed_over_from_rows_are_journaled_and_counted(tmp_path: Path) -> None:
    """Found by mutmut over _waiting (Scheduler._tick): a code the row carries is written to the journal
    under its activation at once — a restart then hands it over without asking again — and each row's
    delivery is counted."""
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=600.0,
                           store=f"sqlite:///{tmp_path / 'journal.db'}", early_cancel_window=0) as client:
        bought = [(await client.get_number_v2(service="tg", country=0)).activation_id for _ in range(2)]
        scheduler = client._get_scheduler()
        codes: dict[int, str] = {}

        async def wait(activation_id: int) -> None:
            codes[activation_id] = await client.wait_for_code(activation_id, timeout=600)

        async with anyio.create_task_group() as group:
            for activation_id in bought:
                group.start_soon(wait, activation_id)
            while scheduler.waiting < 2:
                await anyio.lowlevel.checkpoint()
            for n, activation_id in enumerate(bought):
                sim.deliver_sms(activation_id, f"code {n}{n}{n}{n}", code=f"{n}{n}{n}{n}")
            await scheduler._tick()
        assert codes == {bought[0]: "0000", bought[1]: "1111"}
        assert scheduler.row_deliveries == 2
        entries = {e.id: e for e in await client._store.open_entries()}
        assert {i: (entries[i].kind, entries[i].code) for i in bought} == {
            bought[0]: ("activation", "0000"), bought[1]: ("activation", "1111")}
    assert sim.ledger.requests_for("getStatus") == 0


class _Timed:
    def __init__(self, deadline: float, *, done: bool = False) -> None:
        self.deadline, self.done, self.woken = deadline, done, False
        self.wake = self

    def set(self) -> None:
        self.woken = True


def _heap_of(live: int, left: int, ended: int = 0) -> tuple[Deadlines[_Timed], list[_Timed]]:
    """A deadline heap of ``live`` waiters still registered, ``left`` that left early (unregistered, not
    done) and ``ended`` done but still registered; the watcher not started (nobody active)."""
    waiters = [_Timed(100.0 + n) for n in range(live)]
    gone = [_Timed(200.0 + n) for n in range(left)]
    finished = [_Timed(300.0 + n, done=True) for n in range(ended)]
    registered = {id(w) for w in waiters + finished}
    deadlines: Deadlines[_Timed] = Deadlines(FakeClock(), None, active=lambda: False,  # type: ignore[arg-type]
                                             registered=lambda w: id(w) in registered)
    for waiter in waiters + gone + finished:
        deadlines.add(waiter)
    return deadlines, waiters


@pytest.mark.parametrize(("live", "left", "ended", "after"), [
    (0, 64, 0, 64),  # 64 leftovers: kept (the heap stays small; pruning costs a pass over it)
    (0, 65, 0, 0),  # past 64, and more than twice the live ones: every leftover goes
    (20, 45, 0, 20),
    (30, 45, 0, 30),  # 75 > 2 * 30
    (20, 30, 15, 20),  # a wait that ended goes too, though its waiter has not left yet
    (40, 40, 0, 80),  # exactly twice the live ones: kept
    (60, 40, 0, 100),  # fewer than twice: kept
])
def test_the_deadline_heap_drops_leftovers_once_they_outnumber_the_live_waiters(
        live: int, left: int, ended: int, after: int) -> None:
    """Found by mutmut over _deadlines: ``prune(live)`` rebuilds the heap without the waiters that left
    or ended only when it holds more than 64 entries and more than twice the live ones; the live ones
    always stay, in deadline order."""
    deadlines, waiters = _heap_of(live, left, ended)
    deadlines.prune(live)
    assert len(deadlines) == after
    if after == live:
        deadlines.expire(1000.0)
        assert all(w.woken for w in waiters)
        assert len(deadlines) == 0


def test_the_deadline_heap_wakes_each_waiter_at_its_deadline_and_not_before() -> None:
    deadlines, waiters = _heap_of(3, 0)
    deadlines.expire(100.5)
    assert [w.woken for w in waiters] == [True, False, False] and len(deadlines) == 2
    deadlines.expire(102.0)  # exactly at its deadline
    assert all(w.woken for w in waiters) and len(deadlines) == 0


async def test_closing_the_scheduler_ends_every_wait_and_refuses_new_ones_until_reopened() -> None:
    """Found by mutmut over _waiting (Scheduler.close): each wait ends with a ClientClosedError that
    names the activation and says it is still open; a wait begun after it is refused at once, one begun
    after ``reopen()`` waits again."""
    from smsactivate_async import ClientClosedError

    sim = Simulator(codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=600.0) as client:
        activation_id = (await client.get_number_v2(service="tg", country=0)).activation_id
        scheduler = client._get_scheduler()
        errors: list[ClientClosedError] = []

        async def wait() -> None:
            with pytest.raises(ClientClosedError) as info:
                await client.wait_for_code(activation_id, timeout=600, cancel_on_timeout=False)
            errors.append(info.value)

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            with anyio.fail_after(5):
                while scheduler.waiting < 1:
                    await anyio.lowlevel.checkpoint()
            scheduler.close()
        [error] = errors
        assert scheduler.closed is True and scheduler.waiting == 0
        assert error.message == (f"the client was closed while waiting for activation {activation_id}: the number is "
                                 "still open and not refunded (close it with set_status(id, 8) from a client that is "
                                 "open, or let it expire; a persistent journal's recover() closes it)")
        assert (error.activation_id, error.outcome, error.reason, error.action) == (
            activation_id, "left_open", "closing", "getStatus")
        with pytest.raises(ClientClosedError) as refused:
            await scheduler.wait(activation_id, timeout=600, poll_interval=None)
        assert (refused.value.message, refused.value.action) == ("the client is closed", "getStatus")
        scheduler.reopen()
        with pytest.raises(WaitTimeoutError):
            await scheduler.wait(activation_id, timeout=0.05, poll_interval=0.01)


async def test_a_wait_begun_after_a_push_for_its_number_is_confirmed_at_once() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler._register``): a push for a number nobody
    waited on yet is remembered, and the wait that begins on it is confirmed at once (urgent, its push
    taken) — not at the next scan; a wait on another number is not."""
    client, _ = _scheduler(poll_interval=2.0)
    async with client:
        scheduler = client._get_scheduler()
        scheduler.notify(8)  # nobody waits on 8 yet
        scheduler._register(_Waiter(9, 100.0, 2.0, frozenset()))
        assert 9 not in scheduler._urgent and not scheduler._tracks[9].pushed
        scheduler._register(_Waiter(8, 100.0, 2.0, frozenset()))
        assert 8 in scheduler._urgent and scheduler._tracks[8].pushed is True
        assert scheduler._pushed.pop(8) is None  # taken by that wait, not left for another
        scheduler.close()


@pytest.mark.parametrize(("page_size", "listing", "costs"), [
    (100, True, [1, 1, 1, 2, 3]),  # a paged listing: a page per hundred waited, one at least
    (None, True, [1, 1, 1, 1, 1]),  # one answer holds every row
    (100, False, [0, 1, 100, 101, 250]),  # no listing: a getStatus per waited activation
])
def test_a_tick_costs_the_pages_of_the_listing_or_a_getstatus_per_activation(
        page_size: int | None, listing: bool, costs: list[int]) -> None:
    """What the poll budget is told a tick costs (``_tick_cost``, ``_pages``): the adaptive interval and
    the fleet poller's pace both follow it."""
    provider = Provider(name="paged", base_url="https://example.invalid/stubs/handler_api.php",
                        page_size=page_size, has_active_activations=listing)
    client = SMSActivate("k", provider=provider, transport=Simulator().transport(), rate_limit=None)
    scheduler = client._get_scheduler()
    seen = []
    for waited in (0, 1, 100, 101, 250):
        scheduler._tracks = {i: _Track(i) for i in range(waited)}
        seen.append(scheduler._tick_cost())
    assert seen == costs
    assert [scheduler._pages(rows) for rows in (0, 1, 100, 101, 250)] == ([1, 1, 1, 2, 3] if page_size else [1] * 5)


def test_the_fleets_poller_paces_on_the_pages_of_the_whole_accounts_listing() -> None:
    """The fleet's poller scans every row of the account, not only its own waits: the budget is told
    the pages of the account's listing (250 rows: 3 pages of 100), so it ticks at 3 / (0.25 * 8) s."""
    provider = Provider(name="paged", base_url="https://example.invalid/stubs/handler_api.php", page_size=100)
    client = SMSActivate("k", provider=provider, transport=Simulator().transport(), rate_limit=8.0, poll_interval=5.0)
    scheduler = client._get_scheduler()
    scheduler._tracks = {1: _Track(1)}
    assert scheduler._interval() == pytest.approx(0.5)  # its own one page: the floor (min_poll_interval)
    scheduler._leading, scheduler._account_rows = True, 250
    assert scheduler._interval() == pytest.approx(1.5)
    assert scheduler._interval(adaptive=False) == 5.0  # the longest: the configured interval


async def test_a_waiter_that_leaves_takes_its_interval_and_its_numbers_pending_confirmations_with_it() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler._leave``): a waiter polling faster than
    the others sets the pace only while it waits, and a number's last waiter to leave takes its urgent
    and held-back confirmations with it (none is sent, none wakes the poller, none is kept)."""
    client, _ = _scheduler(poll_interval=2.0)
    async with client:
        scheduler = client._get_scheduler()
        fast, slow, other = (_Waiter(7, 100.0, 0.5, frozenset()), _Waiter(7, 100.0, 2.0, frozenset()),
                             _Waiter(8, 100.0, 2.0, frozenset()))
        for waiter in (fast, slow, other):
            scheduler._register(waiter)
        assert dict(scheduler._intervals) == {0.5: 1, 2.0: 2} and scheduler._interval(adaptive=False) == 0.5
        scheduler._leave(fast)
        assert dict(scheduler._intervals) == {2.0: 2} and scheduler._interval(adaptive=False) == 2.0
        scheduler._urgent.add(8)
        scheduler._push_later[8] = 50.0
        scheduler._leave(other)
        assert 8 not in scheduler._tracks and 8 not in scheduler._urgent and 8 not in scheduler._push_later
        scheduler._leave(slow)
        assert dict(scheduler._intervals) == {} and scheduler.waiting == 0 and not scheduler._tracks
        scheduler.close()


async def test_a_wait_begun_after_a_push_wakes_a_poller_that_sleeps_until_its_next_tick() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler._register``): a wait on a number pushed
    before anyone waited on it is confirmed at once even while the poller sleeps out a long interval
    for the other waits — it is woken now, not at the new waiter's own next tick."""
    sim = Simulator(codes=CodeSchedule.never())
    client = SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=60.0,
                         clock=FakeClock())
    async with client, anyio.create_task_group() as group:
        scheduler = client._get_scheduler()
        first = (await client.get_number_v2(service="tg", country=0)).activation_id
        pushed = (await client.get_number_v2(service="tg", country=0)).activation_id
        group.start_soon(functools.partial(scheduler.wait, first, 600.0, None))
        with anyio.fail_after(5):
            while sim.ledger.requests_for("getActiveActivations") < 1:  # noqa: ASYNC110 (the ledger's count)
                await anyio.sleep(0.01)
        await anyio.sleep(0.05)  # the poller now sleeps until its next tick, 60 s of the event loop's time
        scheduler.notify(pushed)  # nobody waits on it yet
        asked = sim.ledger.requests_for("getStatus")
        group.start_soon(functools.partial(scheduler.wait, pushed, 600.0, None))
        with anyio.fail_after(5):
            while sim.ledger.requests_for("getStatus") == asked:  # noqa: ASYNC110 (the ledger's count)
                await anyio.sleep(0.01)
        group.cancel_scope.cancel()


async def test_a_deferred_cancel_due_at_this_very_moment_is_carried_out_without_the_clock_moving() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler._step``): a kept cancel due exactly now
    is due — the poller carries it out, rather than sleep zero seconds again and again until a clock
    that moves only when asked to (an injected one, a virtual one) moves."""
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    clock = FakeClock()
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, clock=clock,
                           early_cancel_window=0) as client:
        activation_id = (await client.get_number_v2(service="tg", country=0)).activation_id
        clock.t = 100.0
        client._get_scheduler().cancels._keep(activation_id, 100.0)
        with anyio.fail_after(5):
            while sim.activations[activation_id].state is not ActivationState.CANCELLED:  # noqa: ASYNC110 (the simulator's state)
                await anyio.sleep(0.01)
        assert clock.t == 100.0 and client._get_scheduler().pending_cancels == []


async def test_a_push_held_back_is_confirmed_when_due_while_webhooks_slow_the_polling_down() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler._step``): while webhooks arrive the poller
    ticks at their fallback interval (here 30 s), yet a push held back for its number's next confirmation
    (a waiter's own interval, 0.2 s, away) is confirmed then — the poller sleeps until it, not the tick."""
    sim = Simulator(codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None) as client, \
            anyio.create_task_group() as group:
        scheduler = client._get_scheduler()
        activation_id = (await client.get_number_v2(service="tg", country=0)).activation_id
        scheduler.fallback_interval = 30.0
        scheduler.push_borne_out()  # webhooks work: the poller ticks every 30 s
        group.start_soon(functools.partial(scheduler.wait, activation_id, 60.0, 0.2))

        async def confirmed(times: int) -> None:
            with anyio.fail_after(2):
                while sim.ledger.requests_for("getStatus") < times or scheduler._tracks[activation_id].pushed:  # noqa: ASYNC110
                    await anyio.sleep(0.01)

        with anyio.fail_after(2):
            while scheduler.ticks < 1:  # noqa: ASYNC110 (the first tick, at once)
                await anyio.sleep(0.01)
        for times in (1, 2):  # the two confirmations a number has at once
            scheduler.notify(activation_id)
            await confirmed(times)
        scheduler.notify(activation_id)  # none left: held back 0.2 s
        assert activation_id in scheduler._push_later and scheduler.pushes_coalesced == 1
        await confirmed(3)
        assert scheduler.ticks == 1
        group.cancel_scope.cancel()


async def test_a_wait_outlived_by_many_that_left_early_still_times_out_on_time() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``_registered``): once the waits that left early
    outnumber the live ones, the deadline heap drops their leftovers — and keeps every wait still
    registered, which times out on time (dropped, it would wait on past its timeout)."""
    sim = Simulator(codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=600.0) as client:
        scheduler = client._get_scheduler()
        ids = [(await client.get_number_v2(service="tg", country=0)).activation_id for _ in range(71)]
        timed_out: list[WaitTimeoutError] = []

        async def survivor() -> None:
            try:
                await scheduler.wait(ids[0], 1.0, None)
            except WaitTimeoutError as exc:
                timed_out.append(exc)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(survivor)
                async with anyio.create_task_group() as leavers:
                    for activation_id in ids[1:]:
                        leavers.start_soon(functools.partial(scheduler.wait, activation_id, 600.0, None))
                    while scheduler.waiting < 71:  # noqa: ASYNC110 (a count, not an event)
                        await anyio.sleep(0.01)
                    leavers.cancel_scope.cancel()  # 70 leave early
                assert scheduler.waiting == 1 and len(scheduler.deadlines) < 71  # their leftovers dropped
        assert len(timed_out) == 1 and timed_out[0].activation_id == ids[0]


async def test_a_push_confirmed_in_its_turn_leaves_nothing_to_confirm_again() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler._confirm``): a confirmation that found
    nothing clears the "pushed again meanwhile" mark — the next push's confirmation is the only one it
    costs, not followed by one more (held back out of the number's two, for nothing)."""
    sim = Simulator(codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=600.0) as client, \
            anyio.create_task_group() as group:
        scheduler = client._get_scheduler()
        activation_id = (await client.get_number_v2(service="tg", country=0)).activation_id
        group.start_soon(functools.partial(scheduler.wait, activation_id, 600.0, None))
        with anyio.fail_after(2):
            while scheduler.ticks < 1:  # noqa: ASYNC110 (the first tick, at once)
                await anyio.sleep(0.01)
        for times in (1, 2):
            scheduler.notify(activation_id)
            with anyio.fail_after(2):
                while sim.ledger.requests_for("getStatus") < times or scheduler._tracks[activation_id].pushed:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        assert sim.ledger.requests_for("getStatus") == 2
        assert scheduler._push_later == {} and scheduler.pushes_coalesced == 0
        assert scheduler._tracks[activation_id].push_again is False
        group.cancel_scope.cancel()


async def test_a_wakeup_set_before_its_wait_is_not_lost() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``_Wakeup.set``): a waiter woken before it waits (its
    code came while it was busy) returns at once; one woken while it waits returns then."""
    early = _Wakeup()
    early.set()
    assert early.is_set()
    with anyio.fail_after(1):
        await early.wait()
    late = _Wakeup()
    async with anyio.create_task_group() as group:
        group.start_soon(late.wait)
        await anyio.sleep(0.01)
        assert not late.is_set()
        late.set()
    assert late.is_set()


async def test_a_code_goes_to_each_waiter_that_has_not_seen_it_and_to_no_other() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler.observe``): of three waits on one number —
    one ended with a code and not left yet, one that was given this code before, one waiting — only the
    last takes the code; the ended one keeps its own, and each ended wait is counted once."""
    client, _ = _scheduler()
    async with client:
        scheduler = client._get_scheduler()
        ended, seen, waiting = (_Waiter(7, 100.0, 2.0, frozenset()), _Waiter(7, 100.0, 2.0, frozenset({"2222"})),
                                _Waiter(7, 100.0, 2.0, frozenset()))
        for waiter in (ended, seen, waiting):
            scheduler._register(waiter)
        scheduler.observe(7, code="1111")
        assert [w.code for w in (ended, seen, waiting)] == ["1111", "1111", "1111"] and scheduler._ended == 3
        seen.code, waiting.code, scheduler._ended = None, None, 1  # (as if only the first had one)
        scheduler.observe(7, code="2222")
        assert [w.code for w in (ended, seen, waiting)] == ["1111", None, "2222"] and scheduler._ended == 2
        scheduler.close()


def test_a_push_borne_out_slows_the_polling_to_the_webhooks_fallback_until_they_stop() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``push_borne_out``: the rent poller's call when a
    rent's push is borne out): from then on, for twice the fallback interval, pushes count as arriving
    and the polling slows to the fallback; ``pushes_stopped`` ends that at once."""
    client, clock = _scheduler(poll_interval=2.0)
    scheduler = client._get_scheduler()
    scheduler.fallback_interval = 30.0
    scheduler._tracks[7] = _Track(7)
    assert not scheduler.pushes_arriving and scheduler._interval() == 2.0
    clock.t = 5.0
    scheduler.push_borne_out()
    assert scheduler.pushes_arriving and scheduler._interval() == 30.0
    clock.t = 5.0 + 59.0
    assert scheduler.pushes_arriving
    clock.t = 5.0 + 60.0
    assert not scheduler.pushes_arriving and scheduler._interval() == 2.0
    scheduler.push_borne_out()
    del scheduler._tracks[7]  # (nobody waits: the poller is not woken)
    scheduler.pushes_stopped()
    assert not scheduler.pushes_arriving


async def test_every_new_code_of_a_number_is_counted_once() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler.observe``): each code handed to the
    waiters is news under its number — the second code of one number counted too, a code seen again
    not counted again."""
    sim = Simulator(codes=CodeSchedule.never())
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=600.0) as client:
        scheduler = client._get_scheduler()
        activation_id = (await client.get_number_v2(service="tg", country=0)).activation_id
        for code in ("1111", "1111", "2222"):
            scheduler.observe(activation_id, code=code)
        assert client.stats.codes == 2


async def test_a_push_that_only_a_calls_code_bears_out_counts_as_webhooks_arriving() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler._confirm``): a push confirmed on a voice
    wait whose code only getStatusV2 shows (the call's) is borne out — webhooks count as working, and
    the polling may slow to their fallback — as one whose code getStatus shows."""

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.params["action"] == "getStatus":
            return httpx.Response(200, text="STATUS_WAIT_CODE")
        return httpx.Response(200, json={"verificationType": 2, "sms": None, "call": {
            "from": "79000000000", "text": "your code", "code": "24680", "dateTime": "2026-12-07 04:00:00"}})

    provider = Provider(name="plain", base_url="http://x/stubs/handler_api.php", has_active_activations=False,
                        rate_limit=None)
    async with SMSActivate("k", provider=provider, transport=httpx.MockTransport(server), poll_interval=600.0) as c:
        scheduler = c._get_scheduler()
        waiter = _Waiter(4000000001, 1e9, 600.0, frozenset(), True)
        track = scheduler._tracks[4000000001] = _Track(4000000001)
        track.waiters.append(waiter)
        track.pushed = True  # a push for it is being confirmed (no poller involved: nothing registered)
        await scheduler._confirm(track)
        assert waiter.code == "24680" and track.pushed is False
        assert scheduler._last_push > float("-inf")
        del scheduler._tracks[4000000001]


async def test_a_second_wait_on_a_number_never_hands_over_the_code_the_first_took() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler.wait``: the code book told of each code
    handed out): a number's listing row still shows the code a first wait took; a second wait on it
    waits for the next code, not that one again."""
    sim = Simulator(codes=CodeSchedule.never(), early_cancel_seconds=0)
    async with SMSActivate(sim.api_key, transport=sim.transport(), rate_limit=None, poll_interval=0.05,
                           early_cancel_window=0) as client:
        activation_id = (await client.get_number_v2(service="tg", country=0)).activation_id
        sim.deliver_sms(activation_id, "code 1111", code="1111")
        assert await client.wait_for_code(activation_id, timeout=5) == "1111"
        with pytest.raises(WaitTimeoutError):
            await client.wait_for_code(activation_id, timeout=0.5, cancel_on_timeout=False)
        sim.deliver_sms(activation_id, "code 2222", code="2222")
        assert await client.wait_for_code(activation_id, timeout=5) == "2222"


def test_pushes_for_numbers_nobody_waits_on_are_remembered_up_to_ten_thousand() -> None:
    """Found by mutmut over ``_waiting`` (issue 37, ``Scheduler.__init__``): a flood of pushes for numbers
    nobody waits on (forged ones, most likely) is remembered up to 10 000 — the newest — not 100 000."""
    client, _ = _scheduler()
    scheduler = client._get_scheduler()
    for activation_id in range(1, 12_001):
        scheduler.notify(activation_id)
    assert len(scheduler._pushed) == 10_000
    assert 12_000 in scheduler._pushed and 2_000 not in scheduler._pushed
