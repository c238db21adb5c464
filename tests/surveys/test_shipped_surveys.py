"""The shipped surveys: they load cleanly, match the HRBS items, read simply and fit the schema."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml

from surveys import definition
from surveys.definition import load_survey_dir, load_survey_file, parse_survey
from surveys.model import QUESTION_TYPES, Condition, Survey

ROOT = Path(__file__).resolve().parents[2]
SURVEY_DIR = ROOT / "config" / "surveys"
SCHEMA_PATH = ROOT / "surveys" / "survey.schema.json"
FILES = ("bullying.yaml", "online_safety.yaml", "healthy_relationships.yaml")


def load(name: str) -> Survey:
    result = load_survey_file(SURVEY_DIR / name)
    assert result.problems == [], definition.format_problems(result.problems)
    assert result.survey is not None
    return result.survey


@pytest.mark.parametrize("name", FILES)
def test_shipped_survey_loads_with_no_problems_or_warnings(name: str) -> None:
    result = load_survey_file(SURVEY_DIR / name)
    assert result.problems == []
    assert result.warnings == []
    assert result.survey is not None
    assert result.survey.id == name.removesuffix(".yaml")


def test_the_folder_loads_all_three() -> None:
    surveys, problems = load_survey_dir(SURVEY_DIR)
    assert problems == []
    assert sorted((s.id, s.version) for s in surveys) == [
        ("bullying", 1),
        ("healthy_relationships", 1),
        ("online_safety", 1),
    ]


def conditions_in(condition: Condition | None) -> list[Condition]:
    if condition is None:
        return []
    found = [condition]
    for child in condition.children:
        found.extend(conditions_in(child))
    return found


@pytest.mark.parametrize("name", FILES)
def test_shipped_survey_shape(name: str) -> None:
    survey = load(name)
    assert [q.dimension for q in survey.questions[:3]] == ["school_year", "gender", "area"]
    area = survey.questions[2]
    assert [c.label for c in area.choices] == ["North", "South", "East", "West", "City centre"]
    assert area.prefer_not_to_say
    own = survey.questions[3:]
    types = {q.type for q in own}
    assert {"info", "multiple_choice", "rating", "yes_no"} <= types
    assert any(q.show_if is not None for q in own)
    last = own[-1]
    assert (last.type, last.text, last.required) == (
        "free_text",
        "Is there anything else you want to tell us?",
        False,
    )
    assert not any(q.required for q in survey.questions)
    assert survey.estimated_minutes is not None and survey.estimated_minutes <= 10
    assert len(survey.questions) <= 20


def test_bullying_matches_the_hrbs_items() -> None:
    survey = load("bullying.yaml")
    month = survey.question("bullied_month")
    assert month is not None
    assert month.show_if == Condition("equals", "bullied_year", ("yes",))
    deals = survey.question("school_deals")
    assert deals is not None
    assert [c.label for c in deals.choices] == [
        "Very well",
        "Quite well",
        "Not very well",
        "Not at all well",
        "I don't know",
    ]
    playtime = survey.question("safe_playtime")
    assert playtime is not None
    assert [c.value for c in playtime.choices] == ["always", "often", "sometimes", "never"]
    scale = ["very_good", "good", "ok", "poor", "very_poor"]
    for question_id in ("safe_journey", "safe_after_dark"):
        question = survey.question(question_id)
        assert question is not None and [c.value for c in question.choices] == scale
    rating = survey.question("safe_at_school")
    assert rating is not None and (rating.min, rating.max) == (1, 5)


def test_online_safety_matches_the_hrbs_items() -> None:
    survey = load("online_safety.yaml")
    for question_id in ("taught_online_safety", "talks_to_strangers", "worried_upset"):
        question = survey.question(question_id)
        assert question is not None and question.type == "yes_no"
    uses = survey.question("social_uses")
    assert uses is not None and uses.type == "multiple_choice"
    assert [c.value for c in uses.choices] == ["messages", "gaming", "pictures", "video", "other"]
    assert uses.show_if == Condition("equals", "uses_social", ("yes",))
    assert survey.question("bullied_online") is not None


def test_relationships_is_for_secondary_pupils_and_branches_on_a_partner() -> None:
    survey = load("healthy_relationships.yaml")
    assert survey.topic == "relationships"
    assert (survey.audience.min_year, survey.audience.max_year) == (7, None)
    assert not survey.audience.admits(6) and survey.audience.admits(7)
    year = survey.question("school_year")
    assert year is not None
    assert [c.value for c in year.choices] == [f"y{n}" for n in range(7, 14)]
    partner = survey.question("had_partner")
    assert partner is not None and partner.prefer_not_to_say
    for question_id in (
        "partner_jealous",
        "partner_checked_phone",
        "partner_threats",
        "partner_hit",
    ):
        question = survey.question(question_id)
        assert question is not None
        assert question.type == "yes_no" and question.prefer_not_to_say
        assert question.show_if == Condition("equals", "had_partner", ("yes",))
    assert survey.question("home_arguing") is not None
    ops = {c.op for q in survey.questions for c in conditions_in(q.show_if)}
    assert {"all", "any", "not"} <= ops


# --- plain language ---------------------------------------------------------------------


def syllables(word: str) -> int:
    """A rough English syllable count: vowel groups, less a silent final e or -ed."""
    word = word.lower().strip("'")
    if word.isdigit():
        return max(1, len(word) // 2)
    word = re.sub(r"[^a-z]", "", word)
    if not word:
        return 0
    count = len(re.findall(r"[aeiouy]+", word))
    if count > 1 and word.endswith("e") and not word.endswith(("le", "ee", "ye")):
        count -= 1
    if count > 1 and re.search(r"[^aeiouy]ed$", word) and not word.endswith(("ted", "ded")):
        count -= 1
    return max(1, count)


def grade(text: str) -> float:
    """Flesch–Kincaid grade level (US grade; UK year is about one more)."""
    words = re.findall(r"[A-Za-z0-9']+", text)
    if not words:
        return 0.0
    sentences = max(1, len([part for part in re.split(r"[.!?]+", text) if part.strip()]))
    total = sum(syllables(word) for word in words)
    return 0.39 * len(words) / sentences + 11.8 * total / len(words) - 15.59


def test_the_readability_measure_tells_easy_from_hard() -> None:
    assert [syllables(w) for w in ("school", "bullied", "jumped", "little", "safe", "online")] == [
        1,
        2,
        1,
        2,
        1,
        2,
    ]
    assert grade("Do you feel safe at school?") < 2
    hard = (
        "Considering the institutional mechanisms available, how effectively does your "
        "educational establishment investigate and remediate allegations of victimisation?"
    )
    assert grade(hard) > 15


def shipped_texts() -> list[tuple[str, str]]:
    texts = []
    for name in FILES:
        survey = load(name)
        texts.extend((f"{name}:{survey.id}", text) for text in (survey.intro, survey.thanks))
        for question in survey.questions:
            texts.append((f"{name}:{question.id}", question.text))
            if question.help:
                texts.append((f"{name}:{question.id} help", question.help))
    return texts


def test_shipped_wording_is_easy_to_read() -> None:
    grades = {where: grade(text) for where, text in shipped_texts()}
    assert statistics.mean(grades.values()) <= 6.0
    too_hard = {where: round(value, 1) for where, value in grades.items() if value > 9.0}
    assert too_hard == {}


@pytest.mark.parametrize("name", FILES)
def test_shipped_questions_are_short(name: str) -> None:
    for question in load(name).questions:
        longest = max(len(s.split()) for s in re.split(r"[.!?]", question.text) if s.strip())
        assert longest <= 16, (question.id, question.text)


# --- the JSON Schema stays in step with the parser -----------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_schema_agrees_with_the_parser(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert list(schema["properties"]) == list(definition.TOP_LEVEL_KEYS)
    assert schema["required"] == list(definition.REQUIRED_TOP_LEVEL_KEYS)
    defs = schema["$defs"]
    question = defs["question"]
    assert list(question["properties"]) == list(definition.QUESTION_KEYS)
    assert question["properties"]["type"]["enum"] == list(QUESTION_TYPES)
    assert list(defs["choice"]["properties"]) == list(definition.CHOICE_KEYS)
    assert list(defs["year_range"]["properties"]) == list(definition.AUDIENCE_KEYS)
    assert list(defs["demographics"]["properties"]) == list(definition.DEMOGRAPHIC_KEYS)
    assert list(defs["leaf_condition"]["properties"]) == ["question", *definition.LEAF_OPS]
    groups = [next(iter(option["properties"])) for option in defs["condition"]["oneOf"][1:]]
    assert groups == list(definition.GROUP_OPS)
    assert defs["identifier"]["pattern"] == f"^{definition.ID_PATTERN.pattern}$"
    assert defs["choice"]["properties"]["value"]["pattern"] == (
        f"^{definition.VALUE_PATTERN.pattern}$"
    )
    year = defs["school_year"]
    assert (year["minimum"], year["maximum"]) == (
        definition.FIRST_SCHOOL_YEAR,
        definition.LAST_SCHOOL_YEAR,
    )
    assert schema["properties"]["version"]["maximum"] == definition.MAX_VERSION
    assert schema["properties"]["questions"]["maxItems"] == definition.MAX_QUESTIONS
    assert question["properties"]["max_length"]["maximum"] == definition.LONGEST_MAX_LENGTH


_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def schema_errors(
    value: Any, schema: dict[str, Any], root: dict[str, Any], at: str = "$"
) -> list[str]:
    """A small JSON Schema checker: just the keywords survey.schema.json uses."""
    unsupported = set(schema) - {
        "$schema", "$id", "$ref", "$defs", "title", "description", "type", "enum", "const",
        "required", "properties", "additionalProperties", "items", "minItems", "maxItems",
        "minimum", "maximum", "pattern", "minLength", "minProperties", "maxProperties",
        "anyOf", "oneOf",
    }  # fmt: skip
    assert not unsupported, f"the test's schema checker does not know {unsupported}"
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return schema_errors(value, target, root, at)
    errors: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]

        def fits(name: str) -> bool:
            if isinstance(value, bool) and name in ("integer", "number"):
                return False
            return isinstance(value, _TYPES[name])

        if not any(fits(name) for name in names):
            return [f"{at}: {value!r} is not {names}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{at}: {value!r} not in {schema['enum']}")
    if "const" in schema and (value != schema["const"] or type(value) is not type(schema["const"])):
        errors.append(f"{at}: {value!r} is not {schema['const']!r}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{at}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{at}: too short")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{at}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{at}: {value} > {schema['maximum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 10**9):
            errors.append(f"{at}: wrong number of items ({len(value)})")
        if "items" in schema:
            for index, item in enumerate(value):
                errors.extend(schema_errors(item, schema["items"], root, f"{at}[{index}]"))
    if isinstance(value, dict):
        if not schema.get("minProperties", 0) <= len(value) <= schema.get("maxProperties", 10**9):
            errors.append(f"{at}: wrong number of keys ({len(value)})")
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{at}: missing {key}")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                errors.extend(schema_errors(item, properties[key], root, f"{at}.{key}"))
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{at}: unknown key {key!r}")
    if "anyOf" in schema and not any(
        not schema_errors(value, option, root, at) for option in schema["anyOf"]
    ):
        errors.append(f"{at}: matches none of anyOf")
    if "oneOf" in schema:
        matching = sum(
            1 for option in schema["oneOf"] if not schema_errors(value, option, root, at)
        )
        if matching != 1:
            errors.append(f"{at}: matches {matching} of oneOf, not exactly 1")
    return errors


@pytest.mark.parametrize("name", FILES)
def test_shipped_survey_fits_the_schema(name: str, schema: dict[str, Any]) -> None:
    data = yaml.safe_load((SURVEY_DIR / name).read_text(encoding="utf-8"))
    assert schema_errors(data, schema, schema) == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d.update(colour="red"), "unknown key 'colour'"),
        (lambda d: d.pop("thanks"), "missing thanks"),
        (lambda d: d.update(version=0), "$.version: 0 < 1"),
        (lambda d: d["questions"][1].update(type="slider"), "not in"),
        (lambda d: d["questions"][1].update(show_if={"question": "a", "is": "b"}), "oneOf"),
        (lambda d: d["questions"][1].update(show_if={"all": []}), "oneOf"),
        (lambda d: d["demographics"].update(school_year={"min_year": 2}), "anyOf"),
    ],
)
def test_the_schema_and_the_parser_both_refuse_mistakes(
    change: Any, fragment: str, schema: dict[str, Any]
) -> None:
    data = yaml.safe_load((SURVEY_DIR / "bullying.yaml").read_text(encoding="utf-8"))
    change(data)
    errors = schema_errors(data, schema, schema)
    assert any(fragment in error for error in errors), errors
    assert parse_survey(yaml.safe_dump(data, sort_keys=False)).problems != []
