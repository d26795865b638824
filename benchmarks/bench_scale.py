"""How publishing scales with model size: a random-weight BERT of a given shape (MiniLM-L6, bge-small, bge-base,
bge-large), published as a dry run of its spec's formats in a child process, with evaluation and speed as
`hubforge publish` does them; wall time and peak memory per step (from results.json) and in total, then how both
grow with the parameter count. Appends to benchmarks/RESULTS.md.

The whole process tree's memory is sampled every 0.2 s (the CLI, the worker server and its workers): the peak of
the summed proportional set size (PSS: pages shared between the server and its workers counted once, as the
kernel's cgroup memory limit of a CI runner counts them) and of the summed resident set size (shared pages
counted in every process: an upper bound). `/usr/bin/time` cannot see this: the workers are the worker server's
children, not the CLI's.

    python benchmarks/bench_scale.py                               # minilm-l6, bge-small, bge-base, bge-large
    python benchmarks/bench_scale.py --shapes bge-large            # the issue's goal: <= 6 GB, <= 25 min
    python benchmarks/bench_scale.py --shapes minilm-l6 --formats onnx,int8 --no-quality
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

import hubforge  # noqa: F401  (telemetry off before any runtime is imported)
from hubforge.evaluation.hardware import fingerprint
from hubforge.paths import BUNDLED_SPECS_DIR

RESULTS = Path(__file__).with_name("RESULTS.md")
SHAPES = {  # layers, hidden, heads, intermediate, the spec whose pooling and formats it is published with
    "minilm-l6": (6, 384, 12, 1536, "all-minilm-l6-v2"),
    "bge-small": (12, 384, 12, 1536, "bge-small-en-v1.5"),
    "bge-base": (12, 768, 12, 3072, "bge-large-en-v1.5"),
    "bge-large": (24, 1024, 16, 4096, "bge-large-en-v1.5"),
}
GOALS = {"bge-large": (6 * 1024, 25 * 60)}  # peak MB, wall s (issue 18)


def make_model(folder: Path, shape: str) -> int:
    """A random BertModel of the shape with the bundled MiniLM's tokenizer and sentence-transformers modules,
    pooled as its spec says; returns its parameter count."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from hubforge.devhub.seed import bundled_minilm
    from hubforge.spec import load_spec

    layers, hidden, heads, intermediate, spec_id = SHAPES[shape]
    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm())
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                                 num_attention_heads=heads, intermediate_size=intermediate)).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    for name in ("modules.json", "1_Pooling/config.json", "2_Normalize/config.json"):
        source = bundled_minilm() / name
        if source.exists():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(source.read_bytes())
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    mode = load_spec(spec_id).pooling
    pooling.update({key: False for key in pooling if key.startswith("pooling_mode_")})
    pooling.update({"word_embedding_dimension": hidden, {"cls": "pooling_mode_cls_token",
                                                         "mean": "pooling_mode_mean_tokens"}[mode]: True})
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\nRandom weights for benchmarks/bench_scale.py\n")
    return sum(p.numel() for p in model.parameters())


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    return pids


def _memory_mb(pid: int) -> tuple[float, float]:
    """(PSS, RSS) of one process in MB; zeros once it has gone."""
    pss = rss = 0.0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("Pss", "Rss"):
                kb = int(value.split()[0]) / 1024
                pss, rss = (kb, rss) if key == "Pss" else (pss, kb)
    except (OSError, ValueError):
        pass
    return pss, rss


class TreeSampler(threading.Thread):
    """Peak summed PSS and RSS of a process and all its descendants, sampled every `interval` seconds. A sample
    costs about 5 ms of CPU per process (the kernel walks each one's page tables for smaps_rollup)."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_pss, self.peak_rss, self.done = pid, interval, 0.0, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            sizes = [_memory_mb(pid) for pid in _tree(self.pid)]
            pss, rss = sum(size[0] for size in sizes), sum(size[1] for size in sizes)
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            self.done.wait(self.interval)


def publish(work: Path, shape: str, formats: str | None, quality: bool, speed: bool) -> dict:
    folder = work / shape
    params = make_model(folder, shape)
    spec = yaml.safe_load((BUNDLED_SPECS_DIR / f"{SHAPES[shape][4]}.yaml").read_text())
    # random weights have no task skill to retain: the retention gate is off, so every format that passes its
    # fidelity gate goes on to speed and memory as it would for a real model (the spec's other gates hold)
    spec.update(id=f"scale-{shape}", gate={**spec.get("gate", {}), "min_retention": 0})
    spec_path = work / f"{shape}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    cmd = [sys.executable, "-m", "hubforge", "publish", str(spec_path), "--source", str(folder), "--dry-run",
           "--out", str(work / "out"), *(["--formats", formats] if formats else []),
           *([] if quality else ["--no-quality"]), *([] if speed else ["--no-speed"])]
    env = {**os.environ, "HUBFORGE_CACHE": str(work / "cache" / shape)}
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    sampler = TreeSampler(child.pid)
    sampler.start()
    _, stderr = child.communicate()
    wall = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    results = json.loads((work / "out" / f"scale-{shape}.results.json").read_text())
    return {"shape": shape, "params": params, "exit": child.returncode, "wall_s": wall, "peak_pss_mb": sampler.peak_pss,
            "peak_rss_mb": sampler.peak_rss, "stages": results["stages"],
            "formats": results["requested_formats"], "published": [v["name"] for v in results["variants"]
                                                                    if v["passed"]],
            "stderr_tail": stderr.strip().splitlines()[-3:]}


def report(runs: list[dict], args) -> list[str]:
    machine = fingerprint()
    lines = ["", "## Scale", "",
             f"Produced by `python benchmarks/bench_scale.py --shapes {args.shapes}"
             f"{' --formats ' + args.formats if args.formats else ''}{' --no-quality' if args.no_quality else ''}"
             f"{' --no-speed' if args.no_speed else ''}` on {time.strftime('%Y-%m-%d')}; {machine.summary()}. "
             "Random-weight BERTs of each shape, published as a dry run (each shape's spec: its formats, pooling, "
             "evaluation sample" + ("" if args.no_quality else ", task evaluation")
             + ("" if args.no_speed else ", speed and memory") + "). Peak memory: the process tree's summed PSS "
             "(shared pages once) and RSS (shared pages in every process), sampled every 0.2 s.", "",
             "| shape | parameters | formats published | wall s | peak tree PSS MB | peak tree RSS MB | largest steps "
             "(s / worker peak MB) | wall per parameter vs first | PSS per parameter vs first |",
             "|---|---|---|---|---|---|---|---|---|"]
    first = runs[0]
    for run in runs:
        top = sorted(run["stages"], key=lambda s: -s["seconds"])[:4]
        steps = "; ".join(f"{s['stage']} {s['seconds']:.0f} s / {s['peak_rss_mb']:.0f}" for s in top)
        growth = run["params"] / first["params"]
        lines.append(f"| {run['shape']} | {run['params'] / 1e6:.1f} M | {len(run['published'])}/{len(run['formats'])} "
                     f"| {run['wall_s']:.0f} | {run['peak_pss_mb']:.0f} | {run['peak_rss_mb']:.0f} | {steps} "
                     f"| {run['wall_s'] / first['wall_s'] / growth:.2f} "
                     f"| {run['peak_pss_mb'] / first['peak_pss_mb'] / growth:.2f} |")
    for run in runs:
        if run["shape"] in GOALS:
            mb, seconds = GOALS[run["shape"]]
            lines += ["", f"Goal ({run['shape']}, {len(run['formats'])} formats with evaluation): peak memory "
                          f"{run['peak_pss_mb'] / 1024:.2f} GB PSS / {run['peak_rss_mb'] / 1024:.2f} GB RSS "
                          f"(goal <= {mb / 1024:.0f} GB: {'met' if run['peak_pss_mb'] <= mb else 'missed'}), wall "
                          f"{run['wall_s'] / 60:.1f} min (goal <= {seconds / 60:.0f} min: "
                          f"{'met' if run['wall_s'] <= seconds else 'missed'})."]
    lines += ["", "Steps of each run (seconds / peak resident memory of the step's worker, MB):", ""]
    for run in runs:
        lines.append(f"- {run['shape']}: " + ", ".join(f"{s['stage']} {s['seconds']:.0f} s / {s['peak_rss_mb']:.0f}"
                                                      for s in run["stages"]))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--formats", help="default: each shape's spec's formats")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hubforge-scale-"))
    runs = []
    for shape in args.shapes.split(","):
        run = publish(work, shape, args.formats, not args.no_quality, not args.no_speed)
        print(f"{shape}: {run['params'] / 1e6:.1f} M parameters, exit {run['exit']}, {run['wall_s']:.0f} s, peak tree "
              f"PSS {run['peak_pss_mb']:.0f} MB / RSS {run['peak_rss_mb']:.0f} MB, published "
              f"{len(run['published'])}/{len(run['formats'])}", flush=True)
        for step in run["stages"]:
            print(f"  {step['stage']:<22} {step['seconds']:8.1f} s {step['peak_rss_mb']:8.0f} MB", flush=True)
        runs.append(run)
    shutil.rmtree(work, ignore_errors=True)  # a bge-large run leaves about 12 GB of artifacts
    lines = report(runs, args)
    print("\n".join(lines))
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
