"""Run our nodes inside a real ComfyUI, in this process (no server, no HTTP).

Node tests use the ``comfyui`` fixture from conftest.py. They need ``COMFYUI_PATH`` to point at a ComfyUI
checkout and must run with a Python that has ComfyUI's requirements (its venv, with this project's
requirements.txt installed into it). Without ``COMFYUI_PATH`` they are skipped.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
PACK_NAME = "cinemo_nodes"
SKIP_REASON = (
    "COMFYUI_PATH is not set: node tests run against a real ComfyUI. Point COMFYUI_PATH at a ComfyUI checkout and "
    "run pytest with ComfyUI's Python (with this project's requirements.txt installed); see README."
)


class RecordingServer:
    """What PromptExecutor needs of PromptServer; records the messages a browser would receive."""

    def __init__(self) -> None:
        #: The executor sets it from extra_data; with one it also sends what a browser tab gets ("executing", ...).
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata: dict = {}
        self.messages: list[tuple[str, Any]] = []
        self.on_message: Callable[[str, Any], None] | None = None

    def send_sync(self, event: str, data: Any, sid: Any = None) -> None:
        self.messages.append((event, data))
        if self.on_message is not None:
            self.on_message(event, data)

    def queue_updated(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class Attempt:
    """How one run of :meth:`ComfyUI.attempt` ended, and how far it got."""

    succeeded: bool
    #: The executor's status messages (``execution_error`` holds the exception's type, message and traceback).
    status_messages: list[tuple[str, Any]]
    #: Ids of the nodes whose function began (with its inputs computed) before the run ended.
    started: set[str]
    #: Ids of the nodes whose outputs were computed (or cached) before the run ended.
    finished: set[str]
    #: (node id, step, total) of every progress report, as the server's progress hook sees them.
    progress: list[tuple[str | None, int, int]]
    #: Whether ``interrupt_after_s`` passed and the run was interrupted.
    interrupted: bool

    @property
    def error(self) -> dict | None:
        return next((data for event, data in self.status_messages if event == "execution_error"), None)

    def reached(self, node_id: str) -> bool:
        """Whether ``node_id``'s function ran (began, with its inputs computed) or its output was cached."""
        return node_id in self.started or node_id in self.finished


@dataclass
class ComfyUI:
    """A booted in-process ComfyUI with its own models, input and output folders."""

    root: Path
    models: Path
    input: Path
    output: Path
    node_classes: dict[str, type] = field(default_factory=dict)
    _executor: Any = field(default=None, repr=False)

    def validate(self, prompt: dict) -> tuple[bool, Any, list, dict]:
        import execution

        return asyncio.run(execution.validate_prompt(str(uuid.uuid4()), prompt, None))

    def run(self, prompt: dict) -> tuple[dict, RecordingServer]:
        """Validate and execute an API-format prompt; returns its UI outputs and the recorded messages."""
        executor, server = self._execute(prompt)
        return executor.history_result["outputs"], server

    def execute(self, prompt: dict) -> tuple[dict, dict]:
        """Like ``run``, but returns every node's output values ({node id: [values]}) and the UI outputs."""
        executor, _ = self._execute(prompt)
        values = {node: [value[0] for value in executor.caches.outputs.get(node)] for node in prompt}
        return values, executor.history_result["outputs"]

    def attempt(self, prompt: dict, *, interrupt_after_s: float | None = None, counting_from: str | None = None,
                ) -> Attempt:
        """Validate (it must pass) and execute a prompt as a server would, whatever the outcome: never raises for
        a failed run. One executor serves every call (loaded models stay cached between runs, as in a server).
        With ``interrupt_after_s``, a run still going that long after node ``counting_from`` began executing (after
        the start without it) is interrupted as ``POST /interrupt`` would."""
        import comfy.model_management
        import comfy.utils
        import execution

        ok, error, outputs, node_errors = self.validate(prompt)
        if not ok:
            raise AssertionError(f"prompt failed validation: {error} {node_errors}")
        if self._executor is None:
            self._executor = execution.PromptExecutor(RecordingServer())
        server = self._executor.server
        progress: list[tuple[str | None, int, int]] = []
        started: set[str] = set()
        interrupted = threading.Event()

        def interrupt() -> None:
            interrupted.set()
            comfy.model_management.interrupt_current_processing(True)

        timer = threading.Timer(interrupt_after_s, interrupt) if interrupt_after_s is not None else None

        def on_message(event: str, data: Any) -> None:
            if event == "executing" and isinstance(data, dict) and data.get("node") is not None:
                started.add(data["node"])
                if timer is not None and data["node"] == counting_from:
                    timer.start()

        def hook(value, total, preview, node_id=None, prompt_id=None):  # as main.hijack_progress: stops at a step
            progress.append((node_id or server.last_node_id, int(value), int(total)))
            comfy.model_management.throw_exception_if_processing_interrupted()

        server.on_message = on_message
        comfy.utils.set_progress_bar_global_hook(hook)
        if timer is not None and counting_from is None:
            timer.start()
        try:
            # with a client id (the executor takes it from extra_data) it sends "executing", as to a browser tab
            self._executor.execute(prompt, str(uuid.uuid4()), {"client_id": "harness"}, outputs)
        finally:
            if timer is not None:
                timer.cancel()
            server.on_message = None
            comfy.utils.set_progress_bar_global_hook(None)
            comfy.model_management.interrupt_current_processing(False)
        finished = {node for node in prompt if self._executor.caches.outputs.get(node) is not None}
        return Attempt(succeeded=self._executor.success, status_messages=list(self._executor.status_messages),
                       started=started, finished=finished, progress=progress, interrupted=interrupted.is_set())

    def _execute(self, prompt: dict):
        import execution

        ok, error, outputs, node_errors = self.validate(prompt)
        if not ok:
            raise AssertionError(f"prompt failed validation: {error} {node_errors}")
        server = RecordingServer()
        executor = execution.PromptExecutor(server)
        executor.execute(prompt, str(uuid.uuid4()), {}, outputs)
        if not executor.success:
            raise RuntimeError(f"prompt failed: {executor.status_messages}")
        return executor, server


def boot_comfyui(comfy_path: Path, workdir: Path, *, cpu: bool = True) -> ComfyUI:
    """Import ComfyUI from ``comfy_path`` (on the CPU unless ``cpu`` is False) and load this repository as a pack."""
    sys.path.insert(0, str(comfy_path))
    from comfy.cli_args import args  # must precede any import of comfy.model_management

    args.cpu = args.cpu or cpu
    args.disable_api_nodes = True
    import utils.extra_config  # noqa: F401  (before `nodes`, which would otherwise shadow `utils`)
    import folder_paths

    packs = workdir / "custom_nodes"
    packs.mkdir(parents=True)
    (packs / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    models, inputs, outputs = workdir / "models", workdir / "input", workdir / "output"
    for folder in (models, inputs, outputs):
        folder.mkdir()
    folder_paths.set_output_directory(str(outputs))
    folder_paths.set_input_directory(str(inputs))
    folder_paths.set_temp_directory(tempfile.mkdtemp(dir=workdir))
    folder_paths.add_model_folder_path("custom_nodes", str(packs))

    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    if PACK_NAME not in {Path(path).name for path in getattr(nodes, "LOADED_MODULE_DIRS", {}).values()}:
        raise RuntimeError(f"ComfyUI did not load the pack from {REPO}; see the log above for the import error.")
    # after the pack registered its own folders, so that these are added to them rather than replaced
    for kind in ("cinemo", "diffusers", "text_encoders", "vae", "checkpoints", "diffusion_models"):
        (models / kind).mkdir()
        folder_paths.add_model_folder_path(kind, str(models / kind), is_default=True)
    return ComfyUI(root=workdir, models=models, input=inputs, output=outputs, node_classes=nodes.NODE_CLASS_MAPPINGS)


def comfyui_path() -> Path | None:
    value = os.environ.get("COMFYUI_PATH")
    return Path(value) if value else None
