"""Small-number suppression: an attacker with every shown figure must not recover a hidden count.

The attacker knows the table's shape, every line (row, column and grand totals)
and every shown figure (a rounded one only to within 2). For each suppressed
cell it solves two linear programmes (smallest and largest value consistent with
what is shown, counts never negative); the cell is recovered when only one whole
number fits. Hypothesis searches for tables where that happens.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from surveys.stats import Line, Shown, determinable, percentage, protect, publish

Cell = tuple[str, int, int]


def cross_table(counts: list[list[int]]) -> tuple[dict[Cell, int], list[Line[Cell]]]:
    """A table with its margins: ("c", r, c), ("row", r, 0), ("col", 0, c), ("all", 0, 0)."""
    cells: dict[Cell, int] = {}
    lines: list[Line[Cell]] = []
    rows, cols = len(counts), len(counts[0])
    for r in range(rows):
        for c in range(cols):
            cells[("c", r, c)] = counts[r][c]
        cells[("row", r, 0)] = sum(counts[r])
        lines.append(Line(("row", r, 0), tuple(("c", r, c) for c in range(cols))))
    for c in range(cols):
        cells[("col", 0, c)] = sum(counts[r][c] for r in range(rows))
        lines.append(Line(("col", 0, c), tuple(("c", r, c) for r in range(rows))))
    cells[("all", 0, 0)] = sum(map(sum, counts))
    lines.append(Line(("all", 0, 0), tuple(("row", r, 0) for r in range(rows))))
    lines.append(Line(("all", 0, 0), tuple(("col", 0, c) for c in range(cols))))
    return cells, lines


def recovered(
    shown: dict[Any, Shown],
    lines: list[Line[Any]],
    slack: int,
    limits: dict[Any, int] | None = None,
) -> dict[Any, int]:
    """Suppressed cells the attacker can pin to one whole number, with that number.

    `limits`: largest values the attacker knows hidden cells cannot exceed.
    """
    limits = limits or {}
    unknown = sorted((c for c, figure in shown.items() if figure.value is None), key=repr)
    rounded = sorted(
        (c for c, figure in shown.items() if figure.value is not None and slack), key=repr
    )
    variables = unknown + rounded
    if not unknown:
        return {}
    position = {cell: index for index, cell in enumerate(variables)}
    equations, constants = [], []
    for line in lines:
        row = [0.0] * len(variables)
        constant = 0.0
        for member, sign in ((line.total, 1), *((part, -1) for part in line.parts)):
            if member in position:
                row[position[member]] += sign
            else:
                constant -= sign * shown[member].value  # type: ignore[operator]
        if any(row):
            equations.append(row)
            constants.append(constant)
    bounds = [(0, limits.get(cell)) for cell in unknown] + [
        (max(0, shown[cell].value - slack), shown[cell].value + slack)  # type: ignore[operator]
        for cell in rounded
    ]
    found: dict[Any, int] = {}
    for cell in unknown:
        objective = [0.0] * len(variables)
        objective[position[cell]] = 1.0
        kwargs = {"A_eq": equations, "b_eq": constants} if equations else {}
        low = linprog(objective, bounds=bounds, method="highs", **kwargs)
        high = linprog([-v for v in objective], bounds=bounds, method="highs", **kwargs)
        if low.status != 0 or high.status != 0:
            continue  # unbounded: nothing learnt
        smallest, largest = math.ceil(low.fun - 1e-7), math.floor(-high.fun + 1e-7)
        if smallest == largest:
            found[cell] = smallest
    return found


tables = st.integers(1, 4).flatmap(
    lambda rows: st.integers(1, 4).flatmap(
        lambda cols: st.lists(
            st.lists(
                st.one_of(st.integers(0, 6), st.integers(0, 40)), min_size=cols, max_size=cols
            ),
            min_size=rows,
            max_size=rows,
        )
    )
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables, st.sampled_from([3, 5, 7, 10]), st.booleans())
def test_no_suppressed_count_can_be_recovered(
    counts: list[list[int]], threshold: int, rounding: bool
) -> None:
    cells, lines = cross_table(counts)
    hidden = protect(cells, lines, threshold)
    shown = publish(cells, hidden, rounding=rounding)
    # every small non-zero count is hidden
    for cell, count in cells.items():
        if 0 < count < threshold:
            assert shown[cell].value is None
    # what is shown is true (or rounded to 5)
    for cell, figure in shown.items():
        if figure.value is not None:
            assert abs(figure.value - cells[cell]) <= (2 if rounding else 0)
    # zeros are published anyway, so pinning a hidden zero gives nothing away
    found = recovered(shown, lines, 2 if rounding else 0)
    assert {cell: n for cell, n in found.items() if cells[cell] != 0} == {}


@settings(max_examples=200, deadline=None)
@given(tables, st.sampled_from([3, 5]))
def test_percentages_come_only_from_shown_figures(counts: list[list[int]], threshold: int) -> None:
    cells, lines = cross_table(counts)
    shown = publish(cells, protect(cells, lines, threshold))
    for r in range(len(counts)):
        for c in range(len(counts[0])):
            share = percentage(shown[("c", r, c)], shown[("row", r, 0)])
            if shown[("c", r, c)].value is None or shown[("row", r, 0)].value is None:
                assert share is None  # a percentage would give the hidden count away


def test_a_single_small_cell_takes_a_second_one_with_it() -> None:
    cells, lines = cross_table([[2, 30, 40], [20, 25, 35]])
    hidden = protect(cells, lines, 5)
    assert ("c", 0, 0) in hidden
    # its row and its column each lose a second cell, the smallest available
    assert ("c", 0, 1) in hidden and ("c", 1, 0) in hidden
    assert recovered(publish(cells, hidden), lines, 0) == {}


def test_two_small_cells_adding_below_the_threshold_take_a_third() -> None:
    cells, lines = cross_table([[1, 2, 30]])
    hidden = protect(cells, lines, 5)
    assert {("c", 0, 0), ("c", 0, 1), ("c", 0, 2)} <= hidden


def test_fixed_cells_are_left_alone_and_hidden_ones_count_as_suppressed() -> None:
    cells, lines = cross_table([[10, 10], [10, 10]])
    hidden = protect(cells, lines, 5, hidden=[("c", 0, 0)], fixed={("col", 0, 0): False})
    assert ("c", 0, 0) in hidden and ("col", 0, 0) not in hidden
    assert recovered(publish(cells, hidden), lines, 0) == {}


def test_determinable_finds_what_lines_give_away() -> None:
    cells = {"t": 10, "a": 3, "b": 7}
    line = [Line("t", ("a", "b"))]
    assert determinable(cells, line, {"a"}) == {"a"}
    assert determinable(cells, line, {"a", "b"}) == set()
    assert determinable(cells, line, {"a", "b", "t"}) == set()


def test_threshold_below_three_is_refused() -> None:
    with pytest.raises(ValueError):
        protect({"a": 1}, [], 2)


def test_the_attacker_recovers_cells_that_only_primary_suppression_hides() -> None:
    cells, lines = cross_table([[2, 30, 40], [20, 25, 35]])
    naive = {cell for cell, count in cells.items() if 0 < count < 5}
    assert recovered(publish(cells, naive), lines, 0) == {("c", 0, 0): 2}
