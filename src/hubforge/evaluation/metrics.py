"""Metric functions on plain arrays, checked against hand-computed cases in the tests."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr


def recall_at_k(ranked: list[str], relevant: set[str], k: int) -> float:
    """Share of the relevant documents found in the top k (BEIR's definition)."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & relevant) / len(relevant)


def mrr_at_k(ranked: list[str], relevant: set[str], k: int) -> float:
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: list[str], relevant: set[str], k: int) -> float:
    """Binary-relevance nDCG: DCG of the ranking over DCG of an ideal one."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1) if doc in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal if ideal else 0.0


def spearman(predicted: np.ndarray, gold: np.ndarray) -> float:
    return float(spearmanr(predicted, gold).statistic)


def probe_accuracy(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray, test_y: list[str]) -> float:
    """MTEB-style classification: logistic regression on frozen embeddings (C=10: unit-norm vectors give small
    logits, and the default C=1 underfits 77 classes at a few examples each)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=10, max_iter=1000)
    clf.fit(train_x, train_y)
    return float((clf.predict(test_x) == np.asarray(test_y)).mean())
