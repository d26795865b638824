"""Stage 5 — measure: open a built artifact in its runtime and compare its outputs with the fp32 reference.

The opened encoder is handed on, so evaluation reuses it instead of compiling the artifact a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .evaluation.fidelity import Fidelity, measure_fidelity
from .reference import Reference
from .runtimes import TextEncoder
from .targets.base import BuildInputs, Target


@dataclass(frozen=True)
class MeasuredArtifact:
    files: dict[str, Path]
    encoder: TextEncoder
    fidelity: Fidelity

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files.values())


def measure_artifact(target: Target, files: dict[str, Path], inputs: BuildInputs,
                     reference: Reference) -> MeasuredArtifact:
    encoder = TextEncoder(inputs.io, target.load(files, inputs))
    outputs = encoder.outputs(reference.fidelity_texts, inputs.spec.query_prefix)
    return MeasuredArtifact(files, encoder, measure_fidelity(reference.outputs, outputs))
