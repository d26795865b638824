"""The bounded attention mask side by side (src/hubforge/targets/attention_mask.py): MiniLM's onnx (fp32), int8 and
mnn artifacts as hubforge builds them (padded scores filled with MASK_FILL) and the same graphs with the usual fill
(the exporter's -3.4e38; ONNX Runtime's fused-attention default -10000 for int8), timed in interleaved rounds at [1, 128] on one
short real text padded to 128 tokens and on 128 real tokens, with the largest difference of their embeddings over
128 real texts (batches padded to their longest). Appends to benchmarks/RESULTS.md.

    python benchmarks/bench_mask.py [--rounds 10] [--block 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import hubforge  # noqa: F401  (telemetry off before any runtime is imported)
from hubforge.build import cache_key
from hubforge.datasets import sample_texts
from hubforge.devhub.seed import bundled_minilm
from hubforge.evaluation.hardware import fingerprint
from hubforge.export import export_fp32_onnx
from hubforge.paths import cache_dir
from hubforge.pipeline import EvalOptions, run
from hubforge.reference import model_io
from hubforge.runtimes import MnnRuntime, OrtRuntime, TextEncoder, model_feed
from hubforge.source import local_source
from hubforge.spec import load_spec
from hubforge.targets import mnn
from hubforge.targets.attention_mask import fill_fused_attention

RESULTS = Path(__file__).with_name("RESULTS.md")
ORT_DEFAULT_FILL = -10000.0


def usual_fill_int8(bounded: Path, out: Path) -> Path:
    import onnx

    model = onnx.load(str(bounded))
    fill_fused_attention(model, ORT_DEFAULT_FILL)
    onnx.save(model, str(out))
    return out


def p50_ms(runtime, feed: dict, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        runtime.forward(feed)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--block", type=int, default=30, help="timed calls per artifact and input, each round")
    args = parser.parse_args()

    spec = load_spec("all-minilm-l6-v2")
    source = local_source(spec, bundled_minilm())
    io = model_io(spec, source)
    print("building hubforge's onnx, int8 and mnn artifacts (cached after the first run) …")
    published = {v.name: v.files for v in run(spec, source, ["onnx", "int8", "mnn"],
                                               EvalOptions(quality=False, speed=False)).published}
    export = export_fp32_onnx(spec, source, cache_dir() / cache_key(spec, source) / "export")
    texts = sample_texts("banking77", 128, split="train", seed=3)

    with tempfile.TemporaryDirectory() as tmp:
        pairs = {
            "onnx (fp32)": (OrtRuntime(published["onnx"]["onnx/model.onnx"]), OrtRuntime(export)),
            "int8": (OrtRuntime(published["int8"]["onnx/model_quantized.onnx"]),
                     OrtRuntime(usual_fill_int8(published["int8"]["onnx/model_quantized.onnx"],
                                                Path(tmp) / "usual.onnx"))),
            "mnn": (MnnRuntime(published["mnn"]["mnn/model.mnn"]),  # usual: the export itself, int8 as MiniLM passes
                    MnnRuntime(mnn.convert(export, Path(tmp) / "usual.mnn", mnn.MnnConfig(weights="int8")))),
        }
        tokenizer = TextEncoder(io, pairs["int8"][0]).tokenizer
        short = min(texts, key=len)
        feeds = {"one short text padded to 128": model_feed(tokenizer, [short], None, 128, True),
                 "128 real tokens": model_feed(tokenizer, [" ".join(texts)], None, 128, True)}
        differences = {name: float(np.abs(TextEncoder(io, bounded).embed(texts) - TextEncoder(io, usual).embed(texts))
                                   .max()) for name, (bounded, usual) in pairs.items()}
        timings = {(name, fill, feed): [] for name in pairs for fill in ("bounded", "usual") for feed in feeds}
        for round_ in range(args.rounds):
            for name, (bounded, usual) in pairs.items():
                order = (("bounded", bounded), ("usual", usual))
                for fill, runtime in order if round_ % 2 == 0 else order[::-1]:
                    for feed_name, feed in feeds.items():
                        p50_ms(runtime, feed, 3)
                        timings[name, fill, feed_name].append(p50_ms(runtime, feed, args.block))
            print(f"  round {round_ + 1}/{args.rounds}")

    hw = fingerprint()
    lines = ["", "## Bounded attention mask", "",
             f"Produced by `python benchmarks/bench_mask.py --rounds {args.rounds} --block {args.block}` on "
             f"{time.strftime('%Y-%m-%d')}, {hw.summary()}, {len(os.sched_getaffinity(0))} threads. p50 of each "
             f"round's {args.block} calls, median over {args.rounds} interleaved rounds; \"usual\" is the same graph "
             f"with the exporter's fill (onnx, mnn) or ONNX Runtime's fused-attention default (int8).", "",
             "| artifact | input [1, 128] | bounded fill ms | usual fill ms | speed-up | largest embedding difference |",
             "|---|---|---|---|---|---|"]
    for name in pairs:
        for feed_name in feeds:
            bounded = statistics.median(timings[name, "bounded", feed_name])
            usual = statistics.median(timings[name, "usual", feed_name])
            lines.append(f"| {name} | {feed_name} | {bounded:.2f} | {usual:.2f} | {usual / bounded:.2f}x | "
                         f"{differences[name]:.1e} |")
    print("\n".join(lines))
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
