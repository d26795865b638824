"""MiniLM side by side on this machine, in one run: PyTorch fp32 (what sentence-transformers users run today),
the artifacts of sentence-transformers' own export helpers, and every hubforge artifact.

Each row: file size, inference memory (hubforge's fresh-process measurement: peak RSS added by loading and running
[1, 128] and [32, 128]), latency p50 at [1, 128], throughput at batch 32 and mean cosine vs PyTorch fp32 over real
texts, with latency and throughput given as ratios to PyTorch fp32, medians over rounds; then the issue's targets,
answered from those medians. Writes benchmarks/RESULTS.md.

    python benchmarks/bench_minilm.py [--runs 100] [--rounds 3] [--formats onnx,int8,...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import resource
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hubforge.clients import run_st5_onnx
from hubforge.datasets import sample_texts
from hubforge.devhub.seed import bundled_minilm
from hubforge.evaluation.fidelity import cosine_rows
from hubforge.evaluation.hardware import fingerprint
from hubforge.evaluation.speed import measure_speed
from hubforge.pipeline import EvalOptions, run, speed_step
from hubforge.reference import model_io
from hubforge.runtimes import OpenVinoRuntime, OrtRuntime, TextEncoder, TorchRuntime
from hubforge.source import local_source
from hubforge.spec import load_spec
from hubforge.targets import get_target
from hubforge.targets.base import BuildInputs
from hubforge.workers import Step, run_step, silent

RESULTS = Path(__file__).with_name("RESULTS.md")
ALL = "onnx,fp16,int8,q4,q4f16,qnn,amd,ov,ov-int8,ov-int4,mnn"
LATENCY_GOAL_MS = 2.4  # issue 18: best CPU artifact at cosine >= 0.995, [1, 128], this machine class
PEER_GOAL = 1.1  # issue 18: every hubforge int8 artifact vs its sentence-transformers peer


def fresh_process_memory(target_class, files, io_, spec, texts) -> float:
    """hubforge's inference-memory figure: the pipeline's own speed step, in a fresh worker process."""
    result = run_step(Step("speed", target_class.name, speed_step, (target_class, files, io_),
                           kwargs={"spec": spec, "texts": texts}), silent)
    if result.error:
        raise result.error
    return result.value[1].peak_mb


@dataclass
class Contender:
    name: str
    origin: str
    open_runtime: Callable[[], object]
    cpu_target: bool = True
    size_mb: float | None = None
    memory: Callable[[], float] | None = None  # MB added in a fresh process; None where hubforge has no loader
    memory_mb: float | None = None
    p50_ms: list[float] = field(default_factory=list)
    seq_per_s: list[float] = field(default_factory=list)
    cosine: float = 0.0

    @property
    def latency(self) -> float:
        return statistics.median(self.p50_ms)

    @property
    def throughput(self) -> float:
        return statistics.median(self.seq_per_s)


def st_helper_artifacts(model_dir: Path, work: Path, calibration: list[str]) -> dict[str, Path]:
    """What a sentence-transformers user gets from export_optimized_onnx_model, export_dynamic_quantized_onnx_model
    (sentence-transformers 5 in its own environment: the helpers need optimum-onnx, hence transformers<4.58) and
    (the recipe of) export_static_quantized_openvino_model."""
    from sentence_transformers import SentenceTransformer

    run_st5_onnx({"client": "st-export-helpers", "path": str(model_dir), "out_dir": str(work)})
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


def static_ov_int8_variant(spec, source):
    """The ov-int8 artifact a spec gets with `static_shape: true`: pinned to [1, max_length] for latency serving
    (and Intel NPUs); padded batch-1 calls only, so its throughput on short texts is the price."""
    static_spec = spec.model_copy(update={"formats": {"ov-int8": {**spec.formats["ov-int8"], "static_shape": True}}})
    options = EvalOptions(quality=False, speed=False)
    return static_spec, run(static_spec, source, ["ov-int8"], options=options).published[0]


def static_ov_int8(spec, source) -> Contender:
    static_spec, variant = static_ov_int8_variant(spec, source)
    inputs = BuildInputs(static_spec, source, Path(), [], model_io(static_spec, source))
    return Contender(f"hubforge ov-int8 static [1,{spec.max_length}]", "hubforge (spec option static_shape)",
                     lambda: get_target("ov-int8").load(variant.files, inputs))


def measure(contenders: list[Contender], texts: list[str], io_, rounds: int, block: int, threads: int,
            console: Console) -> None:
    """All artifacts stay open and take turns: each round times a block of calls of every contender, in an order
    that rotates between rounds, so the drifts of a shared machine hit all alike. A contender's figures are medians
    over the rounds, and two contenders are compared round by round."""
    encoders = [TextEncoder(io_, contender.open_runtime()) for contender in contenders]
    vectors = [encoder.embed(texts) for encoder in encoders]
    for contender, vector in zip(contenders, vectors):
        contender.cosine = float(cosine_rows(vectors[0], vector).mean())
    for r in range(rounds):
        for i in [(r + k) % len(contenders) for k in range(len(contenders))]:
            speed = measure_speed(encoders[i], texts, (1, 128), batch=32, runs=block, threads=threads)
            contenders[i].p50_ms.append(speed.p50_ms)
            contenders[i].seq_per_s.append(speed.sequences_per_s)
        console.print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{c.name} {c.p50_ms[-1]:.2f}" for c in contenders),
                      highlight=False)


def target_checks(rows: list[Contender]) -> list[str]:
    """The issue's targets, each answered from this run's medians."""
    by_name = {row.name: row for row in rows}
    base = rows[0]
    lines = []
    eligible = [r for r in rows if r.origin.startswith("hubforge") and r.cpu_target and r.cosine >= 0.995]
    if eligible:
        best = min(eligible, key=lambda r: r.latency)
        lines.append(f"- best hubforge CPU artifact at mean cosine >= 0.995: {best.name}, {best.latency:.2f} ms at "
                     f"[1,128], {base.latency / best.latency:.2f}x PyTorch fp32 (goal <= {LATENCY_GOAL_MS} ms: "
                     f"{'met' if best.latency <= LATENCY_GOAL_MS else 'missed'})")
    else:
        lines.append("- best hubforge CPU artifact at mean cosine >= 0.995: none of those measured (goal: missed)")
    for ours, theirs in (("hubforge int8", "st dynamic int8 (avx512_vnni)"),
                         ("hubforge ov-int8", "st static int8 OpenVINO (recipe)")):
        if ours not in by_name:
            continue
        a, b = by_name[ours], by_name[theirs]
        won = sum(x < y for x, y in zip(a.p50_ms, b.p50_ms))
        ratio = b.latency / a.latency
        met = ratio >= PEER_GOAL and round(a.cosine, 4) >= round(b.cosine, 4)
        lines.append(f"- {ours} vs {theirs}: {ratio:.3f}x the helper's speed (faster in {won} of {len(a.p50_ms)} "
                     f"rounds), cosine {a.cosine:.4f} vs {b.cosine:.4f} (goal >= {PEER_GOAL}x at equal or better "
                     f"cosine: {'met' if met else 'missed'})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="timed [1,128] calls per artifact, over all rounds")
    parser.add_argument("--rounds", type=int, default=10)
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
    block = max(10, args.runs // args.rounds)

    console.print("building hubforge artifacts (cached after the first run) …")
    result = run(spec, source, args.formats.split(","), options=EvalOptions(quality=False, speed=False))
    inputs = BuildInputs(spec, source, Path(), [], io_)
    contenders = [Contender("pytorch fp32", "baseline", lambda: TorchRuntime(source.path, spec.task),
                            size_mb=sum(p.stat().st_size for p in source.path.rglob("*.safetensors")) / 1e6,
                            memory=lambda: fresh_process_memory(None, {}, io_, spec, texts))]
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.redirect_stdout(io.StringIO()):
            helpers = st_helper_artifacts(source.path, Path(tmp), sample_texts("banking77", 300, seed=1))
        contenders += [Contender(name, "sentence-transformers helper",
                                 lambda p=path: OpenVinoRuntime(p) if p.suffix == ".xml" else OrtRuntime(p),
                                 size_mb=sum(f.stat().st_size for f in {path, path.with_suffix(".bin")}
                                             if f.exists()) / 1e6)
                       for name, path in helpers.items()]
        contenders += [Contender(f"hubforge {v.name}", "hubforge", lambda v=v: get_target(v.name).load(v.files, inputs),
                                 v.cpu_target, v.size_bytes / 1e6,
                                 lambda v=v: fresh_process_memory(type(get_target(v.name)), v.files, io_, spec, texts))
                       for v in result.published]
        if "ov-int8" in args.formats.split(","):
            contenders.append(static_ov_int8(spec, source))
        measure(contenders, texts, io_, args.rounds, block, threads, console)
        for contender in contenders:  # after the timing, one child process at a time
            contender.memory_mb = contender.memory() if contender.memory else None

    base = contenders[0]
    hw = fingerprint()
    columns = ("artifact", "from", "size MB", "memory MB", "p50 ms [1,128]", "rounds' p50 min–max", "speed-up vs PyTorch", "seq/s (batch 32)",
               "throughput vs PyTorch", "mean cosine vs fp32")
    table = Table(title=f"MiniLM-L6 on {hw.summary()}")
    for column in columns:
        table.add_column(column, justify="left" if column in ("artifact", "from") else "right")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in contenders:
        cells = [row.name, row.origin, f"{row.size_mb:.1f}" if row.size_mb else "—",
                 f"{row.memory_mb:.0f}" if row.memory_mb is not None else "—", f"{row.latency:.2f}", f"{min(row.p50_ms):.2f}–{max(row.p50_ms):.2f}",
                 f"{base.latency / row.latency:.2f}x", f"{row.throughput:.1f}",
                 f"{row.throughput / base.throughput:.2f}x", f"{row.cosine:.4f}"]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    console.print(table)
    checks = target_checks(contenders)
    for line in checks:
        console.print(line, highlight=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"peak RSS of this benchmark process: {peak_mb:.0f} MB")

    others = RESULTS.read_text() if RESULTS.exists() else ""  # the other benchmarks' sections stay
    others = others[others.find("\n## "):] if "\n## " in others else ""
    RESULTS.write_text("\n".join([
        "# MiniLM-L6 benchmark",
        "",
        f"Produced by `python benchmarks/bench_minilm.py --runs {args.runs} --rounds {args.rounds}` on "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        f"Hardware: {hw.summary()}; {hw.os}; {threads} threads. Versions: "
        + ", ".join(f"{k} {v}" for k, v in hw.versions.items()) + ".",
        "",
        f"Latency: one call at batch 1 padded to 128 tokens. All artifacts stay open and take turns: each of "
        f"{args.rounds} rounds times a block of {block} calls of every artifact after "
        "warm-up, in an order that rotates between rounds, and keeps the block's p50; the table gives the median "
        "of those p50s and their range. Throughput: 32 real Banking77 "
        "texts at batch 32 (batch 1 for fixed-shape artifacts), median over the rounds. Cosine: mean over 128 "
        "texts against PyTorch fp32. Memory: peak resident memory that loading the artifact and running [1, 128] "
        "and [32, 128] adds to a fresh worker process with the runtimes imported (the pipeline's speed step; not measured "
        "for the helpers' files, which hubforge has no loader entry for). QDQ artifacts (qnn, amd) and fp16 target NPUs and GPUs: on a CPU they run "
        "a simulated or emulated graph and their CPU timings say nothing about that hardware.",
        "",
        *lines,
        "",
        "Targets:",
        "",
        *checks,
        "",
        "Read the ratios with the rounds' ranges: this is a shared 2-core VM whose speed drifts by tens of percent "
        "between rounds, so a difference of a few percent between two artifacts of the same runtime (hubforge "
        "ov-int8 and the helper's OpenVINO int8 are the same graph shape) is not a reliable win even where the "
        "medians and the round counts favour one.",
        "",
        f"Peak RSS of the benchmark process: {peak_mb:.0f} MB.",
        "",
        "The OpenVINO static int8 helper row follows export_static_quantized_openvino_model's recipe "
        "(OVQuantizer, default OVQuantizationConfig, texts padded to 384) with Banking77 calibration texts, "
        "because the helper's own calibration set (glue/sst2) has to be downloaded from the Hub.",
    ]) + others)
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
