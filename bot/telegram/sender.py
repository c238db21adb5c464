"""Outgoing Bot API calls: one queue per chat, Telegram's rate limits, retries, outcomes.

Every call made here was first written to the outbox (`storage.telegram`) in the
transaction that decided it, so a crash never loses one: pending rows are sent
again at start-up. What happens to a call:

- sent: its row is deleted (or kept, marked sent, while its buttons are still shown);
- 429: wait `retry_after` (all chats wait: Telegram may mean the whole bot), try again;
- Telegram answered 5xx, or the connection could not be made: back off, try again;
- timed out or the connection dropped after the request went out: the message may
  have arrived. A message is tried once more (so at most one duplicate), then marked
  `uncertain` with a logged error; an edit is simply tried again (it is idempotent);
- 400: given up, row `failed`, logged; 403 ("blocked by the user"): the same, and the
  respondent is marked blocked.

Rate limits (token buckets): about 30 messages a second over all chats, and per chat
a short burst (a reply is often 2-3 messages) then 1 a second. A chat's calls go in
order, one at a time, so nothing overtakes and nothing is dropped.
python-telegram-bot's AIORateLimiter is not used: it has no per-chat limit for
private chats and would be a second place that retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
import httpx
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.telegram.request import call
from storage import broadcasts
from storage import telegram as store
from storage.batching import WriteBatcher
from storage.repository import UnitOfWork

log = logging.getLogger("besafe.telegram.sender")

_GONE = ("message is not modified", "message to edit not found", "message can't be edited")


@dataclass
class Outgoing:
    """One call to make. `row_id` None: not in the outbox (nothing to record)."""

    row_id: int | None
    chat_id: int
    kind: str  # send | edit | clear
    text: str | None = None
    markup: dict | None = None
    message_id: int | None = None
    respondent_id: int | None = None
    done: asyncio.Future[int | None] | None = None  # set when finished (relay waits on it)
    tries_uncertain: int = 0
    attempts: int = 0
    sent_message_id: int | None = field(default=None, repr=False)


class TokenBucket:
    """`rate` tokens a second, up to `burst` saved; `take` waits its turn (reservations)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        initial: float | None = None,  # tokens saved at the start (default: a full bucket)
    ):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst if initial is None else min(burst, initial)
        self._at = clock()

    def reserve(self) -> float:
        """Take a token; how long to wait before using it (0 when one was saved)."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def try_take(self, keep: float = 0.0) -> bool:
        """Take a token only if `keep` more stay saved after it; never waits or reserves.

        Broadcasts use this on the replies' bucket, so they only spend what replies leave."""
        if self.rate <= 0:
            return True
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens - 1 < keep:
            return False
        self._tokens -= 1
        return True

    @property
    def idle(self) -> bool:
        """Full again: the bucket can be forgotten."""
        if self.rate <= 0:
            return True
        return self._tokens + (self._clock() - self._at) * self.rate >= self.burst


def retry_after_seconds(error: RetryAfter) -> float:
    # PTB 22 keeps a timedelta; its public `retry_after` warns while it changes type.
    value = getattr(error, "_retry_after", None)
    if isinstance(value, timedelta):
        return value.total_seconds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds = error.retry_after
    return seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)


def classify(error: BaseException) -> str:
    """What to do after a failed call: retry_after, retry, uncertain, gone, blocked, refused."""
    if isinstance(error, RetryAfter):
        return "retry_after"
    if isinstance(error, Forbidden):
        return "blocked"
    if isinstance(error, BadRequest):
        text = str(error).lower()
        return "gone" if any(words in text for words in _GONE) else "refused"
    if isinstance(error, TimedOut):
        cause = error.__cause__
        sent = not isinstance(cause, httpx.ConnectTimeout | httpx.PoolTimeout)
        return "uncertain" if sent and "not* sent" not in str(error) else "retry"
    if isinstance(error, NetworkError):
        cause = error.__cause__
        if cause is None or isinstance(cause, httpx.ConnectError | aiohttp.ClientConnectorError):
            return "retry"  # Telegram answered 5xx, or we never reached it
        return "uncertain"  # the connection broke after the request went out
    if isinstance(error, TelegramError):
        return "refused"  # e.g. an invalid token: retrying cannot help
    return "retry"


class Sender:
    def __init__(
        self,
        bot: Bot,
        writes: WriteBatcher,
        *,
        rate: float = 30.0,
        chat_rate: float = 1.0,
        chat_burst: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        in_flight: int = 32,
    ) -> None:
        self._bot = bot
        self._writes = writes
        self._global = TokenBucket(rate, max(1.0, rate))
        self._chat_rate = chat_rate
        self._chat_burst = chat_burst
        self._buckets: dict[int, TokenBucket] = {}
        # At most this many calls at once (the size of the connection pool): more would only
        # queue inside the HTTP client, out of sight of the rate limits and of `queued`.
        self._in_flight = asyncio.Semaphore(in_flight)
        self._queues: dict[int, deque[Outgoing]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._paused_until = 0.0
        self._backoff = backoff
        self._max_backoff = max_backoff
        # Outcomes waiting to be written, in one unit of work per flush.
        self._done: list[int] = []
        self._kept: list[tuple[int, int]] = []
        self._given_up: dict[str, list[int]] = {"failed": [], "uncertain": []}
        self._blocked: list[int] = []
        self._dirty = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False

    # ------------------------------------------------------------ queueing

    def submit(self, items: list[Outgoing]) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="telegram-outbox")
        for item in items:
            queue = self._queues.get(item.chat_id)
            if queue is None:
                queue = self._queues[item.chat_id] = deque()
            queue.append(item)
            if item.chat_id not in self._tasks:
                self._tasks[item.chat_id] = asyncio.create_task(self._drain(item.chat_id))

    @property
    def budget(self) -> TokenBucket:
        """The bucket of the overall rate, which broadcasts share (`bot.broadcasts`)."""
        return self._global

    @property
    def queued(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    async def idle(self) -> None:
        """Wait until every queued call is finished and its outcome written."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)
        await self.flush()

    async def close(self) -> None:
        """Stop sending (unsent rows stay pending for the next start) and write outcomes."""
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.flush()
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    # ------------------------------------------------------------ one chat

    async def _drain(self, chat_id: int) -> None:
        queue = self._queues[chat_id]
        try:
            while queue:
                item = queue[0]
                await self._deliver(item)
                queue.popleft()
        finally:
            self._tasks.pop(chat_id, None)
            if not queue:
                self._queues.pop(chat_id, None)
            bucket = self._buckets.get(chat_id)
            if bucket is not None and bucket.idle:
                del self._buckets[chat_id]

    async def _wait_turn(self, chat_id: int) -> None:
        bucket = self._buckets.get(chat_id)
        if bucket is None:
            bucket = self._buckets[chat_id] = TokenBucket(self._chat_rate, self._chat_burst)
        delay = bucket.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        delay = self._global.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)

    async def _deliver(self, item: Outgoing) -> None:
        while True:
            await self._wait_turn(item.chat_id)
            item.attempts += 1
            error: Exception
            try:
                async with self._in_flight:
                    item.sent_message_id = await self._call(item)
            except Exception as failure:  # classified below; nothing escapes a chat's queue
                error = failure
            else:
                self._finished(item, ok=True)
                return
            outcome = classify(error)
            if outcome == "retry_after":
                assert isinstance(error, RetryAfter)
                wait = retry_after_seconds(error)
                self._paused_until = max(self._paused_until, time.monotonic() + wait)
                log.warning("telegram asked us to slow down", extra={"retry_after": wait})
                continue
            if outcome == "gone":
                self._finished(item, ok=True)
                return
            if outcome in ("blocked", "refused"):
                self._give_up(item, "failed", error, blocked=outcome == "blocked")
                return
            if outcome == "uncertain" and item.kind == "send":
                item.tries_uncertain += 1
                if item.tries_uncertain > 1:
                    self._give_up(item, "uncertain", error)
                    return
            delay = min(self._max_backoff, self._backoff * 2 ** min(item.attempts - 1, 10))
            log.warning(
                "telegram call failed; trying again",
                extra={"kind": item.kind, "outcome": outcome, "error": str(error)[:200]},
            )
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    async def _call(self, item: Outgoing) -> int | None:
        # Through PTB's request object and error mapping (`request.call`), but without
        # building PTB objects for the keyboard and the returned Message, nor a form body:
        # that was most of a send's cost.
        params: dict[str, object] = {"chat_id": item.chat_id}
        if item.kind == "send":
            params["text"] = item.text or ""
            if item.markup:
                params["reply_markup"] = item.markup
            result = await call(self._bot, "sendMessage", params)
            return int(result["message_id"]) if isinstance(result, dict) else None
        params["message_id"] = item.message_id
        if item.kind == "edit":
            params["text"] = item.text or ""
            await call(self._bot, "editMessageText", params)
        else:
            await call(self._bot, "editMessageReplyMarkup", params)
        return item.message_id

    # ------------------------------------------------------------ outcomes

    def _finished(self, item: Outgoing, *, ok: bool) -> None:
        if item.row_id is not None:
            if item.kind == "send" and item.markup and item.sent_message_id is not None:
                self._kept.append((item.row_id, item.sent_message_id))
            else:
                self._done.append(item.row_id)
            self._dirty.set()
        if item.done is not None and not item.done.done():
            item.done.set_result(item.sent_message_id)

    def _give_up(self, item: Outgoing, status: str, error: BaseException, *, blocked=False) -> None:
        log.error(
            "telegram message given up",
            extra={
                "kind": item.kind,
                "status": status,
                "blocked": blocked,
                "respondent": item.respondent_id,
                "error": str(error)[:200],
            },
        )
        if item.row_id is not None:
            self._given_up[status].append(item.row_id)
        if blocked and item.respondent_id is not None:
            self._blocked.append(item.respondent_id)
        self._dirty.set()
        if item.done is not None and not item.done.done():
            item.done.set_exception(error)

    async def flush(self) -> None:
        """Write the outcomes gathered so far (one unit of work)."""
        done, self._done = self._done, []
        kept, self._kept = self._kept, []
        failed, uncertain = self._given_up["failed"], self._given_up["uncertain"]
        self._given_up = {"failed": [], "uncertain": []}
        blocked, self._blocked = self._blocked, []
        if not (done or kept or failed or uncertain or blocked):
            return

        def work(uow: UnitOfWork) -> None:
            store.finish_sends(uow, done, kept)
            store.mark_outbox(uow, failed, "failed")
            store.mark_outbox(uow, uncertain, "uncertain")
            for respondent_id in dict.fromkeys(blocked):
                store.mark_blocked(uow, respondent_id)
                broadcasts.unsubscribe(uow, respondent_id)  # blocked: no news either

        await self._writes.run(work)

    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("could not record telegram send outcomes")
                await asyncio.sleep(1.0)
