"""Subscribers and broadcasts (issue 6): opt-in, invitation and reminder sends.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23

Two new tables (storage/tables_broadcasts.py); nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("respondent_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("subscribed_at", sa.DateTime(), nullable=False),
        sa.Column("unsubscribed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("respondent_id", name=op.f("pk_subscribers")),
        sa.ForeignKeyConstraint(
            ["respondent_id"],
            ["respondents.id"],
            name=op.f("fk_subscribers_respondent_id_respondents"),
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "broadcast_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("respondent_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_sends")),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_broadcast_sends_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["respondent_id"],
            ["respondents.id"],
            name=op.f("fk_broadcast_sends_respondent_id_respondents"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "campaign_id",
            "respondent_id",
            "kind",
            "seq",
            name=op.f("uq_broadcast_sends_campaign_id_respondent_id_kind_seq"),
        ),
        sa.CheckConstraint(
            "kind IN ('invitation', 'reminder')", name=op.f("ck_broadcast_sends_kind")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'failed', 'blocked', 'cancelled')",
            name=op.f("ck_broadcast_sends_status"),
        ),
    )
    op.create_index(
        "ix_broadcast_sends_status_not_before", "broadcast_sends", ["status", "not_before"]
    )
    op.create_index(
        "ix_broadcast_sends_respondent_id_status", "broadcast_sends", ["respondent_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_broadcast_sends_respondent_id_status", table_name="broadcast_sends")
    op.drop_index("ix_broadcast_sends_status_not_before", table_name="broadcast_sends")
    op.drop_table("broadcast_sends")
    op.drop_table("subscribers")
