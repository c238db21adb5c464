"""Report speed and approved quotes (issue 7).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23

`answers` and `answer_choices` get the response's `campaign_id` (backfilled
from `responses`), and the report indexes are led by it, so a report reads
only its own campaign's rows however many other campaigns are stored. The
question-led indexes of 0005 are dropped (the new ones cover all they did for
reports; one index each to maintain on every answer, as before).
`report_quotes` holds the quotes a safeguarding lead approved for a report.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (old index and columns, new index and columns)
_INDEXES = {
    "answers": (
        ("ix_answers_question_id_status_response_id", ["question_id", "status", "response_id"]),
        (
            "ix_answers_campaign_id_question_id_status_response_id",
            ["campaign_id", "question_id", "status", "response_id"],
        ),
    ),
    "answer_choices": (
        (
            "ix_answer_choices_question_id_value_response_id",
            ["question_id", "value", "response_id"],
        ),
        (
            "ix_answer_choices_campaign_id_question_id_value_response_id",
            ["campaign_id", "question_id", "value", "response_id"],
        ),
    ),
}


_SAVED = "saved_answer_choices_0009"


def _save_choices() -> bool:
    """SQLite rebuilds a table to change a column (copy, DROP, rename), and dropping
    `answers` deletes every choice row through their ON DELETE CASCADE (foreign keys
    are on, and cannot be turned off inside the migration's transaction). So the
    choice rows are kept aside first and put back after (`_restore_choices`)."""
    if op.get_bind().dialect.name != "sqlite":
        return False
    op.execute(
        f"CREATE TEMPORARY TABLE {_SAVED} AS "
        "SELECT response_id, question_id, value FROM answer_choices"
    )
    return True


def _restore_choices(with_campaign: bool) -> None:
    op.execute("DELETE FROM answer_choices")
    if with_campaign:
        op.execute(
            "INSERT INTO answer_choices (response_id, question_id, value, campaign_id) "
            "SELECT s.response_id, s.question_id, s.value, r.campaign_id "
            f"FROM {_SAVED} s JOIN responses r ON r.id = s.response_id"
        )
    else:
        op.execute(
            "INSERT INTO answer_choices (response_id, question_id, value) "
            f"SELECT response_id, question_id, value FROM {_SAVED}"
        )
    op.execute(f"DROP TABLE {_SAVED}")


def upgrade() -> None:
    saved = _save_choices()
    for table, ((old, _), (new, columns)) in _INDEXES.items():
        op.drop_index(old, table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("campaign_id", sa.Integer(), nullable=True))
        # Same statement on both backends; one pass over each table.
        op.execute(
            f"UPDATE {table} SET campaign_id = (SELECT responses.campaign_id FROM responses "
            f"WHERE responses.id = {table}.response_id)"
        )
        with op.batch_alter_table(table) as batch:
            batch.alter_column("campaign_id", existing_type=sa.Integer(), nullable=False)
        op.create_index(new, table, columns)
    if saved:
        _restore_choices(with_campaign=True)

    op.create_table(
        "report_quotes",
        sa.Column("answer_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("approved_by", sa.Integer(), nullable=False),
        sa.Column("approved_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answer_id"],
            ["answers.id"],
            name=op.f("fk_report_quotes_answer_id_answers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_report_quotes_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["approved_by"],
            ["staff_users.id"],
            name=op.f("fk_report_quotes_approved_by_staff_users"),
        ),
        sa.PrimaryKeyConstraint("answer_id", name=op.f("pk_report_quotes")),
    )
    op.create_index("ix_report_quotes_campaign_id", "report_quotes", ["campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_report_quotes_campaign_id", table_name="report_quotes")
    op.drop_table("report_quotes")
    saved = _save_choices()
    for table, ((old, old_columns), (new, _)) in _INDEXES.items():
        op.drop_index(new, table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("campaign_id")
        op.create_index(old, table, old_columns)
    if saved:
        _restore_choices(with_campaign=False)
