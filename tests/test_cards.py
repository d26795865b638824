"""Cards: valid Hub metadata, the measured numbers, a chart, and usage snippets that actually run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard, snapshot_download

from conftest import READ_TOKEN
from hubforge.clients import st5_onnx_python

REPOS = ["all-minilm-l6-v2-onnx", "all-minilm-l6-v2-qnn", "all-minilm-l6-v2-amd", "all-minilm-l6-v2-openvino",
         "all-minilm-l6-v2-mnn"]


def card_of(repo: str) -> tuple[str, ModelCard]:
    path = snapshot_download(f"hubforge/{repo}", token=READ_TOKEN)
    return path, ModelCard.load(f"{path}/README.md")


@pytest.mark.parametrize("repo", REPOS)
def test_card_metadata_and_numbers(published_minilm, repo):
    results = published_minilm[0]
    path, card = card_of(repo)
    data = card.data.to_dict()
    assert data["library_name"] in ("onnx", "openvino", "mnn")
    assert data["pipeline_tag"] == "sentence-similarity"
    assert "hubforge" in data["tags"]
    index = card.data.eval_results
    assert index, "model-index must carry the evaluation results"
    variants = {v["name"]: v for v in results["variants"]}
    default = next(v for v in results["variants"] if v["repo_suffix"] == repo.rsplit("-", 1)[1])
    tasks = {(t["dataset"], t["split"]): t for t in default["tasks"]}
    assert len(index) == len(tasks)
    for result in index:
        task = tasks[(result.dataset_type, result.dataset_split)]
        assert result.dataset_name == task["dataset_name"] and result.task_type == task["task_type"]
        assert result.metric_type == task["main_metric"] and result.metric_value == pytest.approx(task["main_score"])
    for name in (v for v in variants if variants[v]["repo_suffix"] == repo.rsplit("-", 1)[1]):
        fidelity = variants[name]["fidelity"]
        assert f"mean {fidelity['mean_cosine']:.4f}" in card.text
        assert f"{variants[name]['speed']['p50_ms']:.2f}" in card.text
        quality_row = next(line for line in card.text.splitlines() if line.startswith(f"| {name} | ")
                           and line.count("|") == len(tasks) + 3)
        assert quality_row.endswith(f"| {min(variants[name]['retention'].values()):.4f} |")
    assert results["hardware"]["cpu"] in card.text
    npu_or_gpu = [v for v in variants.values()
                  if v["repo_suffix"] == repo.rsplit("-", 1)[1] and not v["cpu_target"]]
    for variant in npu_or_gpu:
        assert f"{variant['name']} was not measured on {variant['target_hardware']}" in card.text
    assert ("not measured on" in card.text) == bool(npu_or_gpu)
    assert "![Latency vs quality retention" in card.text
    assert open(f"{path}/hubforge_variants.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def snippets(repo: str) -> list[str]:
    _, card = card_of(repo)
    return re.findall(r"```python\n(.*?)```", card.text, flags=re.S)


@pytest.mark.parametrize("repo", REPOS)
def test_usage_snippets_run_against_the_published_files(published_minilm, repo):
    blocks = snippets(repo)
    assert blocks
    env = {**os.environ, "HF_TOKEN": READ_TOKEN}
    for code in blocks:
        check = "\nimport numpy as _np\n_out = locals().get('embeddings', locals().get('hidden'))\n" \
                "assert _out is not None and _np.isfinite(_np.asarray(_out)).all() and _np.asarray(_out).size > 0\n"
        # backend="onnx" and optimum's ORTModel need optimum-onnx, whose own environment (transformers < 4.58) is
        # where their users run them
        onnx_client = 'backend="onnx"' in code or "optimum.onnxruntime" in code
        python = str(st5_onnx_python()) if onnx_client else sys.executable
        done = subprocess.run([python, "-c", code + check], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"snippet failed:\n{code}\n{done.stderr[-3000:]}"
