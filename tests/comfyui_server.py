"""A real ComfyUI server (its ``main.py`` as a subprocess on 127.0.0.1) with this pack, for the HTTP and browser tests.

Each server gets its own base directory (``custom_nodes`` holding only this pack, ``models``, ``input``,
``output``, ``user``, ``temp``), so nothing of the ComfyUI checkout or of a user's setup leaks in, and an
in-memory database. It runs in its own process group, which ``stop`` kills whole; the kernel kills it too if
the test process dies first. Fill ``models``/``input`` before or after ``start``: ComfyUI lists files when asked.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from comfyui_harness import PACK_NAME, REPO

HOST = "127.0.0.1"
START_TIMEOUT_S = 300.0  # importing torch and ComfyUI on two busy cores
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to 127.0.0.1, whatever *_proxy says


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
except (OSError, AttributeError):  # not Linux
    _PRCTL = None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the test process ends, however it ends."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


class ComfyUIServer:
    """One ComfyUI process and its folders; small JSON helpers for its HTTP API."""

    def __init__(self, comfy_path: Path, root: Path) -> None:
        self.comfy_path = comfy_path
        self.root = root
        self.models, self.input, self.output = root / "models", root / "input", root / "output"
        self.log_path = root / "server.log"
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen | None = None
        for folder in ("custom_nodes", "models", "input", "output", "user", "temp"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        link = root / "custom_nodes" / PACK_NAME
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)

    def start(self) -> None:
        """Launch ``main.py``; returns at once (see ``wait_ready``)."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "main.py", "--cpu", "--listen", HOST, "--port", str(self.port),
                 "--disable-auto-launch", "--disable-api-nodes", "--database-url", "sqlite:///:memory:",
                 "--base-directory", str(self.root)],
                cwd=self.comfy_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent,
            )

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Until the server answers; fails (with the log) if it died or came up without the pack."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited during start-up:\n{self.log_tail()}")
            try:
                info = self.get("/object_info/CinemoModelLoader")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}") from None
                time.sleep(0.5)
        if not info:
            raise RuntimeError(f"ComfyUI started without the {PACK_NAME} pack:\n{self.log_tail()}")

    def stop(self) -> None:
        """Kill the whole process group: SIGTERM, then SIGKILL after a grace period."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line in /proc/<pid>/status")

    # --- HTTP -----------------------------------------------------------------------------------------------------

    def get(self, path: str, timeout: float = 30) -> Any:
        with _HTTP.open(self.url + path, timeout=timeout) as response:
            return json.load(response)

    def post(self, path: str, body: dict, timeout: float = 60) -> tuple[int, Any]:
        """POST JSON; returns (HTTP status, decoded JSON or None), error statuses included."""
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with _HTTP.open(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode(errors="replace")

    def queue(self, prompt: dict, client_id: str | None = None) -> str:
        """``POST /prompt``; returns the prompt id (fails with the server's answer if it refused)."""
        status, answer = self.post("/prompt", {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex})
        if status != 200:
            raise AssertionError(f"POST /prompt answered {status}: {answer}")
        return answer["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 300) -> dict:
        """The prompt's ``/history`` entry once it has finished (successfully or not)."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry:  # ComfyUI writes the history entry when the prompt has finished
                return entry
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{prompt_id} did not finish within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def run(self, prompt: dict, timeout: float = 300) -> dict:
        """Queue a prompt, wait for it and require success; returns its ``/history`` entry."""
        entry = self.wait(self.queue(prompt), timeout)
        if entry["status"].get("status_str") != "success":
            raise AssertionError(f"prompt failed: {entry['status']}\n{self.log_tail()}")
        return entry

    @contextmanager
    def messages(self, client_id: str) -> Iterator[Messages]:
        """The websocket messages (``/ws?clientId=``) the server sends this client, collected in the background."""
        listener = Messages(f"ws://{HOST}:{self.port}/ws?clientId={client_id}")
        listener.start()
        try:
            yield listener
        finally:
            listener.stop()


class Messages:
    """Collects a websocket's JSON messages in a thread (aiohttp: a ComfyUI requirement, so always present)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.received: list[dict] = []
        self._changed = threading.Condition()
        self._connected = threading.Event()
        self._loop = None
        self._task = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def start(self, timeout: float = 30) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._connected.wait(0.1):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"could not connect to {self.url}: {self._error!r}")

    def stop(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._task.cancel)
        except (AttributeError, RuntimeError):  # never started, or already ended (the loop is closed)
            pass
        self._thread.join(timeout=10)

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 120) -> dict:
        """The first received message (earliest first, already received ones included) that ``predicate`` accepts."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for message in self.received:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise TimeoutError(f"no matching websocket message; got {self.received[-10:]}")
                self._changed.wait(left)

    def _run(self) -> None:
        import asyncio

        self._loop = asyncio.new_event_loop()
        self._task = self._loop.create_task(self._listen())
        try:
            self._loop.run_until_complete(self._task)
        except (asyncio.CancelledError, Exception) as error:  # reported through start/wait_for
            self._error = error
        finally:
            self._loop.close()
            with self._changed:
                self._changed.notify_all()

    async def _listen(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.ws_connect(self.url) as socket_:
            self._connected.set()
            async for frame in socket_:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    with self._changed:
                        self.received.append(json.loads(frame.data))
                        self._changed.notify_all()


@contextmanager
def comfyui_server(comfy_path: Path, root: Path, prepare: Callable[[ComfyUIServer], None] | None = None,
                   ) -> Iterator[ComfyUIServer]:
    """A started server in ``root``; ``prepare(server)`` fills its folders while ComfyUI imports. Always stopped."""
    server = ComfyUIServer(comfy_path, root)
    server.start()
    try:
        if prepare is not None:
            prepare(server)
        server.wait_ready()
        yield server
    finally:
        server.stop()
