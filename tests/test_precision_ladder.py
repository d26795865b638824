"""The precision ladder on the real all-MiniLM-L6-v2, from the shared publish of every format: 4-bit formats
(ov-int4, q4, q4f16, MNN int4 blocks) written where their consumers load them, loaded by sentence-transformers and
transformers.js, and every card row measured (size, inference memory, speed, retention)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from huggingface_hub import snapshot_download

from conftest import READ_TOKEN, cosine, invoke, minilm_test_spec

from hubforge.clients import run_st5_onnx

REPO = "hubforge/all-minilm-l6-v2"


@cache
def repo(suffix: str) -> Path:
    return Path(snapshot_download(f"{REPO}-{suffix}", token=READ_TOKEN))


def test_the_4bit_files_are_where_their_consumers_look(published_minilm):
    for path in ["onnx/onnx/model_q4.onnx", "onnx/onnx/model_q4f16.onnx", "onnx/onnx/quantize_config.json",
                 "openvino/openvino/openvino_model_int4.xml", "openvino/openvino/openvino_model_int4.bin",
                 "mnn/mnn/model.mnn"]:
        suffix, _, file = path.partition("/")
        assert (repo(suffix) / file).is_file(), path
    record = json.loads((repo("onnx") / "onnx" / "quantize_config.json").read_text())
    assert {"q4", "q4f16"} <= set(record["modes"])
    for stem in ("model_q4", "model_q4f16"):
        entry = record["per_model_config"][stem]
        assert entry["dtype"] == stem.removeprefix("model_") and entry["config"]["block_size"] in (16, 32)


def test_4bit_gate_is_stated_and_set_in_the_spec(published_minilm, session_dir):
    from hubforge.spec import load_spec
    from hubforge.targets import get_target
    from hubforge.targets.q4 import WEIGHT_4BIT_GATE

    results = published_minilm[0]
    spec = load_spec(str(minilm_test_spec(session_dir / "specs")))
    for name in ("q4", "q4f16", "ov-int4", "gguf-q4"):
        target = get_target(name)
        assert target.gate(target.options_model.model_validate({}), spec) == WEIGHT_4BIT_GATE
        own = target.options_model.model_validate({"gate": {"min_mean_cosine": 0.999}})
        assert target.gate(own, spec).min_mean_cosine == 0.999
    assert WEIGHT_4BIT_GATE.min_mean_cosine < spec.gate.min_mean_cosine  # looser, and said so on the card
    variants = {v["name"]: v for v in results["variants"]}
    assert variants["q4"]["gate_thresholds"]["min_mean_cosine"] == WEIGHT_4BIT_GATE.min_mean_cosine
    assert variants["mnn"]["gate_thresholds"]["min_mean_cosine"] == spec.gate.min_mean_cosine  # int4 not let in
    card = (repo("onnx") / "README.md").read_text()
    assert f'"min_mean_cosine": {WEIGHT_4BIT_GATE.min_mean_cosine}' in card
    assert "4-bit variants store weights only in 4 bits" in card
    assert "4-bit variants store weights only in 4 bits" not in (repo("mnn") / "README.md").read_text()


@pytest.mark.parametrize("suffix,backend,file_name", [("onnx", "onnx", "onnx/model_q4.onnx"),
                                                      ("onnx", "onnx", "onnx/model_q4f16.onnx"),
                                                      ("openvino", "openvino", "openvino/openvino_model_int4.xml")])
def test_sentence_transformers_loads_the_4bit_files(published_minilm, minilm_reference, suffix, backend,
                                                     file_name):
    """backend="onnx" runs in sentence-transformers 5's own environment (it needs optimum-onnx)."""
    from sentence_transformers import SentenceTransformer

    results = published_minilm[0]
    texts, expected = minilm_reference
    path = str(repo(suffix))
    if backend == "onnx":
        got = run_st5_onnx({"client": "sentence-transformers", "path": path, "file_name": file_name, "texts": texts})
    else:
        model = SentenceTransformer(path, backend=backend, device="cpu", model_kwargs={"file_name": file_name})
        got = model.encode(texts)
    gate = next(v for v in results["variants"] if file_name in v["files"])["gate_thresholds"]
    assert cosine(got, expected).mean() >= gate["min_mean_cosine"]


def _ladder_rows(card: str) -> dict[str, list[str]]:
    section = card.split("## Precision ladder", 1)[1].split("\n#", 1)[0]  # its table, not the MNN card's A/B
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    header, body = rows[0], rows[1:]
    return {row[0].strip(): dict(zip([h.strip() for h in header], [c.strip() for c in row])) for row in body}


def test_every_card_row_is_measured(published_minilm):
    results, output, _ = published_minilm
    for suffix in ("onnx", "openvino", "mnn", "gguf"):
        names = {v["name"] for v in results["variants"] if v["repo_suffix"] == suffix}
        rows = _ladder_rows((repo(suffix) / "README.md").read_text())
        assert set(rows) == {"fp32 (PyTorch)", *names}
        for name, row in rows.items():
            for column in ("file size", "inference memory", "CPU latency vs fp32", "CPU throughput vs fp32",
                           "task retention (min)"):
                assert row[column] != "not measured" and row[column], (name, column)
            assert row["GPU"] == "not measured" and row["NPU"] == "not measured"  # none attached here
    for variant in [results["reference"], *results["variants"]]:
        memory = variant["memory"]
        shapes = 1 if variant["fixed_shape"] else 2  # a fixed-shape graph runs at its own shape only
        assert memory["peak_mb"] > 1 and memory["load_s"] > 0 and len(memory["shapes"]) == shapes, variant["name"]
    assert "mem MB" in output and "load s" in output


def test_no_speed_leaves_memory_not_measured(session_dir):
    from hubforge.devhub.seed import bundled_minilm

    out = session_dir / "ladder-no-speed"
    spec = minilm_test_spec(session_dir / "ladder-spec")
    result = invoke("publish", str(spec), "--source", str(bundled_minilm()), "--dry-run", "--formats", "q4",
                    "--out", str(out), "--no-speed", "--no-quality", "--no-consumers")
    assert result.exit_code == 0, result.output
    results = json.loads((out / "all-minilm-l6-v2.results.json").read_text())
    assert results["reference"]["memory"] is None and results["variants"][0]["memory"] is None
    rows = _ladder_rows((out / f"{REPO}-onnx" / "README.md").read_text())
    assert rows["q4"]["inference memory"] == "not measured"
    assert rows["q4"]["CPU latency vs fp32"] == "not measured"


def test_transformers_js_loads_the_4bit_files_offline(published_minilm):
    """transformers.js (node, offline: allowRemoteModels off) picks q4 and q4f16 by its dtype names, through the
    consumer check of the publish, and reproduces the files' own outputs."""
    results = published_minilm[0]
    for name in ("q4", "q4f16"):
        variant = next(v for v in results["variants"] if v["name"] == name)
        (check,) = [c for c in variant["consumers"] if c["client"] == "transformers.js"]
        assert check["status"] == "pass" and check["file"] == f"onnx/model_{name}.onnx", check
        assert check["value"] >= variant["gate_thresholds"]["min_mean_cosine"] - 0.01 and check["agreement"] > 0.999
