"""A real JupyterLab server on 127.0.0.1 for the panel's tests and benchmark, with txgit's two extensions.

The server extension is switched on and the lab extension found from this source tree (its build in
txgit/jupyter/labextension), so the tests drive the code of this checkout, not an installed copy; the
wheel's own switches (share/jupyter/labextensions, etc/jupyter/...) are checked by .ci/wheel_smoke.py.
The server's output goes to a log file, its Jupyter config and data to a folder of the test's own.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from servers import _log_file, _log_tail, _stop, free_port

SOURCE = Path(__file__).resolve().parent.parent
LABEXTENSION = SOURCE / "txgit" / "jupyter" / "labextension"


@dataclass
class Lab:
    url: str  # http://127.0.0.1:PORT/
    token: str
    root: Path
    log: Any = None  # the server's output (a temporary file)

    def get(self, path: str, *, token: bool = True) -> tuple[int, Any]:
        """GET url+path: (status, parsed JSON body)."""
        req = urllib.request.Request(self.url + path.lstrip("/"))
        if token:
            req.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body)
            except ValueError:
                return e.code, body.decode(errors="replace")


try:
    from jupyter_server.auth import Authorizer
except ImportError:  # the tests that need it skip without the jupyter extra
    Authorizer = object  # type: ignore[assignment,misc]


class NoFilesAuthorizer(Authorizer):  # type: ignore[misc,valid-type]
    """A server whose users may not read files (``contents``): run with ``authorizer="labutil.NoFilesAuthorizer"``."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "contents"


@contextmanager
def jupyter_lab(root: Path, home: Path, *, authorizer: str | None = None) -> Iterator[Lab]:
    """``jupyter lab`` serving ``root`` on a free port with a token; stopped on exit (also on failure).
    ``authorizer``: an Authorizer class by dotted name (importable from tests/)."""
    config = home / "jupyter-config"
    # Jupyter serves a lab extension's files from <a labextensions folder>/<its npm name>/static
    extensions = home / "labextensions"
    extensions.mkdir(parents=True, exist_ok=True)
    (extensions / "txgit-labextension").symlink_to(LABEXTENSION, target_is_directory=True)
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": {"txgit.jupyter": True}},
        "LabApp": {"extra_labextensions_path": [str(extensions)], "news_url": None,
                   "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                   "extension_manager": "readonly"},
    }))
    # no "would you like news?" toast over the page (it asks the internet)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(home / "jupyter-data"),
           "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"), "JUPYTER_PLATFORM_DIRS": "1"}
    if authorizer is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE / "tests"), env.get("PYTHONPATH")]))
    log = _log_file("jupyterlab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.workspaces_dir={home / 'lab-workspaces'}",
         *([f"--ServerApp.authorizer_class={authorizer}"] if authorizer else []),
         *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI machines run as root
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    lab = Lab(f"http://127.0.0.1:{port}/", token, root)
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {proc.returncode}: {_log_tail(log)}")
            try:
                if lab.get("api/status")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"jupyter lab did not answer on port {port}: {_log_tail(log)}")
            time.sleep(0.2)
        lab.log = log
        yield lab
    finally:
        _stop(proc)
        log.close()
