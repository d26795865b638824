"""Unattended safety: republish on upstream change, idempotent re-runs, PRs, and Hub faults via the real client."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
import yaml
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download

from conftest import ADMIN_TOKEN, READ_TOKEN, WRITE_TOKEN, invoke

FAST = ("--formats", "onnx", "--no-quality", "--no-speed", "--no-consumers")


def make_spec(session_dir, name: str, upstream: str, **extra) -> str:
    spec = {"id": name, "source": {"repo": upstream}, "task": "sentence-embedding", "formats": {"onnx": {}},
            "evaluation": {"fidelity_samples": 16}, **extra}
    path = session_dir / "specs" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def commit_posts(devhub, repo_fragment: str) -> int:
    return sum(1 for method, path, status in devhub.state.request_log
               if method == "POST" and "/commit/" in path and repo_fragment in path and status == 200)


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def inject(devhub, fault: dict) -> None:
    """The local Hub's fault-injection endpoint (admin only): fail, drop or delay the next matching requests."""
    requests.post(f"{devhub.url}/devhub/faults", json=fault, headers=ADMIN, timeout=5).raise_for_status()


def clear_faults(devhub) -> None:
    requests.delete(f"{devhub.url}/devhub/faults", headers=ADMIN, timeout=5).raise_for_status()


def manifest(repo_id: str, revision: str = "main") -> dict:
    return json.load(open(hf_hub_download(repo_id, "hubforge.json", revision=revision, token=READ_TOKEN)))


@pytest.fixture(scope="module")
def own_upstream(api):
    """A private copy of MiniLM upstream, so moving its head does not disturb other tests."""
    from hubforge.devhub.seed import bundled_minilm, seed_folder

    return seed_folder(api, "upstream-org/minilm", bundled_minilm())


def test_republish_follows_upstream(devhub, api, own_upstream, session_dir):
    spec = make_spec(session_dir, "minilm-republish", "upstream-org/minilm")
    repo = "hubforge/minilm-republish-onnx"
    env = {"HF_TOKEN": WRITE_TOKEN}
    assert invoke("publish", spec, *FAST, env=env).exit_code == 0
    assert manifest(repo)["upstream"]["sha"] == own_upstream

    fresh = invoke("check-updates", spec, "--json", env=env)
    assert json.loads(fresh.stdout)[0]["stale"] is False
    before = commit_posts(devhub, repo)
    noop = invoke("publish", spec, *FAST, "--if-changed", env=env)
    assert noop.exit_code == 0 and "up to date; nothing to publish" in noop.output
    assert commit_posts(devhub, repo) == before

    new_sha = api.create_commit("upstream-org/minilm", [CommitOperationAdd("NOTES.md", b"retrained")],
                                commit_message="upstream update").oid
    stale = json.loads(invoke("check-updates", spec, "--json", env=env).stdout)[0]
    assert stale["stale"] and stale["reason"].startswith("upstream moved")
    again = invoke("publish", spec, *FAST, "--if-changed", env=env)
    assert again.exit_code == 0, again.output
    assert commit_posts(devhub, repo) == before + 1
    assert manifest(repo)["upstream"]["sha"] == new_sha
    tags = {t.name for t in HfApi(token=READ_TOKEN).list_repo_refs(repo).tags}
    assert {f"upstream-{own_upstream}", f"upstream-{new_sha}"} <= tags


def test_create_pr_leaves_main_alone(api, own_upstream, session_dir):
    spec = make_spec(session_dir, "minilm-pr", "upstream-org/minilm")
    repo = "hubforge/minilm-pr-onnx"
    env = {"HF_TOKEN": WRITE_TOKEN}
    assert invoke("publish", spec, *FAST, env=env).exit_code == 0
    main_before = HfApi(token=READ_TOKEN).model_info(repo).sha
    changed = make_spec(session_dir, "minilm-pr", "upstream-org/minilm", max_length=64)
    result = invoke("publish", changed, *FAST, "--create-pr", env=env)
    assert result.exit_code == 0 and "pull request" in result.output
    assert HfApi(token=READ_TOKEN).model_info(repo).sha == main_before
    assert manifest(repo, "refs/pr/1")["spec_hash"] != manifest(repo)["spec_hash"]


@pytest.mark.parametrize("fault", [
    {"count": 2, "status": 503, "retry_after": 0.2, "path_contains": "/commit/", "method": "POST"},
    {"count": 1, "status": 429, "retry_after": 0.1, "path_contains": "/preupload/"},
    {"count": 1, "status": 500, "path_contains": "/info/lfs/objects/batch"},
    {"count": 1, "mode": "drop", "path_contains": "/commit/", "method": "POST"},
])
def test_transient_faults_are_retried_without_loss_or_duplicates(devhub, upstream_minilm, session_dir, fault):
    name = f"minilm-fault-{fault.get('mode', 'status')}-{fault.get('status', 0)}"
    spec = make_spec(session_dir, name, "sentence-transformers/all-MiniLM-L6-v2")
    repo = f"hubforge/{name}-onnx"
    clear_faults(devhub)
    HfApi(token=WRITE_TOKEN).create_repo(repo, exist_ok=True)
    before = commit_posts(devhub, repo)
    inject(devhub, fault)
    result = invoke("publish", spec, *FAST, env={"HF_TOKEN": WRITE_TOKEN})
    assert result.exit_code == 0, result.output
    assert not devhub.state.faults, "the fault was never hit"
    assert commit_posts(devhub, repo) == before + 1
    files = set(HfApi(token=READ_TOKEN).list_repo_files(repo))
    assert {"onnx/model.onnx", "hubforge.json", "README.md"} <= files
    assert WRITE_TOKEN not in result.output


def test_interrupted_push_keeps_the_previous_commit_and_a_rerun_completes(devhub, upstream_minilm, session_dir,
                                                                           monkeypatch):
    spec = make_spec(session_dir, "minilm-interrupted", "sentence-transformers/all-MiniLM-L6-v2")
    repo = "hubforge/minilm-interrupted-onnx"
    env = {"HF_TOKEN": WRITE_TOKEN}
    assert invoke("publish", spec, *FAST, env=env).exit_code == 0
    head = HfApi(token=READ_TOKEN).model_info(repo).sha
    old_hash = manifest(repo)["spec_hash"]

    changed = make_spec(session_dir, "minilm-interrupted", "sentence-transformers/all-MiniLM-L6-v2", max_length=96)
    monkeypatch.setenv("HUBFORGE_RETRY_SECONDS", "1")
    inject(devhub, {"count": 50, "status": 502, "path_contains": "/commit/", "method": "POST"})
    failed = invoke("publish", changed, *FAST, env=env)
    clear_faults(devhub)
    assert failed.exit_code == 1
    assert "the Hub kept failing while publishing hubforge/minilm-interrupted-onnx" in failed.output
    assert HfApi(token=READ_TOKEN).model_info(repo).sha == head
    assert manifest(repo)["spec_hash"] == old_hash

    rerun = invoke("publish", changed, *FAST, env=env)
    assert rerun.exit_code == 0, rerun.output
    assert manifest(repo)["spec_hash"] != old_hash


def test_concurrent_push_is_refused_not_overwritten(devhub, api):
    from hubforge.errors import HubError
    from hubforge.publish import RepoPlan, push_repo

    repo = "hubforge/race"
    api.create_repo(repo, exist_ok=True)
    plan = RepoPlan(repo, {"a.txt": b"ours"}, {"upstream": {"repo": "x/y", "sha": "0" * 40}})
    inject(devhub, {"count": 1, "mode": "delay", "delay": 3.0, "path_contains": f"{repo}/commit/"})
    errors = []

    def ours():
        try:
            push_repo(api, plan)
        except HubError as exc:
            errors.append(exc)

    worker = threading.Thread(target=ours)
    worker.start()
    deadline = time.monotonic() + 20
    while not any(f"{repo}/preupload" in path for _, path, _ in devhub.state.request_log):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    theirs = api.create_commit(repo, [CommitOperationAdd("b.txt", b"theirs")], commit_message="someone else").oid
    worker.join(30)
    assert errors and "changed under us" in errors[0].message
    assert HfApi(token=READ_TOKEN).model_info(repo).sha == theirs


def test_connection_dropped_mid_lfs_upload_is_retried(devhub, api, tmp_path):
    """A fresh blob (the Hub deduplicates known ones) whose upload connection drops once."""
    import os as _os

    from hubforge.publish import RepoPlan, push_repo

    repo = "hubforge/lfs-drop"
    blob = tmp_path / "model.onnx"
    blob.write_bytes(_os.urandom(300_000))
    plan = RepoPlan(repo, {"onnx/model.onnx": blob, "README.md": b"# x\n"},
                    {"upstream": {"repo": "x/y", "sha": "1" * 40}})
    inject(devhub, {"count": 1, "mode": "drop", "path_contains": "/devhub/lfs/"})
    pushed = push_repo(api, plan)
    assert not devhub.state.faults, "the fault was never hit"
    assert pushed.changed
    downloaded = hf_hub_download(repo, "onnx/model.onnx", token=READ_TOKEN, cache_dir=tmp_path / "dl")
    assert open(downloaded, "rb").read() == blob.read_bytes()
    assert len(HfApi(token=READ_TOKEN).list_repo_commits(repo)) == 2
