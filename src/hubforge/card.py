"""Stage 7 — the model card: Hub metadata plus results tables, all rendered from the results object."""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .errors import CardError
from .paths import TEMPLATES_DIR
from .pipeline import RunResult, VariantResult
from .plot import PLOT_FILE

PIPELINE_TAGS = {"sentence-embedding": "sentence-similarity", "cross-encoder": "text-classification",
                 "feature-extraction": "feature-extraction"}
LIBRARY = {"onnx": "onnx", "qnn": "onnx", "amd": "onnx", "openvino": "openvino", "mnn": "mnn"}
HARDWARE_TAGS = {"qnn": ["qualcomm", "qnn", "npu"], "amd": ["amd", "vitis-ai", "ryzen-ai", "npu"],
                 "openvino": ["intel", "openvino"], "mnn": ["mnn", "mobile", "edge"], "onnx": ["onnxruntime"]}


@dataclass(frozen=True)
class RepoCard:
    repo_id: str
    suffix: str
    text: str
    metadata: dict


def repo_id_for(result: RunResult, suffix: str) -> str:
    return f"{result.spec.publish.org}/{result.spec.repo_base}-{suffix}"


def metric_rows(variant: VariantResult) -> list[dict]:
    return [{"type": name.replace("@", "_at_"), "name": name, "value": round(value, 4)}
            for name, value in variant.quality.items()]


def card_metadata(result: RunResult, suffix: str, variants: list[VariantResult]) -> dict:
    if not result.source.license:
        raise CardError(f"upstream model {result.source.repo_id} declares no license",
                        "add `license:` to the upstream card, or publish only models whose license allows it")
    tags = ["hubforge", *HARDWARE_TAGS[suffix], *sorted({v.precision for v in variants}), result.spec.task]
    index_results = []
    for variant in variants:
        rows = metric_rows(variant)
        if rows:
            index_results.append({
                "task": {"type": PIPELINE_TAGS[result.spec.task]},
                "dataset": {"type": "banking77", "name": f"Banking77 ({variant.name} artifact)"},
                "metrics": [{"type": r["type"], "name": r["name"], "value": r["value"]} for r in rows],
            })
    metadata = {
        "base_model": result.source.repo_id,
        "base_model_relation": "quantized",
        "license": result.source.license,
        "library_name": LIBRARY[suffix],
        "pipeline_tag": PIPELINE_TAGS[result.spec.task],
        "tags": list(dict.fromkeys(tags)),
    }
    if index_results:
        metadata["model-index"] = [{"name": repo_id_for(result, suffix), "results": index_results}]
    return metadata


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), undefined=StrictUndefined, keep_trailing_newline=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["mb"] = lambda n: f"{n / 1e6:.1f} MB"
    env.filters["f4"] = lambda x: "—" if x is None else f"{x:.4f}"
    env.filters["f2"] = lambda x: "—" if x is None else f"{x:.2f}"
    env.filters["pct"] = lambda x: "—" if x is None else f"{100 * x:.1f}%"
    return env


def render_cards(result: RunResult, plot: bool = False) -> list[RepoCard]:
    """One card per published repo; formats sharing a repo (onnx, fp16, int8) share its card.
    `plot` says whether the variant chart (plot.PLOT_FILE) is published beside it."""
    env = _environment()
    by_repo: dict[str, list[VariantResult]] = {}
    for variant in result.published:
        by_repo.setdefault(variant.repo_suffix, []).append(variant)
    cards = []
    for suffix, variants in by_repo.items():
        metadata = card_metadata(result, suffix, variants)
        repo_id = repo_id_for(result, suffix)
        body = env.get_template("card.md.j2").render(
            r=result, repo_id=repo_id, suffix=suffix, variants=variants, reference=result.reference,
            quality_keys=list(result.reference.quality), spec=result.spec, source=result.source,
            hardware=result.hardware, siblings=[(s, repo_id_for(result, s)) for s in by_repo if s != suffix],
            rejected=[v for v in result.variants if not v.passed], plot_file=PLOT_FILE if plot else None,
        )
        header = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
        cards.append(RepoCard(repo_id, suffix, f"---\n{header}---\n\n{body}", metadata))
    return cards
