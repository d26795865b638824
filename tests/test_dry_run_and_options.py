"""--dry-run with --source (a user's own model folder), format options, specs listing, the license rule."""

from __future__ import annotations

import json
import shutil

import yaml

from conftest import WRITE_TOKEN, invoke


def test_dry_run_writes_repos_from_a_local_model_and_pushes_nothing(devhub, tmp_path):
    from hubforge.devhub.seed import bundled_minilm

    spec = {"id": "my-finetune", "source": {"repo": "sentence-transformers/all-MiniLM-L6-v2"},
            "task": "sentence-embedding", "formats": {"onnx": {}, "ov": {"static_shape": True}},
            "evaluation": {"fidelity_samples": 16}, "publish": {"org": "me"}}
    spec_path = tmp_path / "my-finetune.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    posts = len([1 for m, p, _ in devhub.state.request_log if m == "POST"])
    result = invoke("publish", str(spec_path), "--source", str(bundled_minilm()), "--dry-run", "--no-quality",
                    "--no-speed", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert len([1 for m, p, _ in devhub.state.request_log if m == "POST"]) == posts
    onnx_repo = tmp_path / "out" / "me" / "my-finetune-onnx"
    ov_repo = tmp_path / "out" / "me" / "my-finetune-openvino"
    assert (onnx_repo / "onnx" / "model.onnx").exists() and (onnx_repo / "tokenizer.json").exists()
    assert (ov_repo / "openvino" / "openvino_model.xml").exists() and (ov_repo / "README.md").exists()

    import openvino as ov

    model = ov.Core().read_model(str(ov_repo / "openvino" / "openvino_model.xml"))
    assert all(p.get_partial_shape().is_static for p in model.inputs)
    assert [d.get_length() for d in model.inputs[0].get_partial_shape()] == [1, 128]
    # a static shape is an option of the format, so the repo is a plain OpenVINO one, checked with the runtime alone
    assert not (ov_repo / "modules.json").exists() and (onnx_repo / "modules.json").exists()
    results = json.loads((tmp_path / "out" / "my-finetune.results.json").read_text())
    ov_variant = next(v for v in results["variants"] if v["name"] == "ov")
    assert ov_variant["fixed_shape"] and [(c["client"], c["status"]) for c in ov_variant["consumers"]] == \
        [("OpenVINO", "pass")]


def test_specs_list_shows_every_seed_family():
    result = invoke("specs", "list")
    assert result.exit_code == 0
    for name in ("all-minilm-l6-v2", "bge-small-en-v1.5", "bge-large-en-v1.5", "ms-marco-MiniLM-L-6-v2",
                 "bert-base-portuguese-cased"):
        assert name in result.stdout
    assert invoke("specs", "validate").exit_code == 0


def test_upstream_without_license_is_refused(api, devhub, tmp_path):
    from hubforge.devhub.seed import bundled_minilm, seed_folder

    folder = tmp_path / "nolicense"
    shutil.copytree(bundled_minilm(), folder)
    (folder / "README.md").write_text("# a model card without metadata\n")
    seed_folder(api, "nolicense-org/minilm", folder)
    spec = {"id": "nolicense", "source": {"repo": "nolicense-org/minilm"}, "task": "sentence-embedding",
            "formats": {"onnx": {}}, "evaluation": {"fidelity_samples": 16}}
    spec_path = tmp_path / "nolicense.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    commits = sum(1 for m, p, _ in devhub.state.request_log if m == "POST" and "hubforge/nolicense" in p)
    result = invoke("publish", str(spec_path), "--no-quality", "--no-speed", "--no-consumers",
                    env={"HF_TOKEN": WRITE_TOKEN})
    assert result.exit_code == 1
    assert "declares no license" in result.output
    assert sum(1 for m, p, _ in devhub.state.request_log if m == "POST" and "hubforge/nolicense" in p) == commits
