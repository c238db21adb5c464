"""Board report exports: tidy CSV, XLSX (a sheet per question), JSON and printable HTML.

Everything is made from a `surveys.report.Report`, so every export shows the
same suppressed, rounded figures as the report page and nothing more: no flag
content, nothing about any one young person, and no free text but the quotes
a safeguarding lead approved (text only). Quotes are in the printable HTML and
the JSON, not in the CSV or XLSX: those are tables of figures, often re-sorted
and merged with other data, where a quote would lose the context the report
gives it. A suppressed figure
is an empty cell marked "suppressed" in the `suppressed` column (CSV, XLSX) or
null with `"suppressed": true` (JSON).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from surveys.report import (
    STATUS_LABELS,
    Breakdown,
    ChoiceFigure,
    Figure,
    QuestionReport,
    Report,
    bar_chart_svg,
)
from surveys.stats import Shown, format_percent

TEMPLATES = Path(__file__).resolve().parent / "templates"
FORMATS = ("html", "csv", "xlsx", "json")
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}
CSV_COLUMNS = (
    "campaign",
    "section",
    "question_id",
    "question",
    "breakdown",
    "group",
    "measure",
    "value",
    "label",
    "count",
    "denominator",
    "percent",
    "ci_low",
    "ci_high",
    "suppressed",
    "rounded",
)


# ---------------------------------------------------------------- tidy rows


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _row(report: Report, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CSV_COLUMNS)
    row["campaign"] = report.campaign.code
    row.update(values)
    return row


def _count_row(report: Report, shown: Shown, **values: Any) -> dict[str, Any]:
    return _row(
        report,
        count=shown.value,
        suppressed="suppressed" if shown.suppressed else "",
        rounded="rounded" if shown.rounded else "",
        **values,
    )


def _figure_row(report: Report, figure: Figure, **values: Any) -> dict[str, Any]:
    return _row(
        report,
        count=figure.count.value,
        denominator=figure.denominator.value,
        percent=_pct(figure.percent),
        ci_low=_pct(figure.low),
        ci_high=_pct(figure.high),
        suppressed="suppressed" if figure.count.suppressed else "",
        rounded="rounded" if figure.count.rounded else "",
        **values,
    )


def _question_rows(report: Report, question: QuestionReport) -> Iterator[dict[str, Any]]:
    base = {"section": "question", "question_id": question.id, "question": question.label}
    yield _count_row(report, question.asked, measure="asked", **base)
    for status, shown in question.statuses.items():
        yield _count_row(report, shown, measure=status, **base)
    for choice in question.choices:
        yield _figure_row(
            report, choice.figure, measure="choice", value=choice.value, label=choice.label, **base
        )
    if question.median is not None:
        yield _row(report, measure="median", count=question.median, **base)
    for breakdown in question.breakdowns:
        for group in breakdown.offered:
            where = {**base, "breakdown": breakdown.label, "group": group.label}
            yield _count_row(report, group.answered, measure="answered", **where)
            for cell in group.cells:
                yield _figure_row(
                    report,
                    cell.figure,
                    measure="choice",
                    value=cell.value,
                    label=cell.label,
                    **where,
                )


def tidy_rows(report: Report) -> Iterator[dict[str, Any]]:
    """One row per figure shown in the report (the CSV, and the data behind every sheet)."""
    yield _count_row(report, report.respondents, section="responses", measure="respondents")
    for row in report.responses:
        yield _count_row(report, row.count, section="responses", measure=row.key, label=row.label)
    for question in report.questions:
        yield from _question_rows(report, question)
    flags = report.flags
    yield _count_row(report, flags.total, section="flags", measure="total")
    for name, rows in (
        ("severity", flags.by_severity),
        ("status", flags.by_status),
        ("category", flags.by_category),
    ):
        for row in rows:
            yield _count_row(
                report, row.count, section="flags", measure=name, value=row.key, label=row.label
            )
    for severity, rows in flags.timing:
        for row in rows:
            yield _count_row(
                report,
                row.count,
                section="flags",
                measure="acknowledged",
                group=severity,
                value=row.key,
                label=row.label,
            )
    for trend in report.trends:
        for point in trend.points:
            yield _figure_row(
                report,
                point.figure,
                section="trend",
                question_id=trend.question_id,
                question=trend.label,
                group=point.code,
                measure="choice",
                value=trend.choice,
                label=trend.choice_label,
            )


def report_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in tidy_rows(report):
        writer.writerow({k: _csv_safe(v) for k, v in row.items()})
    return buffer.getvalue()


def _csv_safe(value: Any) -> Any:
    """Labels come from survey files; never let one start a spreadsheet formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


# ---------------------------------------------------------------- JSON


def _shown(shown: Shown) -> dict[str, Any]:
    return {"count": shown.value, "suppressed": shown.suppressed, "rounded": shown.rounded}


def _figure(figure: Figure) -> dict[str, Any]:
    return {
        **_shown(figure.count),
        "denominator": figure.denominator.value,
        "percent": _pct(figure.percent),
        "ci_low": _pct(figure.low),
        "ci_high": _pct(figure.high),
    }


def _choices(choices: tuple[ChoiceFigure, ...]) -> list[dict[str, Any]]:
    return [{"value": c.value, "label": c.label, **_figure(c.figure)} for c in choices]


def _breakdown(breakdown: Breakdown) -> dict[str, Any]:
    return {
        "dimension": breakdown.dimension,
        "label": breakdown.label,
        "groups": [
            {
                "key": group.key,
                "label": group.label,
                "answered": _shown(group.answered),
                "choices": _choices(group.cells),
            }
            for group in breakdown.offered
        ],
        "groups_not_offered": sum(1 for group in breakdown.groups if not group.offered),
    }


def report_dict(report: Report) -> dict[str, Any]:
    campaign = report.campaign
    return {
        "campaign": {
            "code": campaign.code,
            "title": campaign.title,
            "survey": report.survey_title,
            "survey_id": campaign.survey_id,
            "survey_version": campaign.survey_version,
            "status": campaign.status,
            "opens_at": campaign.opens_at.isoformat(),
            "closes_at": campaign.closes_at.isoformat() if campaign.closes_at else None,
        },
        "suppression": {"threshold": report.threshold, "rounding_to_5": report.rounding},
        "notes": list(report.notes),
        "headlines": list(report.headlines),
        "quotes": list(report.quotes),
        "respondents": _shown(report.respondents),
        "responses": {row.key: _shown(row.count) for row in report.responses},
        "questions": [
            {
                "id": q.id,
                "label": q.label,
                "type": q.type,
                "asked": _shown(q.asked),
                "statuses": {status: _shown(shown) for status, shown in q.statuses.items()},
                "percent_of": "respondents who answered",
                "choices": _choices(q.choices),
                "median": q.median,
                "headline": q.headline,
                "breakdowns": [_breakdown(b) for b in q.breakdowns],
            }
            for q in report.questions
        ],
        "flags": {
            "total": _shown(report.flags.total),
            "by_severity": {r.key: _shown(r.count) for r in report.flags.by_severity},
            "by_status": {r.key: _shown(r.count) for r in report.flags.by_status},
            "by_category": {r.key: _shown(r.count) for r in report.flags.by_category},
            "acknowledged": {
                severity: {r.key: _shown(r.count) for r in rows}
                for severity, rows in report.flags.timing
            },
        },
        "trends": [
            {
                "question_id": t.question_id,
                "label": t.label,
                "choice": t.choice,
                "choice_label": t.choice_label,
                "points": [
                    {"campaign": p.code, "opens_at": p.opens_at.isoformat(), **_figure(p.figure)}
                    for p in t.points
                ],
                "change": t.change,
            }
            for t in report.trends
        ],
    }


def report_json(report: Report) -> str:
    return json.dumps(report_dict(report), ensure_ascii=False, indent=2)


# ---------------------------------------------------------------- XLSX


_SHEET_UNSAFE = re.compile(r"[\[\]:*?/\\]")


def _sheet_title(title: str, taken: set[str]) -> str:
    base = _SHEET_UNSAFE.sub(" ", title).strip()[:28] or "Sheet"
    candidate, number = base, 2
    while candidate.lower() in taken:
        candidate = f"{base[:25]} {number}"
        number += 1
    taken.add(candidate.lower())
    return candidate


def report_xlsx(report: Report) -> bytes:
    """A workbook: "Summary", one sheet per question, "Flags" and "Trends"."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    bold = Font(bold=True)
    book = Workbook()
    taken: set[str] = set()
    summary = book.active
    assert summary is not None
    summary.title = _sheet_title("Summary", taken)
    campaign = report.campaign
    summary.append([f"{campaign.title} ({campaign.code})"])
    summary["A1"].font = bold
    summary.append([f"Survey: {report.survey_title}, version {campaign.survey_version}"])
    summary.append([])
    summary.append(["Respondents", report.respondents.value, _mark(report.respondents)])
    for row in report.responses:
        summary.append([row.label, row.count.value, _mark(row.count)])
    summary.append([])
    summary.append(["Headlines"])
    summary.cell(summary.max_row, 1).font = bold
    for line in report.headlines:
        summary.append([_xlsx_safe(line)])
    summary.append([])
    summary.append(["Notes"])
    summary.cell(summary.max_row, 1).font = bold
    for note in report.notes:
        summary.append([note])
    summary.column_dimensions["A"].width = 60

    header = ["Group", "Value", "Label", "Count", "Out of", "Percent", "95% CI low",
              "95% CI high", "Suppressed"]  # fmt: skip
    for question in report.questions:
        sheet = book.create_sheet(_sheet_title(question.label, taken))
        sheet.append([_xlsx_safe(question.label)])
        sheet["A1"].font = bold
        sheet.append(["Asked", question.asked.value, _mark(question.asked)])
        for status, shown in question.statuses.items():
            sheet.append([STATUS_LABELS[status], shown.value, _mark(shown)])
        if question.median is not None:
            sheet.append(["Median", question.median])
        if question.choices:
            sheet.append([])
            sheet.append(header)
            for cell in sheet[sheet.max_row]:
                cell.font = bold
            for choice in question.choices:
                sheet.append(_xlsx_figure("All", choice))
        for breakdown in question.breakdowns:
            sheet.append([])
            sheet.append([f"By {breakdown.label}"])
            sheet.cell(sheet.max_row, 1).font = bold
            sheet.append(header)
            for group in breakdown.offered:
                sheet.append([group.label, "", "Answered", group.answered.value, "", "", "", "",
                              _mark(group.answered)])  # fmt: skip
                for choice in group.cells:
                    sheet.append(_xlsx_figure(group.label, choice))
        sheet.column_dimensions["A"].width = 28
        sheet.column_dimensions["C"].width = 32

    flags = book.create_sheet(_sheet_title("Flags", taken))
    total = report.flags.total
    flags.append(["Flags raised (counts only)", total.value, _mark(total)])
    for title, rows in (
        ("By severity", report.flags.by_severity),
        ("By status", report.flags.by_status),
        ("By category (a flag can have several)", report.flags.by_category),
    ):
        flags.append([])
        flags.append([title])
        flags.cell(flags.max_row, 1).font = bold
        for row in rows:
            flags.append([row.label, row.count.value, _mark(row.count)])
    for severity, rows in report.flags.timing:
        flags.append([])
        flags.append([f"Acknowledgement: {severity}"])
        flags.cell(flags.max_row, 1).font = bold
        for row in rows:
            flags.append([row.label, row.count.value, _mark(row.count)])
    flags.column_dimensions["A"].width = 44

    trends = book.create_sheet(_sheet_title("Trends", taken))
    trends.append(["Question", "Choice", "Campaign", "Count", "Out of", "Percent", "95% CI low",
                   "95% CI high", "Suppressed"])  # fmt: skip
    for trend in report.trends:
        for point in trend.points:
            figure = point.figure
            trends.append([_xlsx_safe(trend.label), _xlsx_safe(trend.choice_label), point.code,
                           figure.count.value, figure.denominator.value, _pct(figure.percent),
                           _pct(figure.low), _pct(figure.high), _mark(figure.count)])  # fmt: skip
        if trend.change:
            trends.append([_xlsx_safe(trend.change)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _mark(shown: Shown) -> str:
    if shown.suppressed:
        return "suppressed"
    return "rounded to 5" if shown.rounded else ""


def _xlsx_safe(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _xlsx_figure(group: str, choice: ChoiceFigure) -> list[Any]:
    figure = choice.figure
    return [
        _xlsx_safe(group),
        choice.value,
        _xlsx_safe(choice.label),
        figure.count.value,
        figure.denominator.value,
        _pct(figure.percent),
        _pct(figure.low),
        _pct(figure.high),
        _mark(figure.count),
    ]


# ---------------------------------------------------------------- HTML


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True),
    )
    add_report_filters(environment)
    return environment


def _count(shown: Shown) -> str:
    if shown.value is None:
        return "*"
    return f"~{shown.value:,}" if shown.rounded else f"{shown.value:,}"


def _percent(value: float | None) -> str:
    return "*" if value is None else format_percent(value)


def _chart(title: str, rows: tuple[ChoiceFigure, ...], table_id: str) -> Markup:
    return Markup(bar_chart_svg(title, rows, table_id))  # every label in it is escaped


def add_report_filters(environment: jinja2.Environment) -> None:
    """The helpers the report templates use (also registered on the staff app's Jinja)."""
    environment.filters["count"] = _count
    environment.filters["percent"] = _percent
    environment.globals["report_chart"] = _chart


def report_html(report: Report) -> str:
    """The printable board report (a standalone page; print it to make a PDF)."""
    return _environment().get_template("reports/board_report.html").render(report=report)


def export(report: Report, format_: str) -> bytes:
    if format_ == "html":
        return report_html(report).encode()
    if format_ == "csv":
        return report_csv(report).encode("utf-8-sig")  # the BOM makes Excel read UTF-8
    if format_ == "xlsx":
        return report_xlsx(report)
    if format_ == "json":
        return report_json(report).encode()
    raise ValueError(f"unknown report format {format_!r}")
