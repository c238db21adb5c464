"""Repositories: every read and write the application makes, in transactions.

`Repository.run(work)` runs `work(uow)` in one transaction and retries the
whole of it when the database is busy; the dispatcher does a whole turn
(respondent, state, message, flag, answers) in one `run`, so a disclosure is
stored in the same transaction as the message that carried it.

Statements are SQLAlchemy Core on the tables of `storage.tables`, the hot ones
built once per dialect (`_Statements`), with dialect upserts (ON CONFLICT) for
SQLite and PostgreSQL.
Nothing here knows about channels beyond storing the channel's name.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    DateTime,
    Engine,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.sql.dml import Insert

from storage.clock import as_naive_utc, utcnow
from storage.db import SQLITE_BEGIN_OPTION
from storage.tables import (
    answer_choices,
    answers,
    campaigns,
    conversations,
    flag_messages,
    flags,
    messages,
    processed_deliveries,
    respondents,
    responses,
    surveys,
)
from surveys.definition import survey_from_dict
from surveys.model import CHOICE_TYPES, Survey
from surveys.report_groups import GroupCoding

log = logging.getLogger("besafe.storage")

# Flag statuses after which the young person is no longer in a conversation with staff.
CLOSED_FLAG_STATUSES: tuple[str, ...] = ("closed", "not_a_concern")

T = TypeVar("T")

# PostgreSQL SQLSTATEs worth retrying the whole transaction for.
_RETRY_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up)
    }
)
_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_SQLITE_BUSY_WORDS = ("database is locked", "database is busy", "database table is locked")
_MAX_DELAY = 1.0  # seconds; the longest single back-off
# respondents.last_seen_at is kept to this resolution (saves a write per message).
LAST_SEEN_RESOLUTION = timedelta(minutes=5)
# responses.updated_at likewise (it only drives session expiry, measured in hours).
TOUCH_RESOLUTION = timedelta(minutes=1)
MAX_CHOICE_LENGTH = 200  # answer_choices.value is VARCHAR(200)
_CHOICE_LIKE = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


class StorageBusyError(Exception):
    """The database stayed busy (locked, or unreachable) through every retry."""


class SurveyVersionConflict(Exception):
    """A survey with this id and version is stored with different content.

    A changed survey needs a new version number, so that answers already given
    keep meaning what they meant.
    """


class UnknownCampaign(LookupError):
    """No campaign has this code."""

    def __init__(self, code: str) -> None:
        super().__init__(f"no campaign has the code {code!r}")
        self.code = code


@dataclass(frozen=True)
class SurveyRecord:
    survey_id: str
    version: int
    title: str
    topic: str
    definition_json: str
    source_sha256: str


@dataclass(frozen=True)
class CampaignRecord:
    code: str
    survey_id: str
    survey_version: int
    title: str


def is_busy_error(error: BaseException) -> bool:
    """True when `error` means "try the transaction again": locked, conflicting or disconnected."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str) and (sqlstate in _RETRY_SQLSTATES or sqlstate.startswith("08")):
        return True
    if isinstance(original, sqlite3.OperationalError):
        code = getattr(original, "sqlite_errorcode", None)
        if isinstance(code, int) and (code & 0xFF) in _SQLITE_BUSY_CODES:
            return True
        return any(words in str(original).lower() for words in _SQLITE_BUSY_WORDS)
    return False


def _as_datetime(value: object) -> datetime | None:
    """A datetime read through the driver path: SQLite gives its text form."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value if isinstance(value, datetime) else None


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Repository:
    """The application's way into the database. Thread-safe; share one per engine."""

    def __init__(self, engine: Engine, *, attempts: int = 8, base_delay: float = 0.01) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._engine = engine
        self._attempts = attempts
        self._base_delay = base_delay
        self._is_sqlite = engine.dialect.name == "sqlite"
        # (survey_id, version) -> {question_id: question type}; definitions never change.
        self._question_types: dict[tuple[str, int], dict[str, str]] = {}
        # (survey_id, version) -> how its responses' report groups are coded (same read)
        self._group_codings: dict[tuple[str, int], GroupCoding] = {}
        self._types_lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        return self._engine

    # ------------------------------------------------------------ transactions

    def run(self, work: Callable[[UnitOfWork], T]) -> T:
        """One transaction around `work`; commit on success, rollback on error.

        Retries the whole `work` with exponential backoff and jitter while the
        database is busy or locked (SQLite), or on a PostgreSQL serialization
        failure, deadlock, lock timeout or lost connection; after `attempts`
        raises StorageBusyError. Other errors propagate at once. `work` may run
        more than once, so it must not have effects outside the transaction.
        """
        return self._run(work, write=True)

    def _run(self, work: Callable[[UnitOfWork], T], *, write: bool) -> T:
        last: DBAPIError | None = None
        for attempt in range(1, self._attempts + 1):
            try:
                with self._engine.connect() as connection:
                    if write and self._is_sqlite:
                        # Take the write lock at BEGIN: no deadlock upgrading a read lock.
                        connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
                    with connection.begin():
                        return work(UnitOfWork(connection, self))
            except DBAPIError as error:
                if not is_busy_error(error):
                    raise
                last = error
            if attempt < self._attempts:
                delay = min(_MAX_DELAY, self._base_delay * 2 ** (attempt - 1))
                time.sleep(delay * random.uniform(0.5, 1.0))
        log.warning(
            "database busy: giving up",
            extra={"attempts": self._attempts, "error": str(last.orig if last else None)},
        )
        raise StorageBusyError(
            f"the database stayed busy through {self._attempts} attempts"
        ) from last

    def run_batch(self, works: Sequence[Callable[[UnitOfWork], Any]]) -> list[tuple[bool, Any]]:
        """Run several units of work in ONE transaction, each in its own savepoint.

        Returns one (ok, result-or-exception) per unit, in order. A unit that
        raises is rolled back to its savepoint and the others carry on; a busy
        or locked database retries the whole batch as `run` does. Results are
        returned only after the commit, so nothing is reported done that could
        still be lost. Used by `storage.batching.WriteBatcher` (group commit).
        """
        if len(works) == 1:
            try:
                return [(True, self.run(works[0]))]
            except Exception as error:
                return [(False, error)]

        def batch(uow: UnitOfWork) -> list[tuple[bool, Any]]:
            outcomes: list[tuple[bool, Any]] = []
            connection = uow.connection
            # Plain SAVEPOINT statements: SQLAlchemy's begin_nested() costs
            # several times more, and these units never nest further.
            for work in works:
                unit = UnitOfWork(connection, self)
                unit._driver_sql("SAVEPOINT unit")
                try:
                    result = work(unit)
                except Exception as error:
                    if isinstance(error, DBAPIError) and is_busy_error(error):
                        raise  # retry the whole batch
                    unit._driver_sql("ROLLBACK TO SAVEPOINT unit")
                    unit._driver_sql("RELEASE SAVEPOINT unit")
                    outcomes.append((False, error))
                else:
                    unit._driver_sql("RELEASE SAVEPOINT unit")
                    outcomes.append((True, result))
            return outcomes

        return self.run(batch)

    # ------------------------------------------------------------ catalogue

    def save_survey(self, survey: Survey, definition_json: str, source_sha256: str) -> bool:
        """Store a survey definition. True if newly stored, False if already stored as is.

        The same (id, version) with a different sha256 raises SurveyVersionConflict.
        """

        def work(uow: UnitOfWork) -> bool:
            connection = uow.connection
            inserted = connection.execute(
                uow.insert(surveys)
                .values(
                    survey_id=survey.id,
                    version=survey.version,
                    title=survey.title,
                    topic=survey.topic,
                    definition_json=definition_json,
                    source_sha256=source_sha256,
                    loaded_at=uow.now,
                )
                .on_conflict_do_nothing(index_elements=["survey_id", "version"])
                .returning(surveys.c.id)
            ).first()
            if inserted is not None:
                return True
            stored = connection.execute(
                select(surveys.c.source_sha256).where(
                    surveys.c.survey_id == survey.id, surveys.c.version == survey.version
                )
            ).scalar_one()
            if stored != source_sha256:
                raise SurveyVersionConflict(
                    f"survey {survey.id!r} version {survey.version} is already stored with "
                    "different content; give the changed survey a new version number"
                )
            return False

        return self.run(work)

    def survey_definitions(self) -> list[SurveyRecord]:
        """Every stored survey definition, by survey id and version."""

        def work(uow: UnitOfWork) -> list[SurveyRecord]:
            rows = uow.connection.execute(
                select(
                    surveys.c.survey_id,
                    surveys.c.version,
                    surveys.c.title,
                    surveys.c.topic,
                    surveys.c.definition_json,
                    surveys.c.source_sha256,
                ).order_by(surveys.c.survey_id, surveys.c.version)
            )
            return [SurveyRecord(*row) for row in rows]

        return self._run(work, write=False)

    def ensure_campaign(self, code: str, survey_id: str, version: int, title: str) -> None:
        """Create an open, always-on campaign unless one has this code (then leave it alone)."""

        def work(uow: UnitOfWork) -> None:
            uow.connection.execute(
                uow.insert(campaigns)
                .values(
                    code=code,
                    survey_id=survey_id,
                    survey_version=version,
                    title=title,
                    status="open",
                    opens_at=uow.now,
                    closes_at=None,
                    created_at=uow.now,
                )
                .on_conflict_do_nothing(index_elements=["code"])
            )

        self.run(work)

    def open_campaigns(self, now: datetime) -> list[CampaignRecord]:
        """Campaigns open at `now`: status open, opened, and not yet closed."""
        moment = as_naive_utc(now)

        def work(uow: UnitOfWork) -> list[CampaignRecord]:
            rows = uow.connection.execute(
                select(
                    campaigns.c.code,
                    campaigns.c.survey_id,
                    campaigns.c.survey_version,
                    campaigns.c.title,
                )
                .where(
                    campaigns.c.status == "open",
                    campaigns.c.opens_at <= moment,
                    or_(campaigns.c.closes_at.is_(None), campaigns.c.closes_at > moment),
                )
                .order_by(campaigns.c.code)
            )
            return [CampaignRecord(*row) for row in rows]

        return self._run(work, write=False)

    def expire_stale_responses(self, idle_before: datetime) -> int:
        """Mark in-progress responses untouched since `idle_before` as partial; how many."""
        cutoff = as_naive_utc(idle_before)

        def work(uow: UnitOfWork) -> int:
            return uow.connection.execute(
                update(responses)
                .where(responses.c.status == "in_progress", responses.c.updated_at < cutoff)
                .values(status="partial")
            ).rowcount

        count = self.run(work)
        if count:
            log.info("responses expired as partial", extra={"count": count})
        return count

    # ------------------------------------------------------------ internals

    def _question_types_for(
        self, connection: Connection, survey_id: str, version: int
    ) -> dict[str, str]:
        key = (survey_id, version)
        with self._types_lock:
            known = self._question_types.get(key)
        if known is not None:
            return known
        text = connection.execute(
            _statements(connection.dialect.name).definition,
            {"p_survey": survey_id, "p_version": version},
        ).scalar_one_or_none()
        if text is None:
            return {}  # not stored (yet): not cached, so it is looked up again later
        types: dict[str, str] = {}
        coding: GroupCoding | None = None
        try:
            definition = json.loads(text)
            for question in definition.get("questions", []):
                if isinstance(question.get("id"), str) and isinstance(question.get("type"), str):
                    types[question["id"]] = question["type"]
        except (ValueError, AttributeError, TypeError):
            log.error("stored survey definition unreadable", extra={"survey": survey_id})
        else:
            # From the same model the report decodes with (storage.reports.coded_cube). A
            # definition it cannot read leaves groups unknown: reports count the slow way.
            with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
                coding = GroupCoding.of(survey_from_dict(definition))
        with self._types_lock:
            self._question_types[key] = types
            if coding is not None:
                self._group_codings[key] = coding
        return types

    def _group_coding_for(
        self, connection: Connection, survey_id: str, version: int
    ) -> GroupCoding | None:
        """How this survey version's report groups are coded; None: not stored or unreadable."""
        key = (survey_id, version)
        with self._types_lock:
            known = self._group_codings.get(key)
        if known is None:
            self._question_types_for(connection, survey_id, version)
            with self._types_lock:
                known = self._group_codings.get(key)
        return known


@dataclass(frozen=True)
class TurnStart:
    """What a conversation turn starts from (see `UnitOfWork.open_turn`)."""

    respondent_id: int
    state: dict | None
    completed: frozenset[str]


@dataclass
class _ResponseRef:
    id: int
    survey_id: str
    survey_version: int
    campaign_id: int  # copied onto each answer and choice row (reports read by campaign)
    # Known when read at the start of the turn; then a recent touch can be skipped.
    status: str | None = None
    updated_at: datetime | None = None
    # Copied onto each answer and choice row too (surveys.report_groups); None: no code.
    report_group: int | None = 0


def _dialect_insert(dialect: str, table: Any) -> Any:
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


class _Statements:
    """The hot-path statements, built once per dialect (parameters are bound at execution).

    Building a statement costs more than running it on SQLite; prebuilt ones
    also keep their SQLAlchemy cache key, so each is compiled once.
    """

    def __init__(self, dialect: str) -> None:
        p = bindparam
        seen = _dialect_insert(dialect, respondents)
        self.respondent_upsert = seen.on_conflict_do_update(
            index_elements=["pseudonym"], set_={"last_seen_at": seen.excluded.last_seen_at}
        ).returning(respondents.c.id)
        self.delivery_claim = (
            _dialect_insert(dialect, processed_deliveries)
            .values(channel=p("p_channel"), delivery_id=p("p_delivery"), created_at=p("p_now"))
            .on_conflict_do_nothing(index_elements=["channel", "delivery_id"])
            .returning(processed_deliveries.c.delivery_id)
        )
        # One read at the start of a turn: the respondent (kind 0: id, last seen,
        # saved state) and each of their responses (kind 1: id, campaign code,
        # survey, status), so the turn needs no other lookups.
        me = respondents.alias("me")
        mine = responses.alias("mine")
        self.turn_open = union_all(
            select(
                literal(0).label("kind"),
                me.c.id.label("ref"),
                me.c.last_seen_at.label("seen"),
                conversations.c.state_json.label("text"),
                cast(null(), String).label("survey_id"),
                cast(null(), Integer).label("version"),
                cast(null(), String).label("status"),
                cast(null(), DateTime).label("updated_at"),
                cast(null(), Integer).label("campaign_id"),
                cast(null(), Integer).label("report_group"),
            )
            .select_from(me)
            .outerjoin(conversations, conversations.c.respondent_id == me.c.id)
            .where(me.c.pseudonym == p("p_pseudonym")),
            select(
                literal(1),
                mine.c.id,
                cast(null(), DateTime),
                campaigns.c.code,
                mine.c.survey_id,
                mine.c.survey_version,
                mine.c.status,
                mine.c.updated_at,
                mine.c.campaign_id,
                mine.c.report_group,
            )
            .select_from(me)
            .join(mine, mine.c.respondent_id == me.c.id)
            .join(campaigns, campaigns.c.id == mine.c.campaign_id)
            .where(me.c.pseudonym == p("p_pseudonym")),
        )
        self.respondent_seen = (
            update(respondents)
            .where(respondents.c.id == p("p_respondent"))
            .values(last_seen_at=p("p_now"))
        )
        self.state_load = select(conversations.c.state_json).where(
            conversations.c.respondent_id == p("p_respondent")
        )
        state = _dialect_insert(dialect, conversations)
        self.state_save = state.on_conflict_do_update(
            index_elements=["respondent_id"],
            set_={"state_json": state.excluded.state_json, "updated_at": state.excluded.updated_at},
        )
        self.completed_codes = (
            select(campaigns.c.code)
            .join(responses, responses.c.campaign_id == campaigns.c.id)
            .where(
                responses.c.respondent_id == p("p_respondent"), responses.c.status == "completed"
            )
        )
        self.message_insert = insert(messages).returning(messages.c.id)
        self.flag_insert = (
            insert(flags)
            .values(
                response_id=select(messages.c.response_id)
                .where(messages.c.id == p("p_message"))
                .scalar_subquery()
            )
            .returning(flags.c.id)
        )
        self.campaign_id = select(campaigns.c.id).where(campaigns.c.code == p("p_code"))
        self.campaign_survey = select(campaigns.c.survey_id, campaigns.c.survey_version).where(
            campaigns.c.code == p("p_code")
        )
        started = _dialect_insert(dialect, responses)
        self.response_start = started.on_conflict_do_update(
            index_elements=["respondent_id", "campaign_id"],
            set_={"status": "in_progress", "updated_at": started.excluded.updated_at},
            where=responses.c.status != "completed",
        )
        self.response_find = (
            select(
                campaigns.c.id,
                responses.c.id,
                responses.c.survey_id,
                responses.c.survey_version,
                responses.c.report_group,
            )
            .select_from(campaigns)
            .outerjoin(
                responses,
                and_(
                    responses.c.campaign_id == campaigns.c.id,
                    responses.c.respondent_id == p("p_respondent"),
                ),
            )
            .where(campaigns.c.code == p("p_code"))
        )
        self.response_touch = (
            update(responses)
            .where(responses.c.id == p("p_response"))
            .values(
                updated_at=p("p_now"),
                status=case(
                    (responses.c.status == "partial", "in_progress"), else_=responses.c.status
                ),
            )
        )
        self.response_complete = (
            update(responses)
            .where(responses.c.id == p("p_response"))
            .values(
                status="completed",
                completed_at=func.coalesce(responses.c.completed_at, p("p_now")),
                updated_at=p("p_now"),
            )
        )
        answer = _dialect_insert(dialect, answers)
        self.answer_upsert = answer.on_conflict_do_update(
            index_elements=["response_id", "question_id"],
            set_={
                "status": answer.excluded.status,
                "value_json": answer.excluded.value_json,
                "number": answer.excluded.number,
                "answered_at": answer.excluded.answered_at,
                "report_group": answer.excluded.report_group,
            },
        )
        self.answer_delete = delete(answers).where(
            answers.c.response_id == p("p_response"), answers.c.question_id == p("p_question")
        )
        self.answers_of = (
            select(answers.c.question_id, answers.c.status, answers.c.value_json)
            .where(answers.c.response_id == p("p_response"))
            .order_by(answers.c.id)
        )
        self.choices_delete = delete(answer_choices).where(
            answer_choices.c.response_id == p("p_response"),
            answer_choices.c.question_id == p("p_question"),
        )
        self.choices_insert = insert(answer_choices)
        # A response's report group changed (a demographic answer): every row follows.
        self.group_chosen = select(answer_choices.c.question_id, answer_choices.c.value).where(
            answer_choices.c.response_id == p("p_response"),
            answer_choices.c.question_id.in_(p("p_questions", expanding=True)),
        )
        self.regroup = [
            update(table).where(column == p("p_response")).values(report_group=p("p_group"))
            for table, column in (
                (responses, responses.c.id),
                (answers, answers.c.response_id),
                (answer_choices, answer_choices.c.response_id),
            )
        ]
        self.definition = select(surveys.c.definition_json).where(
            surveys.c.survey_id == p("p_survey"), surveys.c.version == p("p_version")
        )


@functools.cache
def _statements(dialect: str) -> _Statements:
    return _Statements(dialect)


_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy's DateTime stores times in SQLite


@dataclass(frozen=True)
class _DriverStatement:
    """A hot-path statement compiled once into the driver's own SQL and parameter order."""

    sql: str
    order: tuple[str, ...] | None  # parameter names in order (qmark style), or None (named)
    fixed: Mapping[str, object]  # values SQLAlchemy bound itself (literals)


class _Rows:
    """The rows of a hot-path statement, read from the driver's cursor: the few ways of
    reading a result that the hot paths use (plain tuples, values as the driver gives them)."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def all(self) -> list[Any]:
        cursor = self._cursor
        rows = cursor.fetchall() if cursor.description is not None else []
        cursor.close()
        return rows

    def __iter__(self) -> Any:
        return iter(self.all())

    def first(self) -> Any:
        cursor = self._cursor
        row = cursor.fetchone() if cursor.description is not None else None
        cursor.close()
        return row

    def scalar_one(self) -> Any:
        rows = self.all()
        if not rows:
            raise NoResultFound("No row was found when one was required")
        if len(rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return rows[0][0]

    def scalar_one_or_none(self) -> Any:
        rows = self.all()
        if len(rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return rows[0][0] if rows else None


_driver_cache: dict[tuple[int, str, tuple[str, ...]], _DriverStatement] = {}
_driver_lock = threading.Lock()


def _driver_statement(
    statement: Any, connection: Connection, keys: tuple[str, ...]
) -> _DriverStatement:
    cache_key = (id(statement), connection.dialect.name, keys)
    found = _driver_cache.get(cache_key)
    if found is None:
        columns = list(keys) if isinstance(statement, Insert) else None
        compiled = statement.compile(dialect=connection.dialect, column_keys=columns)
        order = compiled.positiontup
        found = _DriverStatement(
            compiled.string,
            tuple(order) if order is not None else None,
            {k: v for k, v in compiled.params.items() if k not in keys},
        )
        with _driver_lock:
            _driver_cache[cache_key] = found
    return found


class UnitOfWork:
    """One open transaction; made only by `Repository.run`."""

    def __init__(self, connection: Connection, repository: Repository) -> None:
        self.connection = connection
        self.now = utcnow()
        self._repository = repository
        self._dialect = connection.dialect.name
        self._sql = _statements(self._dialect)
        self._responses: dict[tuple[int, str], _ResponseRef] = {}

    def _hot(self, statement: Any, params: Mapping[str, object] | list) -> Any:
        """Run a prebuilt hot-path statement on the driver's own cursor.

        SQLAlchemy's full `execute` costs several times the statement itself on
        SQLite (~40 us against ~5 us); this path skips its per-call compilation
        lookup and type processing. So values must already be what the driver
        takes: datetimes are turned into SQLAlchemy's SQLite text form here.
        Errors are still wrapped as DBAPIError, so busy retries work the same.
        Datetimes in results come back as the driver gives them (see `_time`).
        """
        many = isinstance(params, list)
        rows = params if many else [params]
        keys = tuple(rows[0])
        prepared = _driver_statement(statement, self.connection, keys)
        sqlite_times = self._dialect == "sqlite"
        order, fixed = prepared.order, prepared.fixed
        converted = []
        for row in rows:
            values = {**fixed, **row} if fixed else row
            if sqlite_times:
                values = {
                    k: v.strftime(_SQLITE_TIME) if isinstance(v, datetime) else v
                    for k, v in values.items()
                }
            converted.append(tuple([values[k] for k in order]) if order is not None else values)
        return self._driver_sql(prepared.sql, converted if many else converted[0], many=many)

    def _driver_sql(self, sql: str, params: Any = None, *, many: bool = False) -> _Rows:
        """Run driver-ready SQL on the driver's own cursor (see `_hot`)."""
        # Straight to the driver's cursor, as SQLAlchemy's own `_cursor_execute` does: even
        # `exec_driver_sql` builds an execution context and a result (metadata, processors)
        # per call, several times the statement's own cost on SQLite. A driver error still
        # goes through SQLAlchemy's handling (wrapped as DBAPIError, a lost connection
        # invalidated), so busy retries and the pool work as before.
        cursor = self.connection.connection.cursor()
        try:
            if many:
                cursor.executemany(sql, params)
            elif params is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, params)
        except BaseException as error:
            self.connection._handle_dbapi_exception(error, sql, params, cursor, None)
            raise  # not reached: the call above raises
        return _Rows(cursor)

    def insert(self, table: Any) -> Any:
        """A dialect insert with `on_conflict_do_update/do_nothing`."""
        return _dialect_insert(self._dialect, table)

    # ------------------------------------------------------------ respondents and state

    def respondent(self, pseudonym: str, channel: str) -> int:
        """The respondent id for `pseudonym`, made on first sight; updates last_seen_at.

        One upsert (INSERT .. ON CONFLICT DO UPDATE .. RETURNING id), which is safe
        when two transactions see a new pseudonym at once on both databases: the
        second waits for the first and then updates the row it made.
        """
        now = self.now
        return int(
            self.connection.execute(
                self._sql.respondent_upsert,
                {
                    "pseudonym": pseudonym,
                    "channel": channel,
                    "created_at": now,
                    "last_seen_at": now,
                },
            ).scalar_one()
        )

    def open_turn(self, pseudonym: str, channel: str) -> TurnStart:
        """Everything a turn starts from, in one read: respondent id (made on first
        sight), saved conversation state and completed campaign codes.

        `last_seen_at` is refreshed at most every few minutes, so that most turns
        add no write of their own for it.
        """
        rows = self._hot(self._sql.turn_open, {"p_pseudonym": pseudonym}).all()
        found = [row for row in rows if row[0] == 0]
        if not found:
            return TurnStart(self.respondent(pseudonym, channel), None, frozenset())
        _, respondent_id, seen, text, *_ = found[0]
        respondent_id = int(respondent_id)
        seen = _as_datetime(seen)
        if seen is None or self.now - seen >= LAST_SEEN_RESOLUTION:
            self._hot(self._sql.respondent_seen, {"p_respondent": respondent_id, "p_now": self.now})
        completed = []
        for (
            kind,
            response_id,
            _,
            code,
            survey_id,
            version,
            status,
            updated,
            campaign,
            group,
        ) in rows:
            if kind == 1:
                self._responses[(respondent_id, code)] = _ResponseRef(
                    int(response_id),
                    survey_id,
                    int(version),
                    int(campaign),
                    status,
                    _as_datetime(updated),
                    None if group is None else int(group),
                )
                if status == "completed":
                    completed.append(code)
        return TurnStart(
            respondent_id, None if text is None else json.loads(text), frozenset(completed)
        )

    def load_state(self, respondent_id: int) -> dict | None:
        text = self.connection.execute(
            self._sql.state_load, {"p_respondent": respondent_id}
        ).scalar_one_or_none()
        return None if text is None else json.loads(text)

    def save_state(self, respondent_id: int, state: dict) -> None:
        self._hot(
            self._sql.state_save,
            {"respondent_id": respondent_id, "state_json": _dumps(state), "updated_at": self.now},
        )

    def completed_codes(self, respondent_id: int) -> frozenset[str]:
        """Codes of the campaigns this respondent has a completed response for."""
        rows = self.connection.execute(self._sql.completed_codes, {"p_respondent": respondent_id})
        return frozenset(rows.scalars())

    # ------------------------------------------------------------ messages and flags

    def record_message(
        self,
        respondent_id: int,
        direction: str,
        text: str,
        *,
        code: str | None = None,
        question_id: str | None = None,
    ) -> int:
        """Store a message; linked to this respondent's response for `code` when there is one.

        Never fails for an unknown code: the message is stored unlinked.
        """
        if direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        response = self._find_response(respondent_id, code) if code else None
        return int(
            self._hot(
                self._sql.message_insert,
                {
                    "respondent_id": respondent_id,
                    "response_id": response.id if response else None,
                    "direction": direction,
                    "text": text,
                    "question_id": question_id,
                    "created_at": self.now,
                },
            ).scalar_one()
        )

    def record_flag(
        self,
        respondent_id: int,
        message_id: int,
        *,
        severity: str,
        categories: Sequence[str],
        evidence: Sequence[Mapping],
    ) -> int:
        """Store an open flag on a message (linked to the message's response, if any)."""
        return int(
            self.connection.execute(
                self._sql.flag_insert,
                {
                    "p_message": message_id,
                    "respondent_id": respondent_id,
                    "message_id": message_id,
                    "severity": severity,
                    "categories_json": _dumps(list(categories)),
                    "evidence_json": _dumps([dict(item) for item in evidence]),
                    "status": "open",
                    "contact_consent": None,
                    "created_at": self.now,
                },
            ).scalar_one()
        )

    def set_contact_consent(
        self, flag_id: int, respondent_id: int, consent: bool, relay_handle: str | None
    ) -> bool:
        """Record the young person's yes/no to being contacted, on their flag `flag_id`
        and on any later flag of theirs raised while the question was waiting.

        The relay handle is stored only with a yes (and erased with a later no).
        """
        result = self.connection.execute(
            update(flags)
            .where(
                flags.c.respondent_id == respondent_id,
                or_(
                    flags.c.id == flag_id,
                    and_(flags.c.id > flag_id, flags.c.contact_consent.is_(None)),
                ),
            )
            .values(contact_consent=consent, relay_handle=relay_handle if consent else None)
        )
        return result.rowcount >= 1

    def staff_conversation_flag(self, respondent_id: int) -> int | None:
        """The flag whose conversation with staff is open for this respondent, if any.

        Open means: the young person agreed to be contacted, a member of staff has
        replied, and the flag is not closed. While it is open, their messages go to
        the flag instead of the survey (a question never talks over a person).
        """
        staff_replied = (
            select(flag_messages.c.flag_id)
            .where(flag_messages.c.flag_id == flags.c.id, flag_messages.c.author == "staff")
            .exists()
        )
        return self.connection.execute(
            select(flags.c.id)
            .where(
                flags.c.respondent_id == respondent_id,
                flags.c.contact_consent.is_(True),
                flags.c.status.not_in(CLOSED_FLAG_STATUSES),
                staff_replied,
            )
            .order_by(flags.c.id.desc())
            .limit(1)
        ).scalar()

    def open_consented_flag(self, respondent_id: int, flag_id: int) -> int | None:
        """`flag_id` if it is this respondent's, they agreed to be contacted, and it is open."""
        return self.connection.execute(
            select(flags.c.id).where(
                flags.c.id == flag_id,
                flags.c.respondent_id == respondent_id,
                flags.c.contact_consent.is_(True),
                flags.c.status.not_in(CLOSED_FLAG_STATUSES),
            )
        ).scalar()

    def link_flag_message(self, flag_id: int, message_id: int, author: str) -> None:
        """Put a message into a flag's conversation (author "young_person" or "staff")."""
        self.connection.execute(
            insert(flag_messages).values(flag_id=flag_id, message_id=message_id, author=author)
        )

    def claim_delivery(self, channel: str, delivery_id: str) -> bool:
        """True the first time a channel's delivery id is seen; False for a redelivery.

        Part of the turn's transaction: if the turn rolls back, so does the claim.
        """
        claimed = self._hot(
            self._sql.delivery_claim,
            {"p_channel": channel, "p_delivery": delivery_id, "p_now": self.now},
        ).first()
        return claimed is not None

    # ------------------------------------------------------------ responses and answers

    def start_response(self, respondent_id: int, code: str, survey_id: str, version: int) -> None:
        """Start (or restart) this respondent's response for `code`.

        A partial or in-progress response becomes in progress again; a completed
        one stays completed.
        """
        campaign_id = self._campaign_id(code)
        self.connection.execute(
            self._sql.response_start,
            {
                "respondent_id": respondent_id,
                "campaign_id": campaign_id,
                "survey_id": survey_id,
                "survey_version": version,
                "status": "in_progress",
                "started_at": self.now,
                "updated_at": self.now,
                "completed_at": None,
            },
        )
        self._responses.pop((respondent_id, code), None)

    def record_answer(
        self,
        respondent_id: int,
        code: str,
        question_id: str,
        status: str,
        value: object | None,
        *,
        question_type: str | None = None,
    ) -> None:
        """Store (or replace) the answer to `question_id` and its choice rows.

        Choice rows are written for choice questions (single, multiple, yes/no,
        rating): one per selected value. `number` holds rating and number
        answers. The question's type comes from the stored survey definition
        (or `question_type`); free text never becomes a choice row.
        """
        if status not in ("answered", "skipped", "prefer_not_to_say"):
            raise ValueError(f"unknown answer status {status!r}")
        response = self._response(respondent_id, code)
        if status != "answered":
            value = None
        kind = question_type or self._question_types(response).get(question_id)
        number, chosen = _index_values(kind, value)
        coding = self._group_coding(response)
        self._hot(
            self._sql.answer_upsert,
            {
                "response_id": response.id,
                "question_id": question_id,
                "status": status,
                "value_json": None if value is None else _dumps(value),
                "number": number,
                "answered_at": self.now,
                "campaign_id": response.campaign_id,
                "report_group": response.report_group,
            },
        )
        if kind is None or kind in CHOICE_TYPES:  # other types never have choice rows
            self._hot(
                self._sql.choices_delete, {"p_response": response.id, "p_question": question_id}
            )
        if chosen:
            self._hot(
                self._sql.choices_insert,
                [
                    {
                        "response_id": response.id,
                        "question_id": question_id,
                        "value": item,
                        "campaign_id": response.campaign_id,
                        "report_group": response.report_group,
                    }
                    for item in chosen
                ],
            )
        if coding is None or question_id in coding.dimensions:
            self._regroup(response, coding, question_id, chosen)
        self._touch(response)

    def remove_answer(self, respondent_id: int, code: str, question_id: str) -> None:
        """The answer to `question_id` no longer stands: delete it and its choice rows."""
        response = self._find_response(respondent_id, code, required=True)
        if response is None:
            return
        params = {"p_response": response.id, "p_question": question_id}
        self._hot(self._sql.choices_delete, params)
        self.connection.execute(self._sql.answer_delete, params)
        coding = self._group_coding(response)
        if coding is None or question_id in coding.dimensions:
            self._regroup(response, coding, question_id, [])
        self._touch(response)

    def complete_response(self, respondent_id: int, code: str) -> None:
        response = self._response(respondent_id, code)
        self.connection.execute(
            self._sql.response_complete, {"p_response": response.id, "p_now": self.now}
        )

    def erase_response(self, respondent_id: int, code: str) -> None:
        """Forget this respondent's response for `code`: answers, choices, the response
        and its messages, except messages that carry a flag (a disclosure is never lost;
        those stay, unlinked from the erased response)."""
        response = self._find_response(respondent_id, code, required=True)
        if response is None:
            return
        rid = response.id
        connection = self.connection
        connection.execute(delete(answer_choices).where(answer_choices.c.response_id == rid))
        connection.execute(delete(answers).where(answers.c.response_id == rid))
        flagged = exists().where(flags.c.message_id == messages.c.id)
        connection.execute(delete(messages).where(messages.c.response_id == rid, ~flagged))
        connection.execute(
            update(messages).where(messages.c.response_id == rid).values(response_id=None)
        )
        connection.execute(update(flags).where(flags.c.response_id == rid).values(response_id=None))
        connection.execute(delete(responses).where(responses.c.id == rid))
        self._responses.pop((respondent_id, code), None)

    def answers(self, respondent_id: int, code: str) -> dict[str, tuple[str, object | None]]:
        """question_id -> (status, value) for this respondent's response for `code`."""
        response = self._find_response(respondent_id, code)
        if response is None:
            return {}
        rows = self.connection.execute(self._sql.answers_of, {"p_response": response.id})
        return {
            question_id: (status, None if text is None else json.loads(text))
            for question_id, status, text in rows
        }

    # ------------------------------------------------------------ internals

    def _campaign_id(self, code: str) -> int:
        found = self.connection.execute(
            self._sql.campaign_id, {"p_code": code}
        ).scalar_one_or_none()
        if found is None:
            raise UnknownCampaign(code)
        return int(found)

    def _find_response(
        self, respondent_id: int, code: str, *, required: bool = False
    ) -> _ResponseRef | None:
        """This respondent's response for `code`, or None. `required`: the code must exist."""
        cached = self._responses.get((respondent_id, code))
        if cached is not None:
            return cached
        row = self.connection.execute(
            self._sql.response_find, {"p_respondent": respondent_id, "p_code": code}
        ).first()
        if row is None:
            if required:
                raise UnknownCampaign(code)
            return None
        if row[1] is None:
            return None
        found = _ResponseRef(
            int(row[1]), row[2], int(row[3]), int(row[0]), report_group=_int_or_none(row[4])
        )
        self._responses[(respondent_id, code)] = found
        return found

    def _response(self, respondent_id: int, code: str) -> _ResponseRef:
        """This respondent's response for `code`, started now if there is none yet."""
        found = self._find_response(respondent_id, code, required=True)
        if found is not None:
            return found
        campaign = self.connection.execute(self._sql.campaign_survey, {"p_code": code}).one()
        self.start_response(respondent_id, code, campaign.survey_id, campaign.survey_version)
        found = self._find_response(respondent_id, code)
        assert found is not None
        return found

    def _question_types(self, response: _ResponseRef) -> dict[str, str]:
        return self._repository._question_types_for(
            self.connection, response.survey_id, response.survey_version
        )

    def _group_coding(self, response: _ResponseRef) -> GroupCoding | None:
        return self._repository._group_coding_for(
            self.connection, response.survey_id, response.survey_version
        )

    def _regroup(
        self,
        response: _ResponseRef,
        coding: GroupCoding | None,
        question_id: str,
        chosen: list[str],
    ) -> None:
        """Recode the response's report group now that `question_id`'s choice rows are
        `chosen`, and move its rows to the new group when it changed (a few times per
        response: demographic answers given, changed or removed).

        The other demographic answers come from the known group (no read), or from
        the stored choice rows when it has no code. Without a readable definition the
        group is unknown (None): reports of the campaign then count the slow way.
        """
        group: int | None = None
        if coding is not None:
            known = None if response.report_group is None else coding.decode(response.report_group)
            given: dict[str, list[str]] = {}
            if known is not None:
                given = {
                    q: [v] for q, v in zip(coding.dimensions, known, strict=True) if v is not None
                }
            else:
                for dimension, value in self.connection.execute(
                    self._sql.group_chosen,
                    {"p_response": response.id, "p_questions": list(coding.dimensions)},
                ):
                    given.setdefault(dimension, []).append(value)
            given[question_id] = chosen
            group = coding.encode(given)
        if group == response.report_group:
            return
        if self._dialect == "postgresql":
            # one round trip for the three tables (data-modifying CTEs; not in SQLite)
            self.connection.exec_driver_sql(_PG_REGROUP, {"group": group, "response": response.id})
        else:
            for statement in self._sql.regroup:
                self._hot(statement, {"p_response": response.id, "p_group": group})
        response.report_group = group

    def _touch(self, response: _ResponseRef) -> None:
        """The response was worked on now; a partial one is in progress again.

        `updated_at` only drives the expiry of abandoned sessions (hours), so a
        response touched less than TOUCH_RESOLUTION ago is left alone: most
        answers then cost one write fewer.
        """
        if (
            response.status == "in_progress"
            and response.updated_at is not None
            and self.now - response.updated_at < TOUCH_RESOLUTION
        ):
            return
        self._hot(self._sql.response_touch, {"p_response": response.id, "p_now": self.now})
        if response.status == "partial":
            response.status = "in_progress"
        response.updated_at = self.now


_PG_REGROUP = (
    "WITH a AS (UPDATE answers SET report_group = %(group)s WHERE response_id = %(response)s), "
    "c AS (UPDATE answer_choices SET report_group = %(group)s WHERE response_id = %(response)s) "
    "UPDATE responses SET report_group = %(group)s WHERE id = %(response)s"
)


def _int_or_none(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def _index_values(kind: str | None, value: object | None) -> tuple[float | None, list[str]]:
    """(number, choice values) to index an answer by, for a question of type `kind`.

    Unknown type (no stored definition): lists, whole numbers and word-like
    strings are taken as choices; other strings are not (they may be free text).
    """
    if value is None:
        return None, []
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    if kind == "free_text" or kind == "number" or kind == "info":
        return number, []
    chosen: list[str]
    if isinstance(value, str):
        # Unknown type: a short word-like value is a choice, anything else may be free text.
        chosen = [value] if kind in CHOICE_TYPES or _CHOICE_LIKE.fullmatch(value) else []
    elif isinstance(value, list):
        chosen = [str(item) for item in value]
    elif isinstance(value, bool):
        chosen = []
    elif isinstance(value, int):
        chosen = [str(value)]
    elif isinstance(value, float) and value.is_integer() and kind == "rating":
        chosen = [str(int(value))]
    else:
        chosen = []
    kept = [item for item in dict.fromkeys(chosen) if len(item) <= MAX_CHOICE_LENGTH]
    if len(kept) < len(set(chosen)):
        log.warning("choice value too long to index; kept in the answer only")
    return number, kept
