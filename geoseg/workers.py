"""How many worker processes to start, and how they start.

Two policies live here: processes vectorizing the blocks of one raster (:func:`effective_workers`,
:func:`cpu_workers`) and processes running whole scenes of a batch, each with a share of the cores
as torch threads (:func:`scene_workers`).
"""

from __future__ import annotations

import math
import multiprocessing
import os

from geoseg.errors import VectorizeError

#: Smallest raster (pixels) for which ``workers=0`` (auto) starts worker processes: below it
#: their start-up (about a second each) costs more than they save.
_MIN_PIXELS_FOR_WORKERS = 16_000_000


def effective_workers(workers: int, width: int, height: int, block_size: int) -> int:
    """Worker processes :func:`~geoseg.vectorize.polygon_batches` uses for ``workers`` on a raster.

    ``workers`` 0 (auto) starts them only on rasters of 16 megapixels or more; never more than
    there are blocks.
    """
    if workers == 0:  # auto: starting workers costs about a second, worth it on large rasters
        workers = cpu_workers() if width * height >= _MIN_PIXELS_FOR_WORKERS else 1
    blocks = math.ceil(width / block_size) * math.ceil(height / block_size)
    return max(1, min(workers, blocks))


def cpu_workers() -> int:
    """Worker processes for vectorizing: the CPUs this process may use.

    Daemonic processes (e.g. Dask's workers, which already run one scene each) may not start
    children, so they vectorize in-process.
    """
    if multiprocessing.current_process().daemon:
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def scene_workers() -> tuple[int, int]:
    """A sensible ``(worker processes, torch threads per worker)`` for this machine.

    One process per GPU when there are GPUs; otherwise half the cores (at least one) with the
    cores shared out as torch threads, so processes do not fight over them.
    """
    import torch

    cores = os.cpu_count() or 1
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        return gpus, max(1, cores // gpus)
    workers = max(1, cores // 2)
    return workers, max(1, cores // workers)


def lowest_priority() -> None:
    """Worker initializer: yield the CPU to everything else (the model above all)."""
    os.nice(19)


def check_not_importing_main() -> None:
    """Refuse to run while a spawned worker process is importing the caller's main script.

    Spawned workers import the main module; a script that calls geoseg at its top level (no
    ``if __name__ == "__main__":`` guard) would otherwise redo the whole run in every worker.

    Raises
    ------
    VectorizeError
        In a worker process that is still starting up.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise VectorizeError(
            "geoseg was called while a worker process imported the main script: put the "
            "script's top level under `if __name__ == '__main__':`"
        )
