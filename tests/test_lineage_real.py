"""The corpus of real public scripts (tests/lineage_real/corpus.json) is well-formed.

It holds pointers, labels and header files only; the scripts themselves are fetched and scored by
benchmarks/bench_lineage.py, so this test needs no network.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parent / "lineage_real"
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
# reserved by issue #18 for an independent evaluation: never part of this corpus
RESERVED_REPOS = {
    "malusamayo/leakage-analysis", "stefan-grafberger/mlinspect", "ey-l/bottom-up-standardization-for-data-preparation",
    "scikit-learn/scikit-learn", "ankane/lightgbm-ruby", "toukoh/ml-d-project", "arx1971/kaggle-titanic-challenge",
    "cycomachead/info290", "toldi-pooja/house-price-prediction", "mohammadrezamc2/ml",
    "devyansh0307/titanic-survival-project---machine-learning",
    "r1u2p3a4m/customer-churn-prediction-for-telecom-company", "naturalcapsule/dotfiles",
}
RESERVED_OWNERS = {"aorursy"}


def _scripts() -> list[dict]:
    return json.loads((REAL / "corpus.json").read_text())["scripts"]


def test_corpus_is_big_and_varied_enough() -> None:
    scripts = _scripts()
    assert len(scripts) >= 60
    assert len({s["repo"] for s in scripts}) >= 15
    names = [s["name"] for s in scripts]
    assert len(names) == len(set(names)), "script names must be unique"


def test_no_reserved_repository() -> None:
    for s in _scripts():
        repo = s["repo"].lower()
        assert repo not in RESERVED_REPOS and repo.split("/")[0] not in RESERVED_OWNERS, s["repo"]


@pytest.mark.parametrize("entry", _scripts(), ids=lambda e: e["name"])
def test_entry_is_a_pinned_pointer_with_labels_and_headers(entry: dict) -> None:
    assert re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", entry["repo"])
    assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"]), "commit must be a full sha"
    assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), "sha256 of the file's bytes"
    assert entry["path"] and not entry["path"].startswith("/")
    assert entry["python"] in (2, 3)
    assert entry["models"], "every script needs labels"
    for m in entry["models"]:
        assert m["model"] and m["label"] and m["features"], m
        assert set(m["sources"]) <= set(entry["reads"]), f"{m['model']}: a source the script does not read"
    assert entry["reads"], "every script reads at least one data file"
    for read, info in entry["reads"].items():
        header = REAL / info["header"]
        assert header.is_file(), f"{read}: header file {info['header']} missing"
        assert info["from"], f"{read}: say where the header came from"
        lines = header.read_text().splitlines()
        assert len(lines) == 1, f"{info['header']}: a header file holds one line"
        assert next(csv.reader(lines)), info["header"]


def test_no_script_code_is_kept() -> None:
    # pointers only: nothing under lineage_real but the corpus file and header-only CSVs
    for f in REAL.rglob("*"):
        if f.is_file():
            assert f.name == "corpus.json" or f.parent.parent.name == "headers", f


# -- the benchmark's fetch and scoring, offline, on a corpus this test writes ----------------------

SCRIPT = """import pandas as pd
from sklearn.linear_model import LogisticRegression
df = pd.read_csv('../input/train.csv')
X = df.drop(['Survived', 'Name'], axis=1)
model = LogisticRegression().fit(X, df['Survived'])
"""


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def small_corpus(tmp_path: Path) -> tuple[Path, Path, dict]:
    """One script in a repository that exists only as a local clone with a work tree (repo/.git)."""
    mirrors = tmp_path / "mirrors"
    work = mirrors / "someone+kernels" / "repo"
    (work / "kaggle folder").mkdir(parents=True)
    (work / "kaggle folder" / "titanic.py").write_text(SCRIPT)
    _git("init", "-q", cwd=work)
    _git("add", ".", cwd=work)
    _git("commit", "-qm", "a kernel", cwd=work)
    entry = {"name": "tiny", "repo": "someone/kernels", "commit": _git("rev-parse", "HEAD", cwd=work),
             "path": "kaggle folder/titanic.py", "sha256": hashlib.sha256(SCRIPT.encode()).hexdigest(), "python": 3,
             "reads": {"../input/train.csv": {"header": "headers/tiny/train.csv", "from": "this test"}},
             "models": [{"model": "model", "features": ["Pclass", "Age"], "label": ["Survived"],
                         "sources": ["../input/train.csv"]}]}
    corpus = tmp_path / "corpus" / "corpus.json"
    (corpus.parent / "headers" / "tiny").mkdir(parents=True)
    (corpus.parent / "headers" / "tiny" / "train.csv").write_text("Survived,Pclass,Name,Age\n")
    corpus.write_text(json.dumps({"scripts": [entry]}))
    return corpus, mirrors, entry


def _bench():
    sys.path.insert(0, str(BENCHMARKS))
    import bench_lineage
    return bench_lineage


def test_the_benchmark_fetches_by_pointer_checks_the_hash_and_caches(small_corpus, tmp_path):
    corpus, mirrors, entry = small_corpus
    bench = _bench()
    cache = tmp_path / "cache"
    assert bench.fetch_real_script(entry, cache, mirrors) == SCRIPT.encode()
    cached = cache / "someone+kernels" / entry["commit"][:12] / entry["path"]
    assert cached.read_bytes() == SCRIPT.encode()
    with pytest.raises(ValueError, match="sha256"):
        bench.fetch_real_script({**entry, "sha256": "0" * 64}, tmp_path / "other", mirrors)


def test_the_benchmark_scores_both_modes_and_names_what_it_could_not_fetch(small_corpus, tmp_path, capsys):
    corpus, mirrors, entry = small_corpus
    bench = _bench()
    out = bench.real_corpus(1, corpus=corpus, cache=tmp_path / "cache", mirrors=mirrors)
    with_headers = out["per_script"]["tiny"]["code+headers"]
    assert (with_headers["precision"], with_headers["recall"], with_headers["fully_right"]) == (1.0, 1.0, True)
    code_only = out["code only"]
    assert code_only["scripts"] == 1 and code_only["label_right"] == 1 and code_only["recall"] < 1.0
    assert not code_only["bare_models"], "a drop on a file with an unknown header is a 'rest', not nothing"
    gone = bench.real_corpus(1, corpus=corpus, cache=tmp_path / "empty", mirrors=tmp_path / "no-mirrors")
    assert gone["unavailable"] and "code only" not in gone
    assert "1 of 1 scripts unavailable" in capsys.readouterr().out
