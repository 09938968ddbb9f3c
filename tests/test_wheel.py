"""The wheel holds every file the package reads at run time (an editable install hides a missing one).

.ci/wheel_smoke.sh runs every command from a wheel installed in a clean environment; this is the quick
check the suite makes: `pip wheel` as a user runs it, then a command that reads package data, run from
the wheel's files (not the source tree).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # built from a copy: no build/ folder of this tree (stale files included) takes part
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(ROOT / "txgit", src / "txgit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("txgit-*.whl")
    return built


def test_the_wheel_holds_every_file_of_the_package(wheel):
    packaged = set(zipfile.ZipFile(wheel).namelist())
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "txgit").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert source - packaged == set()
    assert "txgit/lineage/kb.json" in packaged and "txgit/gitwriter.py" in packaged


def test_the_wheel_switches_on_the_jupyterlab_panel(wheel):
    """`pip install` puts the prebuilt lab extension and the server extension's switch where Jupyter looks."""
    data = "txgit-0.1.0.data/data/"
    packaged = set(zipfile.ZipFile(wheel).namelist())
    built = {p.relative_to(ROOT / "txgit" / "jupyter" / "labextension").as_posix()
             for p in (ROOT / "txgit" / "jupyter" / "labextension").rglob("*") if p.is_file()}
    assert any(b.startswith("static/remoteEntry.") for b in built)
    assert {f"{data}share/jupyter/labextensions/txgit-labextension/{b}" for b in built} <= packaged
    assert f"{data}etc/jupyter/jupyter_server_config.d/txgit.json" in packaged


def test_lineage_runs_from_the_wheel(wheel, tmp_path):
    """`txgit lineage` reads txgit/lineage/kb.json: from a wheel without it, FileNotFoundError."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
                                   "df = pd.read_csv('customers.csv')\n"
                                   "model = LogisticRegression().fit(df[['age', 'income']], df['churned'])\n")
    env = {**os.environ, "PYTHONPATH": str(site)}  # the wheel's files, not this checkout's
    where = subprocess.run([sys.executable, "-c", "import txgit; print(txgit.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), where
    proc = subprocess.run([sys.executable, "-m", "txgit", "lineage", "--script", "train.py"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "model (LogisticRegression)" in proc.stdout and "label:    customers.csv: churned" in proc.stdout
