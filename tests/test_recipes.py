"""The framework recipes, driven for real: the aiogram v3 bot through its Dispatcher (startup and
shutdown hooks, one task per update), the FastAPI service through its lifespan and HTTP. Only the
outside world is simulated: Telegram by a recording bot session, the provider by the simulator."""

from __future__ import annotations

import datetime as dt
import importlib
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from smsactivate_async import SMSActivate
from smsactivate_async.simulator import ActivationState, CodeSchedule, LoopSimClock, Simulator

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.anyio

aiogram = pytest.importorskip("aiogram")
fastapi = pytest.importorskip("fastapi")


@pytest.fixture(autouse=True)
def _examples_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))


# --- aiogram --------------------------------------------------------------------------------------


def _recording_bot() -> tuple[Any, list[tuple[int, str]]]:
    from aiogram import Bot
    from aiogram.client.session.base import BaseSession
    from aiogram.methods import SendMessage
    from aiogram.types import Chat, Message

    sent: list[tuple[int, str]] = []

    class RecordingSession(BaseSession):
        """Telegram, as far as the bot can tell: every sendMessage recorded and answered."""

        async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
            assert isinstance(method, SendMessage)
            sent.append((int(method.chat_id), str(method.text)))
            return Message(message_id=len(sent), date=dt.datetime.now(dt.UTC), text=method.text,
                           chat=Chat(id=int(method.chat_id), type="private"))

        async def close(self) -> None:
            return None

        def stream_content(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    return Bot("123456:TEST-TOKEN", session=RecordingSession()), sent


def _update(update_id: int, user: int, text: str) -> Any:
    from aiogram.types import Chat, Message, MessageEntity, Update, User

    return Update(update_id=update_id, message=Message(
        message_id=update_id, date=dt.datetime.now(dt.UTC), text=text,
        chat=Chat(id=user, type="private"), from_user=User(id=user, is_bot=False, first_name=f"user{user}"),
        entities=[MessageEntity(type="bot_command", offset=0, length=len(text))]))


def _aiogram_bot(monkeypatch: pytest.MonkeyPatch, sim: Simulator, **options: Any) -> Any:
    """The recipe's module loaded afresh (a router of its own, as in a new process), its client pointed
    at the simulator (key and settings: the recipe's startup hook itself is run)."""
    bot_module = importlib.reload(importlib.import_module("aiogram_bot"))
    bot_module.numbers.clear()
    monkeypatch.setenv("SMSACTIVATE_API_KEY", sim.api_key)
    monkeypatch.setattr(bot_module, "SMS_OPTIONS", {"provider": "herosms", "transport": sim.transport(),
                                                    "poll_interval": 0.05, "rate_limit": None, **options})
    return bot_module


async def test_aiogram_bot_fifty_users_some_cancel_some_time_out(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), early_cancel_seconds=0, clock=LoopSimClock())
    # the recipe's own startup hook, on the simulator (no journal: nothing to suspend)
    monkeypatch.delenv("SMSACTIVATE_STORE", raising=False)
    bot_module = _aiogram_bot(monkeypatch, sim, early_cancel_window=0)
    monkeypatch.setattr(bot_module, "WAIT_SECONDS", 1.5)
    dispatcher = bot_module.make_dispatcher()
    bot, sent = _recording_bot()
    users = list(range(1001, 1051))
    cancelling, silent = set(users[:10]), set(users[10:20])

    await dispatcher.emit_startup(bot=bot, dispatcher=dispatcher)
    client: SMSActivate = dispatcher["sms"]
    async with anyio.create_task_group() as group:
        for index, user in enumerate(users):
            group.start_soon(dispatcher.feed_update, bot, _update(index, user, "/buy"))
        with anyio.fail_after(5):
            while len(bot_module.numbers) < len(users):  # noqa: ASYNC110 (the bot's own state, polled)
                await anyio.sleep(0.01)
        for index, user in enumerate(sorted(cancelling)):
            group.start_soon(dispatcher.feed_update, bot, _update(100 + index, user, "/cancel"))
        await anyio.sleep(0.2)
        for user in users:
            if user not in cancelling | silent:
                handle = bot_module.numbers[user]
                sim.deliver_sms(handle.activation_id, f"Telegram code {user}", code=str(user))
    started = anyio.current_time()
    await dispatcher.emit_shutdown(bot=bot, dispatcher=dispatcher)
    assert anyio.current_time() - started < 2.0  # shutdown within its bound

    said: dict[int, list[str]] = {}
    for chat, text in sent:
        said.setdefault(chat, []).append(text)
    for user in users:
        assert said[user][0].startswith("Your number: +"), said[user]
        if user in cancelling:
            assert said[user][1:] == ["The number was cancelled; its cost is refunded."], said[user]
        elif user in silent:
            assert said[user][1:] == ["No code came. The number was cancelled; its cost is refunded."], said[user]
        else:
            assert said[user][1:] == [f"Your code: {user}"], said[user]
    states = [a.state for a in sim.activations.values()]
    assert len(states) == 50 and sim.open_activations() == []
    assert states.count(ActivationState.FINISHED) == 30 and states.count(ActivationState.CANCELLED) == 20
    assert not client._host.running and not bot_module.numbers


async def test_aiogram_bot_restarted_sends_each_suspended_users_code(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    """Issue 39 item 5, the aiogram recipe: with a journal, a restart of the bot with numbers waiting
    suspends them (each user told the code will come), the next start resumes them, and each user
    gets their code — one that came while no bot ran included. Nothing cancelled, nothing left open."""
    sim = Simulator(provider="herosms", codes=CodeSchedule.never(), early_cancel_seconds=0, clock=LoopSimClock())
    monkeypatch.setenv("SMSACTIVATE_STORE", f"sqlite:///{tmp_path / 'bot.db'}")
    bot_module = _aiogram_bot(monkeypatch, sim)
    users = list(range(2001, 2006))
    bot, sent = _recording_bot()

    first = bot_module.make_dispatcher()
    await first.emit_startup(bot=bot, dispatcher=first)
    async with anyio.create_task_group() as group:
        for index, user in enumerate(users):
            group.start_soon(first.feed_update, bot, _update(index, user, "/buy"))
        with anyio.fail_after(5):
            while len(bot_module.numbers) < len(users):  # noqa: ASYNC110 (the bot's own state, polled)
                await anyio.sleep(0.01)
        ids = {user: bot_module.numbers[user].activation_id for user in users}
        sim.deliver_sms(ids[users[0]], "Telegram code 1", code="11111")  # before the restart
        with anyio.fail_after(5):
            while not any(text == "Your code: 11111" for _, text in sent):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        await first.emit_shutdown(bot=bot, dispatcher=first)  # the deploy: SIGTERM
    waiting = users[1:]
    for user in waiting:
        assert (user, "The bot is restarting; your number stays open and its code will come here after the "
                      "restart.") in sent
    assert len(sim.open_activations()) == len(waiting)  # suspended: open at the provider
    sim.deliver_sms(ids[waiting[0]], "Telegram code 2", code="22222")  # while no bot runs

    bot_module = _aiogram_bot(monkeypatch, sim)  # a new process: a new router, no numbers of its own
    second = bot_module.make_dispatcher()
    await second.emit_startup(bot=bot, dispatcher=second)
    client: SMSActivate = second["sms"]
    assert sorted(h.activation_id for h in client.resumed) == sorted(ids[user] for user in waiting)
    for user in waiting[1:]:
        sim.deliver_sms(ids[user], "Telegram code", code=str(user))
    with anyio.fail_after(5):
        for task in second["resumed"]:
            await task
    await second.emit_shutdown(bot=bot, dispatcher=second)
    assert (waiting[0], "Your code: 22222") in sent  # the code that came while no bot ran
    for user in waiting[1:]:
        assert (user, f"Your code: {user}") in sent
    states = [a.state for a in sim.activations.values()]
    assert states.count(ActivationState.FINISHED) == len(users) and sim.open_activations() == []


# --- FastAPI --------------------------------------------------------------------------------------


def test_fastapi_service_buy_now_wait_later_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two lifespans of one app (two TestClients): the module-level client reopens afresh."""
    from fastapi.testclient import TestClient

    sim = Simulator(provider="herosms", codes=CodeSchedule.fixed(0.2), early_cancel_seconds=0)
    monkeypatch.setenv("SMSACTIVATE_API_KEY", sim.api_key)
    sys.modules.pop("fastapi_service", None)
    service = importlib.import_module("fastapi_service")
    monkeypatch.setattr(service, "sms", SMSActivate(sim.api_key, provider="herosms", transport=sim.transport(),
                                                    poll_interval=0.05, early_cancel_window=0, rate_limit=None))
    for _ in range(2):
        with TestClient(service.app) as http:
            bought = [http.post("/numbers", json={"service": "tg", "country": 6}).json() for _ in range(5)]
            assert all(b["phone"] and b["state"] == "waiting" for b in bought)
            for number in bought:
                for _ in range(100):  # a caller polling our service, as a web page would
                    state = http.get(f"/numbers/{number['id']}").json()
                    if state["state"] == "finished":
                        break
                    time.sleep(0.02)
                assert state["code"] and state["state"] == "finished", state
            assert http.get("/numbers/123").status_code == 404
            assert http.post("/numbers", json={"service": "tg", "country": 999}).status_code in (400, 503)
    assert sim.open_activations() == []
