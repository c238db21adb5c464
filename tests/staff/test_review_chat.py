"""`GET /chat/api/updates`: the web chat's way to receive staff replies, and its guards."""

from __future__ import annotations

import secrets

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from tests.fakes.fake_dispatcher import FakeDispatcher
from tests.web.chat_app import build_app

HEADERS = {"X-BeSafe-Chat": "1"}


@pytest.fixture
async def chat_client(aiohttp_client, tmp_path) -> TestClient:
    settings = Settings(data_dir=tmp_path, secret_key="chat-updates-secret-0123456789abcdefgh")
    return await aiohttp_client(build_app(settings, FakeDispatcher()))


def session() -> dict[str, str]:
    return {"besafe_chat": secrets.token_urlsafe(32)}


async def test_without_the_review_queue_there_is_nothing_new(chat_client: TestClient) -> None:
    response = await chat_client.get(
        "/chat/api/updates?after=0", headers=HEADERS, cookies=session()
    )
    assert response.status == 200
    assert await response.json() == {"messages": []}


@pytest.mark.parametrize(
    ("headers", "cookies", "query", "status", "code"),
    [
        ({}, session(), "after=0", 403, "forbidden"),
        ({**HEADERS, "Sec-Fetch-Site": "cross-site"}, session(), "after=0", 403, "forbidden"),
        (HEADERS, {}, "after=0", 403, "no_session"),
        (HEADERS, {"besafe_chat": "short"}, "after=0", 403, "no_session"),
        (HEADERS, session(), "after=-1", 400, "bad_request"),
        (HEADERS, session(), "after=1e3", 400, "bad_request"),
        (HEADERS, session(), "after=" + "9" * 20, 400, "bad_request"),
        (HEADERS, session(), "after=%D9%A3", 400, "bad_request"),  # an Arabic-Indic digit
    ],
)
async def test_refused_requests(
    chat_client: TestClient, headers: dict, cookies: dict, query: str, status: int, code: str
) -> None:
    response = await chat_client.get(f"/chat/api/updates?{query}", headers=headers, cookies=cookies)
    assert response.status == status
    assert (await response.json())["error"] == code
