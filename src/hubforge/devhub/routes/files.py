"""LFS batch/upload/verify, tree and paths-info listings, and `resolve` downloads."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from ..deps import DevHubState, RepoRef, get_state, get_store, readable_repo, writable_repo
from ..errors import HubHTTPError
from ..models import LfsBatchBody, LfsObject, Oid, Size
from ..storage import Entry, HubStore, lfs_pointer
from .repos import base_url, need_revision

router = APIRouter()


@router.post("/{ns}/{name}.git/info/lfs/objects/batch")
@router.post("/datasets/{ns}/{name}.git/info/lfs/objects/batch")
def lfs_batch(request: Request, body: LfsBatchBody, repo: RepoRef = Depends(writable_repo),
              *, state: DevHubState = Depends(get_state)):
    """Upload links for the objects this repo lacks; an object uploaded to another repo does not count."""
    objects = []
    for obj in body.objects:
        item = {"oid": obj.oid, "size": obj.size, "authenticated": True}
        if not state.store.has_lfs(repo.key, obj.oid, obj.size):
            query = state.upload_query(repo.key, obj.oid, obj.size)
            item["actions"] = {
                "upload": {"href": f"{base_url(request)}/devhub/lfs/{obj.oid}?{query}"},
                "verify": {"href": f"{base_url(request)}/devhub/lfs-verify/{repo.kind.value}/{repo.id}"},
            }
        objects.append(item)
    return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                        media_type="application/vnd.git-lfs+json")


@router.put("/devhub/lfs/{oid}")
async def lfs_upload(request: Request, oid: Oid, repo: str = Query(max_length=300), *, size: Size = Query(),
                     expires: int = Query(), signature: str = Query(max_length=128),
                     state: DevHubState = Depends(get_state)):
    """Authorized by the signed link from the batch answer, which names the repo, oid, size and expiry."""
    if not state.upload_allowed(repo, oid, size, expires=expires, signature=signature):
        raise HubHTTPError(403, "LFS upload link is invalid or expired: ask the batch endpoint for a new one")
    chunks = [chunk async for chunk in request.stream()]
    try:
        await asyncio.to_thread(state.store.put_lfs_stream, repo, oid, size, chunks=chunks)
    except ValueError as exc:
        raise HubHTTPError(400, str(exc))
    return Response(status_code=200)


@router.post("/devhub/lfs-verify/{kind}/{ns}/{name}")
def lfs_verify(obj: LfsObject, repo: RepoRef = Depends(writable_repo), store: HubStore = Depends(get_store)):
    if not store.has_lfs(repo.key, obj.oid, obj.size):
        raise HubHTTPError(404, f"LFS object {obj.oid} was not uploaded to {repo.id}")
    return {"ok": True}


def split_revision(rest: str) -> tuple[str, str]:
    """`main/a/b` -> (main, a/b); `refs/pr/1/a` -> (refs/pr/1, a): URLs carry the revision unescaped."""
    parts = rest.split("/")
    size = 3 if rest.startswith("refs/") else 1
    return "/".join(parts[:size]), "/".join(parts[size:])


def tree_item(path: str, entry: Entry) -> dict:
    item = {"type": "file", "oid": entry.git_oid, "size": entry.size, "path": path}
    if entry.lfs:
        item["lfs"] = {"oid": entry.sha256, "size": entry.size,
                       "pointerSize": len(lfs_pointer(entry.sha256, entry.size))}
    return item


@router.get("/api/{kind}/{ns}/{name}/tree/{rest:path}")
def tree(rest: str, recursive: str | None = None, repo: RepoRef = Depends(readable_repo),
         *, store: HubStore = Depends(get_store)):
    revision, folder = split_revision(rest)
    files = store.commit(need_revision(store, repo, revision)).tree
    prefix = f"{folder.strip('/')}/" if folder.strip("/") else ""
    deep = recursive in ("1", "true", "True")
    items, dirs = [], set()
    for path, entry in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        rel = path[len(prefix):]
        if deep or "/" not in rel:
            items.append(tree_item(path, entry))
        if "/" in rel:
            parts = rel.split("/")[:-1]
            for depth in range(1, len(parts) + 1 if deep else 2):
                dirs.add(prefix + "/".join(parts[:depth]))
    if prefix and not items and not dirs:
        raise HubHTTPError(404, f"{folder} does not exist on {revision}", "EntryNotFound")
    dir_items = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(dirs)]
    return dir_items + items


@router.post("/api/{kind}/{ns}/{name}/paths-info/{revision:path}")
def paths_info(revision: str, paths: list[str] = Form(default=[]), repo: RepoRef = Depends(readable_repo),
               *, store: HubStore = Depends(get_store)):
    files = store.commit(need_revision(store, repo, revision)).tree
    folders = {p.rsplit("/", 1)[0] for p in files if "/" in p}
    out = []
    for path in paths:
        path = path.strip("/")
        if path in files:
            out.append(tree_item(path, files[path]))
        elif path in folders or any(f.startswith(f"{path}/") for f in folders):
            out.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": path})
    return out


def resolve_file(rest: str, repo: RepoRef, store: HubStore) -> tuple[Entry, dict]:
    revision, path = split_revision(rest)
    oid = need_revision(store, repo, revision)
    entry = store.commit(oid).tree.get(path)
    if entry is None:
        raise HubHTTPError(404, f"Entry not found: {path}", "EntryNotFound")
    headers = {"X-Repo-Commit": oid, "ETag": f'"{entry.sha256 if entry.lfs else entry.git_oid}"'}
    if entry.lfs:
        headers["X-Linked-Etag"] = f'"{entry.sha256}"'
        headers["X-Linked-Size"] = str(entry.size)
    return entry, headers


@router.head("/datasets/{ns}/{name}/resolve/{rest:path}")
@router.head("/{ns}/{name}/resolve/{rest:path}")
def resolve_head(rest: str, repo: RepoRef = Depends(readable_repo), store: HubStore = Depends(get_store)):
    entry, headers = resolve_file(rest, repo, store)
    headers["Content-Length"] = str(entry.size)
    return Response(status_code=200, headers=headers)


@router.get("/datasets/{ns}/{name}/resolve/{rest:path}")
@router.get("/{ns}/{name}/resolve/{rest:path}")
def resolve_get(rest: str, repo: RepoRef = Depends(readable_repo), store: HubStore = Depends(get_store)):
    entry, headers = resolve_file(rest, repo, store)
    return FileResponse(store.blob_path(entry.sha256), headers=headers, media_type="application/octet-stream")
