"""The whole evaluation on the real MiniLM: plausible quality, retention near 1, timings tied to hardware."""

from __future__ import annotations

import json

import pytest

from conftest import invoke


def test_reference_quality_is_plausible(published_minilm):
    ref = published_minilm[0]["reference"]["quality"]
    # all-MiniLM-L6-v2 on Banking77: a linear probe lands near MTEB's ~0.8, intent retrieval is easy at top 10
    assert 0.6 < ref["accuracy"] < 0.95
    assert ref["mrr@10"] > 0.7 and ref["ndcg@10"] > 0.4
    assert ref["recall@1"] <= ref["recall@3"] <= ref["recall@5"] <= ref["recall@10"]
    assert 0.4 < ref["sts_spearman"] < 1.0


def test_every_artifact_retains_quality_and_is_timed(published_minilm):
    results = published_minilm[0]
    assert results["hardware"]["cores"] >= 1 and results["hardware"]["versions"]["onnxruntime"]
    for variant in results["variants"]:
        assert set(variant["retention"]) == set(results["reference"]["quality"])
        assert min(variant["retention"].values()) > 0.95, variant["name"]
        speed = variant["speed"]
        assert speed["p50_ms"] > 0 and speed["min_ms"] <= speed["p50_ms"] <= speed["p90_ms"] <= speed["p99_ms"]
        assert speed["shape"] == [1, 128] and speed["tokens_per_s"] > 0


def test_evaluate_command_prints_a_table_and_writes_json(upstream_minilm, tmp_path):
    out = tmp_path / "results.json"
    result = invoke("evaluate", "all-minilm-l6-v2", "--formats", "int8", "--results", str(out))
    assert result.exit_code == 0, result.output
    assert "fp32 (PyTorch)" in result.stdout and "int8" in result.stdout and "retention" in result.stdout
    data = json.loads(out.read_text())
    assert [v["name"] for v in data["variants"]] == ["int8"]
    assert data["variants"][0]["quality"]["accuracy"] == pytest.approx(data["reference"]["quality"]["accuracy"],
                                                                       abs=0.03)


def test_offline_mteb_task_is_an_error_not_a_skip(tmp_path, upstream_minilm):
    import yaml

    spec = {"id": "mteb-offline", "source": {"repo": "sentence-transformers/all-MiniLM-L6-v2"},
            "task": "sentence-embedding", "formats": {"onnx": {}},
            "evaluation": {"mteb_tasks": ["Banking77Classification"]}}
    path = tmp_path / "mteb-offline.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = invoke("evaluate", str(path), "--no-speed")
    assert result.exit_code == 1
    assert "mteb tasks Banking77Classification need their data sets" in result.output


def test_sts_csv_needs_its_columns(tmp_path):
    from hubforge.datasets import csv_pairs
    from hubforge.errors import EvaluationError

    path = tmp_path / "pairs.csv"
    path.write_text("a,b,score\nx,y,1\n")
    with pytest.raises(EvaluationError, match="sentence1, sentence2"):
        csv_pairs(str(path))
