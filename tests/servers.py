"""Real servers on 127.0.0.1 for remote tests and benchmarks: moto's S3 server and `git daemon`.

Each is a context manager that starts the server on a free port, waits until it
answers, and stops it on exit (also when the body fails).

A server's output goes to a log file, never to a pipe nobody reads: moto
(werkzeug) logs one line per request, and once an unread pipe's 64 KiB buffer
is full the server blocks in write(2) and every request after about the 900th
hangs (seen as a push of 1,000 blobs stalling inside s3fs).
"""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_file(what: str):
    """An anonymous temporary file for a server's stdout+stderr (deleted when closed)."""
    return tempfile.TemporaryFile(mode="w+", prefix=f"txgit-{what}-")


def _log_tail(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-2000:]


def _wait_port(port: int, proc: subprocess.Popen, what: str, log, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {_log_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start on port {port}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server; yields its endpoint URL (credentials: any, see S3_ENV)."""
    port = free_port()
    log = _log_file("moto")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, "moto server", log)
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:  # the port opens before the app answers
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).read()
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        _moto_logs[endpoint] = log
        yield endpoint
    finally:
        _moto_logs.pop(f"http://127.0.0.1:{port}", None)
        _stop(proc)
        log.close()


_moto_logs: dict = {}  # endpoint -> the log file of the moto server answering there
# werkzeug colours some lines (a 206 answer to a range read: ESC[35m…ESC[0m inside the quotes); those count too
_ANSI = r"(?:\x1b\[[0-9;]*m)*"
_REQUEST_LINE = re.compile(rf'"{_ANSI}(GET|PUT|HEAD|POST|DELETE) (/[^ ]*) HTTP/[0-9.]+{_ANSI}" ')


def s3_requests(endpoint: str, bucket: str | None = None) -> list[tuple[str, str]]:
    """Every request moto's server has answered so far (from its request log): (method, path);
    ``bucket``: only those to that bucket. Tests and benchmarks count requests with it."""
    log = _moto_logs[endpoint]
    log.flush()
    log.seek(0)
    text = log.read()
    log.seek(0, 2)  # the server keeps appending (the file is shared with it)
    out = [(m.group(1), m.group(2)) for m in _REQUEST_LINE.finditer(text)]
    if bucket is not None:
        out = [(m, p) for m, p in out if p == f"/{bucket}" or p.startswith((f"/{bucket}/", f"/{bucket}?"))]
    return out


def make_bucket(endpoint: str, bucket: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)


@contextmanager
def git_daemon(base: Path, *, receive_pack: bool = True) -> Iterator[str]:
    """`git daemon` serving the bare repositories under ``base``; yields git://127.0.0.1:PORT.

    ``receive_pack``: pushes are accepted (without it the daemon serves fetches and refuses pushes)."""
    port = free_port()
    log = _log_file("git-daemon")
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", f"--base-path={base}",
         "--export-all", *(["--enable=receive-pack"] if receive_pack else []), str(base)],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, "git daemon", log)
        yield f"git://127.0.0.1:{port}"
    finally:
        _stop(proc)
        log.close()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts connections, holds them and never answers: a remote
    that is up but hangs. Yields its port; every connection is closed on exit."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:  # closed on exit
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        try:
            server.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        server.close()
        thread.join(10)
        for conn in held:
            conn.close()


def init_bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


def s3_env(extra: dict | None = None) -> dict:
    return {**os.environ, **S3_ENV, **(extra or {})}


class SwitchableProxy:
    """A TCP proxy on 127.0.0.1 in front of a server of ours: ``mode`` "pass" forwards, "refused"
    resets every connection as it comes, "silent" accepts and never answers. Switching off "pass"
    cuts the connections open (a client's pooled ones too), as a network that goes down.
    ``cut_after(n, mode)``: switch to ``mode`` once ``n`` more bytes came back from the server (a
    network that goes down in the middle of a download)."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.answered = 0  # bytes passed from the server to its clients
        self._cut: tuple[int, str] | None = None
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def set(self, mode: str) -> None:
        self.mode = mode
        if mode != "pass":
            with self._lock:
                cut, self._open = self._open, []
            for s in cut:
                _close(s)

    def cut_after(self, nbytes: int, mode: str) -> None:
        self._cut = (self.answered + nbytes, mode)

    def _answered(self, n: int) -> None:
        self.answered += n
        if self._cut is not None and self.answered >= self._cut[0]:
            mode, self._cut = self._cut[1], None
            self.set(mode)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:  # closed on exit
                return
            if self.mode == "refused":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset
                conn.close()
                continue
            with self._lock:
                self._open.append(conn)
            if self.mode == "silent":
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                _close(conn)
                continue
            with self._lock:
                self._open.append(up)
            for a, b, seen in ((conn, up, None), (up, conn, self._answered)):
                threading.Thread(target=_pipe, args=(a, b, seen), daemon=True).start()

    def close(self) -> None:
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        self._thread.join(10)
        self.set("closed")


def _pipe(a: socket.socket, b: socket.socket, seen=None) -> None:
    try:
        while data := a.recv(65536):
            if seen is not None:
                seen(len(data))
            b.sendall(data)
    except OSError:
        pass
    _close(b)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


@contextmanager
def switchable_proxy(upstream: int) -> Iterator[SwitchableProxy]:
    proxy = SwitchableProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()
