"""Quotes a safeguarding lead approved for a campaign's report (issue 7, "you said").

Only free-text answers of the campaign's survey are ever read here, and never
from a young person who has had any flag (in this campaign or elsewhere): a
disclosure, or anything near one, is never offered. `surveys.quotes` decides
the rest (length, screening today, order). An approval names the answer and
the hash of the text the lead read; an answer changed since, or erased, is not
shown under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, func, select
from sqlalchemy.engine import Connection

from storage.reports import _campaign_row, _survey
from storage.tables import answers, flags, responses
from storage.tables_reports import report_quotes
from surveys.model import Survey
from surveys.quotes import MAX_QUOTE_JSON_CHARS, quote_text, report_order, text_sha256
from surveys.report_data import CampaignInfo

PAGE_SIZE = 100


class QuoteRefused(Exception):
    """An approval that must not happen; the message is for the lead."""


@dataclass(frozen=True)
class QuoteCandidate:
    answer_id: int
    question_id: str
    question_label: str
    text: str
    text_sha256: str
    approved: bool  # approved, and the answer still reads as it did then


@dataclass(frozen=True)
class QuotePage:
    campaign: CampaignInfo
    candidates: tuple[QuoteCandidate, ...]
    next_after: int | None  # answer id to continue after, when there may be more


def _free_text(survey: Survey) -> dict[str, str]:
    return {q.id: q.report_label for q in survey.questions if q.type == "free_text"}


def _offered(campaign_id: int, question_ids: list[str], *, approved_only: bool = False) -> Any:
    """Answers that may be offered, with the approval's hash (None: not approved).

    `approved_only`: start from the campaign's approvals (a report reads a few
    rows, not every free-text answer of the campaign).
    """
    never_flagged = ~exists().where(flags.c.respondent_id == responses.c.respondent_id)
    if approved_only:
        source = report_quotes.join(answers, answers.c.id == report_quotes.c.answer_id).join(
            responses, responses.c.id == answers.c.response_id
        )
    else:
        source = answers.join(responses, responses.c.id == answers.c.response_id).outerjoin(
            report_quotes, report_quotes.c.answer_id == answers.c.id
        )
    # Approvals first: `+ 0` keeps SQLite from starting at the campaign's answers by
    # the report index (every free-text answer) instead of its few approvals.
    of_campaign = answers.c.campaign_id + 0 if approved_only else answers.c.campaign_id
    return (
        select(
            answers.c.id,
            answers.c.question_id,
            answers.c.value_json,
            report_quotes.c.text_sha256,
        )
        .select_from(source)
        .where(
            of_campaign == campaign_id,
            answers.c.question_id.in_(question_ids),
            answers.c.status == "answered",
            answers.c.value_json.is_not(None),
            never_flagged,
        )
    )


def _candidate(row: Any, labels: dict[str, str]) -> QuoteCandidate | None:
    answer_id, question_id, value_json, approved_hash = row
    text = quote_text(value_json)
    if text is None:
        return None
    digest = text_sha256(text)
    return QuoteCandidate(
        int(answer_id), question_id, labels[question_id], text, digest, approved_hash == digest
    )


def quote_page(connection: Connection, code: str, after: int = 0) -> QuotePage:
    """The next page of answers a lead may approve as quotes (raises UnknownCampaign)."""
    campaign = _campaign_row(connection, code)
    labels = _free_text(_survey(connection, campaign.survey_id, campaign.survey_version))
    if not labels:
        return QuotePage(campaign, (), None)
    rows = connection.execute(
        _offered(campaign.id, list(labels))
        .where(answers.c.id > after, func.length(answers.c.value_json) <= MAX_QUOTE_JSON_CHARS)
        .order_by(answers.c.id)
        .limit(PAGE_SIZE)
    ).all()
    found = [c for c in (_candidate(row, labels) for row in rows) if c is not None]
    more = int(rows[-1][0]) if len(rows) == PAGE_SIZE else None
    return QuotePage(campaign, tuple(found), more)


def _one(connection: Connection, code: str, answer_id: int) -> tuple[CampaignInfo, Any]:
    campaign = _campaign_row(connection, code)
    labels = _free_text(_survey(connection, campaign.survey_id, campaign.survey_version))
    row = (
        connection.execute(
            _offered(campaign.id, list(labels)).where(answers.c.id == answer_id)
        ).first()
        if labels
        else None
    )
    return campaign, (None if row is None else _candidate(row, labels))


def approve_quote(
    connection: Connection,
    code: str,
    answer_id: int,
    read_sha256: str,
    *,
    actor_id: int,
    now: datetime,
) -> QuoteCandidate:
    """Approve the answer's text, which the lead read as text with hash `read_sha256`."""
    campaign, candidate = _one(connection, code, answer_id)
    if candidate is None:
        raise QuoteRefused(
            "This answer cannot be quoted: it is not a short free-text answer of this "
            "campaign, or its writer has had a flag."
        )
    if candidate.text_sha256 != read_sha256:
        raise QuoteRefused("The answer has changed since you read it. Read it again first.")
    connection.execute(delete(report_quotes).where(report_quotes.c.answer_id == answer_id))
    connection.execute(
        report_quotes.insert().values(
            answer_id=answer_id,
            campaign_id=campaign.id,
            text_sha256=candidate.text_sha256,
            approved_by=actor_id,
            approved_at=now,
        )
    )
    return candidate


def withdraw_quote(connection: Connection, code: str, answer_id: int) -> bool:
    """Withdraw an approval; False when there was none."""
    campaign = _campaign_row(connection, code)
    result = connection.execute(
        delete(report_quotes).where(
            report_quotes.c.answer_id == answer_id, report_quotes.c.campaign_id == campaign.id
        )
    )
    return bool(result.rowcount)


def approved_quotes(connection: Connection, campaign_id: int, survey: Survey) -> tuple[str, ...]:
    """The campaign's approved quotes as they still read, in report order (text only)."""
    labels = _free_text(survey)
    if not labels:
        return ()
    rows = connection.execute(
        _offered(campaign_id, list(labels), approved_only=True).where(
            report_quotes.c.campaign_id == campaign_id
        )
    )
    return report_order(
        c.text for c in (_candidate(row, labels) for row in rows) if c is not None and c.approved
    )
