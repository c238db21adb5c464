"""A fake Telegram Bot API server on localhost, for tests through the real python-telegram-bot.

Point a bot at it with `Application.builder().token(TOKEN).base_url(api.base_url)` (or
`BESAFE_TELEGRAM_API_URL=api.base_url`). It implements the methods Be-Safe uses
(getMe, getUpdates, setWebhook, deleteWebhook, sendMessage, editMessageText,
editMessageReplyMarkup, answerCallbackQuery, setMyCommands); any other method is
recorded and answered `{"ok": true, "result": true}`.

- `calls`: every request, in order, as `Call(method, params)` (params JSON-decoded).
- `chats[chat_id]`: what that chat shows, message by message (`Shown`), edits applied.
- `push_update(...)` queues an update for getUpdates (long polling honours `timeout`);
  `post_webhook(...)` delivers one to the URL given to setWebhook, with its secret header;
  a Bot API call in the webhook's answer (`{"method": ...}`) is made, as Telegram does
  (`webhook_reply`).
- `fail(method, kind, times=1, retry_after=1)`: answer the next calls to `method` with
  "429" (retry_after), "500", "400", "403" (blocked), "drop" (connection closed without an
  answer, after the call was recorded and applied: the message WAS delivered), or "hold"
  (never answer until `release()`; also applied first).
- `wait_until(predicate)` polls until a condition on the recorded state holds.
- `FakeUser` plays a young person: `say`, `command`, `tap`, and `last_buttons`.

Usable from pytest-aiohttp tests (`start()`/`close()` in the test's event loop) and from
benchmarks. State is in memory; nothing is shared between instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

TOKEN = "123456:TEST-token-for-the-fake-bot-api"
BOT_ID = 123456
BOT_USERNAME = "besafe_test_bot"

_STUB_METHODS_TRUE = frozenset(
    {
        "setWebhook",
        "deleteWebhook",
        "answerCallbackQuery",
        "setMyCommands",
        "deleteMyCommands",
        "setChatMenuButton",
        "close",
        "logOut",
    }
)


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Shown:
    """One bot message as the chat shows it now."""

    message_id: int
    text: str
    reply_markup: dict | None = None
    edits: int = 0

    @property
    def buttons(self) -> list[dict]:
        if not self.reply_markup:
            return []
        return [button for row in self.reply_markup.get("inline_keyboard", []) for button in row]


@dataclass
class _Failure:
    kind: str
    times: int
    retry_after: int


def _decode(value: str) -> Any:
    """PTB form-encodes each parameter, JSON-encoding the non-string ones."""
    if value[:1] in "{[" or value in ("true", "false", "null") or _is_number(value):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


class FakeBotApi:
    def __init__(self, *, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.chats: dict[int, list[Shown]] = defaultdict(list)
        self.webhook: dict[str, Any] | None = None
        self.commands: list[dict] = []
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._updates: deque[dict] = deque()
        self._update_ids = itertools.count(1000)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._new_update = asyncio.Event()
        self._released = asyncio.Event()
        self._changed = asyncio.Event()
        self.confirmed_offset = 0
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0
        self.listeners: list[Callable[[Call], None]] = []

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """What PTB's `base_url` takes: the token is appended to it."""
        return f"http://127.0.0.1:{self.port}/bot"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        return app

    async def start(self, port: int = 0) -> FakeBotApi:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        self._released.set()
        self._new_update.set()  # long polls answer now
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ test controls

    def fail(self, method: str, kind: str, *, times: int = 1, retry_after: int = 1) -> None:
        if kind not in ("429", "500", "400", "403", "drop", "hold"):
            raise ValueError(f"unknown failure kind {kind!r}")
        self._failures[method].append(_Failure(kind, times, retry_after))

    def clear_failures(self) -> None:
        self._failures.clear()

    def release(self) -> None:
        """Let every held call answer."""
        self._released.set()

    def next_update_id(self) -> int:
        return next(self._update_ids)

    def push_update(self, update: dict) -> dict:
        """Queue an update for getUpdates (an update_id is added when missing)."""
        update = {"update_id": self.next_update_id(), **update}
        self._updates.append(update)
        self._new_update.set()
        return update

    @property
    def pending_updates(self) -> list[dict]:
        return list(self._updates)

    async def post_webhook(
        self, update: dict, *, secret: str | None = None, url: str | None = None
    ) -> int:
        """Deliver `update` as Telegram would to the webhook; returns the HTTP status."""
        assert url or self.webhook, "setWebhook was never called"
        target = url or str(self.webhook["url"])  # type: ignore[index]
        token = secret if secret is not None else (self.webhook or {}).get("secret_token")
        headers = {"X-Telegram-Bot-Api-Secret-Token": token} if token else {}
        if self._session is None:
            self._session = ClientSession(timeout=ClientTimeout(total=30))
        async with self._session.post(target, json=update, headers=headers) as response:
            body = await response.read()
            if response.status == 200:
                await self.webhook_reply(body, response.content_type)
            return response.status

    async def webhook_reply(self, body: bytes, content_type: str) -> None:
        """A webhook's answer may carry a Bot API call, which Telegram then makes (its
        outcome is never told to the bot): recorded and applied like any other call."""
        if content_type != "application/json" or not body:
            return
        params = json.loads(body)
        if not isinstance(params, dict) or "method" not in params:
            return
        method = str(params.pop("method"))
        call = Call(method, params)
        self.calls.append(call)
        for listener in self.listeners:
            listener(call)
        try:
            await self._apply(method, params)
        finally:
            self._changed.set()

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    def calls_to(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [
            call
            for call in self.calls
            if call.method == method
            and (chat_id is None or int(call.params.get("chat_id", 0)) == chat_id)
        ]

    def texts(self, chat_id: int) -> list[str]:
        return [shown.text for shown in self.chats[chat_id]]

    async def wait_until(
        self, predicate: Callable[[], object], *, timeout: float = 10.0, what: str = ""
    ) -> None:
        """Wait until `predicate()` is true (checked after every call the fake answers)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what or predicate}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    # ------------------------------------------------------------ the API

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params)
        self.calls.append(call)
        for listener in self.listeners:
            listener(call)
        failure = self._take_failure(method)
        try:
            if failure is not None and failure.kind in ("429", "500", "400", "403"):
                return _error(failure)
            result = await self._apply(method, params)
            if failure is not None and failure.kind == "drop":
                assert request.transport is not None
                request.transport.close()
                raise web.HTTPInternalServerError()  # never reaches the client
            if failure is not None and failure.kind == "hold":
                self._released.clear()
                await self._released.wait()
            return web.json_response({"ok": True, "result": result})
        finally:
            self._changed.set()

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.popleft()
        return failure

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            body = await request.read()
            return json.loads(body) if body else {}
        form = await request.post()
        params = {key: _decode(str(value)) for key, value in form.items()}
        params.update({key: _decode(value) for key, value in request.query.items()})
        return params

    async def _apply(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Be-Safe",
                "username": BOT_USERNAME,
                "can_join_groups": False,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if method == "getUpdates":
            return await self._get_updates(params)
        if method == "setWebhook":
            self.webhook = dict(params)
            return True
        if method == "deleteWebhook":
            self.webhook = None
            return True
        if method == "setMyCommands":
            self.commands = list(params.get("commands") or [])
            return True
        if method == "sendMessage":
            return self._send_message(params)
        if method in ("editMessageText", "editMessageReplyMarkup"):
            return self._edit(method, params)
        if method in _STUB_METHODS_TRUE:
            return True
        return True

    async def _get_updates(self, params: dict[str, Any]) -> list[dict]:
        offset = int(params.get("offset") or 0)
        if offset:
            self.confirmed_offset = max(self.confirmed_offset, offset)
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        if not self._updates and timeout > 0:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
        return list(itertools.islice(self._updates, limit))

    def _send_message(self, params: dict[str, Any]) -> dict:
        chat_id = int(params["chat_id"])
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        message_id = next(counter)
        markup = params.get("reply_markup")
        shown = Shown(message_id, str(params.get("text", "")), markup or None)
        self.chats[chat_id].append(shown)
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Be-Safe"},
            "text": shown.text,
        }
        if markup:
            message["reply_markup"] = markup
        return message

    def _edit(self, method: str, params: dict[str, Any]) -> Any:
        chat_id = int(params["chat_id"])
        message_id = int(params["message_id"])
        for shown in self.chats[chat_id]:
            if shown.message_id == message_id:
                new_text = params.get("text", shown.text) if method == "editMessageText" else None
                markup = params.get("reply_markup") or None
                if (new_text is None or new_text == shown.text) and markup == shown.reply_markup:
                    raise _BadRequest("Bad Request: message is not modified")
                if new_text is not None:
                    shown.text = str(new_text)
                shown.reply_markup = markup
                shown.edits += 1
                return {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"},
                    "text": shown.text,
                }
        raise _BadRequest("Bad Request: message to edit not found")


class _BadRequest(web.HTTPBadRequest):
    def __init__(self, description: str) -> None:
        super().__init__(
            text=json.dumps({"ok": False, "error_code": 400, "description": description}),
            content_type="application/json",
        )


def _error(failure: _Failure) -> web.Response:
    if failure.kind == "429":
        body = {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {failure.retry_after}",
            "parameters": {"retry_after": failure.retry_after},
        }
        return web.json_response(body, status=429)
    if failure.kind == "403":
        body = {
            "ok": False,
            "error_code": 403,
            "description": "Forbidden: bot was blocked by the user",
        }
        return web.json_response(body, status=403)
    if failure.kind == "400":
        body = {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        return web.json_response(body, status=400)
    body = {"ok": False, "error_code": 500, "description": "Internal Server Error"}
    return web.json_response(body, status=500)


# ---------------------------------------------------------------- updates a person sends

_user_ids = itertools.count(10_000_000)


def user_dict(user_id: int, first_name: str = "Sam", username: str | None = None) -> dict:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username:
        user["username"] = username
    return user


def message_update(
    chat_id: int,
    *,
    text: str | None = None,
    user_id: int | None = None,
    chat_type: str = "private",
    username: str | None = None,
    extra: dict | None = None,
    message_id: int = 1,
) -> dict:
    """A `message` update (no update_id: `push_update` or the caller adds one)."""
    sender = user_id if user_id is not None else chat_id
    chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
    if chat_type == "private":
        chat["first_name"] = "Sam"
        if username:
            chat["username"] = username
    else:
        chat["title"] = "A group"
    message: dict[str, Any] = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": chat,
        "from": user_dict(sender, username=username),
    }
    if text is not None:
        message["text"] = text
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [
                {
                    "type": "bot_command",
                    "offset": 0,
                    "length": len(command.encode("utf-16-le")) // 2,
                }
            ]
    if extra:
        message.update(extra)
    return {"message": message}


def callback_update(
    chat_id: int, shown: Shown | None, data: str, *, username: str | None = None
) -> dict:
    """A tap on an inline button of `shown` (the bot's message) carrying `data`."""
    query: dict[str, Any] = {
        "id": f"cb{next(_user_ids)}",
        "from": user_dict(chat_id, username=username),
        "chat_instance": f"ci{chat_id}",
        "data": data,
    }
    if shown is not None:
        message: dict[str, Any] = {
            "message_id": shown.message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Sam"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Be-Safe"},
            "text": shown.text,
        }
        if shown.reply_markup:
            message["reply_markup"] = shown.reply_markup
        query["message"] = message
    return {"callback_query": query}


class FakeUser:
    """A young person in a private chat with the bot.

    `deliver` puts an update in front of the bot: by default it is queued for
    getUpdates; pass `api.post_webhook` (or any async callable) for webhook mode.
    """

    def __init__(
        self,
        api: FakeBotApi,
        chat_id: int | None = None,
        *,
        username: str | None = "sam_the_tester",
        deliver: Callable[[dict], Any] | None = None,
    ) -> None:
        self.api = api
        self.chat_id = chat_id if chat_id is not None else next(_user_ids)
        self.username = username
        self._deliver = deliver
        self._message_ids = itertools.count(1)
        self.sent: list[dict] = []

    async def _send(self, update: dict) -> dict:
        update = {"update_id": self.api.next_update_id(), **update}
        self.sent.append(update)
        if self._deliver is None:
            self.api.push_update(update)
        else:
            result = self._deliver(update)
            if asyncio.iscoroutine(result):
                await result
        return update

    async def say(self, text: str) -> dict:
        return await self._send(
            message_update(
                self.chat_id,
                text=text,
                username=self.username,
                message_id=next(self._message_ids),
            )
        )

    async def command(self, name: str, arg: str = "") -> dict:
        return await self.say(f"/{name} {arg}".strip())

    async def send_other(self, extra: dict) -> dict:
        """A sticker, photo, location...: `extra` is merged into the message."""
        return await self._send(
            message_update(
                self.chat_id,
                username=self.username,
                extra=extra,
                message_id=next(self._message_ids),
            )
        )

    @property
    def shown(self) -> list[Shown]:
        return self.api.chats[self.chat_id]

    def texts(self) -> list[str]:
        return [shown.text for shown in self.shown]

    @property
    def last_with_buttons(self) -> Shown | None:
        for shown in reversed(self.shown):
            if shown.buttons:
                return shown
        return None

    @property
    def last_buttons(self) -> list[dict]:
        shown = self.last_with_buttons
        return shown.buttons if shown else []

    async def tap(self, label: str | None = None, *, data: str | None = None) -> dict:
        """Tap the button labelled `label` on the newest message that has buttons."""
        shown = self.last_with_buttons
        assert shown is not None, f"no buttons to tap; chat shows {self.texts()[-3:]}"
        if data is None:
            matches = [b for b in shown.buttons if label is None or b["text"] == label]
            assert matches, f"no button {label!r}; buttons: {[b['text'] for b in shown.buttons]}"
            data = str(matches[0]["callback_data"])
        return await self._send(callback_update(self.chat_id, shown, data, username=self.username))

    async def wait_for_reply(self, count_before: int, *, timeout: float = 10.0) -> list[Shown]:
        """Wait until the chat shows more than `count_before` messages; the new ones."""
        await self.api.wait_until(
            lambda: len(self.shown) > count_before, timeout=timeout, what="a reply"
        )
        return self.shown[count_before:]
