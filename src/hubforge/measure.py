"""Stage 5 — measure: open a built artifact in its runtime and compare its outputs with the fp32 reference.

The opened encoder is handed on, so evaluation reuses it instead of compiling the artifact a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .evaluation.fidelity import Fidelity, measure_fidelity
from .reference import Reference
from .runtimes import TextEncoder
from .targets.base import BuildInputs, Target


@dataclass(frozen=True)
class MeasuredArtifact:
    files: dict[str, Path]
    encoder: TextEncoder
    outputs: np.ndarray  # on the reference's fidelity texts
    fidelity: Fidelity

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files.values())


def measure_artifact(target: Target, files: dict[str, Path], inputs: BuildInputs,
                     reference: Reference) -> MeasuredArtifact:
    encoder = TextEncoder(inputs.io, target.load(files, inputs))
    outputs = encoder.outputs(reference.fidelity_texts, inputs.spec.query_prefix)
    return MeasuredArtifact(files, encoder, outputs, measure_fidelity(reference.outputs, outputs))


def evaluation_encoder(target: Target, artifact: MeasuredArtifact, inputs: BuildInputs,
                       reference: Reference) -> tuple[TextEncoder, str]:
    """The encoder task evaluation runs on, and a note for the card when it is not the measured one: a cheaper
    view of the same graph is used only where its outputs on the fidelity texts agree with the artifact's
    (cosine >= 0.9995 per text, or scores within 1e-3); the agreement is stated."""
    runtime = target.evaluation_runtime(artifact.files, artifact.encoder.runtime)
    if runtime is artifact.encoder.runtime:
        return artifact.encoder, ""
    encoder = TextEncoder(inputs.io, runtime)
    agreement = measure_fidelity(artifact.outputs, encoder.outputs(reference.fidelity_texts, inputs.spec.query_prefix))
    if agreement.kind == "cosine":
        same, stated = agreement.min_cosine >= 0.9995, f"lowest cosine {agreement.min_cosine:.5f}"
    else:
        same, stated = agreement.max_abs_diff <= 1e-3, f"largest score difference {agreement.max_abs_diff:.2g}"
    if not same:
        return artifact.encoder, ""
    return encoder, (f"task scores computed with the graph's fixed input axes freed, so texts are not padded to the "
                     f"fixed length (same nodes and quantization parameters; against the fixed-shape graph on the "
                     f"{agreement.samples} fidelity texts: {stated})")
