"""The disclosure detector: stage 1 (rules) and, when installed, stage 2 (meaning).

Flag when either stage fires; the severity is the higher of the two; the categories are the
union; stage-2 evidence names its nearest example (`semantic:<example id>`). Stage 2 lives in
`moderation.semantic` and needs the `[semantic]` extra; without it the detector runs on the
rules alone. Pure apart from loading stage 2's model once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from moderation.rules import RANK_SEVERITY, SEVERITY_RANK
from moderation.screen import (
    NOT_FLAGGED,
    Evidence,
    ScreenContext,
    Screening,
    context_severity,
    screen,
)

log = logging.getLogger("besafe.moderation")


class SemanticHitLike(Protocol):
    category: str
    severity: str
    similarity: float
    example_id: str
    start: int
    end: int


class SemanticStageLike(Protocol):
    def score_many(self, texts: Sequence[str]) -> Sequence[SemanticHitLike | None]: ...


def load_semantic_stage() -> SemanticStageLike | None:
    """Stage 2 when its module and model are installed, else None (rules only)."""
    try:
        from moderation.semantic import SemanticStage  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        return SemanticStage.load()
    except Exception:  # a broken model install must not stop the rules from running
        log.exception("semantic stage failed to load; screening with rules only")
        return None


class Detector:
    """`screen`/`screen_many` through stage 1 and an optional stage 2."""

    def __init__(self, semantic: SemanticStageLike | None = None, *, rules: bool = True) -> None:
        self.semantic = semantic
        self.rules = rules  # False only to measure stage 2 alone (moderation/evaluate.py)

    @classmethod
    def load(cls, with_semantic: bool | None = None) -> Detector:
        """None or True: stage 2 when available (True logs when it is not); False: rules."""
        if with_semantic is False:
            return cls(None)
        semantic = load_semantic_stage()
        if semantic is None and with_semantic:
            log.warning("semantic stage asked for but not available; screening with rules only")
        return cls(semantic)

    @property
    def stages(self) -> str:
        if self.semantic is None:
            return "rules"
        return "rules+semantic" if self.rules else "semantic"

    def screen(self, text: str, context: ScreenContext | None = None) -> Screening:
        return self.screen_many([(text, context or ScreenContext())])[0]

    def screen_many(self, items: Sequence[tuple[str, ScreenContext]]) -> list[Screening]:
        texts = [text for text, _ in items]
        first = [screen(text, context) if self.rules else NOT_FLAGGED for text, context in items]
        if self.semantic is None:
            return first
        hits = self._semantic_hits(texts)
        return [combine(one, hit, text) for one, hit, text in zip(first, hits, texts, strict=True)]

    def _semantic_hits(self, texts: Sequence[str]) -> list[Any]:
        assert self.semantic is not None
        todo = [i for i, text in enumerate(texts) if text and text.strip()]
        hits: list[Any] = [None] * len(texts)
        if not todo:
            return hits
        try:
            scored = list(self.semantic.score_many([texts[i] for i in todo]))
        except Exception:  # stage 2 failing must not lose stage 1's answer
            log.exception("semantic stage failed; using rules only", extra={"batch": len(todo)})
            return hits
        for i, hit in zip(todo, scored, strict=False):
            hits[i] = hit
        return hits


def combine(first: Screening, hit: SemanticHitLike | None, text: str) -> Screening:
    """Stage 1's screening joined with stage 2's hit (if any), after the context rules."""
    if hit is None or hit.severity not in SEVERITY_RANK:
        return first
    start = max(0, min(int(hit.start), len(text)))
    end = max(start, min(int(hit.end), len(text)))
    if end == start:
        start, end = 0, len(text)
    # the same context rules as for stage 1: negation, idioms, lessons, the past with support
    severity, why = context_severity(text, start, end, hit.category, hit.severity)
    if severity is None:
        return first
    evidence = Evidence(
        category=hit.category,
        pattern=f"semantic:{hit.example_id}",
        start=start,
        end=end,
        matched=text[start:end],
        rule="semantic",
        severity=severity,
        note=f"similarity {hit.similarity:.2f}" + (f"; {why}" if why else ""),
    )
    best = max(SEVERITY_RANK.get(first.severity or "", 0), SEVERITY_RANK[severity])
    categories = first.categories + tuple(c for c in (hit.category,) if c not in first.categories)
    return Screening(True, RANK_SEVERITY[best], categories, (*first.evidence, evidence))
