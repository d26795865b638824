"""MiniLM side by side on this machine, in one run: PyTorch fp32 (what sentence-transformers users run today),
the artifacts of sentence-transformers' own export helpers, and every hubforge artifact.

Each row: latency p50 at [1, 128], throughput at batch 32 and mean cosine vs PyTorch fp32 over real texts,
with latency and throughput given as ratios to PyTorch fp32. Writes benchmarks/RESULTS.md.

    python benchmarks/bench_minilm.py [--runs 100] [--formats onnx,int8,...]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import os
import resource
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hubforge.datasets import sample_texts
from hubforge.devhub.seed import bundled_minilm
from hubforge.evaluation.fidelity import cosine_rows
from hubforge.evaluation.hardware import fingerprint
from hubforge.evaluation.speed import measure_speed
from hubforge.pipeline import EvalOptions, model_io, run
from hubforge.runtimes import OpenVinoRuntime, OrtRuntime, TextEncoder, TorchRuntime
from hubforge.source import local_source
from hubforge.spec import load_spec
from hubforge.targets import TARGETS
from hubforge.targets.base import BuildInputs

RESULTS = Path(__file__).with_name("RESULTS.md")
ALL = "onnx,fp16,int8,qnn,amd,ov,ov-int8,mnn"


@dataclass
class Row:
    name: str
    origin: str
    p50_ms: float
    seq_per_s: float
    cosine: float


def st_helper_artifacts(model_dir: Path, work: Path, calibration: list[str]) -> dict[str, Path]:
    """What a sentence-transformers user gets from export_optimized_onnx_model, export_dynamic_quantized_onnx_model
    and (the recipe of) export_static_quantized_openvino_model."""
    from sentence_transformers import (SentenceTransformer, export_dynamic_quantized_onnx_model,
                                       export_optimized_onnx_model)

    onnx_model = SentenceTransformer(str(model_dir), backend="onnx", device="cpu")
    onnx_model.save_pretrained(str(work))
    export_optimized_onnx_model(onnx_model, "O3", str(work))
    export_dynamic_quantized_onnx_model(onnx_model, "avx512_vnni", str(work))
    artifacts = {"st optimized O3": work / "onnx" / "model_O3.onnx",
                 "st dynamic int8 (avx512_vnni)": work / "onnx" / "model_qint8_avx512_vnni.onnx"}

    # export_static_quantized_openvino_model calibrates on glue/sst2 from the Hub, which this machine cannot reach;
    # the same recipe (OVQuantizer, default OVQuantizationConfig, texts padded to 384) on Banking77 texts:
    from datasets import Dataset
    from optimum.intel import OVConfig, OVQuantizationConfig, OVQuantizer

    ov_model = SentenceTransformer(str(model_dir), backend="openvino", device="cpu")
    quantizer = OVQuantizer.from_pretrained(ov_model.transformers_model)
    encoded = ov_model.tokenizer(calibration[:300], padding="max_length", max_length=384, truncation=True)
    dataset = Dataset.from_dict(dict(encoded))
    ov_dir = work / "ov-static"
    quantizer.quantize(dataset, save_directory=str(ov_dir), ov_config=OVConfig(quantization_config=OVQuantizationConfig()))
    artifacts["st static int8 OpenVINO (recipe)"] = ov_dir / "openvino" / "openvino_model.xml"
    return artifacts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--formats", default=ALL)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    console = Console(width=160)

    spec = load_spec("all-minilm-l6-v2")
    source = local_source(spec, bundled_minilm())
    io_ = model_io(spec, source)
    texts = sample_texts("banking77", 128, split="train", seed=3)
    threads = len(os.sched_getaffinity(0))

    console.print("building hubforge artifacts (cached after the first run) …")
    result = run(spec, source, args.formats.split(","), EvalOptions(quality=False, speed=False))
    inputs = BuildInputs(spec, source, Path(), [], io_)
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.redirect_stdout(io.StringIO()):
            helpers = st_helper_artifacts(source.path, Path(tmp), sample_texts("banking77", 300, seed=1))
        # (name, origin, how to open it): each runtime is opened just before it is measured and closed after,
        # so no idle session's threads compete with the one being timed
        contenders = [("pytorch fp32", "baseline", lambda: TorchRuntime(source.path, spec.task))]
        contenders += [(name, "sentence-transformers helper",
                        lambda p=path: OpenVinoRuntime(p) if p.suffix == ".xml" else OrtRuntime(p))
                       for name, path in helpers.items()]
        contenders += [(f"hubforge {v.name}", "hubforge", lambda v=v: TARGETS[v.name]().load(v.files, inputs))
                       for v in result.published]
        reference = None
        rows = []
        for name, origin, open_runtime in contenders:
            encoder = TextEncoder(io_, open_runtime())
            vectors = encoder.embed(texts)
            reference = vectors if reference is None else reference
            speed = measure_speed(encoder, texts, (1, 128), 32, args.runs, threads)
            rows.append(Row(name, origin, speed.p50_ms, speed.sequences_per_s,
                            float(cosine_rows(reference, vectors).mean())))
            console.print(f"  measured {name}: p50 {speed.p50_ms:.2f} ms", highlight=False)
            del encoder
            gc.collect()

    base = rows[0]
    hw = fingerprint()
    table = Table(title=f"MiniLM-L6 on {hw.summary()}")
    for column in ("artifact", "from", "p50 ms [1,128]", "speed-up vs PyTorch", "seq/s (batch 32)",
                   "throughput vs PyTorch", "mean cosine vs fp32"):
        table.add_column(column, justify="left" if column in ("artifact", "from") else "right")
    lines = ["| artifact | from | p50 ms [1,128] | speed-up vs PyTorch | seq/s (batch 32) | throughput vs PyTorch "
             "| mean cosine vs fp32 |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [row.name, row.origin, f"{row.p50_ms:.2f}", f"{base.p50_ms / row.p50_ms:.2f}x",
                 f"{row.seq_per_s:.1f}", f"{row.seq_per_s / base.seq_per_s:.2f}x", f"{row.cosine:.4f}"]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"peak RSS of this benchmark process: {peak_mb:.0f} MB")

    RESULTS.write_text("\n".join([
        "# MiniLM-L6 benchmark",
        "",
        f"Produced by `python benchmarks/bench_minilm.py --runs {args.runs}` on {time.strftime('%Y-%m-%d')}.",
        "",
        f"Hardware: {hw.summary()}; {hw.os}; {threads} threads. Versions: "
        + ", ".join(f"{k} {v}" for k, v in hw.versions.items()) + ".",
        "",
        "Latency: one call at batch 1 padded to 128 tokens, p50 over the timed runs after warm-up. Throughput: 128 "
        "real Banking77 texts at batch 32 (batch 1 for fixed-shape artifacts). Cosine: mean over those texts "
        "against PyTorch fp32. QDQ artifacts (qnn, amd) target NPUs: on a CPU they run the simulated "
        "quantized graph and their CPU timings say nothing about the NPU.",
        "",
        *lines,
        "",
        f"Peak RSS of the benchmark process: {peak_mb:.0f} MB.",
        "",
        "The OpenVINO static int8 helper row follows export_static_quantized_openvino_model's recipe "
        "(OVQuantizer, default OVQuantizationConfig, texts padded to 384) with Banking77 calibration texts, "
        "because the helper's own calibration set (glue/sst2) has to be downloaded from the Hub.",
        "",
    ]))
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
