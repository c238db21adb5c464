"""A campaign's live progress as shown to facilitators: counts in, suppressed figures out. Pure.

The page is seen outside the safeguarding team, so every breakdown cell (drop-out by
question, starters and finishers by school year and by area) goes through the
project's small-number suppression (`surveys.stats.protect`, with the line totals
kept shown and complementary cells hidden so nothing can be worked back). Overall
totals, the daily series and the flag count are shown as they are: they describe
the campaign, not a group of young people. Flags are a count only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from surveys.campaigns import london_day
from surveys.demographics import school_year
from surveys.stats import Line, protect, publish

DIMENSION_LABELS = {"school_year": "School year", "area": "School or area"}


def _days(by_hour: dict[datetime, int]) -> dict[str, int]:
    days: dict[str, int] = {}
    for hour, count in by_hour.items():
        # The bucket is [hour, hour+1) UTC; its London day is that of its middle.
        day = london_day(hour + timedelta(minutes=30))
        days[day] = days.get(day, 0) + count
    return days


def _suppress(cells: dict[Any, int], lines: list[Line], threshold: int, rounding: bool) -> dict:
    totals = {line.total: False for line in lines}
    hidden = protect(cells, lines, threshold, fixed=totals)
    return publish(cells, hidden, rounding=rounding)


def build_progress(counts: Any, *, threshold: int, rounding: bool = False) -> dict[str, Any]:
    """Everything the page and its JSON feed show, as plain values (JSON-ready)."""
    started_days = _days(counts.started_by_hour)
    completed_days = _days(counts.completed_by_hour)
    days = []
    running_started = running_completed = 0
    for day in sorted(set(started_days) | set(completed_days)):
        running_started += started_days.get(day, 0)
        running_completed += completed_days.get(day, 0)
        days.append(
            {
                "day": day,
                "started": started_days.get(day, 0),
                "completed": completed_days.get(day, 0),
                "started_total": running_started,
                "completed_total": running_completed,
            }
        )
    labels = {qid: label for qid, label, _ in counts.questions}
    order = {qid: position for position, (qid, _, _) in enumerate(counts.questions)}

    # Drop-out: the line is "not finished" = the sum of the per-question cells.
    unfinished = counts.started - counts.completed
    cells: dict[Any, int] = {("stop", key): n for key, n in counts.stopped_at.items()}
    cells["unfinished"] = unfinished
    lines = [Line("unfinished", tuple(k for k in cells if k != "unfinished"))]
    shown = _suppress(cells, lines, threshold, rounding)
    dropout = [
        {
            "question": "Before the first question" if key is None else labels.get(key, key),
            "count": shown[("stop", key)].value,
        }
        for key in sorted(counts.stopped_at, key=lambda k: -1 if k is None else order.get(k, 1e6))
    ]

    breakdowns = []
    for dimension, values in counts.by_dimension.items():
        cells = {}
        for value, (started, completed) in values.items():
            cells[("s", value)] = started
            cells[("c", value)] = completed
        cells["s_total"] = counts.started
        cells["c_total"] = counts.completed
        lines = [
            Line("s_total", tuple(("s", v) for v in values)),
            Line("c_total", tuple(("c", v) for v in values)),
        ]
        shown = _suppress(cells, lines, threshold, rounding)
        rows = []
        for value in sorted(values, key=lambda v: _sort_key(dimension, v)):
            rows.append(
                {
                    "label": _value_label(dimension, value),
                    "started": shown[("s", value)].value,
                    "completed": shown[("c", value)].value,
                }
            )
        breakdowns.append({"label": DIMENSION_LABELS[dimension], "rows": rows})

    target = counts.target
    return {
        "code": counts.code,
        "status": counts.status,
        "started": counts.started,
        "completed": counts.completed,
        "completion_rate": (
            round(counts.completed / counts.started * 100) if counts.started else None
        ),
        "target": target,
        "target_percent": (min(100, round(counts.completed / target * 100)) if target else None),
        "days": days,
        "dropout": dropout,
        "breakdowns": breakdowns,
        "flags": counts.flags,
        "threshold": threshold,
    }


def _sort_key(dimension: str, value: str | None) -> tuple[int, int, str]:
    if value is None:
        return (2, 0, "")
    if dimension == "school_year":
        year = school_year(value)
        if year is not None:
            return (0, year.number, value)
    return (1, 0, value)


def _value_label(dimension: str, value: str | None) -> str:
    if value is None:
        return "Not answered"
    if dimension == "school_year":
        year = school_year(value)
        if year is not None:
            return year.label
    return value.replace("_", " ").capitalize()
