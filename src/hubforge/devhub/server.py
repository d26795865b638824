"""A Hub-compatible HTTP server, real enough for the unmodified `huggingface_hub` client.

It speaks the subset of the Hub API that publishing and downloading use: repo create/delete/info, preupload,
LFS batch (basic transfer, never Xet), ndjson commits (with `parentCommit` and `create_pr`), tree, refs, commits,
tags and `resolve` downloads. Tokens carry a read or write role. Faults can be injected for resilience tests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from .storage import ConflictError, Entry, HubStore, git_blob_oid, lfs_pointer, wants_lfs


class RepoType(str, Enum):
    """The `/api/{kind}/...` URL segment of a repo type."""

    MODELS = "models"
    DATASETS = "datasets"


def repo_key(kind: RepoType, ns: str, name: str) -> str:
    """The store's id of a repo: model ids as on the Hub, dataset ids under `datasets/` like their URLs."""
    return f"{ns}/{name}" if kind is RepoType.MODELS else f"datasets/{ns}/{name}"


def url_kind(request: Request) -> RepoType:
    return RepoType.DATASETS if request.url.path.startswith("/datasets/") else RepoType.MODELS


@dataclass
class Fault:
    """Fail the next `count` requests whose path contains `path_contains`.

    mode "status" answers `status` (with Retry-After when set), "delay" sleeps `delay` seconds then serves,
    "drop" reads the request and closes the connection mid-response.
    """

    count: int
    mode: str = "status"
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    path_contains: str = ""
    method: str | None = None


@dataclass
class DevHubState:
    store: HubStore
    tokens: dict[str, tuple[str, str]]  # token -> (user name, role)
    faults: list[Fault] = field(default_factory=list)
    request_log: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path_contains in path and (fault.method is None or fault.method == method):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None


class HubHTTPError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        self.status, self.message, self.code = status, message, code


def _error(status: int, message: str, code: str | None = None) -> HubHTTPError:
    return HubHTTPError(status, message, code)


def parse_card_data(readme: bytes) -> dict | None:
    text = readme.decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    data = yaml.safe_load(text[3:end])
    return data if isinstance(data, dict) else None


def pointer_size(entry: Entry) -> int:
    return len(lfs_pointer(entry.sha256, entry.size))


def card_metadata_errors(readme: str) -> list[str]:
    """The checks the Hub applies to a model card's YAML header before accepting a commit."""
    if not readme.startswith("---"):
        return []
    end = readme.find("\n---", 3)
    if end < 0:
        return ["metadata block is not closed by a '---' line"]
    try:
        data = yaml.safe_load(readme[3:end])
    except yaml.YAMLError as exc:
        return [f"metadata is not valid YAML: {exc}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["metadata must be a mapping"]
    errors = []
    for key in ("license", "library_name", "pipeline_tag", "base_model_relation"):
        if key in data and not isinstance(data[key], str):
            errors.append(f'"{key}" must be a string')
    if "base_model" in data and not isinstance(data["base_model"], (str, list)):
        errors.append('"base_model" must be a string or a list of strings')
    if data.get("base_model_relation") not in (None, "adapter", "merge", "quantized", "finetune"):
        errors.append('"base_model_relation" must be one of adapter, merge, quantized, finetune')
    if "tags" in data and not (isinstance(data["tags"], list) and all(isinstance(t, str) for t in data["tags"])):
        errors.append('"tags" must be a list of strings')
    for i, model in enumerate(data.get("model-index") or []):
        if not isinstance(model, dict) or "name" not in model or not isinstance(model.get("results"), list):
            errors.append(f'"model-index[{i}]" must have a name and a results list')
            continue
        for j, result in enumerate(model["results"]):
            task, dataset, metrics = result.get("task"), result.get("dataset"), result.get("metrics")
            if not (isinstance(task, dict) and "type" in task):
                errors.append(f'"model-index[{i}].results[{j}].task.type" is required')
            if not (isinstance(dataset, dict) and "type" in dataset and "name" in dataset):
                errors.append(f'"model-index[{i}].results[{j}].dataset" needs type and name')
            if not (isinstance(metrics, list) and all(isinstance(m, dict) and "type" in m and "value" in m
                                                      for m in metrics)):
                errors.append(f'"model-index[{i}].results[{j}].metrics" must be a list of {{type, value}}')
    return errors


def create_app(data_dir: Path, tokens: dict[str, tuple[str, str]]) -> FastAPI:
    state = DevHubState(store=HubStore(Path(data_dir)), tokens=tokens)
    app = FastAPI(title="hubforge devhub", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.devhub = state
    store = state.store

    @app.middleware("http")
    async def faults_and_log(request: Request, call_next):
        path = request.url.path
        admin = path in ("/devhub/faults", "/devhub/log", "/devhub/health")
        fault = None if admin else state.take_fault(request.method, path)
        if fault and fault.mode == "delay":
            await asyncio.sleep(fault.delay)
        elif fault and fault.mode == "status":
            await request.body()
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            state.request_log.append((request.method, path, fault.status))
            return JSONResponse({"error": "injected fault"}, status_code=fault.status, headers=headers)
        elif fault and fault.mode == "drop":
            await request.body()
            state.request_log.append((request.method, path, -1))

            async def truncated():
                yield b'{"error": "conn'
                raise ConnectionAbortedError("injected dropped connection")

            return StreamingResponse(truncated(), headers={"Content-Length": "1000"})
        response = await call_next(request)
        state.request_log.append((request.method, path, response.status_code))
        return response

    @app.exception_handler(HubHTTPError)
    async def hub_error(_request: Request, exc: HubHTTPError):
        headers = {"X-Error-Message": exc.message}
        if exc.code:
            headers["X-Error-Code"] = exc.code
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)

    # auth
    def caller(request: Request) -> tuple[str, str] | None:
        header = request.headers.get("authorization", "")
        if not header:
            return None
        token = header.removeprefix("Bearer ").strip()
        if token not in state.tokens:
            raise _error(401, "Invalid credentials in Authorization header")
        return state.tokens[token]

    def need_write(request: Request) -> str:
        who = caller(request)
        if who is None:
            raise _error(401, "You must be authenticated to do this: pass a token with the write role")
        user, role = who
        if role != "write":
            raise _error(403, "This token has the read role; writing needs a token with the write role")
        return user

    def need_repo(request: Request, repo_id: str) -> None:
        row = store.repo_row(repo_id)
        if row is None:
            raise _error(404, f"Repository Not Found for url: {request.url}.", "RepoNotFound")
        if row[0] and caller(request) is None:
            raise _error(401, f"Repository Not Found for url: {request.url}.", "RepoNotFound")

    def need_revision(repo_id: str, revision: str) -> str:
        oid = store.resolve(repo_id, revision)
        if oid is None:
            raise _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return oid

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # admin endpoints for tests
    @app.post("/devhub/faults")
    async def add_fault(request: Request):
        body = await request.json()
        with state.lock:
            state.faults.append(Fault(**body))
        return {"ok": True}

    @app.delete("/devhub/faults")
    async def clear_faults():
        with state.lock:
            state.faults.clear()
        return {"ok": True}

    @app.get("/devhub/log")
    async def request_log():
        return [list(item) for item in state.request_log]

    @app.get("/devhub/health")
    async def health():
        return {"ok": True}

    # whoami and repos
    @app.get("/api/whoami-v2")
    async def whoami(request: Request):
        who = caller(request)
        if who is None:
            raise _error(401, "Invalid credentials in Authorization header")
        user, role = who
        return {
            "type": "user",
            "name": user,
            "fullname": user,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "devhub", "role": role}},
        }

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request):
        body = await request.json()
        errors = card_metadata_errors(body.get("content", ""))
        if errors:
            return JSONResponse({"errors": [{"message": m} for m in errors]}, status_code=400)
        return {"errors": [], "warnings": []}

    @app.post("/api/repos/create")
    async def create_repo(request: Request):
        user = need_write(request)
        body = await request.json()
        kind = {None: RepoType.MODELS, "model": RepoType.MODELS, "dataset": RepoType.DATASETS}.get(body.get("type"))
        if kind is None:
            raise _error(400, "devhub hosts model and dataset repos only")
        ns = body.get("organization") or user
        repo_id = repo_key(kind, ns, body["name"])
        created = store.create_repo(repo_id, bool(body.get("private")), user)
        url = f"{base_url(request)}/{repo_id}"
        if not created:
            return JSONResponse({"error": "You already created this model repo", "url": url}, status_code=409)
        return {"url": url, "name": repo_id, "id": repo_id}

    @app.delete("/api/repos/delete")
    async def delete_repo(request: Request):
        need_write(request)
        body = await request.json()
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        if body.get("type") == "dataset":
            repo_id = f"datasets/{repo_id}"
        if not store.delete_repo(repo_id):
            raise _error(404, "Repository Not Found", "RepoNotFound")
        return {}

    def model_info_payload(public_id: str, repo_id: str, oid: str) -> dict:
        commit = store.commit(oid)
        private, created = store.repo_row(repo_id)
        repo_id = public_id
        card = None
        if "README.md" in commit.tree:
            card = parse_card_data(store.blob_path(commit.tree["README.md"].sha256).read_bytes())
        siblings = []
        for path, entry in sorted(commit.tree.items()):
            sibling = {"rfilename": path, "size": entry.size, "blobId": entry.git_oid}
            if entry.lfs:
                sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": pointer_size(entry)}
            siblings.append(sibling)
        return {
            "_id": repo_id,
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": oid,
            "lastModified": commit.created_at,
            "createdAt": created,
            "private": bool(private),
            "disabled": False,
            "gated": False,
            "tags": (card or {}).get("tags", []) or [],
            "cardData": card,
            "library_name": (card or {}).get("library_name"),
            "pipeline_tag": (card or {}).get("pipeline_tag"),
            "siblings": siblings,
        }

    @app.get("/api/{kind}/{ns}/{name}")
    async def model_info(request: Request, kind: RepoType, ns: str, name: str):
        repo_id = repo_key(kind, ns, name)
        need_repo(request, repo_id)
        return model_info_payload(f"{ns}/{name}", repo_id, need_revision(repo_id, "main"))

    @app.get("/api/{kind}/{ns}/{name}/revision/{revision:path}")
    async def model_info_at(request: Request, kind: RepoType, ns: str, name: str, revision: str):
        repo_id = repo_key(kind, ns, name)
        need_repo(request, repo_id)
        return model_info_payload(f"{ns}/{name}", repo_id, need_revision(repo_id, revision))

    # uploads
    @app.post("/api/{kind}/{ns}/{name}/preupload/{revision:path}")
    async def preupload(request: Request, kind: RepoType, ns: str, name: str, revision: str):
        repo_id = repo_key(kind, ns, name)
        need_write(request)
        need_repo(request, repo_id)
        oid = store.resolve(repo_id, revision)
        tree = store.commit(oid).tree if oid else {}
        body = await request.json()
        files = []
        for item in body["files"]:
            mode = "lfs" if wants_lfs(item["path"], item["size"]) else "regular"
            existing = tree.get(item["path"])
            remote = None
            if existing is not None:
                remote = existing.sha256 if mode == "lfs" else existing.git_oid
            files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": remote})
        return {"files": files, "commitOid": oid}

    @app.post("/{ns}/{name}.git/info/lfs/objects/batch")
    @app.post("/datasets/{ns}/{name}.git/info/lfs/objects/batch")
    async def lfs_batch(request: Request, ns: str, name: str):
        repo_id = repo_key(url_kind(request), ns, name)
        need_write(request)
        need_repo(request, repo_id)
        body = await request.json()
        objects = []
        for obj in body["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not store.has_lfs(obj["oid"], obj["size"]):
                item["actions"] = {
                    "upload": {"href": f"{base_url(request)}/devhub/lfs/{obj['oid']}"},
                    "verify": {"href": f"{base_url(request)}/devhub/lfs-verify/{repo_id}"},
                }
            objects.append(item)
        return JSONResponse(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            media_type="application/vnd.git-lfs+json",
        )

    @app.put("/devhub/lfs/{oid}")
    async def lfs_upload(request: Request, oid: str):
        chunks = []
        async for chunk in request.stream():
            chunks.append(chunk)
        try:
            await asyncio.to_thread(store.put_lfs_stream, oid, chunks)
        except ValueError as exc:
            raise _error(400, str(exc))
        return Response(status_code=200)

    @app.post("/devhub/lfs-verify/{repo_id:path}")
    async def lfs_verify(request: Request, repo_id: str):
        body = await request.json()
        if not store.has_lfs(body["oid"], body["size"]):
            raise _error(404, f"LFS object {body['oid']} was not uploaded")
        return {"ok": True}

    @app.post("/api/{kind}/{ns}/{name}/commit/{revision:path}")
    async def commit(request: Request, kind: RepoType, ns: str, name: str, revision: str):
        repo_id = repo_key(kind, ns, name)
        user = need_write(request)
        need_repo(request, repo_id)
        create_pr = request.query_params.get("create_pr") in ("1", "true", "True")
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), None)
        if header is None:
            raise _error(400, "commit payload has no header line")
        additions: dict[str, Entry] = {}
        deletions: list[str] = []
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                data = base64.b64decode(value["content"])
                additions[value["path"]] = Entry(store.put_blob(data), len(data), False, git_blob_oid(data))
            elif key == "lfsFile":
                if not store.has_lfs(value["oid"], value["size"]):
                    raise _error(422, f"LFS file {value['path']} ({value['oid']}) was not uploaded before the commit")
                pointer = lfs_pointer(value["oid"], value["size"])
                additions[value["path"]] = Entry(value["oid"], value["size"], True, git_blob_oid(pointer))
            elif key == "deletedFile":
                deletions.append(value["path"])
            elif key == "deletedFolder":
                deletions.append(value["path"].rstrip("/") + "/")
            elif key != "header":
                raise _error(400, f"devhub does not support commit operation {key!r}")
        try:
            oid, pr_num = store.apply_commit(
                repo_id,
                revision,
                header.get("summary", ""),
                header.get("description", ""),
                user,
                additions,
                deletions,
                header.get("parentCommit"),
                create_pr,
            )
        except KeyError:
            raise _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        except ConflictError as exc:
            raise _error(412, f"A commit has happened since. Please refresh and try again. ({exc})")
        except FileNotFoundError as exc:
            raise _error(404, f"A file with this name doesn't exist: {exc}", "EntryNotFound")
        url = f"{base_url(request)}/{repo_id}"
        return {
            "success": True,
            "commitOid": oid,
            "commitUrl": f"{url}/commit/{oid}",
            "pullRequestUrl": f"{url}/discussions/{pr_num}" if pr_num else None,
        }

    # listings
    @app.get("/api/{kind}/{ns}/{name}/refs")
    async def refs(request: Request, kind: RepoType, ns: str, name: str):
        repo_id = repo_key(kind, ns, name)
        need_repo(request, repo_id)
        out = {"branches": [], "tags": [], "converts": [], "pullRequests": []}
        for kind, ref_name, oid in store.refs(repo_id):
            if kind == "branch":
                out["branches"].append({"name": ref_name, "ref": f"refs/heads/{ref_name}", "targetCommit": oid})
            elif kind == "tag":
                out["tags"].append({"name": ref_name, "ref": f"refs/tags/{ref_name}", "targetCommit": oid})
            else:
                out["pullRequests"].append({"name": ref_name, "ref": f"refs/pr/{ref_name}", "targetCommit": oid})
        return out

    @app.get("/api/{kind}/{ns}/{name}/commits/{revision:path}")
    async def commits(request: Request, kind: RepoType, ns: str, name: str, revision: str):
        repo_id = repo_key(kind, ns, name)
        need_repo(request, repo_id)
        return [
            {"id": c.oid, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": c.created_at}
            for c in store.history(need_revision(repo_id, revision))
        ]

    @app.post("/api/{kind}/{ns}/{name}/tag/{revision:path}")
    async def create_tag(request: Request, kind: RepoType, ns: str, name: str, revision: str):
        repo_id = repo_key(kind, ns, name)
        need_write(request)
        need_repo(request, repo_id)
        body = await request.json()
        if not store.create_tag(repo_id, body["tag"], need_revision(repo_id, revision)):
            raise _error(409, f"Tag {body['tag']} already exists")
        return {}

    @app.delete("/api/{kind}/{ns}/{name}/tag/{tag}")
    async def delete_tag(request: Request, kind: RepoType, ns: str, name: str, tag: str):
        repo_id = repo_key(kind, ns, name)
        need_write(request)
        need_repo(request, repo_id)
        if not store.delete_tag(repo_id, tag):
            raise _error(404, f"Tag {tag} not found", "RevisionNotFound")
        return {}

    def split_revision(rest: str) -> tuple[str, str]:
        parts = rest.split("/")
        size = 3 if rest.startswith("refs/pr/") else 1
        return "/".join(parts[:size]), "/".join(parts[size:])

    def tree_item(path: str, entry: Entry) -> dict:
        item = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": path}
        if entry.lfs:
            item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": pointer_size(entry)}
        return item

    @app.get("/api/{kind}/{ns}/{name}/tree/{rest:path}")
    async def tree(request: Request, kind: RepoType, ns: str, name: str, rest: str):
        repo_id = repo_key(kind, ns, name)
        need_repo(request, repo_id)
        revision, folder = split_revision(rest)
        files = store.commit(need_revision(repo_id, revision)).tree
        prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
        recursive = request.query_params.get("recursive") in ("1", "true", "True")
        items, dirs = [], set()
        for path, entry in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix):]
            if recursive or "/" not in rel:
                items.append(tree_item(path, entry))
            if "/" in rel:
                parts = rel.split("/")[:-1]
                for depth in range(1, len(parts) + 1 if recursive else 2):
                    dirs.add(prefix + "/".join(parts[:depth]))
        if prefix and not items and not dirs:
            raise _error(404, f"{folder} does not exist on {revision}", "EntryNotFound")
        dir_items = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(dirs)]
        return dir_items + items

    @app.post("/api/{kind}/{ns}/{name}/paths-info/{revision:path}")
    async def paths_info(request: Request, kind: RepoType, ns: str, name: str, revision: str):
        repo_id = repo_key(kind, ns, name)
        need_repo(request, repo_id)
        files = store.commit(need_revision(repo_id, revision)).tree
        form = await request.form()
        paths = form.getlist("paths")
        return [tree_item(p, files[p]) for p in paths if p in files]

    # downloads
    def resolve_file(request: Request, ns: str, name: str, rest: str):
        repo_id = repo_key(url_kind(request), ns, name)
        need_repo(request, repo_id)
        revision, path = split_revision(rest)
        oid = need_revision(repo_id, revision)
        entry = store.commit(oid).tree.get(path)
        if entry is None:
            raise _error(404, f"Entry not found: {path}", "EntryNotFound")
        headers = {"X-Repo-Commit": oid, "ETag": f'"{entry.sha256 if entry.lfs else entry.git_oid}"'}
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{entry.sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        return entry, headers

    @app.head("/datasets/{ns}/{name}/resolve/{rest:path}")
    @app.head("/{ns}/{name}/resolve/{rest:path}")
    async def resolve_head(request: Request, ns: str, name: str, rest: str):
        entry, headers = resolve_file(request, ns, name, rest)
        headers["Content-Length"] = str(entry.size)
        return Response(status_code=200, headers=headers)

    @app.get("/datasets/{ns}/{name}/resolve/{rest:path}")
    @app.get("/{ns}/{name}/resolve/{rest:path}")
    async def resolve_get(request: Request, ns: str, name: str, rest: str):
        entry, headers = resolve_file(request, ns, name, rest)
        return FileResponse(store.blob_path(entry.sha256), headers=headers, media_type="application/octet-stream")

    return app


def serve(data_dir: Path, tokens: dict[str, tuple[str, str]], host: str = "127.0.0.1", port: int = 8765) -> None:
    import uvicorn

    uvicorn.run(create_app(data_dir, tokens), host=host, port=port, log_level="warning")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/devhub/health", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"devhub at {url} did not come up within {timeout:.0f}s")
            time.sleep(0.2)


class DevHubThread:
    """Runs the local Hub in a background thread of this process (tests and the demo)."""

    def __init__(self, data_dir: Path, tokens: dict[str, tuple[str, str]], port: int = 0):
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(data_dir, tokens)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def state(self) -> DevHubState:
        return self.app.state.devhub

    def __enter__(self) -> "DevHubThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"devhub did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
