"""Exports (CSV, XLSX, JSON, printable HTML) and `main.py report`: suppressed figures only."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

from config.settings import PROJECT_ROOT
from storage.db import create_db_engine
from storage.repository import Repository
from surveys.report import ReportOptions, build_report
from tests.reports.seed import Person, add_campaign, answer_all, shipped
from tests.reports.test_report import counts_of, cube_of
from web.exports import CSV_COLUMNS, export, report_csv, report_dict, report_html, report_xlsx

# year 7: 30 yes and 2 no -> the 2 is hidden, and so is a second cell of its row
GROUPS = {"y7": (30, 2, 0, 0), "y8": (20, 25, 1, 0), None: (10, 10, 0, 0)}


def report():  # type: ignore[no-untyped-def]
    return build_report(counts_of(cube_of(GROUPS)), ReportOptions())


def test_csv_is_tidy_with_suppression_marked() -> None:
    rows = list(csv.DictReader(io.StringIO(report_csv(report()))))
    assert rows and set(rows[0]) == set(CSV_COLUMNS)
    year7 = [
        row
        for row in rows
        if row["question_id"] == "bullied_year" and row["group"] == "Year 7"
        and row["measure"] == "choice"
    ]  # fmt: skip
    assert {row["value"] for row in year7} == {"yes", "no"}
    no = next(row for row in year7 if row["value"] == "no")
    assert no["suppressed"] == "suppressed" and no["count"] == "" and no["percent"] == ""
    overall_yes = next(
        row
        for row in rows
        if row["question_id"] == "bullied_year" and row["breakdown"] == ""
        and row["value"] == "yes"
    )  # fmt: skip
    assert (overall_yes["count"], overall_yes["denominator"], overall_yes["percent"]) == (
        "60",
        "97",
        "61.9",
    )
    assert export(report(), "csv").startswith("\ufeff".encode())


def test_json_marks_suppressed_figures_as_null() -> None:
    data = json.loads(export(report(), "json"))
    assert data["suppression"] == {"threshold": 5, "rounding_to_5": False}
    bullied = next(q for q in data["questions"] if q["id"] == "bullied_year")
    year = next(b for b in bullied["breakdowns"] if b["dimension"] == "school_year")
    y7 = next(g for g in year["groups"] if g["key"] == "y7")
    no = next(c for c in y7["choices"] if c["value"] == "no")
    assert no == {
        "value": "no",
        "label": "No",
        "count": None,
        "suppressed": True,
        "rounded": False,
        "denominator": y7["answered"]["count"],
        "percent": None,
        "ci_low": None,
        "ci_high": None,
    }
    assert year["groups_not_offered"] == 9  # the years nobody in this campaign is in
    assert report_dict(report())["headlines"]


def test_xlsx_has_a_sheet_per_question() -> None:
    book = load_workbook(io.BytesIO(report_xlsx(report())))
    names = book.sheetnames
    assert names[0] == "Summary" and names[-2:] == ["Flags", "Trends"]
    questions = report().questions
    assert len(names) == len(questions) + 3
    sheet = book[next(name for name in names if name.startswith("Bullied at or near school"))]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert ["Year 7", "no", "No", None, 32, None, None, None, "suppressed"] in values


def test_printable_html_has_charts_tables_and_a_print_stylesheet() -> None:
    page = report_html(report())
    assert "@media print" in page and "<svg" in page and 'role="img"' in page
    assert '<table class="data" id="t-bullied_year">' in page
    assert 'aria-describedby="t-bullied_year"' in page
    assert 'class="suppressed"' in page and "* (*)" in page


def test_labels_cannot_become_spreadsheet_formulas() -> None:
    from tests.reports.test_report import SURVEY

    risky = SURVEY.question("bullied_year")
    assert risky is not None
    from dataclasses import replace

    evil = replace(risky, report_label='=HYPERLINK("http://x")')
    survey = replace(SURVEY, questions=tuple(evil if q.id == risky.id else q
                                             for q in SURVEY.questions))  # fmt: skip
    counts = replace(counts_of(cube_of(GROUPS)), survey=survey)
    text = report_csv(build_report(counts, ReportOptions()))
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def run_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BESAFE_")}
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        env={**clean, "BESAFE_DATABASE_URL": url},
        timeout=120,
        cwd=PROJECT_ROOT,
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_writes_every_format_and_never_free_text(database_url: str, tmp_path: Path) -> None:
    engine = create_db_engine(database_url)
    repository = Repository(engine)
    add_campaign(repository, "bully-2026", shipped())
    people = [
        Person(
            f"p{n}",
            {
                "school_year": ("answered", "y8"),
                "bullied_year": ("answered", "yes" if n % 3 else "no"),
                "anything_else": ("answered", "Sam from Oak Road"),
            },
            flag=("high", ["bullying"]) if n == 1 else None,
        )
        for n in range(12)
    ]
    answer_all(repository, "bully-2026", people)
    engine.dispose()
    for format_ in ("html", "csv", "xlsx", "json"):
        target = tmp_path / f"report.{format_}"
        result = run_cli("report", "bully-2026", "--format", format_, "--output", str(target),
                         url=database_url)  # fmt: skip
        assert result.returncode == 0, result.stderr
        data = target.read_bytes()
        assert data
        if format_ == "xlsx":
            book = load_workbook(io.BytesIO(data))
            data = "".join(
                str(cell.value) for sheet in book for row in sheet.iter_rows() for cell in row
            ).encode()
        assert b"Sam" not in data and b"Oak Road" not in data
        assert b"secret words" not in data
    page = (tmp_path / "report.html").read_text()
    assert "bully-2026" in page and "Bullied at or near school" in page
    missing = run_cli("report", "nope", "--output", str(tmp_path / "x"), url=database_url)
    assert missing.returncode == 1 and "nope" in missing.stderr
