"""The discord.py recipe (examples/discord_bot.py), driven offline through the real discord.py
package: its app commands' callbacks are called as discord.py calls them, with a recorded fake
interaction (Discord itself is the only thing simulated; the provider is the simulator). Checked: every
interaction deferred before any request, 30 users at once, the truth told to each user — checked
against the simulator's state — when the bot closes mid-run, nothing bought while closing, and
follow-ups past Discord's 15 minutes sent as direct messages (issue 40)."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from smsactivate_async.simulator import ActivationState, CodeSchedule, Simulator

discord = pytest.importorskip("discord")
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _examples_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


class _HTTPResponse:
    """What discord.HTTPException reads of an HTTP response."""

    status, reason = 404, "Not Found"


class FakeInteraction:
    """An app-command interaction as the bot sees it: deferring, follow-ups (for 15 minutes), DMs."""

    def __init__(self, user_id: int, said: list[tuple[float, int, str]], *, age: float = 0.0) -> None:
        self.created = time.monotonic() - age
        self.said = said
        self.deferred_at: float | None = None
        interaction = self

        class User:
            id = user_id

            async def send(self, text: str) -> None:
                said.append((time.monotonic(), user_id, "DM: " + text))

        class Response:
            async def defer(self, *, thinking: bool = False, ephemeral: bool = False) -> None:
                assert interaction.deferred_at is None, "an interaction is answered once"
                interaction.deferred_at = time.monotonic()

        class Followup:
            async def send(self, text: str) -> None:
                assert interaction.deferred_at is not None, "a follow-up needs the deferral first"
                if time.monotonic() - interaction.created > 15 * 60:
                    raise discord.NotFound(_HTTPResponse(), "Unknown Webhook")
                said.append((time.monotonic(), user_id, text))

        self.user, self.response, self.followup = User(), Response(), Followup()


async def _run(bot: Any, name: str, interaction: FakeInteraction) -> None:
    command = bot.tree.get_command(name)
    await command.callback(command.binding, interaction)  # as discord.py's CommandTree calls it


async def test_thirty_users_then_the_bot_closes_mid_run_and_everyone_hears_the_truth(
        monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("discord_bot")
    monkeypatch.setattr(module, "WAIT_SECONDS", 30.0)
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), early_cancel_seconds=120)
    monkeypatch.setenv("SMSACTIVATE_API_KEY", sim.api_key)
    bot = module.SmsBot(provider="herosms", transport=sim.transport(), rate_limit=None, poll_interval=0.05,
                        early_cancel_window=120, close_timeout=0.5)
    await bot.setup_hook()
    said: list[tuple[float, int, str]] = []
    users = list(range(2001, 2031))
    interactions = {user: FakeInteraction(user, said) for user in users}
    started = time.monotonic()
    async with anyio.create_task_group() as group:
        for user in users:
            group.start_soon(_run, bot, "buy", interactions[user])
        with anyio.fail_after(10):
            while len(bot.numbers) < len(users):  # noqa: ASYNC110 (the bot's own state, polled)
                await anyio.sleep(0.01)
        codes = users[:20]
        for user in codes:
            sim.deliver_sms(bot.numbers[user], f"Telegram code {user}", code=str(user))
        with anyio.fail_after(10):
            while any(user in bot.numbers for user in codes):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        # the bot is stopped with 10 users still waiting; a /buy comes in while it closes
        late = FakeInteraction(9999, said)

        async def late_buy() -> None:
            await anyio.sleep(0.05)
            await _run(bot, "buy", late)

        group.start_soon(late_buy)
        await bot.close()
    for user in users:
        deferred = interactions[user].deferred_at
        assert deferred is not None and deferred - started < 1.0
    by_user: dict[int, list[str]] = {}
    for _, user, text in said:
        by_user.setdefault(user, []).append(text)
    for user in users:
        assert by_user[user][0].startswith("Your number: +"), by_user[user]
        activation_id = next(a.id for a in sim.activations.values() if a.phone in by_user[user][0])
        state = sim.activations[activation_id].state
        last = by_user[user][-1]
        if user in codes:
            assert last == f"Your code: {user}" and state is ActivationState.FINISHED
        else:
            # closed mid-wait: a cancel this early is refused, and in memory nobody makes it later —
            # the user must hear that the number is still open, not that it was cancelled
            assert state is ActivationState.WAIT_CODE, state
            assert last.startswith("The bot is restarting.") and "still open" in last and "refunded." not in last, last
    assert by_user[9999] == ["The bot is restarting; nothing was bought. Please try again in a minute."]
    assert len(sim.ledger.purchases) == len(users)  # nothing bought while closing


async def test_a_code_after_the_follow_up_window_goes_to_the_users_dms() -> None:
    module = importlib.import_module("discord_bot")
    said: list[tuple[float, int, str]] = []
    old = FakeInteraction(7, said, age=16 * 60)
    await old.response.defer()
    await module.tell(old, "Your code: 12345")
    assert [text for _, _, text in said] == ["DM: Your code: 12345"]


async def test_balance_and_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("discord_bot")
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), early_cancel_seconds=0)
    monkeypatch.setenv("SMSACTIVATE_API_KEY", sim.api_key)
    bot = module.SmsBot(provider="herosms", transport=sim.transport(), rate_limit=None, poll_interval=0.05,
                        early_cancel_window=0)
    await bot.setup_hook()
    said: list[tuple[float, int, str]] = []
    await _run(bot, "balance", FakeInteraction(1, said))
    async with anyio.create_task_group() as group:
        group.start_soon(_run, bot, "buy", FakeInteraction(1, said))
        with anyio.fail_after(5):
            while 1 not in bot.numbers:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        await _run(bot, "cancel", FakeInteraction(1, said))
    await _run(bot, "cancel", FakeInteraction(1, said))
    await bot.close()
    texts = [text for _, _, text in said]
    assert texts[0].startswith("Balance: ") and texts[1].startswith("Your number: +")
    assert "The number was cancelled; its cost is refunded." in texts
    assert texts[-1] == "You have no number waiting."
    assert all(a.state is ActivationState.CANCELLED for a in sim.activations.values())


async def test_with_a_journal_the_bot_suspends_at_shutdown_and_the_next_start_sends_the_codes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    module = importlib.import_module("discord_bot")
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), early_cancel_seconds=120)
    monkeypatch.setenv("SMSACTIVATE_API_KEY", sim.api_key)
    monkeypatch.setenv("SMSACTIVATE_STORE", f"sqlite:///{tmp_path / 'bot.db'}")
    options = {"provider": "herosms", "transport": sim.transport(), "rate_limit": None, "poll_interval": 0.05,
               "early_cancel_window": 120}
    said: list[tuple[float, int, str]] = []
    users = [3001, 3002, 3003, 3004]
    first = module.SmsBot(**options)
    await first.setup_hook()
    async with anyio.create_task_group() as group:
        for user in users:
            group.start_soon(_run, first, "buy", FakeInteraction(user, said))
        with anyio.fail_after(5):
            while len(first.numbers) < len(users):  # noqa: ASYNC110 (the bot's own state, polled)
                await anyio.sleep(0.01)
        numbers = dict(first.numbers)
        await first.close()  # a restart: the numbers are suspended, not cancelled
    assert all(sim.activations[i].state is ActivationState.WAIT_CODE for i in numbers.values())
    for user in users:
        assert [t for _, u, t in said if u == user][-1].startswith("The bot is restarting; your number stays open")
    for user in users[:2]:  # codes while the bot is down
        sim.deliver_sms(numbers[user], f"code {user}", code=str(user))

    second = module.SmsBot(**options)

    async def fetch_user(user_id: int) -> Any:
        return FakeInteraction(user_id, said).user

    monkeypatch.setattr(second, "fetch_user", fetch_user)
    await second.setup_hook()
    assert sorted(h.context for h in second.sms.resumed) == users
    for user in users[2:]:  # and after it is back
        sim.deliver_sms(numbers[user], f"code {user}", code=str(user))
    with anyio.fail_after(10):
        while len([t for _, _, t in said if t.startswith("DM: Your code")]) < len(users):  # noqa: ASYNC110
            await anyio.sleep(0.02)
    await second.close()
    for user in users:
        assert f"DM: Your code: {user}" in [t for _, u, t in said if u == user]
    assert all(sim.activations[i].state is ActivationState.FINISHED for i in numbers.values())
