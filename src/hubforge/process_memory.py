"""This process's resident memory, and handing freed memory back: what the workers record of each step, the
inference-memory figure is measured with, and converters call between large copies."""

from __future__ import annotations

import ctypes
import gc
import resource
from pathlib import Path


def _status_mb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM)."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mb() -> float:
    return _status_mb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_memory() -> None:
    """Collect garbage and hand the heap's free pages back to the system (glibc keeps them otherwise, so a
    converter's freed model copies would still count toward the next step's resident memory)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak() -> bool:
    """Start the kernel's peak counter again from the current resident memory; False where Linux won't."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
