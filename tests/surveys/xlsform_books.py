"""XLSForm workbooks for tests, built with openpyxl (no binary fixtures).

`workbook(...)` writes sheets from lists of rows (the first row is the header).
`workbook_from_survey(survey)` writes a `Survey` the way an ODK/Kobo author would,
independently of surveys/xlsform.py, so that converting it back can be compared
with the YAML the survey came from.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import openpyxl

from surveys.model import Condition, Survey

Rows = Sequence[Sequence[object]]

SETTINGS_HEADER = (
    "form_id",
    "version",
    "form_title",
    "be_safe::topic",
    "be_safe::intro",
    "be_safe::thanks",
)


def workbook(
    survey: Rows | None,
    choices: Rows | None = None,
    settings: Rows | None = None,
    *,
    extra: dict[str, Rows] | None = None,
) -> bytes:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    sheets = [("survey", survey), ("choices", choices), ("settings", settings)]
    sheets += list((extra or {}).items())
    used = False
    for name, rows in sheets:
        if rows is None:
            continue
        sheet = first if not used else book.create_sheet()
        sheet.title = name
        used = True
        for row in rows:
            sheet.append(list(row))
    if not used:
        first.title = "empty"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def basic_settings(**extra: object) -> list[list[object]]:
    header = [*SETTINGS_HEADER, *extra]
    values = [
        "wellbeing",
        1,
        "Feeling OK",
        "wellbeing",
        "This survey is about how you feel.",
        "Thank you for your answers.",
        *extra.values(),
    ]
    return [header, values]


def _relevant(condition: Condition, survey: Survey) -> str:
    def quote(value: object) -> str:
        return str(value) if isinstance(value, int | float) else f"'{value}'"

    def leaf(question: str, op: str, value: object) -> str:
        target = survey.question(question)
        if op == "includes" or (target is not None and target.type == "multiple_choice"):
            return f"selected(${{{question}}}, {quote(value)})"
        return f"${{{question}}} = {quote(value)}"

    op = condition.op
    if op == "all":
        return " and ".join(f"({_relevant(child, survey)})" for child in condition.children)
    if op == "any":
        return " or ".join(f"({_relevant(child, survey)})" for child in condition.children)
    if op == "not":
        return f"not({_relevant(condition.children[0], survey)})"
    question = condition.question or ""
    if op == "answered":
        return f"${{{question}}} != ''"
    if op == "at_least":
        return f"${{{question}}} >= {condition.values[0]}"
    if op == "at_most":
        return f"${{{question}}} <= {condition.values[0]}"
    parts = [leaf(question, op, value) for value in condition.values]
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def workbook_from_survey(survey: Survey) -> bytes:
    header = [
        "type",
        "name",
        "label",
        "hint",
        "required",
        "relevant",
        "constraint",
        "parameters",
        "be_safe::report_label",
        "be_safe::prefer_not_to_say",
        "be_safe::max_length",
        "be_safe::min_label",
        "be_safe::max_label",
    ]
    rows: list[list[object]] = [header]
    choices: list[list[object]] = [["list_name", "name", "label", "be_safe::flag"]]
    choices += [["yn", "yes", "Yes", None], ["yn", "no", "No", None]]
    settings_header = [
        *SETTINGS_HEADER,
        "be_safe::estimated_minutes",
        "be_safe::min_year",
        "be_safe::max_year",
        "be_safe::school_year",
        "be_safe::gender",
        "be_safe::area",
    ]
    school_year = survey.question("school_year")
    years = None
    if school_year is not None:
        numbers = [int(choice.value[1:]) for choice in school_year.choices]
        years = f"{min(numbers)}-{max(numbers)}"
    area = survey.question("area")
    if area is not None:
        choices += [["areas", c.value, c.label, c.flag] for c in area.choices]
    settings = [
        settings_header,
        [
            survey.id,
            survey.version,
            survey.title,
            survey.topic,
            survey.intro,
            survey.thanks,
            survey.estimated_minutes,
            survey.audience.min_year,
            survey.audience.max_year,
            years,
            "yes" if survey.question("gender") is not None else "no",
            "areas" if area is not None else None,
        ],
    ]
    for question in survey.questions:
        if question.dimension is not None:
            continue
        kind = {
            "free_text": "text",
            "info": "note",
            "yes_no": "select_one yn",
            "rating": "range",
        }.get(question.type, "")
        if question.type in ("single_choice", "multiple_choice"):
            word = "select_one" if question.type == "single_choice" else "select_multiple"
            kind = f"{word} list_{question.id}"
            choices += [[f"list_{question.id}", c.value, c.label, c.flag] for c in question.choices]
        constraint = parameters = None
        if question.type == "number":
            kind = "decimal"
            limits = []
            if question.min is not None:
                limits.append(f". >= {question.min}")
            if question.max is not None:
                limits.append(f". <= {question.max}")
            constraint = " and ".join(limits) or None
        if question.type == "rating":
            parameters = f"start={int(question.min or 0)} end={int(question.max or 0)} step=1"
        rows.append(
            [
                kind,
                question.id,
                question.text,
                question.help,
                "yes" if question.required else None,
                _relevant(question.show_if, survey) if question.show_if else None,
                constraint,
                parameters,
                question.report_label if question.type != "info" else None,
                "yes" if question.prefer_not_to_say else None,
                question.max_length,
                question.min_label,
                question.max_label,
            ]
        )
    return workbook(rows, choices, settings)
