"""A campaign's live progress as counts, GROUP BY in SQL: nothing about one young person.

Started and completed by UTC hour (folded into London days by `surveys.progress`,
since one London day is 23 to 25 UTC hours), the furthest question reached by
those who have not finished, starters and finishers by the answer to the survey's school
year and area questions, and the number of flags raised in the campaign's
responses. Suppression is applied by `surveys.progress`, not here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from storage.repository import UnknownCampaign
from storage.tables import answer_choices, answers, campaigns, flags, responses, surveys


@dataclass(frozen=True)
class ProgressCounts:
    code: str
    title: str
    status: str
    target: int | None
    questions: tuple[tuple[str, str, str | None], ...]  # (id, report label, dimension)
    started: int = 0
    completed: int = 0
    started_by_hour: dict[datetime, int] = field(default_factory=dict)
    completed_by_hour: dict[datetime, int] = field(default_factory=dict)
    # Furthest question (survey order) answered in responses not completed; None: none.
    stopped_at: dict[str | None, int] = field(default_factory=dict)
    # dimension -> answer value (None: not answered) -> (started, completed)
    by_dimension: dict[str, dict[str | None, tuple[int, int]]] = field(default_factory=dict)
    flags: int = 0


def _hour(connection: Connection, column: ColumnElement) -> ColumnElement:
    if connection.dialect.name == "postgresql":
        return func.date_trunc("hour", column)  # a timestamp; cheaper than to_char
    return func.strftime("%Y-%m-%d %H", column)


def _hours(rows: Iterable[Any]) -> dict[datetime, int]:
    hours: dict[datetime, int] = {}
    for bucket, count in rows:
        hour = bucket if isinstance(bucket, datetime) else datetime.strptime(bucket, "%Y-%m-%d %H")
        hours[hour] = hours.get(hour, 0) + int(count)
    return hours


def progress_counts(connection: Connection, code: str) -> ProgressCounts:
    """Every count the progress page shows, for the campaign with `code` (UnknownCampaign)."""
    row = connection.execute(
        select(
            campaigns.c.id,
            campaigns.c.title,
            campaigns.c.status,
            campaigns.c.target_responses,
            surveys.c.definition_json,
        )
        .select_from(campaigns)
        .outerjoin(
            surveys,
            and_(
                surveys.c.survey_id == campaigns.c.survey_id,
                surveys.c.version == campaigns.c.survey_version,
            ),
        )
        .where(campaigns.c.code == code)
    ).first()
    if row is None:
        raise UnknownCampaign(code)
    campaign_id = row.id
    questions: list[tuple[str, str, str | None]] = []
    try:
        for question in json.loads(row.definition_json or "{}").get("questions", []):
            questions.append(
                (
                    str(question.get("id")),
                    str(question.get("report_label") or question.get("id")),
                    question.get("dimension"),
                )
            )
    except (ValueError, AttributeError):
        questions = []
    of_campaign = responses.c.campaign_id == campaign_id
    done = case((responses.c.status == "completed", 1), else_=0)

    totals = connection.execute(
        select(func.count(), func.coalesce(func.sum(done), 0)).where(of_campaign)
    ).one()

    started_hour = _hour(connection, responses.c.started_at)
    started_by_hour = _hours(
        connection.execute(
            select(started_hour, func.count()).where(of_campaign).group_by(started_hour)
        )
    )
    completed_hour = _hour(connection, responses.c.completed_at)
    completed_by_hour = _hours(
        connection.execute(
            select(completed_hour, func.count())
            .where(
                of_campaign,
                responses.c.status == "completed",
                responses.c.completed_at.is_not(None),
            )
            .group_by(completed_hour)
        )
    )

    # Where each unfinished response got to: its furthest answered question in survey
    # order (a CASE maps ids to positions; GROUP BY response streams through the
    # (response_id, question_id) index, several times faster than a window function).
    stopped_at: dict[str | None, int] = {}
    positions = {qid: position for position, (qid, _, _) in enumerate(questions)}
    if positions:
        furthest = (
            select(func.max(case(positions, value=answers.c.question_id)).label("position"))
            .select_from(responses.join(answers, answers.c.response_id == responses.c.id))
            .where(of_campaign, responses.c.status != "completed")
            .group_by(responses.c.id)
            .subquery()
        )
        for position, count in connection.execute(
            select(furthest.c.position, func.count()).group_by(furthest.c.position)
        ):
            key = None if position is None else questions[int(position)][0]
            stopped_at[key] = stopped_at.get(key, 0) + int(count)
    unfinished = int(totals[0]) - int(totals[1])
    if unfinished - sum(stopped_at.values()) > 0:
        stopped_at[None] = unfinished - sum(stopped_at.values())

    by_dimension: dict[str, dict[str | None, tuple[int, int]]] = {}
    for question_id, _label, dimension in questions:
        if dimension not in ("school_year", "area") or dimension in by_dimension:
            continue
        value = answer_choices.c.value
        rows = connection.execute(
            select(value, func.count(), func.coalesce(func.sum(done), 0))
            .select_from(
                responses.outerjoin(
                    answer_choices,
                    and_(
                        answer_choices.c.response_id == responses.c.id,
                        answer_choices.c.question_id == question_id,
                    ),
                )
            )
            .where(of_campaign)
            .group_by(value)
        )
        by_dimension[dimension] = {key: (int(s), int(c)) for key, s, c in rows}

    flag_count = connection.execute(
        select(func.count())
        .select_from(flags.join(responses, responses.c.id == flags.c.response_id))
        .where(of_campaign)
    ).scalar_one()
    return ProgressCounts(
        code=code,
        title=row.title,
        status=row.status,
        target=row.target_responses,
        questions=tuple(questions),
        started=int(totals[0]),
        completed=int(totals[1]),
        started_by_hour=started_by_hour,
        completed_by_hour=completed_by_hour,
        stopped_at=stopped_at,
        by_dimension=by_dimension,
        flags=int(flag_count),
    )
