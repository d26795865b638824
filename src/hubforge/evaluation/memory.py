"""Inference memory: the peak resident memory that loading an artifact and running the latency and throughput
shapes adds to a process, and the load time.

The figure is taken in a fresh worker process per variant (the pipeline's speed step), so allocator caches and
runtimes of other variants don't count toward it. The worker starts with the runtimes imported; its resident
memory then is the baseline, the kernel's peak counter is reset (/proc/self/clear_refs), the artifact is loaded and
run, and the figure is the peak (VmHWM) above the baseline.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ..process_memory import peak_mb, release_memory, reset_peak, resident_mb


@dataclass(frozen=True)
class Memory:
    """MB of resident memory added by loading and running, over the baseline process with its runtime imported."""

    peak_mb: float
    load_s: float
    baseline_mb: float
    shapes: tuple[tuple[int, int], ...]

    def as_dict(self) -> dict:
        return asdict(self)


def measure_memory(load: Callable[[], object], shapes: list[tuple[int, int]]):
    """Load a runtime with `load()` and run it at each of `shapes` ([batch, sequence]; a fixed-shape graph at its
    own shape); returns the runtime and the memory it added. Call it first thing in a fresh process."""
    release_memory()
    baseline = resident_mb()
    exact = reset_peak()  # else ru_maxrss counts everything before too: an upper bound
    start = time.perf_counter()
    runtime = load()
    load_s = time.perf_counter() - start
    shapes = [tuple(runtime.static_shape)] if runtime.static_shape else [tuple(s) for s in shapes]
    for batch, seq in shapes:
        ids = np.full((batch, seq), 1000, dtype=np.int64)
        runtime.forward({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    peak = peak_mb() if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return runtime, Memory(round(peak - baseline, 1), round(load_s, 3), round(baseline, 1), tuple(shapes))
