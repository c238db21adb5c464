"""XLSForm workbooks (ODK / Kobo) -> the survey YAML of docs/surveys.md -> `Survey`.

A workbook is turned into survey YAML text (the format `surveys.definition`
reads), and that text is checked by `surveys.definition.parse_survey`: the
very same validation and messages as a hand-written file. Each YAML line the
converter writes remembers the sheet and row it came from, so every problem
is reported by row ("survey sheet, row 7: ...") instead of by YAML line.

`read_workbook` (bytes -> sheets of rows, through pyxform's reader) is the
only part that touches a file format; `convert_workbook` is a pure function
of the sheet rows. `parse_xlsform` never raises.

Be-Safe-only settings have columns prefixed `be_safe::` (documented in
docs/surveys.md, "Surveys from a spreadsheet (XLSForm)").
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from surveys.definition import (
    ParseResult,
    Problem,
    load_survey_file,
    parse_survey,
)
from surveys.model import Survey

MAX_WORKBOOK_BYTES = 2_000_000
MAX_UNPACKED_BYTES = 30_000_000  # a small .xlsx that unpacks to gigabytes is refused
PREFIX = "be_safe::"

SHEET_ORDER = ("settings", "survey", "choices")


# --- where a problem is ------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    sheet: str  # "settings", "survey", "choices"; "" for the workbook as a whole
    row: int = 0  # the spreadsheet's row number (the header is row 1); 0: the whole sheet

    def __str__(self) -> str:
        if not self.sheet:
            return "the workbook"
        if self.row <= 0:
            return f"{self.sheet} sheet"
        return f"{self.sheet} sheet, row {self.row}"

    def key(self) -> tuple[int, int]:
        order = SHEET_ORDER.index(self.sheet) + 1 if self.sheet in SHEET_ORDER else 9
        return (0 if not self.sheet else order, self.row)


WORKBOOK = Place("")


@dataclass(frozen=True)
class SheetProblem(Problem):
    """A `Problem` placed by sheet and row instead of by line."""

    sheet: str = ""
    row: int = 0

    @property
    def place(self) -> Place:
        return Place(self.sheet, self.row)

    def __str__(self) -> str:
        kind = "warning: " if self.severity == "warning" else ""
        whose = f"question '{self.question_id}': " if self.question_id is not None else ""
        return f"{self.source}: {self.place}: {kind}{whose}{self.message}"


# --- the workbook as rows -------------------------------------------------------------


@dataclass(frozen=True)
class Sheet:
    name: str
    columns: tuple[str, ...]  # in the order of the header row
    rows: tuple[Mapping[str, str], ...]  # rows[i] is spreadsheet row i + 2; empty rows kept


Workbook = Mapping[str, Sheet]


class WorkbookError(Exception):
    """The bytes are not a workbook we can read; the message says why, for a person."""


def read_workbook(data: bytes) -> Workbook:
    """An .xlsx file's XLSForm sheets, each row a dict of cell texts. Raises WorkbookError."""
    from pyxform.errors import PyXFormError
    from pyxform.xls2json_backends import xlsx_to_dict

    if not data:
        raise WorkbookError("the file is empty")
    if len(data) > MAX_WORKBOOK_BYTES:
        raise WorkbookError(
            f"the file is too big ({len(data)} bytes; at most {MAX_WORKBOOK_BYTES})"
        )
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise WorkbookError("this is an old Excel .xls file; save it as .xlsx and try again")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise WorkbookError(
            "this is not an .xlsx workbook (it is not a zip file); "
            "save the spreadsheet as Excel .xlsx and try again"
        ) from None
    if "xl/workbook.xml" not in names:
        raise WorkbookError(
            "this zip file is not an Excel .xlsx workbook; save the spreadsheet as .xlsx"
        )
    if unpacked > MAX_UNPACKED_BYTES:
        raise WorkbookError(f"the workbook unpacks to more than {MAX_UNPACKED_BYTES} bytes")
    try:
        book = xlsx_to_dict(io.BytesIO(data))
    except PyXFormError as error:
        raise WorkbookError(f"the workbook could not be read: {error}") from None
    except Exception as error:  # a damaged workbook can fail anywhere inside openpyxl
        raise WorkbookError(
            f"the workbook could not be read ({type(error).__name__}); is it damaged?"
        ) from None
    sheets: dict[str, Sheet] = {}
    for name, rows in book.items():
        if name == "sheet_names" or name.endswith("_header") or not isinstance(rows, list):
            continue
        header = book.get(f"{name}_header") or [{}]
        columns = tuple(str(column) for column in header[0]) if header else ()
        sheets[name] = Sheet(
            name,
            columns,
            tuple({str(k): str(v) for k, v in row.items() if v is not None} for row in rows),
        )
    return sheets


# --- rows -> YAML text that knows where each line came from ---------------------------


@dataclass
class Conversion:
    """The YAML text for a workbook, where each of its lines came from, and row problems."""

    yaml_text: str
    places: list[Place]  # places[n - 1] is where YAML line n came from
    problems: list[tuple[Place, str | None, str]] = field(default_factory=list)
    warnings: list[tuple[Place, str | None, str]] = field(default_factory=list)
    question_rows: dict[str, int] = field(default_factory=dict)
    settings_place: Place = Place("settings")

    def place_of(self, line: int) -> Place:
        if 1 <= line <= len(self.places):
            return self.places[line - 1]
        return WORKBOOK


# Text that YAML reads back as the same text when written without quotes (checked by a
# pattern, not by parsing: parsing each value made a 300-question import take seconds).
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9 _.?!()/-]*")
_YAML_WORDS = frozenset(("yes", "no", "on", "off", "true", "false", "null", "y", "n", "nan", "inf"))


def _plain_ok(text: str, flow: bool) -> bool:
    return (
        _PLAIN.fullmatch(text) is not None
        and not (flow and "?" in text)  # PyYAML ends a plain scalar at "?" inside {...}
        and not text.endswith(" ")
        and text.lower() not in _YAML_WORDS
    )


def _scalar(value: object, flow: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if _plain_ok(text, flow):
        return text
    # A JSON string is a valid YAML double-quoted scalar, on one line.
    return json.dumps(text, ensure_ascii=False)


def _number_token(text: str) -> str:
    """A cell meant to be a number: written as a number when it is one, else as text."""
    cleaned = text.strip()
    if re.fullmatch(r"-?\d{1,9}", cleaned):
        return str(int(cleaned))
    if re.fullmatch(r"-?\d{1,9}\.\d{1,9}", cleaned):
        return cleaned
    return json.dumps(cleaned, ensure_ascii=False)


def _flow(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    return _scalar(value, flow=True)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.places: list[Place] = []

    def add(self, indent: int, text: str, place: Place) -> None:
        self.lines.append(" " * indent + text)
        self.places.append(place)


# --- the relevant column -> show_if -----------------------------------------------------


class RelevantError(ValueError):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<ref>\$\{\s*(?P<name>[^}\s]*)\s*\})
    | (?P<string>'[^']*'|"[^"]*")
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op>!=|>=|<=|=|>|<)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][A-Za-z0-9_.:-]*)
    | (?P<other>\S)
    )""",
    re.VERBOSE,
)

RELEVANT_FORMS = (
    "${q} = 'v', ${q} != 'v', selected(${q}, 'v'), ${q} >= 3, ${q} <= 3, "
    "${q} != '' (answered), joined with and, or, not(...) and parentheses"
)


@dataclass
class _RefInfo:
    kind: str  # our question type
    whole: bool  # answers are whole numbers (integer, range)


class _RelevantParser:
    """A recursive-descent reader for the simple relevant expressions Be-Safe can follow."""

    def __init__(self, text: str, known: Mapping[str, _RefInfo]) -> None:
        self.tokens: list[tuple[str, str]] = []
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup
            if kind == "name":
                kind = "ref"
            if kind is None:
                continue
            value = match.group("name") if kind == "ref" else match.group(kind)
            if kind == "other":
                raise RelevantError(f"'{match.group(kind)}' is not understood here")
            self.tokens.append((kind, value))
        self.position = 0
        self.known = known

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise RelevantError("it ends too soon")
        self.position += 1
        return token

    def expect(self, kind: str, value: str | None = None) -> str:
        found = self.take()
        if found[0] != kind or (value is not None and found[1] != value):
            wanted = f"'{value}'" if value is not None else kind
            raise RelevantError(f"expected {wanted} but found '{found[1]}'")
        return found[1]

    def parse(self) -> dict[str, Any]:
        if not self.tokens:
            raise RelevantError("it is empty")
        result = self.either()
        if self.peek() is not None:
            raise RelevantError(f"'{self.peek()[1]}' is not understood here")  # type: ignore[index]
        return result

    def either(self) -> dict[str, Any]:
        parts = [self.both()]
        while self.peek() == ("word", "or"):
            self.take()
            parts.append(self.both())
        return parts[0] if len(parts) == 1 else _any_of(_flatten("any", parts))

    def both(self) -> dict[str, Any]:
        parts = [self.unary()]
        while self.peek() == ("word", "and"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else {"all": _flatten("all", parts)}

    def unary(self) -> dict[str, Any]:
        token = self.peek()
        if token == ("punct", "("):
            self.take()
            inner = self.either()
            self.expect("punct", ")")
            return inner
        if token == ("word", "not"):
            self.take()
            self.expect("punct", "(")
            inner = self.either()
            self.expect("punct", ")")
            return {"not": inner}
        if token == ("word", "selected"):
            self.take()
            self.expect("punct", "(")
            name = self.expect("ref")
            self.expect("punct", ",")
            value = self.literal()
            self.expect("punct", ")")
            info = self.known.get(name)
            single = info is not None and info.kind in ("single_choice", "yes_no")
            return {"question": name, "equals" if single else "includes": value}
        if token is not None and token[0] == "ref":
            return self.comparison()
        if token is None:
            raise RelevantError("it ends too soon")
        raise RelevantError(f"'{token[1]}' is not understood here")

    def literal(self) -> str | int | float:
        kind, value = self.take()
        if kind == "string":
            return value[1:-1]
        if kind == "number":
            return float(value) if "." in value else int(value)
        raise RelevantError(f"expected a value like 'yes' or 3, but found '{value}'")

    def comparison(self) -> dict[str, Any]:
        name = self.expect("ref")
        if not name:
            raise RelevantError("${} names no question")
        kind, op = self.take()
        if kind != "op":
            raise RelevantError(f"expected =, != , >= or <= after ${{{name}}}, found '{op}'")
        value = self.literal()
        info = self.known.get(name)
        if op in ("=", "!="):
            if value == "":
                return {"question": name, "answered": op == "!="}
            if info is not None and info.kind == "multiple_choice":
                raise RelevantError(
                    f"${{{name}}} is a select_multiple: test it with selected(${{{name}}}, "
                    f"'{value}')"
                )
            leaf = {"question": name, "equals": value}
            return leaf if op == "=" else {"not": leaf}
        number = value if isinstance(value, int | float) else _as_float(value)
        if number is None:
            raise RelevantError(f"{op} needs a number, not '{value}'")
        if op in (">", "<"):
            if info is None or not info.whole or not float(number).is_integer():
                raise RelevantError(f"use >= or <= instead of {op}")
            number = int(number) + (1 if op == ">" else -1)
        return {"question": name, "at_least" if op in (">=", ">") else "at_most": number}


def _as_float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None


def _flatten(op: str, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for part in parts:
        if list(part) == [op]:
            flat.extend(part[op])
        else:
            flat.append(part)
    return flat


def _any_of(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """`a = 'x' or a = 'y'` reads better (and matches hand-written YAML) as `a in [x, y]`."""
    questions = {part.get("question") for part in parts}
    ops = {key for part in parts for key in part if key != "question"}
    if len(questions) == 1 and None not in questions and ops in ({"equals"}, {"includes"}):
        op = ops.pop()
        return {
            "question": questions.pop(),
            "in" if op == "equals" else op: [part[op] for part in parts],
        }
    return {"any": parts}


def relevant_to_show_if(text: str, known: Mapping[str, _RefInfo]) -> dict[str, Any]:
    """An XLSForm relevant expression as a show_if mapping. Raises RelevantError."""
    return _RelevantParser(text, known).parse()


# --- the conversion -----------------------------------------------------------------------

_TYPES_SIMPLE = {
    "text": "free_text",
    "string": "free_text",
    "integer": "number",
    "int": "number",
    "decimal": "number",
    "note": "info",
    "range": "rating",
}
# Types refused, and why (shown to the person importing the form).
_WHY_LOCATION = "it records a location, which could identify a young person"
_WHY_MEDIA = (
    "photos, sound, video and files are not collected: they could identify a young person, "
    "and a chat survey takes text and buttons only"
)
_WHY_DEVICE = "device and account details are never collected: Be-Safe keeps young people anonymous"
_WHY_DATE = (
    "dates and times are not asked: a date (such as a date of birth) can identify a young person"
)
_REFUSED_TYPES: dict[str, str] = {
    "geopoint": _WHY_LOCATION,
    "geotrace": _WHY_LOCATION,
    "geoshape": _WHY_LOCATION,
    "start-geopoint": _WHY_LOCATION,
    "background-geopoint": _WHY_LOCATION,
    "image": _WHY_MEDIA,
    "photo": _WHY_MEDIA,
    "audio": _WHY_MEDIA,
    "video": _WHY_MEDIA,
    "file": _WHY_MEDIA,
    "background-audio": _WHY_MEDIA,
    "audit": _WHY_DEVICE,
    "deviceid": _WHY_DEVICE,
    "phonenumber": _WHY_DEVICE,
    "username": _WHY_DEVICE,
    "email": _WHY_DEVICE,
    "simserial": _WHY_DEVICE,
    "subscriberid": _WHY_DEVICE,
    "date": _WHY_DATE,
    "datetime": _WHY_DATE,
    "time": _WHY_DATE,
    "barcode": "a chat cannot scan a barcode",
    "calculate": "Be-Safe does no calculations: every step is something the young person sees",
    "hidden": "every step is something the young person sees",
    "acknowledge": "a chat has no tick-box to acknowledge; use a note",
    "trigger": "a chat has no tick-box to acknowledge; use a note",
    "rank": "a chat cannot rank choices; use select_one or select_multiple",
    "begin repeat": "a chat survey asks each question once, so there are no repeats",
    "end repeat": "a chat survey asks each question once, so there are no repeats",
    "begin_repeat": "a chat survey asks each question once, so there are no repeats",
    "end_repeat": "a chat survey asks each question once, so there are no repeats",
    "select_one_from_file": "put the choices in the choices sheet instead of a file",
    "select_multiple_from_file": "put the choices in the choices sheet instead of a file",
    "select_one_external": "put the choices in the choices sheet instead",
    "xml-external": "Be-Safe uses no external data",
    "csv-external": "Be-Safe uses no external data",
}
# Timestamps that ODK/Kobo templates add to every form: skipped with a warning.
_SKIPPED_TYPES = ("start", "end", "today")
_BEGIN_GROUP = ("begin group", "begin_group")
_END_GROUP = ("end group", "end_group")

_SURVEY_COLUMNS = (
    "type",
    "name",
    "label",
    "hint",
    "required",
    "relevant",
    "constraint",
    "parameters",
)
_SURVEY_BE_SAFE = (
    "report_label",
    "prefer_not_to_say",
    "max_length",
    "min_label",
    "max_label",
)
# Columns that XLSForms often carry and whose meaning we can drop without changing the survey.
_SURVEY_IGNORED = (
    "appearance",
    "constraint_message",
    "required_message",
    "guidance_hint",
    "read_only",
    "default",
    "media",
    "image",
    "audio",
    "video",
    "big-image",
    "label_tts",
)
# Columns that change what a form does, which Be-Safe cannot follow: refused when filled in.
_SURVEY_REFUSED_COLUMNS = {
    "choice_filter": "choices filtered by earlier answers are not supported; "
    "use separate questions with relevant instead",
    "repeat_count": "repeats are not supported: a chat survey asks each question once",
    "calculation": "calculations are not supported",
    "trigger": "triggers are not supported",
}
_SETTINGS_BE_SAFE = (
    "topic",
    "intro",
    "thanks",
    "estimated_minutes",
    "min_year",
    "max_year",
    "school_year",
    "gender",
    "area",
)
_SETTINGS_IGNORED = (
    "instance_name",
    "default_language",
    "public_key",
    "submission_url",
    "style",
    "allow_choice_duplicates",
    "namespaces",
    "clean_text_values",
    "auto_send",
    "auto_delete",
    "omit_instanceid",
    "instance_id",
)
_CHOICES_BE_SAFE = ("flag",)

_YES = ("yes", "true", "1", "true()")
_NO = ("no", "false", "0", "false()")


def _is_yes_no(
    entries: list[tuple[int, Mapping[str, str]]] | None, columns: Mapping[str, str]
) -> bool:
    """A list that is exactly Yes / No becomes Be-Safe's yes_no type (the same buttons)."""
    if not entries or len(entries) != 2:
        return False
    keys = ("name", "label", PREFIX + "flag")
    found = [tuple(row.get(columns.get(key, ""), "").strip() for key in keys) for _, row in entries]
    return found == [("yes", "Yes", ""), ("no", "No", "")]


def _norm(column: str) -> str:
    column = " ".join(column.split()).lower()
    return "list_name" if column == "list name" else column


class _Converter:
    def __init__(self, book: Workbook) -> None:
        self.book = {name.lower(): sheet for name, sheet in book.items()}
        self.out = _Writer()
        self.problems: list[tuple[Place, str | None, str]] = []
        self.warnings: list[tuple[Place, str | None, str]] = []
        self.question_rows: dict[str, int] = {}
        self.choice_columns: dict[str, str] = {}
        self.demographic_ids: list[str] = []
        self.settings_place = Place("settings")

    def error(self, place: Place, message: str, qid: str | None = None) -> None:
        self.problems.append((place, qid, message))

    def warn(self, place: Place, message: str, qid: str | None = None) -> None:
        self.warnings.append((place, qid, message))

    # columns

    def columns(
        self,
        sheet: Sheet,
        known: tuple[str, ...],
        be_safe: tuple[str, ...],
        ignored: tuple[str, ...],
    ) -> dict[str, str]:
        """The sheet's columns by normalised name; warns about ignored ones."""
        found: dict[str, str] = {}
        place = Place(sheet.name)
        languages: dict[str, list[str]] = {}
        for column in sheet.columns:
            name = _norm(column)
            base = name.split("::", 1)[0]
            if name.startswith(PREFIX):
                if name[len(PREFIX) :] not in be_safe:
                    self.error(
                        place,
                        f"unknown column '{column}' (Be-Safe columns here: "
                        f"{', '.join(PREFIX + key for key in be_safe)})",
                    )
                    continue
                found[name] = column
            elif "::" in name and base in ("label", "hint"):
                languages.setdefault(base, []).append(column)
            elif name in known or (name in _SURVEY_REFUSED_COLUMNS and sheet.name == "survey"):
                found[name] = column
            elif base in ignored or name in ignored:
                continue
            else:
                self.warn(place, f"column '{column}' is not used by Be-Safe and was ignored")
        for base, variants in languages.items():
            if base in found:
                continue
            chosen = self.language_column(variants)
            found[base] = chosen
            if len(variants) > 1:
                self.warn(
                    place,
                    f"'{base}' is given in several languages; Be-Safe uses '{chosen}' "
                    f"(set default_language in the settings sheet to choose)",
                )
        return found

    def language_column(self, variants: list[str]) -> str:
        settings = self.book.get("settings")
        wanted = ""
        if settings is not None and settings.rows:
            for key, value in settings.rows[0].items():
                if _norm(key) == "default_language":
                    wanted = value.strip().lower()
        for column in variants:
            if wanted and column.split("::", 1)[1].strip().lower() == wanted:
                return column
        return variants[0]

    @staticmethod
    def cell(row: Mapping[str, str], columns: Mapping[str, str], name: str) -> str:
        column = columns.get(name)
        return row.get(column, "").strip() if column is not None else ""

    def yes_no(
        self, text: str, place: Place, column: str, qid: str | None, note: str = ""
    ) -> bool | None:
        lowered = text.strip().lower()
        if not lowered:
            return None
        if lowered in _YES:
            return True
        if lowered in _NO:
            return False
        self.error(place, f"{column} must be yes or no, not '{text}'{note}", qid)
        return None

    # the whole workbook

    def convert(self) -> None:
        survey = self.book.get("survey")
        if survey is None:
            names = ", ".join(sorted(self.book)) or "none"
            self.error(
                WORKBOOK,
                f"the workbook has no sheet called 'survey' (XLSForm sheets found: {names})",
            )
            return
        if not any(row for sheet in self.book.values() for row in sheet.rows):
            self.error(WORKBOOK, "the workbook is empty")
            return
        choices = self.choice_lists()
        self.settings(choices)
        self.questions(survey, choices)

    def choice_lists(self) -> dict[str, list[tuple[int, Mapping[str, str]]]]:
        sheet = self.book.get("choices")
        lists: dict[str, list[tuple[int, Mapping[str, str]]]] = {}
        if sheet is None:
            return lists
        self.choice_columns = self.columns(
            sheet, ("list_name", "name", "label"), _CHOICES_BE_SAFE, ()
        )
        for column in ("list_name", "name", "label"):
            if column not in self.choice_columns and sheet.rows:
                self.error(Place("choices"), f"the choices sheet has no '{column}' column")
        for index, row in enumerate(sheet.rows):
            if not row:
                continue
            list_name = self.cell(row, self.choice_columns, "list_name")
            if not list_name:
                self.error(Place("choices", index + 2), "this choice has no list_name")
                continue
            lists.setdefault(list_name, []).append((index + 2, row))
        return lists

    def write_choices(
        self, indent: int, entries: list[tuple[int, Mapping[str, str]]], qid: str | None
    ) -> None:
        for row_number, row in entries:
            place = Place("choices", row_number)
            value = self.cell(row, self.choice_columns, "name")
            label = self.cell(row, self.choice_columns, "label")
            flag = self.cell(row, self.choice_columns, PREFIX + "flag")
            first = True
            for key, item in (("value", value), ("label", label), ("flag", flag)):
                if not item:
                    continue
                self.out.add(
                    indent + (0 if first else 2),
                    f"{'- ' if first else ''}{key}: {_scalar(item)}",
                    place,
                )
                first = False
            if first:
                self.out.add(indent, "- {}", place)

    # the settings sheet

    def settings(self, choices: Mapping[str, list[tuple[int, Mapping[str, str]]]]) -> None:
        sheet = self.book.get("settings")
        row: Mapping[str, str] = {}
        columns: dict[str, str] = {}
        place = Place("settings")
        if sheet is not None:
            columns = self.columns(
                sheet, ("form_id", "version", "form_title"), _SETTINGS_BE_SAFE, _SETTINGS_IGNORED
            )
            filled = [(index, r) for index, r in enumerate(sheet.rows) if r]
            if filled:
                row = filled[0][1]
                place = Place("settings", filled[0][0] + 2)
                for index, _extra in filled[1:]:
                    self.warn(
                        Place("settings", index + 2),
                        "only the first row of the settings sheet is used",
                    )
        self.settings_place = place
        self.out.add(0, "# Converted from an XLSForm workbook by Be-Safe (docs/surveys.md).", place)
        for key, column in (
            ("id", "form_id"),
            ("version", "version"),
            ("title", "form_title"),
            ("topic", PREFIX + "topic"),
            ("intro", PREFIX + "intro"),
            ("thanks", PREFIX + "thanks"),
            ("estimated_minutes", PREFIX + "estimated_minutes"),
        ):
            value = self.cell(row, columns, column)
            if not value:
                continue
            token = _number_token(value) if key in ("version", "estimated_minutes") else None
            self.out.add(0, f"{key}: {token or _scalar(value)}", place)
        years = [(key, self.cell(row, columns, PREFIX + key)) for key in ("min_year", "max_year")]
        if any(value for _key, value in years):
            self.out.add(0, "audience:", place)
            for key, value in years:
                if value:
                    self.out.add(2, f"{key}: {_number_token(value)}", place)
        self.demographics(row, columns, place, choices)

    def demographics(
        self,
        row: Mapping[str, str],
        columns: Mapping[str, str],
        place: Place,
        choices: Mapping[str, list[tuple[int, Mapping[str, str]]]],
    ) -> None:
        lines: list[tuple[int, str, Place]] = []
        school_year = self.cell(row, columns, PREFIX + "school_year")
        if school_year:
            span = re.fullmatch(r"(\d{1,2})\s*(?:-|to)\s*(\d{1,2})", school_year.lower())
            if span:
                lines.append((2, "school_year:", place))
                lines.append((4, f"min_year: {int(span[1])}", place))
                lines.append((4, f"max_year: {int(span[2])}", place))
            else:
                asked = self.yes_no(
                    school_year, place, f"{PREFIX}school_year (yes, no or years like 7-11)", None
                )
                if asked:
                    lines.append((2, "school_year: true", place))
        gender = self.cell(row, columns, PREFIX + "gender")
        if self.yes_no(gender, place, PREFIX + "gender", None):
            lines.append((2, "gender: true", place))
        area = self.cell(row, columns, PREFIX + "area")
        self.demographic_ids = [text.split(":")[0].strip() for _, text, _ in lines if _ == 2]
        if area:
            self.demographic_ids.append("area")
        if lines:
            self.out.add(0, "demographics:", place)
            for indent, text, where in lines:
                self.out.add(indent, text, where)
        if area:
            if not lines:
                self.out.add(0, "demographics:", place)
            entries = choices.get(area)
            if not entries:
                self.error(
                    place,
                    f"{PREFIX}area names list '{area}', which has no choices in the choices sheet",
                )
                return
            self.out.add(2, "area:", place)
            self.write_choices(4, entries, "area")

    # the survey sheet

    def questions(
        self, sheet: Sheet, choices: Mapping[str, list[tuple[int, Mapping[str, str]]]]
    ) -> None:
        columns = self.columns(sheet, _SURVEY_COLUMNS, _SURVEY_BE_SAFE, _SURVEY_IGNORED)
        missing = [column for column in ("type", "name", "label") if column not in columns]
        for column in missing:
            self.error(Place("survey"), f"the survey sheet has no '{column}' column")
        if missing:
            return
        self.out.add(0, "questions:", Place("survey"))
        known: dict[str, _RefInfo] = {
            name: _RefInfo("single_choice", False) for name in self.demographic_ids
        }
        groups: list[tuple[int, str, dict[str, Any] | None]] = []  # row, name, condition
        written = 0
        for index, row in enumerate(sheet.rows):
            if not row:
                continue
            number = index + 2
            place = Place("survey", number)
            raw_type = " ".join(self.cell(row, columns, "type").split())
            kind = raw_type.lower()
            name = self.cell(row, columns, "name") or None
            for column, why in _SURVEY_REFUSED_COLUMNS.items():
                if self.cell(row, columns, column) and kind != "calculate":
                    self.error(place, f"{column}: {why}", name)
            if not kind:
                self.error(place, "this row has no type", name)
                continue
            if kind in _BEGIN_GROUP:
                condition = self.relevant(row, columns, place, name, known)
                groups.append((number, name or "", condition))
                continue
            if kind in _END_GROUP:
                if not groups:
                    self.error(place, "'end group' without a 'begin group' above it")
                else:
                    groups.pop()
                continue
            if kind in _SKIPPED_TYPES:
                self.warn(place, f"'{raw_type}' was left out: Be-Safe records its own times", name)
                continue
            if kind in _REFUSED_TYPES or kind.split(" ")[0] in _REFUSED_TYPES:
                why = _REFUSED_TYPES.get(kind) or _REFUSED_TYPES[kind.split(" ")[0]]
                self.error(place, f"type '{raw_type}' is not supported: {why}", name)
                continue
            our_type, list_name = self.question_type(raw_type, place, name)
            if our_type is None:
                continue
            if (
                list_name is not None
                and our_type == "single_choice"
                and _is_yes_no(choices.get(list_name), self.choice_columns)
            ):
                our_type, list_name = "yes_no", None
            if name is not None:
                known[name] = _RefInfo(our_type, kind in ("integer", "int", "range"))
            own = self.relevant(row, columns, place, name, known)
            conditions = [cond for _, _, cond in groups if cond is not None]
            if own is not None:
                conditions.append(own)
            condition: dict[str, Any] | None = None
            if len(conditions) == 1:
                condition = conditions[0]
            elif conditions:
                condition = {"all": _flatten("all", conditions)}
            self.question(row, columns, place, name, our_type, kind, list_name, choices, condition)
            if name is not None:
                self.question_rows.setdefault(name, number)
            written += 1
        for number, name, _condition in groups:
            self.error(
                Place("survey", number),
                f"group '{name}' is never closed: add an 'end group' row"
                if name
                else "this group is never closed: add an 'end group' row",
            )
        if not written:
            self.out.lines[-1] += " []"

    def question_type(
        self, raw_type: str, place: Place, name: str | None
    ) -> tuple[str | None, str | None]:
        parts = raw_type.split(" ")
        head = parts[0].lower()
        if head in ("select_one", "select_multiple", "select1"):
            our = "multiple_choice" if head == "select_multiple" else "single_choice"
            if len(parts) < 2:
                self.error(place, f"'{raw_type}' needs a list name, like '{head} yes_no'", name)
                return None, None
            if len(parts) > 2 and parts[2].lower() == "or_other":
                self.error(
                    place,
                    "'or_other' is not supported: add an 'other' choice and a text question "
                    "shown when it is picked",
                    name,
                )
                return None, None
            if len(parts) > 2:
                self.error(place, f"type '{raw_type}' has more words than a list name", name)
                return None, None
            return our, parts[1]
        our_type = _TYPES_SIMPLE.get(raw_type.lower())
        if our_type is None:
            self.error(
                place,
                f"unknown type '{raw_type}' (Be-Safe understands: select_one LIST, "
                "select_multiple LIST, text, integer, decimal, range, note, "
                "begin group, end group)",
                name,
            )
        return our_type, None

    def relevant(
        self,
        row: Mapping[str, str],
        columns: Mapping[str, str],
        place: Place,
        name: str | None,
        known: Mapping[str, _RefInfo],
    ) -> dict[str, Any] | None:
        text = self.cell(row, columns, "relevant")
        if not text:
            return None
        try:
            return relevant_to_show_if(text, known)
        except RelevantError as error:
            self.error(
                place,
                f'relevant "{text}" cannot be used: {error}. Be-Safe understands {RELEVANT_FORMS}',
                name,
            )
            return None

    def limits(
        self, row: Mapping[str, str], columns: Mapping[str, str], place: Place, name: str | None
    ) -> tuple[str | None, str | None]:
        """min and max from a constraint like `. >= 0 and . <= 24`."""
        text = self.cell(row, columns, "constraint")
        if not text:
            return None, None
        low = high = None
        for part in re.split(r"\s+and\s+", text.strip()):
            match = re.fullmatch(r"\.\s*(>=|<=)\s*(-?\d+(?:\.\d+)?)", part.strip())
            if match is None:
                self.error(
                    place,
                    f"constraint '{text}' cannot be used: Be-Safe understands only limits like "
                    "'. >= 0 and . <= 24'",
                    name,
                )
                return None, None
            if match[1] == ">=":
                low = match[2]
            else:
                high = match[2]
        return low, high

    def range_points(
        self, row: Mapping[str, str], columns: Mapping[str, str], place: Place, name: str | None
    ) -> tuple[str | None, str | None]:
        text = self.cell(row, columns, "parameters")
        found = dict((key.lower(), value) for key, value in re.findall(r"(\w+)\s*=\s*(\S+)", text))
        start, end, step = found.get("start", "1"), found.get("end", "10"), found.get("step", "1")
        if _as_float(step) != 1.0:
            self.error(
                place,
                f"a range with step {step} cannot be a rating: a Be-Safe rating counts in "
                "steps of 1 (set parameters like 'start=1 end=5 step=1')",
                name,
            )
            return None, None
        return start, end

    def question(
        self,
        row: Mapping[str, str],
        columns: Mapping[str, str],
        place: Place,
        name: str | None,
        our_type: str,
        kind: str,
        list_name: str | None,
        choices: Mapping[str, list[tuple[int, Mapping[str, str]]]],
        condition: dict[str, Any] | None,
    ) -> None:
        cell = lambda key: self.cell(row, columns, key)  # noqa: E731
        fields: list[tuple[str, str]] = []
        if name:
            fields.append(("id", _scalar(name)))
        fields.append(("type", our_type))
        for key, column in (
            ("text", "label"),
            ("report_label", PREFIX + "report_label"),
            ("help", "hint"),
        ):
            if cell(column):
                fields.append((key, _scalar(cell(column))))
        required = self.yes_no(
            cell("required"),
            place,
            "required",
            name,
            " (a condition is not supported, and young people should be free to skip)",
        )
        if required:
            fields.append(("required", "true"))
        prefer = self.yes_no(
            cell(PREFIX + "prefer_not_to_say"), place, PREFIX + "prefer_not_to_say", name
        )
        if prefer:
            fields.append(("prefer_not_to_say", "true"))
        if our_type == "number":
            low, high = self.limits(row, columns, place, name)
            if low is not None:
                fields.append(("min", _number_token(low)))
            if high is not None:
                fields.append(("max", _number_token(high)))
        elif cell("constraint"):
            self.error(place, "a constraint only applies to integer and decimal questions", name)
        if our_type == "rating":
            start, end = self.range_points(row, columns, place, name)
            if start is not None and end is not None:
                fields.append(("min", _number_token(start)))
                fields.append(("max", _number_token(end)))
        for key in ("min_label", "max_label", "max_length"):
            if cell(PREFIX + key):
                value = cell(PREFIX + key)
                fields.append(
                    (key, _number_token(value) if key == "max_length" else _scalar(value))
                )
        if condition is not None:
            fields.append(("show_if", _flow(condition)))
        for position, (key, text) in enumerate(fields):
            self.out.add(
                2 if position == 0 else 4, f"{'- ' if position == 0 else ''}{key}: {text}", place
            )
        if list_name is not None:
            entries = choices.get(list_name)
            if not entries:
                self.error(
                    place,
                    f"list '{list_name}' has no choices in the choices sheet",
                    name,
                )
                return
            self.out.add(4, "choices:", place)
            self.write_choices(6, entries, name)


def convert_workbook(book: Workbook) -> Conversion:
    """Pure: an XLSForm's sheet rows -> survey YAML text, with where each line came from."""
    converter = _Converter(book)
    converter.convert()
    return Conversion(
        yaml_text="\n".join(converter.out.lines) + "\n",
        places=converter.out.places,
        problems=converter.problems,
        warnings=converter.warnings,
        question_rows=converter.question_rows,
        settings_place=converter.settings_place,
    )


# --- checking: the YAML validator's problems, placed by row -------------------------------

_LINE_IN_MESSAGE = re.compile(r"\bon line (\d+)")
# In messages about the survey sheet, the YAML key named first -> its XLSForm column.
_COLUMN_FOR_KEY: dict[str, dict[str, str]] = {
    "settings": {
        "id": "form_id",
        "version": "version",
        "title": "form_title",
        "topic": PREFIX + "topic",
        "intro": PREFIX + "intro",
        "thanks": PREFIX + "thanks",
        "estimated_minutes": PREFIX + "estimated_minutes",
        "min_year": PREFIX + "min_year",
        "max_year": PREFIX + "max_year",
        "school_year": PREFIX + "school_year",
        "area": PREFIX + "area",
    },
    "survey": {
        "id": "name",
        "text": "label",
        "report_label": PREFIX + "report_label",
        "help": "hint",
        "max_length": PREFIX + "max_length",
        "min_label": PREFIX + "min_label",
        "max_label": PREFIX + "max_label",
        "choices": "list",
    },
    "choices": {"value": "name", "label": "label", "flag": PREFIX + "flag"},
}
_LEADING_KEY = re.compile(r"^(missing required key |missing |)'(\w+)'")


def _in_xlsform_words(message: str, place: Place, conversion: Conversion) -> str:
    """A validator message in the workbook's words: rows for lines, columns for keys."""
    message = _LINE_IN_MESSAGE.sub(
        lambda match: f"in {conversion.place_of(int(match[1]))}", message
    )
    columns = _COLUMN_FOR_KEY.get(place.sheet, {})
    match = _LEADING_KEY.match(message)
    if match and match[2] in columns:
        lead = "missing required setting " if match[1] == "missing required key " else match[1]
        message = f"{lead}'{columns[match[2]]}'{message[match.end() :]}"
    if place.sheet == "survey":
        message = re.sub(r"^show_if\b", "relevant", message)
        message = message.replace("make its show_if true", "make its relevant true")
        message = message.replace(
            "prefer_not_to_say does not", f"{PREFIX}prefer_not_to_say does not"
        )
        message = message.replace("an info step", "a note")
    if place.sheet == "choices":
        message = message.replace(
            "set prefer_not_to_say: true to offer it",
            f"set {PREFIX}prefer_not_to_say to yes on the question to offer it",
        )
    return message


@dataclass(frozen=True)
class XlsformResult:
    result: ParseResult
    yaml_text: str | None  # the converted survey as YAML; None when the workbook was unreadable


def check_conversion(conversion: Conversion, source: str) -> ParseResult:
    """Validate converted YAML with the YAML validator; every problem placed by sheet and row."""
    parsed = parse_survey(conversion.yaml_text, source)
    own = {place for place, _qid, _message in conversion.problems}

    def placed(problem: Problem) -> SheetProblem:
        place = conversion.place_of(problem.line)
        if problem.message == "missing required key 'questions'":
            place = Place("survey")
        elif problem.message.startswith("missing required key"):
            place = conversion.settings_place  # the survey's own keys all come from settings
        return SheetProblem(
            source,
            0,
            problem.question_id,
            _in_xlsform_words(problem.message, place, conversion),
            problem.severity,
            sheet=place.sheet,
            row=place.row,
        )

    errors = [
        SheetProblem(source, 0, qid, message, sheet=place.sheet, row=place.row)
        for place, qid, message in conversion.problems
    ]
    # A row the converter already refused would only repeat itself in the validator's words.
    errors += [p for p in map(placed, parsed.problems) if p.place not in own]
    warnings = [
        SheetProblem(source, 0, qid, message, "warning", sheet=place.sheet, row=place.row)
        for place, qid, message in conversion.warnings
    ] + [placed(problem) for problem in parsed.warnings]
    errors = _unique(sorted(errors, key=lambda p: p.place.key()))
    warnings = _unique(sorted(warnings, key=lambda p: p.place.key()))
    survey = parsed.survey if not errors else None
    if survey is not None:
        survey = _with_rows(survey, conversion)
    return ParseResult(survey, list(errors), list(warnings))


def _unique(problems: Sequence[SheetProblem]) -> list[SheetProblem]:
    seen: set[tuple[str, int, str | None, str]] = set()
    kept = []
    for problem in problems:
        key = (problem.sheet, problem.row, problem.question_id, problem.message)
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept


def _with_rows(survey: Survey, conversion: Conversion) -> Survey:
    """Questions remember their survey-sheet row (not a line of the intermediate YAML)."""
    questions = tuple(
        replace(question, line=conversion.place_of(question.line).row)
        for question in survey.questions
    )
    return replace(survey, questions=questions)


def parse_xlsform(data: bytes, source: str = "<workbook>") -> XlsformResult:
    """Read, convert and validate an XLSForm workbook's bytes. Never raises."""
    try:
        book = read_workbook(data)
    except WorkbookError as error:
        problem = SheetProblem(source, 0, None, str(error))
        return XlsformResult(ParseResult(None, [problem]), None)
    try:
        conversion = convert_workbook(book)
        return XlsformResult(check_conversion(conversion, source), conversion.yaml_text)
    except Exception as error:  # a bug here must not take the caller down with it
        problem = SheetProblem(source, 0, None, f"internal error while converting: {error!r}")
        return XlsformResult(ParseResult(None, [problem]), None)


def load_xlsform_file(path: str | Path) -> XlsformResult:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_WORKBOOK_BYTES:
            problem = SheetProblem(str(path), 0, None, "the file is too big")
            return XlsformResult(ParseResult(None, [problem]), None)
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        problem = SheetProblem(str(path), 0, None, f"cannot read the file: {reason}")
        return XlsformResult(ParseResult(None, [problem]), None)
    return parse_xlsform(data, str(path))


WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls")


def is_workbook_name(name: str) -> bool:
    return Path(name).suffix.lower() in WORKBOOK_SUFFIXES


def load_any_survey_file(path: str | Path) -> ParseResult:
    """A survey file in either format: .xlsx (XLSForm) or YAML."""
    if is_workbook_name(str(path)):
        return load_xlsform_file(path).result
    return load_survey_file(path)


def parse_upload(data: bytes, filename: str) -> XlsformResult:
    """An uploaded survey file, by its name: XLSForm workbook or YAML text. Never raises."""
    if is_workbook_name(filename) or data[:4] == b"PK\x03\x04":
        return parse_xlsform(data, filename)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        problem = Problem(filename, line, None, "the file is not UTF-8 text; save it as UTF-8")
        return XlsformResult(ParseResult(None, [problem]), None)
    return XlsformResult(parse_survey(text, filename), text)


def survey_yaml(conversion_text: str, source_name: str) -> str:
    """The YAML written by `survey import`: the converted text under a note of its source."""
    lines = conversion_text.splitlines()
    if lines and lines[0].startswith("# Converted from an XLSForm"):
        lines = lines[1:]
    header = [
        f"# Be-Safe survey imported from {source_name.replace(chr(10), ' ')} (an XLSForm).",
        "# Check it with: python main.py survey validate THIS_FILE",
    ]
    return "\n".join([*header, *lines]) + "\n"
