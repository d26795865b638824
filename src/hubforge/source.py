"""Stage 2 — the source: resolve the upstream revision to a commit and download exactly that snapshot."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from .errors import SourceError
from .hub import hub_error
from .spec import ModelSpec

WEIGHT_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*.model", "README.md", "1_Pooling/*", "*/config.json"]


@dataclass(frozen=True)
class SourceModel:
    repo_id: str
    revision: str
    sha: str
    path: Path
    license: str | None
    card_data: dict = field(default_factory=dict)
    local: bool = False


def _card_data(readme: Path) -> dict:
    from huggingface_hub import ModelCard

    if not readme.exists():
        return {}
    return ModelCard.load(readme).data.to_dict()


def _dir_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:40]


def local_source(spec: ModelSpec, folder: Path) -> SourceModel:
    """A user's own model directory (e.g. a fine-tune); its 'sha' is a digest of its files."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise SourceError(f"{folder} is not a model directory (no config.json)",
                          "pass the folder written by save_pretrained()")
    card = _card_data(folder / "README.md")
    return SourceModel(spec.source.repo, "local", _dir_digest(folder), folder, card.get("license"), card, local=True)


def fetch_source(spec: ModelSpec, api: HfApi, cache_dir: Path | None = None) -> SourceModel:
    repo, revision = spec.source.repo, spec.source.revision
    try:
        info = api.model_info(repo, revision=revision)
        path = snapshot_download(repo, revision=info.sha, endpoint=api.endpoint, token=api.token,
                                 cache_dir=cache_dir, allow_patterns=WEIGHT_PATTERNS)
    except RepositoryNotFoundError as exc:
        raise SourceError(f"upstream model {repo} was not found on {api.endpoint}",
                          "check source.repo in the spec, and that the token may read it") from exc
    except RevisionNotFoundError as exc:
        raise SourceError(f"upstream model {repo} has no revision {revision!r}",
                          "check source.revision in the spec (branch, tag or commit sha)") from exc
    except HfHubHTTPError as exc:
        raise hub_error(exc, f"downloading {repo}") from exc
    card = dict(info.card_data.to_dict()) if info.card_data else {}
    return SourceModel(repo, revision, info.sha, Path(path), card.get("license"), card)
