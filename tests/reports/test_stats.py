"""The statistics of board reports, against hand-computed values and statsmodels."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from surveys.stats import (
    Shown,
    change_sentence,
    check_threshold,
    headline,
    median_from_counts,
    round_to,
    two_proportion_test,
    wilson_interval,
)


def test_wilson_by_hand() -> None:
    # 5 of 10: centre 0.5, half-width 1.96/(1+0.38415)*sqrt(0.025+0.0096) = 0.2634
    low, high = wilson_interval(5, 10)  # type: ignore[misc]
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)
    low, high = wilson_interval(0, 10)  # type: ignore[misc]
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_statsmodels(pair: tuple[int, int]) -> None:
    successes, trials = pair
    expected = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    low, high = wilson_interval(successes, trials)  # type: ignore[misc]
    assert low == pytest.approx(expected[0], abs=1e-9)
    assert high == pytest.approx(expected[1], abs=1e-9)
    assert low <= successes / trials <= high


def test_two_proportion_test_by_hand() -> None:
    # 28/100 then 21/100: pooled 0.245, se = sqrt(0.245*0.755*0.02) = 0.060823
    result = two_proportion_test(28, 100, 21, 100)
    assert result is not None
    assert result.difference == pytest.approx(-0.07)
    assert result.z == pytest.approx(-1.1509, abs=1e-4)
    assert result.p_value == pytest.approx(0.2498, abs=1e-4)
    assert not result.significant()
    big = two_proportion_test(280, 1000, 210, 1000)
    assert big is not None and big.significant()
    assert two_proportion_test(1, 0, 1, 1) is None
    same = two_proportion_test(0, 10, 0, 20)
    assert same is not None and same.p_value == 1.0


@given(st.integers(1, 2000), st.integers(1, 2000), st.data())
def test_two_proportion_test_matches_statsmodels(n1: int, n2: int, data: st.DataObject) -> None:
    k1 = data.draw(st.integers(0, n1))
    k2 = data.draw(st.integers(0, n2))
    result = two_proportion_test(k1, n1, k2, n2)
    assert result is not None
    if k1 + k2 in (0, n1 + n2):
        assert result.p_value == 1.0
        return
    z, p = proportions_ztest([k2, k1], [n2, n1])
    assert result.z == pytest.approx(z, rel=1e-9, abs=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-7, abs=1e-12)


def test_median_from_counts() -> None:
    assert median_from_counts({1: 1, 2: 1, 3: 1}) == 2
    assert median_from_counts({1: 2, 4: 2}) == 2.5
    assert median_from_counts({5: 3, 1: 0}) == 5
    assert median_from_counts({}) is None
    assert median_from_counts({1: 0}) is None


@given(st.lists(st.integers(1, 5), min_size=1, max_size=60))
def test_median_agrees_with_sorting(values: list[int]) -> None:
    counts: dict[float, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    ordered = sorted(values)
    middle = len(ordered) // 2
    expected = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    assert median_from_counts(counts) == expected


def test_rounding_and_threshold() -> None:
    assert [round_to(n) for n in (0, 2, 3, 7, 8, 12, 13)] == [0, 0, 5, 5, 10, 10, 15]
    assert check_threshold(3) == 3
    with pytest.raises(ValueError):
        check_threshold(2)


def test_headline_and_change_sentences() -> None:
    sentence = headline(
        population="secondary pupils",
        label="yes to “Bullied in the last 12 months”",
        part=Shown(210),
        whole=Shown(1000),
    )
    assert sentence == (
        "21% of secondary pupils who answered said yes to “Bullied in the last 12 months” "
        "(95% CI 19% to 24%; 210 of 1,000)."
    )
    assert headline(population="p", label="x", part=Shown(None), whole=Shown(10)) is None
    test = two_proportion_test(280, 1000, 210, 1000)
    assert change_sentence("Bullied", 0.28, 0.21, test) == (
        "Bullied: down from 28% to 21% (a statistically significant change, p = 0.000)."
    )
    assert "not a statistically significant" in change_sentence(
        "Bullied", 0.28, 0.21, two_proportion_test(28, 100, 21, 100)
    )
    assert math.isclose(0.21, 210 / 1000)
