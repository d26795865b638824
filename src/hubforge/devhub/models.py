"""Validation at the edge: repo ids, revisions and paths, and typed request bodies (bad input is 4xx, never 500)."""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .errors import HubHTTPError

Oid = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
CommitOid = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
Size = Annotated[int, Field(ge=0, le=1 << 50)]
Text = Annotated[str, Field(max_length=65536)]

_REPO_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
# First URL segments of the server's own routes: a namespace of that name would shadow them
RESERVED_NAMESPACES = frozenset({"api", "datasets", "spaces", "models", "devhub"})


class RepoType(str, Enum):
    """The `/api/{kind}/...` URL segment of a repo type."""

    MODELS = "models"
    DATASETS = "datasets"


def valid_repo_part(part: str, namespace: bool = False) -> bool:
    """Hub rules for a namespace or repo name: letters, digits, `-_.`, no `--` or `..`, at most 96 characters."""
    if not isinstance(part, str) or not _REPO_PART.match(part) or "--" in part or ".." in part:
        return False
    return not (namespace and part in RESERVED_NAMESPACES) and not part.endswith(".git")


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def check_revision(revision: str) -> str:
    """A branch, tag, `refs/...` name or commit oid as the Hub accepts them."""
    if (not revision or len(revision) > 255 or _has_control(revision) or "\\" in revision or ".." in revision
            or "//" in revision or revision.startswith("/") or revision.endswith("/")):
        raise HubHTTPError(400, f"Invalid revision name: {revision!r}", "RevisionNotFound")
    return revision


def check_ref_name(name: str) -> str:
    """A new tag or branch name: a revision that is not itself a `refs/` path."""
    check_revision(name)
    if name.startswith("refs/") or name == "HEAD":
        raise HubHTTPError(400, f"Invalid ref name: {name!r}")
    return name


def check_path(path: str, folder: bool = False) -> str:
    """A file path inside a repo: relative, forward slashes, no `.`/`..`/empty segments, no control characters."""
    body = path[:-1] if folder and path.endswith("/") else path
    segments = body.split("/")
    if (not body or len(path) > 1000 or _has_control(path) or "\\" in path or path.startswith("/")
            or any(s in ("", ".", "..") for s in segments) or segments[0] == ".git"):
        raise HubHTTPError(400, f"Invalid path in repo: {path!r}")
    return path


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateRepoBody(Body):
    name: Annotated[str, Field(max_length=200)]
    organization: Annotated[str, Field(max_length=200)] | None = None
    private: bool | None = None  # huggingface_hub < 1.0
    visibility: Literal["public", "private"] | None = None  # huggingface_hub >= 1.0
    type: Literal["model", "dataset"] | None = None

    @property
    def is_private(self) -> bool:
        return self.visibility == "private" if self.visibility else bool(self.private)


class DeleteRepoBody(Body):
    name: Annotated[str, Field(max_length=200)]
    organization: Annotated[str, Field(max_length=200)] | None = None
    type: Literal["model", "dataset"] | None = None


class TagBody(Body):
    tag: Annotated[str, Field(max_length=255)]
    message: Text | None = None


class BranchBody(Body):
    startingPoint: Annotated[str, Field(max_length=255)] | None = None


class PreuploadFile(Body):
    path: Annotated[str, Field(max_length=1000)]
    size: Size
    sample: Annotated[str, Field(max_length=1024)] = ""


class PreuploadBody(Body):
    files: Annotated[list[PreuploadFile], Field(max_length=10000)]


class LfsObject(Body):
    oid: Oid
    size: Size


class LfsBatchBody(Body):
    operation: Literal["upload", "download"] = "upload"
    objects: Annotated[list[LfsObject], Field(max_length=10000)]


class ValidateYamlBody(Body):
    content: Annotated[str, Field(max_length=1 << 20)]
    repoType: Literal["model", "dataset", "space"] = "model"


class CommitHeader(Body):
    summary: Text = ""
    description: Text = ""
    parentCommit: CommitOid | None = None


class FileValue(Body):
    path: str
    content: str
    encoding: Literal["base64"] = "base64"


class LfsFileValue(Body):
    path: str
    algo: Literal["sha256"] = "sha256"
    oid: Oid
    size: Size


class PathValue(Body):
    path: str


class HeaderLine(Body):
    key: Literal["header"]
    value: CommitHeader


class FileLine(Body):
    key: Literal["file"]
    value: FileValue


class LfsFileLine(Body):
    key: Literal["lfsFile"]
    value: LfsFileValue


class DeletedFileLine(Body):
    key: Literal["deletedFile"]
    value: PathValue


class DeletedFolderLine(Body):
    key: Literal["deletedFolder"]
    value: PathValue


CommitLine = TypeAdapter(Annotated[Union[HeaderLine, FileLine, LfsFileLine, DeletedFileLine, DeletedFolderLine],
                                   Field(discriminator="key")])


class FaultSpec(Body):
    """Fail the next `count` requests whose path contains `path_contains` (and whose method is `method`).

    mode "status" answers `status` with Retry-After when set (seconds, or an HTTP-date string), "delay" sleeps
    `delay` seconds then serves, "drop" reads the request and closes the connection mid-response.
    """

    count: Annotated[int, Field(ge=1, le=100000)]
    mode: Literal["status", "delay", "drop"] = "status"
    status: Annotated[int, Field(ge=400, le=599)] = 503
    retry_after: Annotated[float, Field(ge=0)] | Annotated[str, Field(max_length=64)] | None = None
    delay: Annotated[float, Field(ge=0, le=120)] = 0.0
    path_contains: Annotated[str, Field(max_length=1000)] = ""
    method: Annotated[str, Field(max_length=16)] | None = None
