"""Lineage: which source files and columns became each model's features and label (Vamsa-style).

Static analysis of the code (a script, or a workspace's recorded cells) into an
IR (:mod:`txgit.lineage.ir`), interpreted with a knowledge base of library APIs
(``kb.json``, see :mod:`txgit.lineage.analysis`). Facts from outside the code
sharpen it: the header of a data file the code reads, and in a workspace the
real columns of every frame each commit recorded.

    from txgit.lineage import lineage_of_script, lineage_of_workspace
    report = lineage_of_script("train.py")
    report.models["model"].features   # [SourceColumn('titanic.csv', 'Age'), …]
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from txgit.errors import TxgitError, UnknownVariable
from txgit.lineage import ir
from txgit.lineage.analysis import (Data, Facts, Interpreter, KnowledgeBase, Model, Rest, SourceColumn)

__all__ = ["LineageReport", "ModelLineage", "SourceColumn", "KnowledgeBase", "lineage_of_source",
           "lineage_of_script", "lineage_of_workspace"]


@dataclass
class ModelLineage:
    """One trained model: where its features and label come from."""

    name: str
    type: str
    sources: list[str]
    features: list[SourceColumn]
    label: list[SourceColumn]
    features_rest: list[str] = field(default_factory=list)  # "all other columns of X except …" when not listed
    label_rest: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)  # the cells / lines that shaped X, y and the model
    fit_at: str | None = None
    unknown: list[str] = field(default_factory=list)  # what the analysis could not follow for this model

    @property
    def feature_columns(self) -> list[str]:
        return sorted({c.column for c in self.features})

    @property
    def label_columns(self) -> list[str]:
        return sorted({c.column for c in self.label})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "type": self.type, "sources": self.sources,
            "features": [{"source": c.source, "column": c.column} for c in self.features],
            "label": [{"source": c.source, "column": c.column} for c in self.label],
            "features_rest": self.features_rest, "label_rest": self.label_rest,
            "cells": self.cells, "fit_at": self.fit_at, "unknown": self.unknown,
        }


@dataclass
class LineageReport:
    """Every model the code trains, by variable name; what could not be followed; how long it took."""

    models: dict[str, ModelLineage]
    unknown: list[str]
    seconds: float
    mode: str  # "static", "static+files" or "workspace"
    rev: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "rev": self.rev, "seconds": round(self.seconds, 6),
                "models": {n: m.to_dict() for n, m in self.models.items()}, "unknown": self.unknown}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def _sort_key(c: str) -> tuple[int, str]:
    """Cell labels in run order: '[3]' and 'train.py:12' sort by their number."""
    tail = c.rsplit(":", 1)[-1].strip("[]")
    return (int(tail), c) if tail.isdigit() else (1 << 30, c)


def _model_lineage(name: str, m: Model) -> ModelLineage:
    feats = sorted(m.X.prov()) if m.X is not None else []
    label = sorted(m.y.prov()) if m.y is not None else []
    frest = [m.X.rest.describe()] if m.X is not None and m.X.rest else []
    lrest = [m.y.rest.describe()] if m.y is not None and m.y.rest else []
    sources = set()
    for d in (m.X, m.y):
        if d is not None:
            sources |= d.sources()
    unknown = list(m.notes)
    for d in (m.X, m.y):
        if d is not None:
            unknown += [n for n in d.notes if n not in unknown]
    if m.X is None:
        unknown.append("features: not traced to any source")
    for role, d in (("features", m.X), ("label", m.y)):
        if d is not None:
            bad = [c for c, p in d.cols.items() if not p]
            if bad:
                unknown.append(f"{role}: origin unknown for {', '.join(bad[:5])}")
    cells = set(m.cells) | (m.X.cells if m.X else frozenset()) | (m.y.cells if m.y else frozenset())
    return ModelLineage(name, m.type, sorted(s for s in sources if s), [c for c in feats if c.column != "*"],
                        [c for c in label if c.column != "*"], frest, lrest, sorted(cells, key=_sort_key),
                        m.fit_at, unknown)


def _report(interp: Interpreter, mode: str, started: float, rev: str | None = None) -> LineageReport:
    models: dict[str, ModelLineage] = {}
    bound: set[int] = set()
    for name, v in interp.env.items():
        if isinstance(v, Model) and (v.X is not None or v.y is not None) and not v.transformer:
            models[name] = _model_lineage(name, v)
            bound.add(id(v))
    # fits whose model no variable holds (cross_val_score(RandomForest(), X, y)): named by place
    for fit in interp.fits:
        m = fit.model
        if id(m) not in bound and not m.transformer and not any(
                ml.fit_at == fit.where and ml.type == m.type for ml in models.values()):
            models[f"<{m.type} at {fit.where}>"] = _model_lineage(f"<{m.type} at {fit.where}>", m)
    return LineageReport(models, list(interp.unknown), time.perf_counter() - started, mode, rev)


def lineage_of_source(source: str, *, filename: str = "<script>", data_dir: str | Path | None = None,
                      kb: KnowledgeBase | None = None) -> LineageReport:
    """Lineage of one piece of code. ``data_dir``: where the files it reads are (their headers help)."""
    started = time.perf_counter()
    try:
        stmts = ir.parse(source, filename)
    except SyntaxError as e:
        raise TxgitError(f"{filename}:{e.lineno}: syntax error: {e.msg}") from e
    interp = Interpreter(kb, Facts(None if data_dir is None else Path(data_dir)))
    interp.run(stmts, Path(filename).name, per_statement=True)
    return _report(interp, "static" if data_dir is None else "static+files", started)


def lineage_of_script(path: str | Path, *, use_files: bool = True, kb: KnowledgeBase | None = None) -> LineageReport:
    """Lineage of a plain script, static only; ``use_files``: read the headers of data files next to it."""
    path = Path(path)
    try:
        source = path.read_text()
    except OSError as e:
        raise TxgitError(f"cannot read {path}: {e.strerror or e}") from e
    return lineage_of_source(source, filename=str(path), data_dir=path.resolve().parent if use_files else None, kb=kb)


def lineage_of_workspace(ws: Any, rev: str = "HEAD", *, use_files: bool = True,
                         kb: KnowledgeBase | None = None) -> LineageReport:
    """Lineage of the models in ``rev`` of a workspace, from the code its history recorded.

    The cells recorded by each commit on the first-parent path from the root to
    ``rev`` are analysed in order; after each commit's cells, every frame the
    commit recorded replaces the analysis's idea of its columns (so
    ``df.drop(columns=[…])`` or ``iloc`` resolve to real column names).
    """
    started = time.perf_counter()
    history = ws.history
    target = history.resolve(rev)
    chain = []
    c = target
    while True:
        chain.append(c)
        if not c.parents:
            break
        c = c.parents[0]
    chain.reverse()
    interp = Interpreter(kb, Facts(Path(ws.root) if use_files else None))
    for commit in chain:
        raw = history.read_file(commit, "code/cells.json")
        if raw is None:
            continue
        try:
            cells = json.loads(raw)
        except ValueError:
            interp.unknown.append(f"{str(commit.id)[:8]}: unreadable code/cells.json")
            continue
        for cell in cells:
            label = cell.get("label") or (f"[{cell['execution_count']}]" if cell.get("execution_count") is not None
                                          else str(commit.id)[:8])
            try:
                stmts = ir.parse(cell.get("code", ""), label)
            except SyntaxError:
                interp.unknown.append(f"{label}: not Python that can be parsed")
                continue
            # a script block's lines count from its own first line
            base_line = int(label.rsplit(":", 1)[1]) - 1 if ":" in label and label.rsplit(":", 1)[1].isdigit() else 0
            if base_line:
                _shift(stmts, base_line)
            if base_line:
                interp.run(stmts, label.rsplit(":", 1)[0], per_statement=True)
            else:
                interp.run(stmts, label)
        state = history.read_state(commit, groups=False)
        for name, rec in state.variables.items():
            cols = rec.details.get("columns") if rec.details else None
            if cols is not None:
                interp.sharpen(name, [str(c) for c in cols], rec.details.get("dtypes"))
            elif rec.details and rec.details.get("name") is not None and rec.type.endswith("Series"):
                interp.sharpen(name, [], series_name=str(rec.details["name"]))
    report = _report(interp, "workspace", started, str(target.id))
    return report


def _shift(stmts: list[ir.Stmt], by: int) -> None:
    for s in stmts:
        s.line += by
        for attr in ("body",):
            if hasattr(s, attr):
                _shift(getattr(s, attr), by)
        if isinstance(s, ir.Branch):
            for b in s.bodies:
                _shift(b, by)


def select(report: LineageReport, var: str | None) -> dict[str, ModelLineage]:
    """The models of ``report`` (one, by name, when ``var`` is given)."""
    if var is None:
        return report.models
    if var not in report.models:
        have = ", ".join(sorted(report.models)) or "none"
        raise UnknownVariable(f"no trained model named {var!r} (models: {have})")
    return {var: report.models[var]}
