"""Survey versions uploaded in the staff app (/staff/surveys): listing and storing.

Stored rows are the same `surveys` rows that survey files make at start-up
(`bot.catalogue.Catalogue.load_directory`), so an uploaded version is offered
by every campaign that names it, after the catalogue's next refresh. A stored
version is never replaced: a changed survey needs a higher version number.
Works on SQLite and PostgreSQL alike; the caller owns the transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection

from storage.tables import campaigns, surveys
from surveys.model import Survey


@dataclass(frozen=True)
class StoredSurvey:
    survey_id: str
    version: int
    title: str
    topic: str
    questions: int
    loaded_at: datetime
    campaigns: int  # campaigns that use this version (a used version can never change)


def stored_surveys(connection: Connection) -> list[StoredSurvey]:
    """Every stored survey version, newest version first within each survey id."""
    used = dict(
        ((row.survey_id, row.survey_version), int(row.count))
        for row in connection.execute(
            select(
                campaigns.c.survey_id,
                campaigns.c.survey_version,
                func.count().label("count"),
            ).group_by(campaigns.c.survey_id, campaigns.c.survey_version)
        )
    )
    rows = connection.execute(
        select(
            surveys.c.survey_id,
            surveys.c.version,
            surveys.c.title,
            surveys.c.topic,
            surveys.c.definition_json,
            surveys.c.loaded_at,
        ).order_by(surveys.c.survey_id, surveys.c.version.desc())
    )
    found = []
    for row in rows:
        try:
            questions = len(json.loads(row.definition_json).get("questions", []))
        except (ValueError, AttributeError):
            questions = 0
        found.append(
            StoredSurvey(
                survey_id=row.survey_id,
                version=int(row.version),
                title=row.title,
                topic=row.topic,
                questions=questions,
                loaded_at=row.loaded_at,
                campaigns=used.get((row.survey_id, int(row.version)), 0),
            )
        )
    return found


Outcome = Literal["stored", "unchanged", "conflict", "older"]


@dataclass(frozen=True)
class StoreResult:
    outcome: Outcome
    newest: int | None  # the highest version stored before this upload

    @property
    def next_version(self) -> int:
        return (self.newest or 0) + 1


def store_survey_version(
    connection: Connection,
    survey: Survey,
    definition_json: str,
    digest: str,
    *,
    now: datetime,
) -> StoreResult:
    """Store a new survey version unless that would change or go behind a stored one.

    - same id and version, same content: "unchanged" (nothing written);
    - same id and version, other content: "conflict" (the stored one stays);
    - a version lower than the newest stored: "older" (numbers only go up, so the
      newest version is always the latest wording);
    - otherwise: "stored".
    """
    versions = {
        int(row.version): row.source_sha256
        for row in connection.execute(
            select(surveys.c.version, surveys.c.source_sha256).where(
                surveys.c.survey_id == survey.id
            )
        )
    }
    newest = max(versions) if versions else None
    if survey.version in versions:
        same = versions[survey.version] == digest
        return StoreResult("unchanged" if same else "conflict", newest)
    if newest is not None and survey.version < newest:
        return StoreResult("older", newest)
    connection.execute(
        insert(surveys).values(
            survey_id=survey.id,
            version=survey.version,
            title=survey.title,
            topic=survey.topic,
            definition_json=definition_json,
            source_sha256=digest,
            loaded_at=now,
        )
    )
    return StoreResult("stored", newest)
