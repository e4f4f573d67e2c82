"""Overlapping the pipeline's stages: a read-ahead thread, a write-behind thread, a row buffer.

Decoding the next strip and writing the last one happen while the model runs on the current one;
finished rows also go to the background vectorizer through a :class:`RowBuffer`.
Queues are bounded, so at most ``depth`` items wait between two stages and memory stays flat.
Errors raised in a background thread re-raise in the caller, at the next hand-over or at exit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(items: Iterator[T], depth: int = 1) -> Generator[T, None, None]:
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


class RowBuffer:
    """Full-width rows of a raster handed from a producer to a consumer reading windows in order.

    The producer :meth:`append` s consecutive rows; the consumer :meth:`read` s windows whose
    top rows never go back up. Rows above the latest window's top are dropped, and ``append``
    waits while ``max_rows`` rows are held, so memory stays flat whatever the raster's height.
    ``max_rows`` must exceed the tallest window, or the two would wait on each other.

    Parameters
    ----------
    height : int
        Rows the raster has.
    max_rows : int
        Rows held before ``append`` waits for the consumer.
    """

    def __init__(self, height: int, max_rows: int) -> None:
        self.height = height
        self.max_rows = max_rows
        self._chunks: list[tuple[int, np.ndarray]] = []  # (first row, rows), in order
        self._first = 0  # first row still held
        self._end = 0  # rows appended so far
        self._aborted = False
        self._changed = threading.Condition()
        self.wait_seconds = 0.0

    def append(self, first_row: int, rows: np.ndarray) -> None:
        """Add the rows starting at ``first_row`` (which must follow the previous ones)."""
        with self._changed:
            if first_row != self._end:
                raise ValueError(f"rows out of order: expected row {self._end}, got {first_row}")
            t0 = time.perf_counter()
            self._changed.wait_for(lambda: self._aborted or self._end - self._first < self.max_rows)
            self.wait_seconds += time.perf_counter() - t0
            if self._aborted:
                return
            if first_row + rows.shape[0] > self._first:  # else no window will ever read them
                self._chunks.append((first_row, rows))
            self._end = first_row + rows.shape[0]
            self._changed.notify_all()

    def read(self, row_off: int, height: int, col_off: int, width: int) -> np.ndarray:
        """Wait until the window's rows have arrived and return a copy of it.

        Raises
        ------
        RuntimeError
            If the buffer was aborted (the producer failed).
        """
        stop = min(row_off + height, self.height)
        with self._changed:
            if row_off > self._first:  # nobody reads above this window again: make room first
                self._chunks = [(r, a) for r, a in self._chunks if r + a.shape[0] > row_off]
                self._first = row_off
                self._changed.notify_all()
            self._changed.wait_for(lambda: self._aborted or self._end >= stop)
            if self._aborted:
                raise RuntimeError("the rows being read were abandoned")
            parts = [
                a[max(row_off - r, 0) : stop - r, col_off : col_off + width]
                for r, a in self._chunks
                if r < stop and r + a.shape[0] > row_off
            ]
        return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()

    def abort(self) -> None:
        """Release both sides: ``append`` returns at once, ``read`` raises."""
        with self._changed:
            self._aborted = True
            self._chunks = []
            self._changed.notify_all()
