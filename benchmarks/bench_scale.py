"""How publishing scales with model size: a random-weight BERT of a given shape (MiniLM-L6, bge-small, bge-base,
bge-large), published as a dry run to the given formats in a child process, with wall time and peak resident
memory per stage (the pipeline records them in results.json) and in total; then how both grow with the
parameter count. Appends to benchmarks/RESULTS.md.

    python benchmarks/bench_scale.py                          # minilm-l6 and bge-small, every format
    python benchmarks/bench_scale.py --shapes bge-large --formats onnx,int8,ov --no-quality
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hubforge.evaluation.hardware import fingerprint
from hubforge.targets import format_names

RESULTS = Path(__file__).with_name("RESULTS.md")
SHAPES = {  # layers, hidden, heads, intermediate: the published models' configs
    "minilm-l6": (6, 384, 12, 1536),
    "bge-small": (12, 384, 12, 1536),
    "bge-base": (12, 768, 12, 3072),
    "bge-large": (24, 1024, 16, 4096),
}


def make_model(folder: Path, shape: str) -> int:
    """A random BertModel of the shape with the bundled MiniLM's tokenizer and sentence-transformers modules;
    returns its parameter count."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from hubforge.devhub.seed import bundled_minilm

    layers, hidden, heads, intermediate = SHAPES[shape]
    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm())
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                                 num_attention_heads=heads, intermediate_size=intermediate)).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for name in ("modules.json", "1_Pooling/config.json", "README.md"):
        source = bundled_minilm() / name
        if source.exists():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(source.read_bytes())
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    pooling["word_embedding_dimension"] = hidden
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return sum(p.numel() for p in model.parameters())


def publish(work: Path, shape: str, formats: str, quality: bool) -> dict:
    folder = work / shape
    params = make_model(folder, shape)
    spec = yaml.safe_load(Path("model_specs/all-minilm-l6-v2.yaml").read_text())
    spec.update(id=f"scale-{shape}", formats={f: {} for f in formats.split(",")})
    spec_path = work / f"{shape}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    cmd = [sys.executable, "-m", "hubforge", "publish", str(spec_path), "--source", str(folder), "--dry-run",
           "--out", str(work / "out"), "--no-speed"] + ([] if quality else ["--no-quality"])
    start = time.perf_counter()
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL,
                          env={**os.environ, "HUBFORGE_CACHE": str(work / "cache")}).returncode
    wall = time.perf_counter() - start
    stages = json.loads((work / "out" / f"scale-{shape}.results.json").read_text())["stages"]
    return {"shape": shape, "params": params, "exit": code, "wall_s": wall,
            "peak_rss_mb": max(s["peak_rss_mb"] for s in stages), "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default="minilm-l6,bge-small")
    parser.add_argument("--formats", default=",".join(format_names()))
    parser.add_argument("--no-quality", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hubforge-scale-"))
    runs = [publish(work, shape, args.formats, not args.no_quality) for shape in args.shapes.split(",")]

    lines = ["", "## Scale", "", f"Produced by `python benchmarks/bench_scale.py --shapes {args.shapes}"
             f"{' --no-quality' if args.no_quality else ''}` on {time.strftime('%Y-%m-%d')}, {fingerprint().summary()}; "
             f"formats {args.formats}; dry run, no speed measurement.", "",
             "| shape | parameters | wall s | peak RSS MB | largest stages (s, peak MB when done) | wall / params vs first | RSS / params vs first |",
             "|---|---|---|---|---|---|---|"]
    first = runs[0]
    for run in runs:
        top = sorted(run["stages"], key=lambda s: -s["seconds"])[:4]
        stages = "; ".join(f"{s['stage']} {s['seconds']:.0f} s, {s['peak_rss_mb']:.0f} MB" for s in top)
        growth = run["params"] / first["params"]
        lines.append(f"| {run['shape']} | {run['params'] / 1e6:.1f} M | {run['wall_s']:.0f} | {run['peak_rss_mb']:.0f} "
                     f"| {stages} | {run['wall_s'] / first['wall_s'] / growth:.2f} | "
                     f"{run['peak_rss_mb'] / first['peak_rss_mb'] / growth:.2f} |")
        print(lines[-1])
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
