"""How long hubforge itself takes: a cold publish of MiniLM to every format with evaluation, then a no-change
republish (`--if-changed`), against a local Hub, in one run. Prints each as a ratio to its target
(300 s and 15 s on 2 cores) and the peak memory of the publish process; appends to benchmarks/RESULTS.md.

    python benchmarks/bench_toolchain.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hubforge.devhub.server import free_port, wait_until_up
from hubforge.evaluation.hardware import fingerprint

RESULTS = Path(__file__).with_name("RESULTS.md")
TARGETS_S = {"cold publish, all formats, with evaluation": 300.0, "no-change republish (--if-changed)": 15.0}


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and the peak RSS (MB) of the child that ran."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="hubforge-bench-"))
    port = free_port()
    token = "hf_bench_write"
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": token,
           "DEVHUB_TOKENS": f"{token}=hubforge:write:sentence-transformers", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "HUBFORGE_CACHE": str(work / "cache"), "HF_HOME": str(work / "hf-home")}
    hubforge = [sys.executable, "-m", "hubforge"]
    server = subprocess.Popen([*hubforge, "devhub", "serve", "--port", str(port), "--data-dir", str(work / "hub")],
                              env=env)
    try:
        wait_until_up(env["HF_ENDPOINT"])
        subprocess.run([*hubforge, "devhub", "seed", "sentence-transformers/all-MiniLM-L6-v2"], env=env, check=True)
        publish = [*hubforge, "publish", "all-minilm-l6-v2", "--out", str(work / "out")]
        measured = {
            "cold publish, all formats, with evaluation": timed(publish, env),
            "no-change republish (--if-changed)": timed([*publish, "--if-changed"], env),
        }
    finally:
        server.terminate()
        server.wait(timeout=10)

    lines = ["", "## Toolchain", "", f"Produced by `python benchmarks/bench_toolchain.py` on {time.strftime('%Y-%m-%d')}, "
             f"{fingerprint().summary()}.", "", "| step | seconds | target | ratio to target | peak RSS so far |",
             "|---|---|---|---|---|"]
    for step, (seconds, peak_mb) in measured.items():
        target = TARGETS_S[step]
        line = f"| {step} | {seconds:.1f} | {target:.0f} | {seconds / target:.2f} | {peak_mb:.0f} MB |"
        lines.append(line)
        print(f"{step}: {seconds:.1f} s (target {target:.0f} s, ratio {seconds / target:.2f}), peak RSS {peak_mb:.0f} MB")
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
