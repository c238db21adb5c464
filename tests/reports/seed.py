"""Test data for reports: respondents answering the shipped surveys through the repository."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update

from config.settings import SHIPPED_SURVEYS_DIR
from storage.pseudonyms import pseudonym
from storage.repository import Repository, SurveyVersionConflict, UnitOfWork
from storage.tables import campaigns
from surveys.definition import load_survey_file, survey_to_dict
from surveys.model import Survey

SECRET = b"report-test-secret"


def shipped(name: str = "bullying") -> Survey:
    survey = load_survey_file(SHIPPED_SURVEYS_DIR / f"{name}.yaml").survey
    assert survey is not None
    return survey


def add_campaign(
    repository: Repository, code: str, survey: Survey, opens_at: datetime | None = None
) -> None:
    text = json.dumps(survey_to_dict(survey), sort_keys=True)
    with contextlib.suppress(SurveyVersionConflict):  # the app loaded it from its file
        repository.save_survey(survey, text, hashlib.sha256(text.encode()).hexdigest())
    repository.ensure_campaign(code, survey.id, survey.version, survey.title)
    if opens_at is not None:
        repository.run(
            lambda uow: uow.connection.execute(
                update(campaigns).where(campaigns.c.code == code).values(opens_at=opens_at)
            )
        )


@dataclass
class Person:
    """One respondent's answers: question -> (status, value); `removed` were hidden later."""

    name: str
    answers: dict[str, tuple[str, object | None]]
    completed: bool = True
    removed: list[str] = field(default_factory=list)
    flag: tuple[str, list[str]] | None = None  # severity, categories


def answer_all(repository: Repository, code: str, people: list[Person]) -> None:
    for person in people:

        def work(uow: UnitOfWork, person: Person = person) -> None:
            respondent_id = uow.respondent(pseudonym(SECRET, "web", person.name), "web")
            for question_id, (status, value) in person.answers.items():
                uow.record_answer(respondent_id, code, question_id, status, value)
            for question_id in person.removed:
                uow.remove_answer(respondent_id, code, question_id)
            if person.completed:
                uow.complete_response(respondent_id, code)
            if person.flag is not None:
                message_id = uow.record_message(
                    respondent_id, "in", "secret words that must never show", code=code
                )
                severity, categories = person.flag
                uow.record_flag(
                    respondent_id,
                    message_id,
                    severity=severity,
                    categories=categories,
                    evidence=[{"rule": "test"}],
                )

        repository.run(work)
