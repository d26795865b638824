"""`hubforge verify`: a consumer re-measures a published repo on their own machine.

The stages mirror publishing, read backwards: download the repo at a revision → check every file against the
`hubforge.json` hashes → the fp32 reference from the upstream repo at the recorded sha → each published variant
loaded in its own runtime (with the execution providers / devices this machine has) → fidelity, mteb task scores,
speed and memory → the card's numbers beside the local ones. `--contribute` offers the local row back to the repo
as a pull request adding `measurements/<machine>.json` (see community.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx
from huggingface_hub import CommitOperationAdd, HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from . import __version__
from .changes import variant_metrics
from .community import is_record, record_path
from .datasets import sample_texts
from .errors import FormatError, HubError, HubforgeError, SpecError
from .evaluation.fidelity import Fidelity
from .evaluation.hardware import Hardware, fingerprint
from .evaluation.memory import Memory
from .evaluation.speed import Speed
from .evaluation.tasks import TaskScore, evaluate_tasks
from .gate import check_fidelity
from .hub import hub_error
from .measure import evaluation_encoder, measure_artifact
from .errors import failure
from .pipeline import EvalOptions, speed_step
from .publish import MANIFEST, sha256_of
from .results import NotMeasured
from .runtimes import RUNTIME_PACKAGES
from .reference import Reference, compute_reference, model_io
from .source import SourceModel, fetch_source
from .spec import GateSpec, ModelSpec, SourceSpec, load_spec
from .targets import get_target
from .targets.base import BuildInputs
from .workers import Report, Step, run_step, silent

EXIT_AGREES = 0
EXIT_DISAGREES = 3  # the local fidelity or a task score is outside the card's gate
EXIT_TAMPERED = 4  # a file differs from, is missing from, or is not listed in hubforge.json

NO_EXPORT = Path()  # verify loads published files; no target's load() reads the fp32 export


class TamperedError(HubforgeError):
    """A published file does not match the manifest hubforge wrote when it measured it."""

    exit_code = EXIT_TAMPERED


# ---- download and integrity


def download_repo(api: HfApi, repo_id: str, revision: str | None) -> tuple[Path, str]:
    """The repo's files at `revision`, resolved to a commit first so every file comes from the same one."""
    try:
        commit = api.model_info(repo_id, revision=revision).sha
        folder = snapshot_download(repo_id, revision=commit, endpoint=api.endpoint, token=api.token)
    except HfHubHTTPError as exc:
        raise hub_error(exc, f"downloading {repo_id}") from exc
    except httpx.TransportError as exc:
        raise HubError(f"cannot reach the Hub at {api.endpoint} to download {repo_id}: {exc}",
                       "check HF_ENDPOINT and the network, then run verify again") from exc
    return Path(folder), commit


def check_files(folder: Path) -> dict:
    """Every file listed in hubforge.json has its recorded sha256, and nothing else is in the repo but community
    measurements; returns the manifest."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise TamperedError(f"{MANIFEST}: missing, so no file can be checked",
                            "verify only repos published by hubforge")
    manifest = json.loads(manifest_path.read_text())
    listed = manifest["files"]
    for path, expected in sorted(listed.items()):
        local = folder / path
        if not local.is_file():
            raise TamperedError(f"{path}: listed in {MANIFEST} but missing from the repo",
                                "do not use this revision; tell the repo's owner")
        actual = sha256_of(local)
        if actual != expected:
            raise TamperedError(f"{path}: sha256 {actual[:16]}… does not match {MANIFEST} ({expected[:16]}…)",
                                "the file changed after hubforge measured it; do not use this revision")
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    unlisted = sorted(p for p in present - set(listed) - {MANIFEST, ".gitattributes"}
                      if not is_record(p) and not p.startswith(".cache/"))
    if unlisted:
        raise TamperedError(f"{unlisted[0]}: in the repo but not in {MANIFEST}"
                            + (f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""),
                            "a file was added after publishing; do not use this revision")
    return manifest


def published_spec(manifest: dict) -> ModelSpec:
    """The spec the repo was built from: published in the manifest, else the local spec of the same id, accepted
    only when its hash is the one recorded."""
    spec = ModelSpec.model_validate(manifest["spec"]) if "spec" in manifest else load_spec(manifest["model"])
    if spec.digest() != manifest["spec_hash"]:
        raise SpecError(f"spec {manifest['model']} has hash {spec.digest()}, the repo was built from "
                        f"{manifest['spec_hash']}",
                        "verify a revision published with its spec in hubforge.json, or check out the spec it used")
    return spec


def upstream_source(api: HfApi, spec: ModelSpec, manifest: dict) -> SourceModel:
    """The fp32 original at exactly the commit the artifacts were built from."""
    upstream = manifest["upstream"]
    pinned = spec.model_copy(update={"source": SourceSpec(repo=upstream["repo"], revision=upstream["sha"])})
    return fetch_source(pinned, api)


# ---- local measurement


def _package_version(runtime: str) -> str:
    try:
        return version(RUNTIME_PACKAGES.get(runtime, runtime))
    except PackageNotFoundError:
        return ""


@dataclass(frozen=True)
class LocalRow:
    """One published variant measured on this machine."""

    name: str
    runtime: str
    runtime_version: str
    provider: str
    fidelity: Fidelity
    gate: str  # the card's fidelity gate applied to the local fidelity
    passed: bool
    tasks: list[TaskScore] = field(default_factory=list)
    speed: Speed | None = None
    memory: Memory | None = None  # measured as the publisher did: a fresh process, the same shapes

    def as_dict(self) -> dict:
        return {"name": self.name, "runtime": self.runtime, "runtime_version": self.runtime_version,
                "provider": self.provider, "fidelity": self.fidelity.as_dict(), "gate": self.gate,
                "passed": self.passed, "tasks": [t.as_dict() for t in self.tasks],
                "speed": self.speed.as_dict() if self.speed else None,
                "memory": self.memory.as_dict() if self.memory else None}

    def record(self) -> dict:
        """The row a community measurement carries."""
        speed = self.speed
        return {"name": self.name, "runtime": self.runtime, "runtime_version": self.runtime_version,
                "provider": self.provider, "threads": speed.threads if speed else None,
                "latency_p50_ms": speed.p50_ms if speed else None, "latency_p90_ms": speed.p90_ms if speed else None,
                "sequences_per_s": speed.sequences_per_s if speed else None,
                "tokens_per_s": speed.tokens_per_s if speed else None,
                "memory_mb": self.memory.peak_mb if self.memory else None,
                "fidelity": self.fidelity.as_dict(), "agrees_with_gate": self.passed,
                "tasks": [{"task": t.task, "main_metric": t.main_metric, "main_score": t.main_score,
                           "sample": t.sample} for t in self.tasks]}


def measure_variant(variant: dict, folder: Path, inputs: BuildInputs, *, reference: Reference, options: EvalOptions,
                    report: Report) -> LocalRow:
    """Load the published files in the variant's own runtime and measure them as the publisher did: fidelity and
    tasks here, speed and memory in a fresh worker process."""
    target = get_target(variant["name"])
    files = {path: folder / path for path in variant["files"]}
    artifact = measure_artifact(target, files, inputs, reference=reference)
    provider, spec = artifact.encoder.runtime.provider, inputs.spec
    tasks = []
    if options.quality:
        encoder, _ = evaluation_encoder(target, artifact.closed(), inputs, reference=reference)
        tasks = evaluate_tasks(encoder, spec)
    speed = memory = None
    if options.speed:
        timing = run_step(Step("speed", variant["name"], speed_step, (type(target), files, inputs.io), options.threads,
                               kwargs={"spec": spec, "texts": reference.fidelity_texts}), report)
        if timing.error:
            raise timing.error
        speed, memory = timing.value
    decision = check_fidelity(artifact.fidelity, GateSpec(**variant["gate_thresholds"]))
    return LocalRow(variant["name"], target.runtime_name, _package_version(target.runtime_name), provider,
                    artifact.fidelity, decision.summary(), decision.passed, tasks, speed, memory)


# ---- comparison


@dataclass(frozen=True)
class Check:
    """One metric of one variant: the card's number, the local one, and the tolerance the gate allows (None: the
    metric is reported side by side but depends on the machine, like latency)."""

    variant: str
    metric: str
    card: float | None
    local: float | None
    tolerance: float | None

    @property
    def diff(self) -> float | None:
        return None if self.card is None or self.local is None else self.local - self.card

    @property
    def agrees(self) -> bool:
        """Gated metrics agree within the tolerance; one not measured here (--no-quality) is not a disagreement."""
        if self.tolerance is None or self.local is None:
            return True
        return self.diff is not None and abs(self.diff) <= self.tolerance + 1e-9

    def as_dict(self) -> dict:
        return {"variant": self.variant, "metric": self.metric, "card": self.card, "local": self.local,
                "diff": self.diff, "tolerance": self.tolerance, "agrees": self.agrees}


def tolerance(metric: str, card: float | None, gate: GateSpec) -> float | None:
    """The gate's own slack: fidelity within (1 - its threshold), a task score within (1 - min_retention) of the
    card's score. Speed, size and memory depend on the machine and are not gated."""
    slack = {"fidelity.mean_cosine": 1 - gate.min_mean_cosine, "fidelity.p5_cosine": 1 - gate.min_p5_cosine,
             "fidelity.spearman": 1 - gate.min_spearman}
    if metric in slack:
        return slack[metric]
    if metric.startswith("task.") and card is not None:
        return abs(card) * (1 - gate.min_retention)
    return None


def compare(card_variant: dict, row: LocalRow) -> list[Check]:
    gate = GateSpec(**card_variant["gate_thresholds"])
    card, local = variant_metrics(card_variant), variant_metrics(row.as_dict())
    card.pop("size_mb", None)  # identical by the hash check
    return [Check(row.name, metric, card.get(metric), local.get(metric), tolerance(metric, card.get(metric), gate))
            for metric in dict.fromkeys([*card, *local])]


@dataclass(frozen=True)
class Verification:
    repo_id: str
    commit: str
    model: str
    card_hardware: dict
    hardware: Hardware
    rows: list[LocalRow]
    checks: list[Check]
    skipped: tuple[NotMeasured, ...] = ()

    @property
    def agrees(self) -> bool:
        return all(row.passed for row in self.rows) and all(c.agrees for c in self.checks)

    @property
    def exit_code(self) -> int:
        return EXIT_AGREES if self.agrees else EXIT_DISAGREES

    def as_dict(self) -> dict:
        return {"repo": self.repo_id, "revision": self.commit, "model": self.model, "agrees": self.agrees,
                "exit_code": self.exit_code, "card_hardware": self.card_hardware,
                "hardware": self.hardware.as_dict(), "not_measured": [str(s) for s in self.skipped],
                "variants": [r.as_dict() for r in self.rows], "checks": [c.as_dict() for c in self.checks]}

    def record(self) -> dict:
        """measurements/<machine>.json: what this machine measured, for the card's community table."""
        return {"hubforge_version": __version__, "repo": self.repo_id, "revision": self.commit,
                "hardware": self.hardware.as_dict(), "agrees_with_card": self.agrees,
                "not_measured": [str(s) for s in self.skipped], "variants": [r.record() for r in self.rows]}


def _selected(variants: list[dict], formats: list[str] | None, repo_id: str) -> list[dict]:
    if not formats:
        return variants
    names = [v["name"] for v in variants]
    missing = [f for f in formats if f not in names]
    if missing:
        raise FormatError(f"{repo_id} holds no {', '.join(missing)} variant", f"it holds: {', '.join(names)}")
    return [v for v in variants if v["name"] in formats]


def verify(api: HfApi, repo_id: str, revision: str | None = None, *, formats: list[str] | None = None,
           options: EvalOptions = EvalOptions(), report: Report = silent) -> Verification:
    report(f"download {repo_id}@{revision or 'main'}")
    folder, commit = download_repo(api, repo_id, revision)
    manifest = check_files(folder)
    report(f"files: {len(manifest['files'])} match {MANIFEST} → ok", decision=True)
    card = json.loads((folder / "results.json").read_text())
    spec = published_spec(manifest)
    source = upstream_source(api, spec, manifest)
    report(f"reference: {source.repo_id} @ {source.sha[:12]}, its own fp32 pipeline", decision=True)
    io = model_io(spec, source)
    fidelity_texts = sample_texts(spec.evaluation.fidelity_texts, spec.evaluation.fidelity_samples, split="train")
    reference = compute_reference(io, spec, fidelity_texts)
    inputs = BuildInputs(spec, source, NO_EXPORT, [], io)
    rows, checks = [], []
    for variant in _selected(card["variants"], formats, repo_id):
        report(f"measure: {variant['name']}")
        try:
            row = measure_variant(variant, folder, inputs, reference=reference, options=options, report=report)
        except HubforgeError:
            raise
        except Exception as exc:
            raise HubforgeError(f"{variant['name']} does not run here: {failure(exc)}",
                                "check that its runtime is installed (see the card's usage section)") from exc
        rows.append(row)
        checks.extend(compare(variant, row))
        report(f"{variant['name']}: {row.fidelity.summary()} on {row.provider} → {row.gate}", decision=True)
    return Verification(repo_id, commit, spec.id, card.get("hardware", {}), fingerprint(), rows, checks,
                        options.skipped())


def contribute(api: HfApi, verification: Verification) -> str:
    """Open a pull request adding this machine's record; the owner merges it, and the next publish shows it."""
    path = record_path(verification.hardware)
    content = json.dumps(verification.record(), indent=2, sort_keys=True).encode()
    try:
        info = api.create_commit(
            verification.repo_id, operations=[CommitOperationAdd(path, content)], create_pr=True,
            commit_message=f"measurements: {verification.hardware.cpu}",
            commit_description=f"`hubforge verify --contribute` of revision {verification.commit}, "
                               f"{'agrees' if verification.agrees else 'does not agree'} with the card.")
    except HfHubHTTPError as exc:
        raise hub_error(exc, f"opening a pull request on {verification.repo_id}") from exc
    return info.pr_url
