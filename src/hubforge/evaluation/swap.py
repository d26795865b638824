"""Swap safety: can an artifact's embeddings be searched against an index built by the fp32 model (documents
embedded once on a server, queries on a device), and the reverse? The spec's retrieval task is run by mteb with the
two sides from different encoders, from the vectors each encoder embedded during its own task evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec import ModelSpec
from .tasks import RetrievalEmbeddings, retrieval_scores

TOP_K = 10


@dataclass(frozen=True)
class SwapSafety:
    """nDCG@10 of the spec's retrieval set with fp32 on both sides, with the artifact's queries against fp32's
    documents and with fp32's queries against the artifact's documents; the share of fp32's top 10 each mixed
    search keeps; safe when both mixed searches keep `threshold` of fp32's nDCG@10."""

    ndcg_fp32: float
    ndcg_artifact_queries: float
    ndcg_artifact_documents: float
    top10_artifact_queries: float
    top10_artifact_documents: float
    queries: int
    threshold: float

    @property
    def retention(self) -> float:
        return min(self.ndcg_artifact_queries, self.ndcg_artifact_documents) / self.ndcg_fp32

    @property
    def safe(self) -> bool:
        return self.retention >= self.threshold

    def as_dict(self) -> dict:
        return {"ndcg_at_10_fp32": self.ndcg_fp32, "ndcg_at_10_artifact_queries": self.ndcg_artifact_queries,
                "ndcg_at_10_artifact_documents": self.ndcg_artifact_documents,
                "top10_kept_artifact_queries": self.top10_artifact_queries,
                "top10_kept_artifact_documents": self.top10_artifact_documents, "queries": self.queries,
                "retention": self.retention, "threshold": self.threshold, "safe": self.safe}


def _top(queries: RetrievalEmbeddings, documents: RetrievalEmbeddings) -> np.ndarray:
    """Each query's TOP_K documents by cosine similarity, as an index searching `documents` returns them."""
    q = np.stack(list(queries.queries.values()))
    d = np.stack(list(documents.documents.values()))
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    return np.argsort(-(q @ d.T), axis=1, kind="stable")[:, :TOP_K]


def top_k_kept(expected: np.ndarray, got: np.ndarray) -> float:
    """Mean share of each query's expected top-k documents that the other search also returns in its top k."""
    return float(np.mean([len(set(e) & set(g)) / len(e) for e, g in zip(expected, got)]))


def swap_safety(reference: RetrievalEmbeddings, artifact: RetrievalEmbeddings, spec: ModelSpec,
                *, threshold: float, ndcg_fp32: float | None = None) -> SwapSafety:
    """`ndcg_fp32`: fp32's own nDCG@10 on the set, where already known (it is the same for every artifact)."""
    if ndcg_fp32 is None:
        ndcg_fp32 = retrieval_scores(reference, reference, spec)["ndcg_at_10"]
    baseline = _top(reference, reference)
    return SwapSafety(
        ndcg_fp32=float(ndcg_fp32),
        ndcg_artifact_queries=float(retrieval_scores(artifact, reference, spec)["ndcg_at_10"]),
        ndcg_artifact_documents=float(retrieval_scores(reference, artifact, spec)["ndcg_at_10"]),
        top10_artifact_queries=top_k_kept(baseline, _top(artifact, reference)),
        top10_artifact_documents=top_k_kept(baseline, _top(reference, artifact)),
        queries=len(reference.queries), threshold=threshold)
