"""Staff alerts: a short notice for every new urgent or high flag, and escalation when a
deadline passes unacknowledged.

A notice never carries what the young person wrote: only the severity, the
categories and a link to the flag page (which needs a login). The job is
periodic and idempotent: `staff_alerts` has one row per (flag, kind), inserted
before sending in the same transaction that decides to send, so a second run,
a second server or a restart never notifies twice. A send that fails is retried
a few times; a server that stops mid-send leaves the row "sending", which is
retried after ALERT_STUCK_AFTER (the one case where a notice could arrive twice).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.settings import Settings
from storage import review as store
from storage.audit import append_audit
from storage.clock import utcnow
from storage.repository import Repository, UnitOfWork
from web.staff.review_rules import Deadlines, categories_text, deadline_for

log = logging.getLogger("besafe.staff.alerts")

# (chat id, text) -> sent; raises on failure.
SendAlert = Callable[[str, str], Awaitable[None]]
ALERTED_SEVERITIES = ("urgent", "high")
ALERT_STUCK_AFTER = timedelta(minutes=5)


def alert_text(kind: str, flag_id: int, severity: str, categories: list[str], link: str) -> str:
    """The whole notice: no message text, no identity."""
    what = categories_text(categories)
    if kind == "escalation":
        return (
            f"Be-Safe escalation: {severity.upper()} flag #{flag_id} ({what}) has passed its "
            f"deadline without being acknowledged. Please check it now: {link}"
        )
    return f"Be-Safe: new {severity.upper()} flag #{flag_id} ({what}). Open it: {link}"


def staff_base_url(settings: Settings) -> str:
    return (settings.staff_base_url or f"http://{settings.host}:{settings.port}").rstrip("/")


class TelegramAlerts:
    """Sends alerts with python-telegram-bot's `Bot`, through the configured Bot API URL."""

    def __init__(self, token: str, base_url: str) -> None:
        from telegram import Bot

        self._bot = Bot(token, base_url=base_url)
        self._ready = False
        self._lock = asyncio.Lock()

    async def __call__(self, chat_id: str, text: str) -> None:
        async with self._lock:
            if not self._ready:
                await self._bot.initialize()
                self._ready = True
        await self._bot.send_message(chat_id=chat_id, text=text)

    async def close(self) -> None:
        if self._ready:
            await self._bot.shutdown()
            self._ready = False


@dataclass(frozen=True)
class AlertOutcome:
    flag_id: int
    kind: str
    sent: bool


class AlertJob:
    """One run checks every open flag; call `run_once` periodically."""

    def __init__(self, repository: Repository, settings: Settings, send: SendAlert | None) -> None:
        self._repository = repository
        self._settings = settings
        self._send = send
        self._deadlines = Deadlines.from_settings(settings)

    async def run_once(self, now: datetime | None = None) -> list[AlertOutcome]:
        moment = now or utcnow()
        jobs = await asyncio.to_thread(self._repository.run, lambda uow: self._plan(uow, moment))
        outcomes = []
        for job in jobs:
            outcomes.append(await self._deliver(job))
        return outcomes

    def _plan(self, uow: UnitOfWork, now: datetime) -> list[store.AlertJob]:
        connection = uow.connection
        store.stuck_alerts(connection, now - ALERT_STUCK_AFTER)
        candidates = store.alert_candidates(connection)
        have = store.existing_alerts(connection, [c[0] for c in candidates])
        started: list[int] = []
        for flag_id, severity, _categories, created_at, acknowledged_at in candidates:
            wanted = []
            if severity in ALERTED_SEVERITIES and (flag_id, "new_flag") not in have:
                wanted.append("new_flag")
            if (
                acknowledged_at is None
                and (flag_id, "escalation") not in have
                and deadline_for(severity, created_at, self._deadlines) <= now
            ):
                wanted.append("escalation")
            for kind in wanted:
                alert_id = store.start_alert(connection, flag_id, kind, now)
                if alert_id is not None:
                    started.append(int(alert_id))
        started += store.retry_alerts(connection, now)
        return store.alert_jobs(connection, started)

    async def _deliver(self, job: store.AlertJob) -> AlertOutcome:
        settings = self._settings
        chat = (
            settings.staff_alert_chat_id
            if job.kind == "new_flag"
            else (settings.escalation_chat_id)
        )
        link = f"{staff_base_url(settings)}/staff/flags/{job.flag_id}"
        text = alert_text(job.kind, job.flag_id, job.severity, job.categories, link)
        fields = {"flag": job.flag_id, "kind": job.kind, "severity": job.severity}
        sent = False
        if self._send is None or not chat:
            log.warning("staff alert not sent: no Telegram token or chat configured", extra=fields)
        else:
            try:
                await self._send(chat, text)
                sent = True
                log.info("staff alert sent", extra=fields)
            except Exception as error:
                log.error("staff alert failed", extra={**fields, "error": type(error).__name__})

        def record(uow: UnitOfWork) -> None:
            store.finish_alert(uow.connection, job.alert_id, sent=sent, now=uow.now)
            if sent:
                action = "alert" if job.kind == "new_flag" else "escalation"
                store.add_event(
                    uow.connection,
                    job.flag_id,
                    action,
                    actor_id=None,
                    now=uow.now,
                    details={"to": "staff chat" if job.kind == "new_flag" else "second contact"},
                )
                append_audit(
                    uow.connection,
                    actor_id=None,
                    action=f"flag.{action}",
                    target=f"flag:{job.flag_id}",
                    address=None,
                    details={"kind": job.kind},
                )

        await asyncio.to_thread(self._repository.run, record)
        return AlertOutcome(job.flag_id, job.kind, sent)
