"""What every target format provides: options, candidate configurations in order of speed, a build, a runtime."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from ..runtimes import ModelIO, Runtime
from ..source import SourceModel
from ..spec import GateSpec, ModelSpec


class TargetOptions(BaseModel):
    """Per-format options from the spec's `formats:` mapping; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    gate: GateSpec | None = None


@dataclass(frozen=True)
class BuildInputs:
    """Shared by all targets of one run: one fp32 export and one calibration set."""

    spec: ModelSpec
    source: SourceModel
    fp32_onnx: Path
    calibration_texts: list[str]
    io: ModelIO


class Target(ABC):
    name: ClassVar[str]
    repo_suffix: ClassVar[str]
    runtime_name: ClassVar[str]
    precision: ClassVar[str]
    hardware: ClassVar[str]
    description: ClassVar[str]
    cpu_target: ClassVar[bool] = True  # False where a CPU timing says nothing about the intended hardware
    options_model: ClassVar[type[TargetOptions]] = TargetOptions

    def candidates(self, options: TargetOptions) -> list[dict]:
        """Configurations to try, fastest first; the first that passes the gate is kept."""
        return [{}]

    @abstractmethod
    def build(self, inputs: BuildInputs, options: TargetOptions, config: dict, out_dir: Path) -> dict[str, Path]:
        """Write the artifact into `out_dir`; returns {path in the published repo: local file}."""

    @abstractmethod
    def load(self, files: dict[str, Path], inputs: BuildInputs) -> Runtime:
        """Open the built artifact in its own runtime."""


def config_label(config: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(config.items())) or "default"
