"""GGUF for llama.cpp: the real MiniLM's GGUF repo from the shared publish, run in llama-cpp-python straight from the
local Hub, and the MNN card's A/B against it (encoders llama.cpp cannot run: test_architectures.py)."""

from __future__ import annotations

import json

import numpy as np
from huggingface_hub import HfApi, ModelCard, hf_hub_download

from conftest import READ_TOKEN, cosine
from hubforge.targets.q4 import WEIGHT_4BIT_GATE

ORG = "hubforge"
FILES = {"gguf": "all-MiniLM-L6-v2-f16.gguf", "gguf-q8": "all-MiniLM-L6-v2-Q8_0.gguf",
         "gguf-q4": "all-MiniLM-L6-v2-Q4_K_M.gguf"}


def variants(published_minilm) -> dict:
    return {v["name"]: v for v in published_minilm[0]["variants"]}


def test_minilm_gguf_files_pass_their_gates_through_llama_cpp(published_minilm):
    found = variants(published_minilm)
    assert found["gguf"]["passed"] and found["gguf"]["fidelity"]["mean_cosine"] >= 0.999
    assert found["gguf-q8"]["passed"] and found["gguf-q8"]["fidelity"]["mean_cosine"] >= 0.99
    q4 = found["gguf-q4"]
    assert q4["passed"] or q4["gate"].startswith("fail"), q4
    gate = q4["gate_thresholds"]  # the 4-bit gate, which the file meets where it passed
    assert gate["min_mean_cosine"] == WEIGHT_4BIT_GATE.min_mean_cosine
    assert not q4["passed"] or q4["fidelity"]["mean_cosine"] >= gate["min_mean_cosine"]
    for name, file in FILES.items():
        assert found[name]["files"] == [file] and found[name]["runtime"] == "llama.cpp"
        details = found[name]["details"]
        assert details["tokenizer_agreement"] == 1.0 and details["tokenizer_texts"] == 128
    assert set(found["gguf"]["details"]["tensor_types"]) == {"F16", "F32"}
    assert found["gguf-q8"]["details"]["tensor_types"]["Q8_0"] > 30
    # MiniLM's rows are 384 wide, not a multiple of 256: llama.cpp's Q4_K_M falls back in most tensors, and the
    # card lists the file's real types
    assert "Q4_K" in found["gguf-q4"]["details"]["tensor_types"]


def test_gguf_repo_runs_in_llama_cpp_from_the_hub(published_minilm, minilm_reference):
    from llama_cpp import Llama

    texts, reference = minilm_reference
    api = HfApi(token=READ_TOKEN)
    assert set(FILES.values()) <= set(api.list_repo_files(f"{ORG}/all-minilm-l6-v2-gguf"))
    for name, minimum in (("gguf", 0.999), ("gguf-q8", 0.99)):
        path = hf_hub_download(f"{ORG}/all-minilm-l6-v2-gguf", FILES[name], token=READ_TOKEN)
        llm = Llama(path, embedding=True, verbose=False)
        got = np.asarray(llm.embed(texts, normalize=True))
        llm.close()
        assert cosine(got, reference).mean() >= minimum, name


def test_gguf_card_states_tokenizer_agreement_and_usage(published_minilm):
    card = ModelCard.load(f"{ORG}/all-minilm-l6-v2-gguf", token=READ_TOKEN)
    assert card.data.library_name == "gguf" and card.data.base_model_relation == "quantized"
    assert "llama.cpp tokenizes 100.0% of the 128 fidelity texts" in card.text
    assert "Tensor types in the file: F16 × 38, F32 × 63." in card.text
    assert "`llama-server -m all-MiniLM-L6-v2-f16.gguf --embedding`" in card.text
    assert "FROM ./all-MiniLM-L6-v2-f16.gguf" in card.text
    assert "| `all-MiniLM-L6-v2-Q8_0.gguf` |" in card.text  # its row in "Loads in"
    checks = [c for v in variants(published_minilm).values() if v["name"] in FILES for c in v["consumers"]]
    assert {c["client"] for c in checks} == {"llama-cpp-python"}
    assert all(c["status"] == "pass" and c["agreement"] >= 0.999 for c in checks), checks


def test_mnn_card_compares_mnn_against_gguf(published_minilm):
    card = ModelCard.load(f"{ORG}/all-minilm-l6-v2-mnn", token=READ_TOKEN).text
    assert "### MNN against GGUF (llama.cpp)" in card
    table = card.split("### MNN against GGUF (llama.cpp)")[1].split("\n\n")[2].splitlines()[2:]
    rows = {line.split(" | ")[0].strip("| "): line for line in table}
    assert list(rows) == ["fp32 (PyTorch)", "mnn", "gguf", "gguf-q8", "gguf-q4"]
    found = variants(published_minilm)
    for name in ("mnn", "gguf-q8"):
        retrieval = next(t for t in found[name]["tasks"] if t["task_type"] == "Retrieval")
        assert f"| {retrieval['scores']['ndcg_at_10']:.4f} | {retrieval['scores']['recall_at_10']:.4f} |" in rows[name]
        assert f"| {found[name]['fidelity']['mean_cosine']:.4f} |" in rows[name]
        assert f"{found[name]['speed']['p50_ms']:.2f} ms" in rows[name]
    assert "MNN against GGUF" not in ModelCard.load(f"{ORG}/all-minilm-l6-v2-gguf", token=READ_TOKEN).text


def test_tokenizer_agreement_follows_the_models_normalizer(tmp_path):
    """The file records what the model's tokenizer does to case: llama.cpp lowercases unless told otherwise, so a
    cased model's file says so and llama.cpp then gives the model's own ids on mixed-case texts; a file that
    lowercases where the model does not gives other ids, and the recorded share shows it."""
    from tiny_models import make_model

    from hubforge.runtimes import ModelIO
    from hubforge.targets.gguf import GgufTarget, write_f16

    folder = tmp_path / "cased"
    folder.mkdir()
    make_model(folder, "bert", "sentence-embedding", "mean")
    texts = ["How do I activate my card?", "WHY IS MY CARD BLOCKED", "Überweisung nach Zürich", "my PIN"]
    io = ModelIO(folder, "sentence-embedding", "mean", True, 32)
    target = GgufTarget()

    def agreement(gguf_file) -> float:
        files = {gguf_file.name: gguf_file}
        return target.details(target.encoder(files, io), files, texts)["tokenizer_agreement"]

    lowercased = write_f16(io, tmp_path / "uncased-f16.gguf")  # MiniLM's tokenizer lowercases
    assert agreement(lowercased) == 1.0
    for name in ("tokenizer.json", "tokenizer_config.json"):  # the same vocabulary, cased
        config = json.loads((folder / name).read_text())
        (config["normalizer"] if name == "tokenizer.json" else config).update(
            {"lowercase": False, "strip_accents": False} if name == "tokenizer.json" else {"do_lower_case": False})
        (folder / name).write_text(json.dumps(config))
    assert agreement(write_f16(io, tmp_path / "cased-f16.gguf")) == 1.0
    assert agreement(lowercased) < 0.5  # the uncased file against the cased model: capitals read differently
