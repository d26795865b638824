"""The local Hub driven by the unmodified huggingface_hub client over HTTP."""

from __future__ import annotations

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from conftest import READ_TOKEN, WRITE_TOKEN


@pytest.fixture()
def repo(api, request):
    repo_id = f"hubforge/devhub-{request.node.name.replace('[', '-').replace(']', '')}"[:96]
    api.create_repo(repo_id)
    yield repo_id
    api.delete_repo(repo_id)


def test_regular_and_lfs_files_round_trip(api, repo, tmp_path):
    big = tmp_path / "weights.onnx"
    big.write_bytes(bytes(range(256)) * 4096)
    info = api.create_commit(repo, [CommitOperationAdd("config.json", b'{"a": 1}'),
                                    CommitOperationAdd("onnx/model.onnx", str(big))], commit_message="add")
    tree = {f.path: f for f in api.list_repo_tree(repo, recursive=True)}
    assert tree["onnx/model.onnx"].lfs is not None and tree["config.json"].lfs is None
    downloaded = hf_hub_download(repo, "onnx/model.onnx", revision=info.oid, token=READ_TOKEN,
                                 cache_dir=tmp_path / "cache")
    assert open(downloaded, "rb").read() == big.read_bytes()
    assert open(hf_hub_download(repo, "config.json", cache_dir=tmp_path / "c2"), "rb").read() == b'{"a": 1}'


def test_history_tags_and_download_by_revision(api, repo, tmp_path):
    first = api.create_commit(repo, [CommitOperationAdd("v.txt", b"one")], commit_message="one").oid
    api.create_tag(repo, tag="v1", revision=first)
    second = api.create_commit(repo, [CommitOperationAdd("v.txt", b"two")], commit_message="two").oid
    assert [c.commit_id for c in api.list_repo_commits(repo)][:2] == [second, first]
    refs = api.list_repo_refs(repo)
    assert refs.tags[0].name == "v1" and refs.tags[0].target_commit == first
    assert open(hf_hub_download(repo, "v.txt", revision="v1", cache_dir=tmp_path)).read() == "one"
    assert open(hf_hub_download(repo, "v.txt", revision="main", cache_dir=tmp_path)).read() == "two"
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo, revision="nope")


def test_unchanged_files_are_not_committed_again(api, repo):
    api.create_commit(repo, [CommitOperationAdd("a.txt", b"same")], commit_message="a")
    head = api.model_info(repo).sha
    again = api.create_commit(repo, [CommitOperationAdd("a.txt", b"same")], commit_message="again")
    assert again.oid == head


def test_pull_request_leaves_main_untouched(api, repo, tmp_path):
    main = api.model_info(repo).sha
    info = api.create_commit(repo, [CommitOperationAdd("pr.txt", b"x")], commit_message="pr", create_pr=True)
    assert info.pr_url.endswith("/discussions/1")
    assert api.model_info(repo).sha == main
    assert open(hf_hub_download(repo, "pr.txt", revision="refs/pr/1", cache_dir=tmp_path)).read() == "x"


def test_parent_commit_guards_against_concurrent_pushes(api, repo):
    stale = api.model_info(repo).sha
    api.create_commit(repo, [CommitOperationAdd("b.txt", b"1")], commit_message="someone else")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(repo, [CommitOperationAdd("b.txt", b"2")], commit_message="us", parent_commit=stale)
    assert err.value.response.status_code == 412


def test_deletes(api, repo):
    api.create_commit(repo, [CommitOperationAdd("d/x.txt", b"1"), CommitOperationAdd("d/y.txt", b"2"),
                             CommitOperationAdd("keep.txt", b"3")], commit_message="add")
    api.create_commit(repo, [CommitOperationDelete("d/")], commit_message="rm")
    assert set(api.list_repo_files(repo)) == {".gitattributes", "keep.txt"}


def test_tokens_and_roles(devhub, api, repo):
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token="hf_not_a_token").whoami()
    assert err.value.response.status_code == 401
    assert HfApi(token=READ_TOKEN).whoami()["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token=READ_TOKEN).create_commit(repo, [CommitOperationAdd("x", b"1")], commit_message="no")
    assert err.value.response.status_code == 403
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("hubforge/never-created")


def test_private_repos_are_readable_by_their_namespace_only(api):
    api.create_repo("hubforge/secret", private=True)
    try:
        with pytest.raises(RepositoryNotFoundError):
            HfApi(token=False).model_info("hubforge/secret")
        with pytest.raises(RepositoryNotFoundError):
            HfApi(token=READ_TOKEN).model_info("hubforge/secret")
        assert api.model_info("hubforge/secret").private
    finally:
        api.delete_repo("hubforge/secret")


def test_invalid_card_metadata_is_refused(api, repo):
    bad = b"---\nbase_model_relation: copied\nlicense: [1, 2]\n---\n# card\n"
    with pytest.raises(ValueError, match="base_model_relation"):
        api.create_commit(repo, [CommitOperationAdd("README.md", bad)], commit_message="bad card")


def test_state_persists_across_restarts(tmp_path):
    """Commits written by one server process are served by the next one on the same data directory."""
    from hubforge.devhub.server import DevHubThread
    from hubforge.devhub.storage import Entry, HubStore, git_blob_oid

    store = HubStore(tmp_path / "hub")
    store.create_repo("hubforge/persist", private=False, author="hubforge")
    sha, _ = store.apply_commit("hubforge/persist", "main", "keep", message="", author="hubforge",
                                additions={"f.txt": Entry(store.put_blob(b"kept"), 4, False, git_blob_oid(b"kept"))},
                                deletions=[], expected_parent=None, create_pr=False)
    del store
    with DevHubThread(tmp_path / "hub", {WRITE_TOKEN: ("hubforge", "write")}) as hub:
        info = HfApi(endpoint=hub.url, token=WRITE_TOKEN).model_info("hubforge/persist")
        assert info.sha == sha and {s.rfilename for s in info.siblings} == {".gitattributes", "f.txt"}
