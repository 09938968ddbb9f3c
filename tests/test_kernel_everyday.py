"""Everyday use of the extension in real kernels, and what a terminal beside them shows:
`%load_ext txgit` says which workspace it opened (and refuses a home folder), a fresh kernel makes
unpicklable values again by re-running their code, `%txgit auto on` commits what was done while off."""

from __future__ import annotations

from pathlib import Path

import pytest
from kernelutil import Kernel

from txgit import Workspace

pytestmark = pytest.mark.timeout(300)


# -- %load_ext txgit says where it is, and never versions a home folder ------------------------------

def test_load_ext_says_which_workspace_it_opened_or_created(tmp_path):
    proj = (tmp_path / "proj").resolve()
    (proj / "sub").mkdir(parents=True)
    k = Kernel(proj)
    try:
        assert k.ok("%load_ext txgit").stdout == f"txgit: created workspace {proj}, on branch main, no commits yet\n"
        k.ok("x = 1")
    finally:
        k.shutdown()
    head = Workspace.open(proj).head()
    k = Kernel(proj / "sub")  # a kernel in a folder below the workspace opens it, and says which
    try:
        said = k.ok("%load_ext txgit").stdout
        assert said == f"txgit: opened workspace {proj}, on branch main, at {head.short_id} (cell [2]: x = 1)\n"
    finally:
        k.shutdown()


def test_load_ext_refuses_to_create_a_workspace_in_a_home_folder(tmp_path, run_txgit):
    home = (tmp_path / "home" / "me").resolve()
    home.mkdir(parents=True)
    env = {"HOME": str(home)}
    k = Kernel(home, env=env)
    try:
        r = k.run("%load_ext txgit")
        assert r.status == "error" and len(r.traceback) == 1, r.traceback
        said = r.traceback[0]
        assert said.startswith(f"txgit: error: not creating a workspace in your home folder {home} "), said
        assert "`%cd` to one and `%load_ext txgit` again" in said and "`txgit init` it" in said
        assert "%env TXGIT_ALLOW_HOME=1" in said and "Traceback" not in said
        k.ok("x = 1")
        assert not (home / ".txgit").exists()
        # from a terminal: nothing was created there; `txgit init` creates it on purpose, and the
        # extension (not loaded by the refusal) then opens it
        assert "not a txgit workspace" in run_txgit("status", cwd=home).stderr
        run_txgit("init", cwd=home, check=True)
        assert k.ok("%load_ext txgit").stdout == f"txgit: opened workspace {home}, on branch main, no commits yet\n"
    finally:
        k.shutdown()
    above = home.parent  # a folder above home would hold it too
    k = Kernel(above, env=env)
    try:
        r = k.run("%load_ext txgit")
        assert r.status == "error" and "not creating a workspace in a folder above your home folder" in r.traceback[0]
        assert not (above / ".txgit").exists()
        k.ok("%env TXGIT_ALLOW_HOME=1")  # versioning it anyway, as the refusal says
        assert k.ok("%load_ext txgit").stdout.startswith(f"txgit: created workspace {above}, on branch main")
    finally:
        k.shutdown()


def test_the_root_folder_is_refused_too():
    from txgit.errors import TxgitError
    from txgit.sessions.ipython import broad_folder, open_workspace

    assert broad_folder("/") == "the root folder" and broad_folder(Path.home()) == "your home folder"
    assert broad_folder(Path.home() / "project") is None
    if Path("/.txgit").exists():
        pytest.skip("this machine has a workspace in /")
    with pytest.raises(TxgitError, match="not creating a workspace in the root folder /"):
        open_workspace("/")
    assert not Path("/.txgit").exists()
