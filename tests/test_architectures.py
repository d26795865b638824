"""Any encoder a user brings: tiny random models of eight architectures, as sentence embedders (mean or CLS
pooling) and as cross-encoders, each through every format with `hubforge publish --source DIR --dry-run`.

Nothing may end in a traceback; onnx, fp16, ov and mnn must publish for every model, and every other format
either publishes or is listed with its reason. Conversions are shared through one session fixture.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import cosine, invoke
from tiny_models import ARCHITECTURES, make_model
from hubforge.clients import run_st5_onnx

HEADS = ("sentence-embedding", "cross-encoder")
ALWAYS_PUBLISHED = ("onnx", "fp16", "ov", "mnn")
# the consumer check (each file in each client its card names) costs seconds of client start-up per publish: it runs
# for these, the others publish with --no-consumers (CI time)
CONSUMERS_CHECKED = {("bert", "sentence-embedding"), ("bert", "cross-encoder"), ("modernbert", "sentence-embedding")}
TEXTS = ["How do I activate my card?", "My transfer was declined", "What is the exchange rate for euros?",
         "I lost my card yesterday", "Can I change my PIN at an ATM?"]


def publish_dry_run(session_dir, name: str, folder, fields: dict, formats: str, *, search_builds: int | None = None,
                    consumers: bool = True):
    """`search_builds`: the bound on each format's accuracy-aware search (default: the formats' own)."""
    small_calibration = {"qnn": {"calibration_samples": 16}, "amd": {"calibration_samples": 16},
                         "ov-int8": {"calibration_samples": 16}}  # CI time
    searched = {f: {"search_builds": search_builds} for f in ("int8", "qnn", "amd", "ov-int8")} \
        if search_builds is not None else {}
    spec = {"id": name, "source": {"repo": f"tiny-org/{name}"}, "max_length": 32,
            "formats": {f: {**small_calibration.get(f, {}), **searched.get(f, {})} for f in formats.split(",")},
            **fields}
    spec_path = session_dir / "arch" / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = session_dir / "arch-out"
    result = invoke("publish", str(spec_path), "--source", str(folder), "--dry-run", "--out", str(out),
                    "--no-quality", "--no-speed", *([] if consumers else ["--no-consumers"]))
    return result, json.loads((out / f"{name}.results.json").read_text()), out


@pytest.fixture(scope="session")
def all_formats() -> str:
    from hubforge.targets import format_names

    return ",".join(format_names())


@pytest.fixture(scope="session")
def architectures_published(session_dir, all_formats):
    """Each (architecture, head) published to every format once; embedders alternate mean and CLS pooling."""
    outcomes = {}
    for i, model_type in enumerate(ARCHITECTURES):
        for head in HEADS:
            name = f"tiny-{model_type}-{'st' if head == 'sentence-embedding' else 'ce'}"
            folder = session_dir / "arch" / name
            folder.mkdir(parents=True)
            pooling = ("mean", "cls")[i % 2]
            model, tokenizer = make_model(folder, model_type, head, pooling)
            fields = {"task": head, "calibration_texts": "banking77",
                      "evaluation": {"fidelity_samples": 32, "timed_runs": 5}}
            # the BERTs search as users' models do; the others briefly (ranking, then 1 and 2 nodes kept): CI time
            result, results, out = publish_dry_run(session_dir, name, folder, fields, all_formats,
                                                   search_builds=None if model_type == "bert" else 2,
                                                   consumers=(model_type, head) in CONSUMERS_CHECKED)
            outcomes[(model_type, head)] = (result, results, out, folder, model, tokenizer)
    return outcomes


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_architecture_publishes_every_format_or_says_why(architectures_published, all_formats, model_type, head):
    result, results, *_ = architectures_published[(model_type, head)]
    variants = {v["name"]: v for v in results["variants"]}
    assert result.exit_code in (0, 3), result.output
    assert list(variants) == all_formats.split(",")
    for fmt in ALWAYS_PUBLISHED:
        assert variants[fmt]["passed"], (fmt, variants[fmt]["gate"], variants[fmt]["attempts"])
    for variant in variants.values():
        assert variant["attempts"]
        if not variant["passed"]:
            assert variant["gate"].startswith(("fail", "failed", "skipped")), variant
            assert f"not published: {variant['name']}: " in result.output
            assert all(a["error"] or a["fidelity"] or a["skipped"] for a in variant["attempts"])
    assert result.exit_code == (0 if all(v["passed"] for v in variants.values()) else 3)


def test_gguf_runs_bert_embedders_and_refuses_the_rest_with_the_reason(architectures_published):
    """llama.cpp runs a BERT embedder from this writer's file; a cross-encoder (llama.cpp feeds no second token
    type) and the other architectures are skipped unbuilt, each with its reason."""
    for (model_type, head), (_, results, *_) in architectures_published.items():
        found = {v["name"]: v for v in results["variants"] if v["name"].startswith("gguf")}
        assert set(found) == {"gguf", "gguf-q8", "gguf-q4"}
        for name, variant in found.items():
            if (model_type, head) == ("bert", "sentence-embedding"):
                assert variant["passed"], variant
                assert variant["details"]["tokenizer_agreement"] == 1.0
            elif head == "cross-encoder":
                assert "adds only the first token type's embedding" in variant["gate"], variant["gate"]
            else:
                assert f"llama.cpp runs no '{model_type}' encoder" in variant["gate"], variant["gate"]


@pytest.mark.parametrize("model_type", ["distilbert", "mpnet", "modernbert"])
def test_models_without_token_type_ids_run_in_every_runtime(architectures_published, model_type):
    """These forward()s reject token_type_ids; every runtime is fed exactly what its graph takes."""
    _, results, *_ = architectures_published[(model_type, "sentence-embedding")]
    onnx = next(v for v in results["variants"] if v["name"] == "onnx")
    assert onnx["fidelity"]["mean_cosine"] > 0.9999
    assert not any("token_type_ids" in (a["error"] or "") for v in results["variants"] for a in v["attempts"])


def test_int8_fusion_follows_the_architecture(architectures_published):
    """ONNX Runtime's optimizer fuses BERT-family graphs; the chosen fusion is recorded in the config."""
    configs = {model_type: next(v for v in results["variants"] if v["name"] == "int8")["attempts"][0]["config"]
               for (model_type, head), (_, results, *_) in architectures_published.items() if head == HEADS[0]}
    assert configs["bert"]["fusion"] == "bert" and configs["roberta"]["fusion"] == "bert"


@pytest.mark.parametrize("model_type", ["bert", "mpnet"])
def test_published_onnx_embeds_like_sentence_transformers(architectures_published, model_type):
    """The dry-run repo loads in sentence-transformers' ONNX backend (version 5, in its own environment: it needs
    optimum-onnx) and matches the PyTorch pipeline."""
    from sentence_transformers import SentenceTransformer

    _, _, out, folder, *_ = architectures_published[(model_type, "sentence-embedding")]
    repo = out / "hubforge" / f"tiny-{model_type}-st-onnx"
    reference = SentenceTransformer(str(folder), device="cpu").encode(TEXTS)
    published = run_st5_onnx({"client": "sentence-transformers", "path": str(repo), "texts": TEXTS})
    assert cosine(published, reference).min() >= 0.9999


def test_cross_encoder_scores_match_pytorch(architectures_published):
    import torch

    _, results, out, folder, model, tokenizer = architectures_published[("electra", "cross-encoder")]
    pairs = [(TEXTS[0], t) for t in TEXTS]
    with torch.no_grad():
        enc = tokenizer([p[0] for p in pairs], [p[1] for p in pairs], padding=True, return_tensors="pt")
        logits = model(**enc).logits[:, 0].numpy()
    repo = out / "hubforge" / "tiny-electra-ce-onnx"
    scores = run_st5_onnx({"client": "cross-encoder", "path": str(repo), "pairs": pairs})
    np.testing.assert_allclose(scores, logits, atol=1e-4)
    onnx_variant = next(v for v in results["variants"] if v["name"] == "onnx")
    assert onnx_variant["fidelity"]["spearman"] >= 0.999


def test_dense_layer_and_max_pooling_publish_with_all_modules(session_dir):
    """A sentence-transformers model whose own chain (max pooling, a Dense layer, Normalize) is the reference,
    and whose published repo carries every module folder it needs."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

    folder = session_dir / "arch" / "tiny-dense"
    folder.mkdir(parents=True)
    make_model(folder / "hf", "bert", "feature-extraction", "max")
    transformer = Transformer(str(folder / "hf"), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, Pooling(64, pooling_mode="max"),
                                         Dense(64, 32, activation_function=__import__("torch").nn.Tanh()),
                                         Normalize()], device="cpu")
    model.save(str(folder / "st"))
    # sentence-transformers 6 names its modules by new paths that version 5 (the ONNX client below) cannot import;
    # the classic names, which most Hub models carry, load in both
    modules = json.loads((folder / "st" / "modules.json").read_text())
    for module in modules:
        module["type"] = "sentence_transformers.models." + module["type"].rsplit(".", 1)[1]
    (folder / "st" / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "st" / "README.md").write_text("---\nlicense: mit\n---\n# tiny dense model\n")
    result, results, out = publish_dry_run(session_dir, "tiny-dense", folder / "st",
                                           {"task": "sentence-embedding"}, "onnx,ov")
    assert result.exit_code == 0, result.output
    repo = out / "hubforge" / "tiny-dense-onnx"
    dense = [p.relative_to(repo).as_posix() for p in repo.rglob("*") if "Dense" in p.as_posix()]
    assert any(p.endswith(("model.safetensors", "pytorch_model.bin")) for p in dense), dense
    reference = model.encode(TEXTS)
    assert reference.shape[1] == 32
    onnx = run_st5_onnx({"client": "sentence-transformers", "path": str(out / "hubforge" / "tiny-dense-onnx"),
                         "texts": TEXTS})
    assert cosine(onnx, reference).min() >= 0.9999
    openvino = SentenceTransformer(str(out / "hubforge" / "tiny-dense-openvino"), backend="openvino", device="cpu")
    assert cosine(openvino.encode(TEXTS), reference).min() >= 0.995  # fp16 weights


def test_contradicting_pooling_is_an_error_before_converting(tmp_path):
    from hubforge.devhub.seed import bundled_minilm

    from hubforge.spec import spec_path

    spec = yaml.safe_load(spec_path("all-minilm-l6-v2").read_text())
    spec["pooling"] = "cls"
    path = tmp_path / "all-minilm-l6-v2.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = invoke("publish", str(path), "--source", str(bundled_minilm()), "--dry-run", "--out",
                    str(tmp_path / "out"), "--no-quality", "--no-speed")
    assert result.exit_code == 1
    assert "pooling: cls contradicts the model's own pooling_mode 'mean'" in result.output
    assert "export:" not in result.output and not (tmp_path / "out" / "hubforge").exists()  # only the run's log


def test_custom_code_is_refused_unless_the_spec_allows_it(tmp_path):
    from hubforge.devhub.seed import bundled_minilm

    custom = tmp_path / "custom"
    custom.mkdir()
    for path in bundled_minilm().iterdir():
        if path.is_file() and path.suffix in (".json", ".txt"):
            (custom / path.name).write_bytes(path.read_bytes())
    config = json.loads((custom / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (custom / "config.json").write_text(json.dumps(config))
    spec = {"id": "custom", "source": {"repo": "tiny-org/custom"}, "task": "feature-extraction",
            "formats": {"onnx": {}}}
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = invoke("publish", str(path), "--source", str(custom), "--dry-run", "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "runs custom code (AutoModel in its auto_map)" in result.output
    assert "trust_remote_code: true" in result.output


def _registered_formats() -> list[str]:
    from hubforge.targets import format_names

    return format_names()


@pytest.mark.parametrize("fmt", _registered_formats())
def test_each_format_builds_loads_and_passes_its_gate_on_a_tiny_bert(architectures_published, fmt):
    """Per target: the tiny BERT embedder's artifact of this format was built, opened in its runtime, measured
    and kept by its gate."""
    _, results, out, *_ = architectures_published[("bert", "sentence-embedding")]
    variant = next(v for v in results["variants"] if v["name"] == fmt)
    assert variant["passed"], variant["attempts"]
    assert variant["fidelity"]["mean_cosine"] >= variant["gate_thresholds"]["min_mean_cosine"]
    assert variant["files"] and all((out / "hubforge" / f"tiny-bert-st-{variant['repo_suffix']}" / f).exists()
                                    for f in variant["files"])
