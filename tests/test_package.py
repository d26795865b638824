"""hubforge as a user installs it: the wheel, built here and installed into a fresh directory, run from outside the
checkout; a model id or folder is all it needs (the spec derived from the model's own files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import MINILM_REPO, WRITE_TOKEN, invoke
from tiny_models import make_model

CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def installed_wheel(session_dir) -> Path:
    """The wheel `pip wheel .` builds, installed (without dependencies: the test venv has them) into its own
    directory."""
    wheels, target = session_dir / "wheel", session_dir / "installed"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(CHECKOUT)], check=True,
                   capture_output=True)
    wheel = next(wheels.glob("hubforge-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True)
    return target


def run_installed(target: Path, cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": str(target), **(env or {})}
    environment.pop("HUBFORGE_SPECS_DIR", None)
    return subprocess.run([sys.executable, "-m", "hubforge", *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=1200)


@pytest.fixture(scope="session")
def tiny_cls_model(session_dir) -> Path:
    """A sentence-transformers model folder with CLS pooling (not the spec default) and no spec anywhere."""
    folder = session_dir / "package" / "tiny-cls-embedder"
    folder.mkdir(parents=True)
    make_model(folder, "bert", "sentence-embedding", "cls")
    return folder


def test_the_wheel_carries_specs_and_templates(installed_wheel, session_dir):
    outside = session_dir / "package" / "elsewhere"
    probe = run_installed(installed_wheel, outside, "specs", "list")
    assert probe.returncode == 0, probe.stderr
    for spec_id in ("all-minilm-l6-v2", "bge-small-en-v1.5", "ms-marco-MiniLM-L-6-v2"):
        assert spec_id in probe.stdout
    assert "bundled" in probe.stdout
    where = subprocess.run([sys.executable, "-c", "import hubforge; print(hubforge.__file__)"], cwd=outside,
                           env={**os.environ, "PYTHONPATH": str(installed_wheel)}, capture_output=True, text=True)
    assert where.stdout.startswith(str(installed_wheel))
    assert (installed_wheel / "hubforge" / "templates" / "card.md.j2").exists()
    assert (installed_wheel / "hubforge" / "templates" / "formats" / "qnn.md.j2").exists()


def test_a_plain_install_leaves_the_local_hub_out(installed_wheel, session_dir):
    """pip installs exactly the wheel's unconditional Requires-Dist: the local Hub's server (fastapi, uvicorn,
    python-multipart) comes only with the `devhub` extra, and without it the server's commands say so in one line
    while the rest of the CLI runs."""
    from email.parser import Parser

    metadata = next(installed_wheel.glob("hubforge-*.dist-info")) / "METADATA"
    requires = Parser().parsestr(metadata.read_text()).get_all("Requires-Dist")
    unconditional = {r.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower().replace("_", "-")
                     for r in requires if "extra ==" not in r}
    assert {"torch", "onnxruntime", "huggingface-hub"} <= unconditional
    assert not {"fastapi", "uvicorn", "python-multipart", "starlette"} & unconditional, unconditional
    devhub = {r.split(">")[0].strip().lower() for r in requires if 'extra == "devhub"' in r}
    assert devhub == {"fastapi", "uvicorn", "python-multipart"}, devhub

    without = session_dir / "package" / "no-fastapi"  # fastapi made unimportable, as where it is not installed
    without.mkdir(parents=True)
    (without / "fastapi.py").write_text("raise ModuleNotFoundError(\"No module named 'fastapi'\", name='fastapi')\n")
    env = {"PYTHONPATH": f"{without}{os.pathsep}{installed_wheel}"}
    served = run_installed(installed_wheel, session_dir / "package" / "elsewhere", "devhub", "serve", env=env)
    assert served.returncode == 1, served.stderr
    assert "error: the local Hub needs fastapi, which a plain install of hubforge leaves out" in served.stderr
    assert "hint: pip install 'hubforge[devhub]'" in served.stderr and "Traceback" not in served.stderr
    listed = run_installed(installed_wheel, session_dir / "package" / "elsewhere", "specs", "list", env=env)
    assert listed.returncode == 0 and "all-minilm-l6-v2" in listed.stdout, listed.stderr


def test_a_users_spec_directory_comes_first(tmp_path):
    from hubforge.spec import available_specs, load_spec

    own = tmp_path / "model_specs"
    own.mkdir()
    spec = yaml.safe_load(load_spec("all-minilm-l6-v2").model_dump_json())
    (own / "all-minilm-l6-v2.yaml").write_text(yaml.safe_dump({**spec, "max_length": 64}))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        found = available_specs()
        assert found["all-minilm-l6-v2"].origin == "./model_specs"
        assert found["bge-small-en-v1.5"].origin == "bundled"
        assert load_spec("all-minilm-l6-v2").max_length == 64
    finally:
        os.chdir(cwd)


def test_derived_spec_follows_the_models_files(tiny_cls_model, tmp_path):
    """`specs new` reads pooling, normalization and max length from the folder; the YAML loads back unchanged."""
    from hubforge.derive import derive_spec
    from hubforge.spec import load_spec
    from hubforge.targets import format_names

    result = invoke("specs", "new", str(tiny_cls_model), "-o", str(tmp_path / "derived.yaml"))
    assert result.exit_code == 0, result.output
    written = load_spec(str(tmp_path / "derived.yaml"))
    derived = derive_spec(tiny_cls_model, "local/tiny-cls-embedder")
    assert written.digest() == derived.digest()
    assert (written.task, written.pooling, written.normalize) == ("sentence-embedding", "cls", True)
    assert written.max_length == 128  # the tiny config's max_position_embeddings; no sentence_bert_config.json
    assert list(written.formats) == format_names()


def test_derived_task_of_a_cross_encoder_and_a_bare_encoder(session_dir):
    from hubforge.derive import derive_spec

    cross = session_dir / "package" / "tiny-ce"
    cross.mkdir(parents=True)
    make_model(cross, "electra", "cross-encoder", "mean")
    spec = derive_spec(cross, "tiny-org/tiny-ce")
    assert spec.task == "cross-encoder" and spec.evaluation.reranking == "banking77"
    bare = session_dir / "package" / "tiny-bare"
    bare.mkdir(parents=True)
    make_model(bare, "roberta", "feature-extraction", "mean")
    spec = derive_spec(bare, "tiny-org/tiny-bare")
    assert (spec.task, spec.normalize) == ("feature-extraction", False)


def test_installed_wheel_publishes_a_folder_without_a_spec(installed_wheel, tiny_cls_model, session_dir):
    """From outside the checkout: the folder's own pooling, cards rendered, the derived spec in the manifest and
    on the card, and what the libraries print in the run's log, not on the console."""
    out = session_dir / "package" / "out"
    run = run_installed(installed_wheel, session_dir / "package" / "elsewhere", "publish", str(tiny_cls_model),
                        "--dry-run", "--formats", "onnx,qnn", "--no-quality", "--no-speed", "--no-consumers",
                        "--out", str(out))
    assert run.returncode in (0, 3), run.stderr
    results = json.loads((out / "tiny-cls-embedder.results.json").read_text())
    assert results["spec"]["pooling"] == "cls"
    onnx_repo = out / "hubforge" / "tiny-cls-embedder-onnx"
    manifest = json.loads((onnx_repo / "hubforge.json").read_text())
    assert manifest["spec_derived"] is True
    card = (onnx_repo / "README.md").read_text()
    assert "derived by hubforge from the model's own files" in card
    log = (out / "tiny-cls-embedder.log").read_text()
    assert "=== build qnn" in log
    chatter = "[W:onnxruntime"  # ONNX Runtime's C++ log (unused initializers of the dynamo export)
    assert chatter in log and chatter not in run.stdout + run.stderr


def test_installed_wheel_renders_cards_of_a_folder(installed_wheel, tiny_cls_model, session_dir):
    out = session_dir / "package" / "cards"
    run = run_installed(installed_wheel, session_dir / "package" / "elsewhere", "card", str(tiny_cls_model),
                        "--formats", "onnx", "--out", str(out), "--no-speed", "--no-consumers")
    assert run.returncode == 0, run.stderr
    assert "Banking77Classification" in (out / "hubforge" / "tiny-cls-embedder-onnx" / "README.md").read_text()


def test_a_hub_repo_id_is_enough(installed_wheel, upstream_minilm, devhub, session_dir):
    """The seeded all-MiniLM-L6-v2 by its repo id: its spec derived from the files the Hub serves."""
    env = {"HF_TOKEN": WRITE_TOKEN}
    new = invoke("specs", "new", MINILM_REPO, env=env)
    assert new.exit_code == 0, new.output
    spec = yaml.safe_load(new.output)
    assert (spec["pooling"], spec["normalize"], spec["max_length"]) == ("mean", True, 256)
    assert spec["source"] == {"repo": MINILM_REPO, "revision": "main"}
    out = session_dir / "package" / "repo-id"
    run = run_installed(installed_wheel, session_dir / "package" / "elsewhere", "publish", MINILM_REPO, "--dry-run",
                        "--formats", "onnx", "--no-quality", "--no-speed", "--no-consumers", "--out", str(out), env=env)
    assert run.returncode == 0, run.stderr
    results = json.loads((out / "all-MiniLM-L6-v2.results.json").read_text())
    assert results["upstream"]["sha"] == upstream_minilm and results["spec_derived"] is True
    stale = invoke("check-updates", MINILM_REPO, "--json", env=env)
    assert stale.exit_code == 0, stale.output
    assert {s["repo_id"]: s["reason"] for s in json.loads(stale.stdout)} == {
        f"hubforge/all-MiniLM-L6-v2-{suffix}": "never published"
        for suffix in ("onnx", "qnn", "amd", "openvino", "mnn", "gguf")}


@pytest.mark.parametrize("model, message", [
    ("/etc", "/etc is not a model directory (no config.json)"),
    ("/etc/hostname", "a spec must be a YAML mapping"),
    ("./no-such-folder", "no such file or directory"),
    ("nobody/no-such-model", "is neither a spec nor a model on"),
])
def test_bad_models_get_one_line(devhub, model, message):
    for command in ("publish", "evaluate", "card"):
        result = invoke(command, model, env={"HF_TOKEN": WRITE_TOKEN})
        assert result.exit_code == 1, result.output
        assert message in result.output and "hint:" in result.output
        assert "Traceback" not in result.output


def test_a_model_without_a_tokenizer_is_named(tiny_cls_model, tmp_path):
    for path in tiny_cls_model.iterdir():
        if path.is_file() and not path.name.startswith(("tokenizer", "vocab", "special")):
            (tmp_path / path.name).write_bytes(path.read_bytes())
    result = invoke("publish", str(tmp_path), "--dry-run")
    assert result.exit_code == 1 and "has no tokenizer" in result.output


def test_devhub_seed_reads_the_token_from_the_environment(devhub, tiny_cls_model):
    assert "HF_TOKEN" in invoke("devhub", "seed", "tiny-org/needs-token", str(tiny_cls_model)).output
    result = invoke("devhub", "seed", "tiny-org/seeded-by-env", str(tiny_cls_model), env={"HF_TOKEN": WRITE_TOKEN})
    assert result.exit_code == 0, result.output
    assert "seeded tiny-org/seeded-by-env" in result.output


@pytest.mark.parametrize("command", [("check-updates", "all-minilm-l6-v2"), ("evaluate", "all-minilm-l6-v2"),
                                     ("publish", MINILM_REPO, "--dry-run"), ("verify", "hubforge/some-model-onnx"),
                                     ("specs", "new", MINILM_REPO)])
def test_an_unreachable_hub_is_one_line(command, tmp_path):
    """Nothing listens on the discard port: each command retries briefly, then says so in one line."""
    result = invoke(*command, env={"HF_ENDPOINT": "http://127.0.0.1:9", "HUBFORGE_RETRY_SECONDS": "1",
                                   "HF_TOKEN": WRITE_TOKEN})
    assert result.exit_code == 1, result.output
    assert "127.0.0.1:9" in result.output and "hint:" in result.output
