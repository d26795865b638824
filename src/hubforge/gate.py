"""Stage 6 — the quality gate: an artifact that misses it is never published. Two checks, each named in the
decision: fidelity against fp32 (per candidate) and task retention against fp32 (after evaluation)."""

from __future__ import annotations

from dataclasses import dataclass

from .evaluation.fidelity import Fidelity
from .spec import GateSpec


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    check: str  # "fidelity" or "retention"
    reasons: tuple[str, ...]

    def summary(self) -> str:
        return "pass" if self.passed else f"fail ({self.check}): " + "; ".join(self.reasons)


def check_fidelity(fidelity: Fidelity, gate: GateSpec) -> GateDecision:
    reasons = []
    if fidelity.kind == "cosine":
        if fidelity.mean_cosine < gate.min_mean_cosine:
            reasons.append(f"mean cosine {fidelity.mean_cosine:.4f} < {gate.min_mean_cosine}")
        if fidelity.p5_cosine < gate.min_p5_cosine:
            reasons.append(f"p5 cosine {fidelity.p5_cosine:.4f} < {gate.min_p5_cosine}")
    elif not fidelity.spearman >= gate.min_spearman:
        reasons.append(f"score spearman {fidelity.spearman:.4f} < {gate.min_spearman}")
    return GateDecision(not reasons, "fidelity", tuple(reasons))


def check_retention(retention: dict[str, float], gate: GateSpec) -> GateDecision:
    """Each task's main score divided by the fp32 reference's must reach `min_retention`."""
    reasons = tuple(f"{task} retention {value:.4f} < {gate.min_retention}"
                    for task, value in retention.items() if value < gate.min_retention)
    return GateDecision(not reasons, "retention", reasons)
