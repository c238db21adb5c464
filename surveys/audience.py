"""Who a campaign is for, and whether a subscriber is in it. Pure: values in, values out.

An audience restricts up to five dimensions (key stages, school years, schools, areas,
channels); an empty dimension means everyone. A subscriber whose value for a restricted
dimension is unknown (never answered, or preferred not to say) is left out: an
invitation a young person was not meant to get is a message they did not ask for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from surveys.demographics import SCHOOL_YEARS

KEY_STAGES: tuple[str, ...] = ("KS2", "KS3", "KS4", "KS5")
CHANNELS: tuple[str, ...] = ("telegram", "web")
_YEAR_NUMBERS = frozenset(year.number for year in SCHOOL_YEARS)


class AudienceError(ValueError):
    """An audience that names something that does not exist (message is for a person)."""


@dataclass(frozen=True)
class Profile:
    """What is known of one subscriber, from their own answers (None: not known)."""

    channel: str
    key_stage: str | None = None
    year: int | None = None
    school: str | None = None
    area: str | None = None


@dataclass(frozen=True)
class Audience:
    key_stages: frozenset[str] = field(default_factory=frozenset)
    years: frozenset[int] = field(default_factory=frozenset)
    schools: frozenset[str] = field(default_factory=frozenset)
    areas: frozenset[str] = field(default_factory=frozenset)
    channels: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_everyone(self) -> bool:
        return not (self.key_stages or self.years or self.schools or self.areas or self.channels)

    def includes(self, profile: Profile) -> bool:
        return (
            _allows(self.channels, profile.channel)
            and _allows(self.key_stages, profile.key_stage)
            and _allows(self.years, profile.year)
            and _allows(self.schools, profile.school)
            and _allows(self.areas, profile.area)
        )

    def to_json(self) -> str:
        data = {
            name: sorted(values)
            for name, values in (
                ("key_stages", self.key_stages),
                ("years", self.years),
                ("schools", self.schools),
                ("areas", self.areas),
                ("channels", self.channels),
            )
            if values
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Audience:
        """Parse what `to_json` wrote (or a person typed); raises AudienceError."""
        try:
            data = json.loads(text or "{}")
        except ValueError as error:
            raise AudienceError(f"audience is not JSON: {error}") from error
        if not isinstance(data, dict):
            raise AudienceError("audience must be a JSON object")
        unknown = set(data) - {"key_stages", "years", "schools", "areas", "channels"}
        if unknown:
            raise AudienceError(f"unknown audience field(s): {', '.join(sorted(unknown))}")
        return cls.build(
            key_stages=_strings(data, "key_stages"),
            years=_years(data.get("years", [])),
            schools=_strings(data, "schools"),
            areas=_strings(data, "areas"),
            channels=_strings(data, "channels"),
        )

    @classmethod
    def build(
        cls,
        *,
        key_stages: list[str] | tuple[str, ...] = (),
        years: list[int] | tuple[int, ...] = (),
        schools: list[str] | tuple[str, ...] = (),
        areas: list[str] | tuple[str, ...] = (),
        channels: list[str] | tuple[str, ...] = (),
    ) -> Audience:
        """An audience from plain lists, checked; raises AudienceError."""
        stages = {stage.strip().upper() for stage in key_stages if stage.strip()}
        bad = stages - set(KEY_STAGES)
        if bad:
            raise AudienceError(
                f"unknown key stage(s): {', '.join(sorted(bad))} (known: {', '.join(KEY_STAGES)})"
            )
        bad_years = set(years) - _YEAR_NUMBERS
        if bad_years:
            raise AudienceError(
                f"unknown school year(s): {', '.join(map(str, sorted(bad_years)))} (3 to 13)"
            )
        names = {channel.strip().lower() for channel in channels if channel.strip()}
        bad = names - set(CHANNELS)
        if bad:
            raise AudienceError(
                f"unknown channel(s): {', '.join(sorted(bad))} (known: {', '.join(CHANNELS)})"
            )
        return cls(
            key_stages=frozenset(stages),
            years=frozenset(years),
            schools=frozenset(s.strip() for s in schools if s.strip()),
            areas=frozenset(a.strip() for a in areas if a.strip()),
            channels=frozenset(names),
        )

    def describe(self) -> str:
        """Plain words for a facilitator: "Everyone" or "KS3, KS4 · Telegram"."""
        if self.is_everyone:
            return "Everyone"
        parts = []
        if self.key_stages:
            parts.append(", ".join(sorted(self.key_stages)))
        if self.years:
            parts.append(", ".join(f"Year {year}" for year in sorted(self.years)))
        if self.schools:
            parts.append(", ".join(sorted(self.schools)))
        if self.areas:
            parts.append(", ".join(sorted(self.areas)))
        if self.channels:
            parts.append(", ".join(channel.capitalize() for channel in sorted(self.channels)))
        return " · ".join(parts)


def _allows(allowed: frozenset, value: object) -> bool:
    return not allowed or (value is not None and value in allowed)


def _strings(data: dict, name: str) -> list[str]:
    values = data.get(name, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AudienceError(f"audience {name} must be a list of text")
    return values


def _years(values: object) -> list[int]:
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise AudienceError("audience years must be a list of whole numbers")
    return values
