"""Read-ahead and write-behind threads keep order, surface errors and never outlive their loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from geoseg.streaming import WriteBehind, read_ahead


def test_read_ahead_keeps_order() -> None:
    assert list(read_ahead(iter(range(100)), depth=3)) == list(range(100))


def test_read_ahead_reraises_producer_errors() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    reader = read_ahead(items())
    assert next(reader) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(reader)


def test_closing_read_ahead_stops_its_thread_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                n += 1
                yield n
        finally:
            closed.set()

    before = threading.active_count()
    reader = read_ahead(endless(), depth=2)
    assert next(reader) == 1
    reader.close()
    assert closed.wait(2)
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_write_behind_writes_everything_in_order() -> None:
    written: list[int] = []
    with WriteBehind(written.append, depth=2) as writer:
        for i in range(50):
            writer.submit(i)
    assert written == list(range(50))


def test_write_behind_reraises_the_first_write_error() -> None:
    def write(item: int) -> None:
        if item == 3:
            raise OSError("no space left")

    with pytest.raises(OSError, match="no space"), WriteBehind(write, depth=1) as writer:
        for i in range(10):
            writer.submit(i)
            time.sleep(0.001)
