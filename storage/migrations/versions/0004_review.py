"""Review queue tables (issue 4): flag history, referrals, staff alerts; review columns on flags.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Written by hand to match storage/tables_review.py and the review columns of
`FlagRow` in storage/tables.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FLAG_COLUMNS = (
    ("claimed_by", sa.Integer),
    ("claimed_at", sa.DateTime),
    ("acknowledged_by", sa.Integer),
    ("acknowledged_at", sa.DateTime),
    ("closed_at", sa.DateTime),
    ("outcome", sa.Text),
)
_ACTIONS = (
    "claim",
    "acknowledge",
    "reply",
    "reply_failed",
    "referral",
    "not_a_concern",
    "close",
    "reopen",
    "note",
    "alert",
    "escalation",
)
_DESTINATIONS = ("front_door_mash", "police", "school_dsl", "health", "other")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True, nullable=False)


def _when(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def _flag_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["flag_id"], ["flags.id"], name=op.f(f"fk_{table}_flag_id_flags")
    )


def _staff_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["staff_users.id"], name=op.f(f"fk_{table}_{column}_staff_users")
    )


def upgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        for name, kind in _FLAG_COLUMNS:
            batch.add_column(sa.Column(name, kind(), nullable=True))

    op.create_table(
        "flag_events",
        _id(),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("details_json", sa.Text(), nullable=True),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_events")),
        sa.CheckConstraint(_one_of("action", _ACTIONS), name=op.f("ck_flag_events_action")),
        _flag_fk("flag_events"),
        _staff_fk("flag_events", "actor_id"),
    )
    op.create_index("ix_flag_events_flag_id_id", "flag_events", ["flag_id", "id"])

    op.create_table(
        "flag_referrals",
        _id(),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("destination", sa.String(24), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_referrals")),
        sa.CheckConstraint(
            _one_of("destination", _DESTINATIONS), name=op.f("ck_flag_referrals_destination")
        ),
        _flag_fk("flag_referrals"),
        _staff_fk("flag_referrals", "created_by"),
    )
    op.create_index("ix_flag_referrals_flag_id", "flag_referrals", ["flag_id"])

    op.create_table(
        "staff_alerts",
        _id(),
        sa.Column("flag_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _when("sent_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_alerts")),
        sa.UniqueConstraint("flag_id", "kind", name=op.f("uq_staff_alerts_flag_id_kind")),
        sa.CheckConstraint(
            _one_of("kind", ("new_flag", "escalation")), name=op.f("ck_staff_alerts_kind")
        ),
        sa.CheckConstraint(
            _one_of("status", ("sending", "sent", "failed")), name=op.f("ck_staff_alerts_status")
        ),
        _flag_fk("staff_alerts"),
    )
    op.create_index("ix_staff_alerts_status", "staff_alerts", ["status"])


def downgrade() -> None:
    for table in ("staff_alerts", "flag_referrals", "flag_events"):
        op.drop_table(table)
    with op.batch_alter_table("flags") as batch:
        for name, _ in reversed(_FLAG_COLUMNS):
            batch.drop_column(name)
