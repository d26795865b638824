"""Stage 5 — measure: open a built artifact in its runtime and compare its outputs with the fp32 reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .evaluation.fidelity import Fidelity, measure_fidelity
from .reference import Reference
from .runtimes import TextEncoder
from .targets.base import BuildInputs, Target


def size_of(files: dict[str, Path]) -> int:
    return sum(p.stat().st_size for p in files.values())


@dataclass(frozen=True)
class MeasuredArtifact:
    files: dict[str, Path]
    outputs: np.ndarray  # on the reference's fidelity texts
    fidelity: Fidelity
    encoder: TextEncoder | None = None  # open while measuring; `closed()` is what later steps get
    details: dict = field(default_factory=dict)  # Target.details

    @property
    def size_bytes(self) -> int:
        return size_of(self.files)

    def closed(self) -> MeasuredArtifact:
        """The measurement without its open runtime: what crosses to the evaluation step's process."""
        return MeasuredArtifact(self.files, self.outputs, self.fidelity, details=self.details)


def measure_artifact(target: Target, files: dict[str, Path], inputs: BuildInputs,
                     *, reference: Reference) -> MeasuredArtifact:
    encoder = target.encoder(files, inputs.io)
    outputs = encoder.outputs(reference.fidelity_texts, inputs.spec.query_prefix)
    return MeasuredArtifact(files, outputs, measure_fidelity(reference.outputs, outputs), encoder,
                            target.details(encoder, files, reference.fidelity_texts))


def evaluation_encoder(target: Target, artifact: MeasuredArtifact, inputs: BuildInputs,
                       *, reference: Reference) -> tuple[TextEncoder, str]:
    """The encoder task evaluation runs on, and a note for the card when it is not the measured one: a cheaper
    view of the same graph is used only where its outputs on the fidelity texts agree with the artifact's
    (cosine >= 0.9995 per text, or scores within 1e-3); the agreement is stated."""
    view = target.evaluation_view(artifact.files)
    if view is None:
        return target.encoder(artifact.files, inputs.io), ""
    encoder = TextEncoder(inputs.io, view)
    agreement = measure_fidelity(artifact.outputs, encoder.outputs(reference.fidelity_texts, inputs.spec.query_prefix))
    if agreement.kind == "cosine":
        same, stated = agreement.min_cosine >= 0.9995, f"lowest cosine {agreement.min_cosine:.5f}"
    else:
        same, stated = agreement.max_abs_diff <= 1e-3, f"largest score difference {agreement.max_abs_diff:.2g}"
    if not same:
        del encoder, view
        return target.encoder(artifact.files, inputs.io), ""
    return encoder, (f"task scores computed with the graph's fixed input axes freed, so texts are not padded to the "
                     f"fixed length (same nodes and quantization parameters; against the fixed-shape graph on the "
                     f"{agreement.samples} fidelity texts: {stated})")
