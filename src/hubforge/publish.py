"""Stage 9 — publish: one atomic commit per repo, with a manifest that makes republishing decidable."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError

from .card import RepoCard
from .community import is_record
from .errors import AuthError
from .hub import hub_error, with_retries
from .layout import TRANSFORMERS_JS_DTYPES, repo_files
from .results import RunResult
from .plot import PLOT_FILE

MANIFEST = "hubforge.json"


@dataclass(frozen=True)
class RepoPlan:
    """Everything one repo will hold after the push: files by path in the repo."""

    repo_id: str
    files: dict[str, bytes | Path]
    manifest: dict


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    url: str
    commit: str | None
    changed: bool
    pr_url: str | None = None


def sha256_of(content: bytes | Path) -> str:
    digest = hashlib.sha256()
    if isinstance(content, bytes):
        digest.update(content)
    else:
        with content.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def repo_results(result: RunResult, suffix: str) -> dict:
    """results.json of one repo: the run, with only the variants that repo holds."""
    return {**result.as_dict(), "variants": [v.as_dict() for v in result.published if v.repo_suffix == suffix]}


def plan_repos(result: RunResult, cards: list[RepoCard], plot: Path | None = None,
               *, changes: dict | None = None) -> list[RepoPlan]:
    """`changes`: {repo id: changes.Changes against its previous publication}, carried in its results.json."""
    plans = []
    for card in cards:
        variants = [v for v in result.published if v.repo_suffix == card.suffix]
        files: dict[str, bytes | Path] = dict(repo_files(result.source.path, variants))
        if any(path.startswith("onnx/") for path in files):
            files["onnx/quantize_config.json"] = json.dumps(onnx_quantize_config(variants), indent=2).encode()
        files["README.md"] = card.text.encode()
        if plot is not None:
            files[PLOT_FILE] = plot
        results_json = repo_results(result, card.suffix)
        if changes and card.repo_id in changes:
            results_json["changes"] = changes[card.repo_id].as_dict()
        files["results.json"] = json.dumps(results_json, indent=2).encode()
        manifest = {
            "hubforge_version": result.hubforge_version,
            "model": result.spec.id,
            "upstream": {"repo": result.source.repo_id, "sha": result.source.sha},
            "spec_hash": result.spec.digest(),
            "spec": result.spec.model_dump(mode="json"),  # `hubforge verify` rebuilds the reference from it
            "spec_derived": result.spec.derived,  # from the model's own files (derive.py), not a written spec
            "formats": {v.name: v.config for v in variants},
            "files": {path: sha256_of(content) for path, content in sorted(files.items())},
        }
        files[MANIFEST] = json.dumps(manifest, indent=2, sort_keys=True).encode()
        plans.append(RepoPlan(card.repo_id, files, manifest))
    return plans


def onnx_quantize_config(variants: list) -> dict:
    """How each ONNX file was made, as transformers.js conversions record it beside their files
    (quantize_config.json): per file stem, its transformers.js dtype, hubforge format and the configuration the
    gate kept."""
    per_model = {}
    for variant in variants:
        for path in sorted(variant.files):
            name = Path(path).name
            if path.startswith("onnx/") and name.endswith(".onnx"):
                per_model[Path(name).stem] = {"dtype": TRANSFORMERS_JS_DTYPES.get(name), "format": variant.name,
                                              "precision": variant.precision, "config": variant.config}
    return {"modes": sorted({m["dtype"] for m in per_model.values() if m["dtype"] and m["dtype"] != "fp32"}),
            "per_model_config": per_model}


def write_local(plans: list[RepoPlan], out_dir: Path) -> list[Path]:
    """--dry-run: the repos as folders, exactly what would be pushed."""
    written = []
    for plan in plans:
        root = out_dir / plan.repo_id
        shutil.rmtree(root, ignore_errors=True)
        for path, content in plan.files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                shutil.copyfile(content, target)
        written.append(root)
    return written


def check_write_access(api: HfApi) -> str:
    """Fail before any upload if the token is missing, invalid or read-only."""
    if not api.token:
        raise AuthError("no Hub token", "set HF_TOKEN or pass --token with a write token")
    try:
        info = api.whoami()
    except HfHubHTTPError as exc:
        raise hub_error(exc, "checking the token") from exc
    except OSError as exc:  # huggingface_hub < 1 re-raises a 401 from whoami() as its HTTP library's own error
        if getattr(exc, "response", None) is None:
            raise
        raise hub_error(exc, "checking the token") from exc
    role = info.get("auth", {}).get("accessToken", {}).get("role")
    if role not in ("write", "fineGrained", None):
        raise AuthError(f"the token of {info.get('name')} has the {role} role", "use a token with the write role")
    return info["name"]


def upstream_tag(sha: str) -> str:
    return f"upstream-{sha}"


def _push_once(api: HfApi, plan: RepoPlan, create_pr: bool) -> PushResult:
    """One commit with every file, on top of the head just read (parent_commit): a concurrent push fails loudly
    instead of being overwritten. Re-running after an interruption is safe: files already there are skipped."""
    api.create_repo(plan.repo_id, exist_ok=True)
    head = api.model_info(plan.repo_id).sha
    existing = {f.path for f in api.list_repo_tree(plan.repo_id, revision=head, recursive=True)
                if getattr(f, "size", None) is not None}
    # community measurements (verify --contribute, merged by the owner) outlive every republish
    stale = sorted(p for p in existing - set(plan.files) - {".gitattributes"} if not is_record(p))
    operations = [CommitOperationAdd(path, content if isinstance(content, bytes) else str(content))
                  for path, content in sorted(plan.files.items())]
    operations += [CommitOperationDelete(path) for path in stale]
    upstream = plan.manifest["upstream"]
    info = api.create_commit(plan.repo_id, operations=operations, parent_commit=head, create_pr=create_pr,
                             commit_message=f"hubforge: {upstream['repo']}@{upstream['sha'][:12]}")
    if not create_pr:
        tag = upstream_tag(upstream["sha"])
        if tag not in {t.name for t in api.list_repo_refs(plan.repo_id).tags}:
            api.create_tag(plan.repo_id, tag=tag, revision=info.oid,
                           tag_message=f"built from {upstream['repo']}@{upstream['sha']}")
    return PushResult(plan.repo_id, f"{api.endpoint}/{plan.repo_id}", info.oid, info.oid != head, info.pr_url)


def push_repo(api: HfApi, plan: RepoPlan, create_pr: bool = False) -> PushResult:
    return with_retries(lambda: _push_once(api, plan, create_pr), f"publishing {plan.repo_id}")
