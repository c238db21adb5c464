"""Measure the detector on a labelled set (`make eval`).

python -m moderation.evaluate [--devset FILE] [--stage rules|semantic|both|all] [--quiet]

Prints recall, precision and F1 overall and per category, recall of `urgent` (a disclosure
labelled urgent counts as caught only when it is screened urgent), and the false positives and
false negatives, for stage 1 alone, stage 2 alone (when installed) and both together.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moderation.detector import Detector, load_semantic_stage
from moderation.rules import load_rules
from moderation.screen import ScreenContext, Screening

DEVSET = Path(__file__).resolve().parent.parent / "tests" / "data" / "devset.jsonl"


@dataclass(frozen=True)
class Labelled:
    id: str
    text: str
    flagged: bool
    severity: str | None
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Report:
    stage: str
    overall: Counts
    urgent_caught: int
    urgent_total: int
    per_category: dict[str, Counts]
    false_positives: list[tuple[Labelled, Screening]] = field(default_factory=list)
    false_negatives: list[tuple[Labelled, Screening]] = field(default_factory=list)
    urgent_missed: list[tuple[Labelled, Screening]] = field(default_factory=list)

    @property
    def urgent_recall(self) -> float:
        return self.urgent_caught / self.urgent_total if self.urgent_total else 1.0


def load_devset(path: Path = DEVSET) -> list[Labelled]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        items.append(
            Labelled(
                id=str(row["id"]),
                text=str(row["text"]),
                flagged=bool(row["flagged"]),
                severity=row.get("severity"),
                categories=tuple(row.get("categories") or ()),
            )
        )
    return items


def score(stage: str, items: Sequence[Labelled], results: Sequence[Screening]) -> Report:
    tp = fp = fn = 0
    urgent_caught = urgent_total = 0
    per: dict[str, list[int]] = {c: [0, 0, 0] for c in load_rules().categories}
    report = Report(stage, Counts(), 0, 0, {})
    for item, result in zip(items, results, strict=True):
        if item.flagged and result.flagged:
            tp += 1
        elif result.flagged:
            fp += 1
            report.false_positives.append((item, result))
        elif item.flagged:
            fn += 1
            report.false_negatives.append((item, result))
        if item.severity == "urgent":
            urgent_total += 1
            if result.flagged and result.severity == "urgent":
                urgent_caught += 1
            else:
                report.urgent_missed.append((item, result))
        predicted = set(result.categories) if result.flagged else set()
        for category in per:
            labelled = category in item.categories
            if labelled and category in predicted:
                per[category][0] += 1
            elif category in predicted:
                per[category][1] += 1
            elif labelled:
                per[category][2] += 1
    report.overall = Counts(tp, fp, fn)
    report.urgent_caught, report.urgent_total = urgent_caught, urgent_total
    report.per_category = {c: Counts(*v) for c, v in per.items()}
    return report


def evaluate(detector: Detector, items: Sequence[Labelled], stage: str) -> Report:
    results = detector.screen_many([(item.text, ScreenContext()) for item in items])
    return score(stage, items, results)


def format_report(report: Report, *, lists: bool = True) -> str:
    o = report.overall
    lines = [
        f"== {report.stage}: {o.tp + o.fn} disclosures, {o.tp} caught; {o.fp} false alarms",
        f"   recall {o.recall:.3f}  precision {o.precision:.3f}  F1 {o.f1:.3f}  "
        f"urgent recall {report.urgent_recall:.3f} ({report.urgent_caught}/{report.urgent_total})",
        f"   {'category':<24}{'n':>4}{'recall':>8}{'precision':>11}{'F1':>7}",
    ]
    for category, counts in report.per_category.items():
        n = counts.tp + counts.fn
        lines.append(
            f"   {category:<24}{n:>4}{counts.recall:>8.3f}{counts.precision:>11.3f}"
            f"{counts.f1:>7.3f}"
        )
    if lists:
        for title, rows in (
            ("false positives", report.false_positives),
            ("false negatives", report.false_negatives),
            ("urgent not screened urgent", report.urgent_missed),
        ):
            lines.append(f"   -- {title} ({len(rows)})")
            for item, result in rows:
                why = ", ".join(f"{e.rule}:{e.matched!r}" for e in result.evidence)
                got = f"{result.severity} {'/'.join(result.categories)}" if result.flagged else "-"
                lines.append(f"   {item.id} [{got}] {item.text!r} {why}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moderation.evaluate", description=__doc__)
    parser.add_argument("--devset", type=Path, default=DEVSET)
    parser.add_argument("--stage", choices=("rules", "semantic", "both", "all"), default="all")
    parser.add_argument("--quiet", action="store_true", help="figures only, no lists")
    args = parser.parse_args(argv)
    items = load_devset(args.devset)
    print(f"{args.devset}: {len(items)} messages, {sum(i.flagged for i in items)} disclosures")
    semantic = load_semantic_stage() if args.stage != "rules" else None
    runs: list[tuple[str, Detector]] = []
    if args.stage in ("rules", "all"):
        runs.append(("stage 1 (rules)", Detector(None)))
    if semantic is None and args.stage != "rules":
        print("stage 2 (semantic) is not installed: pip install -e '.[semantic]'")
    elif semantic is not None:
        if args.stage in ("semantic", "all"):
            runs.append(("stage 2 (semantic)", Detector(semantic, rules=False)))
        if args.stage in ("both", "all"):
            runs.append(("stages 1+2", Detector(semantic)))
    for name, detector in runs:
        print(format_report(evaluate(detector, items, name), lists=not args.quiet))
    return 0


if __name__ == "__main__":
    sys.exit(main())
