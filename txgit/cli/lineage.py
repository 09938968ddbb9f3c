"""`txgit lineage`: which source files and columns became each model's features and label."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from txgit.cli.app import app, console
from txgit.errors import TxgitError


def _out(text: str = "") -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _columns(cols: list) -> str:
    by_source: dict[str, list[str]] = {}
    for c in cols:
        by_source.setdefault(c.source, []).append(c.column)
    return "; ".join(f"{src}: {', '.join(names)}" for src, names in sorted(by_source.items())) or "(none)"


@app.command()
def lineage(
    var: Optional[str] = typer.Argument(None, metavar="[VAR]", help="Only this model variable."),
    rev: str = typer.Option("HEAD", "--rev", help="The commit whose models to explain."),
    script: Optional[Path] = typer.Option(None, "--script", help="Analyse this plain script (no workspace; static)."),
    no_files: bool = typer.Option(False, "--no-files", help="Do not read the headers of the data files the code reads."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """For each trained model: its source files, feature columns, label column and the cells that shaped them."""
    from txgit.lineage import lineage_of_script, lineage_of_workspace, select
    from txgit.workspace import Workspace

    if script is not None:
        if rev != "HEAD":
            raise TxgitError("--script and --rev do not go together: a script has no history")
        report = lineage_of_script(script, use_files=not no_files)
    else:
        report = lineage_of_workspace(Workspace.open(Path.cwd()), rev, use_files=not no_files)
    models = select(report, var)
    if as_json:
        import json

        doc = report.to_dict()
        doc["models"] = {n: m.to_dict() for n, m in models.items()}
        _out(json.dumps(doc, indent=1))
        return
    if not models:
        _out("no trained models found")
    for name, m in models.items():
        _out(f"{name} ({m.type})" + (f", trained at {m.fit_at}" if m.fit_at else ""))
        _out(f"  sources:  {', '.join(m.sources) or '(unknown)'}")
        for role, listed, rests in (("features", m.features, m.features_rest), ("label", m.label, m.label_rest)):
            # columns the analysis can only describe ("columns 1..-2 of data.csv") stand alone when none is listed
            lines = ([_columns(listed)] if listed or not rests else []) + [f"+ {r}" if listed else r for r in rests]
            for i, line in enumerate(lines):
                _out(f"  {role + ':':<9} {line}" if i == 0 else f"            {line}")
        if m.cells:
            _out(f"  cells:    {', '.join(m.cells)}")
        if m.runtime is not None:
            rt = m.runtime
            if rt.agrees:
                _out(f"  run-time: confirmed by the fitted model ({rt.cell or rt.commit}, commit {rt.commit})")
            for note in rt.notes:
                _out(f"  run-time: {note}")
        for u in m.unknown:
            _out(f"  unknown:  {u}")
    if report.unknown and not var:
        _out(f"not followed ({len(report.unknown)}): " + "; ".join(report.unknown[:8])
             + (" …" if len(report.unknown) > 8 else ""))
