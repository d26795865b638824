"""Stage 8 — the model card: Hub metadata (huggingface_hub's `ModelCardData`, MTEB-style model-index) plus results
tables, all rendered from the results object. Each format's library name, tags and usage template come from its
`Target`, so a new format needs nothing here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from huggingface_hub import ModelCard, ModelCardData
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .errors import CardError
from .evaluation.tasks import eval_results
from .paths import template_dirs
from .plot import PLOT_FILE
from .results import RunResult, VariantResult
from .runtimes import CPU_PROVIDERS, GPU_PROVIDERS, NPU_PROVIDERS
from .targets import get_target
from .targets.q4 import WEIGHT_4BIT_GATE

PIPELINE_TAGS = {"sentence-embedding": "sentence-similarity", "cross-encoder": "text-classification",
                 "feature-extraction": "feature-extraction"}


@dataclass(frozen=True)
class RepoCard:
    repo_id: str
    suffix: str
    text: str
    metadata: dict


def repo_id_for(result: RunResult, suffix: str) -> str:
    return f"{result.spec.publish.org}/{result.spec.repo_base}-{suffix}"


def card_data(result: RunResult, repo_id: str, variants: list[VariantResult]) -> ModelCardData:
    """The card's YAML header; the model-index carries the repo's default variant (its first file), whose task
    scores are mteb's main scores on the data sets named."""
    if not result.source.license:
        raise CardError(f"upstream model {result.source.repo_id} declares no license",
                        "add `license:` to the upstream card, or publish only models whose license allows it")
    targets = [get_target(v.name) for v in variants]
    tags = ["hubforge", *(t for target in targets for t in target.tags), *sorted({v.precision for v in variants}),
            result.spec.task]
    return ModelCardData(
        base_model=result.source.repo_id,
        base_model_relation="quantized",
        license=result.source.license,
        library_name=targets[0].library_name,
        pipeline_tag=PIPELINE_TAGS[result.spec.task],
        tags=list(dict.fromkeys(tags)),
        model_name=repo_id,
        eval_results=eval_results(variants[0].tasks) or None,
    )


def shown_config(config: dict) -> str:
    """A configuration as the card shows it: the nodes a search kept precise as their count (results.json names
    them)."""
    import json

    return json.dumps({k: f"{len(v)} nodes" if k == "keep" else v for k, v in config.items() if k != "keep" or v})


@dataclass(frozen=True)
class ConsumerMatrix:
    """The card's "Loads in" table: a row per file, a column per client, each cell what that client gave."""

    clients: list[str]
    rows: list[tuple[str, list[str]]]
    texts: int
    metric: str


def _cell(check) -> str:
    if check.status == "not measured":
        return "not measured (not installed)"
    if check.status == "failed":
        return f"fails: {check.detail}"
    return f"{check.value:.4f}" + (f" (lowest {check.worst:.4f})" if check.worst is not None else "")


def consumer_matrix(variants: list[VariantResult]) -> ConsumerMatrix | None:
    checks = [c for v in variants for c in v.consumers]
    if not checks:
        return None
    clients = list(dict.fromkeys(c.client for c in checks))
    by_file: dict[str, dict[str, str]] = {}
    for check in checks:
        by_file.setdefault(check.file, {})[check.client] = _cell(check)
    rows = [(file, [cells.get(client, "—") for client in clients]) for file, cells in by_file.items()]
    return ConsumerMatrix(clients, rows, checks[0].texts, checks[0].metric)


@dataclass(frozen=True)
class ABRow:
    """One row of the MNN card's A/B against GGUF: a file's retrieval scores, fidelity, size and latency."""

    variant: str
    precision: str  # the configuration its format kept (as "How it was produced" shows it); fp32's precision
    runtime: str
    ndcg_at_10: float | None
    recall_at_10: float | None
    mean_cosine: float | None
    size_bytes: int
    p50_ms: float | None


def _ab_row(v: VariantResult, reference: bool = False) -> ABRow:
    retrieval = next((t for t in v.tasks if t.task_type == "Retrieval"), None)
    scores = retrieval.scores if retrieval else {}
    cosine = 1.0 if reference else (v.fidelity.mean_cosine if v.fidelity and v.fidelity.kind == "cosine" else None)
    return ABRow(v.name, shown_config(v.config) if v.config else v.precision, v.runtime, scores.get("ndcg_at_10"),
                 scores.get("recall_at_10"), cosine, v.size_bytes, v.speed.p50_ms if v.speed else None)


def mnn_against_gguf(result: RunResult) -> list[ABRow]:
    """MNN beside every GGUF file the run published (and fp32), on the same retrieval texts: the two runtimes
    edge-device users choose between. Empty unless both were published."""
    mnn = [v for v in result.published if v.name == "mnn"]
    gguf = [v for v in result.published if v.repo_suffix == "gguf"]
    if not (mnn and gguf):
        return []
    return [_ab_row(result.reference, reference=True), *(_ab_row(v) for v in mnn + gguf)]


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(template_dirs()), undefined=StrictUndefined, keep_trailing_newline=True,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["mb"] = lambda n: f"{n / 1e6:.1f} MB"
    env.filters["f4"] = lambda x: "—" if x is None else f"{x:.4f}"
    env.filters["f2"] = lambda x: "—" if x is None else f"{x:.2f}"
    env.filters["pct"] = lambda x: "—" if x is None else f"{100 * x:.1f}%"
    env.filters["signed"] = lambda x: "—" if x is None else f"{x:+.4f}"
    env.filters["config"] = shown_config
    env.tests["search"] = lambda value, pattern: re.search(pattern, str(value)) is not None  # Jinja has none
    return env


def render_cards(result: RunResult, plot: bool = False, changes: dict | None = None,
                 *, community: dict | None = None) -> list[RepoCard]:
    """One card per published repo; formats sharing a repo (onnx, fp16, int8) share its card.
    `plot` says whether the variant chart (plot.PLOT_FILE) is published beside it; `changes` ({repo id:
    changes.Changes}) and `community` ({repo id: measurement records}) add their sections to the repos named."""
    from .community import card_rows

    changes, community = changes or {}, community or {}
    env = _environment()
    by_repo: dict[str, list[VariantResult]] = {}
    for variant in result.published:
        by_repo.setdefault(variant.repo_suffix, []).append(variant)
    tasks = result.reference.tasks
    cards = []
    for suffix, variants in by_repo.items():
        repo_id = repo_id_for(result, suffix)
        context = dict(r=result, repo_id=repo_id, suffix=suffix, variants=variants, reference=result.reference,
                       tasks=tasks, spec=result.spec, source=result.source, hardware=result.hardware,
                       siblings=[(s, repo_id_for(result, s)) for s in by_repo if s != suffix],
                       consumers=consumer_matrix(variants),
                       ab=mnn_against_gguf(result) if suffix == "mnn" else [],
                       weight_4bit=[v.name for v in variants if get_target(v.name).default_gate == WEIGHT_4BIT_GATE],
                       gpu_providers=GPU_PROVIDERS, npu_providers=NPU_PROVIDERS, cpu_providers=CPU_PROVIDERS,
                       rejected=result.not_published, plot_file=PLOT_FILE if plot else None,
                       changes=changes.get(repo_id),
                       community=[row for record in community.get(repo_id, []) for row in card_rows(record)])
        usage = {v.name: env.from_string(get_target(v.name).template_path().read_text()).render(variant=v, **context)
                 for v in variants}
        body = env.get_template("card.md.j2").render(usage=usage, **context)
        data = card_data(result, repo_id, variants)
        text = f"---\n{data.to_yaml()}\n---\n\n{body}"
        ModelCard(text)  # huggingface_hub's own parser must accept what we publish
        cards.append(RepoCard(repo_id, suffix, text, data.to_dict()))
    return cards
