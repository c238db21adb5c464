"""Campaigns in the database, on SQLite and PostgreSQL alike: create, edit, transition,
the time-driven sweep, what young people are offered, and the progress counts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.catalogue import Catalogue, definition_json
from config.settings import SHIPPED_SURVEYS_DIR
from storage import campaigns as store
from storage.audit import audit_entries, verify_audit
from storage.campaign_progress import progress_counts
from storage.clock import utcnow
from storage.repository import Repository, SurveyVersionConflict, UnitOfWork, UnknownCampaign
from storage.review import read
from storage.staff import add_user
from storage.tables import campaigns
from surveys.audience import Audience
from surveys.campaigns import FINISH_GRACE, CampaignError, CampaignPlan
from surveys.definition import load_survey_file
from surveys.progress import build_progress

ACTOR = store.Actor(1, "203.0.113.9")


@pytest.fixture
def catalogue(repository: Repository) -> Catalogue:
    found = Catalogue(repository)
    found.load_directory(SHIPPED_SURVEYS_DIR)
    user_id = repository.run(
        lambda uow: add_user(
            uow.connection,
            username="facilitator",
            role="facilitator",
            password_hash="x",
            actor_id=None,
            address="tests",
            now=uow.now,
        )
    )
    assert user_id == ACTOR.staff_user_id
    return found


def new_plan(code: str = "abw-2026", **changes: object) -> CampaignPlan:
    now = utcnow().replace(microsecond=0)
    plan = CampaignPlan(
        code=code,
        title="Anti-Bullying Week",
        survey_id="bullying",
        survey_version=1,
        opens_at=now + timedelta(days=1),
        closes_at=now + timedelta(days=8),
        audience=Audience.build(years=[7, 8], channels=["web"]),
        invitation_text="Tell us how school feels.",
        reminder_text="Still time to finish!",
        reminder_times=(now + timedelta(days=3),),
        send_spread_minutes=30,
        target_responses=200,
    )
    return replace(plan, **changes)  # type: ignore[arg-type]


def audit_actions(repository: Repository) -> list[tuple[str, str | None, int | None]]:
    entries = read(repository, lambda c: audit_entries(c, limit=200))
    return sorted((e.action, e.target, e.actor_id) for e in entries)


def offered(catalogue: Catalogue) -> dict[str, bool]:
    return {offer.code: offer.closing for offer in catalogue.refresh(utcnow())}


def test_create_round_trips_every_field(repository: Repository, catalogue: Catalogue) -> None:
    plan = new_plan()
    created = store.create_campaign(repository, plan, ACTOR)
    assert created.status == "draft"
    assert created.plan == plan
    assert store.get_campaign(repository, "abw-2026").plan == plan
    stored = read(
        repository,
        lambda c: c.execute(
            select(campaigns.c.audience_json, campaigns.c.reminder_times_json).where(
                campaigns.c.code == "abw-2026"
            )
        ).one(),
    )
    # The columns the broadcast helper reads, in the documented forms.
    assert Audience.from_json(stored.audience_json) == plan.audience
    assert json.loads(stored.reminder_times_json) == [
        t.isoformat(timespec="seconds") for t in plan.reminder_times
    ]
    codes = [c.code for c in store.list_campaigns(repository)]
    assert "abw-2026" in codes and "bullying-v1" in codes
    assert ("campaign.create", "campaign:abw-2026", 1) in audit_actions(repository)


def test_create_refuses_a_used_code_and_an_unknown_survey(
    repository: Repository, catalogue: Catalogue
) -> None:
    store.create_campaign(repository, new_plan(), ACTOR)
    with pytest.raises(CampaignError, match="already used"):
        store.create_campaign(repository, new_plan(title="Other"), ACTOR)
    with pytest.raises(CampaignError, match="no stored survey 'bullying' version 9"):
        store.create_campaign(repository, new_plan("other", survey_version=9), ACTOR)
    with pytest.raises(CampaignError, match="lowercase"):
        store.create_campaign(repository, new_plan("Other"), ACTOR)
    assert [c.code for c in store.list_campaigns(repository)].count("abw-2026") == 1


def test_edits_follow_the_state(repository: Repository, catalogue: Catalogue) -> None:
    store.create_campaign(repository, new_plan(), ACTOR)
    edited = store.edit_campaign(
        repository, "abw-2026", new_plan(title="ABW 2026", target_responses=300), ACTOR
    )
    assert edited.plan.title == "ABW 2026" and edited.plan.target_responses == 300
    store.transition_campaign(repository, "abw-2026", "open", ACTOR)
    running = store.get_campaign(repository, "abw-2026").plan
    with pytest.raises(CampaignError, match="survey cannot change under an open campaign"):
        store.edit_campaign(repository, "abw-2026", replace(running, survey_version=2), ACTOR)
    later = running.closes_at + timedelta(days=2)  # type: ignore[operator]
    store.edit_campaign(repository, "abw-2026", replace(running, closes_at=later), ACTOR)
    assert store.get_campaign(repository, "abw-2026").plan.closes_at == later
    with pytest.raises(UnknownCampaign):
        store.edit_campaign(repository, "nope", running, ACTOR)
    assert ("campaign.edit", "campaign:abw-2026", 1) in audit_actions(repository)


def test_transitions_are_checked_and_audited(repository: Repository, catalogue: Catalogue) -> None:
    store.create_campaign(repository, new_plan(), ACTOR)
    assert store.transition_campaign(repository, "abw-2026", "scheduled", ACTOR).status == (
        "scheduled"
    )
    with pytest.raises(CampaignError, match="unschedule it first"):
        store.transition_campaign(repository, "abw-2026", "archived", ACTOR)
    opened = store.transition_campaign(repository, "abw-2026", "open", ACTOR)
    assert opened.status == "open" and opened.plan.opens_at <= utcnow()
    with pytest.raises(CampaignError, match="close the campaign before archiving"):
        store.transition_campaign(repository, "abw-2026", "archived", ACTOR)
    closed = store.transition_campaign(repository, "abw-2026", "closed", ACTOR)
    assert closed.plan.closes_at is not None and closed.plan.closes_at <= utcnow()
    with pytest.raises(CampaignError, match="stays closed"):
        store.transition_campaign(repository, "abw-2026", "open", ACTOR)
    store.transition_campaign(repository, "abw-2026", "archived", ACTOR)
    actions = [a for a, target, _ in audit_actions(repository) if target == "campaign:abw-2026"]
    for action in ("campaign.scheduled", "campaign.open", "campaign.closed", "campaign.archived"):
        assert action in actions
    assert read(repository, verify_audit) is None  # the chain is intact


def test_open_and_closed_campaigns_as_young_people_see_them(
    repository: Repository, catalogue: Catalogue
) -> None:
    store.create_campaign(repository, new_plan(), ACTOR)
    assert "abw-2026" not in offered(catalogue)  # a draft is not offered
    store.transition_campaign(repository, "abw-2026", "open", ACTOR)
    assert offered(catalogue)["abw-2026"] is False  # open: offered to everyone
    store.transition_campaign(repository, "abw-2026", "closed", ACTOR)
    # Closed: only for finishing what was started, within the grace.
    assert offered(catalogue)["abw-2026"] is True
    after_grace = utcnow() + FINISH_GRACE + timedelta(minutes=1)
    assert "abw-2026" not in {o.code for o in catalogue.refresh(after_grace)}


def test_apply_due_transitions_is_idempotent(repository: Repository, catalogue: Catalogue) -> None:
    now = utcnow().replace(microsecond=0)
    store.create_campaign(repository, new_plan("due-now"), ACTOR)
    store.create_campaign(repository, new_plan("ends-soon"), ACTOR)
    store.transition_campaign(repository, "due-now", "scheduled", ACTOR)
    store.transition_campaign(repository, "ends-soon", "open", ACTOR)
    later = now + timedelta(days=9)
    first = store.apply_due_transitions(repository, now + timedelta(days=1, minutes=1))
    assert first == [("due-now", "scheduled", "open")]
    assert store.apply_due_transitions(repository, now + timedelta(days=1, minutes=2)) == []
    second = sorted(store.apply_due_transitions(repository, later))
    assert second == [("due-now", "open", "closed"), ("ends-soon", "open", "closed")]
    assert store.apply_due_transitions(repository, later) == []
    system = [
        (action, target)
        for action, target, actor in audit_actions(repository)
        if actor is None and target and target.startswith("campaign:")
    ]
    assert sorted(system) == [
        ("campaign.closed", "campaign:due-now"),
        ("campaign.closed", "campaign:ends-soon"),
        ("campaign.open", "campaign:due-now"),
    ]


def test_a_changed_survey_needs_a_new_version_and_never_changes_a_campaign(
    repository: Repository, catalogue: Catalogue, tmp_path: Path
) -> None:
    store.create_campaign(repository, new_plan(), ACTOR)
    store.transition_campaign(repository, "abw-2026", "open", ACTOR)
    survey = load_survey_file(SHIPPED_SURVEYS_DIR / "bullying.yaml").survey
    assert survey is not None
    changed = replace(survey, title="Bullying (changed)")
    text = definition_json(changed)
    with pytest.raises(SurveyVersionConflict, match="new version number"):
        repository.save_survey(changed, text, hashlib.sha256(text.encode()).hexdigest())
    newer = replace(changed, version=2)
    text = definition_json(newer)
    assert repository.save_survey(newer, text, hashlib.sha256(text.encode()).hexdigest())
    offers = {o.code: o for o in catalogue.refresh(utcnow())}
    assert offers["abw-2026"].survey.version == 1  # the open campaign keeps its version
    assert offers["abw-2026"].survey.title == survey.title


def _respond(
    repository: Repository,
    who: str,
    *,
    year: str | None,
    answers: list[str],
    complete: bool = False,
    flag: bool = False,
) -> None:
    def work(uow: UnitOfWork) -> None:
        respondent = uow.respondent(hashlib.sha256(who.encode()).hexdigest(), "web")
        uow.start_response(respondent, "abw-2026", "bullying", 1)
        if year is not None:
            uow.record_answer(
                respondent, "abw-2026", "school_year", "answered", year,
                question_type="single_choice",
            )  # fmt: skip
        for question in answers:
            uow.record_answer(
                respondent, "abw-2026", question, "answered", "yes", question_type="yes_no"
            )
        if flag:
            message = uow.record_message(respondent, "in", "text", code="abw-2026")
            uow.record_flag(respondent, message, severity="high", categories=[], evidence=[])
        if complete:
            uow.complete_response(respondent, "abw-2026")

    repository.run(work)


def test_progress_counts_in_sql(repository: Repository, catalogue: Catalogue) -> None:
    store.create_campaign(repository, new_plan(), ACTOR)
    store.transition_campaign(repository, "abw-2026", "open", ACTOR)
    for n in range(6):
        _respond(repository, f"a{n}", year="y7", answers=["bullied_year"], complete=True)
    for n in range(2):
        _respond(repository, f"b{n}", year="y8", answers=["bullied_year", "bullied_month"])
    _respond(repository, "c", year=None, answers=[], flag=True)
    counts = read(repository, lambda c: progress_counts(c, "abw-2026"))
    assert (counts.started, counts.completed, counts.flags) == (9, 6, 1)
    assert counts.stopped_at == {"bullied_month": 2, None: 1}
    assert counts.by_dimension["school_year"] == {"y7": (6, 6), "y8": (2, 0), None: (1, 0)}
    assert sum(counts.started_by_hour.values()) == 9
    assert sum(counts.completed_by_hour.values()) == 6
    shown = build_progress(counts, threshold=5)
    (years, *_) = shown["breakdowns"]
    rows = {row["label"]: (row["started"], row["completed"]) for row in years["rows"]}
    assert rows["Year 8"][0] is None  # 2 started: hidden (a 0 is shown, as in reports)
    with pytest.raises(UnknownCampaign):
        read(repository, lambda c: progress_counts(c, "nope"))
