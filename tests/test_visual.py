"""Seeing history: graph layout, semantic diffs, the HTML views, and `txgit serve` over real HTTP."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from conftest import session_namespace
from txgit import Workspace
from txgit.errors import TxgitError, UnknownRevision
from txgit.visual import CommitView, DiffView, LogView, compare_values, semantic_diff
from txgit.visual.graph import render_graph
from txgit.visual.layout import layout
from txgit.visual.server import VisualServer

# -- parsing HTML the way a browser's DOM would see it ----------------------------------------


class Tree(HTMLParser):
    """Elements with their attributes and text; checks that every opened element is closed."""

    VOID = {"br", "meta", "input", "img", "hr", "link", "circle", "path"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()
        assert not self.stack, f"unclosed elements: {self.stack}"

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        if not self.stack or self.stack[-1] not in ("style", "script"):
            self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        cls = attrs.pop("cls", None)
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())
                and (cls is None or cls in a.get("class", "").split())]

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


# -- a history: main and exp fork from c1 without a merge -----------------------------------------

CODE = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
df = pd.DataFrame({"a": np.arange(1000, dtype="float64"), "label": np.arange(1000) % 2,
                   **{f"f{i}": np.arange(1000) * i for i in range(10)}})
arr = np.linspace(0.0, 1.0, 200)
X = np.random.RandomState(0).rand(60, 3)
y = (X[:, 0] > 0.5).astype(int)
model = LogisticRegression(C=1.0).fit(X, y)
cfg = {"lr": 0.1, "epochs": 3}
tmp = [1, 2, 3]
"""


def build(root: Path) -> dict[str, str]:
    """main: c1 -> c2 (df 1000x12 -> 1000x14, one cell edited, dtype change, arr shifted, model refit, cfg, -tmp);
    exp: c1 -> c3 (+y2); the fork has no merge."""
    ws = Workspace.init(root)
    ns = session_namespace(CODE)
    ids = {"c1": ws.commit(ns, "load <data> & fit").info.id}
    ws.create_branch("exp")
    exec("df['g'] = df['a'] * 2\ndf['h'] = 'x'\ndf.loc[7, 'a'] = 1007.5\ndf['label'] = df['label'].astype('float64')\n"
         "arr = arr + 0.125\nmodel = LogisticRegression(C=0.05).fit(X, y)\ncfg['lr'] = 0.01\ndel tmp", ns)
    ids["c2"] = ws.commit(ns, "widen df").info.id
    ws.checkout("exp", ns)
    ns["y2"] = 5
    ids["c3"] = ws.commit(ns, "try y2").info.id
    ws.checkout("main", ns)
    ws.create_tag("v1", ids["c1"])
    return ids


@pytest.fixture(scope="module")
def hist(tmp_path_factory) -> tuple[Workspace, dict[str, str]]:
    root = tmp_path_factory.mktemp("visual")
    ids = build(root)
    return Workspace(root), ids


# -- layout: the picture agrees with the terminal graph -----------------------------------------

def _lanes_of_text(commits) -> dict[str, int]:
    return {r.commit: r.graph.index("*") // 2 for r in render_graph(commits) if r.commit}


@pytest.mark.parametrize("commits", [
    [("m2", ["m1"]), ("e1", ["m1"]), ("m1", ["r"]), ("r", [])],  # two branches, merge-free fork
    [("m", ["a", "b"]), ("b", ["r"]), ("a", ["r"]), ("r", [])],  # a merge
    [("m", ["a", "b", "d"]), ("a", ["r"]), ("b", ["r"]), ("d", ["r"]), ("r", [])],  # octopus
    [("t1", ["p"]), ("t2", ["q"]), ("p", []), ("q", [])],  # two roots
    [("m", ["a", "b"]), ("x", ["y"])],  # parents cut off by -n
])
def test_layout_lanes_match_the_terminal_graph_and_edges_end_at_parents(commits):
    lay = layout(commits)
    assert {n.id: n.lane for n in lay.nodes} == _lanes_of_text(commits)
    nodes = {n.id: n for n in lay.nodes}
    for e in lay.edges:
        assert e.points[0] == (nodes[e.child].row, nodes[e.child].lane)
        rows = [r for r, _ in e.points]
        assert rows == list(range(rows[0], rows[0] + len(rows)))  # one point per row, downwards
        if e.parent_shown:
            assert e.points[-1] == (nodes[e.parent].row, nodes[e.parent].lane)
            # a line never runs through another commit's dot
            for r, lane in e.points[1:-1]:
                assert lay.nodes[r].lane != lane, (e, r)
        else:
            assert e.points[-1][0] == len(commits)
    assert len(lay.edges) == sum(len(set(p)) for _, p in commits)


def test_layout_of_a_real_fork_without_merge(hist):
    ws, ids = hist
    lay = LogView(ws).layout
    assert [n.id for n in lay.nodes][-1] == ids["c1"]
    assert {n.id: n.lane for n in lay.nodes}[ids["c1"]] == 0
    assert sorted(n.lane for n in lay.nodes) == [0, 0, 1]  # the two tips side by side, the base under them
    assert {(e.child, e.parent) for e in lay.edges} == {(ids["c2"], ids["c1"]), (ids["c3"], ids["c1"])}


# -- semantic diffs of values --------------------------------------------------------------------

def test_frame_diff_shape_columns_dtypes_and_changed_rows():
    old = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1, 2, 3], "s": ["x", "y", "z"]}, index=[10, 11, 12])
    new = old.copy()
    new["b"] = new["b"].astype("float64")
    new.loc[11, "a"] = 2.5
    new.loc[12, "s"] = "Z"
    new["c"] = [0, 0, 0]
    new = new.drop(columns=["s"]).assign(s=new["s"])  # column order changes, content does not
    new.loc[13] = [9.0, 9.0, 1, "w"]
    d = compare_values(old, new)
    assert d.kind == "dataframe"
    assert d.details["columns_added"] == ["c"] and d.details["columns_removed"] == []
    assert d.details["dtype_changes"] == {"b": ("int64", "float64")}
    assert d.details["rows_added"] == 1 and d.details["rows_changed"] == 2 and d.details["cells_changed"] == 2
    assert d.details["max_abs_diff"] == 0.5
    assert "shape 3x3 -> 4x4" in d.facts and "columns added: c (int64)" in d.facts
    assert d.sample.columns == ["a", "s"] and d.sample.total_rows == 2
    assert d.sample.rows == [("11", [("2.0", "2.5"), ("'y'", "'y'")]), ("12", [("3.0", "3.0"), ("'z'", "'Z'")])]


def test_frame_diff_nan_is_not_a_change():
    old = pd.DataFrame({"a": [1.0, np.nan]})
    assert compare_values(old, old.copy()).details["rows_changed"] == 0


def test_array_diff_max_abs_difference_and_shape_change():
    a = np.arange(12, dtype="float64").reshape(3, 4)
    b = a.copy()
    b[1, 2] -= 0.75
    b[2, 3] += 0.5
    d = compare_values(a, b)
    assert d.kind == "array" and d.details["max_abs_diff"] == 0.75 and d.details["changed_elements"] == 2
    assert "max abs difference 0.75" in d.facts and "2 of 12 elements changed" in d.facts
    d = compare_values(a, a.astype("float32")[:2])
    assert "shape 3x4 -> 2x4" in d.facts and "dtype float64 -> float32" in d.facts and "max_abs_diff" not in d.details


def test_model_diff_names_changed_parameters():
    X = np.random.RandomState(1).rand(40, 2)
    y = (X[:, 1] > 0.5).astype(int)
    old, new = LogisticRegression(C=1.0).fit(X, y), LogisticRegression(C=0.1).fit(X, y)
    d = compare_values(old, new)
    params = {p.name: p for p in d.params}
    assert d.kind == "model" and params["C"].old == "1.0" and params["C"].new == "0.1"
    expected = float(np.abs(old.coef_ - new.coef_).max())
    assert params["coef_"].max_abs_diff == pytest.approx(expected) and expected > 0
    assert "intercept_" in params and "max_iter" not in params
    assert "fitted" in compare_values(LogisticRegression(), LogisticRegression().fit(X, y)).facts


def test_dict_and_plain_value_diffs():
    d = compare_values({"lr": 0.1, "epochs": 3}, {"lr": 0.01, "epochs": 3, "seed": 1})
    assert d.details["keys_changed"] == ["'lr'"] and d.details["keys_added"] == ["'seed'"]
    d = compare_values(3, "three")
    assert d.facts == ["type int -> str"] and (d.params[0].old, d.params[0].new) == ("3", "'three'")


class _Cache:
    """Unequal to any other instance, printed the same: what a figure's transforms look like to a diff."""

    def __repr__(self) -> str:
        return "Cache()"


class _Plot:
    def __init__(self, label: str) -> None:
        self.label = label
        self.cache = _Cache()
        self.transform = _Cache()


def test_an_object_diff_shows_the_real_change_not_attributes_printed_the_same():
    d = compare_values(_Plot("A"), _Plot("B"))
    assert [(p.name, p.old, p.new) for p in d.params] == [("label", "'A'", "'B'")]
    assert d.facts == ["1 attribute changed", "2 more differ in what their repr does not show"]


def test_semantic_diff_of_two_commits_loads_values(hist):
    ws, ids = hist
    sd = semantic_diff(ws, ids["c1"], ids["c2"])
    assert [(c.name, c.status) for c in sd.changes] == [
        ("arr", "changed"), ("cfg", "changed"), ("df", "changed"), ("model", "changed"), ("tmp", "removed")]
    df = sd["df"].diff
    assert df.details["columns_added"] == ["g", "h"] and df.details["dtype_changes"] == {"label": ("int64", "float64")}
    assert df.details["rows_changed"] == 1 and df.details["max_abs_diff"] == 1000.5
    assert sd["arr"].diff.details["max_abs_diff"] == pytest.approx(0.125)
    assert {p.name for p in sd["model"].diff.params} >= {"C", "coef_", "intercept_"}
    assert sd.counts() == (0, 1, 4)


def test_semantic_diff_against_a_live_namespace_and_bad_input(hist):
    ws, ids = hist
    ns = session_namespace(CODE)
    ns["arr"] = ns["arr"] * 3
    sd = semantic_diff(ws, ids["c1"], namespace=ns)
    assert [c.name for c in sd.changes] == ["arr"] and sd.b_id is None
    assert sd["arr"].diff.details["max_abs_diff"] == pytest.approx(2.0)
    with pytest.raises(UnknownRevision):
        semantic_diff(ws, "no-such-rev", "HEAD")
    with pytest.raises(TxgitError, match="no variable 'nope'"):
        semantic_diff(ws, ids["c1"], ids["c2"], names=["nope"])
    assert [c.name for c in semantic_diff(ws, ids["c1"], ids["c2"], names=["df"]).changes] == ["df"]


# -- HTML reprs ---------------------------------------------------------------------------------

def test_log_view_html_draws_every_commit_and_edge_with_refs(hist):
    ws, ids = hist
    view = LogView(ws)
    tree = Tree(view._repr_html_())
    assert {c["data-commit"] for c in tree.find("circle", cls="txgit-node")} == set(ids.values())
    assert {(p["data-child"], p["data-parent"]) for p in tree.find("path", cls="txgit-edge")} == {
        (ids["c2"], ids["c1"]), (ids["c3"], ids["c1"])}
    rows = tree.find("div", cls="txgit-row")
    assert [r["data-commit"] for r in rows] == [c.id for c in view.commits]
    text = tree.all_text
    assert "HEAD -> main" in text and "exp" in text and "tag: v1" in text
    assert "~df (1000x12 → 1000x14)" in text and "-tmp" in text and "+y2" in text
    assert "load <data> & fit" in text  # escaped in the markup, intact as text
    links = tree.find("a", cls="txgit-id")
    assert {a["data-cmd"] for a in links} == {f"%txgit checkout {i[:8]}" for i in ids.values()}
    # text repr: the terminal graph
    lines = repr(view).splitlines()
    assert lines[2] == "|/" and lines[3].startswith(f"* {ids['c1'][:8]} (tag: v1) load <data> & fit")


def test_diff_view_html_shows_frames_arrays_models(hist):
    ws, ids = hist
    view = DiffView(ws, "v1", "main")
    tree = Tree(view._repr_html_())
    text = tree.all_text
    assert {d["data-var"] for d in tree.find("div", cls="txgit-var")} == {"arr", "cfg", "df", "model", "tmp"}
    assert "shape 1000x12 -> 1000x14" in text and "columns added: g (float64), h" in text
    assert "dtype of label: int64 -> float64" in text
    assert "max abs difference 0.125" in text  # arr
    assert "7 7.0 → 1007.5" in text  # the sample row of df
    assert {p["data-param"] for p in tree.find("tr") if "data-param" in p} >= {"C", "coef_"}
    assert "- tmp" in text and "0 added, 1 removed, 4 changed" in text
    assert "~ df  DataFrame 1000x12 -> DataFrame 1000x14" in repr(view)


def test_commit_view_html_lists_variables(hist):
    ws, ids = hist
    tree = Tree(CommitView(ws, "main")._repr_html_())
    assert {r["data-var"] for r in tree.find("tr") if "data-var" in r} == {
        "LogisticRegression", "X", "arr", "cfg", "df", "model", "np", "pd", "y"}
    assert ids["c2"] in tree.all_text and "DataFrame 1000x14" in tree.all_text


# -- txgit serve over real HTTP -----------------------------------------------------------------

def _get(url: str, host: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def served(tmp_path):
    """`txgit serve --port 0` as a user starts it, on a fresh history; stopped after the test."""
    ids = build(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "txgit", "serve", "--port", "0"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"at (http://127\.0\.0\.1:\d+/) ", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        yield m.group(1), ids
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_pages_over_http(served):
    url, ids = served
    status, html = _get(url)
    assert status == 200
    tree = Tree(html)
    assert len(tree.find("circle", cls="txgit-node")) == 3
    assert {a["href"] for a in tree.find("a", cls="txgit-id")} == {f"/commit/{i}" for i in ids.values()}
    assert [o["value"] for o in tree.find("option", selected="")] == [ids["c1"], ids["c2"]]  # HEAD~1 vs HEAD
    status, html = _get(f"{url}commit/{ids['c2']}")
    assert status == 200 and "DataFrame 1000x14" in Tree(html).all_text
    status, html = _get(f"{url}diff?a=v1&b=exp")
    assert status == 200 and "+ y2" in Tree(html).all_text
    status, html = _get(f"{url}diff?a=nope&b=main")
    assert status == 404 and "unknown revision 'nope'" in Tree(html).all_text
    assert _get(f"{url}no/such/page")[0] == 404
    assert _get(url, host="attacker.example")[0] == 421  # DNS rebinding: a foreign Host is refused


def test_serve_binds_loopback_only_and_reports_a_taken_port(tmp_path, run_txgit):
    ws = Workspace.init(tmp_path / "w")
    with VisualServer(ws) as server:
        assert server.server_address[0] == "127.0.0.1"
        assert _get(server.url)[0] == 200  # an empty history still renders
        proc = run_txgit("serve", "--port", str(server.port), cwd=tmp_path / "w")
        assert proc.returncode == 1 and proc.stderr.startswith("txgit: error: cannot listen on 127.0.0.1:")
        assert len(proc.stderr.strip().splitlines()) == 1
