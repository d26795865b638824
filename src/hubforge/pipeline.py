"""The whole job, top to bottom, as stages that only flow forward:
spec → source → reference → targets (build) → measure → gate → evaluation → gate (retention) → card → publish.

`run` measures; `publish` (also `hubforge.publish`) runs it and then renders, plans and pushes, so the Python
API publishes exactly as the CLI does. A failure inside one candidate of one format is recorded as a failed
attempt and the run goes on; only typed HubforgeErrors before publishing stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .build import build_candidate, cache_key
from .datasets import sample_texts
from .errors import HubforgeError, SourceError
from .evaluation.hardware import fingerprint
from .evaluation.memory import measure_memory
from .evaluation.speed import measure_speed
from .evaluation.tasks import check_tasks, evaluate_tasks, write_mteb_results
from .export import export_fp32_onnx
from .gate import check_fidelity, check_retention
from .measure import MeasuredArtifact, evaluation_encoder, measure_artifact
from .paths import cache_dir
from .reference import Reference, compute_reference, model_io
from .runtimes import ReferenceEncoder, release_reference_models
from .results import Attempt, RunResult, VariantResult
from .source import SourceModel
from .spec import GateSpec, ModelSpec
from .targets import get_target
from .targets.base import BuildInputs, Target

Report = Callable[[str], None]

EXIT_OK = 0
EXIT_ERROR = 1  # a typed error before anything was published: bad spec, missing model, bad token, Hub refusal
EXIT_USAGE = 2  # click's code for a bad command line
EXIT_NOT_ALL_PUBLISHED = 3  # the run finished, but at least one requested format was not published


@dataclass(frozen=True)
class EvalOptions:
    quality: bool = True
    speed: bool = True
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))

    def skipped(self) -> tuple[str, ...]:
        return tuple(what for what, on in (("task quality: --no-quality", self.quality),
                                           ("speed: --no-speed", self.speed)) if not on)


@contextlib.contextmanager
def stage(log: list[dict], name: str):
    """Wall time of a stage and the process's peak resident memory when it ended (the peak only grows, so the
    first stage whose figure jumps is where the memory went)."""
    start = time.perf_counter()
    yield
    log.append({"stage": name, "seconds": round(time.perf_counter() - start, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


def failure(exc: BaseException) -> str:
    """'ExceptionType: first line of its message', as results.json and the card show a failed attempt."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


@dataclass(frozen=True)
class FormatOutcome:
    """A format's search: every attempt, and the measured artifact of the one that passed (if any)."""

    name: str
    target: Target
    gate: GateSpec
    attempts: list[Attempt]
    artifact: MeasuredArtifact | None


def search_format(name: str, inputs: BuildInputs, reference: Reference, cache_root: Path,
                  report: Report) -> FormatOutcome:
    """Build → measure → gate each candidate in order until one passes; any exception is a failed attempt.
    An unknown format name is a typed error (the CLI and `hubforge.publish` check names before this)."""
    target = get_target(name)
    try:
        options = target.options_model.model_validate(inputs.spec.formats.get(name, {}))
        gate = target.gate(options, inputs.spec)
        candidates = target.candidates(options, inputs)
    except Exception as exc:
        report(f"{name}: failed → {failure(exc)}")
        return FormatOutcome(name, target, inputs.spec.gate, [Attempt({}, error=failure(exc))], None)
    attempts = []
    for config in candidates:
        label, config_dict = config.label(), config.model_dump(mode="json")
        report(f"{name}: building {label}")
        try:
            files = build_candidate(target, inputs, options, config, cache_root)
            artifact = measure_artifact(target, files, inputs, reference)
        except Exception as exc:
            attempts.append(Attempt(config_dict, error=failure(exc)))
            report(f"{name}: {label} → failed: {failure(exc)}")
            continue
        decision = check_fidelity(artifact.fidelity, gate)
        attempts.append(Attempt(config_dict, artifact.fidelity, decision.summary(), decision.passed))
        report(f"{name}: {label}: {artifact.fidelity.summary()} → {decision.summary()}")
        if decision.passed:
            return FormatOutcome(name, target, gate, attempts, artifact)
    return FormatOutcome(name, target, gate, attempts, None)


def speed_of(encoder, spec: ModelSpec, options: EvalOptions, texts: list[str]):
    """Latency and throughput at the spec's shapes; None with --no-speed."""
    if not options.speed:
        return None
    return measure_speed(encoder, texts, spec.evaluation.latency_shape, spec.evaluation.throughput_batch,
                         spec.evaluation.timed_runs, options.threads)


def memory_of(spec: ModelSpec, options: EvalOptions, runtime: str, **what):
    """Speed-class: skipped with --no-speed. The latency shape, then the throughput batch at max_length."""
    if not options.speed:
        return None
    shapes = [spec.evaluation.latency_shape, (spec.evaluation.throughput_batch, spec.max_length)]
    return measure_memory(runtime, shapes, **what)


def _variant(outcome: FormatOutcome, reference: VariantResult, inputs: BuildInputs, fidelity: Reference,
             options: EvalOptions, report: Report) -> VariantResult:
    """Evaluate a format's passing artifact on its already-open runtime, then apply the retention gate."""
    target, artifact = outcome.target, outcome.artifact
    last = outcome.attempts[-1] if outcome.attempts else None
    base = dict(name=outcome.name, attempts=outcome.attempts, gate_thresholds=outcome.gate.model_dump(),
                runtime=target.runtime_name, precision=target.precision, target_hardware=target.hardware,
                cpu_target=target.cpu_target, repo_suffix=target.repo_suffix, config=last.config if last else {})
    if artifact is None:
        reason = (f"failed: {last.error}" if last.error else last.gate) if last else "no candidate"
        return VariantResult(passed=False, gate=reason, fidelity=last.fidelity if last else None, **base)
    report(f"evaluate: {outcome.name}")
    spec, note = inputs.spec, ""
    try:
        speed = speed_of(artifact.encoder, spec, options, fidelity.fidelity_texts)
        memory = memory_of(spec, options, target.runtime_name, target=target.name, files=artifact.files)
        tasks = []
        if options.quality:
            encoder, note = evaluation_encoder(target, artifact, inputs, fidelity)
            tasks = evaluate_tasks(encoder, spec)
    except Exception as exc:
        return VariantResult(passed=False, gate=f"failed (evaluation): {failure(exc)}", fidelity=artifact.fidelity,
                             **base)
    retention = {t.task: t.main_score / reference.quality[t.task] for t in tasks if reference.quality.get(t.task)}
    decision = check_retention(retention, outcome.gate)
    return VariantResult(passed=decision.passed, gate=decision.summary(), fidelity=artifact.fidelity, tasks=tasks,
                         retention=retention, speed=speed, memory=memory, size_bytes=artifact.size_bytes,
                         files=artifact.files, evaluation_note=note, **base)


def run(spec: ModelSpec, source: SourceModel, formats: list[str], options: EvalOptions = EvalOptions(),
        report: Report = lambda msg: None, cache_root: Path | None = None) -> RunResult:
    if options.quality:
        check_tasks(spec)
    cache_root = cache_root or cache_dir()
    io = model_io(spec, source)
    calibration = sample_texts(spec.calibration_texts, 300, split="test", seed=1)
    fidelity_texts = sample_texts(spec.evaluation.fidelity_texts, spec.evaluation.fidelity_samples, split="train")

    stages: list[dict] = []
    with stage(stages, "reference"):
        report("reference: the model's own fp32 pipeline")
        try:
            encoder = ReferenceEncoder(io)
            reference = compute_reference(io, spec, fidelity_texts, encoder)
            ref_tasks = evaluate_tasks(encoder, spec) if options.quality else []
            ref_speed = speed_of(encoder, spec, options, fidelity_texts)
        except HubforgeError:
            raise
        except Exception as exc:
            raise SourceError(f"{source.repo_id} does not run in its own fp32 pipeline: {failure(exc)}",
                              "check that the model loads and encodes with sentence-transformers / transformers"
                              ) from exc
        del encoder
        release_reference_models(io)
    reference_row = VariantResult(
        name="fp32 (PyTorch)", runtime="pytorch", precision="fp32", target_hardware="reference", cpu_target=True,
        repo_suffix=None, passed=True, gate="reference", config={}, attempts=[], fidelity=None, tasks=ref_tasks,
        speed=ref_speed, memory=memory_of(spec, options, "pytorch", model_dir=io.model_dir, task=io.task,
                                        trust_remote_code=io.trust_remote_code),
        size_bytes=sum(p.stat().st_size for p in source.path.rglob("*.safetensors")),
    )

    with stage(stages, "export"):
        report("export: fp32 ONNX")
        fp32 = export_fp32_onnx(spec, source, cache_root / cache_key(spec, source) / "export")
    inputs = BuildInputs(spec, source, fp32, calibration, io)
    outcomes = []
    for name in formats:
        with stage(stages, f"build {name}"):
            outcomes.append(search_format(name, inputs, reference, cache_root, report))
    variants = []
    for outcome in outcomes:
        with stage(stages, f"evaluate {outcome.name}"):
            variants.append(_variant(outcome, reference_row, inputs, reference, options, report))
    return RunResult(spec, source, fingerprint(), reference_row, variants, list(formats), options.skipped(),
                     tuple(stages))


@dataclass(frozen=True)
class PublishOutcome:
    result: RunResult | None  # None when --if-changed found nothing to do
    results_path: Path | None = None
    written: list[Path] = field(default_factory=list)
    pushed: list = field(default_factory=list)  # publish.PushResult
    changes: dict = field(default_factory=dict)  # {repo id: changes.Changes} against its previous publication

    @property
    def exit_code(self) -> int:
        if self.result is None or all(v.passed for v in self.result.variants):
            return EXIT_OK
        return EXIT_NOT_ALL_PUBLISHED


def previous_publication(api, result: RunResult, report: Report) -> tuple[dict, dict]:
    """What each repo about to be pushed holds now: the changes of every metric against its results.json, and the
    community measurements merged into it (kept, and shown on the new card)."""
    from .card import repo_id_for
    from .changes import diff_results, previous_results
    from .community import read_records
    from .publish import repo_results

    changes, community = {}, {}
    for suffix in dict.fromkeys(v.repo_suffix for v in result.published):
        repo_id = repo_id_for(result, suffix)
        community[repo_id] = read_records(api, repo_id)
        previous = previous_results(api, repo_id)
        if previous is None:
            continue
        changes[repo_id] = diff_results(previous, repo_results(result, suffix), result.spec.publish.max_regression)
        for change in changes[repo_id].changes:
            if change.change != 0:
                report(f"{repo_id}: {change.line()}")
    return changes, community


def publish(spec: ModelSpec, formats: list[str] | None = None, source_dir: Path | None = None,
            dry_run: bool = False, out_dir: Path = Path("out"), token: str | None = None, create_pr: bool = False,
            options: EvalOptions = EvalOptions(), if_changed: bool = False,
            report: Report = lambda msg: None) -> PublishOutcome:
    """Measure every format, then card, plot, plan and either write the repos (dry run) or push them."""
    from .card import render_cards
    from .hub import make_api
    from .plot import PLOT_FILE, render_variant_plot
    from .publish import check_write_access, plan_repos, push_repo, write_local
    from .source import fetch_source, local_source

    formats = formats or list(spec.formats)
    api = make_api(token)
    if not dry_run:
        check_write_access(api)
    if if_changed:
        from .updates import check_spec

        stale = [s for s in check_spec(api, spec, formats) if s.stale]
        for status in stale:
            report(f"{status.repo_id}: {status.reason}")
        if not stale:
            return PublishOutcome(None)
    source = local_source(spec, source_dir) if source_dir else fetch_source(spec, api)
    report(f"source {source.repo_id} @ {source.sha[:12]} ({source.path})")
    result = run(spec, source, formats, options, report)

    changes, community = ({}, {}) if dry_run else previous_publication(api, result, report)
    plot = render_variant_plot(result, out_dir / f"{spec.id}.{PLOT_FILE}")
    cards = render_cards(result, plot=plot is not None, changes=changes, community=community)
    plans = plan_repos(result, cards, plot, changes)
    results_path = out_dir / f"{spec.id}.results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_json = result.as_dict()
    if changes:
        results_json["changes"] = {repo_id: c.as_dict() for repo_id, c in changes.items()}
    results_path.write_text(json.dumps(results_json, indent=2))
    for variant in (v for v in [result.reference, *result.published] if v.tasks):
        write_mteb_results(variant.tasks, out_dir / "mteb-results", f"{spec.publish.org}/{spec.repo_base}",
                           variant.name.split(" ")[0])
    if dry_run:
        return PublishOutcome(result, results_path, written=write_local(plans, out_dir))
    pushed = []
    for plan in plans:
        regressions = changes[plan.repo_id].regressions if plan.repo_id in changes else []
        if regressions:
            report(f"{plan.repo_id}: {len(regressions)} metric(s) regressed by more than publish.max_regression "
                   f"({', '.join(f'{c.variant} {c.metric}' for c in regressions)}) → pull request, not main")
        pushed.append(push_repo(api, plan, create_pr=create_pr or bool(regressions)))
    return PublishOutcome(result, results_path, pushed=pushed, changes=changes)


