"""Vectorizing (and writing the GeoPackage) while the model runs.

Finished class rows go to a :class:`~geoseg.streaming.RowBuffer` as well as to the class raster;
a thread vectorizes from that buffer (:func:`~geoseg.vectorize.polygon_batches`, whose worker
processes run at the lowest CPU priority) and stores each row of blocks' polygons as soon as they
are final. On a GPU machine the CPU cores are otherwise idle during inference; on a CPU-only
machine the workers take only the cycles the model leaves, and when they fall behind by more than
the buffer holds, the model waits for them (memory stays flat). The polygons are the same as
vectorizing the finished class raster.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

import numpy as np
from rasterio.windows import Window

from geoseg.io.class_raster import BlockReader
from geoseg.streaming import RowBuffer
from geoseg.vectorize.blocks import MAX_HALO

T = TypeVar("T")


class BackgroundVectorizer(Generic[T]):
    """Vectorize a class raster from its rows as they are produced, in a background thread.

    Use as a context manager around the producer; leaving it because of an error abandons the
    work. Feed rows in order with :meth:`add_rows`, then take the result with :meth:`result`.

    Parameters
    ----------
    height : int
        Rows of the raster.
    block_size : int
        Side of the vectorize blocks, pixels (sizes the row buffer).
    vectorize : callable
        Vectorizes a raster from a block reader, e.g. :func:`geoseg.vectorize.vectorize_blocks`
        with everything but ``read`` bound (``background=True``, at least two workers); what it
        returns is :meth:`result`.
    """

    def __init__(self, height: int, block_size: int, vectorize: Callable[[BlockReader], T]) -> None:
        # room for two block rows and their halos: the model may run a block row ahead
        self.buffer = RowBuffer(height, max_rows=2 * (block_size + 2 * MAX_HALO))
        self._vectorize = vectorize
        self._result: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="geoseg-vectorize", daemon=True)

    def _read(self, window: Window) -> np.ndarray:
        return self.buffer.read(
            int(window.row_off), int(window.height), int(window.col_off), int(window.width)
        )

    def _run(self) -> None:
        try:
            self._result = self._vectorize(self._read)
        except BaseException as exc:  # re-raised by result()
            self._error = exc
            self.buffer.abort()  # a producer waiting for room must not wait forever

    def __enter__(self) -> BackgroundVectorizer[T]:
        self._thread.start()
        return self

    def add_rows(self, first_row: int, rows: np.ndarray) -> None:
        """Hand over finished full-width rows (waits while the buffer is full)."""
        self.buffer.append(first_row, rows)

    def result(self) -> T:
        """Wait for the vectorizer to finish and return its result (or raise its error)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None  # set by _run when no error
        return self._result

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.buffer.abort()
        self._thread.join()
