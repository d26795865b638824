"""The variant chart on every card: latency against quality retention, marker area by file size."""

from __future__ import annotations

from pathlib import Path

from .results import RunResult, VariantResult

PLOT_FILE = "hubforge_variants.png"


def retention_of(variant: VariantResult) -> float | None:
    """Worst task-metric retention, or mean cosine vs fp32 when no task metric was measured."""
    if variant.retention:
        return min(variant.retention.values())
    return variant.fidelity.mean_cosine if variant.fidelity and variant.fidelity.kind == "cosine" else None


def render_variant_plot(result: RunResult, path: Path) -> Path | None:
    """None when nothing was timed: a chart without latencies would show invented positions."""
    points = [(v, retention_of(v)) for v in result.published if v.speed is not None]
    points = [(v, r) for v, r in points if r is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for variant, retention in points:
        ax.scatter(variant.speed.p50_ms, retention, s=max(variant.size_bytes / 1e6, 4) * 4, alpha=0.6)
        ax.annotate(f"{variant.name} ({variant.size_bytes / 1e6:.0f} MB)", (variant.speed.p50_ms, retention),
                    textcoords="offset points", xytext=(6, 4), fontsize=8)
    if result.reference.speed:
        ax.axvline(result.reference.speed.p50_ms, color="grey", linestyle="--", linewidth=1)
        ax.annotate("fp32 PyTorch", (result.reference.speed.p50_ms, ax.get_ylim()[0]), fontsize=8, color="grey",
                    textcoords="offset points", xytext=(3, 3))
    shape = points[0][0].speed.shape
    ax.set_xlabel(f"latency p50, ms at [{shape[0]}, {shape[1]}] on {result.hardware.cpu}")
    ax.set_ylabel("quality retention vs fp32 (worst metric)")
    ax.set_title(f"{result.spec.id}: published variants (marker area ∝ file size)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
