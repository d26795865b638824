"""The local Hub's permission model and input validation, attacked over HTTP as a hostile user would (issue 17)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
from pathlib import Path

import pytest
import requests
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

ALICE, BOB, READER, ADMIN = "hf_alice_write", "hf_bob_write", "hf_reader_read", "hf_root_admin"


@pytest.fixture(scope="module")
def hub(devhub):
    """The session's local Hub with this module's users added (huggingface_hub parses commit URLs against
    HF_ENDPOINT, so a second server on another port would not do)."""
    from hubforge.devhub.auth import TokenGrant

    tokens = {ALICE: TokenGrant("alice", "write", ("acme",)), BOB: TokenGrant("bob", "write"),
              READER: TokenGrant("reader", "read", ("acme",)), ADMIN: TokenGrant("root", "admin")}
    devhub.state.tokens.update(tokens)
    HfApi(endpoint=devhub.url, token=ALICE).create_repo("alice/public")
    HfApi(endpoint=devhub.url, token=BOB).create_repo("bob/victim")
    HfApi(endpoint=devhub.url, token=BOB).create_repo("bob/private", private=True)
    yield devhub
    for token in tokens:
        devhub.state.tokens.pop(token)


def api(hub, token) -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def ndjson(*lines: dict) -> str:
    return "\n".join(json.dumps(line) for line in lines)


def raw_commit(hub, token, repo, *ops, revision="main", summary="raw", kind="models"):
    body = ndjson({"key": "header", "value": {"summary": summary, "description": ""}}, *ops)
    return requests.post(f"{hub.url}/api/{kind}/{repo}/commit/{revision}", data=body, timeout=10,
                         headers={**auth(token), "Content-Type": "application/x-ndjson"})


def file_op(path: str, data: bytes = b"x") -> dict:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}


def test_a_token_writes_only_in_its_own_namespaces(hub):
    alice = api(hub, ALICE)
    for attempt in (
        lambda: alice.create_repo("bob/planted"),
        lambda: alice.create_commit("bob/victim", [CommitOperationAdd("x.txt", b"1")], commit_message="x"),
        lambda: alice.create_commit("bob/victim", [CommitOperationAdd("x.txt", b"1")], commit_message="x",
                                    create_pr=True),
        lambda: alice.create_tag("bob/victim", tag="owned"),
        lambda: alice.delete_repo("bob/victim"),
    ):
        with pytest.raises(HfHubHTTPError) as err:
            attempt()
        assert err.value.response.status_code == 403
    assert requests.delete(f"{hub.url}/api/repos/delete", json={"name": "bob/victim"}, headers=auth(ALICE),
                           timeout=5).status_code == 403
    assert api(hub, BOB).model_info("bob/victim").sha
    alice.create_repo("acme/shared")
    with pytest.raises(HfHubHTTPError) as err:
        api(hub, BOB).create_commit("acme/shared", [CommitOperationAdd("x", b"1")], commit_message="x")
    assert err.value.response.status_code == 403


def test_private_repos_are_readable_only_by_their_namespace(hub, tmp_path):
    bob = api(hub, BOB)
    bob.create_commit("bob/private", [CommitOperationAdd("secret.txt", b"s3cret")], commit_message="s")
    for token in (ALICE, READER, None):
        other = HfApi(endpoint=hub.url, token=token or False)
        with pytest.raises(RepositoryNotFoundError):
            other.model_info("bob/private")
        with pytest.raises(RepositoryNotFoundError):
            list(other.list_repo_tree("bob/private"))
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("bob/private", "secret.txt", endpoint=hub.url, token=token or False,
                            cache_dir=tmp_path / str(token))
    assert {f.path for f in bob.list_repo_tree("bob/private")} == {".gitattributes", "secret.txt"}
    api(hub, ALICE).create_repo("acme/internal", private=True)
    assert api(hub, READER).model_info("acme/internal").private


def test_lfs_objects_are_scoped_to_the_repo_they_were_uploaded_to(hub, tmp_path):
    secret = b"bob's weights " * 1000
    oid = hashlib.sha256(secret).hexdigest()
    api(hub, BOB).create_repo("bob/weights", private=True)
    api(hub, BOB).create_commit("bob/weights", [CommitOperationAdd("model.onnx", secret)], commit_message="w")
    stolen = {"key": "lfsFile", "value": {"path": "stolen.onnx", "algo": "sha256", "oid": oid, "size": len(secret)}}
    assert raw_commit(hub, ALICE, "alice/public", stolen).status_code == 422
    batch = requests.post(f"{hub.url}/alice/public.git/info/lfs/objects/batch", headers=auth(ALICE), timeout=5,
                          json={"operation": "upload", "objects": [{"oid": oid, "size": len(secret)}]}).json()
    assert "actions" in batch["objects"][0], "the batch answer must not reveal bob's object"
    verify = requests.post(f"{hub.url}/devhub/lfs-verify/models/alice/public", headers=auth(ALICE), timeout=5,
                           json={"oid": oid, "size": len(secret)})
    assert verify.status_code == 404
    api(hub, BOB).delete_repo("bob/weights")
    assert raw_commit(hub, BOB, "bob/victim", stolen).status_code == 422


def test_devhub_routes_need_their_own_credentials(hub):
    oid = hashlib.sha256(b"payload").hexdigest()
    assert requests.put(f"{hub.url}/devhub/lfs/{oid}", data=b"payload", timeout=5).status_code in (403, 422)
    batch = requests.post(f"{hub.url}/alice/public.git/info/lfs/objects/batch", headers=auth(ALICE), timeout=5,
                          json={"operation": "upload", "objects": [{"oid": oid, "size": 7}]}).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    assert "signature=" in href
    for forged in (href.replace("signature=", "signature=0"), href.replace("alice%2Fpublic", "bob%2Fvictim"),
                   href.replace("size=7", "size=8")):
        assert requests.put(forged, data=b"payload", timeout=5).status_code == 403
    assert requests.put(href, data=b"payload", timeout=5).status_code == 200
    verify = f"{hub.url}/devhub/lfs-verify/models/alice/public"
    assert requests.post(verify, json={"oid": oid, "size": 7}, timeout=5).status_code == 401
    assert requests.post(verify, json={"oid": oid, "size": 7}, headers=auth(BOB), timeout=5).status_code == 403
    assert requests.post(verify, json={"oid": oid, "size": 7}, headers=auth(ALICE), timeout=5).status_code == 200
    for method, path, body in (("POST", "/devhub/faults", {"count": 1}), ("DELETE", "/devhub/faults", None),
                               ("GET", "/devhub/log", None)):
        for headers, status in (({}, 401), (auth(ALICE), 403), (auth(ADMIN), 200)):
            response = requests.request(method, hub.url + path, json=body, headers=headers, timeout=5)
            assert response.status_code == status, (method, path, headers)
    requests.delete(f"{hub.url}/devhub/faults", headers=auth(ADMIN), timeout=5)


def test_retry_after_can_be_an_http_date(hub):
    date = "Wed, 21 Oct 2037 07:28:00 GMT"
    requests.post(f"{hub.url}/devhub/faults", headers=auth(ADMIN), timeout=5,
                  json={"count": 1, "status": 503, "retry_after": date, "path_contains": "/api/whoami"}
                  ).raise_for_status()
    response = requests.get(f"{hub.url}/api/whoami-v2", headers=auth(ALICE), timeout=5)
    assert response.status_code == 503 and response.headers["Retry-After"] == date


BAD_REQUESTS = [
    ("POST", "/api/repos/create", "{not json"),
    ("POST", "/api/repos/create", {}),
    ("POST", "/api/repos/create", {"name": ["a", "b"]}),
    ("POST", "/api/repos/create", {"name": "x", "private": {"a": 1}}),
    ("DELETE", "/api/repos/delete", {}),
    ("DELETE", "/api/repos/delete", "{not json"),
    ("POST", "/api/models/alice/public/tag/main", {}),
    ("POST", "/api/models/alice/public/tag/main", {"tag": ["v1"]}),
    ("POST", "/api/models/alice/public/preupload/main", {}),
    ("POST", "/api/models/alice/public/preupload/main", {"files": [{"path": "a", "size": "big"}]}),
    ("POST", "/alice/public.git/info/lfs/objects/batch", {}),
    ("POST", "/alice/public.git/info/lfs/objects/batch", {"objects": [{"oid": "a" * 300, "size": 1}]}),
    ("POST", "/alice/public.git/info/lfs/objects/batch", {"objects": "all"}),
    ("POST", "/api/models/alice/public/commit/main", "not ndjson\n{"),
    ("POST", "/api/models/alice/public/commit/main", ndjson({"key": "header", "value": []})),
    ("POST", "/api/models/alice/public/commit/main", ndjson({"key": "file", "value": {"path": "a"}})),
    ("POST", "/api/models/alice/public/commit/main", ndjson({"key": "header", "value": {"summary": "s"}},
                                                           {"key": "unknown", "value": {}})),
    ("POST", "/api/models/alice/public/commit/main", ndjson({"key": "header", "value": {"summary": "s"}},
                                                           {"key": "file", "value": {"path": "a.txt",
                                                                                     "content": "!!!!"}})),
    ("POST", "/api/models/alice/public/commit/main", b"\xff\xfe\x00garbage"),
    ("POST", "/api/validate-yaml", {"content": ["x"]}),
    ("POST", "/devhub/lfs-verify/models/alice/public", {"oid": None}),
]


@pytest.mark.parametrize("method,path,body", BAD_REQUESTS)
def test_bad_input_is_a_client_error(hub, method, path, body):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    response = requests.request(method, hub.url + path, data=data, headers=auth(ALICE), timeout=5)
    assert 400 <= response.status_code < 500, response.text


def test_error_headers_survive_any_characters(hub):
    for revision in ("ünïcödé-☃", "a%0D%0AX-Injected:%201", "x%00y"):
        response = requests.get(f"{hub.url}/api/models/alice/public/revision/{revision}", timeout=5)
        assert 400 <= response.status_code < 500
        assert "X-Injected" not in response.headers
        response.headers["X-Error-Message"].encode("ascii")
    response = requests.get(f"{hub.url}/alice/public/resolve/main/%E2%98%83.txt", timeout=5)
    assert response.status_code == 404 and response.headers["X-Error-Code"] == "EntryNotFound"


@pytest.mark.parametrize("name", ["..", "a/b/c", "", "bad\nname", "x" * 97, "-lead", "a--b", "ünï"])
def test_invalid_repo_ids_are_refused(hub, name):
    response = requests.post(f"{hub.url}/api/repos/create", json={"name": name}, headers=auth(ALICE), timeout=5)
    assert response.status_code in (400, 422), name


@pytest.mark.parametrize("path", ["../escape.txt", "/abs.txt", "dir\\win.txt", "nul\x00.txt", "a/./b", "a//b",
                                  "cr\r\nlf.txt", ".git/config", "a/../../b"])
def test_commit_paths_that_escape_or_confuse_are_refused(hub, path):
    before = api(hub, ALICE).model_info("alice/public").sha
    assert raw_commit(hub, ALICE, "alice/public", file_op(path)).status_code == 400
    assert raw_commit(hub, ALICE, "alice/public", {"key": "deletedFile", "value": {"path": path}}).status_code == 400
    assert api(hub, ALICE).model_info("alice/public").sha == before


def test_invalid_card_yaml_is_refused_and_reads_keep_working(hub):
    bad = b"---\nlicense: [unclosed\n---\n# card\n"
    response = raw_commit(hub, ALICE, "alice/public", file_op("README.md", bad))
    assert response.status_code == 400 and "YAML" in response.json()["error"]
    assert api(hub, ALICE).model_info("alice/public").sha


def test_commits_move_the_ref_they_name(hub):
    alice = api(hub, ALICE)
    alice.create_repo("alice/refs")
    first = alice.create_commit("alice/refs", [CommitOperationAdd("a", b"1")], commit_message="1").oid
    via_heads = alice.create_commit("alice/refs", [CommitOperationAdd("a", b"2")], commit_message="2",
                                    revision="refs/heads/main").oid
    assert alice.model_info("alice/refs").sha == via_heads
    pr = alice.create_commit("alice/refs", [CommitOperationAdd("p", b"1")], commit_message="pr", create_pr=True)
    second = alice.create_commit("alice/refs", [CommitOperationAdd("p", b"2")], commit_message="pr 2",
                                 revision="refs/pr/1").oid
    assert alice.list_repo_refs("alice/refs", include_pull_requests=True).pull_requests[0].target_commit == second
    assert pr.oid != second and alice.model_info("alice/refs").sha == via_heads
    alice.create_tag("alice/refs", tag="v1", revision=first)
    for target in ("v1", "refs/tags/v1", first, "refs/pr/9"):
        with pytest.raises(HfHubHTTPError) as err:
            alice.create_commit("alice/refs", [CommitOperationAdd("t", b"1")], commit_message="lost",
                                revision=target)
        assert 400 <= err.value.response.status_code < 500, target
    assert alice.model_info("alice/refs").sha == via_heads


def test_paths_info_answers(hub):
    alice = api(hub, ALICE)
    alice.create_commit("alice/public", [CommitOperationAdd("d/info.txt", b"i")], commit_message="i")
    assert {p.path for p in alice.get_paths_info("alice/public", ["d/info.txt", "d", "missing"])} == {
        "d/info.txt", "d"}


def test_python_multipart_is_a_declared_dependency():
    """Of the local Hub's extra, which the tests install (`hubforge[test]` includes it)."""
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("python-multipart") for dep in project["optional-dependencies"]["devhub"])
    assert "hubforge[devhub]" in project["optional-dependencies"]["test"]


def test_tokens_come_from_a_file_or_the_environment(tmp_path, monkeypatch):
    from hubforge.cli import cli
    from hubforge.devhub.auth import TokenConfigError, TokenGrant, load_tokens

    path = tmp_path / "tokens"
    path.write_text("# team tokens\nhf_a=alice:write:acme+labs\nhf_r=reader:read\n")
    assert load_tokens(path) == {"hf_a": TokenGrant("alice", "write", ("acme", "labs")),
                                 "hf_r": TokenGrant("reader", "read")}
    monkeypatch.setenv("DEVHUB_TOKENS", "hf_x=root:admin,hf_y=bob:write")
    assert load_tokens()["hf_x"].is_admin
    monkeypatch.setenv("DEVHUB_TOKENS", "hf_x=root:superuser")
    with pytest.raises(TokenConfigError):
        load_tokens()
    serve = cli.commands["devhub"].commands["serve"]
    assert "--tokens" not in {opt for param in serve.params for opt in param.opts}


def test_parent_commit_race_has_one_winner(hub):
    api(hub, ALICE).create_repo("alice/race")
    parent = api(hub, ALICE).model_info("alice/race").sha
    statuses = []

    def push(i: int) -> None:
        body = ndjson({"key": "header", "value": {"summary": f"r{i}", "parentCommit": parent}},
                      file_op("race.txt", str(i).encode()))
        statuses.append(requests.post(f"{hub.url}/api/models/alice/race/commit/main", data=body, timeout=30,
                                      headers=auth(ALICE)).status_code)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [412] * 11


def hostile_requests(rng: random.Random, n: int):
    """A mix of the attacks above: wrong owners, bad tokens, bad bodies, odd paths and ids."""
    tokens = [None, ALICE, BOB, READER, ADMIN, "hf_forged", "Basic xyz"]
    repos = ["alice/public", "bob/victim", "bob/private", "acme/shared", "../x", "a%00b/c", "x/%0D%0A",
             "nobody/none", "datasets/x"]
    revisions = ["main", "refs%2Fpr%2F1", "v1", "..%2F..", "%00", "a" * 300, "refs/heads/main", "%E2%98%83"]
    bodies = [None, "{", "[]", "null", json.dumps({"name": 1}), json.dumps({"files": [{"path": "../x", "size": -1}]}),
              json.dumps({"objects": [{"oid": "f" * 64, "size": -5}]}), ndjson({"key": "header", "value": {}}),
              ndjson({"key": "header", "value": {"summary": "s"}}, file_op("../../etc/passwd")),
              ndjson({"key": "header", "value": {"summary": "s", "parentCommit": "z" * 40}}, file_op("ok.txt")),
              json.dumps({"count": 1, "mode": "status", "status": 200}), "\x00\x01\x02"]
    paths = [
        lambda r, v: f"/api/models/{r}", lambda r, v: f"/api/models/{r}/revision/{v}",
        lambda r, v: f"/api/datasets/{r}/tree/{v}", lambda r, v: f"/api/models/{r}/tree/{v}/sub%00dir",
        lambda r, v: f"/api/models/{r}/refs", lambda r, v: f"/api/models/{r}/commits/{v}",
        lambda r, v: f"/api/models/{r}/preupload/{v}", lambda r, v: f"/api/models/{r}/commit/{v}",
        lambda r, v: f"/api/models/{r}/tag/{v}", lambda r, v: f"/api/models/{r}/paths-info/{v}",
        lambda r, v: f"/api/models/{r}/branch/{v}", lambda r, v: f"/{r}.git/info/lfs/objects/batch",
        lambda r, v: f"/{r}/resolve/{v}/README.md", lambda r, v: f"/datasets/{r}/resolve/{v}/..%2F..%2Fx",
        lambda r, v: f"/devhub/lfs/{'e' * 64}?repo={r}&size=1&expires=99999999999&signature=00",
        lambda r, v: f"/devhub/lfs-verify/models/{r}", lambda r, v: "/devhub/faults", lambda r, v: "/devhub/log",
        lambda r, v: "/api/repos/create", lambda r, v: "/api/repos/delete", lambda r, v: "/api/whoami-v2",
        lambda r, v: "/api/validate-yaml", lambda r, v: f"/api/spaces/{r}",
    ]
    for _ in range(n):
        token = rng.choice(tokens)
        headers = {} if token is None else {"Authorization": token if " " in token else f"Bearer {token}"}
        method = rng.choice(["GET", "POST", "PUT", "DELETE", "HEAD"])
        yield method, rng.choice(paths)(rng.choice(repos), rng.choice(revisions)), rng.choice(bodies), headers


def test_hostile_request_mix_never_gets_a_500_or_a_dropped_connection(hub):
    session = requests.Session()
    problems = []
    for method, path, body, headers in hostile_requests(random.Random(17), 300):
        try:
            response = session.request(method, hub.url + path, data=body, headers=headers, timeout=10)
        except requests.RequestException as exc:
            problems.append((method, path, f"connection: {exc}"))
            continue
        if response.status_code >= 500:
            problems.append((method, path, response.status_code, response.text[:200]))
    assert not problems
    assert not hub.state.faults or requests.delete(f"{hub.url}/devhub/faults", headers=auth(ADMIN),
                                                   timeout=5).ok
    assert api(hub, BOB).model_info("bob/victim").sha and api(hub, ALICE).whoami()["name"] == "alice"
