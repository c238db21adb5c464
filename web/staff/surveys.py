"""Survey versions in the staff app: the stored list, and uploading YAML or an XLSForm.

Facilitators and admins (`SURVEY_ROLES`) may list and upload; everyone else
gets the 403 of `require_role`. An upload is checked exactly as
`main.py survey validate` checks a file (surveys.definition, or
surveys.xlsform for a workbook); a bad file is shown with every problem by
line or by sheet and row, escaped by the template. A good one is stored as a
new survey version (storage.survey_uploads: a stored version is never
replaced) and can then be chosen for a campaign; young people see it when a
campaign that uses it is open, after the catalogue's next refresh (at most a
minute). Every upload, stored or refused, is audited in the same transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from bot.catalogue import definition_json
from storage.audit import append_audit
from storage.repository import UnitOfWork
from storage.review import read
from storage.survey_uploads import StoreResult, store_survey_version, stored_surveys
from surveys.definition import Problem
from surveys.model import Survey
from surveys.xlsform import SheetProblem, is_workbook_name, parse_upload
from web.staff.auth import (
    client_address,
    current_user,
    register_nav,
    render,
    repository_of,
    require_role,
    run_db,
)

log = logging.getLogger("besafe.web.staff.surveys")

SURVEY_ROLES: tuple[str, ...] = ("facilitator", "admin")
# Below the app's 256 KiB request limit, so a too-big file gets this page's message.
MAX_UPLOAD_BYTES = 200_000
FILE_FIELD = "survey_file"
MAX_SHOWN_PROBLEMS = 200
_MAX_NAME = 120


@dataclass(frozen=True)
class ShownProblem:
    where: str  # "survey sheet, row 7", "line 12" or "the file"
    question: str | None
    message: str
    warning: bool


def setup_surveys(app: web.Application) -> None:
    app.router.add_get("/staff/surveys", surveys_page, name="staff-surveys")
    app.router.add_post("/staff/surveys", upload_survey, name="staff-surveys-upload")
    register_nav(app, "Surveys", "/staff/surveys", SURVEY_ROLES)


def _shown(problem: Problem) -> ShownProblem:
    if isinstance(problem, SheetProblem):
        where = str(problem.place)
    else:
        where = f"line {problem.line}" if problem.line > 0 else "the file"
    return ShownProblem(where, problem.question_id, problem.message, problem.severity != "error")


async def _page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    listing = await asyncio.to_thread(read, repository_of(request), stored_surveys)
    return render(
        request,
        "staff/surveys.html",
        {"surveys": listing, "max_upload_kb": MAX_UPLOAD_BYTES // 1000, **context},
        status=status,
    )


@require_role(*SURVEY_ROLES)
async def surveys_page(request: web.Request) -> web.Response:
    return await _page(request)


def _clean_name(name: str) -> str:
    """The uploaded file's name, for messages and the audit log (never a path)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(ch for ch in base if ch.isprintable()).strip()
    return kept[:_MAX_NAME] or "upload"


async def _upload(request: web.Request) -> tuple[bytes, str] | str:
    """(data, file name), or the reason the form holds no usable file."""
    form = await request.post()
    field = form.get(FILE_FIELD)
    if not isinstance(field, web.FileField):
        return "Choose a survey file (.yaml or .xlsx) to upload."
    data = await asyncio.to_thread(field.file.read, MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        return f"The file is too big: a survey file can be at most {MAX_UPLOAD_BYTES // 1000} KB."
    if not data:
        return "The file is empty."
    return data, _clean_name(field.filename or "")


@require_role(*SURVEY_ROLES)
async def upload_survey(request: web.Request) -> web.Response:
    user = current_user(request)
    address = client_address(request)
    upload = await _upload(request)
    if isinstance(upload, str):
        return await _page(request, status=400, refusal=upload)
    data, name = upload
    kind = "xlsform" if is_workbook_name(name) or data[:4] == b"PK\x03\x04" else "yaml"
    parsed = await asyncio.to_thread(parse_upload, data, name)
    result = parsed.result
    shown = [_shown(problem) for problem in [*result.problems, *result.warnings]]
    if result.survey is None:
        count = len(result.problems)

        def refuse(uow: UnitOfWork) -> None:
            append_audit(
                uow.connection,
                actor_id=user.id,
                action="survey.upload_refused",
                target=name,
                address=address,
                details={"format": kind, "problems": count},
            )

        await run_db(request, refuse)
        log.info("survey upload refused", extra={"staff_user_id": user.id, "problems": count})
        return await _page(
            request,
            status=400,
            file_name=name,
            problems=shown[:MAX_SHOWN_PROBLEMS],
            hidden_problems=max(0, len(shown) - MAX_SHOWN_PROBLEMS),
        )
    survey = result.survey
    text = definition_json(survey)
    digest = hashlib.sha256(text.encode()).hexdigest()

    def store(uow: UnitOfWork) -> StoreResult:
        outcome = store_survey_version(uow.connection, survey, text, digest, now=uow.now)
        append_audit(
            uow.connection,
            actor_id=user.id,
            action="survey.upload" if outcome.outcome == "stored" else "survey.upload_refused",
            target=f"{survey.id} v{survey.version}",
            address=address,
            details={"format": kind, "file": name, "outcome": outcome.outcome},
        )
        return outcome

    try:
        stored = await run_db(request, store)
    except IntegrityError:  # the same version stored by someone else at the same moment
        stored = StoreResult("conflict", survey.version)
    log.info(
        "survey upload",
        extra={
            "staff_user_id": user.id,
            "survey": survey.id,
            "version": survey.version,
            "outcome": stored.outcome,
        },
    )
    return await _page(
        request,
        status=200 if stored.outcome in ("stored", "unchanged") else 409,
        file_name=name,
        outcome=stored.outcome,
        next_version=stored.next_version,
        newest=stored.newest,
        survey=_summary(survey),
        problems=shown[:MAX_SHOWN_PROBLEMS],
    )


def _summary(survey: Survey) -> dict[str, Any]:
    return {
        "id": survey.id,
        "version": survey.version,
        "title": survey.title,
        "questions": len(survey.questions),
    }
