"""The database tables, as SQLModel table models.

Portable types only, so that one schema serves SQLite and PostgreSQL: JSON is
kept as text, datetimes as naive UTC (see `storage.clock`). The repository
works on these tables through SQLAlchemy Core (`Model.__table__`); the models
exist to declare the schema in one place and to type ad-hoc reads.

Nothing here identifies a young person: a respondent is a keyed hash
(`storage.pseudonyms`) plus the channel name, never a raw id, name or username.

Every change to these models needs a migration in `storage/migrations/versions`;
`tests/storage` fails when the migrated schema and these models differ.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from storage.clock import utcnow

# Predictable constraint names, so that later migrations (and SQLite batch
# migrations, which rebuild tables) can name what they change.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata = SQLModel.metadata

CAMPAIGN_STATUSES: tuple[str, ...] = ("draft", "scheduled", "open", "closed", "archived")
RESPONSE_STATUSES: tuple[str, ...] = ("in_progress", "completed", "partial")
ANSWER_STATUSES: tuple[str, ...] = ("answered", "skipped", "prefer_not_to_say")
DIRECTIONS: tuple[str, ...] = ("in", "out")
FLAG_MESSAGE_AUTHORS: tuple[str, ...] = ("young_person", "staff")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class SurveyRow(SQLModel, table=True):
    """A survey definition, frozen at (survey_id, version)."""

    __tablename__ = "surveys"
    __table_args__ = (UniqueConstraint("survey_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    survey_id: str = Field(sa_type=String(100))
    version: int
    title: str = Field(sa_type=Text)
    topic: str = Field(sa_type=String(64))
    definition_json: str = Field(sa_type=Text)  # surveys.definition.survey_to_dict as JSON
    source_sha256: str = Field(sa_type=String(64))
    loaded_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class CampaignRow(SQLModel, table=True):
    """A survey offered under a code (also its join code) for a time window."""

    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("code"),
        CheckConstraint(_one_of("status", CAMPAIGN_STATUSES), name="status"),
        Index("ix_campaigns_status_opens_at", "status", "opens_at"),
        Index("ix_campaigns_survey_id_opens_at", "survey_id", "opens_at"),  # report trends
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_type=String(100))
    survey_id: str = Field(sa_type=String(100))
    survey_version: int
    title: str = Field(sa_type=Text)
    status: str = Field(default="open", sa_type=String(16))
    opens_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    closes_at: datetime | None = Field(default=None, sa_type=DateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    # Campaign planning (issue 6, migration 0006). Audience: surveys.audience.Audience as
    # JSON ({} = everyone). Reminder times: ISO-8601 naive UTC datetimes, sorted; the
    # plan's number of reminders is their count.
    audience_json: str = Field(default="{}", sa_type=Text)
    invitation_text: str | None = Field(default=None, sa_type=Text)
    reminder_text: str | None = Field(default=None, sa_type=Text)
    reminder_times_json: str = Field(default="[]", sa_type=Text)
    # Large sends are spread over this many minutes (0: as fast as the channel limit allows).
    send_spread_minutes: int = Field(default=0)
    target_responses: int | None = Field(default=None)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class RespondentRow(SQLModel, table=True):
    """A young person, known only by a keyed hash of (channel, channel user key)."""

    __tablename__ = "respondents"
    __table_args__ = (UniqueConstraint("pseudonym"),)

    id: int | None = Field(default=None, primary_key=True)
    pseudonym: str = Field(sa_type=String(64))  # 64 hex chars, see storage.pseudonyms
    channel: str = Field(sa_type=String(32))  # "telegram", "web": the name only
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class ConversationRow(SQLModel, table=True):
    """The conversation engine's JSON state for one respondent."""

    __tablename__ = "conversations"

    respondent_id: int = Field(
        primary_key=True,
        foreign_key="respondents.id",
        ondelete="CASCADE",
        sa_column_kwargs={"autoincrement": False},
    )
    state_json: str = Field(sa_type=Text)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class ResponseRow(SQLModel, table=True):
    """One respondent's go at one campaign's survey."""

    __tablename__ = "responses"
    __table_args__ = (
        UniqueConstraint("respondent_id", "campaign_id"),
        CheckConstraint(_one_of("status", RESPONSE_STATUSES), name="status"),
        Index("ix_responses_campaign_id_status", "campaign_id", "status"),
        Index("ix_responses_status_updated_at", "status", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    respondent_id: int = Field(foreign_key="respondents.id", ondelete="CASCADE")
    campaign_id: int = Field(foreign_key="campaigns.id")
    survey_id: str = Field(sa_type=String(100))
    survey_version: int
    status: str = Field(default="in_progress", sa_type=String(16))
    started_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    completed_at: datetime | None = Field(default=None, sa_type=DateTime)
    # The response's report group (surveys.report_groups; migration 0010): its answers to
    # the demographic questions as one code, copied onto its answer and choice rows so a
    # report counts by it without a join. 0: none given yet; None: no code (slow path).
    report_group: int | None = Field(default=0)


class AnswerRow(SQLModel, table=True):
    """The standing answer to one question in one response."""

    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("response_id", "question_id"),
        CheckConstraint(_one_of("status", ANSWER_STATUSES), name="status"),
        # Reports (migrations 0009, 0010): one campaign's counts by question, status and
        # report group, read in index order (replaces 0009's index without the group).
        Index(
            "ix_answers_report",
            "campaign_id",
            "question_id",
            "status",
            "report_group",
            "response_id",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="responses.id", ondelete="CASCADE")
    question_id: str = Field(sa_type=String(100))
    status: str = Field(sa_type=String(24))
    value_json: str | None = Field(default=None, sa_type=Text)  # None unless answered
    number: float | None = Field(default=None, sa_type=Double)  # rating and number answers
    answered_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    # The response's campaign, copied here (migration 0009) so that a report reads only
    # its campaign's answers through the index above. No foreign key: the response's
    # own one holds it, and a check per answer written would cost the hot path.
    campaign_id: int
    report_group: int | None = None  # the response's, copied (migration 0010)


class AnswerChoiceRow(SQLModel, table=True):
    """One selected choice of a choice answer, so that reports can GROUP BY in SQL."""

    __tablename__ = "answer_choices"
    __table_args__ = (
        ForeignKeyConstraint(
            ["response_id", "question_id"],
            ["answers.response_id", "answers.question_id"],
            ondelete="CASCADE",
        ),
        # Covering for reports, one campaign at a time (migrations 0009, 0010).
        Index(
            "ix_answer_choices_report",
            "campaign_id",
            "question_id",
            "value",
            "report_group",
            "response_id",
        ),
    )

    response_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    question_id: str = Field(primary_key=True, sa_type=String(100))
    value: str = Field(primary_key=True, sa_type=String(200))
    campaign_id: int  # copied from the response, as on answers (migration 0009)
    report_group: int | None = None  # the response's, copied (migration 0010)


class MessageRow(SQLModel, table=True):
    """A chat message to or from a young person (kept so that a flag has its context)."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_one_of("direction", DIRECTIONS), name="direction"),
        Index("ix_messages_respondent_id_id", "respondent_id", "id"),
        Index("ix_messages_response_id", "response_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    respondent_id: int = Field(foreign_key="respondents.id", ondelete="CASCADE")
    response_id: int | None = Field(default=None, foreign_key="responses.id", ondelete="SET NULL")
    direction: str = Field(sa_type=String(3))
    text: str = Field(sa_type=Text)
    question_id: str | None = Field(default=None, sa_type=String(100))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


class FlagRow(SQLModel, table=True):
    """A possible disclosure found in a message; stays open until a person closes it."""

    __tablename__ = "flags"
    __table_args__ = (
        Index("ix_flags_status_severity_created_at", "status", "severity", "created_at"),
        Index("ix_flags_message_id", "message_id"),
        Index("ix_flags_respondent_id", "respondent_id"),
        Index("ix_flags_response_id", "response_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # No cascades: a respondent or message with a flag cannot be deleted by accident.
    respondent_id: int = Field(foreign_key="respondents.id")
    message_id: int = Field(foreign_key="messages.id")
    response_id: int | None = Field(default=None, foreign_key="responses.id", ondelete="SET NULL")
    severity: str = Field(sa_type=String(16))
    categories_json: str = Field(sa_type=Text)
    evidence_json: str = Field(sa_type=Text)
    status: str = Field(default="open", sa_type=String(24))
    contact_consent: bool | None = Field(default=None, sa_type=Boolean)
    # Only when the young person said yes to being contacted: their channel address,
    # encrypted (bot.relay.seal_handle), so staff can reply without ever seeing it.
    relay_handle: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    # The review queue (issue 4, migration 0004): staff user ids, and when things happened.
    claimed_by: int | None = Field(default=None)
    claimed_at: datetime | None = Field(default=None, sa_type=DateTime)
    acknowledged_by: int | None = Field(default=None)
    acknowledged_at: datetime | None = Field(default=None, sa_type=DateTime)
    closed_at: datetime | None = Field(default=None, sa_type=DateTime)
    # The outcome recorded on closing, or the reason it was not a concern.
    outcome: str | None = Field(default=None, sa_type=Text)


class FlagMessageRow(SQLModel, table=True):
    """A message that belongs to a flag's conversation with the safeguarding team.

    Staff replies (direction "out") and the young person's messages routed to the
    flag while that conversation is open (direction "in").
    """

    __tablename__ = "flag_messages"
    __table_args__ = (
        CheckConstraint(_one_of("author", FLAG_MESSAGE_AUTHORS), name="author"),
        Index("ix_flag_messages_message_id", "message_id"),
    )

    flag_id: int = Field(
        foreign_key="flags.id", primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    message_id: int = Field(foreign_key="messages.id", primary_key=True)
    author: str = Field(sa_type=String(16))


class ProcessedDeliveryRow(SQLModel, table=True):
    """An inbound delivery a channel has already handled (e.g. a Telegram update_id).

    Written in the same transaction as the delivery's effects, so a redelivered
    update is recognised and has no second effect.
    """

    __tablename__ = "processed_deliveries"

    channel: str = Field(primary_key=True, sa_type=String(32))
    delivery_id: str = Field(primary_key=True, sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)


def _table(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


surveys = _table(SurveyRow)
campaigns = _table(CampaignRow)
respondents = _table(RespondentRow)
conversations = _table(ConversationRow)
responses = _table(ResponseRow)
answers = _table(AnswerRow)
answer_choices = _table(AnswerChoiceRow)
messages = _table(MessageRow)
flags = _table(FlagRow)
flag_messages = _table(FlagMessageRow)
processed_deliveries = _table(ProcessedDeliveryRow)

ALL_TABLES: tuple[Table, ...] = (
    surveys,
    campaigns,
    respondents,
    conversations,
    responses,
    answers,
    answer_choices,
    messages,
    flags,
    flag_messages,
    processed_deliveries,
)

# Tables owned by later features live in their own modules (one migration each);
# imported here so that the metadata and ALL_TABLES are complete.
from storage.tables_reports import TABLES as _REPORTS_TABLES  # noqa: E402
from storage.tables_review import TABLES as _REVIEW_TABLES  # noqa: E402
from storage.tables_scheduler import TABLES as _SCHEDULER_TABLES  # noqa: E402
from storage.tables_staff import TABLES as _STAFF_TABLES  # noqa: E402
from storage.tables_telegram import TABLES as _TELEGRAM_TABLES  # noqa: E402

ALL_TABLES = ALL_TABLES + _TELEGRAM_TABLES + _STAFF_TABLES + _REVIEW_TABLES
ALL_TABLES = ALL_TABLES + _SCHEDULER_TABLES + _REPORTS_TABLES
from storage.tables_broadcasts import TABLES as _BROADCAST_TABLES  # noqa: E402

ALL_TABLES = ALL_TABLES + _BROADCAST_TABLES
