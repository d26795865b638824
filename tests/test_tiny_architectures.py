"""Every task kind through publish for every format, on tiny random models seeded into the local Hub.

The real MiniLM carries the real-quality tests; these check the CLS-pooling and cross-encoder code paths
numerically against PyTorch and that every format converts and runs for each architecture.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from huggingface_hub import snapshot_download

from conftest import ALL_FORMATS, READ_TOKEN, WRITE_TOKEN, cosine, invoke

TEXTS = ["How do I activate my card?", "My transfer was declined", "What is the exchange rate for euros?",
         "I lost my card yesterday", "Can I change my PIN at an ATM?"]


def make_tiny_model(folder, task: str):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    from hubforge.devhub.seed import bundled_minilm

    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, num_labels=1, initializer_range=0.3)
    torch.manual_seed(0)
    model = (BertForSequenceClassification if task == "cross-encoder" else BertModel)(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# tiny test model\n")
    if task == "sentence-embedding":
        (folder / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(
            {"word_embedding_dimension": 64, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    return model, tokenizer


KINDS = {
    "tiny-bge": {"task": "sentence-embedding", "pooling": "cls", "normalize": True,
                 "query_prefix": "Represent this sentence for searching relevant passages: ",
                 "evaluation": {"retrieval": "banking77", "retrieval_queries": 20, "timed_runs": 5}},
    "tiny-reranker": {"task": "cross-encoder", "normalize": False,
                      "evaluation": {"reranking": "banking77", "timed_runs": 5}},
    "tiny-ptbert": {"task": "feature-extraction", "pooling": "mean", "normalize": False,
                    "calibration_texts": "portuguese",
                    "evaluation": {"fidelity_texts": "portuguese", "fidelity_samples": 32, "timed_runs": 5}},
}


@pytest.fixture(scope="session")
def tiny_published(api, session_dir):
    """Seed each tiny model upstream, then `hubforge publish` it to every format with a spec file."""
    from hubforge.devhub.seed import seed_folder

    outcomes = {}
    for name, fields in KINDS.items():
        folder = session_dir / "tiny" / name
        folder.mkdir(parents=True)
        model, tokenizer = make_tiny_model(folder, fields["task"])
        seed_folder(api, f"tiny-org/{name}", folder)
        spec = {"id": name, "source": {"repo": f"tiny-org/{name}"}, "max_length": 32,
                "formats": {f: {} for f in ALL_FORMATS.split(",")}, **fields}
        spec_path = session_dir / "tiny" / f"{name}.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        out = session_dir / "tiny-out"
        result = invoke("publish", str(spec_path), "--out", str(out), env={"HF_TOKEN": WRITE_TOKEN})
        assert result.exit_code == 0, result.output
        outcomes[name] = (model, tokenizer, json.loads((out / f"{name}.results.json").read_text()))
    return outcomes


@pytest.mark.parametrize("name", list(KINDS))
def test_every_format_converts_runs_and_is_gated(tiny_published, name):
    results = tiny_published[name][2]
    variants = {v["name"]: v for v in results["variants"]}
    assert set(variants) == set(ALL_FORMATS.split(","))
    for fmt in ("onnx", "fp16", "ov"):
        assert variants[fmt]["passed"], variants[fmt]["attempts"]
    for variant in variants.values():
        assert variant["attempts"], variant
        last = variant["attempts"][-1]
        assert last["fidelity"] is not None
        assert variant["passed"] == last["gate"].startswith("pass")


def test_cls_pooling_matches_pytorch(tiny_published):
    import torch
    from sentence_transformers import SentenceTransformer

    model, tokenizer, _ = tiny_published["tiny-bge"]
    with torch.no_grad():
        enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
        cls = model(**enc).last_hidden_state[:, 0].numpy()
    cls /= np.linalg.norm(cls, axis=1, keepdims=True)
    path = snapshot_download("hubforge/tiny-bge-onnx", token=READ_TOKEN)
    onnx_model = SentenceTransformer(path, backend="onnx", device="cpu")
    assert cosine(onnx_model.encode(TEXTS), cls).min() >= 0.9999


def test_cross_encoder_scores_match_pytorch(tiny_published):
    import torch
    from sentence_transformers import CrossEncoder

    model, tokenizer, results = tiny_published["tiny-reranker"]
    pairs = [(TEXTS[0], t) for t in TEXTS]
    with torch.no_grad():
        enc = tokenizer([p[0] for p in pairs], [p[1] for p in pairs], padding=True, return_tensors="pt")
        logits = model(**enc).logits[:, 0].numpy()
    path = snapshot_download("hubforge/tiny-reranker-onnx", token=READ_TOKEN)
    scores = CrossEncoder(path, backend="onnx", device="cpu", activation_fn=torch.nn.Identity()).predict(pairs)
    np.testing.assert_allclose(scores, logits, atol=1e-4)
    onnx_variant = next(v for v in results["variants"] if v["name"] == "onnx")
    assert onnx_variant["fidelity"]["spearman"] >= 0.999
    assert "rerank_mrr@10" in onnx_variant["quality"]


def test_feature_extraction_keeps_hidden_states(tiny_published):
    import onnxruntime as ort
    import torch

    model, tokenizer, _ = tiny_published["tiny-ptbert"]
    with torch.no_grad():
        enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
        hidden = model(**enc).last_hidden_state.numpy()
    path = snapshot_download("hubforge/tiny-ptbert-onnx", token=READ_TOKEN)
    session = ort.InferenceSession(f"{path}/onnx/model.onnx", providers=["CPUExecutionProvider"])
    out = session.run(None, {k: v.numpy() for k, v in enc.items()})[0]
    np.testing.assert_allclose(out, hidden, atol=1e-4)
