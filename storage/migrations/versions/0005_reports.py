"""Indexes for board reports (issue 7): counts by question without a sort, trends by survey.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

`ix_answer_choices_question_id_value_response_id` covers what the old
(question_id, value) index did and more, so it replaces it (one index fewer
to maintain on every answer).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_answers_question_id_status_response_id",
        "answers",
        ["question_id", "status", "response_id"],
    )
    op.create_index(
        "ix_answer_choices_question_id_value_response_id",
        "answer_choices",
        ["question_id", "value", "response_id"],
    )
    op.drop_index("ix_answer_choices_question_id_value", table_name="answer_choices")
    op.create_index("ix_campaigns_survey_id_opens_at", "campaigns", ["survey_id", "opens_at"])


def downgrade() -> None:
    op.drop_index("ix_campaigns_survey_id_opens_at", table_name="campaigns")
    op.create_index(
        "ix_answer_choices_question_id_value", "answer_choices", ["question_id", "value"]
    )
    op.drop_index("ix_answer_choices_question_id_value_response_id", table_name="answer_choices")
    op.drop_index("ix_answers_question_id_status_response_id", table_name="answers")
