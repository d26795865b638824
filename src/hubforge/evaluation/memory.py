"""Inference memory: the peak resident memory that loading an artifact and running the latency and throughput
shapes adds to a process, and the load time.

Each figure comes from a fresh child process (`python -m hubforge.evaluation.memory REQUEST`), so allocator
caches and runtimes loaded for other variants in the pipeline's own process don't count toward it. The child
imports its runtime first, takes its resident memory as the baseline, resets the kernel's peak counter
(/proc/self/clear_refs), then loads and runs; the figure is the peak (VmHWM) above the baseline.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RUNTIME_MODULES = {"onnxruntime": ("onnxruntime",), "openvino": ("openvino",), "mnn": ("MNN.expr", "MNN.nn"),
                   "pytorch": ("torch", "transformers")}


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


def _child(request: dict) -> dict:
    import importlib

    import numpy as np

    for module in RUNTIME_MODULES.get(request["runtime"], ()):
        importlib.import_module(module)
    from ..runtimes import TorchRuntime

    baseline = _status_mb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from the current RSS
        peak_key = "VmHWM"
    except OSError:
        peak_key = None  # ru_maxrss counts the imports' peak too: an upper bound
    start = time.perf_counter()
    if request["target"] is None:
        runtime = TorchRuntime(Path(request["model_dir"]), request["task"],
                               trust_remote_code=request["trust_remote_code"])
    else:
        from ..targets import get_target

        # every target opens its artifact from its files alone (`Target.load`)
        runtime = get_target(request["target"]).load({k: Path(v) for k, v in request["files"].items()}, None)
    load_s = time.perf_counter() - start
    shapes = [tuple(s) for s in request["shapes"]]
    if runtime.static_shape:
        shapes = [tuple(runtime.static_shape)]
    for batch, seq in shapes:
        ids = np.full((batch, seq), 1000, dtype=np.int64)
        runtime.forward({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    peak = (_status_mb(peak_key) if peak_key else None) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mb": peak - baseline, "load_s": load_s, "baseline_mb": baseline, "shapes": shapes}


def measure_memory(runtime: str, shapes: list[tuple[int, int]], target: str | None = None,
                   files: dict[str, Path] | None = None, model_dir: Path | None = None,
                   task: str = "sentence-embedding", trust_remote_code: bool = False) -> Memory:
    """Load and run one artifact (`target` and its `files`) or the fp32 PyTorch model (`model_dir`) in a fresh
    process at each of `shapes` ([batch, sequence]); returns the memory it added and its load time."""
    request = {"runtime": runtime, "shapes": [list(s) for s in shapes], "target": target,
               "files": {k: str(v) for k, v in (files or {}).items()}, "model_dir": str(model_dir or ""),
               "task": task, "trust_remote_code": trust_remote_code}
    proc = subprocess.run([sys.executable, "-m", "hubforge.evaluation.memory", json.dumps(request)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RuntimeError(f"memory measurement failed: {lines[-1] if lines else proc.returncode}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return Memory(round(out["peak_mb"], 1), round(out["load_s"], 3), round(out["baseline_mb"], 1),
                  tuple(tuple(s) for s in out["shapes"]))


if __name__ == "__main__":
    import hubforge  # noqa: F401  (telemetry off before any runtime is imported)

    print(json.dumps(_child(json.loads(sys.argv[1]))))
