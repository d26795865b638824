"""Server state and the FastAPI dependencies that authenticate callers and authorize them on repos."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlencode

from fastapi import Depends, Request

from .auth import TokenGrant
from .errors import HubHTTPError, repo_not_found
from .models import FaultSpec, RepoType, valid_repo_part
from .storage import HubStore

UPLOAD_LINK_TTL_S = 3600


@dataclass
class DevHubState:
    store: HubStore
    tokens: dict[str, TokenGrant]
    faults: list[FaultSpec] = field(default_factory=list)
    request_log: deque[tuple[str, str, int]] = field(default_factory=lambda: deque(maxlen=100_000))
    lock: threading.Lock = field(default_factory=threading.Lock)
    # signs LFS upload links; per process, so a restart invalidates links handed out before it
    upload_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def take_fault(self, method: str, path: str) -> FaultSpec | None:
        with self.lock:
            for fault in self.faults:
                if fault.path_contains in path and (fault.method is None or fault.method == method):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault.model_copy()
        return None

    def _upload_signature(self, repo_key: str, oid: str, size: int, *, expires: int) -> str:
        message = f"{repo_key}\n{oid}\n{size}\n{expires}".encode()
        return hmac.new(self.upload_key, message, hashlib.sha256).hexdigest()

    def upload_query(self, repo_key: str, oid: str, size: int) -> str:
        """The proof an LFS upload link carries: huggingface_hub PUTs to it without an Authorization header."""
        expires = int(time.time()) + UPLOAD_LINK_TTL_S
        signature = self._upload_signature(repo_key, oid, size, expires=expires)
        return urlencode({"repo": repo_key, "size": size, "expires": expires, "signature": signature})

    def upload_allowed(self, repo_key: str, oid: str, size: int, *, expires: int, signature: str) -> bool:
        expected = self._upload_signature(repo_key, oid, size, expires=expires)
        return expires >= time.time() and hmac.compare_digest(expected, signature)


@dataclass(frozen=True)
class RepoRef:
    kind: RepoType
    namespace: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def key(self) -> str:
        """The store's id: model ids as on the Hub, dataset ids under `datasets/` like their URLs."""
        return self.id if self.kind is RepoType.MODELS else f"datasets/{self.id}"

    @property
    def label(self) -> str:
        return "model" if self.kind is RepoType.MODELS else "dataset"


def get_state(request: Request) -> DevHubState:
    return request.app.state.devhub


def get_store(state: DevHubState = Depends(get_state)) -> HubStore:
    return state.store


def optional_grant(request: Request, state: DevHubState = Depends(get_state)) -> TokenGrant | None:
    """The caller's grant; None when anonymous. A token that is sent must be valid, as on the Hub."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    grant = state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
    if grant is None:
        raise HubHTTPError(401, "Invalid credentials in Authorization header")
    return grant


def require_grant(grant: TokenGrant | None = Depends(optional_grant)) -> TokenGrant:
    if grant is None:
        raise HubHTTPError(401, "You must be authenticated to do this: pass a token")
    return grant


def require_writer(grant: TokenGrant = Depends(require_grant)) -> TokenGrant:
    if not grant.can_write:
        raise HubHTTPError(403, "This token has the read role; writing needs a token with the write role")
    return grant


def require_admin(grant: TokenGrant = Depends(require_grant)) -> TokenGrant:
    if not grant.is_admin:
        raise HubHTTPError(403, "This devhub route needs a token with the admin role")
    return grant


def repo_kind(request: Request) -> RepoType:
    """`/api/{kind}/...` names it; download and LFS URLs carry a `/datasets/` prefix for datasets."""
    kind = request.path_params.get("kind")
    if kind is not None:
        try:
            return RepoType(kind)
        except ValueError:
            raise HubHTTPError(404, f"devhub has no {kind!r} repos")
    return RepoType.DATASETS if request.url.path.startswith("/datasets/") else RepoType.MODELS


def target_repo(ns: str, name: str, kind: RepoType = Depends(repo_kind)) -> RepoRef:
    if not (valid_repo_part(ns, namespace=True) and valid_repo_part(name)):
        raise repo_not_found()
    return RepoRef(kind, ns, name)


def readable_repo(repo: RepoRef = Depends(target_repo), grant: TokenGrant | None = Depends(optional_grant),
                  store: HubStore = Depends(get_store)) -> RepoRef:
    """An existing repo the caller may read: public, or private in one of the caller's namespaces."""
    row = store.repo_row(repo.key)
    if row is None:
        raise repo_not_found(404 if grant else 401)
    if row[0] and not (grant and grant.member_of(repo.namespace)):
        raise repo_not_found(404 if grant else 401)
    return repo


def writable_repo(repo: RepoRef = Depends(readable_repo), grant: TokenGrant = Depends(require_writer)) -> RepoRef:
    if not grant.member_of(repo.namespace):
        raise HubHTTPError(403, f"You don't have the rights to write to {repo.id}: {grant.user} is not a member "
                                f"of {repo.namespace}")
    return repo
