"""Peak resident memory of one phase of a measurement, in-process.

torch allocates outside Python's allocator, so tracemalloc misses tensors; ru_maxrss is a process-lifetime
high-water mark, so a phase smaller than an earlier one reads 0. On Linux, writing 5 to /proc/self/clear_refs resets
the high-water mark (VmHWM) to the current RSS: after gc and malloc_trim (memory freed by earlier phases handed back
to the system, so a phase cannot hide inside it), VmHWM minus the RSS at the start is the phase's own peak.
Elsewhere the ru_maxrss delta is reported, named as the lower bound it is.
"""

from __future__ import annotations

import ctypes
import gc
import re
import resource
from pathlib import Path
from types import TracebackType

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def _reset_high_water() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to hand back
        pass


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def method() -> str:
    """How `PeakMemory` measures on this machine (written into the study's table)."""
    if _status_mb("VmHWM") is not None and _reset_high_water():
        return "VmHWM after a reset via /proc/self/clear_refs, minus RSS at the phase start (gc + malloc_trim first)"
    return "ru_maxrss delta over the phase (a lower bound: 0 where an earlier phase peaked higher)"


class PeakMemory:
    """`with PeakMemory() as m: ...` then `m.peak_mb`: MB the phase added at its peak above its starting RSS."""

    def __init__(self) -> None:
        self.peak_mb: float | None = None
        self._hwm = False
        self._base = 0.0

    def __enter__(self) -> "PeakMemory":
        _trim()
        self._hwm = _reset_high_water() and _status_mb("VmHWM") is not None
        self._base = (_status_mb("VmRSS") or 0.0) if self._hwm else _maxrss_mb()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        peak = _status_mb("VmHWM") if self._hwm else _maxrss_mb()
        self.peak_mb = round(max(0.0, (peak or 0.0) - self._base), 1)
