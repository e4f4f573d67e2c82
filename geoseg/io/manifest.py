"""The batch manifest: an SQLite file in the output folder that makes batches resumable.

Each unit of work is keyed by a hash of the scene's bytes, the model file's checksum, the settings
that change results and the scene's name (two identical files still get one output each). A run
is recorded only after its outputs were renamed into place, and every output path remembers
which key wrote it last, so a scene counts as done only if its files are there *and* were made
with the current model and settings. Only the batch driver opens the manifest (workers return
results), so there is never more than one writer.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from geoseg.errors import BatchError
from geoseg.io.archive import Fingerprint

MANIFEST_NAME = "geoseg-manifest.sqlite"
LOCK_NAME = ".geoseg-batch.lock"
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    scene TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error TEXT,
    seconds REAL NOT NULL,
    result TEXT NOT NULL,
    outputs TEXT NOT NULL,
    finished TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outputs (path TEXT PRIMARY KEY, key TEXT NOT NULL);
"""

RunStatus = Literal["done", "failed"]


def work_key(content_sha256: str, model_sha256: str, params: Mapping[str, Any], scene: str) -> str:
    """The manifest key of one scene's work: what its result depends on, hashed.

    >>> a = work_key("c" * 64, "m" * 64, {"tile_size": 256}, "a.tif")
    >>> a == work_key("c" * 64, "m" * 64, {"tile_size": 256}, "a.tif")
    True
    >>> a == work_key("c" * 64, "m" * 64, {"tile_size": 512}, "a.tif")
    False
    """
    payload = json.dumps(
        {"content": content_sha256, "model": model_sha256, "params": params, "scene": scene},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class RunRecord:
    """The outcome of one scene's work, as the manifest keeps it.

    Parameters
    ----------
    key : str
        :func:`work_key` of the work.
    scene : str
        Scene name within the batch input.
    content_sha256, model_sha256 : str
        Hashes of the scene's bytes and of the model file.
    params : Mapping
        Settings that change results.
    status : str
        ``done`` or ``failed``.
    error : str or None
        One-line reason of a failure.
    seconds : float
        Time the work took on its worker.
    result : Mapping
        Summary of the result (model used, class pixels and areas ...).
    outputs : tuple of str
        Output paths relative to the output folder.
    """

    key: str
    scene: str
    content_sha256: str
    model_sha256: str
    params: Mapping[str, Any]
    status: RunStatus
    error: str | None
    seconds: float
    result: Mapping[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()


class Manifest:
    """Open (creating if needed) the manifest of an output folder.

    Use as a context manager; every :meth:`record` is committed at once, so an interruption
    loses at most the scenes still in flight.

    Parameters
    ----------
    path : Path
        The SQLite file.

    Raises
    ------
    BatchError
        If the file exists but is not a geoseg manifest, or cannot be created.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            # the driver may record results from the thread Dask calls back on
            self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if row is None:
                with self._db:
                    self._db.execute(
                        "INSERT INTO meta (name, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
                    )
            elif row[0] != SCHEMA_VERSION:
                raise BatchError(
                    f"manifest {path} has schema {row[0]}, this geoseg writes {SCHEMA_VERSION}: "
                    "delete it to start the batch afresh"
                )
        except sqlite3.Error as exc:
            raise BatchError(
                f"cannot use batch manifest {path}: {exc} (delete it to start afresh)"
            ) from exc

    def __enter__(self) -> Manifest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def cached_hash(self, fingerprint: Fingerprint) -> str | None:
        """The content hash stored for a scene whose holder's size and time are unchanged."""
        if fingerprint.size < 0:
            return None
        row = self._db.execute(
            "SELECT sha256 FROM hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
            (fingerprint.path, fingerprint.size, fingerprint.mtime_ns),
        ).fetchone()
        return None if row is None else str(row[0])

    def store_hash(self, fingerprint: Fingerprint, sha256: str) -> None:
        """Remember a scene's content hash until its file changes."""
        if fingerprint.size < 0:
            return
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO hashes (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
                (fingerprint.path, fingerprint.size, fingerprint.mtime_ns, sha256),
            )

    def completed(self, key: str, outputs: Sequence[str], folder: Path) -> RunRecord | None:
        """The record of work ``key`` if it is done and all its ``outputs`` are still its own.

        An output counts only if the file exists in ``folder`` and the manifest says ``key``
        wrote it last (a later run with other settings may have replaced it).
        """
        row = self._db.execute(
            "SELECT key, scene, content_sha256, model_sha256, params, status, error, seconds, "
            "result, outputs FROM runs WHERE key = ? AND status = 'done'",
            (key,),
        ).fetchone()
        if row is None:
            return None
        for output in outputs:
            owner = self._db.execute("SELECT key FROM outputs WHERE path = ?", (output,)).fetchone()
            if owner is None or owner[0] != key or not (folder / output).is_file():
                return None
        return RunRecord(
            key=row[0],
            scene=row[1],
            content_sha256=row[2],
            model_sha256=row[3],
            params=json.loads(row[4]),
            status=row[5],
            error=row[6],
            seconds=float(row[7]),
            result=json.loads(row[8]),
            outputs=tuple(json.loads(row[9])),
        )

    def record(self, run: RunRecord) -> None:
        """Store the outcome of one scene's work, in one transaction."""
        now = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
        try:
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO runs (key, scene, content_sha256, model_sha256, "
                    "params, status, error, seconds, result, outputs, finished) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.key,
                        run.scene,
                        run.content_sha256,
                        run.model_sha256,
                        json.dumps(run.params, sort_keys=True, default=str),
                        run.status,
                        run.error,
                        run.seconds,
                        json.dumps(run.result, sort_keys=True, default=str),
                        json.dumps(list(run.outputs)),
                        now,
                    ),
                )
                if run.status == "done":
                    self._db.executemany(
                        "INSERT OR REPLACE INTO outputs (path, key) VALUES (?, ?)",
                        [(output, run.key) for output in run.outputs],
                    )
        except sqlite3.Error as exc:
            raise BatchError(f"cannot write batch manifest {self.path}: {exc}") from exc

    def count(self, status: RunStatus) -> int:
        """How many runs the manifest holds with ``status`` (for tests and reports)."""
        row = self._db.execute("SELECT COUNT(*) FROM runs WHERE status = ?", (status,)).fetchone()
        return int(row[0])


@contextlib.contextmanager
def exclusive_folder(folder: Path) -> Iterator[None]:
    """Hold the output folder for one batch at a time.

    Two batches writing to one folder would sweep each other's temporaries and race on outputs.
    The lock is an OS file lock, so a killed batch never leaves it held. Where file locks are not
    available (Windows), nothing is locked.

    Raises
    ------
    BatchError
        If another batch holds the folder.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    with open(folder / LOCK_NAME, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise BatchError(
                f"another geoseg batch is writing to {folder}: wait for it to end or give "
                "another output folder"
            ) from exc
        try:
            yield
        finally:
            # the lock file goes with the batch (removed while still held, so no other batch
            # can have locked it in between)
            with contextlib.suppress(OSError):
                (folder / LOCK_NAME).unlink()
            fcntl.flock(handle, fcntl.LOCK_UN)
