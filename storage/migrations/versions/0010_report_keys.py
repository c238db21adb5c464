"""Report groups on responses, answers and choices (issue 7: report speed).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23

Each response gets `report_group`: its answers to the survey's demographic
questions as one integer (see surveys/report_groups.py), copied onto its answer
and choice rows, and the report indexes end with it, so a report counts
answers by question, status and group straight from an index instead of joining
every answer to its respondent's demographics.

The backfill computes the same code in SQL for every stored survey version
(one UPDATE per version, the choice values bound as parameters), then copies it
onto the answer and choice rows. A response whose demographic answer is not one
of the question's choices (or has several), or whose survey version is not
stored, gets NULL: reports of its campaign then count the slow way. Adding
nullable columns needs no table rebuild on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> (0009's index and columns, this one's)
_INDEXES = {
    "answers": (
        (
            "ix_answers_campaign_id_question_id_status_response_id",
            ["campaign_id", "question_id", "status", "response_id"],
        ),
        (
            "ix_answers_report",
            ["campaign_id", "question_id", "status", "report_group", "response_id"],
        ),
    ),
    "answer_choices": (
        (
            "ix_answer_choices_campaign_id_question_id_value_response_id",
            ["campaign_id", "question_id", "value", "response_id"],
        ),
        (
            "ix_answer_choices_report",
            ["campaign_id", "question_id", "value", "report_group", "response_id"],
        ),
    ),
}


def _group_expression(definition: dict) -> tuple[str, dict[str, object]]:
    """SQL for a response's report group under one survey definition, and its parameters.

    Mirrors surveys.report_groups.GroupCoding.encode: per demographic question (in
    survey order) 1 + the chosen value's index, or 0 when none, times the product of
    (choices + 1) of the questions before; NULL for an unknown or repeated value.
    """
    parts, params, stride = [], {}, 1
    grouping = [q for q in definition.get("questions", []) if q.get("dimension") is not None]
    for number, question in enumerate(grouping):
        values = [choice["value"] for choice in question.get("choices", [])]
        params[f"q{number}"] = question["id"]
        cases = " ".join(
            f"WHEN :q{number}v{index} THEN {index + 1}" for index in range(len(values))
        )
        params.update({f"q{number}v{index}": value for index, value in enumerate(values)})
        # a value that is none of the choices (or a question without choices): NULL
        one = f"CASE min(c.value) {cases} ELSE NULL END" if values else "NULL"
        chosen = (
            f"SELECT CASE WHEN count(*) = 0 THEN 0 WHEN count(*) > 1 THEN NULL ELSE {one} END "
            "FROM answer_choices c "
            f"WHERE c.response_id = responses.id AND c.question_id = :q{number}"
        )
        parts.append(f"({chosen}) * {stride}")
        stride *= len(values) + 1
    return (" + ".join(parts) if parts else "0"), params


def _backfill() -> None:
    bind = op.get_bind()
    versions = bind.execute(sa.text("SELECT survey_id, version, definition_json FROM surveys"))
    for survey_id, version, definition_json in versions.all():
        try:
            definition = json.loads(definition_json)
        except ValueError:
            continue  # stays NULL: the report counts it the slow way
        expression, params = _group_expression(definition)
        bind.execute(
            sa.text(
                f"UPDATE responses SET report_group = {expression} "
                "WHERE survey_id = :survey AND survey_version = :version"
            ),
            {**params, "survey": survey_id, "version": version},
        )
    for table in ("answers", "answer_choices"):
        if bind.dialect.name == "postgresql":
            # one hash join instead of a lookup per row (a third of the time)
            op.execute(
                f"UPDATE {table} SET report_group = responses.report_group FROM responses "
                f"WHERE responses.id = {table}.response_id"
            )
        else:
            op.execute(
                f"UPDATE {table} SET report_group = (SELECT responses.report_group "
                f"FROM responses WHERE responses.id = {table}.response_id)"
            )


def upgrade() -> None:
    for table in ("responses", "answers", "answer_choices"):
        op.add_column(table, sa.Column("report_group", sa.Integer(), nullable=True))
    # The old indexes go first: the backfill rewrites every row, and each index left
    # in place would be rewritten with it.
    for table, ((old, _), _new) in _INDEXES.items():
        op.drop_index(old, table_name=table)
    _backfill()
    for table, (_old, (new, columns)) in _INDEXES.items():
        op.create_index(new, table, columns)


def downgrade() -> None:
    for table, ((old, old_columns), (new, _)) in _INDEXES.items():
        op.drop_index(new, table_name=table)
        op.create_index(old, table, old_columns)
    # Both backends drop a column in place (SQLite 3.35+): no rebuild, no cascades.
    for table in ("answer_choices", "answers", "responses"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN report_group")
