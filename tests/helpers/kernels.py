"""A real Jupyter kernel driven cell by cell, its outputs read as JupyterLab shows them."""

import os
import queue
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

from tests.helpers.runs import REPO

WIDGET = "application/vnd.jupyter.widget-view+json"


@dataclass
class Cell:
    """What one executed cell left in the notebook: its outputs, in order."""

    outputs: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [output for output in self.outputs if output["output_type"] == kind]

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of_type("error")
        return errors[0] if errors else None

    @property
    def images(self) -> list[bytes]:
        """The PNG pictures the cell shows (display_data and the cell's value)."""
        return [output["data"]["image/png"] for output in self.outputs
                if "image/png" in output.get("data", {})]  # fmt: skip

    @property
    def widgets(self) -> int:
        return sum(WIDGET in output.get("data", {}) for output in self.outputs)

    @property
    def text(self) -> str:
        """The streams as a person reads them: a carriage return redraws its line."""
        streams = "".join(output["text"] for output in self.of_type("stream"))
        return "\n".join(line.rsplit("\r", 1)[-1] for line in streams.split("\n"))

    def lines(self) -> list[str]:
        """Every line the cell shows: stream lines, one per widget, the text of other outputs
        without a picture, and an error's traceback."""
        shown = [line for line in self.text.split("\n") if line.strip()]
        for output in self.outputs:
            data = output.get("data", {})
            if WIDGET in data:
                shown.append("<progress widget>")
            elif data and "image/png" not in data:
                shown.extend(data.get("text/plain", "").splitlines())
            elif output["output_type"] == "error":
                shown.extend(line for entry in output["traceback"] for line in entry.split("\n"))
        return shown


class Kernel:
    """A kernel of this project's environment, in ``cwd``: ``run(code)`` executes one cell and
    returns its outputs; ``interrupt()`` is the stop button."""

    def __init__(self, manager: KernelManager) -> None:
        self.manager = manager
        self.client = manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(
        self, code: str, timeout: float = 600, interrupt_when: Callable[[], bool] | None = None
    ) -> Cell:
        """Execute ``code``; with ``interrupt_when``, press stop once it says so (asked each
        second)."""
        msg_id = self.client.execute(code)
        cell, deadline = Cell(), time.monotonic() + timeout
        while True:
            if interrupt_when is not None and interrupt_when():
                self.manager.interrupt_kernel()
                interrupt_when = None
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cell ran over {timeout} s: {code}")
            try:
                message = self.client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "status" and content["execution_state"] == "idle":
                return cell
            if kind == "clear_output":
                cell.outputs.clear()
            elif kind in ("stream", "display_data", "execute_result", "error"):
                cell.outputs.append({"output_type": kind, **content})


@contextmanager
def kernel(cwd: Path, **env: str) -> Iterator[Kernel]:
    """A fresh kernel running in ``cwd`` with the project importable and ``env`` set."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
                   **env}  # fmt: skip
    environment.pop("MPLBACKEND", None)  # as a person's kernel starts
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(cwd), env=environment)
    try:
        yield Kernel(manager)
    finally:
        manager.shutdown_kernel(now=True)
