"""Atomic outputs: write to a hidden temporary name beside the target, rename at the end.

A crash, an error or Ctrl-C therefore never leaves a half-written file at the target path, and an
existing target is only replaced once the new file is complete.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from geoseg.errors import OutputError


def check_output_path(path: Path, overwrite: bool) -> None:
    """Fail early if ``path`` cannot be written.

    Raises
    ------
    OutputError
        If the folder is missing or not writable, ``path`` is a folder, or ``path`` exists and
        ``overwrite`` is false.
    """
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist: create it first")
    if not _can_create_in(parent):
        raise OutputError(f"output folder {parent} is not writable")
    if path.is_dir():
        raise OutputError(f"output {path} is a folder, not a file")
    if path.exists() and not overwrite:
        raise OutputError(f"output {path} exists: pass --overwrite to replace it")


def _can_create_in(folder: Path) -> bool:
    # os.access says yes to root on read-only mounts and permission-less folders; try for real
    probe = folder / f".geoseg-write-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch(exist_ok=False)
    except OSError:
        return False
    probe.unlink()
    return True


def temporary_sibling(path: Path, tag: str = "tmp") -> Path:
    """A unique hidden path beside ``path`` (same filesystem, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}{path.suffix}")


@contextlib.contextmanager
def atomic_output(path: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to ``path``, else delete it.

    Sidecar files GDAL may create next to the temporary (``.aux.xml``, ``.ovr``) are removed too.
    """
    check_output_path(path, overwrite)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"nothing was written for {path}")
        os.replace(tmp, path)
    finally:
        remove_with_sidecars(tmp)


def remove_with_sidecars(path: Path) -> None:
    """Delete ``path`` and any GDAL sidecar files beside it; missing files are ignored."""
    for candidate in (
        path,
        *(path.with_name(path.name + s) for s in (".aux.xml", ".ovr", "-journal", "-wal", "-shm")),
    ):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
