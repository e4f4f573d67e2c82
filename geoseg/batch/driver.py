"""The batch driver: :func:`run_batch` checks its arguments, plans, executes, records, reports.

Only this (driver) process touches the manifest: it records each outcome a worker returns, and a
scene counts as done only once it is recorded.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from geoseg.batch.execute import _executor, _probe_scheduler
from geoseg.batch.plan import (
    _model_identity,
    _output_stems,
    _plan,
    _Planned,
    _Planning,
    _prepare_out_dir,
    result_parameters,
)
from geoseg.batch.report import BatchReport, SceneReport, _scene_report, _write_reports
from geoseg.batch.worker import SceneOutcome, SceneTask
from geoseg.config import PredictOptions
from geoseg.errors import BatchError
from geoseg.io.archive import BatchInput, SceneSource, list_scenes
from geoseg.io.batch_outputs import remove_stale_temporaries
from geoseg.io.manifest import MANIFEST_NAME, Manifest, RunRecord, exclusive_folder

log = logging.getLogger(__name__)

__all__ = ["BatchProgress", "OnError", "run_batch"]

OnError = Literal["skip", "fail"]
BatchProgress = Callable[[int, int, int], None]
"""Called with ``(done, failed, remaining)`` scenes as each scene settles (``done`` counts
scenes found complete from an earlier run)."""


def run_batch(
    input: str | Path,
    out_dir: str | Path,
    *,
    model: str | Path | None = None,
    options: PredictOptions | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    on_error: OnError = "skip",
    raster: bool = False,
    merged: bool = False,
    progress: BatchProgress | None = None,
) -> BatchReport:
    """Segment every scene of a batch input, resuming where an earlier run stopped.

    Parameters
    ----------
    input : str or Path
        A folder (searched recursively), a glob, a ``.zip``, a ``.tar``/``.tar.gz`` (read in
        place, never unpacked), a ``.txt`` list of paths or URLs, or one raster.
    out_dir : str or Path
        Output folder (created if missing): one ``<scene>.gpkg`` per scene (and
        ``<scene>.classes.tif`` with ``raster``), mirroring the input's sub-folders, plus the
        report (:data:`REPORT_JSON`, :data:`REPORT_CSV`), the manifest (:data:`MANIFEST_NAME`)
        and, with ``merged``, :data:`MERGED_NAME`.
    model : str or Path, optional
        Embedded model name or model file; default: the embedded model that fits each scene.
    options : PredictOptions, optional
        Prediction settings, as for :func:`geoseg.pipeline.predict`.
    workers : int, optional
        Worker processes of a local Dask cluster; ``0`` runs in this process without Dask.
        Default: :func:`~geoseg.workers.scene_workers` (unless ``scheduler`` is given).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``) to submit to instead. Its
        workers must see the input and output paths (a shared file system) and have geoseg.
    on_error : {"skip", "fail"}
        ``skip`` goes on past failed scenes; ``fail`` stops at the first failure.
    raster : bool
        Also write each scene's class raster.
    merged : bool
        Also write one GeoPackage of all complete scenes, with a ``scene`` field.
    progress : callable, optional
        ``progress(done, failed, remaining)`` after each scene settles.

    Returns
    -------
    BatchReport
        Also written to the output folder. ``report.ok`` tells whether every scene succeeded.

    Raises
    ------
    BatchError
        For an unusable input (missing, empty, corrupt archive), output folder (a file, not
        writable) or execution setting (unreachable scheduler). Bad *scenes* never raise: they
        are failures in the report.
    GeosegError
        For an unknown model or invalid options, before any work starts.
    """
    started = time.perf_counter()
    options = options or PredictOptions()
    _check_arguments(on_error, workers, scheduler)
    out = _prepare_out_dir(Path(out_dir), input)
    found = list_scenes(input, exclude=out)
    model_path, model_sha = _model_identity(model)
    planning = _Planning(model_path, model_sha, result_parameters(options), options, raster)
    names = _output_stems([s.name for s in found.scenes])
    settled = _Settled(len(found.scenes), on_error, progress)
    execution = _Execution()

    with exclusive_folder(out), Manifest(out / MANIFEST_NAME) as manifest:
        remove_stale_temporaries(out)
        try:
            tasks = _plan(found, manifest, out, names, planning, execution.planned, settled)
            _execute(tasks, manifest, found, workers, scheduler, execution, settled)
            execution.finished = True
        except _StopBatch:
            execution.stopped = execution.finished = True
        finally:
            remove_stale_temporaries(out)
            # an interrupted batch still leaves its report; merging can wait for the re-run
            batch_report = _report_batch(input, out, found, settled, execution, started, merged)
    for failure in batch_report.failures:
        log.warning("scene %s failed: %s", failure.scene, failure.error)
    return batch_report


def _check_arguments(on_error: OnError, workers: int | None, scheduler: str | None) -> None:
    """Fail early on execution settings that cannot work, before anything is written.

    Raises
    ------
    BatchError
        For an unknown ``on_error``, negative ``workers``, both ``workers`` and ``scheduler``,
        or a scheduler that does not answer.
    """
    if on_error not in ("skip", "fail"):
        raise BatchError(f"on_error {on_error!r} is not one of: skip, fail")
    if workers is not None and workers < 0:
        raise BatchError(f"workers {workers} must be >= 0 (0 runs in-process)")
    if workers is not None and scheduler is not None:
        raise BatchError("give either workers (a local cluster) or a scheduler address, not both")
    if scheduler is not None:
        _probe_scheduler(scheduler)  # a wrong address fails even when nothing is left to do


class _Settled:
    """The scenes settled so far (done, cached or failed), by name; called to settle one.

    Parameters
    ----------
    total : int
        Scenes in the batch.
    on_error : {"skip", "fail"}
        ``fail`` stops the batch (raises :class:`_StopBatch`) at the first failed scene.
    progress : callable or None
        ``progress(done, failed, remaining)`` after each scene settles.
    """

    def __init__(self, total: int, on_error: OnError, progress: BatchProgress | None) -> None:
        self.total = total
        self.on_error = on_error
        self.progress = progress
        self.reports: dict[str, SceneReport] = {}
        self.done = 0
        self.failed = 0

    def __call__(self, report: SceneReport) -> None:
        """Record a settled scene, report progress, and stop if it failed and ``fail`` says so."""
        self.reports[report.scene] = report
        if report.status == "failed":
            self.failed += 1
        else:
            self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.failed, self.total - len(self.reports))
        if report.status == "failed" and self.on_error == "fail":
            raise _StopBatch


@dataclass
class _Execution:
    """How the batch's tasks ran, kept up to date so that an interrupted batch can report it.

    Parameters
    ----------
    executor : str
        What runs the tasks (``in-process``, a Dask cluster or scheduler ...).
    planned : dict of str to _Planned
        Submitted tasks whose outcome has not come back yet, by manifest key.
    stopped : bool
        The batch stopped at a failure (``on_error="fail"``).
    finished : bool
        Every task ran, or the batch stopped as asked: the merged GeoPackage may be written.
    """

    executor: str = "in-process"
    planned: dict[str, _Planned] = field(default_factory=dict)
    stopped: bool = False
    finished: bool = False


def _execute(
    tasks: Iterator[SceneTask],
    manifest: Manifest,
    found: BatchInput,
    workers: int | None,
    scheduler: str | None,
    execution: _Execution,
    settle: Callable[[SceneReport], None],
) -> None:
    """Run the tasks left after planning and record each outcome as it comes back.

    The executor (a local cluster, a scheduler's client) is only started when there is work.
    """
    first = next(tasks, None)
    if first is None:
        execution.executor = "none needed (every scene complete or failed before starting)"
        return
    sources = {s.name: s for s in found.scenes}
    with _executor(workers, scheduler) as (run, executor):
        execution.executor = executor
        outcomes = run(itertools.chain([first], tasks))
        try:
            for outcome in outcomes:
                scene = sources[outcome.scene]
                settle(_record(manifest, outcome, scene, execution.planned.pop(outcome.key)))
        finally:
            # cancels what is still queued when we stop early or are interrupted
            outcomes.close()


def _report_batch(
    input_spec: str | Path,
    out: Path,
    found: BatchInput,
    settled: _Settled,
    execution: _Execution,
    started: float,
    merged: bool,
) -> BatchReport:
    """Write the batch's report files (and, if asked and the batch finished, the merged layer).

    Scenes that never settled are reported as ``not_run``.
    """
    for scene in found.scenes:
        settled.reports.setdefault(scene.name, SceneReport(scene.name, scene.path, "not_run"))
    return _write_reports(
        input_spec,
        out,
        found,
        settled.reports,
        execution.executor,
        execution.stopped,
        started,
        merged and execution.finished,
    )


class _StopBatch(Exception):
    """Raised by the driver to stop at the first failure (``on_error="fail"``)."""


def _record(
    manifest: Manifest, outcome: SceneOutcome, scene: SceneSource, planned: _Planned
) -> SceneReport:
    """Store a task's outcome in the manifest (only now does the scene count as done)."""
    record = RunRecord(
        key=outcome.key,
        scene=outcome.scene,
        content_sha256=planned.content_sha256,
        model_sha256=planned.model_sha256,
        params=planned.params,
        status="done" if outcome.ok else "failed",
        error=outcome.error,
        seconds=outcome.seconds,
        result=outcome.result,
        outputs=planned.outputs if outcome.ok else (),
    )
    manifest.record(record)
    return _scene_report(scene, record, record.status)
