"""Keeping peak memory flat in scene size.

glibc raises its mmap threshold every time a large block is freed (up to 32 MB), after which
strip-sized arrays come from the heap, fragment it and are never returned: RSS then creeps up with
every strip (measured +25% over a 50-megapixel scene). A fixed threshold of 16 MB keeps strips
(tens of MB) mmapped, so freeing them returns the memory at once, while the network's activations
(a few MB each) are reused from the heap: at 1 MB every forward pass page-faulted its activations
in afresh, which made the model 15-35% slower. What the heap still holds after each strip is handed
back with ``malloc_trim``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
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
