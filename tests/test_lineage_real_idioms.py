"""Lineage on idioms of real scripts (issue 18): each test is a small script of our own that
reproduces one kind of failure seen on code nobody here wrote."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from txgit.errors import TxgitError
from txgit.lineage import lineage_of_source


def lineage(code: str, tmp_path: Path | None = None, **files: str):
    """Analyse ``code``; ``files``: data files (name -> text) written next to it, so headers are known."""
    if tmp_path is not None:
        for name, text in files.items():
            (tmp_path / name.replace("__", ".")).write_text(text)
    return lineage_of_source(textwrap.dedent(code), filename="s.py", data_dir=tmp_path)


TITANIC = "PassengerId,Survived,Pclass,Name,Sex,Age,Fare\n1,0,3,A,male,22,7.2\n2,1,1,B,female,38,71.3\n"


# -- 2. the front end ------------------------------------------------------------------------------

def test_python2_script_is_analysed_and_said_to_be_python2():
    report = lineage('''
        import pandas as pd
        from sklearn.ensemble import RandomForestClassifier
        df = pd.read_csv("d.csv")
        print "rows:", len(df)
        try:
            X = df[["a", "b"]]
        except KeyError, e:
            print e
        rf = RandomForestClassifier().fit(X, df["y"])
    ''')
    assert report.models["rf"].feature_columns == ["a", "b"]
    assert any("Python 2 source" in u for u in report.unknown), report.unknown


def test_one_unreadable_statement_is_skipped_and_named():
    report = lineage('''
        import pandas as pd
        from sklearn.linear_model import Ridge
        df = pd.read_csv("d.csv")
        x = = 3
        m = Ridge().fit(df[["a"]], df["y"])
    ''')
    assert report.models["m"].feature_columns == ["a"]
    assert any("s.py:5" in u and "cannot read" in u for u in report.unknown), report.unknown


def test_nothing_readable_is_still_a_syntax_error():
    with pytest.raises(TxgitError, match="syntax error"):
        lineage("def (:\n")


def test_percent_inside_parentheses_is_modulo_not_a_magic():
    report = lineage('''
        %matplotlib inline
        import pandas as pd
        from sklearn.linear_model import Ridge
        df = pd.read_csv("d.csv")
        df["k"] = (df["a"]
                   % 7)
        !ls
        m = Ridge().fit(df[["k"]], df["y"])
    ''')
    m = report.models["m"]
    assert m.feature_columns == ["a"] and m.label_columns == ["y"]


def test_computed_key_in_nested_dict_assignment_does_not_stop_the_script():
    report = lineage('''
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        from sklearn.tree import DecisionTreeClassifier
        df = pd.read_csv("d.csv")
        results = {}
        for est in [LogisticRegression(), DecisionTreeClassifier()]:
            name = est.__class__.__name__
            results[name] = {}
            results[name]["fit"] = est.fit(df[["a"]], df["y"])
        final = LogisticRegression().fit(df[["a", "b"]], df["y"])
    ''')
    assert report.models["final"].feature_columns == ["a", "b"]
