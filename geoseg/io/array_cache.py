"""A cache of named arrays in one ``.npz`` file, valid only for the key it was written with.

Training keeps the teacher's class probabilities of each scene here: computing them runs the
teacher over every scene (minutes per scene on a CPU), and a resumed or repeated recipe needs the
same numbers again. The arrays come back bit for bit (float32 stays float32), so a run that reads
the cache trains exactly as the run that wrote it.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.io.atomic import atomic_output

_KEY = "__key__"


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies a file's content cheaply: its resolved path, size and modification time."""
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_array_cache(path: Path, key: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` under ``key`` (JSON-able) atomically, replacing any older cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {_KEY: np.array(json.dumps(key, sort_keys=True)), **arrays}
    with atomic_output(path, overwrite=True) as tmp, tmp.open("wb") as stream:
        # numpy's stubs type every keyword like allow_pickle; the names here are array names
        np.savez(stream, **payload)  # type: ignore[arg-type]


def read_array_cache(path: Path, key: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays cached at ``path`` if they were written with ``key``, else ``None``.

    A missing, unreadable or stale cache is ``None``: the caller computes the arrays again.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data[_KEY]) != json.dumps(key, sort_keys=True):
                return None
            return {name: data[name] for name in data.files if name != _KEY}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
