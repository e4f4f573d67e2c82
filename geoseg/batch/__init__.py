"""Many scenes: batch inputs, resumable runs and execution on Dask ``distributed``.

``run_batch`` turns a batch input (folder, glob, zip, tar, list) into one unit of work per scene,
skips the work its output folder's manifest says is done with the same bytes, model and settings,
runs the rest (in-process, on a local Dask cluster, or on an existing one) and writes a report.

The package is in four parts, each importing only those listed before it:

* :mod:`geoseg.batch.worker`: the per-scene job (:func:`process_scene`) and the worker process's
  model cache;
* :mod:`geoseg.batch.report`: the per-scene lines and the JSON and CSV report files;
* :mod:`geoseg.batch.plan`: output folder, model identity, the settings that key results, and the
  scenes left to do;
* :mod:`geoseg.batch.execute`: running tasks in this process or on a Dask cluster;

and :mod:`geoseg.batch.driver` holds :func:`run_batch`, which uses them all.

Design notes
------------
* Scenes are the unit of work: one Dask task per scene, keyed by the manifest key, which already
  encodes the scene's bytes, the model and the settings. A worker that dies has its tasks
  rescheduled by the scheduler; a scene that kills workers repeatedly fails alone.
* Workers get the model *file path*, not a network, and load it once per process.
* Only this (driver) process touches the manifest: workers return :class:`SceneOutcome` values.
* Outputs are written by :func:`geoseg.pipeline.predict`, atomically; a scene counts as done only
  once the driver has recorded it, so a killed worker or driver leaves work to redo, never a
  half-written file (temporaries of killed processes are swept at the start and the end).
"""

from __future__ import annotations

from geoseg.batch.driver import BatchProgress, OnError, run_batch
from geoseg.batch.execute import ALLOWED_FAILURES, CONNECT_TIMEOUT_S, default_workers
from geoseg.batch.plan import result_parameters
from geoseg.batch.report import (
    MERGED_NAME,
    REPORT_CSV,
    REPORT_JSON,
    BatchReport,
    SceneReport,
    SceneStatus,
)
from geoseg.batch.worker import SceneOutcome, SceneTask, process_scene

__all__ = [
    "ALLOWED_FAILURES",
    "CONNECT_TIMEOUT_S",
    "MERGED_NAME",
    "REPORT_CSV",
    "REPORT_JSON",
    "BatchProgress",
    "BatchReport",
    "OnError",
    "SceneOutcome",
    "SceneReport",
    "SceneStatus",
    "SceneTask",
    "default_workers",
    "process_scene",
    "result_parameters",
    "run_batch",
]
