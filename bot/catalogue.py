"""Which surveys can be taken now: survey files -> database -> offers.

Survey files only seed the database; what is offered comes from stored
definitions and open campaigns, so a survey never changes under a campaign
that uses it. Each survey file also gets a default always-open campaign
(code `<survey id>-v<version>`) until facilitators run their own campaigns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from storage.campaigns import finishing_campaigns
from storage.repository import Repository, SurveyVersionConflict
from surveys.definition import Problem, load_survey_dir, survey_from_dict, survey_to_dict
from surveys.events import Offer
from surveys.model import Survey

log = logging.getLogger("besafe.catalogue")

_DEFAULT_CODE = re.compile(r"^(?P<survey>[a-z0-9_]+)-v(?P<version>\d+)$")


def default_campaign_code(survey: Survey) -> str:
    return f"{survey.id}-v{survey.version}"


def definition_json(survey: Survey) -> str:
    return json.dumps(survey_to_dict(survey), sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class LoadReport:
    loaded: tuple[Survey, ...]
    problems: tuple[Problem, ...]
    refused: tuple[str, ...]  # survey ids whose file changed without a new version


class Catalogue:
    """Open offers, refreshed from the database. Thread-safe to read."""

    def __init__(self, repository: Repository) -> None:
        self._repository = repository
        self._offers: tuple[Offer, ...] = ()
        self._lock = threading.Lock()

    def load_directory(self, directory: Path) -> LoadReport:
        """Store every valid survey file in `directory`; a bad file is refused, never fatal."""
        surveys, problems = load_survey_dir(directory)
        for problem in problems:
            log.error("survey file refused", extra={"problem": str(problem)})
        loaded: list[Survey] = []
        refused: list[str] = []
        for survey in surveys:
            text = definition_json(survey)
            digest = hashlib.sha256(text.encode()).hexdigest()
            try:
                self._repository.save_survey(survey, text, digest)
            except SurveyVersionConflict:
                log.error(
                    "survey changed without a new version number; the stored version stays",
                    extra={"survey": survey.id, "version": survey.version},
                )
                refused.append(survey.id)
                continue
            self._repository.ensure_campaign(
                default_campaign_code(survey), survey.id, survey.version, survey.title
            )
            loaded.append(survey)
        return LoadReport(tuple(loaded), tuple(problems), tuple(refused))

    def refresh(self, now: datetime) -> tuple[Offer, ...]:
        definitions = {
            (record.survey_id, record.version): record
            for record in self._repository.survey_definitions()
        }
        newest_default: dict[str, int] = {}
        campaigns = self._repository.open_campaigns(now)
        for campaign in campaigns:
            match = _DEFAULT_CODE.match(campaign.code)
            if match and match["survey"] == campaign.survey_id:
                newest_default[campaign.survey_id] = max(
                    newest_default.get(campaign.survey_id, 0), campaign.survey_version
                )
        offers: list[Offer] = []
        for campaign in campaigns:
            match = _DEFAULT_CODE.match(campaign.code)
            if (
                match
                and match["survey"] == campaign.survey_id
                and campaign.survey_version != newest_default[campaign.survey_id]
            ):
                continue  # an older version's default campaign is superseded
            record = definitions.get((campaign.survey_id, campaign.survey_version))
            if record is None:
                log.error(
                    "campaign names a survey that is not stored", extra={"code": campaign.code}
                )
                continue
            survey = survey_from_dict(json.loads(record.definition_json))
            offers.append(Offer(code=campaign.code, survey=survey, title=campaign.title))
        # Closed within the grace: only for finishing a survey already started (engine).
        listed = {offer.code for offer in offers}
        for campaign in finishing_campaigns(self._repository, now):
            record = definitions.get((campaign.survey_id, campaign.survey_version))
            if record is None or campaign.code in listed:
                continue
            survey = survey_from_dict(json.loads(record.definition_json))
            offers.append(
                Offer(code=campaign.code, survey=survey, title=campaign.title, closing=True)
            )
        offers.sort(key=lambda offer: offer.title)
        with self._lock:
            self._offers = tuple(offers)
        return self._offers

    def offers(self) -> tuple[Offer, ...]:
        with self._lock:
            return self._offers
