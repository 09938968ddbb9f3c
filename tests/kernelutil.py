"""Drive a real ipykernel (jupyter_client) from tests and benchmarks."""

from __future__ import annotations

import os
import queue
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.manager import start_new_kernel


@dataclass
class CellResult:
    status: str
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # "ename: evalue"
    execution_count: int | None = None
    outputs: list = field(default_factory=list)


class Kernel:
    """A real ipykernel whose cwd is ``cwd``; ``run`` executes one cell and collects its output."""

    def __init__(self, cwd: Path, env: dict | None = None) -> None:
        self.km, self.kc = start_new_kernel(cwd=str(cwd), env={**os.environ, **(env or {})}, startup_timeout=60)

    @property
    def pid(self) -> int:
        return self.km.provisioner.process.pid

    def run(self, code: str, timeout: float = 120) -> CellResult:
        msg_id = self.kc.execute(code)
        out = CellResult("ok")
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no output from the kernel within {timeout} s for:\n{code}") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            t, c = msg["msg_type"], msg["content"]
            if t == "stream":
                if c["name"] == "stdout":
                    out.stdout += c["text"]
                else:
                    out.stderr += c["text"]
            elif t == "error":
                out.status, out.error = "error", f"{c['ename']}: {c['evalue']}"
            elif t in ("execute_result", "display_data"):
                out.outputs.append(c["data"])
            elif t == "status" and c["execution_state"] == "idle":
                break
        reply = self.kc.get_shell_msg(timeout=timeout)
        out.execution_count = reply["content"].get("execution_count")
        return out

    def ok(self, code: str, timeout: float = 120) -> CellResult:
        r = self.run(code, timeout)
        if r.status != "ok":
            raise AssertionError(f"cell failed: {r.error}\n{code}\nstderr: {r.stderr}")
        return r

    def value(self, expr: str):
        """The value of ``expr`` in the kernel, through its repr (literals only)."""
        import ast

        r = self.ok(f"print(repr({expr}))")
        return ast.literal_eval(r.stdout.strip())

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)
