"""Stage 3 — the reference: the model's own pipeline in fp32 (SentenceTransformer / CrossEncoder), with the
spec's pooling and normalisation checked against what the model declares, before anything is converted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import SpecError
from .runtimes import ModelIO, TextEncoder, TorchRuntime, cross_encoder
from .source import SourceModel
from .spec import ModelSpec


def declared_pipeline(model_dir: Path) -> tuple[str | None, bool | None]:
    """(pooling mode, normalize) as the model's sentence-transformers modules.json declares them; None where it
    declares nothing."""
    modules_file = model_dir / "modules.json"
    if not modules_file.exists():
        return None, None
    modules = json.loads(modules_file.read_text())
    pooling = None
    for module in modules:
        if module["type"].endswith("Pooling"):
            from sentence_transformers.models import Pooling

            pooling = Pooling.load(str(model_dir / module["path"])).pooling_mode
    normalize = any(m["type"].endswith("Normalize") for m in modules)
    return pooling, normalize


def model_io(spec: ModelSpec, source: SourceModel) -> ModelIO:
    """The spec's pooling/normalize, taken from the model where it declares them; a spec that says otherwise is
    an error naming both values."""
    pooling, normalize = spec.pooling, spec.normalize
    if spec.task == "sentence-embedding":
        declared_pooling, declared_normalize = declared_pipeline(source.path)
        if declared_pooling is not None:
            if "pooling" in spec.model_fields_set and spec.pooling != declared_pooling:
                raise SpecError(f"{spec.id}: pooling: {spec.pooling} contradicts the model's own "
                                f"pooling_mode {declared_pooling!r} ({source.repo_id} modules.json)",
                                f"remove `pooling:` from the spec or set it to {declared_pooling}")
            pooling = declared_pooling
        if declared_normalize is not None:
            if "normalize" in spec.model_fields_set and spec.normalize != declared_normalize:
                raise SpecError(f"{spec.id}: normalize: {str(spec.normalize).lower()} contradicts the model, whose "
                                f"modules.json {'has' if declared_normalize else 'has no'} Normalize module",
                                "remove `normalize:` from the spec or make it match the model")
            normalize = declared_normalize
    return ModelIO(source.path, spec.task, pooling, normalize, spec.max_length, spec.trust_remote_code)


@dataclass(frozen=True)
class Reference:
    """What the later stages need of the reference: its outputs, not the model (which is released)."""

    fidelity_texts: list[str]
    outputs: np.ndarray  # what every artifact's outputs on `fidelity_texts` are compared with


def compute_reference(io: ModelIO, spec: ModelSpec, fidelity_texts: list[str],
                      *, encoder: ReferenceEncoder | None = None) -> Reference:
    encoder = encoder or ReferenceEncoder(io)
    return Reference(fidelity_texts, encoder.outputs(fidelity_texts, spec.query_prefix))


@lru_cache(maxsize=8)
def _sentence_transformer(io: ModelIO):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(io.model_dir), device="cpu", local_files_only=True,
                                trust_remote_code=io.trust_remote_code)
    model.max_seq_length = io.max_length
    return model


class ReferenceEncoder(TextEncoder):
    """The fp32 reference as users run it: `SentenceTransformer(dir).encode` for sentence-transformers models,
    `CrossEncoder(dir).predict` for cross-encoders, the PyTorch model plus the spec's pooling otherwise. Its
    `runtime` is the same PyTorch network, for timing."""

    def __init__(self, io: ModelIO):
        if io.is_sentence_transformer:
            network = _sentence_transformer(io)[0].auto_model
        elif io.task == "cross-encoder":
            network = cross_encoder(io).model
        else:
            network = None
        super().__init__(io, TorchRuntime(io.model_dir, io.task, model=network,
                                          trust_remote_code=io.trust_remote_code))

    def embed(self, texts: list[str], prefix: str = "") -> np.ndarray:
        if not self.io.is_sentence_transformer:
            return super().embed(texts, prefix)
        return _sentence_transformer(self.io).encode([prefix + t for t in texts], batch_size=self.batch_size,
                                                     convert_to_numpy=True).astype(np.float32)

    def score(self, queries: list[str], passages: list[str]) -> np.ndarray:
        scores = cross_encoder(self.io).predict(list(zip(queries, passages)), batch_size=self.batch_size,
                                                 convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float32).reshape(len(queries), -1)[:, 0]
