"""Stage 6 — the quality gate: an artifact that misses it is never published."""

from __future__ import annotations

from dataclasses import dataclass

from .evaluation.fidelity import Fidelity
from .spec import GateSpec


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: tuple[str, ...]

    def summary(self) -> str:
        return "pass" if self.passed else "fail: " + "; ".join(self.reasons)


def check_gate(fidelity: Fidelity, gate: GateSpec) -> GateDecision:
    reasons = []
    if fidelity.kind == "cosine":
        if fidelity.mean_cosine < gate.min_mean_cosine:
            reasons.append(f"mean cosine {fidelity.mean_cosine:.4f} < {gate.min_mean_cosine}")
        if fidelity.p5_cosine < gate.min_p5_cosine:
            reasons.append(f"p5 cosine {fidelity.p5_cosine:.4f} < {gate.min_p5_cosine}")
    elif fidelity.spearman < gate.min_spearman:
        reasons.append(f"score spearman {fidelity.spearman:.4f} < {gate.min_spearman}")
    return GateDecision(not reasons, tuple(reasons))
