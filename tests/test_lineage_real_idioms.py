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


# -- 1. the knowledge base ----------------------------------------------------------------------

def test_sklearn_functions_are_not_transformer_classes():
    report = lineage('''
        import pandas as pd
        from sklearn import preprocessing
        from sklearn.svm import SVC
        df = pd.read_csv("d.csv")
        X = preprocessing.scale(df[["a", "b"]])
        y = preprocessing.label_binarize(df["target"], classes=[0, 1])
        clf = SVC().fit(X, y)
    ''')
    m = report.models["clf"]
    assert m.feature_columns == ["a", "b"] and m.label_columns == ["target"]
    assert "X" not in report.models and "y" not in report.models


def test_pre_020_module_paths_are_their_model_selection_names():
    m = lineage('''
        import pandas as pd
        from sklearn.cross_validation import train_test_split, cross_val_score
        from sklearn.grid_search import GridSearchCV
        from sklearn.ensemble import RandomForestClassifier
        df = pd.read_csv("d.csv")
        X_train, X_test, y_train, y_test = train_test_split(df[["a", "b"]], df["y"])
        search = GridSearchCV(RandomForestClassifier(), {"n_estimators": [10]})
        search.fit(X_train, y_train)
    ''').models
    assert list(m) == ["search"]
    assert m["search"].type == "GridSearchCV(RandomForestClassifier)"
    assert m["search"].feature_columns == ["a", "b"] and m["search"].label_columns == ["y"]


def test_manifold_embedding_and_keras_history_are_not_models():
    report = lineage('''
        import pandas as pd
        from sklearn.manifold import TSNE
        from keras.models import Sequential
        from keras.layers import Dense
        df = pd.read_csv("d.csv")
        emb = TSNE(n_components=2).fit_transform(df[["a", "b"]])
        net = Sequential()
        net.add(Dense(8, activation="relu"))
        net.compile(loss="binary_crossentropy", optimizer="adam")
        history = net.fit(df[["a", "b", "c"]], df["y"], epochs=3)
    ''')
    assert list(report.models) == ["net"]
    assert report.models["net"].feature_columns == ["a", "b", "c"]
    assert report.models["net"].label_columns == ["y"]


def test_generated_kb_knows_estimators_the_hand_list_did_not():
    report = lineage('''
        import pandas as pd
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.feature_selection import VarianceThreshold
        from sklearn.ensemble import AdaBoostClassifier
        from sklearn.tree import DecisionTreeClassifier
        from catboost import CatBoostRegressor
        from lightgbm import LGBMRegressor
        df = pd.read_csv("d.csv")
        knn = KNeighborsClassifier().fit(df[["a"]], df["y"])
        ada = AdaBoostClassifier(DecisionTreeClassifier()).fit(df[["b"]], df["y"])
        vt = VarianceThreshold().fit(df[["a", "b"]])
        cb = CatBoostRegressor().fit(df[["c"]], df["z"])
    ''')
    assert report.models["knn"].type == "KNeighborsClassifier"
    assert report.models["ada"].type == "AdaBoostClassifier(DecisionTreeClassifier)"
    assert report.models["cb"].type == "CatBoostRegressor"
    assert "vt" not in report.models  # a selector, fitted without a label, is a transformer
    assert not any("unknown API" in u for u in report.unknown), report.unknown


def test_kb_files_are_current_with_the_installed_sklearn_and_pandas():
    pytest.importorskip("sklearn")
    pytest.importorskip("pandas")
    from txgit.lineage import gen_kb

    assert not gen_kb.covers_installed(), "run python -m txgit.lineage.gen_kb"


def test_unknown_frame_method_keeps_the_columns_that_flow_in():
    m = lineage('''
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        train = pd.read_csv("train.csv")
        test = pd.read_csv("test.csv")
        full = train.append(test)
        odd = full.frobnicate()
        X = odd.drop(["Survived", "Name"], axis=1)
        clf = LogisticRegression().fit(X, odd["Survived"])
    ''')
    clf = m.models["clf"]
    assert clf.label_columns == ["Survived"]
    assert "Survived" not in clf.feature_columns
    assert clf.features_rest == ["all columns of test.csv, train.csv except Name, Survived"]
    assert any("through unknown call frame.frobnicate" in u for u in clf.unknown), clf.unknown


def test_unknown_frame_method_with_headers_narrows(tmp_path):
    m = lineage('''
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        train = pd.read_csv("train.csv")
        full = train.append(train).frobnicate()
        clf = LogisticRegression().fit(full.drop(columns=["Survived", "Name"]), full.Survived)
    ''', tmp_path, train__csv=TITANIC).models["clf"]
    assert m.feature_columns == ["Age", "Fare", "PassengerId", "Pclass", "Sex"]
    assert m.label_columns == ["Survived"]


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


# -- models ------------------------------------------------------------------------------------------

def test_pipeline_ending_in_an_unknown_estimator_is_a_model():
    report = lineage('''
        import pandas as pd
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from mylib import FancyModel
        df = pd.read_csv("d.csv")
        pipe = Pipeline([("scale", StandardScaler()), ("model", FancyModel())])
        pipe.fit(df[["a", "b"]], df["y"])
    ''')
    assert report.models["pipe"].type == "Pipeline(unknown)"
    assert report.models["pipe"].feature_columns == ["a", "b"]


def test_fitted_alias_is_one_model():
    report = lineage('''
        import pandas as pd
        from sklearn.ensemble import RandomForestRegressor
        df = pd.read_csv("d.csv")
        rf = RandomForestRegressor()
        fitted = rf.fit(df[["a", "b"]], df["y"])
        pred = fitted.predict(df[["a", "b"]])
    ''')
    assert len(report.models) == 1 and report.models["rf"].feature_columns == ["a", "b"]


def test_pickled_frame_loaded_back_keeps_its_source():
    m = lineage('''
        import pickle
        import pandas as pd
        from sklearn.linear_model import Ridge
        df = pd.read_csv("d.csv")
        df.to_pickle("clean.pkl")
        with open("frame.pkl", "wb") as f:
            pickle.dump(df, f)
        back = pd.read_pickle("clean.pkl")
        with open("frame.pkl", "rb") as f:
            again = pickle.load(f)
        m = Ridge().fit(back[["a"]], again["y"])
    ''').models["m"]
    assert m.sources == ["d.csv"] and m.feature_columns == ["a"] and m.label_columns == ["y"]


# -- 3. schema without data ------------------------------------------------------------------------------

def test_positional_selection_without_header_is_kept_symbolically():
    m = lineage('''
        import pandas as pd
        from sklearn.svm import SVC
        data = pd.read_csv("data.csv")
        X = data.iloc[:, 1:-1]
        y = data.iloc[:, -1]
        clf = SVC().fit(X, y)
    ''').models["clf"]
    assert m.features_rest == ["columns 1..-2 of data.csv"]
    assert m.label_rest == ["column -1 of data.csv"]
    assert m.sources == ["data.csv"]
    assert not any("not traced" in u for u in m.unknown)


def test_drop_without_header_says_all_columns_except():
    m = lineage('''
        import pandas as pd
        from sklearn.svm import SVC
        data = pd.read_csv("data.csv")
        clf = SVC().fit(data.drop("label", axis=1).values, data["label"].values)
    ''').models["clf"]
    assert m.features_rest == ["all columns of data.csv except label"] and m.label_columns == ["label"]


def test_positional_selection_with_header_lists_columns(tmp_path):
    m = lineage('''
        import pandas as pd
        from sklearn.svm import SVC
        data = pd.read_csv("data.csv")
        clf = SVC().fit(data.iloc[:, 2:-1], data.iloc[:, 1])
    ''', tmp_path, data__csv=TITANIC).models["clf"]
    assert m.feature_columns == ["Age", "Name", "Pclass", "Sex"] and m.label_columns == ["Survived"]


def test_columns_set_in_code_rename_the_header(tmp_path):
    m = lineage('''
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        df = pd.read_csv("data.csv")
        df.columns = ["pid", "survived", "pclass", "name", "sex", "age", "fare"]
        X = df.drop(["survived", "name"], axis=1)
        clf = LogisticRegression().fit(X, df["survived"])
    ''', tmp_path, data__csv=TITANIC).models["clf"]
    assert m.label_columns == ["Survived"]
    assert m.feature_columns == ["Age", "Fare", "PassengerId", "Pclass", "Sex"]


def test_columns_lowercased_in_code_follow_the_header(tmp_path):
    m = lineage('''
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        df = pd.read_csv("data.csv")
        df.columns = df.columns.str.lower()
        df = df.rename(columns={"pclass": "klass"})
        clf = LogisticRegression().fit(df[["klass", "age"]], df["survived"])
    ''', tmp_path, data__csv=TITANIC).models["clf"]
    assert m.feature_columns == ["Age", "Pclass"] and m.label_columns == ["Survived"]


def test_names_given_to_a_headerless_file(tmp_path):
    m = lineage('''
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        cols = ["age", "workclass", "income"]
        df = pd.read_csv("adult.data", header=None, names=cols)
        clf = LogisticRegression().fit(df.drop("income", axis=1), df["income"])
    ''', tmp_path, adult__data="39,State-gov,<=50K\n50,Private,>50K\n").models["clf"]
    assert m.feature_columns == ["age", "workclass"] and m.label_columns == ["income"]
    assert not m.features_rest


def test_headerless_file_without_names_has_positions(tmp_path):
    m = lineage('''
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        df = pd.read_csv("data.csv", header=None)
        clf = LogisticRegression().fit(df.iloc[:, :-1], df.iloc[:, -1])
    ''', tmp_path, data__csv="1,2,3,0\n4,5,6,1\n").models["clf"]
    assert m.feature_columns == ["0", "1", "2"] and m.label_columns == ["3"]


def test_index_col_is_not_a_feature(tmp_path):
    m = lineage('''
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        df = pd.read_csv("data.csv", index_col="PassengerId")
        clf = LogisticRegression().fit(df.drop(columns=["Survived", "Name"]), df["Survived"])
        df2 = pd.read_csv("data.csv", index_col=0)
        clf2 = LogisticRegression().fit(df2.drop(columns=["Survived", "Name"]), df2["Survived"])
    ''', tmp_path, data__csv=TITANIC).models
    for name in ("clf", "clf2"):
        assert m[name].feature_columns == ["Age", "Fare", "Pclass", "Sex"], name


def test_numpy_loadtxt_has_numbered_columns(tmp_path):
    code = '''
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        data = np.loadtxt("pima.csv", delimiter=",")
        clf = LogisticRegression().fit(data[:, 0:3], data[:, 3])
    '''
    static = lineage(code).models["clf"]
    assert static.features_rest == ["columns 0..2 of pima.csv"] and static.label_rest == ["column 3 of pima.csv"]
    m = lineage(code, tmp_path, pima__csv="6,148,72,1\n1,85,66,0\n").models["clf"]
    assert m.feature_columns == ["0", "1", "2"] and m.label_columns == ["3"]


def test_first_record_taken_for_a_header_then_named_in_code(tmp_path):
    m = lineage('''
        import pandas as pd
        from sklearn.tree import DecisionTreeClassifier
        df = pd.read_csv("iris.csv")
        df.columns = ["sl", "sw", "pl", "pw", "species"]
        clf = DecisionTreeClassifier().fit(df.values[:, 0:4], df.values[:, 4])
    ''', tmp_path, iris__csv="5.1,3.5,1.4,0.2,Iris-setosa\n4.9,3.0,1.4,0.2,Iris-setosa\n").models["clf"]
    assert m.feature_columns == ["pl", "pw", "sl", "sw"] and m.label_columns == ["species"]


def test_empty_header_cell_is_unnamed_as_pandas_names_it(tmp_path):
    m = lineage('''
        import pandas as pd
        from sklearn.svm import SVC
        data = pd.read_csv("data.csv")
        data.drop(["id", "Unnamed: 3"], axis=1, inplace=True)
        x = data.drop(["diagnosis"], axis=1)
        x = (x - np.min(x)) / (np.max(x) - np.min(x))
        svm = SVC().fit(x, data.diagnosis.values)
    ''', tmp_path, data__csv="id,diagnosis,radius,\n1,M,17.9,\n2,B,20.5,\n").models["svm"]
    assert m.feature_columns == ["radius"] and m.label_columns == ["diagnosis"]


def test_arithmetic_on_unlisted_columns_keeps_them_as_the_rest():
    m = lineage('''
        import numpy as np
        import pandas as pd
        from sklearn.svm import SVC
        data = pd.read_csv("data.csv")
        x = data.drop(["diagnosis"], axis=1)
        x = (x - np.min(x)) / (np.max(x) - np.min(x))
        svm = SVC().fit(x, data.diagnosis.values)
    ''').models["svm"]
    assert m.features_rest == ["all columns of data.csv except diagnosis"] and not m.unknown


def test_resampling_returns_features_and_label():
    m = lineage('''
        import pandas as pd
        from imblearn.over_sampling import SMOTE
        from sklearn.linear_model import LogisticRegression
        df = pd.read_csv("d.csv")
        X_res, y_res = SMOTE().fit_resample(df[["a", "b"]], df["y"])
        model = LogisticRegression().fit(X_res, y_res)
    ''').models
    assert list(m) == ["model"] and m["model"].feature_columns == ["a", "b"] and m["model"].label_columns == ["y"]


def test_reshaping_pandas_calls_are_flagged_and_common_calls_are_known():
    report = lineage('''
        import pandas as pd
        from sklearn.linear_model import Ridge
        df = pd.read_csv("d.csv")
        df.info()
        wide = df.pivot_table(index="k", columns="kind", values="v")
        X = df[["a", "b"]].values.reshape(-1, 2).astype(float)
        m = Ridge().fit(X, df["y"].values.ravel())
        w = Ridge().fit(wide, df["y"])
    ''')
    assert report.models["m"].feature_columns == ["a", "b"] and not report.models["m"].unknown
    assert any("reshaped by frame.pivot_table" in u for u in report.models["w"].unknown)
    assert not any("unknown API" in u for u in report.unknown), report.unknown


def test_loops_over_enumerate_and_zip_of_column_lists():
    m = lineage('''
        import pandas as pd
        from sklearn.preprocessing import LabelEncoder
        from sklearn.linear_model import LogisticRegression
        df = pd.read_csv("d.csv")
        feats = []
        for i, col in enumerate(["a", "b"]):
            df[col + "_enc"] = LabelEncoder().fit_transform(df[col])
            feats.append(col + "_enc")
        for new, old in zip(["c2"], ["c"]):
            df[new] = df[old] * 2
        clf = LogisticRegression().fit(df[feats + ["c2"]], df["y"])
    ''').models["clf"]
    assert m.feature_columns == ["a", "b", "c"] and m.label_columns == ["y"]


def test_old_ix_indexer_by_position_and_array_columns_encoded_in_place(tmp_path):
    m = lineage('''
        import pandas as pd
        from sklearn import preprocessing
        from sklearn.tree import DecisionTreeClassifier
        df = pd.read_csv("data.csv", delimiter=",")
        X = df[["Age", "Sex", "Fare"]].values
        le = preprocessing.LabelEncoder()
        le.fit(["female", "male"])
        X[:, 1] = le.transform(X[:, 1])
        tree = DecisionTreeClassifier().fit(X, df.ix[:, 1])
    ''', tmp_path, data__csv=TITANIC)
    assert m.models["tree"].feature_columns == ["Age", "Fare", "Sex"]
    assert m.models["tree"].label_columns == ["Survived"]
    assert not m.unknown, m.unknown


def test_cross_validating_a_trained_model_is_not_another_model():
    report = lineage('''
        import pandas as pd
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.model_selection import KFold, cross_val_score
        from sklearn.base import clone
        from sklearn.utils import shuffle
        df = pd.read_csv("d.csv")
        X, y = shuffle(df[["a", "b"]], df["y"])
        for n in range(1, 20):
            rf = RandomForestRegressor(n_estimators=n)
            rf.fit(X, y)
            score = cross_val_score(rf, X, y, cv=KFold(5))
        fresh = clone(rf)
    ''')
    assert list(report.models) == ["rf"]
    assert report.models["rf"].feature_columns == ["a", "b"] and report.models["rf"].label_columns == ["y"]


def test_invisible_characters_pasted_from_the_web_are_ignored():
    report = lineage("import pandas as pd\nfrom sklearn.svm import SVR\ndf = pd.read_csv('d.csv')\n"
                     "m = SVR().fit(df[['a']], df['y'])\n\u200b\nprint(1 +\u00a02)\n")
    assert report.models["m"].feature_columns == ["a"] and not report.unknown, report.unknown


def test_frames_and_models_changed_in_place_through_a_loop_variable(tmp_path):
    (tmp_path / "input").mkdir()
    report = lineage('''
        import pandas as pd
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        train = pd.read_csv("input/train.csv")
        test = pd.read_csv("input/test.csv")
        for dataset in [train, test]:
            dataset["FamilySize"] = dataset["SibSp"] + dataset["Parch"] + 1
        train = train.drop(["PassengerId", "Name", "SibSp", "Parch"], axis=1)
        y = train.pop("Survived")
        rf, lr = RandomForestClassifier(), LogisticRegression()
        for name, model in {"rf": rf, "lr": lr}.items():
            model.fit(train.values, y)
    ''', tmp_path, **{"input/train__csv": "PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch\n1,0,3,A,male,22,1,0\n",
                      "input/test__csv": "PassengerId,Pclass,Name,Sex,Age,SibSp,Parch\n2,1,B,female,38,1,0\n"})
    assert sorted(report.models) == ["lr", "rf"]
    for m in report.models.values():
        assert m.feature_columns == ["Age", "Parch", "Pclass", "Sex", "SibSp"], m.feature_columns
        assert m.label_columns == ["Survived"]


def test_label_range_of_columns_without_header_is_kept_symbolically():
    m = lineage('''
        import numpy as np
        import pandas as pd
        from sklearn.linear_model import Ridge
        train = pd.read_csv("train.csv")
        test = pd.read_csv("test.csv")
        all_data = pd.concat((train.loc[:, "MSSubClass":"SaleCondition"], test.loc[:, "MSSubClass":"SaleCondition"]))
        all_data = pd.get_dummies(all_data).fillna(0)
        model = Ridge().fit(all_data[:train.shape[0]], np.log1p(train.SalePrice))
    ''').models["model"]
    assert m.features_rest == ["columns MSSubClass..SaleCondition of test.csv, train.csv"]
    assert m.label_columns == ["SalePrice"]


def test_positional_selection_by_a_mask_over_column_names(tmp_path):
    code = '''
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        data = pd.read_csv("creditcard.csv")
        X = data.iloc[:, data.columns != "Class"]
        y = data.iloc[:, data.columns == "Class"]
        lr = LogisticRegression().fit(X, y.values.ravel())
    '''
    m = lineage(code, tmp_path, creditcard__csv="Time,V1,Amount,Class\n0,-1.3,149.6,0\n").models["lr"]
    assert m.feature_columns == ["Amount", "Time", "V1"] and m.label_columns == ["Class"]
    static = lineage(code).models["lr"]
    assert static.features_rest == ["all columns of creditcard.csv except Class"] and static.label_columns == ["Class"]


def test_dummies_of_object_columns_after_the_label_was_recoded(tmp_path):
    (tmp_path / "data").mkdir()
    report = lineage('''
        import os
        import pandas as pd
        from sklearn.ensemble import GradientBoostingClassifier
        get_ipython().run_line_magic("matplotlib", "inline")
        columns = ["age", "workclass", "fnlwgt", "income"]
        df = pd.read_csv(os.path.join("data", "adult.data"), names=columns, sep=r"\\s*,\\s*", engine="python")
        df["income"] = df["income"].apply(lambda x: 1 if x == ">50K" else 0)
        cat = df.select_dtypes(include="object").columns
        df = pd.get_dummies(df, columns=cat)
        display(df.head())
        gb = GradientBoostingClassifier().fit(df.drop("income", axis=1), df.income)
    ''', tmp_path, **{"data/adult__data": "39, State-gov, 77516, <=50K\n50, Self-emp, 83311, >50K\n"})
    m = report.models["gb"]
    assert m.feature_columns == ["age", "fnlwgt", "workclass"] and m.label_columns == ["income"]
    assert m.sources == ["data/adult.data"]
    assert not any("unknown API" in u or "not known statically" in u for u in report.unknown), report.unknown


def test_a_label_that_cannot_be_traced_is_said():
    report = lineage('''
        import pandas as pd
        from sklearn.svm import SVC
        df = pd.read_csv("d.csv")
        clf = SVC().fit(df[["a"]], labels_from_elsewhere)
    ''')
    assert any("label not traced to any source" in u for u in report.unknown), report.unknown


def test_python2_tabs_mixed_with_spaces_and_tensorflow_keras():
    report = lineage_of_source(
        'import pandas as pd\nfrom tensorflow import keras\nfrom tensorflow.keras import layers\n'
        'df = pd.read_csv("d.csv")\nif True:\n\tX = df[["a", "b"]]\n        y = df["y"]\n'
        'model = keras.Sequential([layers.Dense(8), layers.Dense(1)])\n'
        'model.compile(optimizer="adam", loss="mse")\nhist = model.fit(X, y, epochs=2)\n', filename="s.py")
    assert list(report.models) == ["model"]
    assert report.models["model"].feature_columns == ["a", "b"] and report.models["model"].label_columns == ["y"]
    assert report.unknown == ["s.py:5: Python 2 source: tabs mixed with spaces (read as Python 3)"]


def test_cli_prints_what_it_knows_without_a_header_and_the_python2_note(tmp_path, run_txgit):
    (tmp_path / "old.py").write_text(
        'import pandas as pd\nfrom sklearn.cross_validation import train_test_split\nfrom sklearn.svm import SVC\n'
        'data = pd.read_csv("data.csv")\nprint "rows:", len(data)\n'
        'X_tr, X_te, y_tr, y_te = train_test_split(data.iloc[:, 1:-1], data.iloc[:, -1])\n'
        'clf = SVC().fit(X_tr, y_tr)\n')
    out = run_txgit("lineage", "--script", "old.py", cwd=tmp_path, check=True).stdout
    assert "  features: columns 1..-2 of data.csv\n  label:    column -1 of data.csv\n" in out
    assert "not followed (1): old.py:5: Python 2 source: print statement (read as Python 3)" in out


def test_classes_of_the_script_make_transformers_and_models():
    report = lineage('''
        import pandas as pd
        from sklearn.base import BaseEstimator, TransformerMixin
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.linear_model import LinearRegression
        from mylib import Fancy

        class Selector(BaseEstimator, TransformerMixin):
            def __init__(self, names):
                self.names = names
            def fit(self, X, y=None):
                return self
            def transform(self, X):
                return X[self.names].values

        class MeanModel:
            def fit(self, X, y):
                self.mean = y.mean()
            def predict(self, X):
                return [self.mean] * len(X)

        housing = pd.read_csv("housing.csv")
        labels = housing.pop("value")
        prep = Pipeline([("select", Selector(["rooms", "age"])), ("scale", StandardScaler())])
        prepared = prep.fit_transform(housing)
        other = Pipeline([("scale", StandardScaler()), ("f", Fancy())]).fit_transform(housing)
        lin = LinearRegression().fit(prepared, labels)
        base = MeanModel()
        base.fit(housing[["rooms"]], labels)
    ''')
    assert sorted(report.models) == ["base", "lin"]
    assert report.models["base"].type == "MeanModel" and report.models["base"].feature_columns == ["rooms"]
    lin = report.models["lin"]
    assert lin.features_rest == ["all columns of housing.csv except value"] and lin.label_columns == ["value"]
    assert any("Selector is defined in the analysed code" in u for u in lin.unknown), lin.unknown


def test_label_recoded_by_conditions_keeps_its_source():
    report = lineage('''
        import pandas as pd
        from keras.utils import np_utils
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.svm import SVC
        def good_wine(row):
            if row["quality"] >= 7:
                val = 1
            else:
                val = 0
            return val
        wine = pd.read_csv("wine.csv", sep=";")
        wine["good"] = wine.apply(good_wine, axis=1)
        rf = RandomForestClassifier().fit(wine.drop(["quality", "good"], axis=1), wine["good"])
        classes = []
        for v in list(wine["quality"]):
            if v <= 4:
                classes += [0]
            else:
                classes += [1]
        svc = SVC().fit(wine[["alcohol"]], np_utils.to_categorical(classes))
    ''')
    assert report.models["rf"].label_columns == ["quality"]
    assert report.models["rf"].features_rest == ["all columns of wine.csv except good, quality"]
    assert report.models["svc"].label_columns == ["quality"]


def test_pipeline_step_imported_from_another_file_is_said_unknown():
    m = lineage('''
        import pandas as pd
        from sklearn.pipeline import Pipeline
        from sklearn.ensemble import RandomForestClassifier
        from preprocess import preprocessor
        df = pd.read_csv("d.csv")
        pipeline = Pipeline(steps=[("pre", preprocessor), ("clf", RandomForestClassifier())])
        pipeline.fit(df.drop("y", axis=1), df.y)
    ''').models["pipeline"]
    assert m.type == "Pipeline(RandomForestClassifier)"
    assert any("pipeline step(s) not known" in u for u in m.unknown), m.unknown


def test_python2_builtins_and_dict_iteration():
    report = lineage('''
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        df = pd.read_csv("d.csv")
        lr = LogisticRegression()
        models = {"lr": lr}
        for i in xrange(2):
            print i
        for name, model in models.iteritems():
            model.fit(df[["a"]], df["y"])
    ''')
    assert report.models["lr"].feature_columns == ["a"]
    assert report.unknown == ["s.py:8: Python 2 source: print statement (read as Python 3)"]


def test_path_with_an_unknown_root_and_named_aggregations():
    report = lineage('''
        import os
        import pandas as pd
        from sklearn.linear_model import LogisticRegression
        from myproject.utils import get_project_root
        patients = pd.read_csv(os.path.join(str(get_project_root()), "healthcare", "patients.csv"))
        stats = patients.groupby("age_group").agg(mean_c=("complications", "mean"))
        data = patients.merge(stats, on=["age_group"])
        data["label"] = data["complications"] > 1.2 * data["mean_c"]
        clf = LogisticRegression().fit(data[["smoker", "income"]], data["label"])
    ''')
    m = report.models["clf"]
    assert m.sources == ["healthcare/patients.csv"]
    assert m.feature_columns == ["income", "smoker"] and m.label_columns == ["complications"]
    assert any("start of a path is not known" in u for u in report.unknown)


def test_positions_after_a_drop_without_header_say_what_they_count():
    m = lineage('''
        import pandas as pd
        from sklearn.svm import SVC
        df = pd.read_csv("data.csv")
        df.drop("id", axis=1, inplace=True)
        clf = SVC().fit(df.iloc[:, :-1], df.iloc[:, -1])
    ''').models["clf"]
    assert m.features_rest == ["columns 0..-2 of data.csv (counted without id)"]
    assert m.label_rest == ["column -1 of data.csv (counted without id)"]


def test_a_statement_nested_deeper_than_the_parser_goes_is_skipped():
    chain = "x = " + " + ".join(["df.a"] * 3000)
    report = lineage_of_source("import pandas as pd\nfrom sklearn.svm import SVR\ndf = pd.read_csv('d.csv')\n"
                               + chain + "\nm = SVR().fit(df[['a']], df.y)\n", filename="s.py")
    assert report.models["m"].feature_columns == ["a"]
    assert len(report.unknown) == 1 and report.unknown[0].startswith("s.py:4: cannot read this statement")


def test_names_from_star_imports():
    report = lineage('''
        import pandas as pd
        from sklearn.ensemble import *
        from sklearn.cross_validation import *
        df = pd.read_csv("d.csv")
        X_tr, X_te, y_tr, y_te = train_test_split(df[["a"]], df["y"])
        gb = GradientBoostingClassifier().fit(X_tr, y_tr)
    ''')
    assert list(report.models) == ["gb"] and report.models["gb"].type == "GradientBoostingClassifier"
    assert report.models["gb"].feature_columns == ["a"] and report.models["gb"].label_columns == ["y"]


def test_a_latin1_python2_script_and_a_notebook_file(tmp_path):
    from txgit.lineage import lineage_of_script

    (tmp_path / "old.py").write_bytes(
        b"# -*- coding: latin-1 -*-\nimport pandas as pd\nfrom sklearn.svm import SVC\n"
        b"df = pd.read_csv('d.csv')\nprint 'donn\xe9es'\nclf = SVC().fit(df[['a']], df['y'])\n")
    report = lineage_of_script(tmp_path / "old.py", use_files=False)
    assert report.models["clf"].feature_columns == ["a"]
    nb = {"cells": [
        {"cell_type": "markdown", "source": ["# Titanic"]},
        {"cell_type": "code", "execution_count": 1, "source": ["%matplotlib inline\n", "import pandas as pd\n",
                                                              "from sklearn.svm import SVC\n"]},
        {"cell_type": "code", "execution_count": 2, "source": "df = pd.read_csv('d.csv')\ndf.head()"},
        {"cell_type": "code", "execution_count": None, "source": ["clf = SVC().fit(df[['a', 'b']], df.y)"]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    import json
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb))
    m = lineage_of_script(tmp_path / "nb.ipynb", use_files=False).models["clf"]
    assert m.feature_columns == ["a", "b"] and m.label_columns == ["y"] and m.fit_at == "cell 3:1"


def test_statsmodels_gets_its_data_when_built():
    report = lineage('''
        import pandas as pd
        import statsmodels.api as sm
        df = pd.read_csv("d.csv")
        X = sm.add_constant(df[["a", "b"]])
        results = sm.OLS(df["y"], X).fit()
        print(results.summary())
    ''')
    assert list(report.models) == ["results"] and report.models["results"].type == "OLS"
    assert report.models["results"].feature_columns == ["a", "b"] and report.models["results"].label_columns == ["y"]
    assert not report.unknown, report.unknown


def test_dict_comprehensions_are_mappings():
    report = lineage('''
        import pandas as pd
        from sklearn.svm import SVC
        df = pd.read_csv("d.csv")
        codes = {k: i for i, k in enumerate(["S", "C", "Q"])}
        df["port"] = df["Embarked"].map(codes)
        df = df.rename(columns={c: c.lower() for c in ["Age", "Survived"]})
        clf = SVC().fit(df[["port", "age"]], df.survived)
    ''')
    m = report.models["clf"]
    assert m.feature_columns == ["Age", "Embarked"] and m.label_columns == ["Survived"]
    assert not report.unknown, report.unknown
