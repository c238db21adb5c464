"""Invitations and reminders to opted-in young people: queueing them, and sending them.

`enqueue_due_broadcasts(repository, now, settings)` writes one `broadcast_sends` row per
send that is due (idempotent: the rows are unique, so a second run adds nothing):
- an open campaign with an invitation text: one invitation to every opted-in subscriber
  in its audience who has not joined it, once ever (new subscribers get theirs later);
- at each planned reminder time: one reminder, only to opted-in subscribers who started
  that campaign before that time and have not finished it; only the latest due reminder
  is queued (after an outage one goes, not two at once), so never more than planned.
Not-before times are spread evenly over the campaign's send_spread_minutes of sending
time, and never fall in quiet hours (`surveys.broadcasting.QuietHours`).

`BroadcastSender` sends them through the Telegram Bot API: a row is claimed before its
request is made and marked sent right after, so after a crash the rest continue and
only the few in flight at that moment can go twice (claims of a dead process are taken
back after `CLAIM_LEASE`). Several server processes on one PostgreSQL database each
claim their own rows (FOR UPDATE SKIP LOCKED, see `storage.broadcasts`): no leader needed.

Sharing Telegram's budget: broadcasts keep to their own rate (BROADCAST_RATE_PER_SECOND,
at most 30) AND take a token from the replies' overall bucket (`Sender.budget`) only
while `REPLY_HEADROOM` tokens stay saved for replies. So a young person writing to the
bot during a big send is answered as fast as ever; the broadcast slows down instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from telegram import Bot
from telegram.error import RetryAfter

from bot.relay import RelayError, open_handle
from bot.telegram.sender import TokenBucket, classify, retry_after_seconds
from config.settings import Settings
from storage import broadcasts as store
from storage import telegram as telegram_store
from storage.batching import WriteBatcher
from storage.clock import utcnow
from storage.repository import Repository, UnitOfWork
from storage.review import read
from surveys.audience import Audience, AudienceError, Profile
from surveys.broadcasting import (
    INVITATION,
    REMINDER,
    QuietHours,
    deep_link,
    due_reminder,
    message_text,
    reminder_times,
    spread,
)
from surveys.demographics import AREA_QUESTION_ID, SCHOOL_YEAR_QUESTION_ID, key_stage
from surveys.demographics import school_year_number as year_number

log = logging.getLogger("besafe.broadcasts")

CLAIM_LEASE = timedelta(seconds=15)  # a claim not renewed this long belonged to a dead process
REPLY_HEADROOM = 10.0  # tokens of the overall bucket broadcasts never take (kept for replies)
MAX_ATTEMPTS = 5  # 5xx or unreachable this many times: given up (failed)
MAX_BATCH = 200  # rows claimed at once when there is no rate limit
# Outcomes are written at least this often while sending: what a crash can send twice is
# what was sent since the last write (and the calls in flight).
FLUSH_SECONDS = 0.1
STOP_SECONDS = 5.0  # at shutdown, how long sends already on their way may take to finish
IDLE_SECONDS = 1.0  # wait between looks at an empty queue
_ENQUEUE_CHUNK = 2000  # rows written per transaction (SQLite: conversations wait meanwhile)


@dataclass(frozen=True)
class EnqueueReport:
    invitations: int = 0
    reminders: int = 0


def quiet_hours(settings: Settings) -> QuietHours:
    return QuietHours.parse(settings.broadcast_quiet_hours, settings.broadcast_time_zone)


def profile_of(candidate: store.Candidate) -> Profile:
    year = candidate.answers.get(SCHOOL_YEAR_QUESTION_ID)
    return Profile(
        channel=candidate.channel,
        key_stage=key_stage(year),
        year=year_number(year),
        school=candidate.answers.get(store.SCHOOL_QUESTION_ID),
        area=candidate.answers.get(AREA_QUESTION_ID),
    )


def enqueue_due_broadcasts(
    repository: Repository, now: datetime, settings: Settings
) -> EnqueueReport:
    """Queue every invitation and reminder due at `now` (naive UTC); run twice, no change."""
    quiet = quiet_hours(settings)
    # Reads in read-only transactions: on SQLite a write transaction would hold up every
    # conversation while 100,000 subscribers are looked at.
    plans = read(repository, lambda connection: store.open_campaign_plans(connection, now))
    invitations = reminders = 0
    for plan in plans:
        try:
            audience = Audience.from_json(plan.audience_json)
        except AudienceError as error:
            log.error(
                "campaign audience unreadable; nothing sent",
                extra={"code": plan.code, "error": str(error)},
            )
            continue
        if (plan.invitation_text or "").strip():
            needs_answers = bool(
                audience.key_stages or audience.years or audience.schools or audience.areas
            )
            candidates = read(
                repository,
                lambda connection, plan=plan, needs=needs_answers: store.invitation_candidates(
                    connection, plan.id, with_profiles=needs
                ),
            )
            chosen = [c.respondent_id for c in candidates if audience.includes(profile_of(c))]
            invitations += _add(repository, plan, INVITATION, 0, chosen, now, quiet)
        seq = due_reminder(reminder_times(plan.reminder_times_json), now)
        if seq is not None and (plan.reminder_text or "").strip():
            planned = reminder_times(plan.reminder_times_json)[seq - 1]
            chosen = read(
                repository,
                lambda connection, plan=plan, seq=seq, planned=planned: store.reminder_candidates(
                    connection, plan.id, seq, started_before=planned
                ),
            )
            reminders += _add(repository, plan, REMINDER, seq, chosen, now, quiet)
    if invitations or reminders:
        log.info("broadcasts queued", extra={"invitations": invitations, "reminders": reminders})
    return EnqueueReport(invitations, reminders)


def _add(
    repository: Repository,
    plan: store.CampaignPlan,
    kind: str,
    seq: int,
    respondent_ids: list[int],
    now: datetime,
    quiet: QuietHours,
) -> int:
    times = spread(now, len(respondent_ids), plan.send_spread_minutes, quiet)
    rows = list(zip(respondent_ids, times, strict=True))
    added = 0
    for start in range(0, len(rows), _ENQUEUE_CHUNK):
        chunk = rows[start : start + _ENQUEUE_CHUNK]
        added += repository.run(
            lambda uow, chunk=chunk: store.add_sends(uow, plan.id, kind, seq, chunk)
        )
    return added


# ---------------------------------------------------------------- sending


def claimer_name() -> str:
    """Who holds a claim: host, process id and a random part (process ids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class BroadcastSender:
    """Claims due sends and sends them to Telegram at the broadcast rate.

    `rate` None: no limit of its own (benchmarks). `budget`: the replies' overall bucket,
    shared (see the module's docstring)."""

    def __init__(
        self,
        bot: Bot,
        writes: WriteBatcher,
        *,
        secret: bytes,
        rate: float | None,
        quiet: QuietHours,
        budget: TokenBucket | None = None,
        bot_username: str | None = None,
        in_flight: int = 32,
        claimer: str | None = None,
        lease: timedelta = CLAIM_LEASE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._bot = bot
        self._writes = writes
        self._secret = secret
        self._rate = rate
        # An even pace: a fifth of a second saved at most (a gap between batches does not
        # lower the rate), and nothing saved at the start (a minute holds 60 x rate, not more).
        self._bucket = TokenBucket(rate, max(1.0, rate / 5), initial=1.0) if rate else None
        self._quiet = quiet
        self._budget = budget
        self._username = bot_username
        self._in_flight = asyncio.Semaphore(in_flight)
        self.claimer = claimer or claimer_name()
        self._lease = lease
        self._clock = clock
        self._batch = MAX_BATCH if not rate else max(1, min(MAX_BATCH, math.ceil(rate)))
        self._paused_until = 0.0
        self._held: set[int] = set()  # claimed by us, not finished yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[tuple[int, str, str | None]] = []
        self._retries: list[tuple[int, datetime, bool]] = []
        self._blocked: list[int] = []
        self.sent = 0

    async def run(self) -> None:
        """Send until cancelled. The next batch is claimed as soon as the last send of the
        one before has started, so the pipe never runs dry between batches."""
        background = [asyncio.create_task(self._renew()), asyncio.create_task(self._flush_often())]
        try:
            while True:
                try:
                    count = await self.send_due(wait=False)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("broadcast sending failed; trying again shortly")
                    count = 0
                if not count:
                    await asyncio.sleep(self._idle_wait())
        finally:
            # Stopping: sends already on their way finish (briefly), their outcomes are
            # written, and claimed rows not yet started go back to the queue at once.
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=STOP_SECONDS)
            tasks = [*background, *self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.flush()

    def _idle_wait(self) -> float:
        now = self._clock()
        if self._quiet.is_quiet(now):
            until = self._quiet.next_allowed(now)
            return max(IDLE_SECONDS, min(60.0, (until - now).total_seconds()))
        return IDLE_SECONDS

    async def send_due(self, *, wait: bool = True) -> int:
        """Claim one batch of due sends and send it; how many were claimed (0: none due).

        `wait`: return once every send is finished and recorded (else once each started)."""
        now = self._clock()
        if self._quiet.is_quiet(now):
            return 0
        claimed = await self._writes.run(
            lambda uow: store.claim_sends(uow, now, self._batch, self.claimer, self._lease)
        )
        if not claimed:
            return 0
        self._held.update(send.id for send in claimed)
        helpers = (
            [asyncio.create_task(self._renew()), asyncio.create_task(self._flush_often())]
            if wait
            else []
        )
        started: list[asyncio.Task[None]] = []
        handled = 0  # claimed rows started or given back so far
        try:
            for send in claimed:
                if self._quiet.is_quiet(self._clock()):
                    self._give_back(send, self._quiet.next_allowed(self._clock()))
                    handled += 1
                    continue
                await self._pace()
                pause = self._paused_until - time.monotonic()
                if pause > 1.0:  # Telegram asked us to wait: let the row go back to the queue
                    self._give_back(send, self._clock() + timedelta(seconds=pause))
                    handled += 1
                    continue
                if pause > 0:
                    await asyncio.sleep(pause)
                await self._in_flight.acquire()
                task = asyncio.create_task(self._send(send))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                started.append(task)
                handled += 1
            if wait:
                await asyncio.gather(*started)
        except asyncio.CancelledError:
            for send in claimed[handled:]:  # never started: nothing can have arrived
                self._give_back(send, self._clock())
            raise
        finally:
            if wait:
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
                await self.flush()
        return len(claimed)

    def _give_back(self, send: store.ClaimedSend, at: datetime) -> None:
        self._retries.append((send.id, at, False))
        self._held.discard(send.id)

    async def _pace(self) -> None:
        if self._bucket is not None:
            delay = self._bucket.reserve()
            if delay > 0:
                await asyncio.sleep(delay)
        if self._budget is not None:
            while not self._budget.try_take(REPLY_HEADROOM):
                await asyncio.sleep(1.0 / max(self._budget.rate, 1.0))

    async def _renew(self) -> None:
        """Keep our claims fresh while sending, so no other process takes them back."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            held = list(self._held)
            if held:
                await self._writes.run(
                    lambda uow, held=held: store.renew_claims(uow, held, self.claimer)
                )

    async def _flush_often(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:  # written at the end of the batch instead
                log.exception("could not record broadcast outcomes")

    async def _send(self, send: store.ClaimedSend) -> None:
        try:
            outcome = await self._call(send)
        finally:
            self._in_flight.release()
            self._held.discard(send.id)
        if outcome is not None:
            self._outcomes.append(outcome)
            if outcome[1] == "sent":
                self.sent += 1
            if len(self._outcomes) >= 100:
                await self.flush()

    async def _call(self, send: store.ClaimedSend) -> tuple[int, str, str | None] | None:
        try:
            channel, user_key = open_handle(self._secret, send.address)
            chat_id = int(user_key)
        except (RelayError, ValueError):
            return (send.id, "failed", "address unreadable")
        if channel != "telegram":
            return (send.id, "failed", f"channel {channel} cannot be reached")
        link = deep_link(self._username, send.code)
        params: dict[str, object] = {
            "chat_id": chat_id,
            "text": message_text(send.kind, send.text, send.code, has_button=link is not None),
        }
        if link is not None:
            params["reply_markup"] = {
                "inline_keyboard": [[{"text": "Start the survey", "url": link}]]
            }
        try:
            # Bot._post, as the reply sender does (bot.telegram.sender): PTB's request and
            # error mapping without building PTB objects.
            await self._bot._post("sendMessage", params)
        except Exception as error:
            return self._failed(send, error)
        return (send.id, "sent", None)

    def _failed(self, send: store.ClaimedSend, error: Exception) -> tuple | None:
        outcome = classify(error)
        now = self._clock()
        if outcome == "retry_after":
            assert isinstance(error, RetryAfter)
            wait = retry_after_seconds(error)
            self._paused_until = max(self._paused_until, time.monotonic() + wait)
            log.warning("telegram asked broadcasts to slow down", extra={"retry_after": wait})
            self._retries.append((send.id, now + timedelta(seconds=wait), False))
            return None
        if outcome == "blocked":
            self._blocked.append(send.respondent_id)
            return (send.id, "blocked", "blocked by the user")
        if outcome == "retry" and send.attempts + 1 < MAX_ATTEMPTS:
            backoff = timedelta(seconds=min(300, 5 * 2**send.attempts))
            self._retries.append((send.id, now + backoff, True))
            return None
        # "uncertain": it may have arrived; at most once, so it is not sent again.
        reason = "may have arrived" if outcome == "uncertain" else str(error)[:200]
        log.warning("broadcast send given up", extra={"outcome": outcome, "error": reason})
        return (send.id, "failed", reason)

    async def flush(self) -> None:
        """Write the outcomes gathered so far (one unit of work)."""
        outcomes, self._outcomes = self._outcomes, []
        retries, self._retries = self._retries, []
        blocked, self._blocked = self._blocked, []
        if not (outcomes or retries or blocked):
            return

        def work(uow: UnitOfWork) -> None:
            store.finish_sends(uow, outcomes)
            store.requeue_sends(uow, retries)
            for respondent_id in dict.fromkeys(blocked):
                store.unsubscribe(uow, respondent_id)
                telegram_store.mark_blocked(uow, respondent_id)

        await self._writes.run(work)
