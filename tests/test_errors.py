"""Bad input fails with a clear message and a hint, and nothing reaches the Hub."""

from __future__ import annotations

import pytest

from conftest import READ_TOKEN, WRITE_TOKEN, invoke


def commit_posts(devhub) -> int:
    return sum(1 for method, path, _ in devhub.state.request_log if method == "POST" and "/commit/" in path)


def write_spec(tmp_path, **overrides) -> str:
    import yaml

    spec = {"id": "tiny", "source": {"repo": "sentence-transformers/all-MiniLM-L6-v2"},
            "task": "sentence-embedding", "formats": {"onnx": {}}}
    spec.update(overrides)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_unknown_format_lists_the_valid_ones(devhub):
    result = invoke("publish", "all-minilm-l6-v2", "--formats", "onnx,tflite", env={"HF_TOKEN": WRITE_TOKEN})
    assert result.exit_code == 2
    assert "unknown format(s): tflite" in result.output
    from hubforge.targets import format_names

    assert f"valid formats: {', '.join(format_names())}" in result.output


def test_missing_spec_names_the_known_ones(devhub):
    before = commit_posts(devhub)
    result = invoke("publish", "no-such-model", "--dry-run")
    assert result.exit_code == 1
    assert "no spec named 'no-such-model'" in result.output
    assert "all-minilm-l6-v2" in result.output
    assert commit_posts(devhub) == before


def test_invalid_field_names_file_field_and_fix(tmp_path):
    path = write_spec(tmp_path, pooling="median", max_length=3)
    result = invoke("specs", "validate", path)
    assert result.exit_code == 1
    assert "tiny.yaml: invalid spec" in result.output
    assert "pooling: Input should be 'mean', 'cls'" in result.output
    assert "max_length: Input should be greater than or equal to 8" in result.output
    assert "hint:" in result.output


def test_unknown_key_and_unknown_format_in_spec(tmp_path):
    result = invoke("specs", "validate", write_spec(tmp_path, poolnig="mean"))
    assert result.exit_code == 1
    assert "poolnig: Extra inputs are not permitted" in result.output
    result = invoke("specs", "validate", write_spec(tmp_path, formats={"onnx": {}, "coreml": {}}))
    assert result.exit_code == 1
    assert "formats.coreml: unknown format" in result.output and "valid formats: onnx, fp16" in result.output


def test_bad_format_option_is_a_spec_error(tmp_path):
    path = write_spec(tmp_path, formats={"qnn": {"activation_type": "int4"}})
    result = invoke("specs", "validate", path)
    assert result.exit_code == 1
    assert "formats" in result.output and "activation_type" in result.output


def test_unknown_upstream_repo_pushes_nothing(devhub, tmp_path):
    before = commit_posts(devhub)
    path = write_spec(tmp_path, source={"repo": "nobody/does-not-exist"})
    result = invoke("publish", path, env={"HF_TOKEN": WRITE_TOKEN})
    assert result.exit_code == 1
    assert "upstream model nobody/does-not-exist was not found" in result.output
    assert commit_posts(devhub) == before


@pytest.mark.parametrize("token, message", [
    ("hf_wrong_token", "the Hub rejected the token"),
    (READ_TOKEN, "has the read role"),
])
def test_wrong_token_fails_before_any_work(devhub, token, message):
    before = commit_posts(devhub)
    result = invoke("publish", "all-minilm-l6-v2", "--formats", "onnx", env={"HF_TOKEN": token})
    assert result.exit_code == 1
    assert message in result.output
    assert token not in result.output
    assert commit_posts(devhub) == before


def test_missing_token(devhub):
    result = invoke("publish", "all-minilm-l6-v2", "--formats", "onnx", env={"HF_TOKEN": ""})
    assert result.exit_code == 1
    assert "no Hub token" in result.output


def test_local_source_must_be_a_model_dir(tmp_path):
    result = invoke("publish", "all-minilm-l6-v2", "--formats", "onnx", "--source", str(tmp_path), "--dry-run")
    assert result.exit_code == 1
    assert "is not a model directory" in result.output
