"""Task quality of one encoder: retrieval, classification, reranking — the same code for every runtime."""

from __future__ import annotations

import numpy as np

from .. import datasets
from ..errors import EvaluationError
from ..runtimes import TextEncoder
from ..spec import ModelSpec
from .metrics import mrr_at_k, ndcg_at_k, probe_accuracy, recall_at_k, spearman

RECALL_KS = (1, 3, 5, 10)


def _lookup(table: dict, name: str, kind: str):
    if name in table:
        return table[name]
    raise EvaluationError(f"no bundled {kind} set named {name!r}",
                          f"bundled {kind} sets: {', '.join(table)}; mteb tasks need the network (mteb_tasks)")


def check_mteb_tasks(names: list[str]) -> None:
    """MTEB tasks download their data; offline, that is an error up front, not a silent skip."""
    if not names:
        return
    import mteb

    for name in names:
        try:
            mteb.get_task(name)
        except Exception as exc:
            raise EvaluationError(f"unknown mteb task {name!r}", "check the name with mteb.get_tasks()") from exc
    raise EvaluationError(
        f"mteb tasks {', '.join(names)} need their data sets from the Hub, which this environment cannot reach",
        "use the bundled sets (retrieval/classification: banking77) or run where the data is reachable",
    )


def retrieval(encoder: TextEncoder, spec: ModelSpec) -> dict[str, float]:
    make_set = _lookup(datasets.RETRIEVAL_SETS, spec.evaluation.retrieval, "retrieval")
    data = make_set(spec.evaluation.retrieval_queries)
    doc_ids = list(data.corpus)
    docs = encoder.embed([data.corpus[d] for d in doc_ids])
    qids = list(data.queries)
    queries = encoder.embed([data.queries[q] for q in qids], prefix=spec.query_prefix)
    order = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
    scores: dict[str, list[float]] = {}
    for row, qid in zip(order, qids):
        ranked = [doc_ids[i] for i in row]
        for k in RECALL_KS:
            scores.setdefault(f"recall@{k}", []).append(recall_at_k(ranked, data.qrels[qid], k))
        scores.setdefault("mrr@10", []).append(mrr_at_k(ranked, data.qrels[qid], 10))
        scores.setdefault("ndcg@10", []).append(ndcg_at_k(ranked, data.qrels[qid], 10))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def classification(encoder: TextEncoder, spec: ModelSpec) -> dict:
    loader = _lookup(datasets.CLASSIFICATION_SETS, spec.evaluation.classification, "classification")
    rng = np.random.default_rng(0)
    train, test = loader("train"), loader("test")
    tr = rng.choice(len(train.texts), spec.evaluation.classification_train, replace=False)
    te = rng.choice(len(test.texts), spec.evaluation.classification_test, replace=False)
    acc = probe_accuracy(encoder.embed([train.texts[i] for i in tr]), [train.labels[i] for i in tr],
                         encoder.embed([test.texts[i] for i in te]), [test.labels[i] for i in te])
    return {"accuracy": acc}


def reranking(encoder: TextEncoder, spec: ModelSpec) -> dict[str, float]:
    data = _lookup(datasets.RERANKING_SETS, spec.evaluation.reranking, "reranking")()
    mrr, ndcg = [], []
    for query, candidates, relevant in zip(data.queries, data.candidates, data.relevant):
        if spec.task == "cross-encoder":
            scores = encoder.score([query] * len(candidates), candidates)
        else:
            q = encoder.embed([query], prefix=spec.query_prefix)
            scores = (encoder.embed(candidates) @ q.T)[:, 0]
        ranked = [str(i) for i in np.argsort(-scores)]
        rel = {str(i) for i, r in enumerate(relevant) if r}
        mrr.append(mrr_at_k(ranked, rel, 10))
        ndcg.append(ndcg_at_k(ranked, rel, 10))
    return {"rerank_mrr@10": float(np.mean(mrr)), "rerank_ndcg@10": float(np.mean(ndcg))}


def sts(encoder: TextEncoder, spec: ModelSpec) -> dict[str, float]:
    """Spearman between predicted similarity (cosine, or cross-encoder score) and gold scores."""
    name = spec.evaluation.sts
    data = datasets.csv_pairs(name) if name.endswith(".csv") else _lookup(datasets.STS_SETS, name, "sts")()
    if spec.task == "cross-encoder":
        predicted = encoder.score(data.first, data.second)
    else:
        a, b = encoder.embed(data.first), encoder.embed(data.second)
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        predicted = (a * b).sum(axis=1)
    return {"sts_spearman": spearman(predicted, np.asarray(data.gold))}


def evaluate_quality(encoder: TextEncoder, spec: ModelSpec) -> dict[str, float]:
    """Every quality metric the spec asks for, flat: {'recall@1': ..., 'accuracy': ...}."""
    results: dict[str, float] = {}
    if spec.evaluation.retrieval:
        results.update(retrieval(encoder, spec))
    if spec.evaluation.classification:
        results.update(classification(encoder, spec))
    if spec.evaluation.reranking:
        results.update(reranking(encoder, spec))
    if spec.evaluation.sts:
        results.update(sts(encoder, spec))
    return results
