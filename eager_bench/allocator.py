"""Keep freed training buffers in the process instead of handing them back to the kernel after every step.

glibc's malloc serves a request above its mmap threshold (128 KiB at start, raised on the fly up to 32 MiB) with a
fresh mmap and returns it with munmap on free; it also trims the top of the heap back to the kernel once 128 KiB
(later twice the threshold) lies free there. A training step allocates and frees the same multi-megabyte activations
every time (EAGER's [512, 19, 1024] FFN activations are 20-40 MB), so every step page-faults all of them in again:
11,000-18,000 minor faults per EAGER update on Beauty, 8-14% of its wall time as system time (getrusage over 15
updates, bf16, 1 thread; with this policy 240-520 faults per update). Raising the mmap threshold to glibc's maximum and never trimming keeps
those pages mapped: the same arithmetic on the same buffers' values, so results do not change, only the time.

Policy (`EAGER_BENCH_ALLOCATOR`, a machine setting like EAGER_BENCH_THREADS, not part of any config):
`tuned` (default) = the settings below via mallopt; `system` = leave glibc's own (dynamic) behaviour alone.
Where the C library is not glibc (macOS, musl) nothing is changed and provenance says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache
from typing import Any

from eager_bench.errors import BenchError

ALLOCATOR_ENV = "EAGER_BENCH_ALLOCATOR"
ALLOCATOR_POLICIES = ("tuned", "system")
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit; larger requests still get their own
# mapping. Trimming is effectively off (only past 2 GiB free at the heap top: a peak's pages stay with the process
# until it exits), and the heap grows in 64 MiB steps so a step's first large buffers do not each extend it.
TUNED = {"mmap_threshold": 32 * 2 ** 20, "trim_threshold": 2 ** 31 - 1, "top_pad": 64 * 2 ** 20}  # C ints
_MALLOPT_PARAM = {"mmap_threshold": -3, "trim_threshold": -1, "top_pad": -2}  # M_* numbers of glibc's malloc.h
_applied: dict[str, Any] = {}


def allocator_policy() -> str:
    raw = os.environ.get(ALLOCATOR_ENV, "").strip() or "tuned"
    if raw not in ALLOCATOR_POLICIES:
        raise BenchError(f"{ALLOCATOR_ENV}={raw!r}: expected one of {', '.join(ALLOCATOR_POLICIES)}")
    return raw


@lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        return libc
    except (OSError, AttributeError):  # not glibc
        return None


def apply_allocator_policy() -> dict[str, Any]:
    """Apply EAGER_BENCH_ALLOCATOR to this process (once; later calls return what was applied)."""
    global _applied
    if _applied:
        return _applied
    policy = allocator_policy()
    libc = _glibc()
    if libc is None:
        _applied = {"policy": policy, "applied": False, "why": "not glibc: the C library's defaults are kept"}
    elif policy == "system":
        _applied = {"policy": policy, "applied": False, "why": f"{ALLOCATOR_ENV}=system: glibc's defaults"}
    else:
        ok = all(libc.mallopt(_MALLOPT_PARAM[name], value) == 1 for name, value in TUNED.items())
        _applied = {"policy": policy, "applied": ok, "glibc": libc.gnu_get_libc_version().decode(), **TUNED}
    return _applied


def allocator_report() -> dict[str, Any]:
    """What provenance records: the policy and whether it was applied in this process."""
    return dict(_applied) if _applied else {"policy": allocator_policy(), "applied": False,
                                            "why": "not applied in this process (no model trained here)"}
