"""Pure statistics for board reports: intervals, tests, medians and small-number suppression.

Everything here takes counts and returns figures; nothing reads a database or an
answer. Suppression works on *cells* (named counts) linked by *lines* (a total
and the parts that add up to it), so one routine protects a one-way table, a
cross-tabulation with its margins, and nested groupings (school years inside key
stages) alike.

Rules (issue 7):
- primary: a count from 1 to threshold-1 is suppressed (zero is shown);
- secondary: in every line, a suppressed member must not be the only unknown, and
  when the total is shown the suppressed parts together must reach the threshold;
  beyond single lines, no suppressed cell may be determined by the lines taken
  together (checked exactly by linear algebra over the rationals);
- optional rounding of shown counts to the nearest 5; every percentage and
  interval shown is then derived from the shown (rounded) figures only.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

Z_95 = 1.959963984540054  # the 97.5th percentile of the standard normal
MIN_THRESHOLD = 3
DEFAULT_THRESHOLD = 5
ROUND_TO = 5


# ---------------------------------------------------------------- intervals and tests


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval for `successes` out of `trials`; None when trials is 0."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError("successes must be between 0 and trials")
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = (z / (1 + z2 / trials)) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class ProportionTest:
    difference: float  # p2 - p1, as a proportion
    z: float
    p_value: float

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> ProportionTest | None:
    """Pooled two-sided z-test of p1 = k1/n1 against p2 = k2/n2; None when undefined."""
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return ProportionTest(p2 - p1, 0.0, 1.0)
    z = (p2 - p1) / math.sqrt(variance)
    return ProportionTest(p2 - p1, z, math.erfc(abs(z) / math.sqrt(2)))


def median_from_counts(counts: Mapping[float, int]) -> float | None:
    """The median of a distribution given as value -> count (mean of the middle two)."""
    items = sorted((value, count) for value, count in counts.items() if count > 0)
    total = sum(count for _, count in items)
    if total == 0:
        return None

    def nth(position: int) -> float:  # 0-based position in the sorted values
        seen = 0
        for value, count in items:
            seen += count
            if position < seen:
                return value
        raise AssertionError("position beyond the distribution")

    if total % 2:
        return float(nth(total // 2))
    return (nth(total // 2 - 1) + nth(total // 2)) / 2


def round_to(count: int, base: int = ROUND_TO) -> int:
    """`count` to the nearest multiple of `base`, halves upwards (NHS Digital style)."""
    return math.floor(count / base + 0.5) * base


def check_threshold(threshold: int) -> int:
    if threshold < MIN_THRESHOLD:
        raise ValueError(f"the suppression threshold must be at least {MIN_THRESHOLD}")
    return threshold


# ---------------------------------------------------------------- suppression


@dataclass(frozen=True)
class Line(Generic[K]):
    """`total` is the sum of `parts` (every one a cell)."""

    total: K
    parts: tuple[K, ...]

    @property
    def members(self) -> tuple[K, ...]:
        return (self.total, *self.parts)


@dataclass(frozen=True)
class Shown:
    """A count as it may be published: `value` is None when suppressed."""

    value: int | None
    rounded: bool = False

    @property
    def suppressed(self) -> bool:
        return self.value is None


def primary_suppressed(cells: Mapping[K, int], threshold: int) -> set[K]:
    return {key for key, count in cells.items() if 0 < count < threshold}


def protect(
    cells: Mapping[K, int],
    lines: Sequence[Line[K]],
    threshold: int,
    *,
    hidden: Iterable[K] = (),
    fixed: Mapping[K, bool] | None = None,
) -> set[K]:
    """The cells to suppress so that no suppressed count can be recovered.

    `hidden`: cells never shown (e.g. the rows of a group too small to offer);
    they count as suppressed. `fixed`: cells whose fate is already decided
    elsewhere (True: suppressed, False: shown); they are never changed, so
    several views can share the figures of one overall table.
    """
    check_threshold(threshold)
    fixed = dict(fixed or {})
    suppressed = {key for key in primary_suppressed(cells, threshold) if key not in fixed}
    suppressed |= set(hidden)
    suppressed |= {key for key, hide in fixed.items() if hide}
    suppressed -= {key for key, hide in fixed.items() if not hide}
    by_cell: dict[K, list[Line[K]]] = {}
    for line in lines:
        for member in line.members:
            by_cell.setdefault(member, []).append(line)

    def widen(line: Line[K]) -> bool:
        """Suppress one more member of `line`, costing as little as possible.

        Prefers members that sit in fewer lines (so less suppression follows on),
        then smaller counts. When the hidden parts add up to less than the
        threshold, a zero part would not help, so it is taken only as a last resort.
        """
        candidates = [m for m in line.members if m not in suppressed and m not in fixed]
        if not candidates:
            return False
        short = (
            line.total not in suppressed
            and sum(cells[p] for p in line.parts if p in suppressed) < threshold
        )
        useful = [m for m in candidates if not (short and m != line.total and cells[m] == 0)]
        pool = useful or candidates
        choice = min(pool, key=lambda m: (len(by_cell.get(m, ())), cells[m] == 0, cells[m], str(m)))
        suppressed.add(choice)
        return True

    def violated(line: Line[K]) -> bool:
        unknown = [member for member in line.members if member in suppressed]
        if not unknown:
            return False
        if len(unknown) == 1:
            return True
        if line.total in suppressed:
            return False
        return sum(cells[part] for part in unknown) < threshold

    for _ in range(10 * (len(cells) + 1)):
        changed = False
        for line in lines:
            while violated(line) and widen(line):
                changed = True
        if changed:
            continue
        determined = determinable(cells, lines, suppressed)
        for cell in sorted(determined, key=str):
            if cell not in suppressed:
                continue
            if any(widen(line) for line in by_cell.get(cell, [])):
                changed = True
                break
        if not changed:
            return suppressed
    return suppressed  # pragma: no cover - every round suppresses one more cell


def determinable(cells: Mapping[K, int], lines: Sequence[Line[K]], unknown: set[K]) -> set[K]:
    """The `unknown` cells whose values follow from the lines and the known cells.

    Each line is an equation total - sum(parts) = 0; known cells move to the
    right-hand side. An unknown is determined exactly when its unit vector lies
    in the row space of the equations' unknown coefficients, i.e. when some row
    of the reduced row echelon form has a single non-zero entry there.
    """
    order = sorted((cell for cell in unknown if cell in cells), key=str)
    index = {cell: position for position, cell in enumerate(order)}
    rows: list[dict[int, Fraction]] = []
    for line in lines:
        row: dict[int, Fraction] = {}
        for member, sign in ((line.total, 1), *((part, -1) for part in line.parts)):
            if member in index:
                column = index[member]
                row[column] = row.get(column, Fraction(0)) + sign
        row = {column: value for column, value in row.items() if value != 0}
        if row:
            rows.append(row)
    pivots: list[tuple[int, dict[int, Fraction]]] = []
    for row in rows:
        for pivot_column, pivot_row in pivots:
            factor = row.get(pivot_column)
            if factor:
                for column, value in pivot_row.items():
                    updated = row.get(column, Fraction(0)) - factor * value
                    if updated:
                        row[column] = updated
                    else:
                        row.pop(column, None)
        if not row:
            continue
        column = min(row)
        scale = row[column]
        row = {c: v / scale for c, v in row.items()}
        for position, (other_column, other_row) in enumerate(pivots):
            factor = other_row.get(column)
            if factor:
                for c, v in row.items():
                    updated = other_row.get(c, Fraction(0)) - factor * v
                    if updated:
                        other_row[c] = updated
                    else:
                        other_row.pop(c, None)
                pivots[position] = (other_column, other_row)
        pivots.append((column, row))
    return {order[column] for column, row in pivots if len(row) == 1}


def publish(
    cells: Mapping[K, int],
    suppressed: set[K],
    *,
    rounding: bool = False,
) -> dict[K, Shown]:
    """The figures as shown: suppressed cells hidden, the rest rounded to 5 when asked."""
    shown: dict[K, Shown] = {}
    for key, count in cells.items():
        if key in suppressed:
            shown[key] = Shown(None)
        elif rounding:
            shown[key] = Shown(round_to(count), rounded=True)
        else:
            shown[key] = Shown(count)
    return shown


def percentage(part: Shown, whole: Shown) -> float | None:
    """part/whole from shown figures only; None if either is hidden or whole is 0."""
    if part.value is None or whole.value is None or whole.value <= 0:
        return None
    return min(1.0, part.value / whole.value)


def interval(part: Shown, whole: Shown) -> tuple[float, float] | None:
    """The Wilson interval from shown figures only (None if either is hidden)."""
    if part.value is None or whole.value is None or whole.value <= 0:
        return None
    return wilson_interval(min(part.value, whole.value), whole.value)


# ---------------------------------------------------------------- words


def format_percent(proportion: float) -> str:
    return f"{round(proportion * 100):.0f}%"


def headline(
    *,
    population: str,
    label: str,
    part: Shown,
    whole: Shown,
    verb: str = "said",
) -> str | None:
    """A plain-English sentence with the 95% interval, or None when a figure is suppressed.

    e.g. "21% of secondary pupils who answered said yes to "Bullied at or near
    school in the last 12 months" (95% CI 18% to 24%; 420 of 2,000)."
    """
    share = percentage(part, whole)
    bounds = interval(part, whole)
    if share is None or bounds is None or part.value is None or whole.value is None:
        return None
    low, high = bounds
    approx = "about " if part.rounded else ""
    return (
        f"{format_percent(share)} of {population} who answered {verb} {label} "
        f"(95% CI {format_percent(low)} to {format_percent(high)}; "
        f"{approx}{part.value:,} of {whole.value:,})."
    )


def change_sentence(
    label: str, before: float, after: float, test: ProportionTest | None, alpha: float = 0.05
) -> str:
    """ "Down from 28% to 21% (a significant change)" style wording."""
    if round(before * 100) == round(after * 100):
        direction = f"unchanged at {format_percent(after)}"
    elif after < before:
        direction = f"down from {format_percent(before)} to {format_percent(after)}"
    else:
        direction = f"up from {format_percent(before)} to {format_percent(after)}"
    if test is None:
        verdict = "no test possible"
    elif test.significant(alpha):
        verdict = "a statistically significant change"
    else:
        verdict = "not a statistically significant change"
    return (
        f"{label}: {direction} ({verdict}, p = {test.p_value:.3f})."
        if test
        else (f"{label}: {direction} ({verdict}).")
    )
