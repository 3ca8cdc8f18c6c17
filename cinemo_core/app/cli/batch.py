"""``cinemo-animate batch MANIFEST|FOLDER``: many animations from one process, the model loaded once.

Resumable (a job whose video and sidecar exist for the same request is skipped; a video is written to a
temporary name and renamed when complete), spread with ``--shard K/N`` or the environment of torchrun or a
Slurm array, and a bad job fails alone with its line number. Exit status 0 when every job of the shard is
made or was already made, 1 when any failed, 2 for a bad command line or manifest, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .animate import ANIMATION_FLAGS, add_animation_options, animation_clip, animation_settings, request_of
from .clip import make_clip
from .common import EXIT_FAILURE, EXIT_OK, PROG, UsageError, load_components, read_image, say_settings, sayer
from .jobs import (
    Job,
    Shard,
    default_name,
    folder_images,
    job_actions,
    merged_args,
    parse_shard,
    read_manifest,
    shard_from_environment,
)
from .options import (
    add_fps_option,
    add_model_options,
    add_quiet_option,
    check_device_and_model,
    check_download_choice,
    check_fps,
    check_model_choice,
    recording,
    validated,
)

if TYPE_CHECKING:
    import torch

NAME = "batch"
SUMMARY = "many clips from a JSON Lines or CSV manifest or a folder of images, resumable, in shards"
FORMATS = ("mp4", "webp", "gif")
#: A manifest key for each setting (the option's long name without the dashes).
JOB_KEYS = {setting: flag.lstrip("-").replace("-", "_") for setting, flag in ANIMATION_FLAGS.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} {NAME}",
        description=(
            "Animate many images with one loaded model. MANIFEST is a JSON Lines (.jsonl) or CSV (.csv) file, one "
            "job per line, whose keys are the long options of cinemo-animate without the dashes (image, prompt, "
            "negative_prompt, seed, intensity, frames, steps, cfg, size, loop, out, ...); what a line leaves out "
            "comes from these options. A FOLDER animates each image in it. Images are relative to the manifest's "
            "folder, outputs to --out-dir; each video gets a sidecar FILE.json."
        ),
        epilog=(
            "Re-running the same command skips the clips already made. Spread over GPUs with torchrun "
            f"(`torchrun --nproc-per-node 4 -m cinemo_core {NAME} ...`: RANK/WORLD_SIZE pick the shard, LOCAL_RANK "
            "the GPU) or a Slurm array (SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT), or give --shard K/N."
        ),
    )
    parser.add_argument("source", metavar="MANIFEST|FOLDER", help="the jobs: a .jsonl or .csv manifest, or a folder")
    output = recording(parser).add_argument_group("output")
    output.add_argument("--out-dir", required=True, metavar="DIR", help="where the videos go (made if missing)")
    output.add_argument("--format", choices=FORMATS, default="mp4",
                        help="the videos' format when a job gives no out (default mp4)")
    add_fps_option(output)
    output.add_argument("--shard", type=parse_shard, default=None, metavar="K/N",
                        help="make every N-th job from the K-th (0-based); default: from torchrun's RANK/WORLD_SIZE "
                        "or a Slurm array's task id and count, else every job")
    add_model_options(parser)
    add_animation_options(parser)
    add_quiet_option(parser)
    return parser


def interrupted_message(args: argparse.Namespace) -> str:
    return f"interrupted; the clip in progress was not written to {args.out_dir}. Run the same command to finish."


def _job_settings(merged: argparse.Namespace):
    flags = {setting: f"'{key}'" for setting, key in JOB_KEYS.items()}
    return validated(animation_settings(merged), flags)


def _manifest_jobs(args: argparse.Namespace, manifest: Path, out_dir: Path) -> list[Job]:
    from ..video_io import SUPPORTED_EXTENSIONS

    parser = build_parser()
    actions = job_actions(parser, set(JOB_KEYS.values()) | {"no_dct", "fps"})
    jobs = []
    for index, (line, values) in enumerate(read_manifest(manifest)):
        job = Job(index=index, where=f"line {line}")
        jobs.append(job)
        try:
            if isinstance(values, str):
                raise ValueError(values)
            merged = merged_args(args, values, actions, from_text=manifest.suffix.lower() == ".csv")
            image = values.get("image")
            if not isinstance(image, str) or not image:
                raise ValueError("'image' is missing: every line names the image to animate.")
            job.image = (manifest.parent / Path(image).expanduser())
            merged.image = str(job.image)
            if isinstance(values.get("motion_mask"), str):  # like the image, relative to the manifest
                merged.motion_mask = str(manifest.parent / Path(values["motion_mask"]).expanduser())
            if merged.motion_mask is not None and not os.path.isfile(merged.motion_mask):
                raise ValueError(f"'motion_mask': motion mask file not found: {merged.motion_mask}.")
            if isinstance(values.get("end_image"), str):  # like the image, relative to the manifest
                merged.end_image = str(manifest.parent / Path(values["end_image"]).expanduser())
            if merged.end_image is not None and not os.path.isfile(merged.end_image):
                raise ValueError(f"'end_image': end image file not found: {merged.end_image}.")
            job.settings = _job_settings(merged)
            out = values.get("out")
            if out is None:
                out = default_name(job.image, merged, args.format)
            if not isinstance(out, str) or Path(out).suffix.lower() not in SUPPORTED_EXTENSIONS:
                raise ValueError(f"'out' must be a file name ending in {', '.join(SUPPORTED_EXTENSIONS)}, got {out!r}.")
            job.out, job.args = out_dir / Path(out).expanduser(), merged
        except (UsageError, ValueError) as error:
            job.error = str(error)
    return jobs


def _folder_jobs(args: argparse.Namespace, folder: Path, out_dir: Path) -> list[Job]:
    settings = _job_settings(args)
    jobs = []
    for index, image in enumerate(folder_images(folder)):
        merged = argparse.Namespace(**vars(args), image=str(image))
        jobs.append(Job(index=index, where=image.name, args=merged, image=image, settings=settings,
                        out=out_dir / f"{image.stem}.{args.format}"))
    return jobs


def _refuse_shared_outputs(jobs: list[Job]) -> None:
    """A job writing the file of an earlier job fails (so two shards never write the same file)."""
    first: dict[Path, Job] = {}
    for job in jobs:
        if job.error or job.out is None:
            continue
        key = Path(os.path.abspath(job.out))
        if key in first:
            job.error = (f"writes {job.out}, as {first[key].where} does; give each job its own 'out' "
                         "(or its own seed or settings).")
        else:
            first[key] = job


def read_jobs(args: argparse.Namespace) -> list[Job]:
    """Every job of MANIFEST|FOLDER (bad ones carry their error); a usage error when there are none."""
    source = Path(args.source).expanduser()
    out_dir = Path(args.out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir: '{out_dir}' is a file, not a folder.")
    if source.is_dir():
        jobs = _folder_jobs(args, source, out_dir)
        what = f"no .png, .jpg, .jpeg or .webp image in the folder '{source}'"
    elif source.is_file():
        jobs = _manifest_jobs(args, source, out_dir)
        what = f"no job in the manifest '{source}' (one JSON object per line, or a CSV file with a header)"
    else:
        raise UsageError(f"MANIFEST|FOLDER: '{source}' does not exist.")
    if not jobs:
        raise UsageError(what)
    _refuse_shared_outputs(jobs)
    return jobs


def _device_of_local_rank(args: argparse.Namespace) -> None:
    """Under torchrun each process takes the GPU of its LOCAL_RANK, unless --device says otherwise."""
    if args.device == "auto" and "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():
            args.device = f"cuda:{int(os.environ['LOCAL_RANK'])}"


def _pending(jobs: list[Job], fps: float, device: torch.device, dtype: torch.dtype) -> tuple[list, int]:
    """(job, fps, request) of each job to make, and how many were already made."""
    from ..sidecar import already_made
    from ..video_io import check_fps as checked_fps

    pending, skipped = [], 0
    for job in jobs:
        if job.error:
            pending.append((job, None, None))
            continue
        try:
            job_fps = checked_fps(job.args.fps)
            request = request_of(job.args, job.settings, job_fps, device, dtype)
        except ValueError as error:
            job.error = f"'fps': {error}"
        except OSError as error:
            job.error = f"image: cannot read '{job.image}': {error.strerror or error}."
        if job.error:
            pending.append((job, None, None))
        elif already_made(job.out, request):
            skipped += 1
        else:
            pending.append((job, job_fps, request))
    return pending, skipped


def run(args: argparse.Namespace, stderr: TextIO, stdout: TextIO) -> int:
    from tqdm.auto import tqdm

    check_model_choice(args)
    check_download_choice(args)
    defaults = validated(_settings_of(args), ANIMATION_FLAGS)  # the command line's own values, named by flag
    fps = check_fps(args)
    shard: Shard = args.shard or shard_from_environment()
    _device_of_local_rank(args)
    jobs = read_jobs(args)
    device, dtype = check_device_and_model(args)
    say = sayer(args.quiet, stderr)
    mine = [job for job in jobs if shard.takes(job.index)]
    pending, skipped = _pending(mine, fps, device, dtype)
    share = f", shard {shard.index}/{shard.count} ({shard.origin}): {len(mine)}" if shard.count > 1 else ""
    say(f"batch: {len(jobs)} jobs in {args.source}{share}; {skipped} already made, {len(pending)} to go")

    made, failed, started = 0, 0, time.monotonic()
    components = None
    bar = tqdm(total=len(pending), desc="Clips", unit="clip", file=stderr, disable=args.quiet, position=0)

    def fail(job: Job, reason: str) -> None:
        nonlocal failed
        failed += 1
        tqdm.write(f"{PROG}: {job.where}: failed: {reason}", file=stderr)

    try:
        for job, job_fps, request in pending:
            if job.error:
                fail(job, job.error)
                bar.update(1)
                continue
            if components is None:
                say_settings(args, defaults, stderr, say)
                components = load_components(args, device, dtype, stderr, say)
                if components is None:
                    return EXIT_FAILURE
            try:
                image = read_image(str(job.image), "image")
                job.out.parent.mkdir(parents=True, exist_ok=True)
                result, written = make_clip(components, animation_clip(image, job.settings, job.out, job_fps, request),
                                            stderr=stderr, quiet=args.quiet, position=1)
                made += 1
                if not args.quiet:
                    tqdm.write(f"{job.where}: wrote {written} (seed {result.seed})", file=stderr)
            except UsageError as error:
                fail(job, str(error))
            except (RuntimeError, OSError, ValueError) as error:
                fail(job, f"{type(error).__name__}: {error}")
            bar.update(1)
    finally:
        bar.close()
    seconds = time.monotonic() - started
    per_clip = f"; {seconds / made:.1f} s per clip" if made else ""
    print(f"batch: {made} made, {skipped} skipped (already made), {failed} failed{per_clip}", file=stdout)
    return EXIT_FAILURE if failed else EXIT_OK


def _settings_of(args: argparse.Namespace):
    return animation_settings(args)
