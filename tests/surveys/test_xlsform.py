"""XLSForm workbooks -> surveys: the same survey as the YAML, and every problem by sheet and row."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from config.settings import SHIPPED_SURVEYS_DIR
from surveys.definition import load_survey_file, parse_survey, survey_to_dict
from surveys.xlsform import (
    RelevantError,
    SheetProblem,
    _RefInfo,
    parse_upload,
    parse_xlsform,
    relevant_to_show_if,
    survey_yaml,
)
from tests.surveys.xlsform_books import basic_settings, workbook, workbook_from_survey

SHIPPED = sorted(SHIPPED_SURVEYS_DIR.glob("*.yaml"))
HEADER = ["type", "name", "label", "be_safe::report_label", "relevant"]
FEELINGS = [["list_name", "name", "label"], ["feel", "good", "Good"], ["feel", "bad", "Bad"]]


def problems_of(data: bytes) -> list[str]:
    result = parse_xlsform(data, "form.xlsx").result
    assert result.survey is None
    assert result.problems, "a bad workbook must say what is wrong"
    return [str(problem) for problem in result.problems]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_a_shipped_survey_written_as_an_xlsform_is_the_same_survey(path: Path) -> None:
    expected = load_survey_file(path).survey
    assert expected is not None
    converted = parse_xlsform(workbook_from_survey(expected), f"{path.stem}.xlsx")
    assert converted.result.problems == []
    survey = converted.result.survey
    assert survey is not None
    assert survey_to_dict(survey) == survey_to_dict(expected)
    # The YAML that `survey import` writes reads back as the same survey.
    assert converted.yaml_text is not None
    again = parse_survey(survey_yaml(converted.yaml_text, f"{path.stem}.xlsx"), "imported.yaml")
    assert again.problems == []
    assert again.survey is not None
    assert survey_to_dict(again.survey) == survey_to_dict(expected)


def test_questions_remember_their_survey_sheet_row() -> None:
    rows = [
        HEADER,
        ["note", "hello", "Hello!"],
        [],
        ["select_one feel", "feel", "How do you feel?", "Feeling"],
    ]
    survey = parse_xlsform(workbook(rows, FEELINGS, basic_settings())).result.survey
    assert survey is not None
    assert [(q.id, q.line) for q in survey.questions] == [("hello", 2), ("feel", 4)]


def test_a_hand_written_workbook_matches_its_yaml() -> None:
    header = [
        "type",
        "name",
        "label::English (en)",
        "label::Français (fr)",
        "hint::English (en)",
        "required",
        "relevant",
        "constraint",
        "parameters",
        "appearance",
        "be_safe::report_label",
        "be_safe::prefer_not_to_say",
        "be_safe::min_label",
        "be_safe::max_label",
        "be_safe::max_length",
    ]

    def line(**values: object) -> list[object]:
        named = {key.replace("__", "::").replace("_en", " (en)"): v for key, v in values.items()}
        return [named.get(column) for column in header]

    rows = [
        header,
        ["start", "start"],
        line(
            type="select_one yn",
            name="online",
            label__English_en="Do you go online?",
            required="no",
            be_safe__report_label="Goes online",
            be_safe__prefer_not_to_say="yes",
        ),
        ["begin group", "more", "More", None, None, None, "${online} = 'yes'"],
        line(
            type="integer",
            name="hours",
            label__English_en="How many hours a day?",
            hint__English_en="About",
            constraint=". >= 0 and . <= 24",
            appearance="numbers",
            be_safe__report_label="Hours online",
        ),
        line(
            type="range",
            name="safe",
            label__English_en="How safe do you feel online?",
            relevant="${hours} > 2",
            parameters="start=1 end=5 step=1",
            be_safe__report_label="Safety online",
            be_safe__min_label="Not safe",
            be_safe__max_label="Very safe",
        ),
        line(
            type="select_multiple apps",
            name="apps",
            label__English_en="Which apps?",
            relevant="${safe} <= 2 or not(${hours} >= 20)",
            be_safe__report_label="Apps used",
        ),
        ["end group"],
        ["note", "bye", "Thank you!", "Merci"],
        line(
            type="text",
            name="more_words",
            label__English_en="Anything else?",
            required="false",
            relevant="selected(${apps}, 'chat') and ${online} != ''",
            be_safe__report_label="Anything else",
            be_safe__max_length=500,
        ),
    ]
    choices = [
        ["list_name", "name", "label::English (en)", "label::Français (fr)", "be_safe::flag"],
        ["yn", "yes", "Yes", "Oui"],
        ["yn", "no", "No", "Non"],
        ["apps", "chat", "Chat apps", "Chat"],
        ["apps", "games", "Games", "Jeux", "other"],
        ["areas", "north", "North"],
        ["areas", "south", "South"],
    ]
    settings = basic_settings(
        default_language="English (en)",
        **{
            "be_safe::estimated_minutes": 4,
            "be_safe::min_year": 7,
            "be_safe::school_year": "7-11",
            "be_safe::gender": "yes",
            "be_safe::area": "areas",
        },
    )
    converted = parse_xlsform(workbook(rows, choices, settings), "wellbeing.xlsx")
    assert converted.result.problems == []
    warnings = [str(warning) for warning in converted.result.warnings]
    assert any("row 2" in text and "'start' was left out" in text for text in warnings)
    assert any("Be-Safe uses 'label::English (en)'" in text for text in warnings)
    expected = parse_survey(
        """
id: wellbeing
version: 1
title: Feeling OK
topic: wellbeing
intro: This survey is about how you feel.
thanks: Thank you for your answers.
estimated_minutes: 4
audience: {min_year: 7}
demographics:
  school_year: {min_year: 7, max_year: 11}
  gender: true
  area:
    - {value: north, label: North}
    - {value: south, label: South}
questions:
  - id: online
    type: yes_no
    text: Do you go online?
    report_label: Goes online
    prefer_not_to_say: true
  - id: hours
    type: number
    text: How many hours a day?
    help: About
    report_label: Hours online
    min: 0
    max: 24
    show_if: {question: online, equals: "yes"}
  - id: safe
    type: rating
    text: How safe do you feel online?
    report_label: Safety online
    min: 1
    max: 5
    min_label: Not safe
    max_label: Very safe
    show_if:
      all:
        - {question: online, equals: "yes"}
        - {question: hours, at_least: 3}
  - id: apps
    type: multiple_choice
    text: Which apps?
    report_label: Apps used
    choices:
      - {value: chat, label: Chat apps}
      - {value: games, label: Games, flag: other}
    show_if:
      all:
        - {question: online, equals: "yes"}
        - any:
            - {question: safe, at_most: 2}
            - not: {question: hours, at_least: 20}
  - id: bye
    type: info
    text: Thank you!
  - id: more_words
    type: free_text
    text: Anything else?
    report_label: Anything else
    max_length: 500
    show_if:
      all:
        - {question: apps, includes: chat}
        - {question: online, answered: true}
""",
        "wellbeing.yaml",
    )
    assert expected.problems == []
    assert converted.result.survey is not None and expected.survey is not None
    assert survey_to_dict(converted.result.survey) == survey_to_dict(expected.survey)


# --- bad workbooks: each problem with its sheet and row -----------------------------------


def _zip_without_workbook() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a spreadsheet")
    return buffer.getvalue()


def _damaged_workbook() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<<< not xml")
    return buffer.getvalue()


BAD_FILES = {
    "not a zip": (b"type,name,label\ntext,a,A\n", "form.xlsx: the workbook: this is not an .xlsx"),
    "empty file": (b"", "form.xlsx: the workbook: the file is empty"),
    "old xls": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "old Excel .xls file"),
    "zip but no workbook": (_zip_without_workbook(), "not an Excel .xlsx workbook"),
    "damaged workbook": (_damaged_workbook(), "the workbook could not be read"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_an_unreadable_file_is_one_clear_problem(name: str) -> None:
    data, expected = BAD_FILES[name]
    found = problems_of(data)
    assert len(found) == 1
    assert expected in found[0]


def test_a_truncated_workbook_never_raises() -> None:
    good = workbook([HEADER, ["text", "a", "A?", "A"]], None, basic_settings())
    for cut in range(0, len(good), max(1, len(good) // 40)):
        result = parse_xlsform(good[:cut], "cut.xlsx").result
        assert result.survey is None and result.problems


def test_an_empty_workbook() -> None:
    assert problems_of(workbook(None)) == ["form.xlsx: the workbook: the workbook is empty"]


def test_a_workbook_without_a_survey_sheet() -> None:
    found = problems_of(workbook(None, FEELINGS, basic_settings()))
    assert found == [
        "form.xlsx: the workbook: the workbook has no sheet called 'survey' "
        "(XLSForm sheets found: choices, settings)"
    ]


def test_a_survey_sheet_without_a_name_column() -> None:
    found = problems_of(workbook([["type", "label"], ["text", "A?"]], None, basic_settings()))
    assert found == ["form.xlsx: survey sheet: the survey sheet has no 'name' column"]


def test_a_list_name_with_no_choices() -> None:
    rows = [HEADER, ["text", "a", "A?", "A"], ["select_one nope", "feel", "How?", "Feeling"]]
    assert problems_of(workbook(rows, FEELINGS, basic_settings())) == [
        "form.xlsx: survey sheet, row 3: question 'feel': "
        "list 'nope' has no choices in the choices sheet"
    ]


def test_duplicate_question_names_give_both_rows() -> None:
    rows = [HEADER, ["text", "a", "One?", "One"], ["text", "b", "Two?", "Two"]]
    rows.append(["text", "a", "Three?", "Three"])
    assert problems_of(workbook(rows, None, basic_settings())) == [
        "form.xlsx: survey sheet, row 4: question 'a': "
        "duplicate question id 'a' (first used in survey sheet, row 2)"
    ]


def test_duplicate_choice_names_give_the_choices_rows() -> None:
    choices = [*FEELINGS, ["feel", "good", "Great"]]
    rows = [HEADER, ["select_one feel", "feel", "How?", "Feeling"]]
    assert problems_of(workbook(rows, choices, basic_settings())) == [
        "form.xlsx: choices sheet, row 4: question 'feel': "
        "choice value 'good' is used twice (first in choices sheet, row 2)"
    ]


def test_an_unknown_type() -> None:
    rows = [HEADER, ["text", "a", "One?", "One"], ["txet", "b", "Two?", "Two"]]
    (found,) = problems_of(workbook(rows, None, basic_settings()))
    assert found.startswith("form.xlsx: survey sheet, row 3: question 'b': unknown type 'txet'")


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("geopoint", "records a location"),
        ("image", "photos, sound, video and files are not collected"),
        ("audio", "photos, sound, video and files are not collected"),
        ("barcode", "cannot scan a barcode"),
        ("calculate", "Be-Safe does no calculations"),
        ("begin repeat", "asks each question once"),
        ("date", "a date (such as a date of birth) can identify a young person"),
        ("deviceid", "device and account details are never collected"),
        ("select_one_from_file places.csv", "put the choices in the choices sheet"),
    ],
)
def test_what_we_do_not_collect_is_refused_saying_why(kind: str, why: str) -> None:
    rows = [HEADER, ["text", "a", "One?", "One"], [kind, "b", "Two?", "Two"]]
    (found,) = problems_of(workbook(rows, None, basic_settings()))
    assert found.startswith(f"form.xlsx: survey sheet, row 3: question 'b': type '{kind}'")
    assert why in found


def test_a_question_asking_for_a_date_of_birth_in_words_is_refused() -> None:
    rows = [HEADER, ["text", "born", "What is your date of birth?", "Birthday"]]
    assert problems_of(workbook(rows, None, basic_settings())) == [
        "form.xlsx: survey sheet, row 2: question 'born': surveys must never ask for a date of "
        "birth: answers must not identify a young person"
    ]


@pytest.mark.parametrize(
    ("relevant", "expected"),
    [
        ("${feel} = 'good' +", "relevant \"${feel} = 'good' +\" cannot be used: '+' is not"),
        ("count(${feel}) > 1", "cannot be used: 'count' is not understood here"),
        ("${feel} = ", "cannot be used: it ends too soon"),
        ("(${feel} = 'good'", "cannot be used: it ends too soon"),
        ("${feel} = 'grand'", "relevant compares 'feel' with 'grand', which is not one of"),
        ("${later} = 'x'", "relevant points at later question 'later'"),
        ("${nobody} = 'x'", "relevant points at unknown question 'nobody'"),
        ("${feel} >= 'good'", ">= needs a number, not 'good'"),
    ],
)
def test_a_bad_relevant_is_a_row_problem(relevant: str, expected: str) -> None:
    rows = [
        HEADER,
        ["select_one feel", "feel", "How?", "Feeling"],
        ["text", "why", "Why?", "Why", relevant],
        ["text", "later", "Later?", "Later"],
    ]
    (found,) = problems_of(workbook(rows, FEELINGS, basic_settings()))
    assert found.startswith("form.xlsx: survey sheet, row 3: question 'why': ")
    assert expected in found


def test_a_select_multiple_must_be_tested_with_selected() -> None:
    rows = [
        HEADER,
        ["select_multiple feel", "feel", "How?", "Feeling"],
        ["text", "why", "Why?", "Why", "${feel} = 'good'"],
    ]
    (found,) = problems_of(workbook(rows, FEELINGS, basic_settings()))
    assert "test it with selected(${feel}, 'good')" in found


def test_groups_must_close_and_be_opened() -> None:
    rows = [HEADER, ["end group"], ["begin group", "g", "G"], ["text", "a", "A?", "A"]]
    assert problems_of(workbook(rows, None, basic_settings())) == [
        "form.xlsx: survey sheet, row 2: 'end group' without a 'begin group' above it",
        "form.xlsx: survey sheet, row 3: group 'g' is never closed: add an 'end group' row",
    ]


def test_missing_settings_name_their_columns() -> None:
    rows = [HEADER, ["text", "a", "A?", "A"]]
    found = problems_of(workbook(rows, None, [["form_id", "version"], ["ok", "2026-01"]]))
    assert found == [
        "form.xlsx: settings sheet, row 2: missing required setting 'form_title'",
        "form.xlsx: settings sheet, row 2: missing required setting 'be_safe::topic'",
        "form.xlsx: settings sheet, row 2: missing required setting 'be_safe::intro'",
        "form.xlsx: settings sheet, row 2: missing required setting 'be_safe::thanks'",
        "form.xlsx: settings sheet, row 2: version must be a whole number from 1 to 999999",
    ]


def test_a_workbook_without_a_settings_sheet_says_which_settings_are_needed() -> None:
    found = problems_of(workbook([HEADER, ["text", "a", "A?", "A"]]))
    assert found[0] == "form.xlsx: settings sheet: missing required setting 'form_id'"
    assert len(found) == 6


def test_be_safe_columns_are_checked_like_yaml_keys() -> None:
    rows = [
        [*HEADER, "be_safe::colour", "be_safe::prefer_not_to_say"],
        ["text", "a", "A?", "A", None, None, "yes"],
        ["select_one feel", "b", "B?", None],
    ]
    choices = [[*FEELINGS[0], "be_safe::flag"], ["feel", "good", "Good", "sad"], FEELINGS[2]]
    found = problems_of(workbook(rows, choices, basic_settings()))
    assert found == [
        "form.xlsx: survey sheet: unknown column 'be_safe::colour' (Be-Safe columns here: "
        "be_safe::report_label, be_safe::prefer_not_to_say, be_safe::max_length, "
        "be_safe::min_label, be_safe::max_label)",
        "form.xlsx: survey sheet, row 2: question 'a': be_safe::prefer_not_to_say does not "
        "apply to free_text questions (leave them skippable instead)",
        "form.xlsx: survey sheet, row 3: question 'b': missing 'be_safe::report_label' "
        "(the short name used for this question in reports)",
        "form.xlsx: choices sheet, row 2: question 'b': choice 'good' has flag 'sad', which is "
        "not a disclosure category (one of: suicide_self_harm, physical_abuse, sexual_abuse, "
        "emotional_abuse, neglect, exploitation_grooming, domestic_abuse, relationship_abuse, "
        "bullying, immediate_danger, other)",
    ]


def test_problems_are_sheet_problems_in_sheet_then_row_order() -> None:
    rows = [HEADER, ["text", "a", "A?", None], ["geopoint", "b", "Where?", "Where"]]
    result = parse_xlsform(workbook(rows, None, [["form_id"], ["Bad Id"]]), "f.xlsx").result
    places = [(p.sheet, p.row) for p in result.problems if isinstance(p, SheetProblem)]
    assert len(places) == len(result.problems)
    assert places == sorted(places, key=lambda place: (place[0] != "settings", place[1]))
    assert ("survey", 2) in places and ("survey", 3) in places


def test_an_upload_is_read_by_its_kind() -> None:
    yaml_result = parse_upload(b"id: x\n", "survey.yaml")
    assert any("missing required key 'version'" in str(p) for p in yaml_result.result.problems)
    xlsx = workbook([HEADER, ["text", "a", "A?", "A"]], None, basic_settings())
    assert parse_upload(xlsx, "survey.xlsx").result.ok
    assert parse_upload(xlsx, "named-wrongly.yaml").result.ok  # a zip is read as a workbook
    assert "not UTF-8" in str(parse_upload(b"\xff\xfe\x00bad", "s.yaml").result.problems[0])


# --- relevant -> show_if ---------------------------------------------------------------


KNOWN = {
    "one": _RefInfo("single_choice", False),
    "many": _RefInfo("multiple_choice", False),
    "count": _RefInfo("number", True),
    "rate": _RefInfo("rating", True),
    "amount": _RefInfo("number", False),
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${one} = 'a'", {"question": "one", "equals": "a"}),
        ('${one} = "a"', {"question": "one", "equals": "a"}),
        ("${one} != 'a'", {"not": {"question": "one", "equals": "a"}}),
        ("selected(${one}, 'a')", {"question": "one", "equals": "a"}),
        ("selected(${many}, 'a')", {"question": "many", "includes": "a"}),
        ("${one} = 'a' or ${one} = 'b'", {"question": "one", "in": ["a", "b"]}),
        (
            "selected(${many}, 'a') or selected(${many}, 'b')",
            {"question": "many", "includes": ["a", "b"]},
        ),
        ("${count} >= 3", {"question": "count", "at_least": 3}),
        ("${count} > 3", {"question": "count", "at_least": 4}),
        ("${rate} < 3", {"question": "rate", "at_most": 2}),
        ("${amount} <= 2.5", {"question": "amount", "at_most": 2.5}),
        ("${one} != ''", {"question": "one", "answered": True}),
        ("${one} = ''", {"question": "one", "answered": False}),
        (
            "${one} = 'a' and (${count} >= 1 or not(${rate} <= 2)) and ${one} != 'b'",
            {
                "all": [
                    {"question": "one", "equals": "a"},
                    {
                        "any": [
                            {"question": "count", "at_least": 1},
                            {"not": {"question": "rate", "at_most": 2}},
                        ]
                    },
                    {"not": {"question": "one", "equals": "b"}},
                ]
            },
        ),
    ],
)
def test_relevant_forms_we_follow(text: str, expected: dict) -> None:
    assert relevant_to_show_if(text, KNOWN) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "${amount} > 2",  # a decimal: > cannot become >=
        "${one} = 'a' and",
        "${one} == 'a'",
        "string-length(${one}) > 2",
        "${one} = ${many}",
        "${many} = 'a'",
    ],
)
def test_relevant_forms_we_refuse(text: str) -> None:
    with pytest.raises(RelevantError):
        relevant_to_show_if(text, KNOWN)


def test_xml_entities_in_a_workbook_are_refused() -> None:
    """An entity 'bomb' must not expand: openpyxl reads through defusedxml (pyxform needs it)."""
    good = workbook([HEADER, ["text", "a", "A?", "A"]], None, basic_settings())
    source = zipfile.ZipFile(io.BytesIO(good))
    buffer = io.BytesIO()
    entities = '<!DOCTYPE w [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    with zipfile.ZipFile(buffer, "w") as bomb:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/workbook.xml":
                data = b'<?xml version="1.0"?>' + entities.encode() + data
            bomb.writestr(info, data)
    (found,) = problems_of(buffer.getvalue())
    assert "the workbook could not be read" in found


def test_text_written_without_quotes_reads_back_as_the_same_text() -> None:
    import random

    import yaml

    from surveys.xlsform import _scalar

    chance = random.Random(6)
    alphabet = "Aa b.?!()/-:#,[]{}'\"yesnoONullTrue0123_ é\\"
    for _ in range(5000):
        text = "".join(chance.choice(alphabet) for _ in range(chance.randint(1, 9)))
        assert yaml.safe_load(f"k: {_scalar(text)}") == {"k": text}
        assert yaml.safe_load(f"{{k: {_scalar(text, flow=True)}}}") == {"k": text}
