"""Preupload and ndjson commits: every line is parsed into a typed model before anything is written."""

from __future__ import annotations

import base64
import binascii
import json

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from ..auth import TokenGrant
from ..cards import card_metadata_errors
from ..deps import RepoRef, get_store, require_writer, writable_repo
from ..errors import HubHTTPError
from ..models import (CommitLine, DeletedFileLine, DeletedFolderLine, FileLine, HeaderLine, LfsFileLine,
                      PreuploadBody, RepoType, check_path, check_revision)
from ..storage import ConflictError, Entry, HubStore, RefusedTarget, git_blob_oid, lfs_pointer, wants_lfs
from .repos import base_url

router = APIRouter()


@router.post("/api/{kind}/{ns}/{name}/preupload/{revision:path}")
def preupload(revision: str, body: PreuploadBody, repo: RepoRef = Depends(writable_repo),
              *, store: HubStore = Depends(get_store)):
    oid = store.resolve(repo.key, check_revision(revision))
    tree = store.commit(oid).tree if oid else {}
    files = []
    for item in body.files:
        mode = "lfs" if wants_lfs(check_path(item.path), item.size) else "regular"
        existing = tree.get(item.path)
        remote = None
        if existing is not None:
            remote = existing.sha256 if mode == "lfs" else existing.git_oid
        files.append({"path": item.path, "uploadMode": mode, "shouldIgnore": False, "oid": remote})
    return {"files": files, "commitOid": oid}


async def ndjson_lines(request: Request) -> list[HeaderLine | FileLine | LfsFileLine | DeletedFileLine
                                                 | DeletedFolderLine]:
    lines = []
    for number, raw in enumerate((await request.body()).splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            lines.append(CommitLine.validate_python(json.loads(raw)))
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and ValidationError are ValueErrors
            detail = exc.errors(include_url=False, include_input=False) if isinstance(exc, ValidationError) else exc
            raise HubHTTPError(400, f"commit payload line {number} is invalid: {detail}")
    return lines


def _decode(line: FileLine) -> bytes:
    try:
        return base64.b64decode(line.value.content, validate=True)
    except (binascii.Error, ValueError):
        raise HubHTTPError(400, f"content of {line.value.path} is not valid base64")


@router.post("/api/{kind}/{ns}/{name}/commit/{revision:path}")
def commit(request: Request, revision: str, repo: RepoRef = Depends(writable_repo),
           *, grant: TokenGrant = Depends(require_writer), store: HubStore = Depends(get_store),
           lines: list = Depends(ndjson_lines)):
    check_revision(revision)
    create_pr = request.query_params.get("create_pr") in ("1", "true", "True")
    headers = [line.value for line in lines if isinstance(line, HeaderLine)]
    if len(headers) != 1:
        raise HubHTTPError(400, "commit payload needs exactly one header line")
    header = headers[0]
    additions: dict[str, Entry] = {}
    deletions: list[str] = []
    for line in lines:
        if isinstance(line, FileLine):
            data = _decode(line)
            additions[check_path(line.value.path)] = Entry(store.put_blob(data), len(data), False, git_blob_oid(data))
        elif isinstance(line, LfsFileLine):
            value = line.value
            if not store.has_lfs(repo.key, value.oid, value.size):
                raise HubHTTPError(422, f"LFS file {value.path} ({value.oid}) was not uploaded to {repo.id}")
            pointer = lfs_pointer(value.oid, value.size)
            additions[check_path(value.path)] = Entry(value.oid, value.size, True, git_blob_oid(pointer))
        elif isinstance(line, DeletedFileLine):
            deletions.append(check_path(line.value.path))
        elif isinstance(line, DeletedFolderLine):
            deletions.append(check_path(line.value.path.rstrip("/") + "/", folder=True))
    readme = additions.get("README.md")
    if readme is not None and not readme.lfs:
        text = store.blob_path(readme.sha256).read_bytes().decode("utf-8", errors="replace")
        errors = card_metadata_errors(text, model_card=repo.kind is RepoType.MODELS)
        if errors:
            raise HubHTTPError(400, f"Invalid metadata in README.md: {'; '.join(errors)}")
    try:
        oid, pr_num = store.apply_commit(repo.key, revision, header.summary, message=header.description,
                                         author=grant.user, additions=additions, deletions=deletions,
                                         expected_parent=header.parentCommit, create_pr=create_pr)
    except KeyError:
        raise HubHTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
    except RefusedTarget as exc:
        raise HubHTTPError(400, f"Cannot commit to {revision}: {exc}")
    except ConflictError as exc:
        raise HubHTTPError(412, f"A commit has happened since. Please refresh and try again. ({exc})")
    except FileNotFoundError as exc:
        raise HubHTTPError(404, f"A file with this name doesn't exist: {exc}", "EntryNotFound")
    url = f"{base_url(request)}/{repo.key}"
    return {
        "success": True,
        "commitOid": oid,
        "commitUrl": f"{url}/commit/{oid}",
        "pullRequestUrl": f"{url}/discussions/{pr_num}" if pr_num else None,
    }
