"""Worker side of a batch: one scene per task, with the model loaded once per worker process.

:func:`process_scene` is what runs on a Dask worker (or in the driver's process with
``workers=0``). It receives a :class:`SceneTask` (plain data: the model *file path*, not a
network) and returns a :class:`SceneOutcome`; it never raises for a bad scene and never touches
the manifest, which only the driver writes. The per-process model cache and the once-per-process
thread and GPU settings are this module's globals.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoseg.config import PredictOptions
from geoseg.core import first_line
from geoseg.errors import BatchError, GeosegError
from geoseg.io.batch_outputs import class_areas

if TYPE_CHECKING:
    from geoseg.models.loading import LoadedModel

log = logging.getLogger(__name__)

__all__ = ["SceneOutcome", "SceneTask", "process_scene"]


@dataclass(frozen=True)
class SceneTask:
    """What a worker needs to process one scene; plain data, sent to workers.

    Parameters
    ----------
    scene : str
        Scene name within the batch input.
    source : str
        GDAL dataset name to read (a file, URL or ``/vsizip/`` member).
    key : str
        Manifest key of the work.
    gpkg : str
        Absolute path of the GeoPackage to write.
    raster : str or None
        Absolute path of the class raster to write, if asked for.
    model : str or None
        Model file path; ``None`` picks the embedded model that fits each scene.
    model_sha256 : str or None
        Checksum the model file must still have.
    options : PredictOptions
        Prediction settings.
    torch_threads : int or None
        Threads for torch in the worker process; ``None`` leaves the process's setting.
    """

    scene: str
    source: str
    key: str
    gpkg: str
    raster: str | None
    model: str | None
    model_sha256: str | None
    options: PredictOptions
    torch_threads: int | None = None


@dataclass(frozen=True)
class SceneOutcome:
    """What a worker returns for one scene (it never raises for a bad scene).

    Parameters
    ----------
    key, scene : str
        As in the task.
    ok : bool
        Whether all outputs were written.
    seconds : float
        Time spent on the worker.
    error : str or None
        One-line reason of a failure.
    result : Mapping
        Model used, class pixel counts and areas, tiles, polygons, stage timings.
    """

    key: str
    scene: str
    ok: bool
    seconds: float
    error: str | None = None
    result: Mapping[str, Any] = field(default_factory=dict)


def process_scene(task: SceneTask) -> SceneOutcome:
    """Segment one scene on a worker; every scene problem becomes a failed outcome.

    Parameters
    ----------
    task : SceneTask
        The scene and settings.

    Returns
    -------
    SceneOutcome
    """
    from geoseg.pipeline import predict

    start = time.perf_counter()
    try:
        _configure_worker(task.torch_threads)
        loaded = _worker_model(task)
        result = predict(
            task.source,
            task.gpkg,
            model=loaded,
            raster=task.raster,
            options=task.options,
            overwrite=True,
        )
        summary = {
            "model": result.model,
            "class_pixels": result.class_pixels,
            "class_area_m2": class_areas(Path(task.gpkg)),
            "tiles": result.tiles,
            "polygons": result.polygons,
            "resampled": result.resampled,
            "timings": result.timings,
        }
    except GeosegError as exc:
        return SceneOutcome(
            task.key, task.scene, False, time.perf_counter() - start, first_line(exc)
        )
    except Exception as exc:  # one bad scene must never stop the batch
        log.debug("scene %s failed unexpectedly", task.scene, exc_info=True)
        reason = f"unexpected {type(exc).__name__}: {first_line(exc)}"
        return SceneOutcome(task.key, task.scene, False, time.perf_counter() - start, reason)
    return SceneOutcome(task.key, task.scene, True, time.perf_counter() - start, None, summary)


_WORKER_MODELS: dict[tuple[str, str | None], LoadedModel] = {}
_CONFIGURED = False


def _configure_worker(threads: int | None) -> None:
    """Once per worker process: share the cores out and pick this worker's GPU."""
    global _CONFIGURED
    if _CONFIGURED:
        return
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        with contextlib.suppress(ValueError):
            from distributed import get_worker

            name = get_worker().name
            if isinstance(name, int):
                torch.cuda.set_device(name % torch.cuda.device_count())
    _CONFIGURED = True


def _worker_model(task: SceneTask) -> LoadedModel:
    """The task's model, loaded once per worker process and checked against the driver's hash."""
    from geoseg.io.scene import open_scene
    from geoseg.models.loading import choose_default_model, load_model

    why = "given by the caller"
    if task.model is None:
        scene = open_scene(task.source)
        # as predict chooses: with --bands, a model with that many bands
        requested = len(task.options.bands) if task.options.bands else None
        choice = choose_default_model(
            scene.descriptions, scene.colors, scene.sensor, requested, scene.gsd
        )
        name, why = choice.name, choice.why
    else:
        name = task.model
    cache_key = (name, task.model_sha256)
    loaded = _WORKER_MODELS.get(cache_key)
    if loaded is None:
        loaded = load_model(name)
        if task.model_sha256 is not None and loaded.sha256 != task.model_sha256:
            raise BatchError(
                f"model file {name} changed during the batch (or differs on this worker): "
                "re-run the batch"
            )
        _WORKER_MODELS[cache_key] = loaded
    # the cached model is shared by scenes; each scene's report gets its own reason
    return replace(loaded, chosen_because=why)
