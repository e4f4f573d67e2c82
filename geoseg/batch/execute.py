"""Running a batch's tasks: in this process, on a local Dask cluster, or on a running scheduler.

One Dask task per scene, keyed by its manifest key; outcomes come back as they complete, while the
driver is still planning the rest. A worker that dies has its tasks rescheduled; a scene that kills
workers repeatedly fails alone (:data:`ALLOWED_FAILURES`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import socket
import urllib.parse
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import replace
from typing import Any

from geoseg.batch.worker import SceneOutcome, SceneTask, process_scene
from geoseg.core import first_line
from geoseg.errors import BatchError
from geoseg.workers import scene_workers

log = logging.getLogger(__name__)

__all__ = ["ALLOWED_FAILURES", "CONNECT_TIMEOUT_S", "default_workers"]

#: Seconds to wait for a scheduler to answer and to have at least one worker.
CONNECT_TIMEOUT_S = 10.0
#: Times a scene may be running on a worker that dies before it is failed (Dask's
#: ``allowed-failures``; local clusters only, a remote scheduler keeps its own setting).
ALLOWED_FAILURES = 2

#: The ``(worker processes, torch threads per worker)`` a batch starts by default; the policy
#: lives in :mod:`geoseg.workers` beside the one for vectorizing.
default_workers = scene_workers


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
