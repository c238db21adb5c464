"""python-telegram-bot's one door to the network, through aiohttp instead of httpx.

PTB sends every Bot API call through a `BaseRequest`; its default (httpx) spends
more CPU on each call than the rest of a survey turn together (its connection pool
re-checks every connection for every request), which capped one core at well under
100 updates/s. aiohttp is already the web server here, so its client does the job:
same parameters, same error mapping (PTB turns status codes into its exceptions),
one shared connection pool. File uploads are not used by Be-Safe and not supported.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
from telegram import Bot
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from yarl import URL

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_JSON = {"Content-Type": "application/json"}


class JsonBody:
    """A Bot API call's parameters as one JSON body, which the Bot API takes as well as a form.

    Stands in for PTB's `RequestData` on the hot path (`call`): `json.dumps` is C code,
    where form-encoding a keyboard (`urlencode` quotes it character by character) and
    PTB's `RequestParameter` per value cost several times the rest of a send.
    """

    contains_files = False

    def __init__(self, params: dict[str, Any]) -> None:
        self.body = json.dumps(params, ensure_ascii=False, separators=(",", ":")).encode()


async def call(bot: Bot, method: str, params: dict[str, Any]) -> Any:
    """One Bot API call with plain JSON in and out (no PTB objects); its `result`.

    Goes through the bot's request object and PTB's own status-code-to-exception mapping
    (`BaseRequest._request_wrapper`, as `Bot._post` does in the end; PTB is pinned <23), so
    callers see the same RetryAfter, Forbidden, BadRequest, TimedOut and NetworkError.
    """
    request = bot.request
    if not isinstance(request, AiohttpRequest):  # another client only knows RequestData
        return await bot._post(method, dict(params))
    payload = await request._request_wrapper(
        url=f"{bot.base_url}/{method}",
        method="POST",
        request_data=JsonBody(params),  # type: ignore[arg-type]  # duck-typed RequestData
    )
    return request.parse_json_payload(payload)["result"]


class AiohttpRequest(BaseRequest):
    def __init__(
        self,
        *,
        connections: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
    ) -> None:
        self._connections = connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[object, object], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300),
                skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),  # the Bot API sets none; saves a lookup
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: float | DefaultValue[None] | None = BaseRequest.DEFAULT_NONE,
        write_timeout: float | DefaultValue[None] | None = BaseRequest.DEFAULT_NONE,
        connect_timeout: float | DefaultValue[None] | None = BaseRequest.DEFAULT_NONE,
        pool_timeout: float | DefaultValue[None] | None = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None:
            await self.initialize()
        assert self._session is not None
        if request_data is not None and request_data.contains_files:
            raise NetworkError("file uploads are not supported by this request class")
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        timeout = self._timeouts.get((connect, read))
        if timeout is None:
            timeout = self._timeouts[(connect, read)] = aiohttp.ClientTimeout(
                total=None, sock_connect=connect, sock_read=read, connect=None
            )
        target = self._urls.get(url)
        if target is None:  # parsed once per method (a Bot API URL has no query to vary)
            target = self._urls[url] = URL(url)
            while len(self._urls) > 256:
                self._urls.pop(next(iter(self._urls)))
        # Form-encoded as PTB's own client does; encoded here because aiohttp's FormData
        # builds a multipart writer (and a random boundary) for every call.
        if isinstance(request_data, JsonBody):
            body, headers = request_data.body, _JSON
        else:
            body = urlencode(request_data.json_parameters).encode() if request_data else None
            headers = _FORM if body is not None else None
        try:
            async with self._session.request(
                method, target, data=body, headers=headers, timeout=timeout
            ) as response:
                return response.status, await response.read()
        except aiohttp.ConnectionTimeoutError as error:
            raise TimedOut("Connect timed out: the request was *not* sent") from error
        except TimeoutError as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{error.__class__.__name__}: {error}") from error
