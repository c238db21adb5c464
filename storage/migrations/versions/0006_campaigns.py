"""Campaign planning (issue 6): audience, invitation, reminders, target.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23

Existing campaigns get everyone as audience, no invitation or reminders.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("audience_json", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("invitation_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reminder_text", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("reminder_times_json", sa.Text(), nullable=False, server_default="[]")
        )
        batch.add_column(
            sa.Column("send_spread_minutes", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("target_responses", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("updated_at", sa.DateTime(), nullable=False, server_default=sa.func.now())
        )
    # The defaults were for the rows already there; the models give new rows theirs.
    with op.batch_alter_table("campaigns") as batch:
        for column in ("audience_json", "reminder_times_json", "send_spread_minutes", "updated_at"):
            batch.alter_column(column, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        for column in (
            "updated_at",
            "target_responses",
            "send_spread_minutes",
            "reminder_times_json",
            "reminder_text",
            "invitation_text",
            "audience_json",
        ):
            batch.drop_column(column)
