"""Many scenes: batch inputs, resumable runs and execution on Dask ``distributed``.

``run_batch`` turns a batch input (folder, glob, zip, tar, list) into one unit of work per scene,
skips the work its output folder's manifest says is done with the same bytes, model and settings,
runs the rest (in-process, on a local Dask cluster, or on an existing one) and writes a report.

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

import contextlib
import importlib
import itertools
import logging
import os
import socket
import sys
import time
import types
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from geoseg import __version__
from geoseg.core import first_line
from geoseg.errors import BatchError, GeosegError
from geoseg.io.archive import (
    BatchInput,
    SceneSource,
    content_sha256,
    file_sha256,
    fingerprint,
    list_scenes,
)
from geoseg.io.batch_outputs import (
    class_areas,
    merge_landcover,
    remove_stale_temporaries,
    write_csv,
    write_json,
)
from geoseg.io.manifest import MANIFEST_NAME, Manifest, RunRecord, exclusive_folder, work_key
from geoseg.pipeline import PredictOptions
from geoseg.workers import scene_workers

if TYPE_CHECKING:
    from geoseg.models.loading import LoadedModel

log = logging.getLogger(__name__)

__all__ = [
    "BatchReport",
    "SceneOutcome",
    "SceneReport",
    "SceneTask",
    "batch",
    "default_workers",
    "process_scene",
    "result_parameters",
    "run_batch",
]

OnError = Literal["skip", "fail"]
SceneStatus = Literal["done", "cached", "failed", "not_run"]
BatchProgress = Callable[[int, int, int], None]
"""Called with ``(done, failed, remaining)`` scenes as each scene settles (``done`` counts
scenes found complete from an earlier run)."""

REPORT_JSON = "geoseg-batch-report.json"
REPORT_CSV = "geoseg-batch-report.csv"
MERGED_NAME = "geoseg-merged.gpkg"
#: Seconds to wait for a scheduler to answer and to have at least one worker.
CONNECT_TIMEOUT_S = 10.0
#: Times a scene may be running on a worker that dies before it is failed (Dask's
#: ``allowed-failures``; local clusters only, a remote scheduler keeps its own setting).
ALLOWED_FAILURES = 2
# PredictOptions fields that change how fast a result comes, not what it is.
_NOT_RESULT_FIELDS = frozenset({"device", "batch_size", "prefetch", "compile", "vectorize_workers"})


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


@dataclass(frozen=True)
class SceneReport:
    """One scene's line in the batch report.

    Parameters
    ----------
    scene : str
        Scene name within the batch input.
    source : str
        Dataset it was read from.
    status : str
        ``done`` (processed now), ``cached`` (complete from an earlier run with the same bytes,
        model and settings), ``failed``, or ``not_run`` (the batch stopped before it).
    seconds : float
        Processing time on its worker.
    outputs : tuple of str
        Output files, relative to the output folder.
    model : str or None
        Model that made the outputs.
    class_pixels : Mapping
        Pixels per class name on the scene grid.
    class_area_m2 : Mapping
        Polygon area per class name, in square metres.
    error : str or None
        One-line reason of a failure.
    key : str or None
        Manifest key (``None`` when the scene could not even be read).
    """

    scene: str
    source: str
    status: SceneStatus
    seconds: float = 0.0
    outputs: tuple[str, ...] = ()
    model: str | None = None
    class_pixels: Mapping[str, int] = field(default_factory=dict)
    class_area_m2: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class BatchReport:
    """What a batch did, scene by scene, with totals.

    Parameters
    ----------
    input : str
        The batch input as given.
    out_dir : Path
        Output folder.
    scenes : tuple of SceneReport
        One entry per scene, in input order.
    seconds : float
        Wall-clock time of the batch.
    executor : str
        Where it ran (``in-process``, ``local cluster, N workers``, or the scheduler address).
    report_json, report_csv : Path
        The report files written.
    merged : Path or None
        The merged GeoPackage, if asked for and any scene succeeded.
    ignored : tuple of str
        Files of the input not taken as scenes (by their name).
    stopped : bool
        Whether the batch stopped at the first failure (``on_error="fail"``).
    """

    input: str
    out_dir: Path
    scenes: tuple[SceneReport, ...]
    seconds: float
    executor: str
    report_json: Path
    report_csv: Path
    merged: Path | None = None
    ignored: tuple[str, ...] = ()
    stopped: bool = False

    @property
    def ok(self) -> bool:
        """Whether every scene is complete (processed now or earlier)."""
        return all(s.status in ("done", "cached") for s in self.scenes)

    @property
    def failures(self) -> tuple[SceneReport, ...]:
        """The scenes that failed."""
        return tuple(s for s in self.scenes if s.status == "failed")

    def count(self, status: SceneStatus) -> int:
        """Number of scenes with ``status``."""
        return sum(s.status == status for s in self.scenes)

    @property
    def scenes_per_minute(self) -> float:
        """Scenes segmented in this run (status ``done``) per minute of wall-clock time."""
        return 60.0 * self.count("done") / self.seconds if self.seconds > 0 else 0.0

    def totals(self) -> dict[str, Any]:
        """Counts by status, summed class pixels and areas over complete scenes, throughput."""
        pixels: dict[str, int] = {}
        areas: dict[str, float] = {}
        for scene in self.scenes:
            if scene.status not in ("done", "cached"):
                continue
            for name, value in scene.class_pixels.items():
                pixels[name] = pixels.get(name, 0) + int(value)
            for name, area in scene.class_area_m2.items():
                areas[name] = areas.get(name, 0.0) + float(area)
        return {
            "scenes": len(self.scenes),
            **{status: self.count(status) for status in ("done", "cached", "failed", "not_run")},
            "seconds": round(self.seconds, 3),
            "scenes_per_minute": round(self.scenes_per_minute, 2),
            "class_pixels": pixels,
            "class_area_m2": areas,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, as written to :data:`REPORT_JSON`."""
        return {
            "geoseg_version": __version__,
            "input": self.input,
            "out_dir": str(self.out_dir),
            "executor": self.executor,
            "ok": self.ok,
            "stopped": self.stopped,
            "totals": self.totals(),
            "merged": str(self.merged) if self.merged else None,
            "ignored": list(self.ignored),
            "scenes": [asdict(s) for s in self.scenes],
        }


def result_parameters(options: PredictOptions) -> dict[str, Any]:
    """The settings that change results: every prediction option but device and batch size.

    The geoseg version is included too: a new release may make different outputs.

    >>> sorted(result_parameters(PredictOptions()))[:3]
    ['bands', 'dst_crs', 'geoseg_version']
    """
    params: dict[str, Any] = {
        f.name: getattr(options, f.name)
        for f in fields(options)
        if f.name not in _NOT_RESULT_FIELDS
    }
    if params.get("bands") is not None:
        params["bands"] = list(params["bands"])
    if "radiometry" in params:
        params["radiometry"] = {
            k: v for k, v in asdict(params["radiometry"]).items() if v is not None
        }
    params["geoseg_version"] = __version__
    return params


#: The ``(worker processes, torch threads per worker)`` a batch starts by default; the policy
#: lives in :mod:`geoseg.workers` beside the one for vectorizing.
default_workers = scene_workers


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
    if on_error not in ("skip", "fail"):
        raise BatchError(f"on_error {on_error!r} is not one of: skip, fail")
    if workers is not None and workers < 0:
        raise BatchError(f"workers {workers} must be >= 0 (0 runs in-process)")
    if workers is not None and scheduler is not None:
        raise BatchError("give either workers (a local cluster) or a scheduler address, not both")
    if scheduler is not None:
        _probe_scheduler(scheduler)  # a wrong address fails even when nothing is left to do
    out = _prepare_out_dir(Path(out_dir), input)
    found = list_scenes(input, exclude=out)
    model_path, model_sha = _model_identity(model)
    params = result_parameters(options)
    names = _output_stems([s.name for s in found.scenes])

    reports: dict[str, SceneReport] = {}
    planned: dict[str, _Planned] = {}
    sources = {s.name: s for s in found.scenes}
    stopped = False
    finished = False
    executor = "in-process"
    counts = {"done": 0, "failed": 0}

    def settle(report: SceneReport) -> None:
        reports[report.scene] = report
        counts["failed" if report.status == "failed" else "done"] += 1
        if progress is not None:
            progress(counts["done"], counts["failed"], len(found.scenes) - len(reports))
        if report.status == "failed" and on_error == "fail":
            raise _StopBatch

    with exclusive_folder(out), Manifest(out / MANIFEST_NAME) as manifest:
        remove_stale_temporaries(out)
        try:
            tasks = _plan(
                found,
                manifest,
                out,
                names,
                _Planning(model_path, model_sha, params, options, raster),
                planned,
                settle,
            )
            first = next(tasks, None)
            if first is None:
                executor = "none needed (every scene complete or failed before starting)"
            else:
                with _executor(workers, scheduler) as (run, executor):
                    outcomes = run(itertools.chain([first], tasks))
                    try:
                        for outcome in outcomes:
                            settle(
                                _record(
                                    manifest,
                                    outcome,
                                    sources[outcome.scene],
                                    planned.pop(outcome.key),
                                )
                            )
                    finally:
                        # cancels what is still queued when we stop early or are interrupted
                        outcomes.close()
            finished = True
        except _StopBatch:
            stopped = finished = True
        finally:
            remove_stale_temporaries(out)
            for scene in found.scenes:
                reports.setdefault(scene.name, SceneReport(scene.name, scene.path, "not_run"))
            # an interrupted batch still leaves its report; merging can wait for the re-run
            batch_report = _write_reports(
                input, out, found, reports, executor, stopped, started, merged and finished
            )
    for failure in batch_report.failures:
        log.warning("scene %s failed: %s", failure.scene, failure.error)
    return batch_report


class _StopBatch(Exception):
    """Raised by the driver to stop at the first failure (``on_error="fail"``)."""


#: ``geoseg.batch.batch`` is the name the top-level package exports.
batch = run_batch


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


# --- driver side ---------------------------------------------------------------------------


def _prepare_out_dir(out: Path, input_spec: str | Path) -> Path:
    if out.exists() and not out.is_dir():
        raise BatchError(f"output folder {out} is a file: give a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot create output folder {out}: {exc.strerror or exc}") from exc
    if not os.access(out, os.W_OK):
        raise BatchError(f"output folder {out} is not writable")
    spec = Path(input_spec)
    if spec.is_dir() and spec.resolve() == out.resolve():
        raise BatchError(f"output folder {out} is the input folder: give another --out")
    return out.resolve()


def _model_identity(model: str | Path | None) -> tuple[str | None, str]:
    """The model file to send to workers and the checksum that keys the manifest.

    Without a model, each scene gets the embedded model that fits it; the key then covers every
    candidate default model, so replacing any of them redoes the work.
    """
    from geoseg.models.loading import DEFAULT_MODELS, embedded_model_paths, resolve_model_path

    if model is not None:
        path = resolve_model_path(model)
        return str(path.resolve()), file_sha256(path)
    embedded = embedded_model_paths()
    sums = [f"{name}:{file_sha256(embedded[name])}" for name in DEFAULT_MODELS if name in embedded]
    if not sums:
        raise BatchError("no embedded model is installed: pass a model file with --model")
    return None, "default:" + ";".join(sums)


def _output_stems(names: list[str]) -> dict[str, str]:
    """Output path stem of each scene: its name without suffix, unless two would collide."""
    stems = {n: str(PurePosixPath(n).with_suffix("")) for n in names}
    seen: dict[str, int] = {}
    for stem in stems.values():
        seen[stem.lower()] = seen.get(stem.lower(), 0) + 1
    return {n: (s if seen[s.lower()] == 1 else n) for n, s in stems.items()}


def _output_names(stem: str, raster: bool) -> tuple[str, ...]:
    return (f"{stem}.gpkg", f"{stem}.classes.tif") if raster else (f"{stem}.gpkg",)


@dataclass(frozen=True)
class _Planning:
    """The settings shared by every scene of a batch."""

    model_path: str | None
    model_sha256: str
    params: Mapping[str, Any]
    options: PredictOptions
    raster: bool


@dataclass(frozen=True)
class _Planned:
    """What the driver keeps about a submitted task until its outcome comes back."""

    content_sha256: str
    model_sha256: str
    params: Mapping[str, Any]
    outputs: tuple[str, ...]


def _plan(
    found: BatchInput,
    manifest: Manifest,
    out: Path,
    stems: Mapping[str, str],
    planning: _Planning,
    planned: dict[str, _Planned],
    settle: Callable[[SceneReport], None],
) -> Iterator[SceneTask]:
    """Hash each scene, settle those already complete, and yield the work left to do.

    A generator, so workers start on the first scenes while later ones are still being hashed.
    """
    for scene in found.scenes:
        try:
            sha = _scene_sha256(manifest, scene)
        except BatchError as exc:
            settle(SceneReport(scene.name, scene.path, "failed", error=first_line(exc)))
            continue
        key = work_key(sha, planning.model_sha256, planning.params, scene.name)
        outputs = _output_names(stems[scene.name], planning.raster)
        record = manifest.completed(key, outputs, out)
        if record is not None:
            settle(_scene_report(scene, record, "cached"))
            continue
        gpkg = out / outputs[0]
        gpkg.parent.mkdir(parents=True, exist_ok=True)
        planned[key] = _Planned(sha, planning.model_sha256, planning.params, outputs)
        yield SceneTask(
            scene=scene.name,
            source=scene.path,
            key=key,
            gpkg=str(gpkg),
            raster=str(out / outputs[1]) if planning.raster else None,
            model=planning.model_path,
            model_sha256=planning.model_sha256 if planning.model_path is not None else None,
            options=planning.options,
        )


def _scene_sha256(manifest: Manifest, scene: SceneSource) -> str:
    """The scene's content hash, reused from the manifest while its file is unchanged."""
    stamp = fingerprint(scene)
    cached = manifest.cached_hash(stamp)
    if cached is not None:
        return cached
    sha = content_sha256(scene)
    manifest.store_hash(stamp, sha)
    return sha


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


def _scene_report(scene: SceneSource, record: RunRecord, status: SceneStatus) -> SceneReport:
    result = record.result
    return SceneReport(
        scene=scene.name,
        source=scene.path,
        status=status,
        seconds=round(record.seconds, 3),
        outputs=record.outputs,
        model=result.get("model"),
        class_pixels=dict(result.get("class_pixels", {})),
        class_area_m2=dict(result.get("class_area_m2", {})),
        error=record.error,
        key=record.key,
    )


def _write_reports(
    input_spec: str | Path,
    out: Path,
    found: BatchInput,
    reports: Mapping[str, SceneReport],
    executor: str,
    stopped: bool,
    started: float,
    merged: bool,
) -> BatchReport:
    scenes = tuple(reports[s.name] for s in found.scenes)
    merged_path = None
    if merged:
        complete = [(s.scene, out / s.outputs[0]) for s in scenes if s.status in ("done", "cached")]
        if complete:
            merged_path = merge_landcover(complete, out / MERGED_NAME).path
        else:
            log.warning("no scene succeeded: no merged GeoPackage written")
    report = BatchReport(
        input=str(input_spec),
        out_dir=out,
        scenes=scenes,
        seconds=time.perf_counter() - started,
        executor=executor,
        report_json=out / REPORT_JSON,
        report_csv=out / REPORT_CSV,
        merged=merged_path,
        ignored=found.ignored,
        stopped=stopped,
    )
    write_json(report.report_json, report.to_dict())
    classes = sorted({c for s in scenes for c in (*s.class_pixels, *s.class_area_m2)})
    rows = []
    for s in scenes:
        row: dict[str, Any] = {
            "scene": s.scene,
            "status": s.status,
            "seconds": s.seconds,
            "model": s.model or "",
            "outputs": ";".join(s.outputs),
            "error": s.error or "",
        }
        for name in classes:
            row[f"pixels_{name}"] = s.class_pixels.get(name, "")
            area = s.class_area_m2.get(name)
            row[f"area_m2_{name}"] = "" if area is None else round(area, 1)
        rows.append(row)
    columns = ["scene", "status", "seconds", "model", "outputs", "error"]
    columns += [f"pixels_{c}" for c in classes] + [f"area_m2_{c}" for c in classes]
    write_csv(report.report_csv, rows, columns)
    return report


# --- execution ---------------------------------------------------------------------------

Outcomes = Generator[SceneOutcome, None, None]
Runner = Callable[[Iterable[SceneTask]], Outcomes]


@contextlib.contextmanager
def _executor(workers: int | None, scheduler: str | None) -> Iterator[tuple[Runner, str]]:
    """Yield a function that runs tasks and yields outcomes as they complete, and its name."""
    if workers == 0:
        yield _run_in_process, "in-process"
        return
    with _dask_client(workers, scheduler) as (client, name, threads):

        def run(tasks: Iterable[SceneTask]) -> Outcomes:
            return _run_on_dask(client, tasks, threads)

        yield run, name


def _run_in_process(tasks: Iterable[SceneTask]) -> Outcomes:
    for task in tasks:
        yield process_scene(task)


@contextlib.contextmanager
def _dask_client(
    workers: int | None, scheduler: str | None
) -> Iterator[tuple[Any, str, int | None]]:
    import dask

    # distributed is only partly typed; its calls are checked by the tests
    dist: Any = importlib.import_module("distributed")

    if scheduler is not None:
        try:
            client = dist.Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, ValueError, TimeoutError) as exc:
            raise BatchError(
                f"cannot connect to Dask scheduler {scheduler}: {first_line(exc)}"
            ) from exc
        try:
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except (TimeoutError, OSError) as exc:
                raise BatchError(
                    f"Dask scheduler {scheduler} has no workers: start some with "
                    f"`dask worker {scheduler}`"
                ) from exc
            yield client, scheduler, None
        finally:
            client.close()
        return
    count, threads = scene_workers()
    if workers is not None:
        threads = max(1, (os.cpu_count() or 1) // workers)
        count = workers
    log.info("starting a local Dask cluster: %d workers, %d torch threads each", count, threads)
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        cluster = dist.LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: never clash with another cluster
            silence_logs=logging.ERROR,
        )
    try:
        with dist.Client(cluster, set_as_default=False) as client:
            yield client, f"local cluster, {count} worker{'s' if count != 1 else ''}", threads
    finally:
        cluster.close()


def _probe_scheduler(address: str) -> None:
    """Fail fast, with one line, when nothing listens at a ``tcp://`` or ``tls://`` address."""
    parts = urllib.parse.urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise BatchError(f"scheduler address {address} is not tcp://HOST:PORT") from exc
    if not host or port is None:
        raise BatchError(f"scheduler address {address} is not tcp://HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BatchError(
            f"cannot reach Dask scheduler {address}: {reason} (is `dask scheduler` running "
            "there, and the port open?)"
        ) from exc


def _run_on_dask(client: Any, tasks: Iterable[SceneTask], threads: int | None) -> Outcomes:
    """Submit one task per scene as planning yields them; yield outcomes as they complete.

    Outcomes that are ready are yielded between submissions, so the driver records finished
    scenes while it is still hashing the rest of a large input.
    """
    dist: Any = importlib.import_module("distributed")
    from distributed.client import FutureCancelledError

    pending: dict[str, tuple[SceneTask, Any]] = {}
    completed = dist.as_completed(loop=client.loop)

    def outcome(future: Any) -> SceneOutcome:
        task, _ = pending.pop(future.key)
        if future.status == "finished":
            result: SceneOutcome = future.result()
            return result
        try:
            exc = future.exception()
        except FutureCancelledError:
            exc = None
        return SceneOutcome(task.key, task.scene, False, 0.0, _dask_reason(exc))

    try:
        for task in tasks:
            if threads is not None:
                task = replace(task, torch_threads=threads)
            # the key encodes bytes, model, settings and name: a repeat is the same work
            future = client.submit(process_scene, task, key=f"geoseg-scene-{task.key}")
            pending[future.key] = (task, future)
            completed.add(future)
            while completed.has_ready():
                yield outcome(next(completed))
        for future in completed:
            yield outcome(future)
    finally:
        if pending:
            client.cancel([future for _, future in pending.values()])
            completed.clear()


def _dask_reason(exc: BaseException | None) -> str:
    from distributed.scheduler import KilledWorker

    if exc is None:
        return "cancelled"
    if isinstance(exc, KilledWorker):
        return (
            "its worker process died each time it ran it (crash or out of memory); "
            "it was retried on other workers"
        )
    return f"{type(exc).__name__}: {first_line(exc)}"


# --- worker side ---------------------------------------------------------------------------

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

    if task.model is None:
        scene = open_scene(task.source)
        name = choose_default_model(scene.descriptions, scene.colors, scene.sensor)
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
    return loaded


class _CallableModule(types.ModuleType):
    """Lets ``geoseg.batch(...)`` work after ``geoseg.batch`` the module has been imported.

    Importing a submodule binds it as an attribute of its package, shadowing the lazy
    ``geoseg.batch`` function export; making the module callable keeps both spellings working.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> BatchReport:
        return run_batch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
