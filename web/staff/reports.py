"""Board reports in the staff app: campaign list, report page, cross-tabs, downloads.

Everyone with a staff role may read reports (board viewers, facilitators, leads,
admins): every figure is suppressed and rounded as the settings say, exactly as
in the exports, and a report never holds free text, flag content or anything
about one young person. Counts are read in a read-only transaction off the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.engine import Connection

from storage.clock import utcnow
from storage.reports import campaign_codes, crosstab_cube, report_counts
from storage.repository import UnknownCampaign
from storage.review import read
from surveys.model import Survey
from surveys.report import Report, ReportOptions, build_report, crosstab
from web.exports import FORMATS, MEDIA_TYPES, add_report_filters, export
from web.staff.auth import current_user, register_nav, render, repository_of, require_role
from web.staff.quotes import setup_quotes
from web.staff.review_rules import Deadlines, deadline_for

REPORT_ROLES: tuple[str, ...] = ("board_viewer", "facilitator", "safeguarding_lead", "admin")
log = logging.getLogger("besafe.web.staff.reports")
T = TypeVar("T")


def setup_reports(app: web.Application) -> None:
    add_report_filters(aiohttp_jinja2.get_env(app))
    router = app.router
    router.add_get("/staff/reports", reports_index, name="staff-reports")
    router.add_get("/staff/reports/{code}", report_page, name="staff-report")
    router.add_get(
        "/staff/reports/{code}/download/{format}", report_download, name="staff-report-download"
    )
    register_nav(app, "Reports", "/staff/reports", REPORT_ROLES)
    setup_quotes(app)


async def _read(request: web.Request, work: Callable[[Connection], T]) -> T:
    return await asyncio.to_thread(read, repository_of(request), work)


def _options(request: web.Request) -> ReportOptions:
    from web.keys import SETTINGS

    settings = request.app[SETTINGS]
    deadlines = Deadlines.from_settings(settings)
    return ReportOptions(
        threshold=settings.report_suppression_threshold,
        rounding=settings.report_rounding,
        deadline=lambda severity, raised: deadline_for(severity, raised, deadlines),
        now=utcnow(),
    )


async def _report(request: web.Request, code: str, by: str | None = None) -> tuple[Report, Any]:
    def work(connection: Connection) -> tuple[Any, Any, Any]:
        counts, history = report_counts(connection, code)
        cube = crosstab_cube(connection, code, by) if by in _by_choices(counts.survey) else None
        return counts, history, cube

    try:
        counts, history, by_cube = await _read(request, work)
    except UnknownCampaign:
        raise web.HTTPNotFound(text="No campaign has this code.") from None
    options = _options(request)
    report = await asyncio.to_thread(build_report, counts, options, history)
    tables = []
    if by_cube is not None:
        for question in report.questions:
            if question.id == by:
                continue
            table = crosstab(counts, by_cube, question.id, options)
            if table is not None:
                tables.append((question, table))
    return report, {"crosstabs": tables, "by_choices": list(_by_choices(counts.survey).items())}


def _by_choices(survey: Survey) -> dict[str, str]:
    """Questions a report can be broken down by: single-choice and yes/no, not demographics."""
    return {
        q.id: q.report_label
        for q in survey.questions
        if q.type in ("single_choice", "yes_no") and q.dimension is None
    }


@require_role(*REPORT_ROLES)
async def reports_index(request: web.Request) -> web.Response:
    campaigns = await asyncio.to_thread(campaign_codes, repository_of(request))
    return render(request, "staff/reports.html", {"campaigns": campaigns})


@require_role(*REPORT_ROLES)
async def report_page(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    by = request.query.get("by") or None
    report, extra = await _report(request, code, by)
    if by not in dict(extra["by_choices"]):
        by = None
    log.info(
        "report viewed",
        extra={"staff_user_id": current_user(request).id, "campaign": code, "by": by},
    )
    return render(
        request,
        "staff/report.html",
        {"report": report, "by": by, "formats": FORMATS, **extra},
    )


@require_role(*REPORT_ROLES)
async def report_download(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    format_ = request.match_info["format"]
    if format_ not in FORMATS:
        raise web.HTTPNotFound(text="Unknown report format.")
    report, _ = await _report(request, code)
    data = await asyncio.to_thread(export, report, format_)
    log.info(
        "report downloaded",
        extra={"staff_user_id": current_user(request).id, "campaign": code, "format": format_},
    )
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in code)[:80] or "report"
    return web.Response(
        body=data,
        headers={
            "Content-Type": MEDIA_TYPES[format_],
            "Content-Disposition": f'attachment; filename="be-safe-report-{safe}.{format_}"',
            "Cache-Control": "no-store",
        },
    )
