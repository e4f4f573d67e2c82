"""The batch report: one line per scene, totals, and the JSON and CSV files written from them.

A :class:`SceneReport` is made from the manifest's record of a scene (done now, or complete from
an earlier run); :class:`BatchReport` gathers them in input order and is written to the output
folder as :data:`REPORT_JSON` and :data:`REPORT_CSV` (one row per scene, a pixel and an area
column per class), with the merged GeoPackage (:data:`MERGED_NAME`) when asked for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from geoseg import __version__
from geoseg.io.archive import BatchInput, SceneSource
from geoseg.io.batch_outputs import merge_landcover, write_csv, write_json
from geoseg.io.manifest import RunRecord

log = logging.getLogger(__name__)

__all__ = ["MERGED_NAME", "REPORT_CSV", "REPORT_JSON", "BatchReport", "SceneReport", "SceneStatus"]

SceneStatus = Literal["done", "cached", "failed", "not_run"]

REPORT_JSON = "geoseg-batch-report.json"
REPORT_CSV = "geoseg-batch-report.csv"
MERGED_NAME = "geoseg-merged.gpkg"


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
