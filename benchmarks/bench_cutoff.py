"""Early cutoff (txgit.reuse.cutoff): what a cell pays for the check, and what it saves.

In-process, as the kernel extension drives a session (background commits on):
a chain of cells, each sleeping (the "expensive" part) and making a 16 MB
array from the previous one plus a small list. Runs, in one workspace: the
notebook; an unchanged re-run; cell 2 edited cosmetically (a print added);
edited again; cell 2 changed (a list it makes gets one more item, so every
later cell runs). Each run is done with early cutoff and, in another
workspace, without it (the check replaced by a no-op): the peer in the same run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import txgit.reuse.cutoff as cutoff_mod  # noqa: E402
from txgit import Workspace  # noqa: E402
from txgit.reuse import Reuser  # noqa: E402
from txgit.sessions.session import NamespaceSession  # noqa: E402


def notebook(cells: int, sleep: float, edit: str) -> list[str]:
    out = ["import time\nimport numpy as np",
           f"time.sleep({sleep})\nx0 = np.arange(2_000_000) * 2\nsmall0 = list(range(100)){edit}"]
    for i in range(1, cells):
        out.append(f"time.sleep({sleep})\nx{i} = x{i - 1} + 1\nsmall{i} = [v + 1 for v in small{i - 1}]")
    return out


def run(root: str, cells: list[str]) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    s = NamespaceSession(Workspace.open(root), namespace, kind="ipython")
    s.background = True
    r = Reuser(s)
    reused = waits = 0
    started = time.perf_counter()
    for code in cells:
        s.before_cell(code)
        got = r.prepare()
        waits += bool(r.last_cutoff is not None and r.last_cutoff.waited)
        if got is not None:
            r.apply(got)
            reused += 1
        else:
            exec(compile(code, "<cell>", "exec"), namespace)
        s.after_cell()
    s.flush()
    return {"wall_s": round(time.perf_counter() - started, 3), "reused": reused, "cells": len(cells),
            "cutoffs": r.stats.cutoffs, "waits": waits,
            "check_ms_total": round(r.stats.cutoff_seconds * 1e3, 2),
            "check_ms_per_cell": round(r.stats.cutoff_seconds * 1e3 / len(cells), 3)}


def main(quick: bool = False) -> dict:
    cells, sleep = (5, 0.15) if quick else (10, 0.3)
    variants = [("first run", ""), ("re-run, unchanged", ""), ("cell 2 edited (print added)", "\nprint('x')"),
                ("cell 2 edited again", "\nprint('y')"), ("cell 2 changed (every cell runs)", "\nsmall0.append(1)")]
    results: dict[str, Any] = {"cells": cells + 1, "sleep_s": sleep, "runs": {}}
    real = cutoff_mod.EarlyCutoff.settle
    cwd = os.getcwd()
    try:
        roots = {on: tempfile.mkdtemp(prefix=f"txgit-bench-cutoff-{'on' if on else 'off'}-") for on in (True, False)}
        for root in roots.values():
            Workspace.init(root)
        for label, edit in variants:
            row = {}
            for on in (True, False):  # the two configurations interleaved: load elsewhere hits both alike
                cutoff_mod.EarlyCutoff.settle = real if on else (lambda self, running=None: None)  # type: ignore
                os.chdir(roots[on])
                row["on" if on else "off"] = run(roots[on], notebook(cells, sleep, edit))
            results["runs"][label] = row
    finally:
        cutoff_mod.EarlyCutoff.settle = real  # type: ignore[method-assign]
        os.chdir(cwd)
    print(f"early cutoff: {cells + 1} cells, each sleeping {sleep} s and making a 16 MB array; background commits")
    print(f"{'run':34s} {'wall on':>8s} {'wall off':>8s} {'ratio':>6s} {'reused on/off':>14s} "
          f"{'check ms/cell':>13s} {'check ms total':>16s} {'waits':>5s}")
    for label, row in results["runs"].items():
        on, off = row["on"], row["off"]
        print(f"{label:34s} {on['wall_s']:8.2f} {off['wall_s']:8.2f} {off['wall_s'] / on['wall_s']:5.2f}x "
              f"{on['reused']:>6d}/{off['reused']:<7d} {on['check_ms_per_cell']:13.2f} "
              f"{on['check_ms_total']:16.2f} {on['waits']:5d}")
    return results


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
