"""The whole job, top to bottom: spec → source → reference → targets → evaluation → gate (→ card → publish)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import __version__
from .build import BuiltArtifact, build_format, cache_key
from .datasets import sample_texts
from .evaluation.fidelity import Fidelity
from .evaluation.hardware import Hardware, fingerprint
from .evaluation.quality import check_mteb_tasks, evaluate_quality
from .evaluation.speed import Speed, measure_speed
from .export import export_fp32_onnx
from .paths import cache_dir
from .runtimes import ModelIO, Runtime, TextEncoder, TorchRuntime
from .source import SourceModel
from .spec import ModelSpec
from .targets.base import BuildInputs

Report = Callable[[str], None]


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
    gate: str
    config: dict
    attempts: list[dict]
    fidelity: Fidelity | None
    quality: dict[str, float]
    retention: dict[str, float]
    speed: Speed | None
    size_bytes: int
    files: dict[str, Path] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "name": self.name, "runtime": self.runtime, "precision": self.precision,
            "target_hardware": self.target_hardware, "cpu_target": self.cpu_target,
            "repo_suffix": self.repo_suffix, "passed": self.passed,
            "gate": self.gate, "config": self.config, "attempts": self.attempts,
            "fidelity": self.fidelity.as_dict() if self.fidelity else None, "quality": self.quality,
            "retention": self.retention, "speed": self.speed.as_dict() if self.speed else None,
            "size_bytes": self.size_bytes, "files": sorted(self.files),
        }


@dataclass(frozen=True)
class RunResult:
    spec: ModelSpec
    source: SourceModel
    hardware: Hardware
    reference: VariantResult
    variants: list[VariantResult]
    hubforge_version: str = __version__

    @property
    def published(self) -> list[VariantResult]:
        return [v for v in self.variants if v.passed]

    def as_dict(self) -> dict:
        return {
            "model": self.spec.id,
            "upstream": {"repo": self.source.repo_id, "revision": self.source.revision, "sha": self.source.sha,
                         "license": self.source.license},
            "spec_hash": self.spec.digest(),
            "hubforge_version": self.hubforge_version,
            "hardware": self.hardware.as_dict(),
            "reference": self.reference.as_dict(),
            "variants": [v.as_dict() for v in self.variants],
        }


@dataclass(frozen=True)
class EvalOptions:
    quality: bool = True
    speed: bool = True
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))


def model_io(spec: ModelSpec, source: SourceModel) -> ModelIO:
    return ModelIO(source.path, spec.task, spec.pooling, spec.normalize, spec.max_length)


def _measure(encoder: TextEncoder, spec: ModelSpec, options: EvalOptions, texts: list[str]):
    quality = evaluate_quality(encoder, spec) if options.quality else {}
    speed = None
    if options.speed:
        speed = measure_speed(encoder, texts, spec.evaluation.latency_shape, spec.evaluation.throughput_batch,
                              spec.evaluation.timed_runs, options.threads)
    return quality, speed


def _retention(quality: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    return {k: v / reference[k] for k, v in quality.items() if reference.get(k)}


def run(spec: ModelSpec, source: SourceModel, formats: list[str], options: EvalOptions = EvalOptions(),
        report: Report = lambda msg: None, cache_root: Path | None = None) -> RunResult:
    if options.quality:
        check_mteb_tasks(spec.evaluation.mteb_tasks)
    cache_root = cache_root or cache_dir()
    io = model_io(spec, source)
    calibration = sample_texts(spec.calibration_texts, 300, split="test", seed=1)
    fidelity_texts = sample_texts(spec.evaluation.fidelity_texts, spec.evaluation.fidelity_samples, split="train")

    report("reference: fp32 PyTorch outputs")
    reference_encoder = TextEncoder(io, TorchRuntime(source.path, spec.task))
    reference_outputs = reference_encoder.outputs(fidelity_texts, spec.query_prefix)

    report("export: fp32 ONNX")
    fp32 = export_fp32_onnx(spec, source, cache_root / cache_key(spec, source) / "export")
    inputs = BuildInputs(spec, source, fp32, calibration, io)

    built: list[BuiltArtifact] = []
    for name in formats:
        built.append(build_format(name, inputs, cache_root, fidelity_texts, reference_outputs,
                                  lambda fmt, msg: report(f"{fmt}: {msg}")))

    report("evaluate: fp32 reference")
    ref_quality, ref_speed = _measure(reference_encoder, spec, options, fidelity_texts)
    reference = VariantResult(
        name="fp32 (PyTorch)", runtime="pytorch", precision="fp32", target_hardware="reference", cpu_target=True,
        repo_suffix=None, passed=True, gate="reference", config={}, attempts=[], fidelity=None, quality=ref_quality,
        retention={}, speed=ref_speed, size_bytes=sum(p.stat().st_size for p in source.path.glob("*.safetensors")),
    )
    variants = []
    for artifact in built:
        quality, speed = {}, None
        if artifact.passed:
            report(f"evaluate: {artifact.format}")
            runtime: Runtime = artifact.target.load(artifact.files, inputs)
            quality, speed = _measure(TextEncoder(io, runtime), spec, options, fidelity_texts)
        target = artifact.target
        variants.append(VariantResult(
            name=artifact.format, runtime=target.runtime_name, precision=target.precision,
            target_hardware=target.hardware, cpu_target=target.cpu_target, repo_suffix=target.repo_suffix,
            passed=artifact.passed, gate=artifact.chosen.decision.summary(), config=artifact.chosen.config,
            attempts=[a.as_dict() for a in artifact.attempts], fidelity=artifact.chosen.fidelity, quality=quality,
            retention=_retention(quality, ref_quality), speed=speed, size_bytes=artifact.size_bytes,
            files=artifact.files,
        ))
    return RunResult(spec, source, fingerprint(), reference, variants)
