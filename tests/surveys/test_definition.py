"""Parsing and validating survey files: every rule, with its line and question id."""

from __future__ import annotations

import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surveys.definition import (
    DEFAULT_MAX_LENGTH,
    MAX_FILE_CHARS,
    ParseResult,
    Problem,
    format_problems,
    load_survey_dir,
    load_survey_file,
    parse_survey,
    survey_from_dict,
    survey_to_dict,
)
from surveys.model import Audience, Choice, Condition, Question, Survey

HEADER = """\
id: sample
version: 1
title: A sample survey
topic: bullying
intro: Some questions.
thanks: Thank you.
"""

MARK = "# <-"


def survey_yaml(questions: str, header: str = HEADER) -> str:
    return header + "questions:\n" + textwrap.dedent(questions).strip("\n") + "\n"


def marked_line(text: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if MARK in line]
    assert len(lines) == 1, "each case marks exactly one line with '# <-'"
    return lines[0]


def find(result: ParseResult, line: int, question_id: str | None, fragment: str) -> Problem:
    for problem in result.problems:
        if (
            problem.line == line
            and problem.question_id == question_id
            and fragment in problem.message
        ):
            return problem
    raise AssertionError(
        f"no problem at line {line} for {question_id!r} containing {fragment!r}; got:\n"
        + format_problems(result.problems)
    )


YES_NO = """\
  - id: q1
    type: yes_no
    text: Do you like school?
    report_label: Likes school
"""


def with_q1(rest: str) -> str:
    return textwrap.dedent(YES_NO) + textwrap.dedent(rest).strip("\n")


def question_cases() -> list[tuple[str, str, str | None, str]]:
    """(case name, questions YAML with the expected line marked, question id, message)."""
    return [
        (
            "unknown type",
            """
            - id: q1
              type: slider  # <-
              text: Hi
              report_label: Hi
            """,
            "q1",
            "unknown question type 'slider'",
        ),
        (
            "missing type",
            """
            - id: q1  # <-
              text: Hi
              report_label: Hi
            """,
            "q1",
            "missing 'type'",
        ),
        (
            "missing id",
            """
            - type: yes_no  # <-
              text: Hi
              report_label: Hi
            """,
            None,
            "question has no id",
        ),
        (
            "bad question id",
            """
            - id: Likes School  # <-
              type: yes_no
              text: Hi
              report_label: Hi
            """,
            "Likes School",
            "question id 'Likes School' must use only lowercase letters, digits and underscores",
        ),
        (
            "non-string id",
            """
            - id: [a, b]  # <-
              type: yes_no
              text: Hi
              report_label: Hi
            """,
            None,
            "'id' must be text, not a list",
        ),
        (
            "unknown question key",
            """
            - id: q1
              type: yes_no
              text: Hi
              report_label: Hi
              colour: blue  # <-
            """,
            "q1",
            "unknown key 'colour' in a question",
        ),
        (
            "duplicate question id",
            with_q1("""
            - id: q1  # <-
              type: yes_no
              text: Again?
              report_label: Again
            """),
            "q1",
            "duplicate question id 'q1' (first used on line 8)",
        ),
        (
            "question id clashes with demographics",
            """
            - id: gender  # <-
              type: yes_no
              text: Hi
              report_label: Hi
            """,
            "gender",
            "question id 'gender' is kept for the demographic block",
        ),
        (
            "missing text",
            """
            - id: q1  # <-
              type: yes_no
              report_label: Hi
            """,
            "q1",
            "missing 'text'",
        ),
        (
            "empty text",
            """
            - id: q1
              type: yes_no
              text: ""  # <-
              report_label: Hi
            """,
            "q1",
            "'text' must not be empty",
        ),
        (
            "missing report_label",
            """
            - id: q1  # <-
              type: yes_no
              text: Hi
            """,
            "q1",
            "missing 'report_label'",
        ),
        (
            "choice without value",
            """
            - id: q1
              type: single_choice
              text: Pick one
              report_label: Pick
              choices:
                - {value: a, label: A}
                - {label: B}  # <-
            """,
            "q1",
            "choice has no value",
        ),
        (
            "choice without label",
            """
            - id: q1
              type: single_choice
              text: Pick one
              report_label: Pick
              choices:
                - {value: a, label: A}
                - {value: b}  # <-
            """,
            "q1",
            "choice 'b' has no label",
        ),
        (
            "bad choice value",
            """
            - id: q1
              type: single_choice
              text: Pick one
              report_label: Pick
              choices:
                - {value: a, label: A}
                - {value: Big B, label: B}  # <-
            """,
            "q1",
            "choice value 'Big B' must use only lowercase letters",
        ),
        (
            "duplicate choice value",
            """
            - id: q1
              type: single_choice
              text: Pick one
              report_label: Pick
              choices:
                - {value: a, label: A}
                - {value: a, label: Also A}  # <-
            """,
            "q1",
            "choice value 'a' is used twice (first on line 13)",
        ),
        (
            "reserved choice value",
            """
            - id: q1
              type: single_choice
              text: Pick one
              report_label: Pick
              choices:
                - {value: a, label: A}
                - {value: prefer_not_to_say, label: Rather not}  # <-
            """,
            "q1",
            "choice value 'prefer_not_to_say' is reserved",
        ),
        (
            "single choice with one choice",
            """
            - id: q1
              type: single_choice
              text: Pick one
              report_label: Pick
              choices:  # <-
                - {value: a, label: A}
            """,
            "q1",
            "a single_choice question needs at least 2 choices",
        ),
        (
            "multiple choice without choices",
            """
            - id: q1  # <-
              type: multiple_choice
              text: Pick some
              report_label: Pick
            """,
            "q1",
            "a multiple_choice question needs at least 2 choices",
        ),
        (
            "choices on yes_no",
            """
            - id: q1
              type: yes_no
              text: Yes?
              report_label: Yes
              choices: [{value: a, label: A}, {value: b, label: B}]  # <-
            """,
            "q1",
            "'choices' is only for single_choice and multiple_choice questions, not yes_no",
        ),
        (
            "rating min not below max",
            """
            - id: q1
              type: rating
              text: Rate it
              report_label: Rating
              min: 5  # <-
              max: 5
            """,
            "q1",
            "rating min (5) must be less than max (5)",
        ),
        (
            "rating with too many points",
            """
            - id: q1
              type: rating
              text: Rate it
              report_label: Rating
              min: 0
              max: 20  # <-
            """,
            "q1",
            "a rating can have 2 to 11 points, not 21",
        ),
        (
            "rating with a fraction",
            """
            - id: q1
              type: rating
              text: Rate it
              report_label: Rating
              min: 1.5  # <-
              max: 5
            """,
            "q1",
            "a rating needs whole-number min and max",
        ),
        (
            "rating without max",
            """
            - id: q1  # <-
              type: rating
              text: Rate it
              report_label: Rating
              min: 1
            """,
            "q1",
            "a rating needs whole-number min and max",
        ),
        (
            "min_label on a yes_no",
            """
            - id: q1
              type: yes_no
              text: Yes?
              report_label: Yes
              min_label: Low  # <-
            """,
            "q1",
            "'min_label' only applies to rating questions",
        ),
        (
            "number min above max",
            """
            - id: q1
              type: number
              text: How many?
              report_label: Count
              min: 10  # <-
              max: 2
            """,
            "q1",
            "number min (10) is more than max (2)",
        ),
        (
            "number min not a number",
            """
            - id: q1
              type: number
              text: How many?
              report_label: Count
              min: lots  # <-
            """,
            "q1",
            "'min' must be a number",
        ),
        (
            "max_length on a yes_no",
            """
            - id: q1
              type: yes_no
              text: Yes?
              report_label: Yes
              max_length: 10  # <-
            """,
            "q1",
            "'max_length' only applies to free_text questions",
        ),
        (
            "required is not a boolean",
            """
            - id: q1
              type: yes_no
              text: Yes?
              report_label: Yes
              required: "sometimes"  # <-
            """,
            "q1",
            "'required' must be true or false",
        ),
        (
            "required info",
            """
            - id: welcome
              type: info
              text: Hello.
              required: true  # <-
            """,
            "welcome",
            "an info step cannot be required",
        ),
        (
            "prefer_not_to_say on info",
            """
            - id: welcome
              type: info
              text: Hello.
              prefer_not_to_say: true  # <-
            """,
            "welcome",
            "prefer_not_to_say does not apply to info steps",
        ),
        (
            "prefer_not_to_say on free_text",
            """
            - id: more
              type: free_text
              text: Anything else?
              report_label: More
              prefer_not_to_say: true  # <-
            """,
            "more",
            "prefer_not_to_say does not apply to free_text questions",
        ),
        (
            "show_if points at a later question",
            """
            - id: q1
              type: yes_no
              text: First?
              report_label: First
              show_if: {question: q2, equals: "yes"}  # <-
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
            """,
            "q1",
            "show_if points at later question 'q2'",
        ),
        (
            "show_if points at a missing question",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {question: q9, equals: "yes"}  # <-
            """),
            "q2",
            "show_if points at unknown question 'q9'",
        ),
        (
            "show_if points at itself",
            """
            - id: q1
              type: yes_no
              text: First?
              report_label: First
              show_if: {question: q1, answered: true}  # <-
            """,
            "q1",
            "show_if points at the question itself",
        ),
        (
            "show_if points at an info step",
            """
            - id: welcome
              type: info
              text: Hello.
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {question: welcome, answered: true}  # <-
            """,
            "q2",
            "show_if points at info step 'welcome', which has no answer",
        ),
        (
            "show_if compares with a value the question lacks",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {question: q1, in: ["yes", maybe]}  # <-
            """),
            "q2",
            "show_if compares 'q1' with 'maybe', which is not one of its choices (yes, no)",
        ),
        (
            "show_if with an unknown test",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if:
                question: q1
                is: "yes"  # <-
            """),
            "q2",
            "unknown show_if test 'is'",
        ),
        (
            "show_if without a test",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {question: q1}  # <-
            """),
            "q2",
            "show_if needs a test",
        ),
        (
            "show_if with two tests",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {question: q1, equals: "yes", answered: true}  # <-
            """),
            "q2",
            "show_if has more than one test (equals, answered)",
        ),
        (
            "not with two children",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if:
                not:  # <-
                  - {question: q1, equals: "yes"}
                  - {question: q1, equals: "no"}
            """),
            "q2",
            "'not' needs exactly one condition",
        ),
        (
            "empty all",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {all: []}  # <-
            """),
            "q2",
            "'all' needs a list of at least one condition",
        ),
        (
            "empty any",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if:
                any:  # <-
            """),
            "q2",
            "'any' needs a list of at least one condition",
        ),
        (
            "includes on a single choice",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {question: q1, includes: "yes"}  # <-
            """),
            "q2",
            "'includes' only works with multiple_choice questions",
        ),
        (
            "at_least on a yes_no",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {question: q1, at_least: 1}  # <-
            """),
            "q2",
            "'at_least' only works with rating and number questions",
        ),
        (
            "equals on free text",
            """
            - id: more
              type: free_text
              text: Anything?
              report_label: More
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {question: more, equals: hello}  # <-
            """,
            "q2",
            "show_if can only test whether free-text question 'more' was answered",
        ),
        (
            "unreachable: contradictory all",
            with_q1("""
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if:  # <-
                all:
                  - {question: q1, equals: "yes"}
                  - {question: q1, equals: "no"}
            """),
            "q2",
            "this question can never be shown",
        ),
        (
            "unreachable: rating beyond its scale",
            """
            - id: safe
              type: rating
              text: How safe?
              report_label: Safe
              min: 1
              max: 5
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {question: safe, at_least: 6}  # <-
            """,
            "q2",
            "this question can never be shown",
        ),
        (
            "unreachable: number outside its limits",
            """
            - id: hours
              type: number
              text: How many hours?
              report_label: Hours
              min: 0
              max: 24
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if: {question: hours, at_most: -1}  # <-
            """,
            "q2",
            "this question can never be shown",
        ),
        (
            "unreachable: includes needs two things that cannot both hold",
            """
            - id: where
              type: multiple_choice
              text: Where?
              report_label: Where
              choices: [{value: a, label: A}, {value: b, label: B}, {value: c, label: C}]
            - id: q2
              type: yes_no
              text: Second?
              report_label: Second
              show_if:  # <-
                all:
                  - {question: where, includes: a}
                  - not: {question: where, answered: true}
            """,
            "q2",
            "this question can never be shown",
        ),
        (
            "asks for a name (text)",
            """
            - id: q1
              type: free_text
              text: What is your full name?  # <-
              report_label: Name
            """,
            "q1",
            "surveys must never ask for a name",
        ),
        (
            "asks for a name (id)",
            """
            - id: first_name  # <-
              type: free_text
              text: What should we call you?
              report_label: Name
            """,
            "first_name",
            "surveys must never ask for a name",
        ),
        (
            "asks for a phone number",
            """
            - id: contact
              type: free_text
              text: What's your mobile number?  # <-
              report_label: Contact
            """,
            "contact",
            "surveys must never ask for a phone number",
        ),
        (
            "asks for an address",
            """
            - id: q1
              type: free_text
              text: Where do you live?  # <-
              report_label: Home
            """,
            "q1",
            "surveys must never ask for an address",
        ),
        (
            "asks for an email",
            """
            - id: email  # <-
              type: free_text
              text: How can we reach you?
              report_label: Email
            """,
            "email",
            "surveys must never ask for an email address",
        ),
        (
            "asks for a postcode",
            """
            - id: q1
              type: free_text
              text: What is your post code?  # <-
              report_label: Area
            """,
            "q1",
            "surveys must never ask for a postcode",
        ),
        (
            "asks for a date of birth",
            """
            - id: q1
              type: free_text
              text: What is your date of birth?  # <-
              report_label: Born
            """,
            "q1",
            "surveys must never ask for a date of birth",
        ),
        (
            "not a mapping",
            """
            - just some words  # <-
            """,
            None,
            "each question must be a mapping with id, type and text, not a single value",
        ),
    ]


@pytest.mark.parametrize(
    ("questions", "question_id", "message"),
    [case[1:] for case in question_cases()],
    ids=[case[0] for case in question_cases()],
)
def test_each_rule_reports_message_line_and_question(
    questions: str, question_id: str | None, message: str
) -> None:
    text = survey_yaml(questions)
    result = parse_survey(text, "sample.yaml")
    assert result.survey is None
    find(result, marked_line(text), question_id, message)


def top_cases() -> list[tuple[str, str, str, str | None]]:
    """(case name, whole file with the expected line marked, message, question id)."""
    questions = "questions:\n" + YES_NO
    return [
        (
            "missing title",
            HEADER.replace("title: A sample survey\n", "").replace("id: sample", "id: s  # <-")
            + questions,
            "missing required key 'title'",
            None,
        ),
        (
            "unknown top-level key",
            HEADER + "colour: red  # <-\n" + questions,
            "unknown key 'colour' in the survey",
            None,
        ),
        (
            "bad survey id",
            HEADER.replace("id: sample", "id: Sample-Survey  # <-") + questions,
            "survey id 'Sample-Survey' must use only lowercase letters, digits and underscores",
            None,
        ),
        (
            "version zero",
            HEADER.replace("version: 1", "version: 0  # <-") + questions,
            "version must be a whole number from 1",
            None,
        ),
        (
            "version not a number",
            HEADER.replace("version: 1", "version: first  # <-") + questions,
            "version must be a whole number from 1",
            None,
        ),
        (
            "audience outside school years",
            HEADER + "audience: {min_year: 2}  # <-\n" + questions,
            "'min_year' must be a whole number from 3 to 13",
            None,
        ),
        (
            "audience the wrong way round",
            HEADER + "audience: {min_year: 9, max_year: 7}  # <-\n" + questions,
            "audience: min_year 9 is after max_year 7",
            None,
        ),
        (
            "area with one choice",
            HEADER
            + "demographics:\n  area:  # <-\n    - {value: north, label: North}\n"
            + questions,
            "a single_choice question needs at least 2 choices",
            "area",
        ),
        (
            "school_year not a range",
            HEADER + "demographics:\n  school_year: sometimes  # <-\n" + questions,
            "'school_year' must be true, false or a mapping",
            None,
        ),
        (
            "unknown demographic",
            HEADER + "demographics:\n  religion: true  # <-\n" + questions,
            "unknown key 'religion' in demographics",
            None,
        ),
        (
            "questions not a list",
            HEADER + "questions: lots  # <-\n",
            "'questions' must be a list of questions",
            None,
        ),
        (
            "no questions",
            HEADER + "questions: []  # <-\n",
            "a survey needs at least one question",
            None,
        ),
        (
            "the same key twice",
            HEADER + "title: Another title  # <-\n" + questions,
            "key 'title' is given twice here",
            None,
        ),
    ]


@pytest.mark.parametrize(
    ("text", "message", "question_id"),
    [case[1:] for case in top_cases()],
    ids=[case[0] for case in top_cases()],
)
def test_survey_level_rules(text: str, message: str, question_id: str | None) -> None:
    result = parse_survey(text, "sample.yaml")
    assert result.survey is None
    find(result, marked_line(text), question_id, message)


def test_missing_version_and_several_keys_are_all_reported() -> None:
    text = "id: sample\ntopic: bullying\nquestions:\n" + YES_NO
    result = parse_survey(text)
    missing = {p.message for p in result.problems}
    assert missing == {
        "missing required key 'version'",
        "missing required key 'title'",
        "missing required key 'intro'",
        "missing required key 'thanks'",
    }


def test_a_cycle_is_named() -> None:
    text = survey_yaml("""
        - id: a  # <-
          type: yes_no
          text: A?
          report_label: A
          show_if: {question: b, equals: "yes"}
        - id: b
          type: yes_no
          text: B?
          report_label: B
          show_if: {question: a, equals: "yes"}
    """)
    result = parse_survey(text)
    cycle = find(result, marked_line(text), "a", "cycle")
    assert "a -> b -> a" in cycle.message
    find(result, marked_line(text) + 4, "a", "show_if points at later question 'b'")


def test_a_question_that_depends_on_an_unreachable_one_is_unreachable_too() -> None:
    text = survey_yaml(
        with_q1("""
        - id: never
          type: yes_no
          text: Never?
          report_label: Never
          show_if: {all: [{question: q1, equals: "yes"}, {question: q1, equals: "no"}]}
        - id: after
          type: yes_no
          text: After?
          report_label: After
          show_if: {question: never, answered: true}  # <-
        - id: fine
          type: yes_no
          text: Fine?
          report_label: Fine
          show_if: {not: {question: never, answered: true}}
        """)
    )
    result = parse_survey(text)
    assert [p.question_id for p in result.problems] == ["never", "after"]
    find(result, marked_line(text), "after", "this question can never be shown")


def test_reachable_conditions_are_accepted() -> None:
    text = survey_yaml(
        with_q1("""
        - id: where
          type: multiple_choice
          text: Where?
          report_label: Where
          choices: [{value: a, label: A}, {value: b, label: B}, {value: c, label: C}]
        - id: safe
          type: rating
          text: How safe?
          report_label: Safe
          min: 1
          max: 5
        - id: hours
          type: number
          text: Hours?
          report_label: Hours
          min: 0
          max: 24
        - id: q2
          type: yes_no
          text: Second?
          report_label: Second
          show_if:
            all:
              - {question: where, includes: [a, b]}
              - not: {question: where, includes: c}
              - {question: safe, at_most: 1}
              - {question: hours, at_least: 23.5}
              - {question: hours, equals: 24}
              - any:
                  - {question: q1, equals: "no"}
                  - not: {question: q1, answered: true}
        """),
        header=HEADER + "demographics: {school_year: true}\n",
    )
    result = parse_survey(text)
    assert result.problems == []
    assert result.survey is not None


def test_many_combinations_are_assumed_reachable() -> None:
    """Beyond the enumeration bound the checker gives up rather than guess wrong."""
    rating = """
        - id: r{n}
          type: rating
          text: Rate {n}
          report_label: R{n}
          min: 0
          max: 10
    """
    questions = "".join(textwrap.dedent(rating).format(n=n) for n in range(4))
    never = """
        - id: last
          type: yes_no
          text: Last?
          report_label: Last
          show_if:
            all:
              - {question: r0, at_least: 11}
              - {question: r1, answered: true}
              - {question: r2, answered: true}
              - {question: r3, answered: true}
    """
    result = parse_survey(survey_yaml(questions + textwrap.dedent(never)))
    assert result.problems == []  # 12 ** 4 > 4096 combinations: not enumerated


def test_a_file_with_several_problems_reports_all_of_them() -> None:
    text = survey_yaml(
        """
        - id: q1
          type: yes_no
          text: Do you like school?
          report_label: Likes school
        - id: q1
          type: slider
          text: Hi
        - id: pick
          type: single_choice
          text: Pick
          report_label: Pick
          choices: [{value: a, label: A}, {value: a, label: B}]
        - id: later
          type: yes_no
          text: L?
          report_label: L
          show_if: {question: q1, equals: maybe}
        - id: name
          type: free_text
          text: Who are you?
          report_label: Who
        """,
        header=HEADER.replace("version: 1", "version: -3") + "colour: red\n",
    )
    result = parse_survey(text, "many.yaml")
    found = {(p.line, p.question_id, p.message.split(" (")[0]) for p in result.problems}
    assert found == {
        (2, None, "version must be a whole number from 1 to 999999"),
        (7, None, "unknown key 'colour' in the survey"),
        (13, "q1", "duplicate question id 'q1'"),
        (14, "q1", "unknown question type 'slider'"),
        (20, "pick", "choice value 'a' is used twice"),
        (25, "later", "show_if compares 'q1' with 'maybe', which is not one of its choices"),
        (26, "name", "surveys must never ask for a name: answers must not identify a young person"),
    }
    assert [p.line for p in result.problems] == sorted(p.line for p in result.problems)
    assert result.survey is None


def test_problem_str_and_format_problems() -> None:
    problem = Problem("bullying.yaml", 42, "bullied_month", "show_if points at later question 'x'")
    assert str(problem) == (
        "bullying.yaml:42: question 'bullied_month': show_if points at later question 'x'"
    )
    assert str(Problem("f.yaml", 0, None, "the file is empty")) == "f.yaml: the file is empty"
    warning = Problem("f.yaml", 3, "q", "long", "warning")
    assert str(warning) == "f.yaml:3: warning: question 'q': long"
    assert format_problems([problem, warning]).splitlines() == [
        str(problem),
        str(warning),
        "1 problem, 1 warning",
    ]
    assert format_problems([]) == "no problems found"


# --- a valid file, read right ----------------------------------------------------

FULL = HEADER.replace("thanks: Thank you.\n", "thanks: Thank you.\nestimated_minutes: 4\n") + (
    """\
audience: {min_year: 5, max_year: 11}
demographics:
  area:
    - {value: north, label: North}
    - {value: on, label: "On the river"}
  gender: true
  school_year: {min_year: 6}
questions:
  - id: welcome
    type: info
    text: Hello there.
  - id: q1
    type: yes_no
    text: Do you like school?
    report_label: Likes school
    prefer_not_to_say: true
    required: true
  - id: where
    type: multiple_choice
    text: Where?
    report_label: Where
    help: Pick any.
    choices:
      - {value: yes, label: Yes}
      - {value: 2, label: 2}
  - id: safe
    type: rating
    text: How safe?
    report_label: Safe
    min: 1
    max: 4
    min_label: Not safe
    max_label: Very safe
    show_if: {question: q1, answered: false}
  - id: hours
    type: number
    text: Hours?
    report_label: Hours
    min: 0.5
    show_if: {question: where, includes: [yes, 2]}
  - id: more
    type: free_text
    text: Anything else?
    report_label: More
    show_if: {any: [{question: safe, at_least: 3}, {not: [{question: hours, equals: 1}]}]}
"""
)


def test_a_valid_file_becomes_a_survey() -> None:
    result = parse_survey(FULL, "full.yaml")
    assert result.problems == []
    survey = result.survey
    assert survey is not None
    assert (survey.id, survey.version, survey.title, survey.topic) == (
        "sample",
        1,
        "A sample survey",
        "bullying",
    )
    assert survey.estimated_minutes == 4
    assert survey.audience == Audience(5, 11)
    ids = [q.id for q in survey.questions]
    assert ids == [
        "school_year",
        "gender",
        "area",
        "welcome",
        "q1",
        "where",
        "safe",
        "hours",
        "more",
    ]
    year, gender, area = survey.questions[:3]
    assert [c.value for c in year.choices] == ["y6", "y7", "y8", "y9", "y10", "y11"]
    assert (year.dimension, gender.dimension, area.dimension) == ("school_year", "gender", "area")
    assert area.choices == (Choice("north", "North"), Choice("on", "On the river"))
    assert area.prefer_not_to_say
    assert (year.line, gender.line, area.line) == (14, 13, 10)

    welcome = survey.question("welcome")
    assert welcome is not None and welcome.report_label == "welcome" and welcome.line == 16
    q1 = survey.question("q1")
    assert q1 is not None
    assert q1.choices == (Choice("yes", "Yes"), Choice("no", "No"))
    assert q1.required and q1.prefer_not_to_say
    where = survey.question("where")
    assert where is not None
    assert where.choices == (Choice("yes", "Yes"), Choice("2", "2"))  # YAML 1.1 words kept as text
    assert where.help == "Pick any." and not where.required
    safe = survey.question("safe")
    assert safe is not None
    assert [c.label for c in safe.choices] == ["1 – Not safe", "2", "3", "4 – Very safe"]
    assert [c.value for c in safe.choices] == ["1", "2", "3", "4"]
    assert (safe.min, safe.max, safe.min_label, safe.max_label) == (1, 4, "Not safe", "Very safe")
    assert safe.show_if == Condition("not", children=(Condition("answered", "q1"),))
    hours = survey.question("hours")
    assert hours is not None
    assert (hours.min, hours.max) == (0.5, None)
    assert hours.show_if == Condition("includes", "where", ("yes", "2"))
    more = survey.question("more")
    assert more is not None
    assert more.max_length == DEFAULT_MAX_LENGTH
    assert more.show_if == Condition(
        "any",
        children=(
            Condition("at_least", "safe", (3,)),
            Condition("not", children=(Condition("equals", "hours", ("1",)),)),
        ),
    )
    assert [(w.line, w.question_id) for w in result.warnings] == [(24, "q1")]
    assert "cannot be skipped" in result.warnings[0].message


def test_long_question_text_is_a_warning_not_a_problem() -> None:
    words = " ".join(["word"] * 30)
    text = survey_yaml(f"""
        - id: q1
          type: yes_no
          text: {words}?  # <-
          report_label: Long
    """)
    result = parse_survey(text)
    assert result.survey is not None and result.problems == []
    assert [(w.line, w.question_id) for w in result.warnings] == [(marked_line(text), "q1")]
    assert "30 words" in result.warnings[0].message


def test_identifying_words_in_ordinary_questions_are_allowed() -> None:
    text = survey_yaml("""
        - id: called_names
          type: yes_no
          text: Have people called you names?
          report_label: Called names
        - id: checked_phone
          type: yes_no
          text: Has a partner ever checked your phone?
          report_label: Phone checked
        - id: intro
          type: info
          text: We will never ask your name or where you live.
    """)
    result = parse_survey(text)
    assert result.problems == []


# --- malformed and garbage input --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("id: a\nversion: 1\n  title: b\n", 3, "this is not valid YAML: mapping values"),
        ("id: a\nquestions: [1, 2\n", 3, "this is not valid YAML"),
        ("id: a\n\tversion: 1\n", 2, "indent with spaces, not tabs"),
        ("id: a\n---\nid: b\n", 2, "expected a single document"),
        ("id: a\ntitle: \x00\n", 2, "a character that is not allowed"),
        ('id: "unclosed\nversion: 1\n', 3, "this is not valid YAML"),
    ],
)
def test_malformed_yaml_is_one_problem_with_its_line(text: str, line: int, fragment: str) -> None:
    result = parse_survey(text, "broken.yaml")
    assert result.survey is None
    assert len(result.problems) == 1
    assert result.problems[0].line == line
    assert fragment in result.problems[0].message
    assert str(result.problems[0]).startswith(f"broken.yaml:{line}: ")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- a\n- b\n", "must be a mapping of keys (id, version, title, ... questions), not a list"),
        ("42\n", "not a single value"),
        ("a: &x [*x]\n", "contains itself"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("x: " + "[" * 60 + "]" * 60, "nested too deeply"),
        ("x: " + "a" * (MAX_FILE_CHARS + 1), "the file is too big"),
        (
            "a: &a [1,2,3,4,5,6,7,8,9,10]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
            "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
            "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
            "too many values",
        ),
        ("? [a, b]\n: c\n", "a key must be a plain word"),
        ("id: 12\nversion: 99999999999999999999999999\n", "version must be a whole number"),
        ("version: " + "9" * 5000 + "\n", "version must be a whole number"),
        ("id: !!python/object:os.system Bad\n", "survey id 'Bad' must use only lowercase"),
    ],
)
def test_garbage_gives_problems_not_exceptions(text: str, fragment: str) -> None:
    result = parse_survey(text, "junk.yaml")
    assert result.survey is None
    assert any(fragment in p.message for p in result.problems), format_problems(result.problems)


def assert_sound(result: ParseResult) -> None:
    assert isinstance(result, ParseResult)
    assert (result.survey is None) == bool(result.problems)
    for problem in result.problems + result.warnings:
        assert isinstance(problem.line, int) and problem.line >= 0
        assert isinstance(problem.message, str) and problem.message
        assert not problem.message.startswith("internal error"), problem.message
        str(problem)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_any_text_parses_without_raising(text: str) -> None:
    assert_sound(parse_survey(text, "x.yaml"))


@settings(max_examples=200)
@given(st.text(alphabet=st.sampled_from(list("abqy01:-[]{},&*!|>'\"#? \n\t")), max_size=120))
def test_yaml_punctuation_parses_without_raising(text: str) -> None:
    assert_sound(parse_survey(text, "x.yaml"))


KEYS = [
    "id", "version", "title", "topic", "intro", "thanks", "questions", "audience", "demographics",
    "type", "text", "report_label", "choices", "value", "label", "show_if", "question", "equals",
    "in", "includes", "at_least", "at_most", "answered", "all", "any", "not", "min", "max",
    "min_year", "max_year", "school_year", "gender", "area", "required", "prefer_not_to_say",
    "max_length", "min_label", "max_label", "help", "q1", "q2",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=30),
    st.floats(allow_nan=False, allow_infinity=True),
    st.sampled_from(["q1", "q2", "yes", "no", "info", "rating", "yes_no", "single_choice", ""]),
    st.text(max_size=8),
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=6),
    ),
    max_leaves=30,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(structures)
def test_any_yaml_structure_parses_without_raising(data: object) -> None:
    assert_sound(parse_survey(yaml.safe_dump(data), "x.yaml"))


def _paths(data: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found.extend(_paths(value, (*path, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(_paths(value, (*path, index)))
    return found


SHIPPED = Path(__file__).resolve().parents[2] / "config" / "surveys"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_damaged_real_survey_parses_without_raising(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(p.name for p in SHIPPED.glob("*.yaml"))))
    survey = yaml.safe_load((SHIPPED / name).read_text())
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(survey)[1:]))
        target: object = survey
        for step in path[:-1]:
            target = target[step]  # type: ignore[index]
        target[path[-1]] = data.draw(structures)  # type: ignore[index]
    assert_sound(parse_survey(yaml.safe_dump(survey, sort_keys=False), name))


# --- files and folders ----------------------------------------------------------------

GOOD = survey_yaml(YES_NO)


def test_load_survey_file(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    result = load_survey_file(path)
    assert result.problems == [] and result.survey is not None
    assert result.survey.question("q1") is not None

    missing = load_survey_file(tmp_path / "nope.yaml")
    assert missing.survey is None
    assert missing.problems[0].source == str(tmp_path / "nope.yaml")
    assert "cannot read the file" in missing.problems[0].message

    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"id: a\ntitle: caf\xe9\n")
    result = load_survey_file(latin)
    assert [(p.line, p.message) for p in result.problems] == [
        (2, "the file is not UTF-8 text; save it as UTF-8")
    ]


def test_load_survey_dir_keeps_good_files_and_refuses_bad_ones(tmp_path: Path) -> None:
    (tmp_path / "a_good.yaml").write_text(GOOD)
    (tmp_path / "b_other.yml").write_text(GOOD.replace("id: sample", "id: other"))
    (tmp_path / "c_bad.yaml").write_text(GOOD.replace("type: yes_no", "type: slider"))
    (tmp_path / "d_broken.yaml").write_text("id: [unclosed\n")
    (tmp_path / "notes.txt").write_text("not a survey")
    (tmp_path / ".hidden.yaml").write_text("garbage: [")
    surveys, problems = load_survey_dir(tmp_path)
    assert sorted(s.id for s in surveys) == ["other", "sample"]
    assert sorted({Path(p.source).name for p in problems}) == ["c_bad.yaml", "d_broken.yaml"]
    assert any("unknown question type 'slider'" in p.message for p in problems)


def test_load_survey_dir_refuses_two_files_with_the_same_id_and_version(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(GOOD)
    (tmp_path / "two.yaml").write_text(GOOD.replace("A sample survey", "A changed survey"))
    (tmp_path / "three.yaml").write_text(GOOD.replace("version: 1", "version: 2"))
    surveys, problems = load_survey_dir(tmp_path)
    assert [(s.id, s.version) for s in surveys] == [("sample", 2)]
    assert sorted(Path(p.source).name for p in problems) == ["one.yaml", "two.yaml"]
    assert all("survey 'sample' version 1 is also in" in p.message for p in problems)


def test_load_survey_dir_on_a_missing_folder(tmp_path: Path) -> None:
    surveys, problems = load_survey_dir(tmp_path / "missing")
    assert surveys == []
    assert len(problems) == 1 and "cannot read the survey folder" in problems[0].message


# --- the stored form -------------------------------------------------------------------


def without_lines(survey: Survey) -> Survey:
    return replace(survey, questions=tuple(replace(q, line=0) for q in survey.questions))


def test_round_trip_through_json() -> None:
    parsed = parse_survey(FULL).survey
    assert parsed is not None
    stored = json.loads(json.dumps(survey_to_dict(parsed)))
    again = survey_from_dict(stored)
    assert again == without_lines(parsed)
    assert survey_to_dict(again) == stored


def test_round_trip_of_a_hand_built_survey_is_exact() -> None:
    survey = Survey(
        id="s",
        version=3,
        title="T",
        topic="online_safety",
        intro="I",
        thanks="Th",
        audience=Audience(max_year=9),
        questions=(
            Question("a", "number", "A?", "A", min=0.5, max=10, help="h"),
            Question(
                "b",
                "multiple_choice",
                "B?",
                "B",
                choices=(Choice("x", "X"), Choice("y", "Y")),
                required=True,
                prefer_not_to_say=True,
                dimension="area",
                show_if=Condition(
                    "all",
                    children=(
                        Condition("at_most", "a", (2.5,)),
                        Condition("not", children=(Condition("in", "a", ("1", 2)),)),
                    ),
                ),
            ),
            Question("c", "free_text", "C?", "C", max_length=300),
        ),
    )
    assert survey_from_dict(json.loads(json.dumps(survey_to_dict(survey)))) == survey


def test_the_stored_form_ignores_line_numbers() -> None:
    moved = parse_survey("# a comment\n\n" + FULL).survey
    parsed = parse_survey(FULL).survey
    assert moved is not None and parsed is not None and moved != parsed
    assert survey_to_dict(moved) == survey_to_dict(parsed)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("questions"),
        lambda d: d.update(format=99),
        lambda d: d.update(version="1"),
        lambda d: d["questions"][0].update(type="slider"),
        lambda d: d["questions"][0].update(required="no"),
        lambda d: d["questions"][0].update(choices=[{"value": 1, "label": "x"}]),
        lambda d: d["questions"][-1].update(show_if={"op": "bogus", "values": [], "children": []}),
        lambda d: d["questions"].append("not a question"),
    ],
)
def test_survey_from_dict_refuses_malformed_data(damage: object) -> None:
    parsed = parse_survey(FULL).survey
    assert parsed is not None
    data = survey_to_dict(parsed)
    damage(data)  # type: ignore[operator]
    with pytest.raises(ValueError):
        survey_from_dict(data)


def test_school_years_outside_the_audience_are_a_warning() -> None:
    text = survey_yaml(
        YES_NO,
        header=HEADER
        + "audience: {min_year: 7}\ndemographics:\n  school_year: {min_year: 5}  # <-\n",
    )
    result = parse_survey(text)
    assert result.problems == [] and result.survey is not None
    assert [(w.line, w.message) for w in result.warnings] == [
        (
            marked_line(text),
            "school_year offers years 5 to 13, outside the audience (years 7 to 13)",
        )
    ]


FLAGGED_CHOICE = """\
id: flagged
version: 1
title: Flagged
topic: relationships
intro: A few questions.
thanks: Thank you.
questions:
  - id: hit_now
    type: single_choice
    text: Is this still happening?
    report_label: Still happening
    choices:
      - {value: "yes", label: "Yes", flag: relationship_abuse}
      - {value: "no", label: "No"}
"""


def test_a_choice_can_carry_a_disclosure_flag_that_survives_storage() -> None:
    result = parse_survey(FLAGGED_CHOICE, "flagged.yaml")
    assert result.problems == []
    survey = result.survey
    assert survey is not None
    question = survey.question("hit_now")
    assert question is not None
    assert question.choices == (Choice("yes", "Yes", "relationship_abuse"), Choice("no", "No"))
    stored = json.loads(json.dumps(survey_to_dict(survey)))
    assert survey_from_dict(stored).questions[0].choices == question.choices
    assert "flag" not in stored["questions"][0]["choices"][1]


def test_an_unknown_flag_category_is_refused_with_its_line() -> None:
    text = FLAGGED_CHOICE.replace("flag: relationship_abuse", "flag: feeling_sad")
    result = parse_survey(text, "flagged.yaml")
    assert result.survey is None
    (problem,) = result.problems
    assert problem.line == 13 and problem.question_id == "hit_now"
    assert "'feeling_sad'" in problem.message and "relationship_abuse" in problem.message
