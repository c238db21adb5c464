"""The safeguarding review queue: the queue page, live updates, the flag page, every action,
the printable export.

Only safeguarding leads reach any of it (`FLAG_ROLES`); `require_role` turns
everyone else away with a 403 that is logged and audited. Every view of a flag
and every action writes an audit entry in the same transaction as what it
records. Pages show a flag's message, context and history but never a chat id,
username, pseudonym, session token or relay handle (`storage.review` never
reads those for a page). Everything a young person wrote is escaped by the
templates' autoescaping: the highlighted message is a list of segments the
template escapes one by one; nothing is marked safe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web

from storage import review as store
from storage.audit import append_audit
from storage.clock import utcnow
from storage.repository import UnitOfWork
from storage.tables_review import REFERRAL_DESTINATIONS
from surveys.text import clean_text
from web.chat import SECURITY_HEADERS
from web.keys import RELAY, SCHEDULER, SETTINGS
from web.staff.alerts import AlertJob, TelegramAlerts
from web.staff.auth import (
    client_address,
    current_user,
    register_nav,
    render,
    require_role,
    run_db,
)
from web.staff.review_live import LIVE_FEED, LiveFeed
from web.staff.review_relay import setup_web_replies
from web.staff.review_rules import (
    ACTION_LABELS,
    CLOSED,
    DESTINATION_LABELS,
    MAX_REFERENCE,
    MAX_TEXT,
    STATUS_LABELS,
    ActionRefused,
    Deadlines,
    FlagState,
    category_label,
    check_action,
    clean_input,
    deadline_for,
    describe_span,
    highlight_segments,
    queue_key,
)
from web.tasks import cancel_and_wait

log = logging.getLogger("besafe.web.staff.review")

FLAG_ROLES: tuple[str, ...] = ("safeguarding_lead",)
MAX_FLAG_ID = 2**31 - 1  # flags.id is a 32-bit INTEGER on PostgreSQL
_DIGITS = re.compile(r"[0-9]{1,10}")
# URL word -> action name (as stored in flag_events and the audit log).
ACTIONS: dict[str, str] = {
    "claim": "claim",
    "acknowledge": "acknowledge",
    "reply": "reply",
    "referral": "referral",
    "not-a-concern": "not_a_concern",
    "close": "close",
    "reopen": "reopen",
    "note": "note",
}
# Actions that count as acknowledging a flag that nobody had acknowledged yet.
_ACKNOWLEDGING = frozenset({"acknowledge", "reply", "referral", "not_a_concern", "close"})
STREAM_MAX_SECONDS = 300.0  # an event stream is closed after this; the browser reconnects
STREAM_KEEPALIVE_SECONDS = 15.0
ALERT_JOB = web.AppKey("review_alert_job", AlertJob)


def setup_review(app: web.Application) -> None:
    """Register the review routes under /staff and the review's background work."""
    router = app.router
    router.add_get("/staff/queue", queue_page, name="staff-queue")
    router.add_get("/staff/queue/rows", queue_rows, name="staff-queue-rows")
    router.add_get("/staff/events", event_stream, name="staff-events")
    router.add_get("/staff/flags/{flag_id}", flag_page, name="staff-flag")
    router.add_get("/staff/flags/{flag_id}/live", flag_live, name="staff-flag-live")
    router.add_get("/staff/flags/{flag_id}/export", flag_export, name="staff-flag-export")
    router.add_post("/staff/flags/{flag_id}/{action}", flag_action, name="staff-flag-action")
    register_nav(app, "Review queue", "/staff/queue", FLAG_ROLES)
    app.cleanup_ctx.append(_review_background)
    app.on_shutdown.append(_close_streams)


async def _review_background(app: web.Application) -> AsyncIterator[None]:
    """Runs after the core (database, relay) is up: web replies, live feed, alert job."""
    from web.app import REPOSITORY

    settings = app[SETTINGS]
    repository = app[REPOSITORY]
    setup_web_replies(app, repository, settings.secret_bytes())
    feed = LiveFeed(repository)
    app[LIVE_FEED] = feed
    sender: TelegramAlerts | None = None
    if settings.telegram_token is not None and (
        settings.staff_alert_chat_id or settings.escalation_chat_id
    ):
        sender = TelegramAlerts(
            settings.telegram_token.get_secret_value(), settings.telegram_api_url
        )
    else:
        log.info("staff alerts are logged only: no Telegram token or alert chat configured")
    job = AlertJob(repository, settings, sender)
    app[ALERT_JOB] = job
    # On the scheduler's leader. No grace limit: an alert or escalation check is never
    # skipped, however late; coalesced, as one run covers every flag. Idempotent (staff_alerts).
    app[SCHEDULER].every(
        "staff-alerts", settings.alert_check_seconds, job.run_once, grace=None, coalesce=True
    )
    tasks = [asyncio.create_task(feed.run())]  # per process: this process's event streams
    try:
        yield
    finally:
        feed.close()
        await cancel_and_wait(tasks)
        if sender is not None:
            await sender.close()


async def _close_streams(app: web.Application) -> None:
    feed = app.get(LIVE_FEED)
    if feed is not None:
        feed.close()


# ---------------------------------------------------------------- helpers


def _flag_id(request: web.Request) -> int:
    """The flag id from the URL; 404 for anything but a positive id in range."""
    raw = request.match_info.get("flag_id", "")
    if not _DIGITS.fullmatch(raw):
        raise web.HTTPNotFound()
    value = int(raw)
    if not 1 <= value <= MAX_FLAG_ID:
        raise web.HTTPNotFound()
    return value


def _deadlines(request: web.Request) -> Deadlines:
    return Deadlines.from_settings(request.app[SETTINGS])


def _timing(
    severity: str, created_at: datetime, acknowledged_at: datetime | None, deadlines: Deadlines
) -> dict[str, Any]:
    now = utcnow()
    deadline = deadline_for(severity, created_at, deadlines)
    overdue = acknowledged_at is None and now > deadline
    if acknowledged_at is not None:
        due = "acknowledged"
    elif overdue:
        due = f"overdue by {describe_span(now - deadline)}"
    else:
        due = f"due in {describe_span(deadline - now)}"
    return {
        "age": describe_span(now - created_at),
        "deadline": deadline,
        "due": due,
        "overdue": overdue,
    }


def _queue_context(request: web.Request, items: list[store.QueueItem]) -> dict[str, Any]:
    deadlines = _deadlines(request)
    ordered = sorted(items, key=lambda item: queue_key(item.severity, item.created_at, item.id))
    rows = [
        {
            "item": item,
            "categories": [category_label(c) for c in item.categories],
            "status_label": STATUS_LABELS.get(item.status, item.status),
            **_timing(item.severity, item.created_at, item.acknowledged_at, deadlines),
        }
        for item in ordered
    ]
    return {"rows": rows}


def _flag_context(request: web.Request, flag: store.FlagDetail) -> dict[str, Any]:
    return {
        "flag": flag,
        "segments": highlight_segments(flag.message.text, flag.evidence),
        "categories": [category_label(c) for c in flag.categories],
        "status_label": STATUS_LABELS.get(flag.status, flag.status),
        "is_closed": flag.status in CLOSED,
        "timing": _timing(
            flag.severity, flag.created_at, flag.acknowledged_at, _deadlines(request)
        ),
        "action_labels": ACTION_LABELS,
        "destinations": [(key, DESTINATION_LABELS[key]) for key in REFERRAL_DESTINATIONS],
        "destination_labels": DESTINATION_LABELS,
        "max_text": MAX_TEXT,
        "max_reference": MAX_REFERENCE,
    }


async def _viewed(request: web.Request, flag_id: int, what: str) -> store.FlagDetail:
    """Read a flag for a page and audit the view in the same transaction; 404 when absent."""
    user = current_user(request)
    address = client_address(request)

    def work(uow: UnitOfWork) -> store.FlagDetail | None:
        flag = store.flag_detail(uow.connection, flag_id)
        if flag is not None:
            append_audit(
                uow.connection,
                actor_id=user.id,
                action=f"flag.{what}",
                target=f"flag:{flag_id}",
                address=address,
            )
        return flag

    flag = await run_db(request, work)
    if flag is None:
        raise web.HTTPNotFound()
    log.info("flag viewed", extra={"flag": flag_id, "staff_user_id": user.id, "view": what})
    return flag


# ---------------------------------------------------------------- the queue


@require_role(*FLAG_ROLES)
async def queue_page(request: web.Request) -> web.Response:
    items = await run_db(request, lambda uow: store.open_queue(uow.connection))
    return render(request, "staff/queue.html", _queue_context(request, items))


@require_role(*FLAG_ROLES)
async def queue_rows(request: web.Request) -> web.Response:
    """The queue's table body alone, for the page to swap in when the live feed says so."""
    items = await run_db(request, lambda uow: store.open_queue(uow.connection))
    return render(request, "staff/queue_rows.html", _queue_context(request, items))


@require_role(*FLAG_ROLES)
async def event_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `flag` (ids of new flags) and `change` (flags with news)."""
    feed = request.app[LIVE_FEED]
    response = web.StreamResponse(
        headers={
            **SECURITY_HEADERS,
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_MAX_SECONDS
    with feed.subscribe() as events:
        await response.write(b"retry: 3000\n\n")
        while (left := ends - loop.time()) > 0:
            try:
                event = await asyncio.wait_for(events.get(), min(left, STREAM_KEEPALIVE_SECONDS))
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if event is None:  # the server is stopping
                break
            name, data = event
            await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
    return response


# ---------------------------------------------------------------- one flag


@require_role(*FLAG_ROLES)
async def flag_page(request: web.Request) -> web.Response:
    flag = await _viewed(request, _flag_id(request), "view")
    return render(request, "staff/flag.html", _flag_context(request, flag))


@require_role(*FLAG_ROLES)
async def flag_live(request: web.Request) -> web.Response:
    """The conversation and history parts of a flag page, refreshed live (a view too)."""
    flag = await _viewed(request, _flag_id(request), "view")
    return render(request, "staff/flag_live.html", _flag_context(request, flag))


@require_role(*FLAG_ROLES)
async def flag_export(request: web.Request) -> web.Response:
    flag = await _viewed(request, _flag_id(request), "export")
    context = _flag_context(request, flag)
    context["exported_at"] = utcnow()
    return render(request, "staff/flag_export.html", context)


@require_role(*FLAG_ROLES)
async def flag_action(request: web.Request) -> web.StreamResponse:
    flag_id = _flag_id(request)
    action = ACTIONS.get(request.match_info.get("action", ""))
    if action is None:
        raise web.HTTPNotFound()
    user = current_user(request)
    address = client_address(request)
    form = await request.post()
    try:
        inputs = _inputs(action, form)
    except ActionRefused as refused:
        return _refused(request, flag_id, refused)

    def work(uow: UnitOfWork) -> str | None:
        connection = uow.connection
        flag = store.flag_for_action(connection, flag_id)
        if flag is None:
            raise web.HTTPNotFound()
        state = FlagState(
            status=flag.status,
            contact_consent=flag.contact_consent,
            has_handle=flag.has_handle,
            acknowledged=flag.acknowledged_at is not None,
            claimed_by=flag.claimed_by,
        )
        new_status = check_action(action, state)
        values: dict[str, Any] = {}
        details: dict[str, Any] = {}
        if new_status is not None:
            values["status"] = new_status
            details["status"] = new_status
        if action in _ACKNOWLEDGING and flag.acknowledged_at is None:
            values.update(acknowledged_at=uow.now, acknowledged_by=user.id)
        if action == "claim":
            values.update(claimed_by=user.id, claimed_at=uow.now)
            if flag.claimed_by is not None and flag.claimed_by != user.id:
                details["taken_over_from"] = flag.claimed_by
        elif action in ("close", "not_a_concern"):
            values.update(closed_at=uow.now, outcome=inputs["text"])
        elif action == "reopen":
            values.update(closed_at=None)
        elif action == "referral":
            store.add_referral(
                connection,
                flag_id,
                destination=inputs["destination"],
                reference=inputs["reference"],
                actor_id=user.id,
                now=uow.now,
            )
            details.update(destination=inputs["destination"], reference=inputs["reference"])
        handle = None
        if action == "reply":
            message_id = uow.record_message(flag.respondent_id, "out", inputs["text"])
            uow.link_flag_message(flag_id, message_id, "staff")
            details["message_id"] = message_id
            handle = store.relay_handle(connection, flag_id)
        store.update_flag(connection, flag_id, **values)
        store.add_event(
            connection,
            flag_id,
            action,
            actor_id=user.id,
            now=uow.now,
            text=inputs.get("text") if action != "reply" else None,
            details=details,
        )
        append_audit(
            connection,
            actor_id=user.id,
            action=f"flag.{action}",
            target=f"flag:{flag_id}",
            address=address,
            details=details,
        )
        return handle

    try:
        handle = await run_db(request, work)
    except ActionRefused as refused:
        return _refused(request, flag_id, refused)
    log.info(
        "flag action",
        extra={"flag": flag_id, "action": action, "staff_user_id": user.id, "address": address},
    )
    if action == "reply" and handle is not None:
        await _deliver(request, flag_id, handle, inputs["text"])
    raise web.HTTPSeeOther(f"/staff/flags/{flag_id}")


def _inputs(action: str, form: Any) -> dict[str, str]:
    """The validated form fields an action needs (ActionRefused(400) when wrong)."""
    if action == "reply":
        raw = form.get("text")
        cleaned = clean_text(raw if isinstance(raw, str) else "", limit=MAX_TEXT + 1).text
        return {"text": clean_input(cleaned, "a reply")}
    if action == "note":
        return {"text": clean_input(form.get("text"), "the note")}
    if action == "not_a_concern":
        return {"text": clean_input(form.get("text"), "a reason")}
    if action == "close":
        return {"text": clean_input(form.get("text"), "the outcome")}
    if action == "reopen":
        return {"text": clean_input(form.get("text"), "a reason", required=False)}
    if action == "referral":
        destination = form.get("destination")
        if destination not in REFERRAL_DESTINATIONS:
            raise ActionRefused("Please choose where the referral went.", 400)
        reference = clean_input(form.get("reference"), "the reference", limit=MAX_REFERENCE)
        return {"destination": str(destination), "reference": reference}
    return {}


def _refused(request: web.Request, flag_id: int, refused: ActionRefused) -> web.Response:
    return render(
        request,
        "staff/review_refused.html",
        {"flag_id": flag_id, "message": refused.message},
        status=refused.status,
    )


async def _deliver(request: web.Request, flag_id: int, handle: str, text: str) -> None:
    """Hand the stored reply to the young person's channel; a failure goes into the history."""
    user = current_user(request)
    try:
        channel = await request.app[RELAY].deliver(handle, text)
    except Exception as error:  # RelayError, or whatever the channel raised
        kind = type(error).__name__
        log.error("staff reply not delivered", extra={"flag": flag_id, "error": kind})

        def failed(uow: UnitOfWork) -> None:
            store.add_event(
                uow.connection,
                flag_id,
                "reply_failed",
                actor_id=None,
                now=uow.now,
                details={"error": kind},
            )
            append_audit(
                uow.connection,
                actor_id=None,
                action="flag.reply_failed",
                target=f"flag:{flag_id}",
                address=None,
                details={"by": user.id},
            )

        await run_db(request, failed)
        return
    log.info("staff reply handed to the channel", extra={"flag": flag_id, "channel": channel})
