"""Evaluating a question's `show_if` condition against the answers so far.

Pure and total: never raises, whatever the answers hold.

`answers` maps question id -> answered value: a str for single choice and
yes/no, a list of str for multiple choice, an int for rating, an int or float
for number, a str for free text. A question that was skipped, answered
"prefer not to say" or never shown is absent from the mapping (or maps to
None); every leaf test on it is then False, so `not` of such a test is True.

`equals`, `in` and `includes` compare numerically when both sides read as
numbers (so a rating answer 3 equals the condition value "3"), otherwise as
exact text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from surveys.model import Condition

_MISSING = object()


def as_number(value: object) -> float | None:
    """`value` as a finite number, or None (booleans are not numbers here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def same_value(answer: object, wanted: object) -> bool:
    """True when an answer matches a condition value (numerically if both are numbers)."""
    left, right = as_number(answer), as_number(wanted)
    if left is not None and right is not None:
        return left == right
    return answer == wanted


def evaluate_condition(cond: Condition, answers: Mapping[str, object]) -> bool:
    """True when `cond` holds for `answers`."""
    op = cond.op
    if op == "all":
        return all(evaluate_condition(child, answers) for child in cond.children)
    if op == "any":
        return any(evaluate_condition(child, answers) for child in cond.children)
    if op == "not":
        return len(cond.children) == 1 and not evaluate_condition(cond.children[0], answers)
    answer = answers.get(cond.question, _MISSING) if cond.question is not None else _MISSING
    if answer is _MISSING or answer is None:
        return False
    if op == "answered":
        return True
    if op == "equals":
        return bool(cond.values) and same_value(answer, cond.values[0])
    if op == "in":
        return any(same_value(answer, wanted) for wanted in cond.values)
    if op == "includes":
        items = answer if isinstance(answer, list | tuple) else [answer]
        return any(same_value(item, wanted) for item in items for wanted in cond.values)
    if op in ("at_least", "at_most"):
        number = as_number(answer)
        limit = as_number(cond.values[0]) if cond.values else None
        if number is None or limit is None:
            return False
        return number >= limit if op == "at_least" else number <= limit
    return False
