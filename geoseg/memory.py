"""Keeping peak memory flat in scene size.

glibc raises its mmap threshold every time a large block is freed (up to 32 MB), after which
strip-sized arrays come from the heap, fragment it and are never returned: RSS then creeps up with
every strip (measured +25% over a 50-megapixel scene). A fixed threshold of 16 MB keeps strips
(tens of MB) mmapped, so freeing them returns the memory at once, while the network's activations
(a few MB each) are reused from the heap: at 1 MB every forward pass page-faulted its activations
in afresh, which made the model 15-35% slower. What the heap still holds after each strip is handed
back with ``malloc_trim``.

Networks whose activations are larger than any threshold glibc allows (32 MB: Dynamic World's
64-channel full-resolution maps are 67 MB per 512 px tile in float32) would still page-fault them
in afresh on every forward pass. While a network runs, :func:`network_allocations` therefore turns
mmap off, so its activations come from the heap and are reused pass after pass; strips, decoded
outside that window, stay mmapped. Measured on Dynamic World, 512 px tiles, float32, 2 cores:
2.81 s per tile and 221k page faults with mmap off, 4.19 s and 1.51 M faults with the 16 MB
threshold (3 tiles each, one run).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
_M_MMAP_MAX = -4
_DEFAULT_MMAP_MAX = 65536
MMAP_THRESHOLD_BYTES = 16 << 20


@functools.cache
def bound_heap_growth() -> bool:
    """Fix glibc's mmap threshold (once per process); a no-op where glibc is not the allocator."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False
    log.debug("mmap threshold fixed at %d bytes: %s", MMAP_THRESHOLD_BYTES, done)
    return done


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def release_free_heap() -> None:
    """Return the heap's free pages to the system (glibc ``malloc_trim``); a no-op elsewhere."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


@contextlib.contextmanager
def network_allocations() -> Iterator[None]:
    """Within the block, large allocations come from the heap instead of fresh mmaps (glibc)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        yield
        return
    mallopt(_M_MMAP_MAX, 0)
    try:
        yield
    finally:
        mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
