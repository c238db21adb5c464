"""The web chat page and its JSON API, on a tiny app with a recording fake dispatcher."""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from surveys.events import ChoiceIn, CommandIn, QuickReply, ResumeIn, Say, TextIn
from tests.fakes.fake_dispatcher import FakeDispatcher
from tests.web.chat_app import WEB_DIR, build_app
from web.chat import CONTENT_SECURITY_POLICY, COOKIE_NAME, MAX_BODY_BYTES, SORRY_TEXT
from web.keys import DISPATCHER

SESSION = "k" * 43  # the shape of secrets.token_urlsafe(32)
API = "/chat/api/message"
RESUME = "/chat/api/resume"
GOOD_HEADERS = {
    "X-BeSafe-Chat": "1",
    "Content-Type": "application/json",
    "Cookie": f"{COOKIE_NAME}={SESSION}",
}

ClientMaker = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, quick_exit_url="https://example.org/weather")


@pytest.fixture
def dispatcher() -> FakeDispatcher:
    return FakeDispatcher()


@pytest.fixture
async def client(
    aiohttp_client: ClientMaker, settings: Settings, dispatcher: FakeDispatcher
) -> TestClient:
    return await aiohttp_client(build_app(settings, dispatcher))


async def post(
    client: TestClient, body: Any, *, url: str = API, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post(url, data=data, headers=headers or GOOD_HEADERS)
    assert response.content_type == "application/json"
    return response.status, await response.json()


def set_cookie(response: Any) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        cookie.load(header)
    return cookie


# ---------------------------------------------------------------- the page and its cookie


async def test_page_sets_an_anonymous_session_cookie(client: TestClient) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    header = response.headers["Set-Cookie"]
    morsel = set_cookie(response)[COOKIE_NAME]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", morsel.value)
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert 25 * 86400 <= int(morsel["max-age"]) <= 31 * 86400
    assert "Secure" not in header  # development settings: plain http on localhost


async def test_each_visitor_gets_a_different_session(client: TestClient) -> None:
    values = set()
    for _ in range(3):
        client.session.cookie_jar.clear()
        values.add(set_cookie(await client.get("/"))[COOKIE_NAME].value)
    assert len(values) == 3


async def test_cookie_is_secure_when_settings_say_so(
    aiohttp_client: ClientMaker, tmp_path: Path, dispatcher: FakeDispatcher
) -> None:
    client = await aiohttp_client(
        build_app(Settings(data_dir=tmp_path, cookie_secure=True), dispatcher)
    )
    response = await client.get("/")
    assert set_cookie(response)[COOKIE_NAME]["secure"] is True


async def test_an_existing_session_is_kept(client: TestClient) -> None:
    response = await client.get("/", headers={"Cookie": f"{COOKIE_NAME}={SESSION}"})
    assert "Set-Cookie" not in response.headers


async def test_a_malformed_session_cookie_is_replaced(client: TestClient) -> None:
    response = await client.get("/", headers={"Cookie": f"{COOKIE_NAME}=short"})
    assert set_cookie(response)[COOKIE_NAME].value != "short"


async def test_page_has_quick_exit_footer_note_and_no_inline_code(client: TestClient) -> None:
    page = await (await client.get("/")).text()
    assert 'data-quick-exit-url="https://example.org/weather"' in page
    assert "Quick Exit" in page
    assert 'role="log"' in page and 'aria-live="polite"' in page
    words = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", page)))
    assert (
        "Anonymous: we never ask your name. Need help now? Childline 0800 1111 • Emergency 999"
        in words
    )
    # The CSP forbids inline code, so there must be none to break.
    assert re.findall(r"<script(?![^>]*\bsrc=)", page) == []
    assert " style=" not in page and "<style" not in page
    assert re.findall(r"\son[a-z]+=", page) == []
    # Only our own assets.
    assert re.findall(r'(?:src|href)="(?:https?:)?//', page) == [
        'href="https://'  # the Quick Exit link itself (works before the script loads)
    ]


async def test_the_quick_exit_url_is_escaped_into_the_page(
    aiohttp_client: ClientMaker, tmp_path: Path, dispatcher: FakeDispatcher
) -> None:
    nasty = 'https://example.org/?a="><script>alert(1)</script>'
    client = await aiohttp_client(
        build_app(Settings(data_dir=tmp_path, quick_exit_url=nasty), dispatcher)
    )
    page = await (await client.get("/")).text()
    assert "<script>alert(1)" not in page
    assert "&#34;&gt;&lt;script&gt;alert(1)" in page


# ---------------------------------------------------------------- security headers


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        ("GET", "/", {}),
        ("POST", API, GOOD_HEADERS),
        ("POST", RESUME, GOOD_HEADERS),
        ("POST", API, {}),  # refused: the 403 carries them too
        ("GET", "/no-such-page", {}),
    ],
)
async def test_security_headers(client: TestClient, method: str, url: str, headers: dict) -> None:
    response = await client.request(method, url, data=b'{"text": "hi"}', headers=headers)
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


async def test_static_assets_are_served_with_nosniff(client: TestClient) -> None:
    for path, kind in (("/static/chat.js", "javascript"), ("/static/chat.css", "text/css")):
        response = await client.get(path)
        assert response.status == 200
        assert kind in response.headers["Content-Type"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_script_never_turns_text_into_html() -> None:
    script = (WEB_DIR / "static" / "chat.js").read_text()
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", script, flags=re.S)  # comments may mention it
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in code
    assert "textContent" in code
    for asset in ("chat.js", "chat.css"):
        text = (WEB_DIR / "static" / asset).read_text()
        assert re.findall(r"https?://|@import|url\(", text) == [], asset


# ---------------------------------------------------------------- what the dispatcher receives


@pytest.mark.parametrize(
    ("body", "event"),
    [
        ({"text": "I'm in year 8"}, TextIn("I'm in year 8")),
        ({"text": "line one\nline two"}, TextIn("line one\nline two")),
        ({"text": ""}, TextIn("")),
        ({"text": "   "}, TextIn("   ")),
        ({"choice": {"value": "y6", "question_id": "school_year"}}, ChoiceIn("y6", "school_year")),
        ({"choice": {"value": "bully24", "question_id": None}}, ChoiceIn("bully24", None)),
        ({"choice": {"value": "bully24"}}, ChoiceIn("bully24", None)),
        ({"command": "help"}, CommandIn("help")),
        ({"command": "start", "arg": "bully24"}, CommandIn("start", "bully24")),
    ],
)
async def test_messages_become_events(
    client: TestClient, dispatcher: FakeDispatcher, body: dict, event: object
) -> None:
    status, answer = await post(client, body)
    assert status == 200
    assert dispatcher.events == [event]
    inbound = dispatcher.received[0]
    assert (inbound.channel, inbound.user_key) == ("web", SESSION)
    assert answer == {
        "messages": [
            {
                "text": "Question 1 of 2\nHow safe do you feel at school?",
                "choices": [
                    {"value": "safe", "label": "Safe"},
                    {"value": "unsafe", "label": "Not safe"},
                ],
                "question_id": "safe",
                "multi": False,
                "kind": "question",
            }
        ]
    }


@pytest.mark.parametrize("body", [b"", b"{}", b'{"anything": "ignored"}'])
async def test_resume(client: TestClient, dispatcher: FakeDispatcher, body: bytes) -> None:
    status, answer = await post(client, body, url=RESUME)
    assert status == 200
    assert dispatcher.events == [ResumeIn()]
    assert answer["messages"][0]["question_id"] == "safe"


async def test_replies_come_back_in_order_with_all_fields(
    client: TestClient, dispatcher: FakeDispatcher
) -> None:
    dispatcher.replies.append(
        (
            Say("Great, let's start! 👍"),
            Say(
                "Where did it happen?",
                choices=(QuickReply("school", "At school"), QuickReply("__done__", "Done")),
                question_id="where",
                multi=True,
                kind="question",
            ),
        )
    )
    _, answer = await post(client, {"choice": {"value": "yes", "question_id": "__consent__"}})
    first, second = answer["messages"]
    assert first == {
        "text": "Great, let's start! 👍",
        "choices": [],
        "question_id": None,
        "multi": False,
        "kind": "info",
    }
    assert second["multi"] is True and second["question_id"] == "where"


async def test_long_text_is_passed_on_unchanged_for_the_dispatcher_to_trim(
    client: TestClient, dispatcher: FakeDispatcher
) -> None:
    text = "a" * (200 * 1024)
    status, _ = await post(client, {"text": text})
    assert status == 200
    assert dispatcher.events == [TextIn(text)]


async def test_html_in_a_reply_is_returned_as_json_data(
    client: TestClient, dispatcher: FakeDispatcher
) -> None:
    payload = "<img src=x onerror=alert(1)>"
    dispatcher.replies.append((Say(f"Your answer was: {payload}"),))
    response = await client.post(API, data=json.dumps({"text": payload}), headers=GOOD_HEADERS)
    assert response.content_type == "application/json"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    # It goes back as JSON data, which the page draws with textContent.
    assert (await response.json())["messages"][0]["text"] == f"Your answer was: {payload}"
    assert dispatcher.events == [TextIn(payload)]


# ---------------------------------------------------------------- forgery


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({**GOOD_HEADERS, "X-BeSafe-Chat": ""}, id="header-empty"),
        pytest.param(
            {k: v for k, v in GOOD_HEADERS.items() if k != "X-BeSafe-Chat"}, id="no-header"
        ),
        pytest.param({**GOOD_HEADERS, "X-BeSafe-Chat": "yes"}, id="header-wrong"),
        pytest.param({**GOOD_HEADERS, "Content-Type": "text/plain"}, id="text-plain"),
        pytest.param(
            {**GOOD_HEADERS, "Content-Type": "application/x-www-form-urlencoded"}, id="form"
        ),
        pytest.param(
            {**GOOD_HEADERS, "Content-Type": "multipart/form-data; boundary=x"}, id="multipart"
        ),
        pytest.param({k: v for k, v in GOOD_HEADERS.items() if k != "Cookie"}, id="no-cookie"),
        pytest.param({**GOOD_HEADERS, "Cookie": f"{COOKIE_NAME}=x"}, id="bad-cookie"),
        pytest.param({**GOOD_HEADERS, "Cookie": f"other={SESSION}"}, id="other-cookie"),
        pytest.param({**GOOD_HEADERS, "Sec-Fetch-Site": "cross-site"}, id="cross-site"),
    ],
)
@pytest.mark.parametrize("url", [API, RESUME])
async def test_forged_requests_are_refused(
    client: TestClient, dispatcher: FakeDispatcher, headers: dict, url: str
) -> None:
    response = await client.post(url, data=b'{"text": "hi"}', headers=headers)
    assert response.status == 403
    body = await response.json()
    assert body["error"] in ("forbidden", "no_session")
    assert "reload" in body["message"]
    assert dispatcher.received == []


async def test_same_origin_fetch_metadata_is_allowed(
    client: TestClient, dispatcher: FakeDispatcher
) -> None:
    headers = {
        **GOOD_HEADERS,
        "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/json; charset=utf-8",
    }
    status, _ = await post(client, {"text": "hi"}, headers=headers)
    assert status == 200
    assert len(dispatcher.received) == 1


async def test_the_api_only_takes_post(client: TestClient, dispatcher: FakeDispatcher) -> None:
    response = await client.get(API, headers=GOOD_HEADERS)
    assert response.status == 405
    assert dispatcher.received == []


# ---------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"text": "unterminated', id="truncated"),
        pytest.param(b"\xff\xfe{}", id="bad-utf8"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep-nesting"),
        pytest.param(b"[1, 2]", id="list"),
        pytest.param(b'"text"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"{}", id="no-kind"),
        pytest.param(b'{"text": 5}', id="text-number"),
        pytest.param(b'{"text": null}', id="text-null"),
        pytest.param(b'{"text": ["a"]}', id="text-list"),
        pytest.param(b'{"text": "a", "command": "help"}', id="two-kinds"),
        pytest.param(b'{"text": "a", "extra": 1}', id="extra-field"),
        pytest.param(b'{"choice": "yes"}', id="choice-string"),
        pytest.param(b'{"choice": {"value": 3}}', id="choice-number"),
        pytest.param(b'{"choice": {"value": ""}}', id="choice-empty"),
        pytest.param(b'{"choice": {}}', id="choice-missing"),
        pytest.param(b'{"choice": {"value": "a", "question_id": 4}}', id="question-number"),
        pytest.param(b'{"choice": {"value": "a", "other": 1}}', id="choice-extra"),
        pytest.param(b'{"choice": {"value": "\\ud800"}}', id="lone-surrogate"),
        pytest.param(json.dumps({"choice": {"value": "v" * 5000}}).encode(), id="choice-huge"),
        pytest.param(b'{"command": "rm -rf"}', id="unknown-command"),
        pytest.param(b'{"command": 1}', id="command-number"),
        pytest.param(b'{"command": "help", "arg": 5}', id="arg-number"),
    ],
)
async def test_malformed_messages_are_400_and_never_reach_the_dispatcher(
    client: TestClient, dispatcher: FakeDispatcher, body: bytes
) -> None:
    status, answer = await post(client, body)
    assert status == 400
    assert answer["error"] in ("bad_json", "bad_request")
    assert dispatcher.received == []


@pytest.mark.parametrize("body", [b"[1]", b'"x"', b"not json"])
async def test_malformed_resume_is_400(
    client: TestClient, dispatcher: FakeDispatcher, body: bytes
) -> None:
    status, _ = await post(client, body, url=RESUME)
    assert status == 400
    assert dispatcher.received == []


async def test_a_body_over_256_kib_is_413(client: TestClient, dispatcher: FakeDispatcher) -> None:
    body = json.dumps({"text": "a" * (300 * 1024)}).encode()
    status, answer = await post(client, body)
    assert status == 413
    assert answer["error"] == "too_large"
    assert dispatcher.received == []


async def test_a_chunked_body_over_256_kib_is_413(
    client: TestClient, dispatcher: FakeDispatcher
) -> None:
    async def chunks():  # no Content-Length: the limit is counted while reading
        yield b'{"text": "'
        for _ in range(300):
            yield b"a" * 1024
        yield b'"}'

    response = await client.post(API, data=chunks(), headers=GOOD_HEADERS)
    assert response.status == 413
    assert dispatcher.received == []


async def test_a_body_of_exactly_the_limit_is_read(
    client: TestClient, dispatcher: FakeDispatcher
) -> None:
    padding = MAX_BODY_BYTES - len(b'{"text": ""}')
    body = b'{"text": "' + b"b" * padding + b'"}'
    assert len(body) == MAX_BODY_BYTES
    status, _ = await post(client, body)
    assert status == 200
    assert len(dispatcher.received) == 1


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize("url", [API, RESUME])
async def test_a_dispatcher_failure_is_a_kind_503(
    client: TestClient,
    dispatcher: FakeDispatcher,
    caplog: pytest.LogCaptureFixture,
    url: str,
) -> None:
    dispatcher.fail_with = RuntimeError("database is locked")
    with caplog.at_level(logging.ERROR, logger="besafe.web.chat"):
        status, answer = await post(client, {"text": "hello"} if url == API else {}, url=url)
    assert status == 503
    assert answer == {"error": "unavailable", "message": SORRY_TEXT}
    assert "Childline 0800 1111" in answer["message"] and "999" in answer["message"]
    assert len(dispatcher.received) == 1
    failures = [r for r in caplog.records if r.name == "besafe.web.chat"]
    assert failures and failures[0].exc_info is not None
    assert "database is locked" in caplog.text


async def test_no_dispatcher_yet_is_also_a_503(
    aiohttp_client: ClientMaker, settings: Settings, dispatcher: FakeDispatcher
) -> None:
    app = build_app(settings, dispatcher)
    del app[DISPATCHER]
    client = await aiohttp_client(app)
    status, answer = await post(client, {"text": "hello"})
    assert status == 503
    assert answer["message"] == SORRY_TEXT
