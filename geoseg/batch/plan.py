"""Planning a batch: output folder, model identity, the settings that key results, work to do.

Each scene's manifest key (:func:`geoseg.io.manifest.work_key`) encodes its bytes, the model and
:func:`result_parameters`; :func:`_plan` hashes the scenes one by one, settles those the manifest
already holds complete with the same key, and yields a :class:`~geoseg.batch.worker.SceneTask` for
each of the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

from geoseg import __version__
from geoseg.batch.report import SceneReport, _scene_report
from geoseg.batch.worker import SceneTask
from geoseg.config import PredictOptions
from geoseg.core import first_line
from geoseg.errors import BatchError
from geoseg.io.archive import BatchInput, SceneSource, content_sha256, file_sha256, fingerprint
from geoseg.io.manifest import Manifest, work_key

__all__ = ["result_parameters"]

# PredictOptions fields that change how fast a result comes, not what it is.
_NOT_RESULT_FIELDS = frozenset({"device", "batch_size", "prefetch", "compile", "vectorize_workers"})


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
