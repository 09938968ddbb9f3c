"""Two and three people over a network remote, played as users: history in a bare repository served by
`git daemon` on 127.0.0.1, blobs in moto's S3 server on 127.0.0.1, real kernels beside real terminals."""

from __future__ import annotations

import shutil

import pytest
from test_collaboration import User, s3, shared  # noqa: F401  (the fixtures: a git daemon remote, S3 blobs)

from txgit import Workspace

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("shared", ["s3"], indirect=True)
def test_a_value_of_a_module_only_alice_has_loads_at_bobs_next_pull_once_he_has_it(shared, tmp_path,  # noqa: F811
                                                                                   run_txgit):
    """Alice's model is an object of her own module (mymodel.py in her folder, not committed). Bob's
    checkout and pull named it as not loaded, and why, but once Bob copied the module in, his next
    `%txgit pull` said "Already up to date." and left it out: only a checkout of his own branch (which
    nothing told him to type) loaded it. Now the line says what loads it, and the pull does."""
    url, add_args, clone_args, env = shared
    alice = User("alice", Workspace.init(tmp_path / "alice"), run_txgit, env)
    bob = None
    try:
        (alice.ws.root / "mymodel.py").write_text("class Model:\n    def __init__(self, w):\n        self.w = w\n")
        alice.cell("from mymodel import Model\nmodel = Model(3)\nx = 1")
        alice.tx("remote", "add", "origin", url, *add_args, "--trusted")
        alice.tx("push")
        alice.tx("clone", url, str(tmp_path / "bob"), *clone_args, "--trusted")
        bob = User("bob", Workspace(tmp_path / "bob"), run_txgit, env)
        bob.cell("mine = 'bob'")
        out = bob.cell("%txgit checkout main").stdout
        fix = "(once it imports here, `%txgit pull` or `%txgit checkout main` loads it)"
        assert ("  not restored: model: mymodel.Model could not be loaded here (module 'mymodel' is not installed "
                f"here) {fix}\n") in out, out
        assert "loaded: x" in out and bob.value("(x, mine, 'model' in globals())") == (1, "bob", False)
        assert "not restored: model: mymodel.Model could not be loaded here" in bob.cell("%txgit status").stdout

        alice.cell("x = 2\nmodel.w = 4")
        alice.tx("push")
        bob.cell("mine = 'bob2'")
        out = bob.cell("%txgit pull").stdout
        assert "Merged origin/main into main" in out and "; loaded x" in out, out
        assert ("not loaded: model: mymodel.Model could not be loaded here (module 'mymodel' is not installed here); "
                "the next commits keep it as origin/main has it; once it imports here, `%txgit pull` or "
                "`%txgit checkout main` loads it") in out, out
        assert bob.value("(x, mine, 'model' in globals())") == (2, "bob2", False)

        shutil.copy(alice.ws.root / "mymodel.py", bob.ws.root / "mymodel.py")  # Bob gets the module
        out = bob.cell("%txgit pull").stdout
        assert out.strip() == "Already up to date; loaded Model, model.", out
        assert bob.value("(model.w, x, mine)") == (4, 2, "bob2")
        assert "not restored" not in bob.cell("%txgit status").stdout
        bob.cell("model.w += 1")
        bob.tx("push")
        alice.tx("pull")
        assert alice.value("(model.w, mine, x)") == (5, "bob2", 2)  # nothing of either was lost on the way
    finally:
        alice.shutdown()
        if bob is not None:
            bob.shutdown()
