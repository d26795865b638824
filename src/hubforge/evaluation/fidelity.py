"""How close an artifact's outputs are to the fp32 reference on the same texts."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import pearsonr, spearmanr


@dataclass(frozen=True)
class Fidelity:
    """Embedding models: cosine per text; cross-encoders: score correlation and largest difference."""

    kind: str
    samples: int
    mean_cosine: float | None = None
    p5_cosine: float | None = None
    min_cosine: float | None = None
    spearman: float | None = None
    pearson: float | None = None
    max_abs_diff: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def headline(self) -> float:
        """The figure attempts are ranked by: mean cosine, or score correlation."""
        return self.mean_cosine if self.kind == "cosine" else self.spearman

    def summary(self) -> str:
        if self.kind == "cosine":
            return f"cos mean {self.mean_cosine:.4f} p5 {self.p5_cosine:.4f}"
        return f"spearman {self.spearman:.4f} max|Δ| {self.max_abs_diff:.3g}"


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
    return (a * b).sum(axis=1)


def measure_fidelity(reference: np.ndarray, candidate: np.ndarray) -> Fidelity:
    if reference.ndim == 1:
        return Fidelity(
            kind="scores",
            samples=len(reference),
            spearman=float(spearmanr(reference, candidate).statistic),
            pearson=float(pearsonr(reference, candidate).statistic),
            max_abs_diff=float(np.abs(reference - candidate).max()),
        )
    cos = cosine_rows(reference, candidate)
    return Fidelity(
        kind="cosine",
        samples=len(cos),
        mean_cosine=float(cos.mean()),
        p5_cosine=float(np.percentile(cos, 5)),
        min_cosine=float(cos.min()),
    )
