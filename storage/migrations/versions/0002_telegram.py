"""Telegram channel tables (issue 5): inbox, outbox, blocked respondents.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Written by hand to match storage/tables_telegram.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telegram_inbox",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_telegram_inbox")),
    )
    op.create_table(
        "telegram_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True, nullable=False),
        sa.Column("respondent_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("markup_json", sa.Text(), nullable=True),
        sa.Column("question_id", sa.String(100), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("buttons_open", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_outbox")),
        sa.ForeignKeyConstraint(
            ["respondent_id"],
            ["respondents.id"],
            name=op.f("fk_telegram_outbox_respondent_id_respondents"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'uncertain')",
            name=op.f("ck_telegram_outbox_status"),
        ),
        sa.CheckConstraint(
            "kind IN ('send', 'edit', 'clear')", name=op.f("ck_telegram_outbox_kind")
        ),
    )
    op.create_index("ix_telegram_outbox_status_id", "telegram_outbox", ["status", "id"])
    op.create_index(
        "ix_telegram_outbox_respondent_id_buttons_open",
        "telegram_outbox",
        ["respondent_id", "buttons_open"],
    )
    op.create_table(
        "telegram_blocked",
        sa.Column("respondent_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("blocked_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("respondent_id", name=op.f("pk_telegram_blocked")),
        sa.ForeignKeyConstraint(
            ["respondent_id"],
            ["respondents.id"],
            name=op.f("fk_telegram_blocked_respondent_id_respondents"),
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("telegram_blocked")
    op.drop_index("ix_telegram_outbox_respondent_id_buttons_open", table_name="telegram_outbox")
    op.drop_index("ix_telegram_outbox_status_id", table_name="telegram_outbox")
    op.drop_table("telegram_outbox")
    op.drop_table("telegram_inbox")
