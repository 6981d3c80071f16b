"""Handing the C heap's free memory back to the system between blocks of a fit.

glibc's malloc keeps memory that was freed in its heaps (it raises its mmap threshold as large blocks are freed, so
that later tensors of a few MB come from the heap, whose holes stay part of the process). A network fit allocates and
frees tensors of many sizes (the checks of the first frames, the passes' activations, the extraction), and the held
holes added about 250 MB to the peak RSS of a 1000 x 1000 fit on the CPU (bench/RESULTS.md, session 48).
:func:`release_free_heap` once per block of frames (``malloc_trim``) gave it back at no measurable cost (2.2 s of
system time in a 69 s fit, 3.6 s without); after every network pass it cost 12 s of system time, and a fixed mmap
threshold of 1 MB (every tensor of 1 MB or more mapped afresh) 26 s.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have none
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_heap() -> bool:
    """Return the C heap's free pages to the system (glibc ``malloc_trim(0)``); False where there is no such call."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
