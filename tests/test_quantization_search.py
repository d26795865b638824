"""The accuracy-aware search on a model with the activation outliers real encoders have (tests/outlier_minilm.py:
MiniLM reparameterized, same function): today's first candidates miss the gate, the search keeps the nodes that
cause the error precise, and every quantized format passes the default gate."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import invoke
from hubforge.targets.sensitivity import search_kept

SEARCHED = ("int8", "qnn", "amd")
FORMATS = (*SEARCHED, "ov-int8")


@pytest.fixture(scope="session")
def outlier_published(session_dir):
    from hubforge.paths import BUNDLED_SPECS_DIR
    from outlier_minilm import build_outlier_minilm

    folder = build_outlier_minilm(session_dir / "outlier-minilm")
    spec = yaml.safe_load((BUNDLED_SPECS_DIR / "all-minilm-l6-v2.yaml").read_text())
    smaller = {"qnn": {"calibration_samples": 32}, "amd": {"calibration_samples": 32},
               "ov-int8": {"calibration_samples": 100}}  # CI time: the default gate, fewer calibration texts
    spec.update(id="outlier-minilm", source={"repo": "tiny-org/outlier-minilm"},
                formats={name: {**spec["formats"][name], **smaller.get(name, {})} for name in FORMATS})
    # a short timing (the latency the search's kept nodes cost is on the card), fewer fidelity texts
    spec["evaluation"].update(fidelity_samples=64, timed_runs=5, timed_seconds=0.5, throughput_batch=4)
    spec_path = session_dir / "outlier-minilm.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    out = session_dir / "outlier-out"
    result = invoke("publish", str(spec_path), "--source", str(folder), "--dry-run", "--no-quality",
                    "--no-consumers", "--out", str(out))
    results = json.loads((out / "outlier-minilm.results.json").read_text())
    return result, {v["name"]: v for v in results["variants"]}, out


def first_built(variant: dict) -> dict:
    return next(a for a in variant["attempts"] if a["fidelity"] is not None)


def test_the_outliers_break_the_first_candidates(outlier_published):
    _, variants, _ = outlier_published
    for name in ("int8", "qnn", "ov-int8"):
        first = first_built(variants[name])
        assert first["gate"].startswith("fail (fidelity)"), (name, first)
        assert first["fidelity"]["mean_cosine"] < 0.95, (name, first["fidelity"])


def test_the_search_brings_every_format_through_the_default_gate(outlier_published):
    result, variants, _ = outlier_published
    assert result.exit_code == 0, result.output
    for name in FORMATS:
        variant = variants[name]
        assert variant["passed"], (name, variant["gate"])
        assert variant["fidelity"]["mean_cosine"] >= 0.99 and variant["fidelity"]["p5_cosine"] >= 0.98


def test_the_search_keeps_few_nodes_in_a_bounded_number_of_builds(outlier_published):
    """Fewer nodes than it ranked, found in at most MAX_SEARCH_BUILDS builds after the candidate it started from;
    the kept configuration is the one recorded, and its size cost against the fully quantized build is stated."""
    from hubforge.targets.sensitivity import MAX_SEARCH_BUILDS

    _, variants, _ = outlier_published
    for name in SEARCHED:
        variant, kept = variants[name], variants[name]["kept_precise"]
        assert kept is not None, name
        assert 0 < kept["count"] < kept["ranked"], (name, kept["count"], kept["ranked"])
        assert variant["config"]["keep"] == kept["nodes"]
        assert kept["layers"] and set(kept["layers"]) <= set(range(6))
        searched = [a for a in variant["attempts"] if a["config"].get("keep")]
        assert 1 <= len(searched) <= MAX_SEARCH_BUILDS
        assert variant["size_bytes"] >= kept["base_size_bytes"]
    assert variants["qnn"]["kept_precise"]["kept_as"] == "16-bit weights"
    assert variants["int8"]["kept_precise"]["kept_as"] == "float"


def test_qnn_keeps_its_nodes_as_16_bit_weights_in_the_file(outlier_published):
    """The nodes qnn's search kept read 16-bit weights (W16A16 on the HTP); every other MatMul weight is 8-bit."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    _, variants, out = outlier_published
    graph = onnx.load(str(out / "hubforge" / "outlier-minilm-qnn" / "onnx" / "model.onnx")).graph
    constants = {i.name: i for i in graph.initializer}
    dequantize = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    bits = {}
    for node in graph.node:
        dq = dequantize.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) > 1 else None
        if dq is not None and dq.input[0] in constants:
            bits[node.name] = numpy_helper.to_array(constants[dq.input[0]]).dtype
    kept = set(variants["qnn"]["kept_precise"]["nodes"])
    assert kept <= set(bits)
    assert {bits[n] for n in kept} == {np.dtype(np.int16)}
    assert {bits[n] for n in set(bits) - kept} == {np.dtype(np.int8)}


def test_the_card_says_what_was_kept_and_what_it_cost(outlier_published):
    """Size and latency against the fully quantized build, which is timed in the same run."""
    _, variants, out = outlier_published
    card = (out / "hubforge" / "outlier-minilm-qnn" / "README.md").read_text()
    kept = variants["qnn"]["kept_precise"]
    assert f"keeping the {kept['count']} worst precise (16-bit weights; in encoder layers" in card
    assert not any(node in card for node in kept["nodes"])  # node names stay in results.json
    for name in SEARCHED:
        assert variants[name]["kept_precise"]["base_p50_ms"] > 0 and variants[name]["speed"]["p50_ms"] > 0
    assert f"{variants['qnn']['speed']['p50_ms']:.2f} against {kept['base_p50_ms']:.2f} ms" in card
    stages = [s["stage"] for s in json.loads((out / "outlier-minilm.results.json").read_text())["stages"]]
    assert {f"speed {name} fully quantized" for name in SEARCHED} <= set(stages)


def test_search_kept_gallops_then_bisects():
    calls = []

    def passes(k):
        calls.append(k)
        return k >= 5

    probes = search_kept(36, passes)
    assert calls == [1, 2, 4, 8, 6, 5]
    assert min(p.kept for p in probes if p.passed) == 5
    assert [p.kept for p in search_kept(3, lambda k: False)] == [1, 2, 3]
    assert len(search_kept(10_000, lambda k: k >= 9_000)) == 7  # bounded: the best found within the budget


def test_not_published_names_the_closest_attempt_and_the_check_it_missed():
    from hubforge.evaluation.fidelity import Fidelity
    from hubforge.pipeline import FormatOutcome, _variant
    from hubforge.results import Attempt
    from hubforge.spec import GateSpec
    from hubforge.targets import get_target

    close = Attempt({"fusion": "bert"}, Fidelity("cosine", 8, 0.9896, 0.97),
                    "fail (fidelity): mean cosine 0.9896 < 0.99")
    far = Attempt({"fusion": "none"}, Fidelity("cosine", 8, 0.8706, 0.80), "fail (fidelity): mean cosine 0.8706 < 0.99")
    variant = _variant(FormatOutcome("int8", type(get_target("int8")), GateSpec(), [close, far], None))
    assert not variant.passed
    assert variant.gate == "fail (fidelity): mean cosine 0.9896 < 0.99 (the closest of 2 attempts)"
    assert variant.config == {"fusion": "bert"} and variant.fidelity.mean_cosine == 0.9896
