"""XLSForm import speed: reading a workbook, converting it, checking it.

Builds workbooks in memory (openpyxl) and times `surveys.xlsform.parse_xlsform`
split into its steps: read (pyxform/openpyxl), convert (pure), check (the YAML
validator). Sizes: the shipped bullying survey, and the largest survey allowed
(300 questions, 5 choices each, every other question with a relevant).

    .venv/bin/python bench/bench_xlsform.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.settings import SHIPPED_SURVEYS_DIR
from surveys.definition import MAX_QUESTIONS, load_survey_file
from surveys.xlsform import check_conversion, convert_workbook, read_workbook
from tests.surveys.xlsform_books import basic_settings, workbook, workbook_from_survey


def largest() -> bytes:
    header = ["type", "name", "label", "be_safe::report_label", "relevant"]
    rows: list[list[object]] = [header]
    choices: list[list[object]] = [["list_name", "name", "label"]]
    for index in range(MAX_QUESTIONS):
        relevant = f"${{q{index - 1}}} = 'c1' or ${{q{index - 1}}} = 'c2'" if index % 2 else None
        rows.append(
            [f"select_one l{index}", f"q{index}", f"Question {index}?", f"Q{index}", relevant]
        )
        choices += [[f"l{index}", f"c{c}", f"Choice {c}"] for c in range(5)]
    return workbook(rows, choices, basic_settings())


def timed(work: Callable[[], object], repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    bullying = load_survey_file(SHIPPED_SURVEYS_DIR / "bullying.yaml").survey
    assert bullying is not None
    for name, data in (
        ("bullying (12 questions)", workbook_from_survey(bullying)),
        (f"largest ({MAX_QUESTIONS} questions)", largest()),
    ):
        read_ms, book = timed(lambda data=data: read_workbook(data), args.repeat)
        convert_ms, conversion = timed(lambda book=book: convert_workbook(book), args.repeat)
        check_ms, result = timed(
            lambda conversion=conversion: check_conversion(conversion, "bench.xlsx"), args.repeat
        )
        assert result.ok, result.problems[:3]
        print(
            f"{name:<26} {len(data) / 1000:6.1f} KB  read {read_ms:7.1f} ms  "
            f"convert {convert_ms:6.1f} ms  check {check_ms:7.1f} ms  (median of {args.repeat})"
        )


if __name__ == "__main__":
    main()
