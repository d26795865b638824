"""Identity, repo create/delete and repo info."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ..auth import TokenGrant
from ..cards import card_metadata_errors, parse_card_data
from ..deps import RepoRef, get_store, readable_repo, require_grant, require_writer
from ..errors import HubHTTPError, repo_not_found
from ..models import CreateRepoBody, DeleteRepoBody, RepoType, ValidateYamlBody, check_revision, valid_repo_part
from ..storage import HubStore, lfs_pointer

router = APIRouter()

KINDS = {None: RepoType.MODELS, "model": RepoType.MODELS, "dataset": RepoType.DATASETS}


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def need_revision(store: HubStore, repo: RepoRef, revision: str) -> str:
    oid = store.resolve(repo.key, check_revision(revision))
    if oid is None:
        raise HubHTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
    return oid


@router.get("/api/whoami-v2")
def whoami(grant: TokenGrant = Depends(require_grant)):
    return {
        "type": "user",
        "name": grant.user,
        "fullname": grant.user,
        "orgs": [{"type": "org", "name": org, "roleInOrg": "write" if grant.can_write else "read"}
                 for org in grant.orgs],
        # admin is a devhub role; to Hub clients it is a write token
        "auth": {"type": "access_token",
                 "accessToken": {"displayName": "devhub", "role": "write" if grant.can_write else "read"}},
    }


@router.post("/api/validate-yaml")
def validate_yaml(body: ValidateYamlBody):
    errors = card_metadata_errors(body.content, model_card=body.repoType == "model")
    if errors:
        return JSONResponse({"errors": [{"message": m} for m in errors]}, status_code=400)
    return {"errors": [], "warnings": []}


def _repo_from_body(body: CreateRepoBody | DeleteRepoBody, grant: TokenGrant) -> RepoRef:
    namespace, name = body.organization or grant.user, body.name
    if body.organization is None and "/" in name:
        namespace, name = name.split("/", 1)
    if not (valid_repo_part(namespace, namespace=True) and valid_repo_part(name)):
        raise HubHTTPError(400, f"Invalid repo id {namespace}/{name}: use letters, digits, '-', '_' and '.', "
                                "no '--' or '..', at most 96 characters per part")
    return RepoRef(KINDS[body.type], namespace, name)


@router.post("/api/repos/create")
def create_repo(request: Request, body: CreateRepoBody, grant: TokenGrant = Depends(require_writer),
                *, store: HubStore = Depends(get_store)):
    repo = _repo_from_body(body, grant)
    if not grant.member_of(repo.namespace):
        raise HubHTTPError(403, f"You don't have the rights to create a {repo.label} under the namespace "
                                f"{repo.namespace}")
    url = f"{base_url(request)}/{repo.key}"
    if not store.create_repo(repo.key, body.is_private, grant.user):
        return JSONResponse({"error": f"You already created this {repo.label} repo", "url": url}, status_code=409)
    return {"url": url, "name": repo.id, "id": repo.id}


@router.delete("/api/repos/delete")
def delete_repo(body: DeleteRepoBody, grant: TokenGrant = Depends(require_writer),
                store: HubStore = Depends(get_store)):
    repo = _repo_from_body(body, grant)
    row = store.repo_row(repo.key)
    if row is None or (row[0] and not grant.member_of(repo.namespace)):
        raise repo_not_found()
    if not grant.member_of(repo.namespace):
        raise HubHTTPError(403, f"You don't have the rights to delete {repo.id}")
    store.delete_repo(repo.key)
    return {}


def info_payload(store: HubStore, repo: RepoRef, oid: str) -> dict:
    commit = store.commit(oid)
    private, created = store.repo_row(repo.key)
    card = None
    if "README.md" in commit.tree:
        card = parse_card_data(store.blob_path(commit.tree["README.md"].sha256).read_bytes())
    siblings = []
    for path, entry in sorted(commit.tree.items()):
        sibling = {"rfilename": path, "size": entry.size, "blobId": entry.git_oid}
        if entry.lfs:
            sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size,
                              "pointerSize": len(lfs_pointer(entry.sha256, entry.size))}
        siblings.append(sibling)
    tags = (card or {}).get("tags") or []
    payload = {
        "_id": repo.id,
        "id": repo.id,
        "author": repo.namespace,
        "sha": oid,
        "lastModified": commit.created_at,
        "createdAt": created,
        "private": bool(private),
        "disabled": False,
        "gated": False,
        "tags": tags if isinstance(tags, list) else [],
        "cardData": card,
        "siblings": siblings,
    }
    if repo.kind is RepoType.MODELS:
        payload.update(modelId=repo.id, library_name=(card or {}).get("library_name"),
                       pipeline_tag=(card or {}).get("pipeline_tag"))
    return payload


@router.get("/api/{kind}/{ns}/{name}")
def repo_info(repo: RepoRef = Depends(readable_repo), store: HubStore = Depends(get_store)):
    return info_payload(store, repo, need_revision(store, repo, "main"))


@router.get("/api/{kind}/{ns}/{name}/revision/{revision:path}")
def repo_info_at(revision: str, repo: RepoRef = Depends(readable_repo), store: HubStore = Depends(get_store)):
    return info_payload(store, repo, need_revision(store, repo, revision))
