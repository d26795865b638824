"""Inference memory: the peak resident memory that loading an artifact and running the latency and throughput
shapes adds to a process, and the load time; plus the process-memory helpers the workers use.

The figure is taken in a fresh worker process per variant (the pipeline's speed step), so allocator caches and
runtimes of other variants don't count toward it. The worker starts with the runtimes imported; its resident
memory then is the baseline, the kernel's peak counter is reset (/proc/self/clear_refs), the artifact is loaded and
run, and the figure is the peak (VmHWM) above the baseline.
"""

from __future__ import annotations

import ctypes
import gc
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Memory:
    """MB of resident memory added by loading and running, over the baseline process with its runtime imported."""

    peak_mb: float
    load_s: float
    baseline_mb: float
    shapes: tuple[tuple[int, int], ...]

    def as_dict(self) -> dict:
        return asdict(self)


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


def _reset_peak() -> bool:
    """Start the kernel's peak counter again from the current resident memory; False where Linux won't."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_memory(load: Callable[[], object], shapes: list[tuple[int, int]]):
    """Load a runtime with `load()` and run it at each of `shapes` ([batch, sequence]; a fixed-shape graph at its
    own shape); returns the runtime and the memory it added. Call it first thing in a fresh process."""
    release_memory()
    baseline = resident_mb()
    exact = _reset_peak()  # else ru_maxrss counts everything before too: an upper bound
    start = time.perf_counter()
    runtime = load()
    load_s = time.perf_counter() - start
    shapes = [tuple(runtime.static_shape)] if runtime.static_shape else [tuple(s) for s in shapes]
    for batch, seq in shapes:
        ids = np.full((batch, seq), 1000, dtype=np.int64)
        runtime.forward({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    peak = peak_mb() if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return runtime, Memory(round(peak - baseline, 1), round(load_s, 3), round(baseline, 1), tuple(shapes))
