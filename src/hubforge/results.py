"""The typed results that flow from the measuring stages to the card and publish stages (and results.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .evaluation.fidelity import Fidelity
from .evaluation.hardware import Hardware
from .evaluation.memory import Memory
from .evaluation.speed import Speed
from .evaluation.swap import SwapSafety
from .source import SourceModel
from .spec import ModelSpec


@dataclass(frozen=True)
class NotMeasured:
    """A measurement a run left out, and why."""

    what: str  # "task quality", "speed", "consumer check"
    why: str  # e.g. "--no-speed"

    def __str__(self) -> str:
        return f"{self.what}: {self.why}"


@dataclass(frozen=True)
class Attempt:
    """One candidate configuration of one format: measured and gated, or failed with its reason."""

    config: dict
    fidelity: Fidelity | None = None
    gate: str = ""
    passed: bool = False
    error: str | None = None  # "ExceptionType: first line" when building, loading or measuring raised
    skipped: str | None = None  # why a probe showed it cannot pass: not built
    details: dict = field(default_factory=dict)  # what only its format measures (Target.details)

    def as_dict(self) -> dict:
        return {"config": self.config, "fidelity": self.fidelity.as_dict() if self.fidelity else None,
                "gate": self.gate, "passed": self.passed, "error": self.error, "skipped": self.skipped,
                "details": self.details}


@dataclass(frozen=True)
class KeptPrecise:
    """What the accuracy-aware search kept at higher precision, and what that cost in size and latency against the
    fully quantized build it started from (timed beside the chosen artifact, in the same run)."""

    nodes: tuple[str, ...]
    kept_as: str  # what precise means for the format: "float", "16-bit weights"
    ranked: int  # nodes the search ranked
    layers: tuple[int, ...]  # encoder layers the kept nodes sit in
    base_config: dict
    base_size_bytes: int
    base_files: dict = field(default_factory=dict, compare=False)  # the fully quantized build, to time it
    base_p50_ms: float | None = None

    def as_dict(self) -> dict:
        return {"nodes": list(self.nodes), "count": len(self.nodes), "kept_as": self.kept_as, "ranked": self.ranked,
                "layers": list(self.layers), "base_config": self.base_config,
                "base_size_bytes": self.base_size_bytes, "base_p50_ms": self.base_p50_ms}


@dataclass(frozen=True)
class VariantResult:
    """One row of the results: the fp32 reference or an artifact, with everything measured about it."""

    name: str
    runtime: str
    precision: str
    target_hardware: str
    cpu_target: bool
    repo_suffix: str | None
    passed: bool
    gate: str  # "pass", or which check rejected it and why
    config: dict
    attempts: list[Attempt]
    fidelity: Fidelity | None
    tasks: list = field(default_factory=list)  # evaluation.tasks.TaskScore
    retention: dict[str, float] = field(default_factory=dict)
    speed: Speed | None = None
    memory: Memory | None = None  # measured with speed, in a fresh process per variant
    size_bytes: int = 0
    files: dict[str, Path] = field(default_factory=dict)
    gate_thresholds: dict = field(default_factory=dict)
    evaluation_note: str = ""  # how task scores were computed, where it differs from the measured runtime
    kept: KeptPrecise | None = None  # the accuracy-aware search's nodes kept precise, if it ran and passed
    fixed_shape: bool = False  # its repo carries no sentence-transformers configuration (layout.pipeline_files)
    consumers: list = field(default_factory=list)  # evaluation.consumers.ClientCheck, one per client of its file
    swap: SwapSafety | None = None  # mixing its embeddings with fp32's in one index
    swap_error: str = ""  # why swap safety could not be computed

    @property
    def details(self) -> dict:
        """What only its format measures (Target.details), from the attempt its files come from."""
        return self.attempts[-1].details if self.passed and self.attempts else {}

    @property
    def quality(self) -> dict[str, float]:
        """{task: main score}."""
        return {t.task: t.main_score for t in self.tasks}

    def as_dict(self) -> dict:
        return {
            "name": self.name, "runtime": self.runtime, "precision": self.precision,
            "target_hardware": self.target_hardware, "cpu_target": self.cpu_target,
            "repo_suffix": self.repo_suffix, "passed": self.passed, "gate": self.gate,
            "gate_thresholds": self.gate_thresholds, "config": self.config,
            "attempts": [a.as_dict() for a in self.attempts],
            "fidelity": self.fidelity.as_dict() if self.fidelity else None,
            "tasks": [t.as_dict() for t in self.tasks], "quality": self.quality, "retention": self.retention,
            "evaluation_note": self.evaluation_note, "speed": self.speed.as_dict() if self.speed else None,
            "memory": self.memory.as_dict() if self.memory else None,
            "size_bytes": self.size_bytes, "files": sorted(self.files),
            "kept_precise": self.kept.as_dict() if self.kept else None,
            "details": self.details, "fixed_shape": self.fixed_shape,
            "consumers": [c.as_dict() for c in self.consumers],
            "swap_safety": self.swap.as_dict() if self.swap else None, "swap_safety_error": self.swap_error or None,
        }


@dataclass(frozen=True)
class RunResult:
    spec: ModelSpec
    source: SourceModel
    hardware: Hardware
    reference: VariantResult
    variants: list[VariantResult]
    requested: list[str]
    skipped: tuple[NotMeasured, ...] = ()  # measurements not run, with the reason
    stages: tuple[dict, ...] = ()  # workers.StepResult.record(): one per worker step, in order
    hubforge_version: str = __version__

    @property
    def published(self) -> list[VariantResult]:
        return [v for v in self.variants if v.passed]

    @property
    def not_published(self) -> list[VariantResult]:
        return [v for v in self.variants if not v.passed]

    def as_dict(self) -> dict:
        return {
            "model": self.spec.id,
            "upstream": {"repo": self.source.repo_id, "revision": self.source.revision, "sha": self.source.sha,
                         "license": self.source.license},
            "spec_hash": self.spec.digest(),
            "spec": self.spec.model_dump(mode="json"),
            "spec_derived": self.spec.derived,
            "hubforge_version": self.hubforge_version,
            "hardware": self.hardware.as_dict(),
            "requested_formats": self.requested,
            "not_measured": [str(s) for s in self.skipped],
            "stages": list(self.stages),
            "reference": self.reference.as_dict(),
            "variants": [v.as_dict() for v in self.variants],
        }
