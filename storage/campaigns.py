"""Campaigns in the database: create, edit, list, get, transition, and the time-driven sweep.

The rules (what may change in which state, which transitions are allowed) are
`surveys.campaigns`; this module reads the stored campaign, asks the rules, and
writes the result in the same transaction as its audit entry. A state change is
a conditional UPDATE (`WHERE status = <the state it was read in>`), so two
processes running `apply_due_transitions` at once change each campaign once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row

from storage.audit import append_audit
from storage.clock import as_naive_utc
from storage.repository import CampaignRecord, Repository, UnitOfWork, UnknownCampaign
from storage.tables import campaigns, surveys
from surveys.audience import Audience, AudienceError
from surveys.campaigns import (
    FINISH_GRACE,
    CampaignError,
    CampaignPlan,
    Timing,
    check_edit,
    due_transitions,
    transition_plan,
    validate_plan,
)

log = logging.getLogger("besafe.storage.campaigns")
T = TypeVar("T")


@dataclass(frozen=True)
class Campaign:
    id: int
    status: str
    plan: CampaignPlan
    created_at: datetime
    updated_at: datetime

    @property
    def code(self) -> str:
        return self.plan.code

    @property
    def title(self) -> str:
        return self.plan.title


@dataclass(frozen=True)
class Actor:
    """Who did it, for the audit log (None: the system, e.g. the scheduled sweep)."""

    staff_user_id: int | None
    address: str | None = None


SYSTEM = Actor(None)


def _columns() -> tuple:
    c = campaigns.c
    return (
        c.id,
        c.code,
        c.status,
        c.title,
        c.survey_id,
        c.survey_version,
        c.opens_at,
        c.closes_at,
        c.audience_json,
        c.invitation_text,
        c.reminder_text,
        c.reminder_times_json,
        c.send_spread_minutes,
        c.target_responses,
        c.created_at,
        c.updated_at,
    )


def _from_row(row: Row) -> Campaign:
    try:
        audience = Audience.from_json(row.audience_json)
    except AudienceError:
        log.error("stored campaign audience unreadable", extra={"code": row.code})
        audience = Audience()
    try:
        times = tuple(datetime.fromisoformat(t) for t in json.loads(row.reminder_times_json))
    except (ValueError, TypeError):
        log.error("stored campaign reminder times unreadable", extra={"code": row.code})
        times = ()
    plan = CampaignPlan(
        code=row.code,
        title=row.title,
        survey_id=row.survey_id,
        survey_version=row.survey_version,
        opens_at=row.opens_at,
        closes_at=row.closes_at,
        audience=audience,
        invitation_text=row.invitation_text,
        reminder_text=row.reminder_text,
        reminder_times=times,
        send_spread_minutes=row.send_spread_minutes,
        target_responses=row.target_responses,
    )
    return Campaign(row.id, row.status, plan, row.created_at, row.updated_at)


def _values(plan: CampaignPlan) -> dict[str, object]:
    return {
        "title": plan.title,
        "survey_id": plan.survey_id,
        "survey_version": plan.survey_version,
        "opens_at": as_naive_utc(plan.opens_at),
        "closes_at": None if plan.closes_at is None else as_naive_utc(plan.closes_at),
        "audience_json": plan.audience.to_json(),
        "invitation_text": plan.invitation_text,
        "reminder_text": plan.reminder_text,
        "reminder_times_json": json.dumps(
            [as_naive_utc(t).isoformat(timespec="seconds") for t in plan.reminder_times]
        ),
        "send_spread_minutes": plan.send_spread_minutes,
        "target_responses": plan.target_responses,
    }


# ---------------------------------------------------------------- reads


def find_campaign(connection: Connection, code: str) -> Campaign | None:
    row = connection.execute(select(*_columns()).where(campaigns.c.code == code)).first()
    return None if row is None else _from_row(row)


def list_in(connection: Connection, *, include_archived: bool = True) -> list[Campaign]:
    query = select(*_columns()).order_by(campaigns.c.opens_at.desc(), campaigns.c.code)
    if not include_archived:
        query = query.where(campaigns.c.status != "archived")
    return [_from_row(row) for row in connection.execute(query)]


def get_campaign(repository: Repository, code: str) -> Campaign:
    """The campaign with this code; UnknownCampaign when none has it."""

    def work(connection: Connection) -> Campaign | None:
        return find_campaign(connection, code)

    found = _read(repository, work)
    if found is None:
        raise UnknownCampaign(code)
    return found


def list_campaigns(repository: Repository, *, include_archived: bool = True) -> list[Campaign]:
    """Every campaign, newest opening first."""
    return _read(repository, lambda c: list_in(c, include_archived=include_archived))


def stored_surveys(repository: Repository) -> list[tuple[str, int, str]]:
    """(survey id, version, title) of every stored survey version, to choose from."""

    def work(connection: Connection) -> list[tuple[str, int, str]]:
        rows = connection.execute(
            select(surveys.c.survey_id, surveys.c.version, surveys.c.title).order_by(
                surveys.c.survey_id, surveys.c.version
            )
        )
        return [(row[0], row[1], row[2]) for row in rows]

    return _read(repository, work)


def _read(repository: Repository, work: Callable[[Connection], T]) -> T:
    """A read-only transaction (no writer lock on SQLite)."""
    with repository.engine.connect() as connection, connection.begin():
        return work(connection)


# ---------------------------------------------------------------- writes


def _check_survey(connection: Connection, plan: CampaignPlan) -> None:
    found = connection.execute(
        select(surveys.c.id).where(
            surveys.c.survey_id == plan.survey_id, surveys.c.version == plan.survey_version
        )
    ).first()
    if found is None:
        raise CampaignError(
            f"no stored survey {plan.survey_id!r} version {plan.survey_version}: "
            "load or import the survey first (python main.py survey list shows them)"
        )


def create_in(uow: UnitOfWork, plan: CampaignPlan, actor: Actor) -> Campaign:
    plan = validate_plan(plan)
    connection = uow.connection
    if find_campaign(connection, plan.code) is not None:
        raise CampaignError(f"the join code {plan.code!r} is already used by another campaign")
    _check_survey(connection, plan)
    connection.execute(
        insert(campaigns).values(
            code=plan.code,
            status="draft",
            created_at=uow.now,
            updated_at=uow.now,
            **_values(plan),
        )
    )
    append_audit(
        connection,
        actor_id=actor.staff_user_id,
        action="campaign.create",
        target=f"campaign:{plan.code}",
        address=actor.address,
        details={"survey": plan.survey_id, "version": plan.survey_version},
    )
    created = find_campaign(connection, plan.code)
    assert created is not None
    return created


def create_campaign(repository: Repository, plan: CampaignPlan, actor: Actor) -> Campaign:
    """Store a new campaign as a draft; CampaignError for a bad plan or a used code."""
    return repository.run(lambda uow: create_in(uow, plan, actor))


def edit_in(uow: UnitOfWork, code: str, plan: CampaignPlan, actor: Actor) -> Campaign:
    connection = uow.connection
    before = find_campaign(connection, code)
    if before is None:
        raise UnknownCampaign(code)
    # A default campaign's code (made by bot.catalogue) predates the code rules.
    plan = validate_plan(plan, check_code_rules=False)
    check_edit(before.status, before.plan, plan)
    changed = sorted(before.plan.changed_fields(plan))
    if not changed:
        return before
    if "survey_id" in changed or "survey_version" in changed:
        _check_survey(connection, plan)
    connection.execute(
        update(campaigns)
        .where(campaigns.c.code == code, campaigns.c.status == before.status)
        .values(updated_at=uow.now, **_values(plan))
    )
    append_audit(
        connection,
        actor_id=actor.staff_user_id,
        action="campaign.edit",
        target=f"campaign:{code}",
        address=actor.address,
        details={"changed": changed},
    )
    after = find_campaign(connection, code)
    assert after is not None
    return after


def edit_campaign(repository: Repository, code: str, plan: CampaignPlan, actor: Actor) -> Campaign:
    """Change a campaign's plan as far as its state allows; CampaignError says what not."""
    return repository.run(lambda uow: edit_in(uow, code, plan, actor))


def transition_in(uow: UnitOfWork, code: str, target: str, actor: Actor) -> Campaign:
    connection = uow.connection
    before = find_campaign(connection, code)
    if before is None:
        raise UnknownCampaign(code)
    plan = transition_plan(before.status, target, before.plan, uow.now)
    _write_transition(uow, before, target, plan, actor, automatic=False)
    after = find_campaign(connection, code)
    assert after is not None
    return after


def transition_campaign(repository: Repository, code: str, target: str, actor: Actor) -> Campaign:
    """Move a campaign to `target` now (CampaignError with the reason when not allowed)."""
    return repository.run(lambda uow: transition_in(uow, code, target, actor))


def _write_transition(
    uow: UnitOfWork,
    before: Campaign,
    target: str,
    plan: CampaignPlan,
    actor: Actor,
    *,
    automatic: bool,
) -> bool:
    changed = uow.connection.execute(
        update(campaigns)
        .where(campaigns.c.id == before.id, campaigns.c.status == before.status)
        .values(
            status=target,
            opens_at=plan.opens_at,
            closes_at=plan.closes_at,
            updated_at=uow.now,
        )
    ).rowcount
    if not changed:
        return False  # someone else moved it first
    append_audit(
        uow.connection,
        actor_id=actor.staff_user_id,
        action=f"campaign.{target}",
        target=f"campaign:{before.code}",
        address=actor.address,
        details={"from": before.status, "automatic": automatic},
    )
    return True


def apply_due_transitions(repository: Repository, now: datetime) -> list[tuple[str, str, str]]:
    """Open scheduled campaigns whose time came, close open ones whose time passed.

    Idempotent: run it as often as you like (every ~30 s), from several processes;
    each change happens once. Returns (code, from, to) for the changes made here.
    """
    moment = as_naive_utc(now)

    def work(uow: UnitOfWork) -> list[tuple[str, str, str]]:
        rows = uow.connection.execute(
            select(
                campaigns.c.code, campaigns.c.status, campaigns.c.opens_at, campaigns.c.closes_at
            ).where(campaigns.c.status.in_(("scheduled", "open")))
        )
        due = due_transitions((Timing(*row) for row in rows), moment)
        made: list[tuple[str, str, str]] = []
        for change in due:
            before = find_campaign(uow.connection, change.code)
            if before is None or before.status != change.current:
                continue
            if _write_transition(uow, before, change.target, before.plan, SYSTEM, automatic=True):
                made.append((change.code, change.current, change.target))
        return made

    made = repository.run(work)
    for code, current, target in made:
        log.info("campaign moved on time", extra={"code": code, "from": current, "to": target})
    return made


def finishing_campaigns(repository: Repository, now: datetime) -> list[CampaignRecord]:
    """Campaigns closed less than `FINISH_GRACE` ago: those who started may still finish."""
    moment = as_naive_utc(now)

    def work(connection: Connection) -> list[CampaignRecord]:
        rows = connection.execute(
            select(
                campaigns.c.code,
                campaigns.c.survey_id,
                campaigns.c.survey_version,
                campaigns.c.title,
            )
            .where(
                campaigns.c.status.in_(("open", "closed")),
                campaigns.c.closes_at <= moment,
                campaigns.c.closes_at > moment - FINISH_GRACE,
            )
            .order_by(campaigns.c.code)
        )
        return [CampaignRecord(*row) for row in rows]

    return _read(repository, work)
