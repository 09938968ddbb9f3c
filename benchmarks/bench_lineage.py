"""Lineage (Vamsa-style) precision, recall and latency on the hand-labelled corpus in tests/lineage_corpus.

Three settings, on the same scripts and labels:

* ``static``: the code alone (Vamsa's setting): `df.drop(...)` or `iloc` on a file whose
  columns the code never names stays "all other columns of X", which scores as missed;
* ``static+files``: also reads the header of each data file the script reads;
* ``workspace``: the script run under ``txgit run`` (one commit per statement); lineage from
  the recorded code and the columns of the committed frames, with file headers *off*,
  so only run-time facts sharpen the analysis. Scripts whose libraries are missing are skipped.

Latency is per script, the analysis only (parsing, interpretation, reading history); median
and max over the corpus. Targets (issue #6): median under 10 ms, precision and recall above 95 %.

The same scoring runs on a second corpus, real public scripts nobody here wrote
(tests/lineage_real/corpus.json, issue #18): pointers (repo, commit, path, sha256) with labels
written before any run and header-only files of the data they read. The scripts are fetched by
pointer into ``$TXGIT_BENCH_LINEAGE`` or ``~/.cache/txgit-bench/lineage`` with bench_notebooks'
fetcher (a local mirror under ``$TXGIT_BENCH_MIRRORS`` or /work/.mirror, else GitHub), checked
against their sha256, and analysed in a folder where each header file sits at the path the script
reads (absolute paths cannot be placed, so those files stay unknown). Modes: ``code only`` and
``code+headers``. Per corpus and mode: precision and recall over (model, role, column), label
right (scripts whose every labelled model has exactly the labelled label columns), scripts fully
right, models left with neither features nor a "rest" note (code only), latency median/max.
Targets (issue #18, real scripts with headers): precision >= 0.98, recall >= 0.90, label right
>= 90 %.

    python benchmarks/run.py lineage [--quick]
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "lineage_corpus"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from expect import Expected, Score, expectations, score, scripts  # noqa: E402

from bench_notebooks import _repo_file, default_mirrors  # noqa: E402

from txgit import Workspace  # noqa: E402
from txgit.lineage import lineage_of_script, lineage_of_workspace  # noqa: E402


def _runnable(path: Path) -> bool:
    for mod in ("xgboost", "lightgbm"):
        if f"import {mod}" in path.read_text() or f"from {mod}" in path.read_text():
            if importlib.util.find_spec(mod) is None:
                return False
    return True


def _measure(fn, repeats: int) -> tuple[object, float]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def main(quick: bool = False) -> dict:
    repeats = 3 if quick else 10
    corpus = scripts()
    results: dict[str, dict] = {}
    per_script: dict[str, dict] = {}
    own_side: dict[str, dict] = {}
    for mode in ("static", "static+files"):
        total = {"features": Score(), "label": Score(), "all": Score()}
        lat = []
        side = _SideBySide()
        for p in corpus:
            report, secs = _measure(lambda: lineage_of_script(p, use_files=mode != "static"), repeats)
            s = score(report, expectations(p))
            side.add(p.name, report, expectations(p), secs)
            for k in total:
                total[k].add(s[k])
            lat.append(secs)
            per_script.setdefault(p.name, {})[mode] = {"ms": round(secs * 1000, 3),
                                                      "precision": round(s["all"].precision, 3),
                                                      "recall": round(s["all"].recall, 3)}
        results[mode] = _summary(total, lat, len(corpus))
        own_side[mode] = side.summary()
    # workspace: run each script under txgit run, then analyse the history (file headers off)
    total = {"features": Score(), "label": Score(), "all": Score()}
    lat, skipped = [], []
    chosen = [p for p in corpus if _runnable(p)]
    skipped = [p.name for p in corpus if not _runnable(p)]
    if quick:
        chosen = chosen[:6]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        for p in chosen:
            d = Path(tmp) / p.stem
            d.mkdir()
            shutil.copytree(p.parent / "data", d / "data")
            shutil.copy(p, d / p.name)
            Workspace.init(d)
            proc = subprocess.run([sys.executable, "-m", "txgit", "run", p.name], cwd=d, env=env,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                skipped.append(f"{p.name} (run failed: {proc.stderr.strip().splitlines()[-1:]})")
                continue
            ws = Workspace.open(d)
            report, secs = _measure(lambda: lineage_of_workspace(ws, use_files=False), repeats)
            s = score(report, expectations(p))
            for k in total:
                total[k].add(s[k])
            lat.append(secs)
            per_script[p.name]["workspace"] = {"ms": round(secs * 1000, 3), "precision": round(s["all"].precision, 3),
                                               "recall": round(s["all"].recall, 3)}
    results["workspace"] = _summary(total, lat, len(lat))
    results["workspace"]["skipped"] = skipped

    print(f"lineage on {len(corpus)} hand-labelled scripts "
          f"({sum(len(expectations(p)) for p in corpus)} models)")
    print(f"{'setting':<14} {'scripts':>7} {'P feat':>7} {'R feat':>7} {'P label':>7} {'R label':>7} "
          f"{'P all':>7} {'R all':>7} {'median ms':>9} {'max ms':>8}")
    for mode, r in results.items():
        print(f"{mode:<14} {r['scripts']:>7} {r['features']['precision']:>7.1%} {r['features']['recall']:>7.1%} "
              f"{r['label']['precision']:>7.1%} {r['label']['recall']:>7.1%} {r['all']['precision']:>7.1%} "
              f"{r['all']['recall']:>7.1%} {r['median_ms']:>9.2f} {r['max_ms']:>8.2f}")
    for mode, r in results.items():
        for miss in r["misses"][:12]:
            print(f"  {mode} miss: {miss}")
    if results["workspace"]["skipped"]:
        print(f"  workspace skipped: {results['workspace']['skipped']}")
    real = real_corpus(repeats)
    _print_side_by_side(own_side, real)
    return {"settings": results, "per_script": per_script, "own_side_by_side": own_side, "real": real}


def _summary(total: dict[str, Score], lat: list[float], n: int) -> dict:
    return {
        "scripts": n,
        **{k: {"precision": round(v.precision, 4), "recall": round(v.recall, 4), "tp": v.tp, "fp": v.fp, "fn": v.fn}
           for k, v in total.items()},
        "median_ms": round(statistics.median(lat) * 1000, 3) if lat else 0.0,
        "max_ms": round(max(lat) * 1000, 3) if lat else 0.0,
        "misses": total["all"].misses,
    }


# -- both corpora side by side, and the corpus of real scripts (issue #18) ---------------------------

REAL = ROOT / "tests" / "lineage_real"
MODES = {"code only": False, "code+headers": True}


class _SideBySide:
    """Per corpus and mode: the scores of issue #18 (label right, fully right, bare models, latency)."""

    def __init__(self) -> None:
        self.total = Score()
        self.scripts = 0
        self.label_right = 0
        self.fully_right = 0
        self.bare: list[str] = []  # models with neither features nor a "rest" note
        self.extra: list[str] = []  # reported models nobody labelled
        self.lat: list[float] = []
        self.failed: dict[str, str] = {}

    def add(self, name: str, report, expected: list[Expected], secs: float) -> dict:
        self.scripts += 1
        self.lat.append(secs)
        s = score(report, expected)
        self.total.add(s["all"])
        models = report.models
        label_ok = all(e.model in models and set(models[e.model].label_columns) == e.label for e in expected)
        full_ok = label_ok and all(set(models[e.model].feature_columns) == e.features for e in expected)
        self.label_right += label_ok
        self.fully_right += full_ok
        for e in expected:
            m = models.get(e.model)
            if m is not None and not m.features and not m.features_rest:
                self.bare.append(f"{name}: {e.model}")
        self.extra += [f"{name}: {n}" for n in models if n not in {e.model for e in expected}]
        return {"precision": round(s["all"].precision, 3), "recall": round(s["all"].recall, 3),
                "label_right": label_ok, "fully_right": full_ok, "ms": round(secs * 1000, 3),
                "misses": [f"{name}: {m}" for m in s["all"].misses],
                "missing_models": [e.model for e in expected if e.model not in models],
                "unknown": list(report.unknown)[:5]}

    def fail(self, name: str, expected: list[Expected], why: str) -> None:
        """A script the analysis refused: every labelled column is missed."""
        self.scripts += 1
        self.failed[name] = why
        for e in expected:
            self.total.fn += len(e.features) + len(e.label)

    def summary(self) -> dict:
        return {"scripts": self.scripts, "precision": round(self.total.precision, 4),
                "recall": round(self.total.recall, 4), "label_right": self.label_right,
                "fully_right": self.fully_right, "bare_models": self.bare, "extra_models": self.extra,
                "failed": self.failed,
                "median_ms": round(statistics.median(self.lat) * 1000, 3) if self.lat else 0.0,
                "max_ms": round(max(self.lat) * 1000, 3) if self.lat else 0.0}


def default_real_cache() -> Path:
    return Path(os.environ.get("TXGIT_BENCH_LINEAGE") or Path.home() / ".cache" / "txgit-bench" / "lineage")


def load_real_corpus(path: Path = REAL / "corpus.json") -> list[dict]:
    return json.loads(path.read_text())["scripts"]


def fetch_real_script(entry: dict, cache: Path, mirrors: Path) -> bytes:
    """The script's bytes, from the cache or fetched once by pointer; raises ValueError on a sha256 mismatch."""
    cached = cache / entry["repo"].replace("/", "+") / entry["commit"][:12] / entry["path"]
    if cached.is_file():
        data = cached.read_bytes()
    else:
        data = _repo_file(entry["repo"], entry["commit"], entry["path"], mirrors)
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{entry['repo']}:{entry['path']}@{entry['commit'][:12]}: sha256 differs from the corpus")
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return data


def _place(entry: dict, data: bytes, folder: Path, headers: Path = REAL) -> Path:
    """The script in ``folder`` under its own file name, deep enough that every relative path it reads
    ("../input/train.csv") lands inside ``folder``, with each header file at the path the script reads."""
    depth = max([p.replace("\\", "/").count("../") for p in entry["reads"]] + [0])
    here = folder.joinpath(*[f"d{i}" for i in range(depth)])
    here.mkdir(parents=True, exist_ok=True)
    script = here / Path(entry["path"]).name
    script.write_bytes(data)
    for read, info in entry["reads"].items():
        if Path(read).is_absolute():
            continue  # /Users/... cannot be placed: that header stays unknown, as it would on another machine
        target = here / read
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(headers / info["header"], target)
    return script


def real_corpus(repeats: int, corpus: Path = REAL / "corpus.json", cache: Path | None = None,
                mirrors: Path | None = None) -> dict:
    """Scores the real-script corpus in both modes; no modes, only "unavailable", when it cannot be fetched."""
    cache, mirrors = cache or default_real_cache(), mirrors or default_mirrors()
    entries = load_real_corpus(corpus)
    sources: dict[str, bytes] = {}
    missing = []
    for e in entries:
        try:
            sources[e["name"]] = fetch_real_script(e, cache, mirrors)
        except ValueError as err:
            missing.append(str(err))
        except (OSError, http.client.HTTPException) as err:  # offline and not cached
            missing.append(f"{e['repo']}:{e['path']}: not cached in {cache} and not fetchable ({err})")
    if missing:
        print(f"real-script corpus: {len(missing)} of {len(entries)} scripts unavailable, first: {missing[0]}")
        print(f"  (fetch them once with network or a mirror under {mirrors}; cache: {cache})")
    out: dict[str, dict] = {"per_script": {}, "unavailable": missing}
    if not sources:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        for mode, use_files in MODES.items():
            side = _SideBySide()
            for e in entries:
                if e["name"] not in sources:
                    continue
                expected = [Expected(m["model"], set(m["features"]), set(m["label"]), set(m["sources"]))
                            for m in e["models"]]
                script = _place(e, sources[e["name"]], Path(tmp) / mode.replace(" ", "_") / e["name"], corpus.parent)
                try:
                    report, secs = _measure(lambda: lineage_of_script(script, use_files=use_files), repeats)
                except Exception as err:  # noqa: BLE001 - one script must not stop the benchmark
                    # an analysis that gives up on a whole script is what issue #18 counts against it
                    why = str(err).replace(f"{script.parent}{os.sep}", "").splitlines()[0][:160]
                    side.fail(e["name"], expected, f"{type(err).__name__}: {why}")
                    out["per_script"].setdefault(e["name"], {})[mode] = {"failed": side.failed[e["name"]]}
                    continue
                out["per_script"].setdefault(e["name"], {})[mode] = side.add(e["name"], report, expected, secs)
            out[mode] = side.summary()
    return out


def _print_side_by_side(own: dict[str, dict], real: dict) -> None:
    rows = [("own idioms", "code only", own.get("static")), ("own idioms", "code+headers", own.get("static+files"))]
    rows += [("real scripts", mode, real.get(mode)) for mode in MODES]
    print("\nboth corpora (issue #18 targets, real scripts with headers: P >= 0.98, R >= 0.90, label right >= 90 %)")
    print(f"{'corpus':<13} {'mode':<13} {'scripts':>7} {'P':>6} {'R':>6} {'label right':>12} {'fully right':>12} "
          f"{'bare':>5} {'failed':>6} {'median ms':>9} {'max ms':>8}")
    for corpus, mode, r in rows:
        if not r:
            print(f"{corpus:<13} {mode:<13} {'unavailable':>7}")
            continue
        n = r["scripts"]
        print(f"{corpus:<13} {mode:<13} {n:>7} {r['precision']:>6.2f} {r['recall']:>6.2f} "
              f"{r['label_right']:>5} of {n:<3} {r['fully_right']:>5} of {n:<3} {len(r['bare_models']):>5} "
              f"{len(r.get('failed', {})):>6} {r['median_ms']:>9.2f} {r['max_ms']:>8.2f}")
    for mode in MODES:
        r = real.get(mode) or {}
        for name, why in sorted(r.get("failed", {}).items()):
            print(f"  real {mode} failed: {name}: {why}")
        for bare in r.get("bare_models", [])[:20]:
            print(f"  real {mode} model with neither features nor rest: {bare}")
    extra = (real.get("code+headers") or {}).get("extra_models", [])
    if extra:
        print(f"  real scripts: {len(extra)} reported models nobody labelled: {', '.join(extra[:12])}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
