"""Latency of hubforge's fp16 MiniLM artifact on a GPU machine, which needs no hubforge install.

    python benchmarks/bench_gpu_fp16.py prepare .gpu               # here: the fp16 artifact + fp32 reference
    python3 benchmarks/bench_gpu_fp16.py measure .gpu --out DIR   # there: torch with CUDA, onnx, onnx2torch

`measure` runs the artifact with ONNX Runtime's TensorRT or CUDA provider where that build is installed, and
otherwise converts the graph with onnx2torch and runs it in PyTorch on the GPU (the lent machine's ONNX Runtime
is a CPU build and the GPU build is too large to carry there). It reports the GPU's name, latency p50 at
[1, 128], throughput at [32, 128], and mean cosine of mean-pooled outputs against PyTorch fp32 embeddings
computed by `prepare`, and writes DIR/RESULTS_GPU.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

try:
    import hubforge  # noqa: F401  first: it turns every dependency's telemetry off (hubforge/telemetry.py)
except ImportError:  # `measure` on a machine without hubforge: ONNX Runtime's switch, read when it loads
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

SEQ = 128


def prepare(folder: Path) -> None:
    """Build (or reuse from the cache) the fp16 artifact and save 32 padded Banking77 feeds with their fp32
    PyTorch embeddings."""
    from transformers import AutoTokenizer

    from hubforge.datasets import sample_texts
    from hubforge.devhub.seed import bundled_minilm
    from hubforge.pipeline import EvalOptions, run
    from hubforge.reference import model_io
    from hubforge.runtimes import TorchRuntime, model_feed
    from hubforge.source import local_source
    from hubforge.spec import load_spec

    spec = load_spec("all-minilm-l6-v2")
    source = local_source(spec, bundled_minilm())
    variant = run(spec, source, ["fp16"], options=EvalOptions(quality=False, speed=False)).published[0]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(variant.files["onnx/model_fp16.onnx"], folder / "model_fp16.onnx")
    tokenizer = AutoTokenizer.from_pretrained(model_io(spec, source).model_dir)
    feed = model_feed(tokenizer, sample_texts("banking77", 32, split="train", seed=3), None, max_length=SEQ,
                      pad_to_max=True)
    hidden = TorchRuntime(source.path, spec.task).forward(feed)
    np.savez(folder / "reference.npz", embeddings=mean_pool(hidden, feed["attention_mask"]), **feed)
    print(f"wrote {folder}/model_fp16.onnx and {folder}/reference.npz")


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    return (hidden * weights).sum(1) / weights.sum(1)


def open_runner(model_path: Path):
    """(how it runs, a callable feed -> last_hidden_state as numpy, a callable that waits for the GPU)."""
    import onnxruntime as ort
    import torch

    gpu_providers = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
                     if p in ort.get_available_providers()]
    if gpu_providers:
        session = ort.InferenceSession(str(model_path), providers=gpu_providers)
        return f"ONNX Runtime {ort.__version__} {gpu_providers[0]}", lambda f: session.run(None, f)[0], lambda: None

    import onnx
    from onnx2torch import convert

    module = convert(onnx.load(str(model_path))).cuda().eval()

    def forward(feed):
        with torch.inference_mode():
            args = [torch.from_numpy(feed[n]).cuda() for n in ("input_ids", "attention_mask", "token_type_ids")]
            return module(*args).float().cpu().numpy()

    return (f"PyTorch {torch.__version__} via onnx2torch (ONNX Runtime {ort.__version__} here has no GPU provider)",
            forward, torch.cuda.synchronize)


def timed(forward, feed, sync, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        forward(feed)
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure(folder: Path, out: Path, runs: int) -> None:
    import torch

    reference = np.load(folder / "reference.npz")
    feeds = {k: reference[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    how, forward, sync = open_runner(folder / "model_fp16.onnx")
    one = {k: v[:1] for k, v in feeds.items()}
    timed(forward, one, sync, 20)
    latency = timed(forward, one, sync, runs)
    timed(forward, feeds, sync, 5)
    batch = timed(forward, feeds, sync, max(10, runs // 10))
    cosines = []
    for i in range(len(feeds["input_ids"])):
        vector = mean_pool(forward({k: v[i : i + 1] for k, v in feeds.items()}), feeds["attention_mask"][i : i + 1])[0]
        ref = reference["embeddings"][i]
        cosines.append(float(vector @ ref / (np.linalg.norm(vector) * np.linalg.norm(ref))))
    gpu = torch.cuda.get_device_name(0)
    lines = [
        "# fp16 artifact on a GPU",
        "",
        f"Produced by `python3 benchmarks/bench_gpu_fp16.py measure` on {time.strftime('%Y-%m-%d')} on the lent "
        f"device: **{gpu}**. Runtime: {how}.",
        "",
        "| artifact | p50 ms [1,128] | p90 ms [1,128] | seq/s at [32,128] | mean cosine vs PyTorch fp32 (CPU) |",
        "|---|---|---|---|---|",
        f"| hubforge fp16 (onnx/model_fp16.onnx) | {statistics.median(latency):.3f} | "
        f"{np.percentile(latency, 90):.3f} | {32 / (statistics.median(batch) / 1000):.0f} | "
        f"{statistics.mean(cosines):.5f} |",
        "",
        f"{runs} timed calls at batch 1 after 20 warm-up calls, the GPU synchronised after each; throughput from "
        "the median of the timed batch-32 calls. Inputs are copied to the GPU and outputs back in every call. "
        "Through onnx2torch each ONNX node is its own kernel launch or host-side shape op, so batch-1 latency "
        "measures launch overhead more than the GPU; torch.compile cannot trace onnx2torch's shape ops, and ONNX "
        "Runtime's CUDA/TensorRT providers were not available there. Cosine: 32 Banking77 texts padded to 128, "
        "mean-pooled, against the fp32 PyTorch embeddings that `prepare` computed on the CPU.",
        "",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "RESULTS_GPU.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["prepare", "measure"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--runs", type=int, default=500)
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.folder)
    else:
        measure(args.folder, args.out, args.runs)


if __name__ == "__main__":
    main()
