"""The web chat channel: the page a young person chats on, and its small JSON API.

This module only translates: an HTTP request becomes an `InboundMessage` for the
dispatcher, and the dispatcher's `Say`s become JSON. It decides nothing about
the conversation.

API (all POST, JSON in and out)::

    POST /chat/api/message   {"text": "..."}
                             {"choice": {"value": "...", "question_id": "..." | null}}
                             {"command": "help"}             (optional "arg": "...")
    POST /chat/api/resume    {}                              (the page was (re)opened)
    GET  /chat/api/updates?after=<message id>                (staff replies, polled;
                             {"messages": [{"id", "text", "kind": "staff"}]}; needs the
                             cookie and the X-BeSafe-Chat header, no body)

    200 {"messages": [{"text", "choices": [{"value", "label"}], "question_id", "multi", "kind"}]}
    400 / 403 / 413 / 503    {"error": "<code>", "message": "<words a young person can read>"}

Forgery protection: every API call must carry the `besafe_chat` session cookie
(SameSite=Strict), the custom header `X-BeSafe-Chat: 1` and
`Content-Type: application/json`. A cross-site page can send neither of the
last two without a CORS preflight, and this app never answers one, so a
forged form post or `fetch` from elsewhere is refused before the body is read.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from bot.messages import InboundMessage
from surveys.events import COMMANDS, ChoiceIn, CommandIn, Event, ResumeIn, Say, TextIn
from web.keys import CHAT_UPDATES, DISPATCHER, SETTINGS

log = logging.getLogger("besafe.web.chat")

CHANNEL = "web"
COOKIE_NAME = "besafe_chat"
COOKIE_MAX_AGE = 30 * 24 * 60 * 60  # seconds: a survey can be finished over a few weeks
CHAT_HEADER = "X-BeSafe-Chat"
MAX_BODY_BYTES = 256 * 1024
MAX_VALUE_CHARS = 200  # choice values, question ids and command arguments are short
# What `secrets.token_urlsafe(32)` makes (43 characters); a little slack either side.
_SESSION_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

SORRY_TEXT = (
    "Sorry, something went wrong on our side. Your last message may not have been saved "
    "\u2014 please send it again. If you need help now call Childline 0800 1111 or 999 "
    "in an emergency."
)
RELOAD_TEXT = "Sorry, this chat page has expired. Please reload the page to carry on."
TOO_LONG_TEXT = "That message is too long to send. Please make it shorter and try again."
BAD_REQUEST_TEXT = "Sorry, the chat couldn't read that message. Please try again."


# ---------------------------------------------------------------- headers


@web.middleware
async def security_headers_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Security headers on every response (a handler may set its own CSP first).

    Everything but `/static/` is also `Cache-Control: no-store`, so a chat
    page or an API answer is never kept in the browser's cache for someone
    else to find later.
    """
    try:
        response = await handler(request)
    except web.HTTPException as error:
        _add_security_headers(request, error)
        raise
    if not response.prepared:
        _add_security_headers(request, response)
    return response


def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


# ---------------------------------------------------------------- setup


def setup_chat(app: web.Application) -> None:
    """Register the chat page and API. Needs SETTINGS, aiohttp_jinja2 and (by the first
    message) DISPATCHER on the app."""
    app.router.add_get("/", chat_page, name="chat")
    app.router.add_post("/chat/api/message", post_message, name="chat-message")
    app.router.add_post("/chat/api/resume", post_resume, name="chat-resume")
    app.router.add_get("/chat/api/updates", get_updates, name="chat-updates")


# ---------------------------------------------------------------- the page


async def chat_page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    response = aiohttp_jinja2.render_template(
        "chat.html",
        request,
        {"quick_exit_url": settings.quick_exit_url, "sorry_text": SORRY_TEXT},
    )
    if session_key(request) is None:
        response.set_cookie(
            COOKIE_NAME,
            secrets.token_urlsafe(32),
            max_age=COOKIE_MAX_AGE,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=settings.secure_cookies,
        )
    return response


def session_key(request: web.Request) -> str | None:
    """The anonymous session token from the cookie, if it looks like one we made."""
    value = request.cookies.get(COOKIE_NAME)
    if value is None or not _SESSION_TOKEN.fullmatch(value):
        return None
    return value


# ---------------------------------------------------------------- the API


class ChatError(Exception):
    """A request refused before the dispatcher sees it; becomes a JSON error response."""

    def __init__(self, status: int, code: str, message: str, detail: str = "") -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail

    def response(self) -> web.Response:
        body = {"error": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return web.json_response(body, status=self.status)


class BadMessage(ChatError):
    """The JSON body is well-formed but not one of the message shapes."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, "bad_request", BAD_REQUEST_TEXT, detail)


async def post_message(request: web.Request) -> web.Response:
    try:
        user_key = _check_origin(request)
        event = parse_message(await _read_json(request))
    except ChatError as error:
        return error.response()
    return await _dispatch(request, user_key, event)


async def post_resume(request: web.Request) -> web.Response:
    try:
        user_key = _check_origin(request)
        body = await _read_json(request, allow_empty=True)
        if body is not None and not isinstance(body, dict):
            raise BadMessage("the body must be a JSON object")
    except ChatError as error:
        return error.response()
    return await _dispatch(request, user_key, ResumeIn())


async def get_updates(request: web.Request) -> web.Response:
    """Staff replies for this session newer than `after` (a message id):
    `{"messages": [{"id", "text", "kind": "staff"}]}`. Polled by chat.js; text only."""
    if request.headers.get(CHAT_HEADER) != "1" or (
        request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site"
    ):
        return ChatError(403, "forbidden", RELOAD_TEXT).response()
    user_key = session_key(request)
    if user_key is None:
        return ChatError(403, "no_session", RELOAD_TEXT).response()
    after_text = request.query.get("after", "0")
    if not after_text.isascii() or not after_text.isdigit() or len(after_text) > 12:
        return BadMessage("after must be a message id").response()
    source = request.app.get(CHAT_UPDATES)
    found: list[tuple[int, str]] = []
    if source is not None:
        try:
            found = await source.staff_replies(user_key, int(after_text))
        except Exception:
            log.exception("web chat updates failed")
            return web.json_response(
                {"error": "unavailable", "message": SORRY_TEXT},
                status=503,
                headers={"Retry-After": "5"},
            )
    return web.json_response(
        {"messages": [{"id": id_, "text": text, "kind": "staff"} for id_, text in found]}
    )


def parse_message(body: Any) -> Event:
    """Turn a decoded JSON body into an engine event, or raise `BadMessage`."""
    if not isinstance(body, dict):
        raise BadMessage("the body must be a JSON object")
    kinds = [key for key in ("text", "choice", "command") if key in body]
    if len(kinds) != 1:
        raise BadMessage("send exactly one of text, choice or command")
    allowed = {"command", "arg"} if kinds == ["command"] else {kinds[0]}
    if extra := sorted(set(body) - allowed):
        raise BadMessage(f"unexpected field {extra[0]!r}")
    if kinds == ["text"]:
        if not isinstance(body["text"], str):
            raise BadMessage("text must be a string")
        # Passed on unchanged: the dispatcher cleans, trims (with a note) and
        # answers empty messages kindly.
        return TextIn(body["text"])
    if kinds == ["choice"]:
        choice = body["choice"]
        if not isinstance(choice, dict) or set(choice) - {"value", "question_id"}:
            raise BadMessage("choice must be {value, question_id}")
        value = _short_string(choice.get("value"), "choice.value")
        question_id = choice.get("question_id")
        if question_id is not None:
            question_id = _short_string(question_id, "choice.question_id")
        return ChoiceIn(value, question_id)
    name = _short_string(body["command"], "command")
    if name not in COMMANDS:
        raise BadMessage(f"unknown command {name!r}")
    arg = body.get("arg", "")
    if arg != "":
        arg = _short_string(arg, "arg")
    return CommandIn(name, arg)


def _short_string(value: object, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_VALUE_CHARS:
        raise BadMessage(f"{field} must be a non-empty string of at most {MAX_VALUE_CHARS}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape
        raise BadMessage(f"{field} is not valid text") from None
    return value


def _check_origin(request: web.Request) -> str:
    """Refuse anything a page on another site could have sent; return the session key."""
    if request.headers.get(CHAT_HEADER) != "1" or request.content_type != "application/json":
        raise ChatError(403, "forbidden", RELOAD_TEXT)
    # Belt and braces: browsers say when a request comes from another site.
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise ChatError(403, "forbidden", RELOAD_TEXT)
    user_key = session_key(request)
    if user_key is None:
        raise ChatError(403, "no_session", RELOAD_TEXT)
    return user_key


async def _read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    """The decoded body; 413 over MAX_BODY_BYTES, 400 when it isn't JSON."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise ChatError(413, "too_large", TOO_LONG_TEXT)
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise ChatError(413, "too_large", TOO_LONG_TEXT)
    if allow_empty and not data.strip():
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, absurd nesting
        raise ChatError(400, "bad_json", BAD_REQUEST_TEXT) from None


async def _dispatch(request: web.Request, user_key: str, event: Event) -> web.Response:
    try:
        dispatcher = request.app[DISPATCHER]
        outputs = await dispatcher.handle(InboundMessage(CHANNEL, user_key, event))
    except Exception:
        log.exception("web chat message failed", extra={"event": type(event).__name__})
        return web.json_response(
            {"error": "unavailable", "message": SORRY_TEXT},
            status=503,
            headers={"Retry-After": "5"},
        )
    return web.json_response({"messages": [say_to_json(say) for say in outputs]})


def say_to_json(say: Say) -> dict[str, Any]:
    return {
        "text": say.text,
        "choices": [{"value": choice.value, "label": choice.label} for choice in say.choices],
        "question_id": say.question_id,
        "multi": say.multi,
        "kind": say.kind,
    }
