"""What every target format provides: its identity (repo, card, help, default gate), typed candidate
configurations in order of speed, a build and a runtime.

Defining a subclass with a `name` registers it: a new format is one file here plus its usage template.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ..paths import template_file
from ..runtimes import ModelIO, Runtime, TextEncoder
from ..source import SourceModel
from ..spec import GateSpec, ModelSpec
from .sensitivity import MAX_SEARCH_BUILDS, Ranking

REGISTERED: dict[str, type[Target]] = {}


class TargetOptions(BaseModel):
    """Per-format options from the spec's `formats:` mapping; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    gate: GateSpec | None = None


class SearchOptions(TargetOptions):
    """Options of a format whose first built candidate that misses its gate is searched on (`pipeline.keep_search`)."""

    search_builds: int = Field(MAX_SEARCH_BUILDS, ge=0, le=20,
                               description="most builds the accuracy-aware search spends; 0: none")


class CandidateConfig(BaseModel):
    """One configuration a target tries; recorded as-is in results.json and on the card."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def label(self) -> str:
        """'key=value,...' for progress lines and cache folders, without optional fields left at their default;
        tuples read 'MatMul+Gemm', others (the nodes a search kept) their length and a digest."""
        import hashlib
        import re

        def value(v) -> str:
            if not isinstance(v, tuple):
                return str(v)
            if len(v) <= 3 and all(re.fullmatch(r"\w+", item) for item in v):
                return "+".join(v)
            return f"{len(v)}nodes-{hashlib.sha256('+'.join(v).encode()).hexdigest()[:8]}"

        optional = {k for k, field in type(self).model_fields.items() if not field.is_required()}
        shown = {k: v for k, v in dict(self).items() if k not in optional or v != type(self).model_fields[k].default}
        return ",".join(f"{k}={value(v)}" for k, v in sorted(shown.items())) or "default"


@dataclass(frozen=True)
class BuildInputs:
    """Shared by all targets of one run: one fp32 export and one calibration set."""

    spec: ModelSpec
    source: SourceModel
    fp32_onnx: Path
    calibration_texts: list[str]
    io: ModelIO

    @property
    def bounded_onnx(self) -> Path:
        """The export with its attention mask bounded (attention_mask.py), what the CPU and GPU formats build
        from; the NPU formats build from `fp32_onnx`, the exporter's graph."""
        from ..attention_mask import bounded_export

        return bounded_export(self.fp32_onnx)


class Target(ABC):
    name: ClassVar[str]
    repo_suffix: ClassVar[str]
    library_name: ClassVar[str]
    tags: ClassVar[tuple[str, ...]] = ()
    runtime_name: ClassVar[str]
    precision: ClassVar[str]
    hardware: ClassVar[str]
    description: ClassVar[str]
    order: ClassVar[int] = 100  # position in listings
    workload: ClassVar[int] = 1  # a build and evaluation's time relative to the others': the largest start first, so
    # that parallel lanes finish together (`hubforge demo`'s steps table: qnn ~20 s, ov-int8 ~14, q4f16 ~10, onnx ~6)
    cpu_target: ClassVar[bool] = True  # False where a CPU timing says nothing about the intended hardware
    options_model: ClassVar[type[TargetOptions]] = TargetOptions
    default_gate: ClassVar[GateSpec | None] = None  # None: the spec's gate
    usage_template: ClassVar[Path | None] = None  # default: formats/<name>.md.j2 of the templates
    kept_as: ClassVar[str] = "float"  # how the accuracy-aware search keeps a node precise (see `keeping`)
    fixed_shape: ClassVar[bool] = False  # one padded sequence a call (see `is_fixed_shape`)
    clients: ClassVar[tuple[str, ...]] = ("onnxruntime",)  # what the card says loads the file
    # (evaluation.consumers.CLIENTS); each one is checked before the file is published

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTERED[cls.name] = cls

    @classmethod
    def template_path(cls) -> Path:
        return cls.usage_template or template_file(f"formats/{cls.name}.md.j2")

    def gate(self, options: TargetOptions, spec: ModelSpec) -> GateSpec:
        """The spec's per-format gate, else the format's own default (stated on the card), else the spec's gate."""
        return options.gate or self.default_gate or spec.gate

    def candidates(self, options: TargetOptions, inputs: BuildInputs) -> list[CandidateConfig]:
        """Configurations to try, fastest first; the first that passes the gate is kept."""
        return [CandidateConfig()]

    @abstractmethod
    def build(self, inputs: BuildInputs, options: TargetOptions, config: CandidateConfig,
              *, out_dir: Path) -> dict[str, Path]:
        """Write the artifact into `out_dir`; returns {path in the published repo: local file}."""

    @abstractmethod
    def load(self, files: dict[str, Path], inputs: BuildInputs) -> Runtime:
        """Open the built artifact in its own runtime."""

    def encoder(self, files: dict[str, Path], io: ModelIO) -> TextEncoder:
        """The artifact as its consumers get outputs from it: its runtime behind the model's own tokenizer and
        post-processing (see GgufTarget for a runtime that tokenizes and pools itself)."""
        return TextEncoder(io, self.load(files, None))

    def details(self, encoder: TextEncoder, files: dict[str, Path], texts: list[str]) -> dict:
        """Measurements only this format has, recorded with its attempt and shown by its usage template (GGUF:
        tokenizer agreement); `encoder` is the measured one, `texts` the fidelity texts."""
        return {}

    def evaluation_view(self, files: dict[str, Path]) -> Runtime | None:
        """A cheaper view of the same graph for task evaluation (see QdqTarget); None: the artifact's own runtime."""
        return None

    def sensitivity(self, options: TargetOptions, inputs: BuildInputs, config: CandidateConfig,
                    *, files: dict[str, Path]) -> Ranking | None:
        """The nodes of `config`'s build (`files`, which missed the gate) ranked by the error they cause, most
        first; the accuracy-aware search then keeps the fewest of them precise that pass (`keeping`). None: this
        format has no such search."""
        return None

    def keeping(self, config: CandidateConfig, nodes: tuple[str, ...]) -> CandidateConfig:
        """`config` with `nodes` kept at higher precision (`kept_as`): a searched format's configuration carries
        them in a `keep` field, which its build reads."""
        return config.model_copy(update={"keep": nodes})

    def is_fixed_shape(self, options: TargetOptions) -> bool:
        """Whether the file takes exactly one sequence of max_length tokens a call: its repo then carries no
        sentence-transformers configuration, and only clients that feed it so (`Client.fixed_shape`) load it."""
        return self.fixed_shape

    def cannot_pass(self, options: TargetOptions, config: CandidateConfig, inputs: BuildInputs) -> str | None:
        """Why `config` cannot pass the gate, where a probe far cheaper than building it can tell (see QdqTarget);
        the candidate is then skipped and the reason recorded. None: build it."""
        return None
