"""A response's report group as one integer (pure): its answers to the grouping questions.

A board report counts every answer by the respondent's answers to the survey's
demographic questions (the cube of `surveys.report_data`). Joining a million
answers to their respondents' demographics at report time costs more than the
report may take, so each response, answer and choice row carries its *report
group* (storage: `report_group`, migration 0010), kept up to date at write time,
and the report counts by it directly.

The code is mixed-radix: demographic question `d` (in survey order) contributes
`position * stride_d`, where `position` is 1 + the index of the chosen value
among the question's choices, or 0 when none was given (skipped, prefer not to
say, not asked, removed), and `stride_d` is the product of (choices + 1) of the
questions before it. A value that is not one of the choices, or several chosen
values, has no code (None): the report then counts that campaign the slow way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from surveys.model import Survey

GroupKey = tuple[str | None, ...]


@dataclass(frozen=True)
class GroupCoding:
    dimensions: tuple[str, ...]  # grouping question ids, in survey order
    values: tuple[tuple[str, ...], ...]  # each one's choice values, in order

    @classmethod
    def of(cls, survey: Survey) -> GroupCoding:
        grouping = [q for q in survey.questions if q.dimension is not None]
        values = tuple(tuple(choice.value for choice in q.choices) for q in grouping)
        return cls(tuple(q.id for q in grouping), values)

    @property
    def usable(self) -> bool:
        """Codes decode to distinct groups only when no question repeats a value."""
        return all(len(set(values)) == len(values) for values in self.values)

    def encode(self, chosen: Mapping[str, Sequence[str]]) -> int | None:
        """The code for the chosen values of the grouping questions (missing: not given)."""
        code, stride = 0, 1
        for question, values in zip(self.dimensions, self.values, strict=True):
            picked = chosen.get(question, ())
            if len(picked) > 1:
                return None
            if picked:
                try:
                    code += (values.index(picked[0]) + 1) * stride
                except ValueError:
                    return None
            stride *= len(values) + 1
        return code

    def decode(self, code: int) -> GroupKey | None:
        """The group key (values, None where not given) of a code; None if it is no code."""
        if code < 0:
            return None
        key: list[str | None] = []
        for values in self.values:
            code, position = divmod(code, len(values) + 1)
            key.append(values[position - 1] if position else None)
        return tuple(key) if code == 0 else None
