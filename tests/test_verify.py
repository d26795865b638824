"""`hubforge verify` against the local Hub: a consumer reproduces a card, catches a tampered file, contributes
a community row, and a worse republish becomes a pull request carrying the diff."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, hf_hub_download, snapshot_download

from conftest import READ_TOKEN, WRITE_TOKEN, invoke

SHARED_REPO = "hubforge/all-minilm-l6-v2-onnx"
OWN_REPO = "hubforge/verify-minilm-onnx"


def read(repo_id: str, path: str, revision: str = "main") -> str:
    return open(hf_hub_download(repo_id, path, revision=revision, token=READ_TOKEN), encoding="utf-8").read()


def pr_ref(output: str) -> str:
    """refs/pr/N of the pull request whose URL the command printed."""
    number = re.search(r"/discussions/(\d+)", output).group(1)
    return f"refs/pr/{number}"


def checks_of(stdout: str) -> dict[str, dict]:
    return {c["metric"]: c for c in json.loads(stdout)["checks"]}


def test_verify_reproduces_the_card(published_minilm):
    result = invoke("verify", SHARED_REPO, "--formats", "onnx", "--json", env={"HF_TOKEN": READ_TOKEN})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["agrees"] and report["variants"][0]["provider"] == "CPUExecutionProvider"
    checks = checks_of(result.stdout)
    card = {v["name"]: v for v in published_minilm[0]["variants"]}["onnx"]
    assert checks["fidelity.mean_cosine"]["card"] == pytest.approx(card["fidelity"]["mean_cosine"])
    assert abs(checks["fidelity.mean_cosine"]["diff"]) < 1e-4 and checks["fidelity.p5_cosine"]["agrees"]
    tasks = [m for m in checks if m.startswith("task.")]
    assert tasks and {f"task.{t['task']}" for t in card["tasks"]} == set(tasks)
    for metric in tasks:  # same graph, runtime and sample: the card's scores, to rounding
        assert abs(checks[metric]["diff"]) < 1e-3 and checks[metric]["agrees"], checks[metric]
    assert checks["speed.p50_ms"]["local"] > 0 and checks["speed.p50_ms"]["tolerance"] is None
    assert checks["memory.peak_mb"]["local"] > 0 and checks["memory.peak_mb"]["card"] > 0
    assert "agrees with its card" in result.stderr


def test_a_tampered_repo_fails_naming_the_file(published_minilm, api, tmp_path):
    """A copy of the published repo, first with a file nobody listed, then with a changed tokenizer."""
    copy, repo = tmp_path / "copy", "hubforge/tampered-minilm-onnx"
    shutil.copytree(snapshot_download(SHARED_REPO, token=READ_TOKEN), copy)
    api.create_repo(repo, exist_ok=True)
    api.upload_folder(repo_id=repo, folder_path=copy)
    api.create_commit(repo, [CommitOperationAdd("extra/loader.py", b"import os\n")], commit_message="add")
    added = invoke("verify", repo, "--no-quality", "--no-speed", env={"HF_TOKEN": READ_TOKEN})
    assert added.exit_code == 4, added.output
    assert "extra/loader.py: in the repo but not in hubforge.json" in added.output

    tokenizer = json.loads((copy / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"]["hello"] = 1
    api.create_commit(repo, [CommitOperationAdd("tokenizer.json", json.dumps(tokenizer).encode()),
                             CommitOperationDelete("extra/loader.py")], commit_message="tamper")
    changed = invoke("verify", repo, "--no-quality", "--no-speed", env={"HF_TOKEN": READ_TOKEN})
    assert changed.exit_code == 4, changed.output
    line = next(line for line in changed.output.splitlines() if line.startswith("error:"))
    assert "tokenizer.json: sha256" in line and "does not match hubforge.json" in line
    assert "reference" not in changed.output  # refused before any model was loaded


def own_spec(session_dir, **changes) -> str:
    """MiniLM under its own id and repo, onnx only, on a small evaluation, so its republishes disturb nobody."""
    spec = {"id": "verify-minilm", "source": {"repo": "sentence-transformers/all-MiniLM-L6-v2"},
            "task": "sentence-embedding", "formats": {"onnx": {}},
            "evaluation": {"fidelity_samples": 32, "retrieval": "banking77", "sts": "banking77", "test_sample": 154,
                           "timed_runs": 5}}
    for key, value in changes.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    path = session_dir / "verify-specs" / "verify-minilm.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def publish(spec: str, tmp_path):
    return invoke("publish", spec, "--no-speed", "--no-consumers", "--out", str(tmp_path / "out"),
                  env={"HF_TOKEN": WRITE_TOKEN})


@pytest.fixture(scope="module")
def own_publication(upstream_minilm, session_dir, tmp_path_factory):
    spec = own_spec(session_dir)
    result = publish(spec, tmp_path_factory.mktemp("first"))
    assert result.exit_code == 0, result.output
    return spec


def test_contribute_opens_a_pr_that_the_next_publish_renders(own_publication, api, tmp_path):
    verified = invoke("verify", OWN_REPO, "--contribute", env={"HF_TOKEN": WRITE_TOKEN})
    assert verified.exit_code == 0, verified.output
    assert "measurements offered as pull request" in verified.output
    pr = pr_ref(verified.output)
    record_path = next(p for p in api.list_repo_files(OWN_REPO, revision=pr) if p.startswith("measurements/"))
    record = json.loads(read(OWN_REPO, record_path, pr))
    row = record["variants"][0]
    assert row["name"] == "onnx" and row["latency_p50_ms"] > 0 and row["memory_mb"] is not None
    assert row["runtime"] == "onnxruntime" and row["runtime_version"] and row["tasks"]
    assert record_path not in api.list_repo_files(OWN_REPO)  # nothing reaches main until the owner merges

    # the owner merges the pull request (the local Hub has no merge button: the same commit, on main)
    api.create_commit(OWN_REPO, [CommitOperationAdd(record_path, json.dumps(record).encode())],
                      commit_message="Merge measurements")
    republished = publish(own_publication, tmp_path)
    assert republished.exit_code == 0, republished.output
    assert record_path in api.list_repo_files(OWN_REPO)  # not deleted as a stale file
    card = read(OWN_REPO, "README.md")
    community = card.split("## Measured by the community")[1].split("\n## ")[0]
    assert record["hardware"]["cpu"] in community and "onnxruntime" in community and "CPUExecutionProvider" in community
    assert "Measured by the community" not in card.split("## Speed")[0]  # never among the publisher's rows
    changes = json.loads(read(OWN_REPO, "results.json"))["changes"]
    assert changes["previous"]["spec_hash"] and not changes["regressions"]
    assert "## Changes since the previous publication" in card


def test_a_worse_republish_opens_a_pr_with_the_diff(own_publication, api, session_dir, tmp_path):
    """Inputs cut to 8 tokens: the same model scores lower on every task, deterministically."""
    main_before = api.model_info(OWN_REPO).sha
    worse = own_spec(session_dir, max_length=8, publish={"max_regression": 0.01})
    result = publish(worse, tmp_path)
    assert result.exit_code == 0, result.output
    assert "regressed by more than publish.max_regression" in result.output and "pull request" in result.output
    assert "REGRESSION" in result.output  # the CLI prints the diff
    assert api.model_info(OWN_REPO).sha == main_before  # main untouched
    pr = pr_ref(result.output)
    changes = json.loads(read(OWN_REPO, "results.json", pr))["changes"]
    assert changes["max_regression"] == 0.01
    assert any(r.startswith("onnx task.") for r in changes["regressions"])
    drops = [c for c in changes["changes"] if c["regression"]]
    assert all(c["change"] < -0.01 for c in drops)
    card = read(OWN_REPO, "README.md", pr)
    assert "## Changes since the previous publication" in card and "**regression**" in card
