"""Fixtures for the Telegram channel tests: a fake Bot API and the real app around it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio

from tests.telegram.fake_bot_api import FakeBotApi
from tests.telegram.harness import ClientFactory, TelegramHarness, start_harness


@pytest_asyncio.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    fake = await FakeBotApi().start()
    yield fake
    await fake.close()


@pytest_asyncio.fixture
async def telegram_app(
    database_url: str, tmp_path: Path, api: FakeBotApi, aiohttp_client: ClientFactory
) -> Callable[..., Awaitable[TelegramHarness]]:
    """`await telegram_app(mode="polling" | "webhook", **settings)`: the app, started.

    (The database and the fake API are set up first, so they outlive the app.)"""

    async def start(mode: str = "polling", **overrides: Any) -> TelegramHarness:
        return await start_harness(
            aiohttp_client, tmp_path, database_url, mode=mode, api=api, **overrides
        )

    return start
