"""Fidelity and gate decisions against cases computed by hand (task metrics are mteb's: tests/test_tasks.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hubforge.evaluation.fidelity import measure_fidelity
from hubforge.gate import check_fidelity
from hubforge.spec import GateSpec


def test_fidelity_cosine_and_gate():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    same = measure_fidelity(ref, ref * 3)
    assert same.mean_cosine == pytest.approx(1.0) and same.min_cosine == pytest.approx(1.0)
    rotated = measure_fidelity(ref, np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]))
    assert rotated.min_cosine == pytest.approx(math.sqrt(0.5))
    assert rotated.mean_cosine == pytest.approx((math.sqrt(0.5) + 2) / 3)
    decision = check_fidelity(rotated, GateSpec())
    assert not decision.passed and "mean cosine" in decision.summary()
    assert check_fidelity(same, GateSpec()).passed


def test_fidelity_scores_for_cross_encoders():
    ref = np.array([0.1, 0.5, 0.9, 2.0])
    fid = measure_fidelity(ref, ref + np.array([0.0, 0.01, -0.02, 0.0]))
    assert fid.kind == "scores" and fid.spearman == pytest.approx(1.0)
    assert fid.max_abs_diff == pytest.approx(0.02)
    assert check_fidelity(fid, GateSpec()).passed
    assert not check_fidelity(measure_fidelity(ref, ref[::-1].copy()), GateSpec()).passed
