"""Refs, history, tags and branches."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..deps import RepoRef, get_store, readable_repo, writable_repo
from ..errors import HubHTTPError
from ..models import BranchBody, TagBody, check_ref_name
from ..storage import HubStore
from .repos import need_revision

router = APIRouter()


@router.get("/api/{kind}/{ns}/{name}/refs")
def refs(repo: RepoRef = Depends(readable_repo), store: HubStore = Depends(get_store)):
    out = {"branches": [], "tags": [], "converts": [], "pullRequests": []}
    for kind, ref_name, oid in store.refs(repo.key):
        if kind == "branch":
            out["branches"].append({"name": ref_name, "ref": f"refs/heads/{ref_name}", "targetCommit": oid})
        elif kind == "tag":
            out["tags"].append({"name": ref_name, "ref": f"refs/tags/{ref_name}", "targetCommit": oid})
        else:
            out["pullRequests"].append({"name": ref_name, "ref": f"refs/pr/{ref_name}", "targetCommit": oid})
    return out


@router.get("/api/{kind}/{ns}/{name}/commits/{revision:path}")
def commits(revision: str, repo: RepoRef = Depends(readable_repo), store: HubStore = Depends(get_store)):
    return [
        {"id": c.oid, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": c.created_at}
        for c in store.history(need_revision(store, repo, revision))
    ]


@router.post("/api/{kind}/{ns}/{name}/tag/{revision:path}")
def create_tag(revision: str, body: TagBody, repo: RepoRef = Depends(writable_repo),
               *, store: HubStore = Depends(get_store)):
    if not store.create_ref(repo.key, "tag", check_ref_name(body.tag), oid=need_revision(store, repo, revision)):
        raise HubHTTPError(409, f"Tag {body.tag} already exists")
    return {}


@router.delete("/api/{kind}/{ns}/{name}/tag/{tag:path}")
def delete_tag(tag: str, repo: RepoRef = Depends(writable_repo), store: HubStore = Depends(get_store)):
    if not store.delete_ref(repo.key, "tag", tag):
        raise HubHTTPError(404, f"Tag {tag} not found", "RevisionNotFound")
    return {}


@router.post("/api/{kind}/{ns}/{name}/branch/{branch:path}")
def create_branch(branch: str, body: BranchBody | None = None, repo: RepoRef = Depends(writable_repo),
                  *, store: HubStore = Depends(get_store)):
    start = need_revision(store, repo, (body and body.startingPoint) or "main")
    if not store.create_ref(repo.key, "branch", check_ref_name(branch), oid=start):
        raise HubHTTPError(409, f"Branch {branch} already exists")
    return {}


@router.delete("/api/{kind}/{ns}/{name}/branch/{branch:path}")
def delete_branch(branch: str, repo: RepoRef = Depends(writable_repo), store: HubStore = Depends(get_store)):
    if branch == "main":
        raise HubHTTPError(403, "The main branch cannot be deleted")
    if not store.delete_ref(repo.key, "branch", branch):
        raise HubHTTPError(404, f"Branch {branch} not found", "RevisionNotFound")
    return {}
