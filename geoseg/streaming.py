"""Overlapping the pipeline's stages: a read-ahead thread and a write-behind thread.

Decoding the next strip and writing the last one happen while the model runs on the current one.
Queues are bounded, so at most ``depth`` items wait between two stages and memory stays flat.
Errors raised in a background thread re-raise in the caller, at the next hand-over or at exit.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Iterate ``items`` in a background thread, keeping up to ``depth`` items ready.

    The producer stops at the consumer's next hand-over if the consumer goes away (generator
    closed), so no thread outlives the loop that used it.
    """
    hand_over: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        hand_over.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            hand_over.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            hand_over.put(_Failure(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # finish a generator in the thread that ran it
                close()

    thread = threading.Thread(target=produce, name="geoseg-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = hand_over.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


class WriteBehind(Generic[T]):
    """Call ``write(item)`` for each submitted item in a background thread, in order.

    Use as a context manager; leaving it waits for every pending write and re-raises the first
    error a write raised.
    """

    def __init__(self, write: Callable[[T], None], depth: int = 2) -> None:
        self._write = write
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="geoseg-write-behind", daemon=True)

    def __enter__(self) -> WriteBehind[T]:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._write(item)  # type: ignore[arg-type]
                except BaseException as exc:  # re-raised by submit() or __exit__
                    self._error = exc

    def submit(self, item: T) -> None:
        """Queue ``item`` for writing (blocks while ``depth`` writes are pending)."""
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        if self._error is not None and exc is None:
            raise self._error
