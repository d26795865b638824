"""How long hubforge itself takes, in one run: the cold demo (`hubforge demo`'s steps: a local Hub started, the
bundled MiniLM seeded, a publish of every format with evaluation, speed and memory, nothing cached) and then a
no-change republish (`--if-changed`) against the same Hub. Prints each against its goal (issue 18: 90 s and 5 s on
this 2-core machine class) with the peak memory of the publishing process tree; appends to benchmarks/RESULTS.md.

    python benchmarks/bench_toolchain.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_scale import TreeSampler

import hubforge  # noqa: F401  (telemetry off before any runtime is imported)
from hubforge.devhub.server import free_port, wait_until_up
from hubforge.evaluation.hardware import fingerprint
from hubforge.targets import format_names

RESULTS = Path(__file__).with_name("RESULTS.md")
GOALS_S = {"cold demo: local Hub, seed, publish every format with evaluation": 90.0,
           "no-change republish (--if-changed)": 5.0}


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and the peak summed PSS (MB) of the child's process tree, sampled once a second: at
    bench_scale's five times a second, the sampler's own reads of /proc take about a twentieth of a core from a
    run that keeps both cores busy."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    sampler = TreeSampler(child.pid, interval=1.0)
    sampler.start()
    if child.wait() != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {child.returncode}")
    sampler.done.set()
    sampler.join()
    return time.perf_counter() - start, sampler.peak_pss


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="hubforge-bench-"))
    port = free_port()
    token = "hf_bench_write"
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": token,
           "DEVHUB_TOKENS": f"{token}=hubforge:write:sentence-transformers", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "HUBFORGE_CACHE": str(work / "cache"), "HF_HOME": str(work / "hf-home")}
    hubforge = [sys.executable, "-m", "hubforge"]
    publish = [*hubforge, "publish", "all-minilm-l6-v2", "--formats", ",".join(format_names()), "--out",
               str(work / "out")]
    start = time.perf_counter()
    server = subprocess.Popen([*hubforge, "devhub", "serve", "--port", str(port), "--data-dir", str(work / "hub")],
                              env=env)
    try:
        wait_until_up(env["HF_ENDPOINT"])
        subprocess.run([*hubforge, "devhub", "seed", "sentence-transformers/all-MiniLM-L6-v2"], env=env, check=True)
        setup = time.perf_counter() - start
        seconds, peak = timed(publish, env)
        measured = {"cold demo: local Hub, seed, publish every format with evaluation": (setup + seconds, peak),
                    "no-change republish (--if-changed)": timed([*publish, "--if-changed"], env)}
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    lines = ["", "## Toolchain", "", f"Produced by `python benchmarks/bench_toolchain.py` on {time.strftime('%Y-%m-%d')}, "
             f"{fingerprint().summary()}. Peak memory: the publishing process tree's summed PSS, sampled once a second.", "",
             "| step | seconds | goal | ratio to goal | peak memory |", "|---|---|---|---|---|"]
    for step, (seconds, peak_mb) in measured.items():
        goal = GOALS_S[step]
        lines.append(f"| {step} | {seconds:.1f} | {goal:.0f} | {seconds / goal:.2f} | {peak_mb:.0f} MB |")
        print(f"{step}: {seconds:.1f} s (goal {goal:.0f} s, ratio {seconds / goal:.2f}), peak memory {peak_mb:.0f} MB")
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
