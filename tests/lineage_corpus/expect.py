"""The hand-labelled lineage corpus: scripts with ``# expect model=… features=… label=… sources=…`` lines.

The labels were written by reading each script (which source columns reach the
model as features, which as the label), not from txgit's output. Scoring is
per (model, role, column): precision = right / reported, recall = right / expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
LINE = re.compile(r"^# expect (.*)$", re.M)


@dataclass
class Expected:
    model: str
    features: set[str]
    label: set[str]
    sources: set[str]


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, other: "Score") -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.misses += other.misses

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def scripts() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if p.name not in ("expect.py", "make_data.py", "__init__.py"))


def expectations(path: Path) -> list[Expected]:
    out = []
    for m in LINE.finditer(path.read_text()):
        kv = dict(part.split("=", 1) for part in m.group(1).split())
        split = lambda s: set(filter(None, s.split(",")))  # noqa: E731
        out.append(Expected(kv["model"], split(kv.get("features", "")), split(kv.get("label", "")),
                            split(kv.get("sources", ""))))
    return out


def score(report, expected: list[Expected]) -> dict[str, Score]:
    """Scores by role: 'features', 'label', 'all'. A model missing from the report misses all its columns."""
    out = {"features": Score(), "label": Score()}
    for e in expected:
        m = report.models.get(e.model)
        got_f = set(m.feature_columns) if m else set()
        got_l = set(m.label_columns) if m else set()
        for role, got, want in (("features", got_f, e.features), ("label", got_l, e.label)):
            s = out[role]
            s.tp += len(got & want)
            s.fp += len(got - want)
            s.fn += len(want - got)
            if got != want:
                s.misses.append(f"{e.model} {role}: extra {sorted(got - want)} missing {sorted(want - got)}")
    total = Score()
    total.add(out["features"])
    total.add(out["label"])
    out["all"] = total
    return out
