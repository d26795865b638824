"""Stage 4 — targets: build every requested format, searching each one's configurations until one passes its gate.

Built files are cached under (upstream sha, spec hash, hubforge version, format, configuration), so a re-run
converts nothing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .evaluation.fidelity import Fidelity, measure_fidelity
from .gate import GateDecision, check_gate
from .runtimes import TextEncoder
from .source import SourceModel
from .spec import ModelSpec
from .targets import TARGETS
from .targets.base import BuildInputs, Target, config_label


@dataclass(frozen=True)
class Attempt:
    config: dict
    fidelity: Fidelity | None
    decision: GateDecision

    def as_dict(self) -> dict:
        return {"config": self.config, "fidelity": self.fidelity.as_dict() if self.fidelity else None,
                "gate": self.decision.summary()}


@dataclass(frozen=True)
class BuiltArtifact:
    """A format's outcome: the kept configuration and files if one passed, and every attempt either way."""

    format: str
    target: Target
    attempts: tuple[Attempt, ...]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].decision.passed

    @property
    def chosen(self) -> Attempt:
        return self.attempts[-1]

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files.values())


def cache_key(spec: ModelSpec, source: SourceModel) -> str:
    return f"{source.sha[:12]}-{spec.digest()}-hubforge{__version__}"


def _build_cached(target: Target, inputs: BuildInputs, options, config: dict, out_dir: Path) -> dict[str, Path]:
    manifest = out_dir / "built.json"
    if manifest.exists():
        files = {repo_path: out_dir / name for repo_path, name in json.loads(manifest.read_text()).items()}
        if all(p.exists() for p in files.values()):
            return files
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    files = target.build(inputs, options, config, out_dir)
    manifest.write_text(json.dumps({k: v.name for k, v in files.items()}))
    return files


def build_format(
    name: str,
    inputs: BuildInputs,
    cache_root: Path,
    fidelity_texts: list[str],
    reference: np.ndarray,
    on_attempt: Callable[[str, str], None] = lambda fmt, msg: None,
) -> BuiltArtifact:
    target = TARGETS[name]()
    options = target.options_model.model_validate(inputs.spec.formats.get(name, {}))
    gate = options.gate or inputs.spec.gate
    attempts = []
    for config in target.candidates(options):
        label = config_label(config)
        on_attempt(name, f"building {label}")
        folder = label.replace("=", "-").replace(",", "_")
        out_dir = cache_root / cache_key(inputs.spec, inputs.source) / name / folder
        files = _build_cached(target, inputs, options, config, out_dir)
        encoder = TextEncoder(inputs.io, target.load(files, inputs))
        fidelity = measure_fidelity(reference, encoder.outputs(fidelity_texts, inputs.spec.query_prefix))
        decision = check_gate(fidelity, gate)
        attempts.append(Attempt(config, fidelity, decision))
        on_attempt(name, f"{label}: {fidelity.summary()} → {decision.summary()}")
        if decision.passed:
            return BuiltArtifact(name, target, tuple(attempts), files)
    return BuiltArtifact(name, target, tuple(attempts))
