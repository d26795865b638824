"""Metric functions against cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hubforge.evaluation.fidelity import measure_fidelity
from hubforge.evaluation.metrics import mrr_at_k, ndcg_at_k, probe_accuracy, recall_at_k, spearman
from hubforge.gate import check_gate
from hubforge.spec import GateSpec


def test_recall_at_k():
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, {"b", "d"}, 1) == 0.0
    assert recall_at_k(ranked, {"b", "d"}, 2) == 0.5
    assert recall_at_k(ranked, {"b", "d"}, 4) == 1.0
    assert recall_at_k(ranked, set(), 4) == 0.0


def test_mrr_at_k():
    assert mrr_at_k(["a", "b", "c"], {"c"}, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["a", "b", "c"], {"c"}, 2) == 0.0
    assert mrr_at_k(["x", "b"], {"x", "b"}, 10) == 1.0


def test_ndcg_at_k():
    # relevant at ranks 1 and 3, two relevant in total: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    expected = 1.5 / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx(expected)
    assert ndcg_at_k(["a", "b"], {"a", "b"}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], {"a"}, 10) == 0.0


def test_spearman_and_probe():
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    x = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.1]])
    assert probe_accuracy(x, ["a", "a", "b", "b"], x, ["a", "a", "b", "b"]) == 1.0


def test_fidelity_cosine_and_gate():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    same = measure_fidelity(ref, ref * 3)
    assert same.mean_cosine == pytest.approx(1.0) and same.min_cosine == pytest.approx(1.0)
    rotated = measure_fidelity(ref, np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]))
    assert rotated.min_cosine == pytest.approx(math.sqrt(0.5))
    assert rotated.mean_cosine == pytest.approx((math.sqrt(0.5) + 2) / 3)
    decision = check_gate(rotated, GateSpec())
    assert not decision.passed and "mean cosine" in decision.summary()
    assert check_gate(same, GateSpec()).passed


def test_fidelity_scores_for_cross_encoders():
    ref = np.array([0.1, 0.5, 0.9, 2.0])
    fid = measure_fidelity(ref, ref + np.array([0.0, 0.01, -0.02, 0.0]))
    assert fid.kind == "scores" and fid.spearman == pytest.approx(1.0)
    assert fid.max_abs_diff == pytest.approx(0.02)
    assert check_gate(fid, GateSpec()).passed
    assert not check_gate(measure_fidelity(ref, ref[::-1].copy()), GateSpec()).passed
