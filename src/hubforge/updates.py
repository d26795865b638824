"""Which published repos are stale: upstream moved, the spec changed, or hubforge changed since the last publish."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

from . import __version__
from .hub import upstream_head
from .publish import MANIFEST
from .spec import ModelSpec
from .targets import get_target


@dataclass(frozen=True)
class RepoStatus:
    repo_id: str
    upstream_head: str
    published_upstream: str | None
    stale: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def repos_by_suffix(spec: ModelSpec, formats: list[str]) -> dict[str, list[str]]:
    """{repo id: formats it holds} for the repos `formats` publish to."""
    repos: dict[str, list[str]] = {}
    for name in formats:
        repos.setdefault(f"{spec.publish.org}/{spec.repo_base}-{get_target(name).repo_suffix}", []).append(name)
    return repos


def published_manifest(api: HfApi, repo_id: str) -> dict | None:
    try:
        path = hf_hub_download(repo_id, MANIFEST, endpoint=api.endpoint, token=api.token)
    except (RepositoryNotFoundError, EntryNotFoundError):
        return None
    return json.loads(open(path, encoding="utf-8").read())


def check_spec(api: HfApi, spec: ModelSpec, formats: list[str]) -> list[RepoStatus]:
    head = upstream_head(api, spec.source.repo, spec.source.revision).sha
    statuses = []
    for repo_id, repo_formats in repos_by_suffix(spec, formats).items():
        manifest = published_manifest(api, repo_id)
        if manifest is None:
            statuses.append(RepoStatus(repo_id, head, None, True, "never published"))
            continue
        published = manifest["upstream"]["sha"]
        missing = [f for f in repo_formats if f not in manifest.get("formats", {})]
        if published != head:
            reason = f"upstream moved {published[:12]} → {head[:12]}"
        elif manifest["spec_hash"] != spec.digest():
            reason = "spec changed"
        elif manifest["hubforge_version"] != __version__:
            reason = f"hubforge {manifest['hubforge_version']} → {__version__}"
        elif missing:
            reason = f"format(s) not yet published: {', '.join(missing)}"
        else:
            reason = ""
        statuses.append(RepoStatus(repo_id, head, published, bool(reason), reason or "up to date"))
    return statuses
