"""A full campaign report over generated answers: SQL aggregation + suppression + figures.

Generates one campaign of the shipped bullying survey with about 1,000,000
answers (respondents follow the survey's show_if rules, skip and say "prefer
not to say" now and then), bulk inserted (executemany on SQLite, COPY on
PostgreSQL), then times what the report page reads and builds several times:
`storage.reports.report_counts` (counts, trend history) and `surveys.report.build_report`,
and prints the figures: wall time, and CPU time (this process plus the local
PostgreSQL's processes, from /proc), which on a loaded machine is the better
guess at the time on an idle core.
Rows carry their report group as the repository writes them (migration 0010);
PostgreSQL is vacuumed as autovacuum would. Last, it checks that the report's
counts equal joining every answer to its respondent's demographics (the slow
way, still used for cross-tabulations) and prints what that join alone costs.

    .venv/bin/python bench/bench_reports.py [--answers N] [--other-answers N]
                                            [--backend sqlite|postgresql|both]
                                            [--database-url URL]

Targets (issue 7): under 2 s on SQLite, under 1 s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.settings import SHIPPED_SURVEYS_DIR
from storage.clock import utcnow
from storage.db import create_db_engine, migrate
from storage.reports import (
    coded_cube,
    crosstab_cube,
    cube,
    load_campaign_counts,
    report_counts,
)
from storage.repository import Repository
from storage.review import read
from storage.tables import answer_choices, answers, respondents, responses
from surveys.conditions import evaluate_condition
from surveys.definition import load_survey_file, survey_to_dict
from surveys.model import Survey
from surveys.report_groups import GroupCoding

CODE = "bench-bullying"
CROSSTAB_BY = "bullied_year"  # "bullied in the last year", a single-choice question
OTHER_CODE = "bench-bullying-other"


def fake_answers(
    survey: Survey, rng: random.Random
) -> list[tuple[str, str, object | None, float | None, list[str]]]:
    """(question_id, status, value, number, chosen) for one respondent, following show_if."""
    given: dict[str, object] = {}
    rows = []
    stop_at = len(survey.questions) if rng.random() < 0.9 else rng.randrange(len(survey.questions))
    for index, question in enumerate(survey.questions):
        if index >= stop_at:
            break
        if question.type == "info":
            continue
        if question.show_if is not None and not evaluate_condition(question.show_if, given):
            continue
        roll = rng.random()
        if question.prefer_not_to_say and roll < 0.03:
            rows.append((question.id, "prefer_not_to_say", None, None, []))
            continue
        if not question.required and roll < 0.08:
            rows.append((question.id, "skipped", None, None, []))
            continue
        value: object
        number: float | None = None
        chosen: list[str] = []
        if question.type == "multiple_choice":
            picks = [c.value for c in question.choices if rng.random() < 0.3] or [
                question.choices[0].value
            ]
            value, chosen = picks, picks
        elif question.type == "rating":
            point = rng.randint(int(question.min or 1), int(question.max or 5))
            value, number, chosen = point, float(point), [str(point)]
        elif question.type == "number":
            point = int(rng.triangular(0, 12, 2))
            value, number = point, float(point)
        elif question.type == "free_text":
            value = "generated text"
        else:
            weights = [1 + (len(question.choices) - i) for i in range(len(question.choices))]
            pick = rng.choices(question.choices, weights)[0].value
            value, chosen = pick, [pick]
        given[question.id] = value
        rows.append((question.id, "answered", value, number, chosen))
    return rows


def generate(url: str, target_answers: int, seed: int = 7, other_answers: int = 0) -> int:
    """Fill a migrated database with one campaign of about `target_answers` answers
    (and another campaign of the same survey with about `other_answers`, which the
    report must not read: its time should not grow with other campaigns' answers)."""
    survey = load_survey_file(SHIPPED_SURVEYS_DIR / "bullying.yaml").survey
    assert survey is not None
    engine = create_db_engine(url)
    repository = Repository(engine)
    definition = json.dumps(survey_to_dict(survey))
    repository.save_survey(survey, definition, "0" * 64)
    repository.ensure_campaign(CODE, survey.id, survey.version, survey.title)
    repository.ensure_campaign(OTHER_CODE, survey.id, survey.version, survey.title)
    rng = random.Random(seed)
    coding = GroupCoding.of(survey)  # report groups, as the repository keeps them
    now = utcnow()
    respondent_rows, response_rows, answer_rows, choice_rows = [], [], [], []
    person = 0
    counted = 0  # answers of the reported campaign
    while len(answer_rows) < target_answers + other_answers:
        person += 1
        code = CODE if len(answer_rows) < target_answers else OTHER_CODE
        given = fake_answers(survey, rng)
        respondent_rows.append(
            {
                "id": person,
                "pseudonym": f"{person:064x}",
                "channel": "web",
                "created_at": now,
                "last_seen_at": now,
            }
        )
        status = "completed" if len(given) > 10 else rng.choice(["partial", "in_progress"])
        group = coding.encode({question_id: chosen for question_id, _, _, _, chosen in given})
        response_rows.append(
            {
                "id": person,
                "respondent_id": person,
                "campaign_id": code,  # replaced by the id below
                "survey_id": survey.id,
                "survey_version": survey.version,
                "status": status,
                "started_at": now,
                "updated_at": now,
                "completed_at": now if status == "completed" else None,
                "report_group": group,
            }
        )
        counted += len(given) if code == CODE else 0
        for question_id, answer_status, value, number, chosen in given:
            answer_rows.append(
                {
                    "campaign_id": code,
                    "response_id": person,
                    "question_id": question_id,
                    "status": answer_status,
                    "value_json": None if value is None else json.dumps(value),
                    "number": number,
                    "answered_at": now - timedelta(seconds=rng.randrange(86400)),
                    "report_group": group,
                }
            )
            choice_rows.extend(
                {
                    "campaign_id": code,
                    "response_id": person,
                    "question_id": question_id,
                    "value": item,
                    "report_group": group,
                }
                for item in chosen
            )
    with engine.begin() as connection:
        ids = dict(connection.exec_driver_sql("SELECT code, id FROM campaigns").all())
        for row in (*response_rows, *answer_rows, *choice_rows):
            row["campaign_id"] = ids[row["campaign_id"]]
        if engine.dialect.name == "postgresql":
            raw = connection.connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cursor:
                for table, rows in (
                    (respondents, respondent_rows),
                    (responses, response_rows),
                    (answers, answer_rows),
                    (answer_choices, choice_rows),
                ):
                    names = list(rows[0])
                    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row([row[name] for name in names])
            for table in ("respondents", "responses", "answers"):
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        else:
            for table, rows in (
                (respondents, respondent_rows),
                (responses, response_rows),
                (answers, answer_rows),
                (answer_choices, choice_rows),
            ):
                connection.execute(table.insert(), rows)
            connection.exec_driver_sql("ANALYZE")
    if engine.dialect.name == "postgresql":
        # As autovacuum leaves a settled database (it vacuums after inserts too): the
        # visibility map set, so the report's index-only scans skip the table.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return counted


def _ticks(pid: int, children: bool = False) -> int:
    """CPU clock ticks used by process `pid` (and its reaped children); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    used = int(fields[11]) + int(fields[12])  # utime, stime
    return used + (int(fields[13]) + int(fields[14]) if children else 0)


def _server_cpu(engine: Engine) -> float | None:
    """CPU seconds used so far by a local PostgreSQL cluster's processes (None: not local)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as connection:
        folder = connection.exec_driver_sql("SHOW data_directory").scalar_one()
    try:
        postmaster = int(Path(folder, "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    ticks = _ticks(postmaster, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == postmaster:
                ticks += _ticks(int(entry.name))
    return ticks / os.sysconf("SC_CLK_TCK")


def check_and_time_slow_cube(url: str) -> tuple[float, float]:
    """Counts by stored report groups equal the join of every answer to its respondent's
    demographics (the straightforward way, still used when groups are unknown); the
    wall and CPU seconds (client + local server) of that join, for comparison."""
    engine = create_db_engine(url)
    repository = Repository(engine)
    try:
        counts = load_campaign_counts(repository, CODE)
        dimensions = counts.cube.dimensions
        server_before = _server_cpu(engine)
        cpu_started, started = time.process_time(), time.perf_counter()
        slow = read(repository, lambda c: cube(c, counts.campaign.id, dimensions))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        server_after = _server_cpu(engine)
        if server_before is not None and server_after is not None:
            cpu += server_after - server_before
        fast = read(repository, lambda c: coded_cube(c, counts.campaign, counts.survey))
        if fast is None or fast != slow or counts.cube != slow:
            raise SystemExit("the report's counts by report group differ from the join")
    finally:
        engine.dispose()
    return wall, cpu


def time_report(url: str, runs: int) -> tuple[list[float], list[float], list[float], list[float]]:
    """Wall seconds of the counts and of the whole report, and CPU seconds of the report.

    CPU time is this process's plus, for a local PostgreSQL, its server processes':
    on a loaded machine it is about what the wall time would be on an idle core.
    """
    from surveys.report import ReportOptions, build_report

    engine = create_db_engine(url)
    repository = Repository(engine)
    counts_times, report_times, cpu_times, server_times = [], [], [], []
    try:
        for _ in range(runs):
            server_before = _server_cpu(engine)
            cpu_started = time.process_time()
            started = time.perf_counter()
            # What the report page and `main.py report` read and build: the counts, the
            # trend history (this campaign's point taken from its own counts), the report.
            counts, history = read(repository, lambda c: report_counts(c, CODE))
            counted = time.perf_counter()
            build_report(counts, ReportOptions(), history)
            finished = time.perf_counter()
            cpu = time.process_time() - cpu_started
            server_after = _server_cpu(engine)
            server = 0.0
            if server_before is not None and server_after is not None:
                server = server_after - server_before
            server_times.append(server)
            cpu += server
            counts_times.append(counted - started)
            report_times.append(finished - started)
            cpu_times.append(cpu)
    finally:
        engine.dispose()
    return counts_times, report_times, cpu_times, server_times


def time_crosstab(url: str, by_question: str) -> tuple[float, float]:
    """Wall and CPU seconds (client + local server) of the cross-tabulation view's counts:
    every figure grouped by the answer to one single-choice question (on demand, not
    part of the report itself)."""
    engine = create_db_engine(url)
    repository = Repository(engine)
    try:
        server_before = _server_cpu(engine)
        cpu_started, started = time.process_time(), time.perf_counter()
        read(repository, lambda c: crosstab_cube(c, CODE, by_question))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        server_after = _server_cpu(engine)
        if server_before is not None and server_after is not None:
            cpu += server_after - server_before
    finally:
        engine.dispose()
    return wall, cpu


@contextlib.contextmanager
def database(backend: str, given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="besafe-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    from tests.db_fixtures import _postgres_bindir, _throwaway_cluster

    bindir = _postgres_bindir()
    if bindir is None:
        raise SystemExit("no PostgreSQL binaries found")
    with _throwaway_cluster(bindir) as server:
        yield server.create_database("besafe_bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument(
        "--other-answers",
        type=int,
        default=0,
        help="answers of another campaign stored alongside (the report must not read them)",
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--database-url")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        with database(backend, args.database_url) as url:
            migrate(url)
            started = time.perf_counter()
            made = generate(url, args.answers, other_answers=args.other_answers)
            took = time.perf_counter() - started
            print(
                f"{backend}: generated {made:,} answers (and {args.other_answers:,} of another "
                f"campaign) in {took:.1f} s"
            )
            counts_times, report_times, cpu_times, server_times = time_report(url, args.runs)
            print(
                f"{backend}: SQL aggregation median {statistics.median(counts_times):.3f} s "
                f"(min {min(counts_times):.3f}); full report median "
                f"{statistics.median(report_times):.3f} s (min {min(report_times):.3f}, "
                f"max {max(report_times):.3f}) over {args.runs} runs; CPU time of the full "
                f"report (client + local server) median {statistics.median(cpu_times):.3f} s "
                f"(min {min(cpu_times):.3f}; of which server {statistics.median(server_times):.3f})"
            )
            slow_wall, slow_cpu = check_and_time_slow_cube(url)
            print(
                f"{backend}: same counts as joining each answer to its respondent's "
                f"demographics, which alone takes {slow_wall:.3f} s ({slow_cpu:.3f} s CPU)"
            )
            tab_wall, tab_cpu = time_crosstab(url, CROSSTAB_BY)
            print(
                f"{backend}: cross-tabulation by {CROSSTAB_BY!r} (an on-demand view) "
                f"{tab_wall:.3f} s ({tab_cpu:.3f} s CPU)"
            )
            print(f"{backend}: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
