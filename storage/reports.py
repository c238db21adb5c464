"""Aggregate reads for board reports: GROUP BY in SQL, counts out, nothing else.

No answer, free text or respondent ever leaves the database through here: each
query returns counts grouped by question, status, chosen value and the grouping
answers (see `surveys.report_data`). `surveys.report` turns the counts into
figures with suppression; this module only counts.

The denominator of a question is the respondents *shown* it: the engine records
an answer row (answered, skipped or prefer not to say) only for questions it
showed, and deletes the rows of answers hidden by a changed earlier answer
(`AnswerRemoved`), so counting answer rows by status gives asked, answered,
skipped and prefer-not-to-say directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from storage.repository import Repository, UnknownCampaign
from storage.review import read
from storage.tables import answers, campaigns, flags, responses, surveys
from surveys.definition import survey_from_dict
from surveys.model import Survey
from surveys.report_data import (
    CampaignCounts,
    CampaignInfo,
    Cube,
    FlagCounts,
    FlagTiming,
    GroupKey,
)
from surveys.report_groups import GroupCoding

# The columns of `CampaignInfo`, in its order.
_CAMPAIGN = (
    campaigns.c.id,
    campaigns.c.code,
    campaigns.c.title,
    campaigns.c.survey_id,
    campaigns.c.survey_version,
    campaigns.c.status,
    campaigns.c.opens_at,
    campaigns.c.closes_at,
)


def _campaign_row(connection: Connection, code: str) -> CampaignInfo:
    row = connection.execute(select(*_CAMPAIGN).where(campaigns.c.code == code)).first()
    if row is None:
        raise UnknownCampaign(code)
    return CampaignInfo(*row)


def _survey(connection: Connection, survey_id: str, version: int) -> Survey:
    text = connection.execute(
        select(surveys.c.definition_json).where(
            surveys.c.survey_id == survey_id, surveys.c.version == version
        )
    ).scalar_one()
    return survey_from_dict(json.loads(text))


_GROUPS = "report_groups"  # temporary: response id -> group number and grouping answers
# What one grouped count reads: table, the column counted by, SQLite's covering index.
_COUNTED = {
    "answers": ("status", "ix_answers_report"),
    "answer_choices": ("value", "ix_answer_choices_report"),
}


def _group_responses(connection: Connection, campaign_id: int, dims: tuple[str, ...]) -> None:
    """Fill the temporary table of this campaign's responses with their group.

    One row per response (its id), the grouping answers and a dense
    group number, so that the big counts join each answer to one row by key and
    group by a small integer.
    """
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {_GROUPS}")
    value_columns = "".join(f", v{i} VARCHAR(200)" for i in range(len(dims)))
    # SQLite looks each answer's response up by key (its rowid); PostgreSQL hashes the
    # table for the join and would only pay to maintain an index (a third of this step).
    key = "PRIMARY KEY" if connection.dialect.name == "sqlite" else "NOT NULL"
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {_GROUPS} "
        f"(response_id INTEGER {key}, g INTEGER NOT NULL{value_columns})"
    )
    names = ", ".join(f"v{i}" for i in range(len(dims)))
    if connection.dialect.name == "sqlite":
        # A lookup per response and question in the choices' primary key: SQLite would
        # sort the pivot below by response first, which costs twice as much.
        joins = "".join(
            f" LEFT JOIN answer_choices d{i} ON d{i}.response_id = r.id"
            f" AND d{i}.question_id = :dim{i}"
            for i in range(len(dims))
        )
        values = ", ".join(f"d{i}.value AS v{i}" for i in range(len(dims)))
        source = f"SELECT r.id AS response_id, {values} FROM responses r{joins}"
    else:
        # One pass over the campaign's choice rows of the grouping questions.
        pivot = ", ".join(
            f"max(CASE WHEN question_id = :dim{i} THEN value END) AS v{i}" for i in range(len(dims))
        )
        wanted = ", ".join(f":dim{i}" for i in range(len(dims)))
        source = (
            f"SELECT r.id AS response_id, {names} FROM responses r "
            f"LEFT JOIN (SELECT response_id, {pivot} FROM answer_choices "
            f"WHERE campaign_id = :campaign AND question_id IN ({wanted}) "
            "GROUP BY response_id) d ON d.response_id = r.id"
        )
    connection.execute(
        text(
            f"INSERT INTO {_GROUPS} (response_id, g, {names}) "
            f"SELECT response_id, dense_rank() OVER (ORDER BY {names}), {names} "
            f"FROM ({source} WHERE r.campaign_id = :campaign) grouped"
        ),
        {"campaign": campaign_id, **{f"dim{i}": dim for i, dim in enumerate(dims)}},
    )
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"ANALYZE {_GROUPS}")


def _counts(
    connection: Connection, campaign_id: int, grouped: bool
) -> dict[str, list[tuple[str, str, int, int]]]:
    """table -> (question_id, status or value, group number, count) for one campaign.

    `grouped`: by the groups in the temporary table; otherwise all in group 1.
    Both tables are read through their campaign-led indexes, so other
    campaigns' answers cost nothing. PostgreSQL: one statement, a hash join and
    hash aggregate per table. SQLite sorts GROUP BY keys, slowly when they are
    text, so for grouped counts it walks the covering index one (question,
    value) pair at a time and groups by the integer group only.
    """
    found: dict[str, list[tuple[str, str, int, int]]] = {table: [] for table in _COUNTED}
    join = f" JOIN {_GROUPS} g ON g.response_id = t.response_id" if grouped else ""
    group = "g.g" if grouped else "1"
    if connection.dialect.name != "sqlite" or not grouped:
        statement = " UNION ALL ".join(
            f"SELECT '{table}', t.question_id, t.{column}, {group}, count(*) FROM {table} t"
            f"{join} WHERE t.campaign_id = :campaign GROUP BY t.question_id, t.{column}"
            + (", g.g" if grouped else "")
            for table, (column, _) in _COUNTED.items()
        )
        for table, question_id, value, number, count in connection.execute(
            text(statement), {"campaign": campaign_id}
        ):
            found[table].append((question_id, value, int(number), int(count)))
        return found
    for table, (column, index) in _COUNTED.items():
        pairs = connection.exec_driver_sql(
            f"SELECT DISTINCT question_id, {column} FROM {table} INDEXED BY {index} "
            "WHERE campaign_id = ?",
            (campaign_id,),
        ).all()
        for question_id, value in pairs:
            rows = connection.exec_driver_sql(
                f"SELECT g.g, count(*) FROM {table} t INDEXED BY {index}{join} "
                f"WHERE t.campaign_id = ? AND t.question_id = ? AND t.{column} = ? GROUP BY 1",
                (campaign_id, question_id, value),
            )
            found[table].extend((question_id, value, int(g), int(count)) for g, count in rows)
    return found


def cube(connection: Connection, campaign_id: int, dimensions: Sequence[str]) -> Cube:
    """Counts for one campaign grouped by the answers to `dimensions` (single-choice ids)."""
    dims = tuple(dimensions)
    if not dims:  # one group: no temporary table, no join
        in_campaign = responses.c.campaign_id == campaign_id
        respondents = connection.execute(
            select(func.count()).select_from(responses).where(in_campaign)
        ).scalar_one()
        keys: dict[int, GroupKey] = {1: ()}
        sizes = {(): int(respondents)} if respondents else {}
        counted = _counts(connection, campaign_id, grouped=False)
    else:
        if connection.dialect.name == "postgresql":
            # For this transaction only: the group sort and the hash aggregates fit in
            # memory instead of spilling to disk, and a one-off query is not worth JIT.
            connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            connection.exec_driver_sql("SET LOCAL jit = off")
        _group_responses(connection, campaign_id, dims)
        try:
            names = "".join(f", v{i}" for i in range(len(dims)))
            keys, sizes = {}, {}
            for row in connection.exec_driver_sql(
                f"SELECT g, count(*){names} FROM {_GROUPS} GROUP BY g{names}"
            ):
                keys[int(row[0])] = tuple(row[2:])
                sizes[tuple(row[2:])] = int(row[1])
            counted = _counts(connection, campaign_id, grouped=True)
        finally:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {_GROUPS}")
    return Cube(
        dims,
        sizes,
        *(
            {(question_id, value, keys[group]): count for question_id, value, group, count in rows}
            for rows in counted.values()
        ),
    )


def coded_cube(connection: Connection, campaign: CampaignInfo, survey: Survey) -> Cube | None:
    """The demographic cube of `cube`, counted by the rows' stored report groups.

    No join and no temporary table: each count reads one campaign-led index in
    order (question, status or value, report group), so SQLite groups without
    sorting and PostgreSQL aggregates small integers. None when the stored
    groups cannot be trusted to decode to `survey`'s groups (a response of
    another survey version, a group with no code), so that the caller counts
    the slow way: the figures never depend on which way was taken.
    """
    coding = GroupCoding.of(survey)
    if not coding.dimensions or not coding.usable:
        return None
    keys: dict[int, GroupKey] = {}

    def key_of(group: object) -> GroupKey | None:
        if group is None:
            return None
        number = int(group)  # type: ignore[call-overload]
        if number not in keys:
            decoded = coding.decode(number)
            if decoded is None:
                return None
            keys[number] = decoded
        return keys[number]

    sizes: dict[GroupKey, int] = {}
    grouped_by = (responses.c.report_group, responses.c.survey_id, responses.c.survey_version)
    for group, survey_id, version, count in connection.execute(
        select(*grouped_by, func.count())
        .where(responses.c.campaign_id == campaign.id)
        .group_by(*grouped_by)
    ):
        key = key_of(group)
        if key is None or (survey_id, version) != (campaign.survey_id, campaign.survey_version):
            return None
        sizes[key] = sizes.get(key, 0) + int(count)
    found: list[dict[tuple[str, str, GroupKey], int]] = []
    for rows in _coded_counts(connection, campaign.id).values():
        counted: dict[tuple[str, str, GroupKey], int] = {}
        for question_id, value, group, count in rows:
            key = key_of(group)
            if key is None:
                return None
            counted[(question_id, value, key)] = int(count)
        found.append(counted)
    return Cube(coding.dimensions, sizes, *found)


def _coded_counts(connection: Connection, campaign_id: int) -> dict[str, list]:
    """table -> (question_id, status or value, report group, count) rows for one campaign.

    Both backends read the report index in its order and count each run of equal
    keys as it passes (SQLite: INDEXED BY; PostgreSQL: an index-only scan and a
    sorted aggregate, which costs a third of hashing text keys per row). Parallel
    workers would halve the wall time on an idle server but add CPU; the settings
    hold only inside a savepoint, rolled back after.
    """
    sqlite = connection.dialect.name == "sqlite"
    found: dict[str, list] = {}
    nested = None if sqlite else connection.begin_nested()
    try:
        if nested is not None:
            for setting in ("enable_hashagg = off", "max_parallel_workers_per_gather = 0"):
                connection.exec_driver_sql(f"SET LOCAL {setting}")
            connection.exec_driver_sql("SET LOCAL jit = off")
        for table, (column, index) in _COUNTED.items():
            hint = f" INDEXED BY {index}" if sqlite else ""
            found[table] = connection.exec_driver_sql(
                f"SELECT question_id, {column}, report_group, count(*) FROM {table}{hint} "
                f"WHERE campaign_id = {'?' if sqlite else '%(campaign)s'} "
                f"GROUP BY question_id, {column}, report_group",
                (campaign_id,) if sqlite else {"campaign": campaign_id},
            ).all()
    finally:
        if nested is not None:
            nested.rollback()  # the settings end here; nothing was written
    return found


def number_distributions(
    connection: Connection, campaign_id: int, question_ids: Sequence[str]
) -> dict[str, dict[float, int]]:
    """question -> answered value -> count, for number questions (medians come from these)."""
    if not question_ids:
        return {}
    rows = connection.execute(
        select(answers.c.question_id, answers.c.number, func.count())
        .where(
            answers.c.campaign_id == campaign_id,
            answers.c.question_id.in_(list(question_ids)),
            answers.c.status == "answered",
            answers.c.number.is_not(None),
        )
        .group_by(answers.c.question_id, answers.c.number)
    )
    found: dict[str, dict[float, int]] = {}
    for question_id, number, count in rows:
        found.setdefault(question_id, {})[float(number)] = int(count)
    return found


def flag_counts(connection: Connection, campaign_id: int) -> FlagCounts:
    """Flags raised in this campaign's responses, by severity, status and categories."""
    joined = flags.join(responses, responses.c.id == flags.c.response_id)
    in_campaign = responses.c.campaign_id == campaign_id
    by_severity: dict[str, int] = {}
    by_status: dict[str, int] = {}
    by_categories: dict[tuple[str, ...], int] = {}
    rows = connection.execute(
        select(flags.c.severity, flags.c.status, flags.c.categories_json, func.count())
        .select_from(joined)
        .where(in_campaign)
        .group_by(flags.c.severity, flags.c.status, flags.c.categories_json)
    )
    for severity, status, categories_json, count in rows:
        by_severity[severity] = by_severity.get(severity, 0) + int(count)
        by_status[status] = by_status.get(status, 0) + int(count)
        try:
            found = json.loads(categories_json or "[]")
        except ValueError:
            found = []
        kinds = tuple(sorted({str(item) for item in found})) if isinstance(found, list) else ()
        by_categories[kinds] = by_categories.get(kinds, 0) + int(count)
    timings = tuple(
        FlagTiming(severity, created_at, acknowledged_at, int(count))
        for severity, created_at, acknowledged_at, count in connection.execute(
            select(flags.c.severity, flags.c.created_at, flags.c.acknowledged_at, func.count())
            .select_from(joined)
            .where(in_campaign)
            .group_by(flags.c.severity, flags.c.created_at, flags.c.acknowledged_at)
        )
    )
    return FlagCounts(by_severity, by_status, by_categories, timings)


def campaign_counts(connection: Connection, code: str) -> CampaignCounts:
    """Every count a campaign's board report needs, in a handful of GROUP BY queries
    (and the quotes a safeguarding lead approved, the only text a report holds)."""
    from storage.quotes import approved_quotes  # imports this module

    campaign = _campaign_row(connection, code)
    survey = _survey(connection, campaign.survey_id, campaign.survey_version)
    dimensions = tuple(q.id for q in survey.questions if q.dimension is not None)
    statuses = {
        status: int(count)
        for status, count in connection.execute(
            select(responses.c.status, func.count())
            .where(responses.c.campaign_id == campaign.id)
            .group_by(responses.c.status)
        )
    }
    numbers = number_distributions(
        connection, campaign.id, [q.id for q in survey.questions if q.type == "number"]
    )
    return CampaignCounts(
        campaign=campaign,
        survey=survey,
        responses=statuses,
        cube=coded_cube(connection, campaign, survey) or cube(connection, campaign.id, dimensions),
        numbers=numbers,
        flags=flag_counts(connection, campaign.id),
        quotes=approved_quotes(connection, campaign.id, survey),
    )


def crosstab_cube(connection: Connection, code: str, by_question: str) -> Cube:
    """Counts for a campaign grouped by the answer to one single-choice question."""
    campaign = _campaign_row(connection, code)
    return cube(connection, campaign.id, (by_question,))


def earlier_campaigns(connection: Connection, code: str) -> list[CampaignInfo]:
    """Campaigns of the same survey (any version) that opened before this one, oldest first."""
    campaign = _campaign_row(connection, code)
    rows = connection.execute(
        select(*_CAMPAIGN)
        .where(
            campaigns.c.survey_id == campaign.survey_id,
            campaigns.c.id != campaign.id,
            campaigns.c.opens_at <= campaign.opens_at,
        )
        .order_by(campaigns.c.opens_at, campaigns.c.id)
    )
    return [CampaignInfo(*row) for row in rows]


def trend_history(
    connection: Connection, code: str, current_cube: Cube | None = None
) -> list[tuple[CampaignInfo, Survey, Cube]]:
    """Ungrouped counts of every campaign of the same survey up to this one, oldest first.

    `current_cube`: this campaign's counts already made for its report (`campaign_counts`),
    whose marginal is its ungrouped count, so that the report does not count it twice."""
    current = _campaign_row(connection, code)
    found = []
    definitions: dict[tuple[str, int], Survey] = {}
    for campaign in [*earlier_campaigns(connection, code), current]:
        version = (campaign.survey_id, campaign.survey_version)
        if version not in definitions:
            definitions[version] = _survey(connection, *version)
        if campaign.id == current.id and current_cube is not None:
            counted = current_cube.marginal(())
        else:
            counted = cube(connection, campaign.id, ())
        found.append((campaign, definitions[version], counted))
    return found


def report_counts(
    connection: Connection, code: str
) -> tuple[CampaignCounts, list[tuple[CampaignInfo, Survey, Cube]]]:
    """What a board report reads: the campaign's counts and its trend history."""
    counts = campaign_counts(connection, code)
    return counts, trend_history(connection, code, counts.cube)


def load_campaign_counts(repository: Repository, code: str) -> CampaignCounts:
    return read(repository, lambda connection: campaign_counts(connection, code))


def campaign_codes(repository: Repository) -> list[CampaignInfo]:
    """Every campaign, newest first (for the report index)."""

    def work(connection: Connection) -> list[CampaignInfo]:
        rows = connection.execute(
            select(*_CAMPAIGN).order_by(campaigns.c.opens_at.desc(), campaigns.c.id.desc())
        )
        return [CampaignInfo(*row) for row in rows]

    return read(repository, work)
