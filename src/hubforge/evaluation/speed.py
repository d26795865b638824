"""Latency at batch 1 and a fixed shape, throughput at a larger batch; warm-up first, percentiles after."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..runtimes import Runtime, TextEncoder, model_feed


@dataclass(frozen=True)
class Speed:
    """Latency in ms for one call of shape [1, seq] over `runs` timed calls; throughput in sequences/s and real
    (unpadded) tokens/s."""

    shape: tuple[int, int]
    provider: str
    threads: int
    avg_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_batch: int
    sequences_per_s: float
    tokens_per_s: float
    runs: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


MIN_RUNS = 10


def _timed(runtime: Runtime, feed: dict[str, np.ndarray], runs: int, *, seconds: float | None = None) -> np.ndarray:
    """Up to `runs` timed calls; with `seconds`, stop once that much time is spent and MIN_RUNS calls are done."""
    times, deadline = [], time.perf_counter() + seconds if seconds else None
    for _ in range(runs):
        start = time.perf_counter()
        runtime.forward(feed)
        times.append((time.perf_counter() - start) * 1000)
        if deadline and len(times) >= MIN_RUNS and time.perf_counter() > deadline:
            break
    return np.asarray(times)


def measure_speed(encoder: TextEncoder, texts: list[str], shape: tuple[int, int], *, batch: int, runs: int,
                  threads: int, seconds: float | None = None) -> Speed:
    """Latency pads one real text to `shape` (`runs` calls, fewer where `seconds` runs out first: a large model's
    fp32 graph takes a second a call); throughput runs real texts, batched where the artifact allows."""
    runtime = encoder.runtime
    seq = runtime.static_shape[1] if runtime.static_shape else shape[1]
    feed = model_feed(encoder.tokenizer, texts[:1], None, max_length=seq, pad_to_max=True)
    _timed(runtime, feed, max(3, runs // 10), seconds=seconds and seconds / 10)
    lat = _timed(runtime, feed, runs, seconds=seconds)

    tp_batch = 1 if runtime.static_shape else batch
    sample = texts[: max(batch, 1)]
    feeds = [encoder.tokenize(sample[i : i + tp_batch]) for i in range(0, len(sample), tp_batch)]
    real_tokens = int(sum(f["attention_mask"].sum() for f in feeds))
    runtime.forward(feeds[0])
    start = time.perf_counter()
    for f in feeds:
        runtime.forward(f)
    elapsed = time.perf_counter() - start
    return Speed(
        shape=(1, seq),
        provider=runtime.provider,
        threads=threads,
        avg_ms=float(lat.mean()),
        min_ms=float(lat.min()),
        max_ms=float(lat.max()),
        p50_ms=float(np.percentile(lat, 50)),
        p90_ms=float(np.percentile(lat, 90)),
        p99_ms=float(np.percentile(lat, 99)),
        throughput_batch=tp_batch,
        sequences_per_s=len(sample) / elapsed,
        tokens_per_s=real_tokens / elapsed,
        runs=len(lat),
    )
