"""The bounded attention mask side by side (src/hubforge/attention_mask.py): MiniLM's onnx (fp32), int8 and
mnn artifacts as hubforge builds them (padded scores filled with MASK_FILL) and the same graphs with the usual fill
(the exporter's -3.4e38; ONNX Runtime's fused-attention default -10000 for int8), timed by hubforge's own latency
measurement (`measure_speed`) in interleaved rounds at [1, 128] on one short real text padded to 128 tokens and on
128 real tokens, with the largest difference of their embeddings over 128 real texts (batches padded to their
longest). Appends to benchmarks/RESULTS.md.

    python benchmarks/bench_mask.py [--rounds 10] [--block 30]
"""

from __future__ import annotations

import argparse
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
from hubforge.evaluation.speed import measure_speed
from hubforge.export import export_fp32_onnx
from hubforge.paths import cache_dir
from hubforge.pipeline import EvalOptions, run
from hubforge.reference import model_io
from hubforge.runtimes import MnnRuntime, OrtRuntime, TextEncoder, thread_count
from hubforge.source import local_source
from hubforge.spec import load_spec
from hubforge.targets import mnn
from hubforge.attention_mask import ORT_ATTENTION_FILL, fill_fused_attention

RESULTS = Path(__file__).with_name("RESULTS.md")
FILLS = ("bounded", "usual")


def usual_fill_int8(bounded: Path, out: Path) -> Path:
    import onnx

    model = onnx.load(str(bounded))
    fill_fused_attention(model, ORT_ATTENTION_FILL)
    onnx.save(model, str(out))
    return out


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
                                               options=EvalOptions(quality=False, speed=False)).published}
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
        encoders = {(name, fill): TextEncoder(io, runtime) for name, runtimes in pairs.items()
                    for fill, runtime in zip(FILLS, runtimes)}
        inputs = {"one short text padded to 128": min(texts, key=len), "128 real tokens": " ".join(texts)}
        differences = {name: float(np.abs(encoders[name, "bounded"].embed(texts) - encoders[name, "usual"].embed(texts))
                                   .max()) for name in pairs}
        timings = {(name, fill, input_): [] for name in pairs for fill in FILLS for input_ in inputs}
        for round_ in range(args.rounds):
            for name in pairs:
                for fill in FILLS if round_ % 2 == 0 else FILLS[::-1]:
                    for input_, text in inputs.items():  # latency pads (or truncates) the one text to [1, 128]
                        speed = measure_speed(encoders[name, fill], [text], (1, 128), batch=1, runs=args.block,
                                              threads=thread_count())
                        timings[name, fill, input_].append(speed.p50_ms)
            print(f"  round {round_ + 1}/{args.rounds}")

    hw = fingerprint()
    lines = ["", "## Bounded attention mask", "",
             f"Produced by `python benchmarks/bench_mask.py --rounds {args.rounds} --block {args.block}` on "
             f"{time.strftime('%Y-%m-%d')}, {hw.summary()}, {thread_count()} threads. p50 of each "
             f"round's {args.block} calls, median over {args.rounds} interleaved rounds; \"usual\" is the same graph "
             f"with the exporter's fill (onnx, mnn) or ONNX Runtime's fused-attention default (int8).", "",
             "| artifact | input [1, 128] | bounded fill ms | usual fill ms | speed-up | largest embedding difference |",
             "|---|---|---|---|---|---|"]
    for name in pairs:
        for input_ in inputs:
            bounded, usual = (statistics.median(timings[name, fill, input_]) for fill in FILLS)
            lines.append(f"| {name} | {input_} | {bounded:.2f} | {usual:.2f} | {usual / bounded:.2f}x | "
                         f"{differences[name]:.1e} |")
    print("\n".join(lines))
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
