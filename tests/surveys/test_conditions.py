"""evaluate_condition: the show_if semantics the engine relies on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from surveys.conditions import as_number, evaluate_condition, same_value
from surveys.model import Condition


def leaf(op: str, question: str = "q", *values: str | int | float) -> Condition:
    return Condition(op, question, tuple(values))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cond", "answers", "expected"),
    [
        (leaf("equals", "q", "yes"), {"q": "yes"}, True),
        (leaf("equals", "q", "yes"), {"q": "no"}, False),
        (leaf("equals", "q", "3"), {"q": 3}, True),  # rating answers are ints
        (leaf("equals", "q", "3.0"), {"q": 3}, True),
        (leaf("equals", "q", 2.5), {"q": "2.5"}, True),
        (leaf("equals", "q", "yes"), {"q": ["yes"]}, False),  # a list never equals a value
        (leaf("in", "q", "a", "b"), {"q": "b"}, True),
        (leaf("in", "q", "a", "b"), {"q": "c"}, False),
        (leaf("in", "q", "4", "5"), {"q": 5}, True),
        (leaf("includes", "q", "online"), {"q": ["school", "online"]}, True),
        (leaf("includes", "q", "online"), {"q": ["school"]}, False),
        (leaf("includes", "q", "online", "games"), {"q": ["games"]}, True),
        (leaf("includes", "q", "online"), {"q": []}, False),
        (leaf("includes", "q", "online"), {"q": "online"}, True),
        (leaf("at_least", "q", 3), {"q": 3}, True),
        (leaf("at_least", "q", 3), {"q": 2}, False),
        (leaf("at_least", "q", 3), {"q": 7.5}, True),
        (leaf("at_most", "q", 2), {"q": 2}, True),
        (leaf("at_most", "q", 2), {"q": 3}, False),
        (leaf("at_least", "q", 3), {"q": "lots"}, False),
        (leaf("at_least", "q", 3), {"q": True}, False),  # booleans are not numbers
        (leaf("answered"), {"q": "anything"}, True),
        (leaf("answered"), {"q": []}, True),
        (leaf("answered"), {"q": 0}, True),
    ],
)
def test_leaf_ops(cond: Condition, answers: dict[str, object], expected: bool) -> None:
    assert evaluate_condition(cond, answers) is expected


@pytest.mark.parametrize("op", ["equals", "in", "includes", "at_least", "at_most", "answered"])
@pytest.mark.parametrize("answers", [{}, {"q": None}, {"other": "yes"}])
def test_leaf_on_unanswered_question_is_false_and_its_not_is_true(
    op: str, answers: dict[str, object]
) -> None:
    cond = leaf(op, "q", "yes") if op not in ("at_least", "at_most") else leaf(op, "q", 1)
    assert evaluate_condition(cond, answers) is False
    assert evaluate_condition(Condition("not", children=(cond,)), answers) is True


def test_all_any_not_combine() -> None:
    yes = leaf("equals", "a", "yes")
    high = leaf("at_least", "b", 4)
    both = Condition("all", children=(yes, high))
    either = Condition("any", children=(yes, high))
    assert evaluate_condition(both, {"a": "yes", "b": 5})
    assert not evaluate_condition(both, {"a": "yes", "b": 3})
    assert evaluate_condition(either, {"a": "no", "b": 5})
    assert not evaluate_condition(either, {"a": "no", "b": 1})
    assert not evaluate_condition(either, {})
    nested = Condition("all", children=(either, Condition("not", children=(yes,))))
    assert evaluate_condition(nested, {"a": "no", "b": 4})
    assert not evaluate_condition(nested, {"a": "yes", "b": 4})


def test_malformed_conditions_are_false_not_errors() -> None:
    assert not evaluate_condition(Condition("not"), {"q": "x"})
    two = (leaf("answered"), leaf("answered"))
    assert not evaluate_condition(Condition("not", children=two), {})
    assert not evaluate_condition(Condition("equals", "q"), {"q": "x"})
    assert not evaluate_condition(Condition("at_least", "q"), {"q": 3})
    assert not evaluate_condition(Condition("equals", None, ("x",)), {"q": "x"})
    assert not evaluate_condition(Condition("bogus", "q", ("x",)), {"q": "x"})  # type: ignore[arg-type]


def test_numbers() -> None:
    assert as_number("  4 ") == 4.0
    assert as_number(True) is None
    assert as_number("nan") is None
    assert as_number(float("inf")) is None
    assert as_number(10**400) is None
    assert same_value(3, "3")
    assert not same_value("yes", "Yes")


answer_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
leaves = st.builds(
    Condition,
    st.sampled_from(["equals", "in", "includes", "at_least", "at_most", "answered"]),
    st.sampled_from(["a", "b", None]),
    st.lists(st.one_of(st.text(max_size=3), st.integers(), st.floats()), max_size=3).map(tuple),
)
conditions = st.recursive(
    leaves,
    lambda children: st.builds(
        Condition,
        st.sampled_from(["all", "any", "not"]),
        st.none(),
        st.just(()),
        st.lists(children, max_size=3).map(tuple),
    ),
    max_leaves=8,
)


@given(conditions, st.dictionaries(st.sampled_from(["a", "b", "c"]), answer_values))
def test_never_raises_and_not_inverts(cond: Condition, answers: dict[str, object]) -> None:
    result = evaluate_condition(cond, answers)
    assert isinstance(result, bool)
    assert evaluate_condition(Condition("not", children=(cond,)), answers) is (not result)
