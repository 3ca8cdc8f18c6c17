"""The jobs of ``cinemo-animate batch``: a JSON Lines or CSV manifest, or a folder of images, read into checked
jobs, and the shard of them this process makes.

A manifest line's keys are the animate command's long option names without the dashes (``image``, ``prompt``,
``seed``, ``frames``, ``size``, ``loop``, ``out``, ...); a value missing from a line comes from the command
line. A bad line becomes a job that fails alone, with its line number and the reason.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from .common import UsageError
from .options import recorded_options

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
#: Set once per process, on the command line, never per job.
PROCESS_KEYS = ("model", "demo", "download", "vae", "device", "dtype", "compile", "quiet", "out_dir", "shard")
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


@dataclass
class Job:
    """One clip of a batch: where it was asked (``line`` of the manifest, or the image's name in a folder), its
    options merged over the command line's (``args``), or the reason it cannot run (``error``)."""

    index: int
    where: str
    args: argparse.Namespace | None = None
    image: Path | None = None
    out: Path | None = None
    error: str | None = None
    settings: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class Shard:
    """Every ``count``-th job from the ``index``-th (0-based); ``origin`` says where it came from."""

    index: int = 0
    count: int = 1
    origin: str = "all jobs"

    def takes(self, job_index: int) -> bool:
        return job_index % self.count == self.index


def parse_shard(text: str) -> Shard:
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected K/N such as 0/4 (the K-th of N shards, from 0), got {text!r}")
    return checked_shard(int(parts[0]), int(parts[1]), "--shard")


def checked_shard(index: int, count: int, origin: str) -> Shard:
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"{origin}: shard {index} of {count} does not exist (0 <= K < N)")
    return Shard(index, count, origin)


def shard_from_environment(environ: Mapping[str, str] = os.environ) -> Shard:
    """torchrun's ``RANK``/``WORLD_SIZE``, else a Slurm array's task id and count, else every job."""
    try:
        if "RANK" in environ and "WORLD_SIZE" in environ:
            return checked_shard(int(environ["RANK"]), int(environ["WORLD_SIZE"]), "RANK/WORLD_SIZE (torchrun)")
        if "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
            first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
            return checked_shard(int(environ["SLURM_ARRAY_TASK_ID"]) - first, int(environ["SLURM_ARRAY_TASK_COUNT"]),
                                 "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (Slurm array)")
    except ValueError as error:
        raise UsageError(f"cannot read the shard from the environment: {error}") from None
    except argparse.ArgumentTypeError as error:
        raise UsageError(str(error)) from None
    return Shard()


def job_actions(parser: argparse.ArgumentParser, job_keys: set[str]) -> dict[str, argparse.Action]:
    """The parser's action of each key a manifest line may set (the options added through ``options.recording``)."""
    return {dest: action for dest, action in recorded_options(parser).items() if dest in job_keys}


def _value(action: argparse.Action, key: str, value: Any, *, from_text: bool) -> Any:
    """A manifest value as the option would have parsed it; ``ValueError`` naming the key otherwise."""
    if action.nargs == 0:  # a switch such as --loop
        if isinstance(value, str) and from_text and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        if not isinstance(value, bool):
            raise ValueError(f"'{key}' must be true or false, got {value!r}.")
        return value
    if value is None:
        if action.default is not None:
            raise ValueError(f"'{key}' cannot be null (leave it out for the command line's value).")
        return None
    if isinstance(value, str):
        if action.type is not None:
            try:
                value = action.type(value)
            except (ValueError, TypeError, argparse.ArgumentTypeError) as error:
                raise ValueError(f"'{key}': {error or 'not a valid value'} (got {value!r}).") from None
    elif key == "size" and isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        value = tuple(value)
    elif action.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"'{key}' must be an integer, got {value!r}.")
    elif action.type is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"'{key}' must be a number, got {value!r}.")
        value = float(value)
    else:
        raise ValueError(f"'{key}' must be a string as the command line takes it, got {value!r}.")
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"'{key}' must be one of {', '.join(map(str, action.choices))}, got {value!r}.")
    return value


#: Options that exclude each other: a line setting one clears the other's command-line value.
EXCLUSIVE = (("intensity", "motion_id"), ("init", "no_dct"))


def merged_args(base: argparse.Namespace, values: Mapping[str, Any], actions: Mapping[str, argparse.Action], *,
                from_text: bool) -> argparse.Namespace:
    """The command line's options with a manifest line's ``values`` over them (``ValueError`` naming a bad key)."""
    unknown = sorted(set(values) - set(actions) - {"image", "out"})
    per_process = [key for key in unknown if key in PROCESS_KEYS]
    if per_process:
        raise ValueError(f"'{per_process[0]}' is set once for the whole batch, on the command line.")
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}'; a line may set {', '.join(sorted({'image', 'out', *actions}))}.")
    merged = argparse.Namespace(**vars(base))
    for first, second in EXCLUSIVE:
        if first in values and second in values:
            raise ValueError(f"give '{first}' or '{second}', not both.")
        if first in values:
            setattr(merged, second, actions[second].default)
        elif second in values:
            setattr(merged, first, actions[first].default)
    for key, value in values.items():
        if key in actions:
            setattr(merged, key, _value(actions[key], key, value, from_text=from_text))
    return merged


def read_manifest(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, the line's values or why it is unreadable) for each job line of a JSON Lines or CSV file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"MANIFEST: cannot read '{path}': {error}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        for row in reader:
            if None in row:
                yield reader.line_num, "more values than the header has columns."
            else:
                yield reader.line_num, {k.strip(): v for k, v in row.items() if k and v is not None and v.strip() != ""}
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except ValueError as error:
            yield number, f"not valid JSON ({error})."
            continue
        yield number, values if isinstance(values, dict) else f"expected a JSON object {{...}}, got {line.strip()[:40]}"


def folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def default_name(image: Path, args: argparse.Namespace, extension: str) -> str:
    """A manifest job's output name when it gives no ``out``: the image's name and a digest of its options, so
    that it stays the same when lines are reordered and differs when any option differs."""
    options = {key: value for key, value in sorted(vars(args).items()) if key not in PROCESS_KEYS}
    digest = hashlib.sha256(json.dumps([str(image), options], default=str).encode()).hexdigest()[:8]
    return f"{image.stem}-{digest}.{extension}"
