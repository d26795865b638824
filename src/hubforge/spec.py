"""Stage 1 — the model spec: what to convert, how to evaluate it, where to publish it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import SpecError
from .paths import spec_dirs


POOLING_MODES = ("mean", "cls", "max", "weightedmean", "lasttoken", "mean_sqrt_len_tokens")  # sentence-transformers'


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(StrictModel):
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="upstream repo id, e.g. BAAI/bge-small-en-v1.5")
    revision: str = "main"


class GateSpec(StrictModel):
    """Minimum fidelity against the fp32 reference; embeddings use cosine, cross-encoders score correlation."""

    min_mean_cosine: float = Field(0.99, ge=-1, le=1)
    min_p5_cosine: float = Field(0.98, ge=-1, le=1)
    min_spearman: float = Field(0.98, ge=-1, le=1)
    min_retention: float = Field(0.99, ge=0, le=2, description="each task's main score vs fp32")


def _known_text_set(name: str) -> str:
    from .datasets import TEXT_SETS

    if name not in TEXT_SETS:
        raise ValueError(f"unknown text set {name!r}; bundled: {', '.join(TEXT_SETS)}")
    return name


# The default evaluation sample: a bge-large publish (8 formats) evaluates in its time goal while each task keeps
# mteb's protocol (Banking77Classification: 10 experiments of 8/label logistic regression). The card states it;
# `test_sample: null` and `train_per_label: null` run the full splits (the leaderboard's numbers).
TEST_SAMPLE = 385  # 5 per Banking77 label
TRAIN_PER_LABEL = 9


class EvaluationSpec(StrictModel):
    """Task quality runs through mteb: `classification: banking77` is mteb's Banking77Classification on the
    bundled copy; retrieval/reranking/sts name hubforge's sets derived from it (sts also takes a CSV path);
    `mteb_tasks` are mteb's own tasks, their data read from the Hub endpoint."""

    fidelity_texts: str = "banking77"
    fidelity_samples: int = Field(128, ge=8)
    retrieval: str | None = None
    classification: str | None = None
    reranking: str | None = None
    sts: str | None = None
    mteb_tasks: list[str] = []
    test_sample: int | None = Field(TEST_SAMPLE, ge=10, description="evaluate this many test items per task "
                                    "(same deterministic sample for fp32 and every artifact); null: the full split")
    train_per_label: int | None = Field(TRAIN_PER_LABEL, ge=1, description="a classification task's train pool, "
                                        "items per label, that mteb's experiments draw from; null: the full split")
    latency_shape: tuple[int, int] = (1, 128)
    throughput_batch: int = Field(32, ge=1)
    timed_runs: int = Field(50, ge=5)
    timed_seconds: float | None = Field(2.0, gt=0, description="stop timing latency once this is spent (after at "
                                        "least 10 calls); None: always timed_runs calls")

    _texts = field_validator("fidelity_texts")(_known_text_set)


class PublishSpec(StrictModel):
    org: str = Field("hubforge", pattern=r"^[\w.-]+$")
    name: str | None = Field(None, pattern=r"^[\w.-]+$", description="repo base name; defaults to the spec id")
    max_regression: float | None = Field(
        None, ge=0, le=1, description="largest drop of a task score or fidelity metric against the previously "
        "published results.json that may still go to main; a larger one opens a pull request instead")


class ModelSpec(StrictModel):
    id: str = Field(pattern=r"^[\w.-]+$")
    source: SourceSpec
    task: Literal["sentence-embedding", "cross-encoder", "feature-extraction"]
    pooling: Literal[POOLING_MODES] = Field(
        "mean", description="read from the model's own sentence-transformers config where it declares one")
    normalize: bool = True
    trust_remote_code: bool = Field(False, description="allow models whose config maps to custom code (auto_map)")
    query_prefix: str = ""
    max_length: int = Field(128, ge=8, le=8192)
    calibration_texts: str = "banking77"
    formats: dict[str, dict] = Field(default_factory=lambda: {"onnx": {}, "fp16": {}})
    gate: GateSpec = GateSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    publish: PublishSpec = PublishSpec()
    derived: bool = Field(False, exclude=True, description="derived by hubforge from the model's own files "
                          "(derive.py), not written by hand; not part of the spec's content or digest")

    _texts = field_validator("calibration_texts")(_known_text_set)

    @field_validator("formats", mode="before")
    @classmethod
    def _empty_options(cls, formats: dict) -> dict:
        """`onnx:` with nothing after it means default options."""
        return {name: options or {} for name, options in (formats or {}).items()}

    @property
    def repo_base(self) -> str:
        return self.publish.name or self.id

    def digest(self) -> str:
        """A stable hash of everything that shapes the artifacts, recorded on cards and manifests."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FoundSpec:
    path: Path
    origin: str  # `paths.SpecDir.origin`


def available_specs() -> dict[str, FoundSpec]:
    """Every spec id on the lookup path (`paths.spec_dirs`), each from the first directory that has it."""
    found: dict[str, FoundSpec] = {}
    for spec_dir in spec_dirs():
        for path in sorted(spec_dir.path.glob("*.yaml")):
            found.setdefault(path.stem, FoundSpec(path, spec_dir.origin))
    return dict(sorted(found.items()))


def spec_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.exists():
            raise SpecError(f"spec file {candidate} does not exist", "check the path, or pass a spec id")
        return candidate
    specs = available_specs()
    if name_or_path not in specs:
        raise SpecError(
            f"no spec named {name_or_path!r}",
            f"known specs: {', '.join(specs) or 'none'}; or pass a Hub repo id, a model directory or a spec file",
        )
    return specs[name_or_path].path


def load_spec(name_or_path: str) -> ModelSpec:
    path = spec_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read it as a spec ({exc.strerror})",
                        "pass a spec id (`hubforge specs list`) or a YAML spec file") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}", "fix the YAML syntax at the position shown") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping",
                        "start from `hubforge specs new MODEL`, which writes one")
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"]) or "(root)"
            problems.append(f"{field}: {err['msg']}")
        raise SpecError(
            f"{path}: invalid spec\n  " + "\n  ".join(problems),
            "fix the named field(s); `hubforge specs validate` checks every spec",
        ) from exc
