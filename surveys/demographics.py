"""The demographic block: only what a board reports by.

School year (mapped to key stage and age band), optionally gender and
optionally school or area from a configured list. Never a name, phone
number, address, email or date of birth.
"""

from __future__ import annotations

from dataclasses import dataclass

from surveys.model import PREFER_NOT_TO_SAY, Choice, Question


@dataclass(frozen=True)
class SchoolYear:
    value: str  # stable answer value, e.g. "y7"
    number: int  # 3..13 (England and Wales numbering)
    label: str
    key_stage: str  # KS2, KS3, KS4, KS5
    age_band: str  # "7-11", "11-14", "14-16", "16-18"


SCHOOL_YEARS: tuple[SchoolYear, ...] = tuple(
    SchoolYear(
        value=f"y{number}",
        number=number,
        label=f"Year {number}",
        key_stage=(
            "KS2" if number <= 6 else "KS3" if number <= 9 else "KS4" if number <= 11 else "KS5"
        ),
        age_band=(
            "7-11"
            if number <= 6
            else "11-14"
            if number <= 9
            else "14-16"
            if number <= 11
            else "16-18"
        ),
    )
    for number in range(3, 14)
)
_BY_VALUE = {year.value: year for year in SCHOOL_YEARS}

SCHOOL_YEAR_QUESTION_ID = "school_year"
GENDER_QUESTION_ID = "gender"
AREA_QUESTION_ID = "area"

GENDER_CHOICES: tuple[Choice, ...] = (
    Choice("girl", "Girl"),
    Choice("boy", "Boy"),
    Choice("self_describe", "I describe myself another way"),
)


def school_year(value: object) -> SchoolYear | None:
    """The school year for an answer value such as "y7"; None for anything else."""
    return _BY_VALUE.get(value) if isinstance(value, str) else None


def school_year_number(value: object) -> int | None:
    year = school_year(value)
    return year.number if year else None


def key_stage(value: object) -> str | None:
    year = school_year(value)
    return year.key_stage if year else None


def age_band(value: object) -> str | None:
    year = school_year(value)
    return year.age_band if year else None


def school_year_question(line: int = 0, years: tuple[int, int] = (3, 13)) -> Question:
    low, high = years
    return Question(
        id=SCHOOL_YEAR_QUESTION_ID,
        type="single_choice",
        text="What school year are you in?",
        report_label="School year",
        choices=tuple(
            Choice(year.value, year.label) for year in SCHOOL_YEARS if low <= year.number <= high
        ),
        required=False,
        prefer_not_to_say=True,
        dimension="school_year",
        line=line,
    )


def gender_question(line: int = 0) -> Question:
    return Question(
        id=GENDER_QUESTION_ID,
        type="single_choice",
        text="Which of these describes you best? You can skip this one.",
        report_label="Gender",
        choices=GENDER_CHOICES,
        required=False,
        prefer_not_to_say=True,
        dimension="gender",
        line=line,
    )


def area_question(choices: tuple[Choice, ...], line: int = 0) -> Question:
    return Question(
        id=AREA_QUESTION_ID,
        type="single_choice",
        text="Which part of the city is your school in?",
        report_label="School area",
        choices=choices,
        required=False,
        prefer_not_to_say=True,
        dimension="area",
        line=line,
    )


def is_prefer_not(value: object) -> bool:
    return value == PREFER_NOT_TO_SAY
