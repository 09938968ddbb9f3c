"""The corpus of real public scripts (tests/lineage_real/corpus.json) is well-formed.

It holds pointers, labels and header files only; the scripts themselves are fetched and scored by
benchmarks/bench_lineage.py, so this test needs no network.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parent / "lineage_real"
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
