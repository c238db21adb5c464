"""Approved quotes ("you said"): a safeguarding lead reads a campaign's short free-text
answers and approves, or withdraws, individual quotes for its report.

Safeguarding leads only (`QUOTE_ROLES`): everyone else gets the audited 403 of
`require_role`, on the page and on every action. What is offered is decided
by `storage.quotes` (short free text, never from anyone who has had a flag,
screened again today). An approval carries the hash of the text on the page
the lead read, so text changed in between is refused rather than approved
unread. Each approval and withdrawal is audited in the same transaction; the
audit entry names the answer and the text's hash, never the text. Everything
shown is escaped by the templates' autoescaping.
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from storage.audit import append_audit
from storage.quotes import QuoteRefused, approve_quote, quote_page, withdraw_quote
from storage.repository import UnitOfWork, UnknownCampaign
from storage.review import read
from web.staff.auth import (
    client_address,
    current_user,
    render,
    repository_of,
    require_role,
    run_db,
)

QUOTE_ROLES: tuple[str, ...] = ("safeguarding_lead",)
_ID = re.compile(r"[0-9]{1,10}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_ID = 2**31 - 1  # answers.id is a 32-bit INTEGER on PostgreSQL


def setup_quotes(app: web.Application) -> None:
    router = app.router
    router.add_get("/staff/reports/{code}/quotes", quotes_page, name="staff-report-quotes")
    router.add_post(
        "/staff/reports/{code}/quotes/{answer_id}/{action}",
        quote_action,
        name="staff-report-quote-action",
    )


def _number(text: str | None) -> int | None:
    if text is None or not _ID.fullmatch(text) or int(text) > MAX_ID:
        return None
    return int(text)


@require_role(*QUOTE_ROLES)
async def quotes_page(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    after = _number(request.query.get("after")) or 0
    try:
        page = await asyncio.to_thread(
            read, repository_of(request), lambda connection: quote_page(connection, code, after)
        )
    except UnknownCampaign:
        raise web.HTTPNotFound(text="No campaign has this code.") from None
    return render(request, "staff/quotes.html", {"page": page, "after": after})


@require_role(*QUOTE_ROLES)
async def quote_action(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    action = request.match_info["action"]
    answer_id = _number(request.match_info["answer_id"])
    if answer_id is None or action not in ("approve", "withdraw"):
        raise web.HTTPNotFound()
    form = await request.post()
    read_sha256 = str(form.get("text_sha256", ""))
    after = _number(str(form.get("after", ""))) or 0
    if action == "approve" and not _SHA256.fullmatch(read_sha256):
        return _refused(request, code, "The form was incomplete. Reload the page and try again.")
    user = current_user(request)
    address = client_address(request)

    def work(uow: UnitOfWork) -> bool:
        connection = uow.connection
        details: dict[str, object] = {"campaign": code}
        if action == "approve":
            quote = approve_quote(
                connection, code, answer_id, read_sha256, actor_id=user.id, now=uow.now
            )
            details.update(question=quote.question_id, text_sha256=quote.text_sha256)
        elif not withdraw_quote(connection, code, answer_id):
            return False
        append_audit(
            connection,
            actor_id=user.id,
            action=f"report.quote_{action}",
            target=f"answer:{answer_id}",
            address=address,
            details=details,
        )
        return True

    try:
        await run_db(request, work)
    except UnknownCampaign:
        raise web.HTTPNotFound(text="No campaign has this code.") from None
    except QuoteRefused as refused:
        return _refused(request, code, str(refused))
    target = request.app.router["staff-report-quotes"].url_for(code=code)
    query = f"?after={after}" if after else ""
    raise web.HTTPSeeOther(f"{target}{query}#answer-{answer_id}")


def _refused(request: web.Request, code: str, message: str) -> web.Response:
    return render(
        request,
        "staff/error.html",
        {"heading": "Quote not approved", "message": message},
        status=409,
    )
