"""Optional download of the released weights (``maxin-cn/Cinemo`` on Hugging Face), only when asked for.

Nothing in this package downloads on its own: the ComfyUI loaders (the model and the temporal VAE) call
:func:`download_cinemo` only when the user picks their download entry, the command line only with ``--download``. ``huggingface_hub`` is imported
here, lazily. Every failure (the library missing, no network, ``HF_HUB_OFFLINE=1``, an incomplete result)
becomes, with its real cause, a :class:`DownloadError` whose message names the URL and the exact folder to put the files in.

A part already complete in the destination is not fetched again, and then no connection is made at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

from .components import HF_REPO_ID, HF_URL, MODEL_PARTS, ModelPart, part_problem

#: The sub-folders of the released repository this module can fetch. ``cinemo.pt`` (a single-file copy
#: of ``unet/``) is never fetched.
PARTS: dict[str, ModelPart] = MODEL_PARTS
#: What Cinemo Model Loader's download entry fetches: the UNet (CLIP-L comes from ComfyUI's own loader).
COMFYUI_PARTS: tuple[str, ...] = ("unet",)
#: What Cinemo Load Temporal VAE's download entry fetches.
COMFYUI_VAE_PARTS: tuple[str, ...] = ("vae_temporal_decoder",)
#: What ``cinemo-animate --model DIR --download`` fetches: everything the official pipeline uses.
CLI_PARTS: tuple[str, ...] = ("unet", "vae_temporal_decoder", "text_encoder", "tokenizer")
_TRUE = {"1", "on", "yes", "true"}


class DownloadError(RuntimeError):
    """The weights could not be fetched; the message says where to put them by hand."""


def offline_requested() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value now (read at call time, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _check_parts(parts: Iterable[str]) -> tuple[str, ...]:
    if isinstance(parts, str):
        parts = (parts,)
    parts = tuple(dict.fromkeys(parts))
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ValueError(f"parts must be a non-empty selection of {', '.join(PARTS)}; got {list(parts)!r}.")
    return parts


def missing_parts(dest_dir: str | os.PathLike[str], parts: Iterable[str] = COMFYUI_PARTS) -> list[str]:
    """The requested parts that are not complete in ``dest_dir`` (``[]`` when there is nothing to fetch)."""
    root = Path(dest_dir)
    return [p for p in _check_parts(parts) if part_problem(root, PARTS[p]) is not None]


def manual_instructions(dest_dir: str | os.PathLike[str], parts: Iterable[str] = COMFYUI_PARTS) -> str:
    """How to put ``parts`` into ``dest_dir`` by hand."""
    parts = _check_parts(parts)
    dest = Path(dest_dir)
    folders = ", ".join(f"{p}/" for p in parts)
    includes = " ".join(f'--include "{p}/*"' for p in parts)
    lines = [
        f"Download the folder(s) {folders} from {HF_URL}/tree/main by hand and put them in",
        f"    {dest}",
        f"so that there is e.g. {dest / parts[0] / 'config.json'} next to its weights file; or, with network, run",
        f"    hf download {HF_REPO_ID} {includes} --local-dir \"{dest}\"",
    ]
    return "\n".join(lines)


def download_cinemo(
    dest_dir: str | os.PathLike[str],
    parts: Iterable[str] = COMFYUI_PARTS,
    *,
    local_files_only: bool = False,
    revision: str | None = None,
) -> Path:
    """Fetch ``parts`` of ``maxin-cn/Cinemo`` into ``dest_dir`` (the released layout); returns ``dest_dir``.

    Parts already complete there are kept and not fetched again; when all are, nothing is imported or
    contacted. ``local_files_only=True``, or ``HF_HUB_OFFLINE`` set in the environment, only copies from
    the local Hugging Face cache.

    Raises:
        DownloadError: huggingface_hub missing, offline, a network or Hub error, or files still missing
            afterwards; the message names the URL and ``dest_dir``.
        ValueError: an unknown part.
    """
    parts = _check_parts(parts)
    dest = Path(dest_dir).expanduser()
    todo = missing_parts(dest, parts)
    if not todo:
        return dest
    what = f"{', '.join(f'{p}/' for p in todo)} of {HF_REPO_ID}"
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        raise DownloadError(
            f"Cannot download {what}: the huggingface_hub package is not installed "
            f"(pip install huggingface_hub).\n{manual_instructions(dest, todo)}"
        ) from error
    offline = local_files_only or offline_requested()
    before = _files_in(dest, todo)
    try:
        with _hub_warnings() as warnings:
            snapshot_download(
                repo_id=HF_REPO_ID,
                revision=revision,
                allow_patterns=[f"{p}/*" for p in todo],
                local_dir=str(dest),
                local_files_only=offline,
            )
    except Exception as error:  # noqa: BLE001 - network, Hub, cache and file-system errors differ by version
        reason = _offline_reason() if offline else _first_line(error)
        raise DownloadError(
            f"Cannot download {what} from {HF_URL}: {reason}.\n{manual_instructions(dest, todo)}"
        ) from error
    still = missing_parts(dest, todo)
    if not still:
        return dest
    # huggingface_hub returns a non-empty local_dir as it is when the Hub cannot be reached (it only logs
    # why), so a half-filled folder would otherwise look like an incomplete download
    unreachable = next((w for w in warnings if _UNREACHABLE in w), None)
    if offline:
        reason = f"nothing was downloaded: {_offline_reason()}"
    elif unreachable is not None:
        cause = re.search(r"\((.+)\)\.?\s*$", unreachable, re.DOTALL)
        reason = "nothing was downloaded: the Hub could not be reached" + (
            f" ({cause.group(1).strip().splitlines()[0]})" if cause else ""
        )
    elif _files_in(dest, still) == {f for f in before if f.parts[0] in still}:
        reason = "nothing was downloaded (is the network or the Hub down, or a proxy in the way?)"
    else:
        reason = "the download ended but " + "; ".join(part_problem(dest, PARTS[p]) or p for p in still)
    raise DownloadError(
        f"Cannot download {', '.join(f'{p}/' for p in still)} of {HF_REPO_ID} from {HF_URL}: {reason}.\n"
        f"{manual_instructions(dest, still)}"
    )


#: What huggingface_hub logs when it falls back to an existing ``local_dir`` because the Hub is unreachable.
_UNREACHABLE = "remote repo cannot be accessed"


def _offline_reason() -> str:
    switch = "HF_HUB_OFFLINE is set" if offline_requested() else "local files only"
    return f"downloads are switched off ({switch}) and the files are not in the local Hugging Face cache"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _files_in(root: Path, parts: Iterable[str]) -> set[Path]:
    """The files under ``root/<part>/`` for each part, relative to ``root``."""
    return {
        path.relative_to(root) for part in parts if (root / part).is_dir()
        for path in (root / part).rglob("*") if path.is_file()
    }


@contextlib.contextmanager
def _hub_warnings() -> Iterator[list[str]]:
    """The warnings huggingface_hub logs meanwhile (also when its verbosity is set lower than warnings)."""
    seen: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    hub_logger = logging.getLogger("huggingface_hub")
    handler = _Collect(logging.WARNING)
    saved_level = hub_logger.level
    hub_logger.addHandler(handler)
    if hub_logger.getEffectiveLevel() > logging.WARNING:
        hub_logger.setLevel(logging.WARNING)
    try:
        yield seen
    finally:
        hub_logger.removeHandler(handler)
        hub_logger.setLevel(saved_level)
