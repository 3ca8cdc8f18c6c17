"""The sidecar JSON beside each clip: what was asked, the seed used, the package and the model, to resume and
to reproduce.

``clip.mp4`` gets ``clip.mp4.json``. Its ``request`` (the command, the inputs by content hash, the settings as
asked, the frame rate and the model's identity) is what a batch compares to skip a clip already made;
``settings`` are the settings with the seed actually used, enough to make the same frames again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

SUFFIX = ".json"
_HASH_CHUNK = 1 << 20


def sidecar_path(video: str | os.PathLike[str]) -> Path:
    """Where the sidecar of ``video`` lives: the video's name plus ``.json``."""
    video = Path(video)
    return video.with_name(video.name + SUFFIX)


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cinemo-animate")
    except PackageNotFoundError:
        return "unknown"


def file_identity(path: str | os.PathLike[str]) -> dict[str, str]:
    """A file by its resolved path and the SHA-256 of its content (a moved file is still the same input)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return {"path": str(Path(path).expanduser().resolve()), "sha256": digest.hexdigest()}


def folder_identity(folder: str | os.PathLike[str], vae: str) -> dict[str, str]:
    """A model folder by its path, VAE choice and a fingerprint of its files' names and sizes (weights are not
    read: a changed file of the same size goes unnoticed)."""
    root = Path(folder).expanduser().resolve()
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{path.relative_to(root).as_posix()}\0{path.stat().st_size}\n".encode())
    return {"folder": str(root), "vae": vae, "files": digest.hexdigest()[:16]}


def settings_record(settings: Any) -> dict[str, Any]:
    """A settings dataclass as JSON-ready values."""
    return json.loads(json.dumps(dataclasses.asdict(settings)))


def build_sidecar(request: dict[str, Any], settings: Any, seed: int, motion_id: float,
                  frames: tuple[int, int, int]) -> dict[str, Any]:
    """The record of one clip: ``request`` as asked, and what made the frames (``frames``: count, height, width)."""
    used = {**settings_record(settings), "seed": seed}
    count, height, width = frames
    return {
        "cinemo_animate": package_version(),
        "request": request,
        "settings": used,
        "seed": seed,
        "motion_id": motion_id,
        "video": {"frames": count, "width": width, "height": height},
    }


def write_sidecar(video: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Write ``record`` beside ``video``, to a temporary name renamed when complete (never half-written)."""
    target = sidecar_path(video)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        temporary.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def already_made(video: str | os.PathLike[str], request: dict[str, Any]) -> bool:
    """Whether ``video`` and its sidecar exist and the sidecar was written for the same ``request``."""
    video = Path(video)
    if not video.is_file():
        return False
    try:
        record = json.loads(sidecar_path(video).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("request") == json.loads(json.dumps(request))
