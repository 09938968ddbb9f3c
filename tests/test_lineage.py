"""Lineage: the hand-labelled corpus (precision/recall), run-time facts from commits, the CLI, unknown APIs."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "lineage_corpus"))

from expect import Score, expectations, score, scripts  # noqa: E402

from txgit import Workspace  # noqa: E402
from txgit.errors import TxgitError, UnknownVariable  # noqa: E402
from txgit.lineage import KnowledgeBase, lineage_of_script, lineage_of_source, lineage_of_workspace  # noqa: E402

CORPUS = Path(__file__).resolve().parent / "lineage_corpus"


def test_corpus_is_big_enough_and_labelled():
    paths = scripts()
    assert len(paths) >= 25
    for p in paths:
        assert expectations(p), f"{p.name} has no '# expect' line"


@pytest.mark.parametrize("path", scripts(), ids=lambda p: p.stem)
def test_corpus_script_with_file_headers(path):
    report = lineage_of_script(path)
    s = score(report, expectations(path))["all"]
    assert not s.misses, s.misses
    for e in expectations(path):
        assert set(report.models[e.model].sources) == e.sources


def test_corpus_precision_recall_over_95_percent():
    total, static = Score(), Score()
    for p in scripts():
        total.add(score(lineage_of_script(p), expectations(p))["all"])
        static.add(score(lineage_of_script(p, use_files=False), expectations(p))["all"])
    assert total.precision >= 0.95 and total.recall >= 0.95, (total.precision, total.recall)
    # from the code alone nothing wrong is reported; what it cannot list it says it cannot
    assert static.precision == 1.0 and static.recall < total.recall


def test_static_only_says_what_it_does_not_know():
    report = lineage_of_script(CORPUS / "titanic_drop.py", use_files=False)
    m = report.models["clf"]
    assert m.label_columns == ["Survived"]
    assert {"Sex", "Embarked", "Age"} <= set(m.feature_columns)
    assert m.features_rest == ["all other columns of data/titanic.csv except Age, Cabin, Embarked, Name, "
                               "PassengerId, Sex, Survived, Ticket"]


def test_unknown_api_degrades_gracefully():
    code = (
        "import pandas as pd\nimport mylib\nfrom sklearn.linear_model import Ridge\n"
        "df = pd.read_csv('d.csv')\nX = mylib.featurize(df[['a', 'b']])\n"
        "m = Ridge().fit(X, df['y'])\nweird = mylib.Model()\nweird.fit(df[['c']], df['y'])\n"
    )
    report = lineage_of_source(code, filename="s.py")
    assert report.models["m"].feature_columns == ["a", "b"]  # what flowed in, not invented columns
    assert any("partly unknown" in u for u in report.models["m"].unknown)
    assert any("unknown API mylib.featurize" in u for u in report.unknown)
    assert report.models["weird"].type == "unknown" and report.models["weird"].feature_columns == ["c"]


def test_columns_chosen_by_an_unknown_mask_are_flagged_not_silently_all_kept():
    code = ("import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
            "df = pd.read_csv('d.csv')\nX = df[df.columns[df.columns.str.startswith('f_')]]\n"
            "m = LogisticRegression().fit(X, df['label'])\n")
    m = lineage_of_source(code, filename="s.py").models["m"]
    # the selection is only an upper bound here: the report must say so
    assert any("chosen by a mask" in u for u in m.unknown), m.unknown


def test_knowledge_base_is_data_and_extensible():
    code = ("import pandas as pd\nimport mylib\nfrom sklearn.svm import SVR\ndf = pd.read_csv('d.csv')\n"
            "X = mylib.scale(df[['a', 'b']])\nm = SVR().fit(X, df.y)\n")
    plain = lineage_of_source(code)
    assert any("unknown API mylib.scale" in u for u in plain.unknown)
    kb = KnowledgeBase.load(extra={"mylib.scale": {"op": "same", "data": [0, "frame"]}})
    taught = lineage_of_source(code, kb=kb)
    assert taught.models["m"].feature_columns == ["a", "b"] and not taught.unknown
    assert not taught.models["m"].unknown
    bad = lineage_of_source(code, kb=KnowledgeBase.load(extra={"mylib.scale": {"op": "no_such_op"}}))
    assert any("unknown operation 'no_such_op'" in u for u in bad.unknown)


def test_workspace_lineage_uses_committed_columns(tmp_path, run_txgit):
    for name in ("titanic_drop.py", "credit_iloc_numpy.py", "churn_drop_merge.py"):
        shutil.copy(CORPUS / name, tmp_path / name)
    shutil.copytree(CORPUS / "data", tmp_path / "data")
    Workspace.init(tmp_path)
    run_txgit("run", "titanic_drop.py", cwd=tmp_path, check=True)
    ws = Workspace.open(tmp_path)
    # headers off: only the frames the commits recorded tell the remaining columns
    static = lineage_of_script(tmp_path / "titanic_drop.py", use_files=False).models["clf"]
    assert static.features_rest
    live = lineage_of_workspace(ws, use_files=False).models["clf"]
    want = expectations(CORPUS / "titanic_drop.py")[0]
    assert set(live.feature_columns) == want.features and set(live.label_columns) == want.label
    assert not live.features_rest
    assert live.cells[0] == "titanic_drop.py:5" and live.fit_at == "titanic_drop.py:11"
    run_txgit("run", "credit_iloc_numpy.py", cwd=tmp_path, check=True)
    run_txgit("run", "churn_drop_merge.py", cwd=tmp_path, check=True)
    report = lineage_of_workspace(ws, use_files=False)
    for name, model in (("credit_iloc_numpy.py", "clf"), ("churn_drop_merge.py", "logreg")):
        want = expectations(CORPUS / name)[0]
        got = report.models[model]
        assert set(got.feature_columns) == want.features, name
        assert set(got.label_columns) == want.label, name
    # an earlier commit: the titanic model, before the others were trained
    fit_commit = next(c for c in ws.log() if c.summary.startswith("run titanic_drop.py:11"))
    older = lineage_of_workspace(ws, rev=fit_commit.id, use_files=False)
    assert older.models["clf"].type == "LogisticRegression" and "logreg" not in older.models

    proc = run_txgit("lineage", "logreg", "--json", "--no-files", cwd=tmp_path, check=True)
    doc = json.loads(proc.stdout)
    assert doc["mode"] == "workspace" and list(doc["models"]) == ["logreg"]
    assert {f["column"] for f in doc["models"]["logreg"]["features"]} == \
        expectations(CORPUS / "churn_drop_merge.py")[0].features
    text = run_txgit("lineage", "clf", cwd=tmp_path, check=True).stdout
    assert "label:    data/credit.csv: default" in text


def test_cli_script_mode_and_errors(tmp_path, run_txgit):
    out = run_txgit("lineage", "--script", str(CORPUS / "houses_ct.py"), cwd=tmp_path, check=True).stdout
    assert "model (Pipeline(Lasso)), trained at houses_ct.py:15" in out
    assert "label:    data/houses.csv: SalePrice" in out
    bad = run_txgit("lineage", "nope", "--script", str(CORPUS / "houses_ct.py"), cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.strip() == "txgit: error: no trained model named 'nope' (models: model)"
    missing = run_txgit("lineage", "--script", "missing.py", cwd=tmp_path)
    assert missing.returncode == 1 and "cannot read missing.py" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "broken.py").write_text("def (:\n")
    broken = run_txgit("lineage", "--script", "broken.py", cwd=tmp_path)
    assert broken.returncode == 1 and "syntax error" in broken.stderr
    # a data file given as the script parsed as tuples of names ("a,b" is Python) and said "no
    # trained models found", exit 0: the user had typed the data file, not the code that reads it
    (tmp_path / "data.csv").write_text("age,fare,survived\n22,7.25,0\n")
    data = run_txgit("lineage", "--script", "data.csv", cwd=tmp_path)
    assert data.returncode == 1 and data.stdout == "" and data.stderr.strip() == (
        "txgit: error: data.csv is not a Python script (.py) or notebook (.ipynb): --script takes the code "
        "that reads it (`txgit lineage --script train.py`)"), data.stderr
    nows = run_txgit("lineage", cwd=tmp_path)
    assert nows.returncode == 1 and "not a txgit workspace" in nows.stderr
    Workspace.init(tmp_path / "w")
    empty = run_txgit("lineage", "--rev", "nosuch", cwd=tmp_path / "w")
    assert empty.returncode == 1 and "unknown revision 'nosuch'" in empty.stderr


def test_api_errors(tmp_path):
    with pytest.raises(TxgitError):
        lineage_of_script(tmp_path / "none.py")
    from txgit.lineage import select

    with pytest.raises(UnknownVariable):
        select(lineage_of_script(CORPUS / "titanic_lists.py"), "other")


def test_workspace_lineage_reads_the_fitted_models_columns(tmp_path, run_txgit):
    (tmp_path / "data").mkdir()
    rows = "\n".join(f"{i},{i * 0.5},{i % 7},{i * 0.1},{i % 3},{i % 2}" for i in range(30))
    (tmp_path / "data" / "sensors.csv").write_text("id,f_temp,g_noise,f_press,f_hum,label\n" + rows + "\n")
    (tmp_path / "data" / "chosen.json").write_text('["f_press", "f_temp"]')
    (tmp_path / "train.py").write_text(
        "import json\nimport pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import StandardScaler\n"
        "df = pd.read_csv('data/sensors.csv')\n"
        # a mask the analysis cannot evaluate, and a list read from a file: no static pass knows these columns
        "model = make_pipeline(StandardScaler(), LogisticRegression()).fit(\n"
        "    df[df.columns[df.columns.str.startswith('f_')]], df['label'])\n"
        "chosen = json.load(open('data/chosen.json'))\n"
        "y = df['label']\n"
        "named = LogisticRegression().fit(df[chosen], y)\n"
        "unnamed = LogisticRegression().fit(df[chosen].to_numpy(), y)\n")
    Workspace.init(tmp_path)
    run_txgit("run", "train.py", cwd=tmp_path, check=True)
    ws = Workspace.open(tmp_path)
    code_only = lineage_of_workspace(ws, use_files=False, load_models=False).models
    assert code_only["model"].feature_columns != ["f_hum", "f_press", "f_temp"]
    assert code_only["model"].runtime is None

    report = lineage_of_workspace(ws, use_files=False)
    model = report.models["model"]
    assert model.feature_columns == ["f_hum", "f_press", "f_temp"] and not model.features_rest
    assert {c.source for c in model.features} == {"data/sensors.csv"}
    rt = model.runtime
    assert rt.features == ["f_temp", "f_press", "f_hum"] and rt.n_features == 3  # the order fit saw
    assert rt.cell == "train.py:7" and rt.agrees is False
    assert set(rt.code_features) == set(code_only["model"].feature_columns)
    assert model.label_columns == ["label"] and rt.label_seen == []  # y was not yet committed
    assert any(c.summary.startswith("run train.py:7") and c.id.startswith(rt.commit) for c in ws.log())

    named = report.models["named"]
    assert named.feature_columns == ["f_press", "f_temp"] and named.runtime.features == ["f_press", "f_temp"]
    assert named.runtime.cell == "train.py:11" and named.runtime.label_seen == ["y"]
    # fitted on an array: no names, only the count, and the code's answer stays, with a note
    unnamed = report.models["unnamed"]
    assert unnamed.runtime.features is None and unnamed.runtime.n_features == 2
    assert unnamed.feature_columns == code_only["unnamed"].feature_columns
    assert any("2 unnamed columns" in n for n in unnamed.runtime.notes)

    # too big to load: the static answer, and why
    capped = lineage_of_workspace(ws, use_files=False, max_model_bytes=10).models["model"]
    assert capped.runtime is None and any("run-time facts not read" in u for u in capped.unknown)

    doc = json.loads(run_txgit("lineage", "model", "--json", "--no-files", cwd=tmp_path, check=True).stdout)
    assert doc["models"]["model"]["runtime"]["features"] == ["f_temp", "f_press", "f_hum"]
    text = run_txgit("lineage", "named", "--no-files", cwd=tmp_path, check=True).stdout
    assert "run-time: fit at train.py:11" in text and "is committed as y" in text


def test_workspace_lineage_keeps_what_a_column_transformer_selects(tmp_path, run_txgit):
    # fit sees the whole frame, but the pipeline's ColumnTransformer (remainder dropped) uses only
    # its selection: the model's feature_names_in_ must not widen the answer to every column
    name = "titanic_pipeline_ct.py"
    shutil.copy(CORPUS / name, tmp_path / name)
    shutil.copytree(CORPUS / "data", tmp_path / "data")
    Workspace.init(tmp_path)
    run_txgit("run", name, cwd=tmp_path, check=True)
    got = lineage_of_workspace(Workspace.open(tmp_path), use_files=False).models["pipe"]
    want = expectations(CORPUS / name)[0]
    assert set(got.feature_columns) == want.features
    assert got.runtime is not None and len(got.runtime.features) > len(want.features)
