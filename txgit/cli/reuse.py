"""`txgit ops`: the experiment graph's recorded operations, what was reused and the time it saved."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from txgit.cli.app import app, console
from txgit.workspace import Workspace


def _out(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@app.command()
def ops(
    max_count: int = typer.Option(20, "-n", "--max-count", help="Show the newest N operations (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document: every operation and the totals."),
) -> None:
    """Cells recorded as operations (every branch, tag and remote-tracking ref): which can be reused, which
    were reused instead of run, and the time that saved."""
    from txgit.reuse import OperationIndex

    index = OperationIndex(Workspace.open(Path.cwd()))
    index.refresh()
    recs = sorted(index.all, key=lambda r: r.time, reverse=True)
    reused = [r for r in recs if r.reused_from]
    saved = sum(r.saved_seconds for r in reused)
    if as_json:
        doc = {"operations": [{"commit": r.commit, "summary": r.summary, "key": r.op.key, "seconds": r.seconds,
                               "run_seconds": r.op.seconds, "reused_from": r.reused_from,
                               "saved_seconds": round(r.saved_seconds, 6), "reusable": r.op.reusable,
                               "effects": r.op.effects, "inputs": sorted(r.op.inputs), "files": r.op.files,
                               "process": r.op.env, "outputs": r.op.outputs} for r in recs],
               "reused": len(reused), "saved_seconds": round(saved, 6)}
        _out(json.dumps(doc, indent=1))
        return
    _out(f"{len(recs)} operations recorded, {len(reused)} reused instead of run, {saved:.1f} s saved")
    for r in recs[: max_count or None]:
        if r.reused_from:
            how = f"reused {r.reused_from[:8]}, saved {r.saved_seconds:.2f} s"
        elif r.op.reusable:
            how = f"ran {r.seconds:.2f} s, reusable"
        else:
            how = f"ran {r.seconds:.2f} s, not reusable: {r.op.effects[0] if r.op.effects else 'no key'}"
        _out(f"{r.commit[:8]} {r.summary[:60]:<60}  {how}")
