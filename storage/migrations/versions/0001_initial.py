"""The first schema: surveys, campaigns, respondents, conversations, responses,
answers, answer choices, messages and flags.

Revision ID: 0001
Revises:
Create Date: 2025-11-22

Written by hand to match storage/tables.py (names follow its naming convention);
`tests/storage/test_migrations.py` compares the two on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True, nullable=False)


def _when(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "surveys",
        _id(),
        sa.Column("survey_id", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("definition_json", sa.Text(), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        _when("loaded_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("survey_id", "version", name=op.f("uq_surveys_survey_id_version")),
    )

    op.create_table(
        "campaigns",
        _id(),
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("survey_id", sa.String(100), nullable=False),
        sa.Column("survey_version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _when("opens_at"),
        _when("closes_at", nullable=True),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("code", name=op.f("uq_campaigns_code")),
        sa.CheckConstraint(
            "status IN ('draft', 'scheduled', 'open', 'closed', 'archived')",
            name=op.f("ck_campaigns_status"),
        ),
    )
    op.create_index("ix_campaigns_status_opens_at", "campaigns", ["status", "opens_at"])

    op.create_table(
        "respondents",
        _id(),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        _when("created_at"),
        _when("last_seen_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_respondents")),
        sa.UniqueConstraint("pseudonym", name=op.f("uq_respondents_pseudonym")),
    )

    op.create_table(
        "conversations",
        sa.Column("respondent_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state_json", sa.Text(), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("respondent_id", name=op.f("pk_conversations")),
        sa.ForeignKeyConstraint(
            ["respondent_id"],
            ["respondents.id"],
            name=op.f("fk_conversations_respondent_id_respondents"),
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "responses",
        _id(),
        sa.Column("respondent_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.String(100), nullable=False),
        sa.Column("survey_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _when("started_at"),
        _when("updated_at"),
        _when("completed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
        sa.UniqueConstraint(
            "respondent_id", "campaign_id", name=op.f("uq_responses_respondent_id_campaign_id")
        ),
        sa.CheckConstraint(
            "status IN ('in_progress', 'completed', 'partial')", name=op.f("ck_responses_status")
        ),
        sa.ForeignKeyConstraint(
            ["respondent_id"],
            ["respondents.id"],
            name=op.f("fk_responses_respondent_id_respondents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_responses_campaign_id_campaigns")
        ),
    )
    op.create_index("ix_responses_campaign_id_status", "responses", ["campaign_id", "status"])
    op.create_index("ix_responses_status_updated_at", "responses", ["status", "updated_at"])

    op.create_table(
        "answers",
        _id(),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=True),
        sa.Column("number", sa.Double(), nullable=True),
        _when("answered_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answers")),
        sa.UniqueConstraint(
            "response_id", "question_id", name=op.f("uq_answers_response_id_question_id")
        ),
        sa.CheckConstraint(
            "status IN ('answered', 'skipped', 'prefer_not_to_say')",
            name=op.f("ck_answers_status"),
        ),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name=op.f("fk_answers_response_id_responses"),
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "answer_choices",
        sa.Column("response_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("question_id", sa.String(100), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint(
            "response_id", "question_id", "value", name=op.f("pk_answer_choices")
        ),
        sa.ForeignKeyConstraint(
            ["response_id", "question_id"],
            ["answers.response_id", "answers.question_id"],
            name=op.f("fk_answer_choices_response_id_question_id_answers"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_answer_choices_question_id_value", "answer_choices", ["question_id", "value"]
    )

    op.create_table(
        "messages",
        _id(),
        sa.Column("respondent_id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("question_id", sa.String(100), nullable=True),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.CheckConstraint("direction IN ('in', 'out')", name=op.f("ck_messages_direction")),
        sa.ForeignKeyConstraint(
            ["respondent_id"],
            ["respondents.id"],
            name=op.f("fk_messages_respondent_id_respondents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name=op.f("fk_messages_response_id_responses"),
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_messages_respondent_id_id", "messages", ["respondent_id", "id"])
    op.create_index("ix_messages_response_id", "messages", ["response_id"])

    op.create_table(
        "flags",
        _id(),
        sa.Column("respondent_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("categories_json", sa.Text(), nullable=False),
        sa.Column("evidence_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("contact_consent", sa.Boolean(), nullable=True),
        sa.Column("relay_handle", sa.Text(), nullable=True),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags")),
        sa.ForeignKeyConstraint(
            ["respondent_id"], ["respondents.id"], name=op.f("fk_flags_respondent_id_respondents")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_flags_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name=op.f("fk_flags_response_id_responses"),
            ondelete="SET NULL",
        ),
    )
    op.create_index(
        "ix_flags_status_severity_created_at", "flags", ["status", "severity", "created_at"]
    )
    op.create_index("ix_flags_message_id", "flags", ["message_id"])
    op.create_index("ix_flags_respondent_id", "flags", ["respondent_id"])
    op.create_index("ix_flags_response_id", "flags", ["response_id"])

    op.create_table(
        "flag_messages",
        sa.Column("flag_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("flag_id", "message_id", name=op.f("pk_flag_messages")),
        sa.CheckConstraint(
            "author IN ('young_person', 'staff')", name=op.f("ck_flag_messages_author")
        ),
        sa.ForeignKeyConstraint(
            ["flag_id"], ["flags.id"], name=op.f("fk_flag_messages_flag_id_flags")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_flag_messages_message_id_messages")
        ),
    )
    op.create_index("ix_flag_messages_message_id", "flag_messages", ["message_id"])

    op.create_table(
        "processed_deliveries",
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("channel", "delivery_id", name=op.f("pk_processed_deliveries")),
    )


def downgrade() -> None:
    for table in (
        "processed_deliveries",
        "flag_messages",
        "flags",
        "messages",
        "answer_choices",
        "answers",
        "responses",
        "conversations",
        "respondents",
        "campaigns",
        "surveys",
    ):
        op.drop_table(table)
