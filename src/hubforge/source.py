"""Stage 2 — the source: resolve the upstream revision to a commit and download exactly that snapshot."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from .errors import SourceError
from .hub import hub_error, upstream_head
from .spec import ModelSpec

# the model, its tokenizer and every sentence-transformers module folder (1_Pooling/, 2_Dense/, ...) with its weights
WEIGHT_PATTERNS = ["*.json", "*.txt", "*.safetensors", "*.model", "README.md", "*_*/*.json", "*_*/*.safetensors",
                   "*_*/*.txt"]


@dataclass(frozen=True)
class SourceModel:
    repo_id: str
    revision: str
    sha: str
    path: Path
    license: str | None
    card_data: dict = field(default_factory=dict)
    local: bool = False

    @property
    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    @property
    def model_type(self) -> str:
        return self.config.get("model_type", "")

    @property
    def weights_bytes(self) -> int:
        """Size of the weight files (safetensors, else PyTorch .bin), module folders included."""
        files = list(self.path.rglob("*.safetensors")) or list(self.path.rglob("*.bin"))
        return sum(p.stat().st_size for p in files)


def check_custom_code(source: SourceModel, spec: ModelSpec) -> SourceModel:
    """A model whose config maps to its own code (auto_map) runs that code when loaded: only with consent."""
    auto_map = source.config.get("auto_map")
    if auto_map and not spec.trust_remote_code:
        raise SourceError(f"{source.repo_id} runs custom code ({', '.join(sorted(auto_map))} in its auto_map)",
                          "read that code, then set `trust_remote_code: true` in the spec to allow it")
    return source


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
    source = SourceModel(spec.source.repo, "local", _dir_digest(folder), folder, card.get("license"), card, local=True)
    return check_custom_code(source, spec)


def fetch_source(spec: ModelSpec, api: HfApi, cache_dir: Path | None = None) -> SourceModel:
    repo, revision = spec.source.repo, spec.source.revision
    info = upstream_head(api, repo, revision)
    try:
        path = snapshot_download(repo, revision=info.sha, endpoint=api.endpoint, token=api.token,
                                 cache_dir=cache_dir, allow_patterns=WEIGHT_PATTERNS)
    except HfHubHTTPError as exc:
        raise hub_error(exc, f"downloading {repo}") from exc
    card = dict(info.card_data.to_dict()) if info.card_data else {}
    return check_custom_code(SourceModel(repo, revision, info.sha, Path(path), card.get("license"), card), spec)
