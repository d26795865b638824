"""Republish diffs: every metric of a repo's new results against the results.json it currently publishes, and
which of them regress by more than the spec's `publish.max_regression` (such a publish becomes a pull request)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

GATED = ("fidelity.", "task.")  # what max_regression bounds; higher is better except:
LOWER_IS_BETTER = {"fidelity.max_abs_diff"}


def previous_results(api: HfApi, repo_id: str) -> dict | None:
    """The results.json on the repo's main branch; None before the first publication."""
    try:
        path = hf_hub_download(repo_id, "results.json", endpoint=api.endpoint, token=api.token)
    except (RepositoryNotFoundError, EntryNotFoundError):
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _numbers(prefix: str, values: dict | None) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in (values or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def variant_metrics(variant: dict) -> dict[str, float]:
    """{metric: value} of one results.json row: fidelity, mteb main scores, speed, size and memory."""
    speed = variant.get("speed") or {}
    metrics = _numbers("fidelity.", variant.get("fidelity"))
    metrics.pop("fidelity.samples", None)
    metrics |= {f"task.{t['task']}": float(t["main_score"]) for t in variant.get("tasks") or []}
    metrics |= _numbers("speed.", {k: speed.get(k) for k in ("p50_ms", "p90_ms", "sequences_per_s", "tokens_per_s")})
    metrics |= _numbers("", {"size_mb": variant["size_bytes"] / 1e6} if variant.get("size_bytes") else {})
    memory = variant.get("memory")
    metrics |= _numbers("memory.", memory if isinstance(memory, dict) else {"mb": memory})
    return metrics


def _rows(results: dict) -> dict[str, dict[str, float]]:
    rows = [results["reference"], *results.get("variants", [])] if results.get("reference") else \
        results.get("variants", [])
    return {v["name"]: variant_metrics(v) for v in rows if v.get("passed", True)}


@dataclass(frozen=True)
class Change:
    variant: str
    metric: str
    before: float | None
    after: float | None
    regression: bool

    @property
    def change(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    def as_dict(self) -> dict:
        return {**asdict(self), "change": self.change}

    def line(self) -> str:
        def show(x: float | None) -> str:
            return "—" if x is None else f"{x:.4f}"

        delta = "" if self.change is None else f" ({self.change:+.4f})"
        flag = "  REGRESSION" if self.regression else ""
        return f"{self.variant} {self.metric}: {show(self.before)} → {show(self.after)}{delta}{flag}"


@dataclass(frozen=True)
class Changes:
    previous: dict  # what the repo published before: upstream sha, spec hash, hubforge version
    max_regression: float | None
    changes: list[Change]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]

    def as_dict(self) -> dict:
        return {"previous": self.previous, "max_regression": self.max_regression,
                "changes": [c.as_dict() for c in self.changes],
                "regressions": [f"{c.variant} {c.metric}" for c in self.regressions]}


def diff_results(previous: dict, current: dict, max_regression: float | None) -> Changes:
    """Every metric present before or after, per variant. A gated metric (fidelity, task score) that drops by more
    than `max_regression`, or disappears, is a regression; speed, size and memory are reported only."""
    before, after = _rows(previous), _rows(current)
    changes = []
    for name in dict.fromkeys([*after, *before]):
        old, new = before.get(name, {}), after.get(name, {})
        for metric in dict.fromkeys([*new, *old]):
            was, now = old.get(metric), new.get(metric)
            regression = False
            if max_regression is not None and metric.startswith(GATED) and was is not None:
                drop = float("inf") if now is None else (now - was if metric in LOWER_IS_BETTER else was - now)
                regression = drop > max_regression
            changes.append(Change(name, metric, was, now, regression))
    upstream = previous.get("upstream") or {}
    return Changes({"upstream_sha": upstream.get("sha"), "spec_hash": previous.get("spec_hash"),
                    "hubforge_version": previous.get("hubforge_version")}, max_regression, changes)
