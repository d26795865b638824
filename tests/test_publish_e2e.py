"""The real MiniLM published to the local Hub, downloaded with huggingface_hub and run in each format's runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import HfApi, ModelCard, snapshot_download

from conftest import READ_TOKEN, WRITE_TOKEN, all_formats, cosine
from hubforge.clients import run_st5_onnx

ORG = "hubforge"


def download(repo: str) -> str:
    return snapshot_download(f"{ORG}/{repo}", token=READ_TOKEN)


def test_publish_opens_no_connection_but_to_the_hub(published_minilm):
    assert published_minilm[2] == []


def test_every_format_passed_its_gate(published_minilm):
    results, output, _ = published_minilm
    variants = {v["name"]: v for v in results["variants"]}
    assert list(variants) == all_formats().split(",")
    for name, variant in variants.items():
        assert variant["passed"], (name, variant["attempts"])
        assert variant["fidelity"]["mean_cosine"] >= variant["gate_thresholds"]["min_mean_cosine"]
        assert variant["fidelity"]["p5_cosine"] >= variant["gate_thresholds"]["min_p5_cosine"]
        assert min(variant["retention"].values()) >= variant["gate_thresholds"]["min_retention"]
    assert "published http://127.0.0.1" in output


def test_quantized_targets_record_the_search(published_minilm):
    """Quantizing every op per tensor puts MiniLM's attention scores on the mask constant's grid: the probe skips
    that candidate unbuilt, says why, and the search keeps a later configuration."""
    variants = {v["name"]: v for v in published_minilm[0]["variants"]}
    for name in ("qnn", "amd"):
        first = variants[name]["attempts"][0]
        assert first["config"]["ops"] is None and first["fidelity"] is None and first["error"] is None
        assert "attention mask constant -3.4e+38" in first["skipped"] and "rounds to one value" in first["skipped"]
        assert variants[name]["config"]["per_channel"] is True
        assert variants[name]["config"]["ops"] == ["MatMul", "Gemm"]


def test_the_probe_skips_only_what_cannot_pass(published_minilm, tmp_path):
    """Built anyway, the candidate the probe skipped misses its gate by far on the real MiniLM."""
    from hubforge.build import cache_key
    from hubforge.datasets import sample_texts
    from hubforge.devhub.seed import bundled_minilm
    from hubforge.gate import check_fidelity
    from hubforge.measure import measure_artifact
    from hubforge.reference import compute_reference, model_io
    from hubforge.source import local_source
    from hubforge.spec import load_spec
    from hubforge.export import export_fp32_onnx
    from hubforge.targets import get_target
    from hubforge.targets.base import BuildInputs

    spec = load_spec("all-minilm-l6-v2")
    source = local_source(spec, bundled_minilm())
    io = model_io(spec, source)
    fp32 = export_fp32_onnx(spec, source, tmp_path / cache_key(spec, source) / "export")
    inputs = BuildInputs(spec, source, fp32, sample_texts("banking77", 16, split="test", seed=1), io)
    target = get_target("amd")
    options = target.options_model.model_validate({"calibration_samples": 8})
    skipped = target.candidates(options, inputs)[0]
    assert target.cannot_pass(options, skipped, inputs)
    assert target.cannot_pass(options, target.candidates(options, inputs)[1], inputs) is None
    out = tmp_path / "built"
    out.mkdir()
    files = target.build(inputs, options, skipped, out_dir=out)
    reference = compute_reference(io, spec, sample_texts("banking77", 32, split="train"))
    fidelity = measure_artifact(target, files, inputs, reference=reference).fidelity
    assert not check_fidelity(fidelity, target.gate(options, spec)).passed
    assert fidelity.mean_cosine < 0.6, fidelity


def test_onnx_repo_loads_in_sentence_transformers(published_minilm, minilm_reference):
    """sentence-transformers' backend="onnx" (version 5: its ONNX backend needs optimum-onnx, transformers<4.58)."""
    texts, reference = minilm_reference
    path = download("all-minilm-l6-v2-onnx")
    request = {"client": "sentence-transformers", "path": path, "texts": texts}
    fp32 = run_st5_onnx(request)
    assert cosine(fp32, reference).min() >= 0.999
    fp16 = run_st5_onnx({**request, "file_name": "onnx/model_fp16.onnx"})
    assert cosine(fp16, reference).mean() >= 0.99
    int8 = run_st5_onnx({**request, "file_name": "onnx/model_quantized.onnx"})
    assert cosine(int8, reference).mean() >= 0.99


def test_onnx_repo_loads_in_optimum(published_minilm, minilm_reference):
    texts, reference = minilm_reference
    path = download("all-minilm-l6-v2-onnx")
    pooled = run_st5_onnx({"client": "optimum", "path": path, "file_name": "onnx/model.onnx", "texts": texts})
    assert cosine(pooled, reference).min() >= 0.999


def test_openvino_repo_loads_in_sentence_transformers(published_minilm, minilm_reference):
    from sentence_transformers import SentenceTransformer

    texts, reference = minilm_reference
    path = download("all-minilm-l6-v2-openvino")
    ov = SentenceTransformer(path, backend="openvino", device="cpu")
    assert cosine(ov.encode(texts), reference).mean() >= 0.999
    ov8 = SentenceTransformer(path, backend="openvino", device="cpu",
                              model_kwargs={"file_name": "openvino/openvino_model_qint8_quantized.xml"})
    assert cosine(ov8.encode(texts), reference).mean() >= 0.99


def test_openvino_int8_quantizes_the_linear_layers_and_leaves_attention_at_inference_precision(published_minilm):
    """Every MatMul with weights reads an int8 FakeQuantize'd activation; the attention's queries, keys and values
    reach ScaledDotProductAttention unquantized (targets/openvino.py: int8 attention between bf16 ops lost cosine)."""
    import openvino

    model = openvino.Core().read_model(str(Path(download("all-minilm-l6-v2-openvino"))
                                          / "openvino" / "openvino_model_qint8_quantized.xml"))
    ops = model.get_ordered_ops()
    linears = [op for op in ops if op.get_type_name() == "MatMul"
               and op.input_value(1).get_node().get_type_name() != "Parameter"]
    assert len(linears) == 36  # 6 layers: query, key, value, attention output, intermediate, output
    assert all(op.input_value(0).get_node().get_type_name() == "FakeQuantize" for op in linears)

    def producer(value):
        node = value.get_node()
        while node.get_type_name() in ("Reshape", "Transpose"):
            node = node.input_value(0).get_node()
        return node.get_type_name()

    attention = [op for op in ops if op.get_type_name() == "ScaledDotProductAttention"]
    assert len(attention) == 6
    assert {producer(op.input_value(i)) for op in attention for i in range(3)} == {"Add"}  # the projections' bias


@pytest.mark.parametrize("repo", ["all-minilm-l6-v2-onnx", "all-minilm-l6-v2-qnn", "all-minilm-l6-v2-amd"])
def test_onnx_graphs_list_nodes_in_topological_order(published_minilm, repo):
    """The ONNX spec requires it, and readers that walk nodes in order (onnx2torch, some parsers) depend on it."""
    import onnx

    path = download(repo)
    files = sorted(Path(path).glob("onnx/*.onnx"))
    assert files
    for file in files:
        graph = onnx.load(str(file)).graph
        known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
        for node in graph.node:
            missing = [name for name in node.input if name not in known]
            assert not missing, f"{file.name}: {node.name} reads {missing} before they are produced"
            known.update(node.output)


@pytest.mark.parametrize("repo", ["all-minilm-l6-v2-qnn", "all-minilm-l6-v2-amd"])
def test_npu_qdq_repos_run_in_onnxruntime(published_minilm, minilm_reference, repo):
    import onnx
    import onnxruntime as ort
    from transformers import AutoTokenizer

    texts, reference = minilm_reference
    path = download(repo)
    graph = onnx.load(f"{path}/onnx/model.onnx").graph
    assert any(n.op_type == "QuantizeLinear" for n in graph.node), "expected a QDQ graph"
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 128]
    session = ort.InferenceSession(f"{path}/onnx/model.onnx", providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    vectors = []
    for text in texts:
        enc = tokenizer([text], padding="max_length", max_length=128, truncation=True, return_tensors="np")
        hidden = session.run(None, {k: v.astype(np.int64) for k, v in enc.items()})[0]
        mask = enc["attention_mask"][..., None]
        vectors.append(((hidden * mask).sum(1) / mask.sum(1))[0])
    # the gate measured mean >= 0.99 on its own fidelity texts; these are 64 other texts no build saw
    assert cosine(np.stack(vectors), reference).mean() >= 0.995


@pytest.mark.parametrize("repo", ["all-minilm-l6-v2-qnn", "all-minilm-l6-v2-amd"])
def test_npu_weights_are_what_the_configuration_says(published_minilm, repo):
    """Every MatMul weight of a per-channel configuration has one scale per output channel in the file itself
    (qnn's used to be per tensor whatever its configuration said), and qnn lands as close to fp32 as amd."""
    import onnx
    from onnx import numpy_helper

    variant = next(v for v in published_minilm[0]["variants"] if v["name"] == repo.rsplit("-", 1)[1])
    graph = onnx.load(f"{download(repo)}/onnx/model.onnx").graph
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    dequantized = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    weight_scales = [initializers[dequantized[n.input[1]].input[1]] for n in graph.node
                     if n.op_type == "MatMul" and n.input[1] in dequantized
                     and dequantized[n.input[1]].input[0] in initializers]
    assert len(weight_scales) == 36  # 6 layers: Q, K, V, attention output, FFN in and out
    assert variant["config"]["per_channel"] is True
    assert {scale.size for scale in weight_scales} == {384, 1536}, "per-channel: one scale per output column"
    assert variant["fidelity"]["mean_cosine"] >= 0.998, variant["fidelity"]


def test_mnn_repo_runs_with_the_mnn_python_api(published_minilm, minilm_reference):
    import MNN.expr as F
    import MNN.nn as nn
    from transformers import AutoTokenizer

    texts, reference = minilm_reference
    path = download("all-minilm-l6-v2-mnn")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    module = nn.load_module_from_file(f"{path}/mnn/model.mnn", names, ["last_hidden_state"])
    tokenizer = AutoTokenizer.from_pretrained(path)
    vectors = []
    for text in texts[:16]:
        enc = tokenizer([text], padding="max_length", max_length=128, truncation=True, return_tensors="np")
        args = [F.const(enc[n].astype(np.int32), list(enc[n].shape), F.NCHW, F.int) for n in names]
        hidden = np.array(module.forward(args)[0].read()).reshape(1, 128, -1)
        mask = enc["attention_mask"][..., None]
        vectors.append(((hidden * mask).sum(1) / mask.sum(1))[0])
    assert cosine(np.stack(vectors), reference[:16]).mean() >= 0.99


def test_cards_parse_and_carry_metadata(published_minilm, upstream_minilm):
    for suffix in ("onnx", "qnn", "amd", "openvino", "mnn"):
        path = download(f"all-minilm-l6-v2-{suffix}")
        card = ModelCard.load(f"{path}/README.md")
        assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
        assert card.data.base_model_relation == "quantized"
        assert card.data.license == "apache-2.0"
        assert upstream_minilm in card.text
        manifest = json.load(open(f"{path}/hubforge.json"))
        assert manifest["upstream"] == {"repo": "sentence-transformers/all-MiniLM-L6-v2", "sha": upstream_minilm}
        for name in ("README.md", "hubforge.json", "results.json"):
            assert WRITE_TOKEN not in open(f"{path}/{name}").read()
    assert WRITE_TOKEN not in published_minilm[1]


def test_repos_are_tagged_with_the_upstream_sha(published_minilm, upstream_minilm):
    tags = HfApi(token=READ_TOKEN).list_repo_refs(f"{ORG}/all-minilm-l6-v2-onnx").tags
    assert [t.name for t in tags] == [f"upstream-{upstream_minilm}"]


def test_published_repo_is_one_commit_per_publish(published_minilm):
    api = HfApi(token=READ_TOKEN)
    commits = api.list_repo_commits(f"{ORG}/all-minilm-l6-v2-onnx")
    assert [c.title for c in commits][1:] == ["initial commit"]
    files = set(api.list_repo_files(f"{ORG}/all-minilm-l6-v2-onnx"))
    assert {"onnx/model.onnx", "onnx/model_fp16.onnx", "onnx/model_quantized.onnx", "tokenizer.json",
            "config.json", "modules.json", "1_Pooling/config.json", "README.md", "hubforge.json"} <= files


CLIENTS = {"onnxruntime", "sentence-transformers (onnx)", "optimum (ORTModel)", "transformers.js", "fastembed",
           "sentence-transformers (openvino)", "optimum-intel (OVModel)", "OpenVINO", "MNN", "llama-cpp-python"}


def test_every_published_file_loads_in_the_clients_its_card_names(published_minilm):
    """The consumer matrix: each file, from its repo's layout, in every client that claims it, on texts no stage
    used; every client installed (make install), every cell measured and agreeing with the file's own outputs."""
    results, *_ = published_minilm
    variants = [v for v in results["variants"] if v["passed"]]
    assert {c["client"] for v in variants for c in v["consumers"]} == CLIENTS
    for variant in variants:
        checks = variant["consumers"]
        assert checks, variant["name"]
        assert all(c["status"] == "pass" and c["agreement"] >= 0.999 and c["texts"] >= 30 for c in checks), checks
        assert all(abs(c["value"] - variant["fidelity"]["mean_cosine"]) < 0.02 for c in checks), checks
    clients = {v["name"]: {c["client"] for c in v["consumers"]} for v in variants}
    assert clients["q4"] >= {"transformers.js", "sentence-transformers (onnx)", "onnxruntime"}
    assert clients["onnx"] >= {"transformers.js", "fastembed", "optimum (ORTModel)"}
    assert clients["ov-int8"] == {"sentence-transformers (openvino)", "optimum-intel (OVModel)", "OpenVINO"}
    assert clients["qnn"] == clients["amd"] == {"onnxruntime"}
    for suffix in ("onnx", "openvino", "mnn", "qnn", "gguf"):
        card = Path(download(f"all-minilm-l6-v2-{suffix}"), "README.md").read_text()
        table = card.split("## Loads in", 1)[1].split("\n## ", 1)[0]
        header = next(line for line in table.splitlines() if line.startswith("| file |"))
        files = {c["file"] for v in variants if v["repo_suffix"] == suffix for c in v["consumers"]}
        assert all(f"| `{file}` | " in table for file in files), table
        assert header.count("|") - 2 == len({c["client"] for v in variants if v["repo_suffix"] == suffix
                                              for c in v["consumers"]})
    onnx_card = Path(download("all-minilm-l6-v2-onnx"), "README.md").read_text()
    assert "requires transformers < 4.58" in onnx_card


@pytest.mark.parametrize("suffix", ["qnn", "amd"])
def test_fixed_shape_repos_do_not_present_themselves_as_sentence_transformers_models(published_minilm, suffix):
    """sentence-transformers (and transformers.js, optimum) batch and pad to the longest text; the NPU graphs take
    one sequence of max_length tokens, so their repos carry no sentence-transformers configuration and are checked
    with the card's own recipe only."""
    files = set(HfApi(token=READ_TOKEN).list_repo_files(f"{ORG}/all-minilm-l6-v2-{suffix}"))
    assert {"onnx/model.onnx", "tokenizer.json", "config.json"} <= files
    assert not files & {"modules.json", "config_sentence_transformers.json", "sentence_bert_config.json"}
    assert not any(f.startswith("1_Pooling/") for f in files)
    card = ModelCard.load(Path(download(f"all-minilm-l6-v2-{suffix}"), "README.md"))
    assert card.data.library_name == "onnx" and "sentence-transformers" not in card.data.tags
    assert "carries no sentence-transformers configuration" in card.text
    variant = next(v for v in published_minilm[0]["variants"] if v["name"] == suffix)
    assert [c["client"] for c in variant["consumers"]] == ["onnxruntime"] and variant["fixed_shape"]
    onnx_files = set(HfApi(token=READ_TOKEN).list_repo_files(f"{ORG}/all-minilm-l6-v2-onnx"))
    assert {"modules.json", "config_sentence_transformers.json", "1_Pooling/config.json"} <= onnx_files


def test_swap_safety_of_every_embedding_file(published_minilm):
    """Queries of each file searched against an fp32 index (and the reverse) on the retrieval task: an fp32 or fp16
    file mixes exactly; every variant states its figures and verdict on its card."""
    results, *_ = published_minilm
    variants = {v["name"]: v for v in results["variants"] if v["passed"]}
    for variant in variants.values():
        swap = variant["swap_safety"]
        assert swap is not None and swap["queries"] == 300, variant["name"]
        fp32_ndcg = next(t for t in results["reference"]["tasks"] if t["task"] == "banking77-intent-retrieval")
        assert swap["ndcg_at_10_fp32"] == pytest.approx(fp32_ndcg["main_score"], abs=1e-6)
        assert swap["safe"] == (swap["retention"] >= swap["threshold"])
    for exact in ("onnx", "fp16", "ov"):
        swap = variants[exact]["swap_safety"]
        assert swap["retention"] > 0.998 and swap["top10_kept_artifact_queries"] > 0.97, (exact, swap)
    assert variants["int8"]["swap_safety"]["top10_kept_artifact_queries"] < 1.0  # quantization moves neighbours
    card = Path(download("all-minilm-l6-v2-onnx"), "README.md").read_text()
    section = card.split("## Mixing with an fp32 index", 1)[1].split("\n## ", 1)[0]
    for name in ("onnx", "fp16", "int8", "q4", "q4f16"):
        assert f"| {name} | " in section
    assert "| yes (" in section


def test_shared_publish_evaluates_every_artifact_with_mteb(published_minilm):
    results = published_minilm[0]
    reference = {t["task"]: t for t in results["reference"]["tasks"]}
    assert set(reference) == {"banking77-intent-retrieval", "banking77-intent-sts"}
    assert all(t["sample"] == 300 for t in reference.values())
    assert 0.3 < reference["banking77-intent-retrieval"]["main_score"] < 1.0
    assert 0.4 < reference["banking77-intent-sts"]["main_score"] < 1.0
    assert results["hardware"]["cores"] >= 1 and results["hardware"]["versions"]["onnxruntime"]
    for variant in results["variants"]:
        assert set(variant["retention"]) == set(reference), variant["name"]
        speed = variant["speed"]
        assert speed["p50_ms"] > 0 and speed["min_ms"] <= speed["p50_ms"] <= speed["p90_ms"] <= speed["p99_ms"]
        assert speed["shape"] == [1, 128] and speed["tokens_per_s"] > 0
    qdq = [v for v in results["variants"] if v["name"] in ("qnn", "amd")]
    assert qdq and all("axes freed" in v["evaluation_note"] for v in qdq)


def test_reference_scores_run_beside_the_builds_and_the_largest_formats_start_first(published_minilm):
    """The formats wait only for the reference's outputs; its task scores are the first step beside the builds,
    which start with the formats that take longest, so that two lanes finish together."""
    from hubforge.targets import get_target

    stages = [s["stage"] for s in published_minilm[0]["stages"]]
    assert stages[:4] == ["prepare", "reference", "export", "evaluate fp32"], stages
    builds = [s.removeprefix("build ") for s in stages if s.startswith("build ") and "#" not in s]
    workloads = [get_target(name).workload for name in builds]
    assert workloads == sorted(workloads, reverse=True) and len(set(workloads)) > 1, builds
