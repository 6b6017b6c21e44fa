"""Keep freed tensor memory in the process for reuse, instead of handing it back to the OS.

glibc's malloc serves large blocks with fresh mmap() calls and returns them on free(); a tensor
of a few MB then costs a page fault per 4 KB page each time it is allocated again. A network
that runs forward and backward thousands of times (feature visualization) or over a whole image
set (exemplar passes) reallocates the same activations every step: with the default settings a
step on 2 CPU cores spent about a third of its time in those faults (docs/benchmarks.md).

`keep_freed_memory()` raises glibc's mmap threshold to its ceiling (32 MiB on 64-bit) and keeps
up to `TRIM_THRESHOLD` of free memory at the top of the heap, for the rest of the process.
glibc's own dynamic threshold only rises to the size of a mapped block once one is freed, and
it hands the heap's top back above twice that: activations of varying sizes went on being
faulted in afresh (12,900 faults per step at a batch of 4, against 3,300 with these settings).
Blocks above the ceiling are still mapped and unmapped; elsewhere than glibc (musl, macOS) this
does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

# mallopt() parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 512 * 1024 * 1024

_state = {"done": False, "kept": False}


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True if glibc took them (also on later calls)."""
    if _state["done"]:
        return _state["kept"]
    _state["done"] = True
    libc = _glibc()
    if libc is None:
        return False
    taken = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not taken:
        log.warning("glibc refused the malloc thresholds; large tensors stay mmap()ed")
    _state["kept"] = taken
    return taken


def kept() -> bool:
    """Whether this process keeps freed memory (keep_freed_memory ran and glibc took it)."""
    return _state["kept"]


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
