"""Killed between receipt and reply: `python main.py run` as a real process, SIGKILLed.

Sends are held by the fake Bot API (the first reply is delivered, then never answered),
so the server has received, stored and (for some) processed updates, but not finished
replying, when it is killed. After a restart every update Telegram counts as delivered
(webhook answered 200, or polling offset confirmed) has had its effect once, and every
reply arrives; a message in flight at the kill may arrive twice, never more.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from storage import tables
from storage.tables_telegram import telegram_inbox, telegram_outbox
from tests.processes import free_port, start_server
from tests.telegram.fake_bot_api import TOKEN, FakeBotApi, FakeUser
from tests.telegram.harness import SECRET_KEY

HOOK_PATH = "/telegram/crash-hook"
HOOK_SECRET = "crash_secret_123"


def run_server(tmp_path: Path, api: FakeBotApi, mode: str, port: int) -> subprocess.Popen[bytes]:
    return start_server(
        tmp_path,
        tmp_path / f"server-{port}.log",
        BESAFE_DATA_DIR=str(tmp_path / "data"),
        BESAFE_PORT=str(port),
        BESAFE_SECRET_KEY=SECRET_KEY,
        BESAFE_TELEGRAM_TOKEN=TOKEN,
        BESAFE_TELEGRAM_API_URL=api.base_url,
        BESAFE_TELEGRAM_MODE=mode,
        BESAFE_TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}{HOOK_PATH}",
        BESAFE_TELEGRAM_WEBHOOK_PATH=HOOK_PATH,
        BESAFE_TELEGRAM_WEBHOOK_SECRET=HOOK_SECRET,
        BESAFE_TELEGRAM_RATE_PER_SECOND="0",
        BESAFE_TELEGRAM_CHAT_RATE_PER_SECOND="0",
        BESAFE_LOG_FORMAT="json",
    )


def count(url: str, table, where=None) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).select_from(table)
            if where is not None:
                query = query.where(where)
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_every_acknowledged_update_is_handled_after_a_kill(tmp_path: Path, mode: str) -> None:
    api = await FakeBotApi().start()
    port = free_port()
    url = f"sqlite:///{tmp_path / 'data' / 'besafe.db'}"
    ready_method = "getUpdates" if mode == "polling" else "setWebhook"
    server = run_server(tmp_path, api, mode, port)
    try:
        await api.wait_until(lambda: api.calls_to(ready_method), timeout=60, what="start-up")
        if mode == "webhook":
            await asyncio.sleep(0.2)  # the route answers once the channel is ready

        async def deliver(update: dict) -> None:
            if mode == "webhook":
                for _ in range(100):
                    status = await api.post_webhook(update)
                    if status != 503:
                        break
                    await asyncio.sleep(0.1)
                assert status == 200
            else:
                api.push_update(update)

        user = FakeUser(api, deliver=deliver)
        api.fail("sendMessage", "hold", times=1000)
        first = await user.command("start")
        await api.wait_until(
            lambda: api.calls_to("sendMessage", user.chat_id), timeout=30, what="first reply"
        )
        second = await user.command("help")
        if mode == "polling":
            await api.wait_until(
                lambda: api.confirmed_offset > second["update_id"], timeout=30, what="confirm"
            )
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        assert len(user.shown) == 1  # only the first message got out before the kill

        api.clear_failures()
        api.release()
        server = run_server(tmp_path, api, mode, port)
        # Greeting + menu for /start, and the help text for /help.
        await api.wait_until(lambda: len(user.shown) >= 3, timeout=60, what="replies")
        await asyncio.sleep(0.5)  # anything more (a duplicate) would be here by now
        texts = user.texts()
        greeting = texts[0]
        assert texts.count(greeting) <= 2  # in flight at the kill: at most one duplicate
        assert [t for t in texts if t != greeting] == [
            t for t in dict.fromkeys(texts) if t != greeting
        ]
        assert any("0800 1111" in text or "help" in text.lower() for text in texts[1:])
        delivered = {
            row
            for (row,) in create_engine(url)
            .connect()
            .execute(select(tables.processed_deliveries.c.delivery_id))
        }
        assert {str(first["update_id"]), str(second["update_id"])} <= delivered
        assert count(url, telegram_inbox) == 0
        assert count(url, telegram_outbox, telegram_outbox.c.status == "pending") == 0
        assert count(url, tables.respondents) == 1
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        await api.close()
