"""Stage 7 — evaluation: fidelity against fp32, task quality, speed, all through `runtimes.TextEncoder`."""
