"""The whole job, top to bottom, as stages that only flow forward:
spec → source → reference outputs ∥ export → build + measure + gate each format, beside the reference's task
scores → evaluate (tasks; the retention gate once the reference's scores are in) → speed and memory → card →
publish.

`run` measures; `publish` (also `hubforge.publish`) runs it and then renders, plans and pushes, so the Python
API publishes exactly as the CLI does. Every heavy step runs in a worker process of its own (workers.py): its memory
is returned when it ends, its peak is its line in results.json's `stages`, and small models build two formats at a
time. The formats phase is a step graph: each format's rounds of build → fidelity gate → evaluate → retention gate
(`FormatSearch`), beside the reference's task scores that every retention gate comes after. A failure inside one
candidate of one format is recorded as a failed attempt and the run goes on; only typed HubforgeErrors before
publishing stop it.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from .build import build_candidate, cache_key
from .datasets import sample_texts
from .errors import EXIT_NOT_ALL_PUBLISHED, EXIT_OK, HubforgeError, failure, log_failure
from .evaluation.consumers import ClientCheck, check_consumers
from .evaluation.hardware import Hardware, fingerprint
from .evaluation.memory import Memory, measure_memory
from .evaluation.speed import Speed, measure_speed
from .evaluation.swap import SwapSafety, swap_safety
from .evaluation.tasks import (
    RetrievalEmbeddings,
    TaskScore,
    check_tasks,
    evaluate_tasks,
    retrieval_embeddings,
    retrieval_scores,
    task_model,
    write_mteb_results,
)
from .export import export_fp32_onnx
from .gate import check_fidelity, check_retention
from .measure import MeasuredArtifact, evaluation_encoder, measure_artifact, size_of
from .paths import cache_dir
from .process_memory import release_memory
from .reference import Reference, ReferenceEncoder, compute_reference, model_io
from .results import Attempt, KeptPrecise, NotMeasured, RunResult, VariantResult
from .runtimes import ModelIO, TextEncoder, TorchRuntime, thread_count
from .source import SourceModel
from .spec import GateSpec, ModelSpec
from .targets import get_target
from .targets.base import BuildInputs, SearchOptions, Target, TargetOptions
from .targets.sensitivity import search_kept
from .workers import Report, Step, StepResult, cores, run_graph, run_step, silent, start_server

LANE_WEIGHTS_MB = 512  # bge-base's 418 MB builds two formats at a time; bge-large's 1.3 GB one (see lanes_for)


@dataclass(frozen=True)
class EvalOptions:
    quality: bool = True
    speed: bool = True
    consumers: bool = True
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))

    def skipped(self) -> tuple[NotMeasured, ...]:
        return tuple(NotMeasured(what, flag) for what, flag, on in (
            ("task quality", "--no-quality", self.quality), ("speed", "--no-speed", self.speed),
            ("consumer check", "--no-consumers", self.consumers)) if not on)


# --- the steps; each runs in a worker process of its own (workers.py) -------------------------------------------

def prepare_step(spec: ModelSpec, source: SourceModel, quality: bool, *, report: Report) -> ModelIO:
    """The task checks (every task exists, suits the model, has its data reachable) and the model's own pipeline
    (pooling, normalisation), before anything is converted: in a worker, as they load mteb and sentence-transformers,
    which the coordinating process then never holds."""
    if quality:
        check_tasks(spec)
    return model_io(spec, source)


def reference_step(io: ModelIO, spec: ModelSpec, fidelity_texts: list[str],
                   *, report: Report) -> tuple[Reference, Hardware]:
    """The model's own fp32 pipeline on the fidelity texts: what every build is measured against."""
    report("reference: the model's own fp32 pipeline", decision=True)
    return compute_reference(io, spec, fidelity_texts), fingerprint()


@dataclass(frozen=True)
class Evaluated:
    """An evaluate step's task scores, the card's note on the encoder that computed them, and its vectors of the
    retrieval set (for swap safety)."""

    tasks: list[TaskScore]
    note: str = ""
    retrieval: RetrievalEmbeddings | None = None


def _evaluated(encoder: TextEncoder, spec: ModelSpec, note: str = "") -> Evaluated:
    model = task_model(encoder, spec)
    tasks = evaluate_tasks(encoder, spec, model)
    return Evaluated(tasks, note, retrieval_embeddings(model, spec))


def reference_tasks_step(io: ModelIO, spec: ModelSpec, report: Report) -> Evaluated:
    """The fp32 pipeline's task scores, the retention gate's baseline. A step of the formats phase, run beside the
    first builds (which need only the reference's outputs); the PyTorch model goes with the worker."""
    report("evaluate: the fp32 reference", decision=True)
    return _evaluated(ReferenceEncoder(io), spec)


def export_step(spec: ModelSpec, source: SourceModel, out_dir: Path, *, report: Report) -> Path:
    report("export: fp32 ONNX", decision=True)
    return export_fp32_onnx(spec, source, out_dir)


@dataclass(frozen=True)
class FormatOutcome:
    """A format's search: every attempt, and the files, fidelity and fidelity-text outputs of the one that passed."""

    name: str
    target: type[Target]
    gate: GateSpec
    attempts: list[Attempt]
    passed: MeasuredArtifact | None
    kept: KeptPrecise | None = None
    fixed_shape: bool = False  # the format's `Target.is_fixed_shape` under the spec's options


def build_step(target_class: type[Target], inputs: BuildInputs, reference: Reference, *, cache_root: Path,
               earlier: tuple[Attempt, ...] = (), report: Report = silent) -> FormatOutcome:
    """Build → measure → gate each candidate in order until one passes; any exception is a failed attempt, and a
    candidate a probe shows cannot pass is skipped unbuilt (recorded with the probe's reason). The first built
    candidate that misses its gate is searched on: its nodes ranked by the error they cause, the fewest of them kept
    precise that pass (`keep_search`). `earlier`: the attempts of a search resumed after a candidate missed the
    retention gate; candidates tried there are not tried again."""
    target, name = target_class(), target_class.name
    try:
        options = target.options_model.model_validate(inputs.spec.formats.get(name, {}))
        gate = target.gate(options, inputs.spec)
        candidates = target.candidates(options, inputs)
    except Exception as exc:
        log_failure(f"{name}: its options or candidates")
        report(f"{name}: failed → {failure(exc)}", decision=True)
        return FormatOutcome(name, target_class, inputs.spec.gate, [Attempt({}, error=failure(exc))], None)
    trial = Trial(target, options, gate, inputs, reference, cache_root, report)
    fixed = target.is_fixed_shape(options)
    attempts, tried = list(earlier), [a.config for a in earlier]
    searched = any(a.config.get("keep") for a in earlier)
    for config in candidates:
        if config.model_dump(mode="json") in tried:
            continue
        attempt, artifact, files = trial.run(config)
        attempts.append(attempt)
        if artifact is not None:
            return FormatOutcome(name, target_class, gate, attempts, artifact, fixed_shape=fixed)
        if files and not searched and isinstance(options, SearchOptions) and options.search_builds:
            searched = True
            found = keep_search(trial, config, files, attempts=attempts)
            if found is not None:
                return FormatOutcome(name, target_class, gate, attempts, *found, fixed_shape=fixed)
    return FormatOutcome(name, target_class, gate, attempts, None)


@dataclass(frozen=True)
class Trial:
    """Builds, measures and gates one candidate of one format."""

    target: Target
    options: TargetOptions
    gate: GateSpec
    inputs: BuildInputs
    reference: Reference
    cache_root: Path
    report: Report

    def run(self, config) -> tuple[Attempt, MeasuredArtifact | None, dict[str, Path] | None]:
        """The attempt; the measured artifact if it passed (its runtime closed); the built files if it was built."""
        name, label, config_dict = self.target.name, config.label(), config.model_dump(mode="json")
        skip = self.target.cannot_pass(self.options, config, self.inputs)
        if skip:
            self.report(f"{name}: {label} → skipped: {skip}", decision=True)
            return Attempt(config_dict, skipped=skip), None, None
        self.report(f"{name}: building {label}")
        files = None
        try:
            files = build_candidate(self.target, self.inputs, self.options, config=config, cache_root=self.cache_root)
            release_memory()  # what the converter freed goes back before the runtime opens the artifact
            artifact = measure_artifact(self.target, files, self.inputs, reference=self.reference)
        except Exception as exc:
            log_failure(f"{name}: {label}")
            self.report(f"{name}: {label} → failed: {failure(exc)}", decision=True)
            return Attempt(config_dict, error=failure(exc)), None, None
        decision = check_fidelity(artifact.fidelity, self.gate)
        self.report(f"{name}: {label}: {artifact.fidelity.summary()} → {decision.summary()}", decision=True)
        attempt = Attempt(config_dict, artifact.fidelity, decision.summary(), decision.passed,
                          details=artifact.details)
        passed = artifact.closed() if decision.passed else None
        del artifact
        release_memory()
        return attempt, passed, files


def keep_search(trial: Trial, base, files: dict[str, Path],
                *, attempts: list[Attempt]) -> tuple[MeasuredArtifact, KeptPrecise] | None:
    """The accuracy-aware search from `base`, a built candidate that missed its gate: the target ranks its nodes by
    the error each causes, and `search_kept` finds the fewest top-ranked ones to keep precise that pass, in a
    bounded number of builds. Every build is an attempt (appended to `attempts`, the chosen one last; a passing
    build that keeps more nodes than the chosen one is recorded as not kept); returns the chosen artifact."""
    target = trial.target
    try:
        ranking = target.sensitivity(trial.options, trial.inputs, base, files=files)
    except Exception as exc:
        log_failure(f"{target.name}: ranking the nodes")
        trial.report(f"{target.name}: ranking the nodes failed → {failure(exc)}", decision=True)
        return None
    if not ranking or not ranking.nodes:
        return None
    trial.report(f"{target.name}: {len(ranking.nodes)} nodes ranked by the error they cause; keeping the worst precise")
    searched: dict[int, tuple[Attempt, MeasuredArtifact | None]] = {}

    def passes(kept: int) -> bool:
        attempt, artifact, _ = trial.run(target.keeping(base, ranking.nodes[:kept]))
        searched[kept] = attempt, artifact
        return artifact is not None

    search_kept(len(ranking.nodes), passes, max_builds=trial.options.search_builds)
    fewest = min((kept for kept, (_, artifact) in searched.items() if artifact is not None), default=None)
    if fewest is None:
        attempts.extend(attempt for attempt, _ in searched.values())
        return None
    superseded = f" (not kept: keeping {fewest} nodes passes too)"
    attempts.extend(replace(attempt, passed=False, gate=attempt.gate + superseded) if attempt.passed else attempt
                    for kept, (attempt, _) in searched.items() if kept != fewest)
    chosen, artifact = searched[fewest]
    attempts.append(chosen)
    nodes = ranking.nodes[:fewest]
    return artifact, KeptPrecise(nodes, target.kept_as, len(ranking.nodes), ranking.layers_of(nodes),
                                 base.model_dump(mode="json"), size_of(files), files)


def _variant(outcome: FormatOutcome, **measured) -> VariantResult:
    target, last = outcome.target, outcome.attempts[-1] if outcome.attempts else None
    artifact = outcome.passed
    fields = dict(name=outcome.name, attempts=outcome.attempts, gate_thresholds=outcome.gate.model_dump(),
                  runtime=target.runtime_name, precision=target.precision, target_hardware=target.hardware,
                  cpu_target=target.cpu_target, repo_suffix=target.repo_suffix, fixed_shape=outcome.fixed_shape,
                  config=last.config if last else {}, fidelity=last.fidelity if last else None)
    if artifact is None:
        gated = [a for a in outcome.attempts if a.fidelity is not None]
        if gated:  # the closest miss, not whichever came last
            best = max(gated, key=lambda a: a.fidelity.headline)
            fields.update(config=best.config, fidelity=best.fidelity)
            reason = f"{best.gate} (the closest of {len(outcome.attempts)} attempts)"
        else:
            reason = (last.error and f"failed: {last.error}") or (last.skipped and f"skipped: {last.skipped}") or \
                last.gate if last else "no candidate"
        return VariantResult(passed=False, gate=reason, **fields)
    fields.update(size_bytes=artifact.size_bytes, files=artifact.files, kept=outcome.kept)
    return VariantResult(**{"passed": True, "gate": "pass", **fields, **measured})


def evaluate_step(outcome: FormatOutcome, inputs: BuildInputs, reference: Reference, *, report: Report) -> Evaluated:
    """Task scores of a format's passing artifact."""
    report(f"evaluate: {outcome.name}", decision=True)
    encoder, note = evaluation_encoder(outcome.target(), outcome.passed, inputs, reference=reference)
    return _evaluated(encoder, inputs.spec, note)


def swap_step(reference: RetrievalEmbeddings, artifacts: dict[str, RetrievalEmbeddings], thresholds: dict[str, float],
              *, spec: ModelSpec, report: Report) -> dict[str, SwapSafety]:
    """Swap safety of every evaluated variant: its queries against the fp32 index and the reverse."""
    report("swap safety: each variant's embeddings mixed with fp32's")
    ndcg_fp32 = retrieval_scores(reference, reference, spec)["ndcg_at_10"]
    return {name: swap_safety(reference, embeddings, spec, threshold=thresholds[name], ndcg_fp32=ndcg_fp32)
            for name, embeddings in artifacts.items()}


def speed_step(target_class: type[Target] | None, files: dict[str, Path], io: ModelIO, *, spec: ModelSpec,
               texts: list[str], report: Report) -> tuple[Speed, Memory]:
    """Memory, then latency and throughput, of one artifact (or, with no target, the fp32 PyTorch model) in a
    fresh process on an otherwise idle machine."""
    report(f"speed: {target_class.name if target_class else 'fp32 (PyTorch)'}")

    def load():
        if target_class is None:
            return TorchRuntime(io.model_dir, io.task, trust_remote_code=io.trust_remote_code)
        return target_class().load(files, None)

    shapes = [spec.evaluation.latency_shape, (spec.evaluation.throughput_batch, spec.max_length)]
    runtime, memory = measure_memory(load, shapes)
    speed = measure_speed(TextEncoder(io, runtime), texts, spec.evaluation.latency_shape,
                          batch=spec.evaluation.throughput_batch, runs=spec.evaluation.timed_runs,
                          threads=thread_count(), seconds=spec.evaluation.timed_seconds)
    return speed, memory


def time_variants(reference_row: VariantResult, variants: dict[str, VariantResult], io: ModelIO, *, spec: ModelSpec,
                  texts: list[str], threads: int | None, report: Report) -> tuple[VariantResult, list]:
    """Speed and memory of the reference and every passing variant, one at a time; a searched variant's fully
    quantized build is timed in the same run, so the card can say what keeping nodes precise cost. Updates
    `variants` in place; returns the timed reference row and the steps."""
    timed = [reference_row] + [v for v in variants.values() if v.passed]
    searched = [v for v in timed if v.kept]
    measured_on = {"spec": spec, "texts": texts}
    runs = run_graph([Step("speed", "fp32" if v is reference_row else v.name, speed_step,
                           (type(get_target(v.name)) if v is not reference_row else None, v.files, io), threads,
                           kwargs=measured_on) for v in timed]
                     + [Step("speed", f"{v.name} fully quantized", speed_step,
                             (type(get_target(v.name)), v.kept.base_files, io), threads, kwargs=measured_on)
                        for v in searched], report)
    for variant, run in zip(timed, runs):
        measured = (dict(zip(("speed", "memory"), run.value)) if not run.error else
                    dict(passed=False, gate=f"failed (speed): {failure(run.error)}"))
        if variant is reference_row:
            if run.error:
                _raise(run, "timing the fp32 reference failed", "run with --no-speed to skip timing")
            reference_row = replace(reference_row, **measured)
        else:
            variants[variant.name] = replace(variant, **measured)
    for variant, run in zip(searched, runs[len(timed):]):
        if not run.error:
            timed_variant = variants[variant.name]
            variants[variant.name] = replace(timed_variant,
                                             kept=replace(timed_variant.kept, base_p50_ms=run.value[0].p50_ms))
    return reference_row, runs


def consumers_step(variants: list[VariantResult], targets: dict[str, type[Target]], io: ModelIO, *, spec: ModelSpec,
                   report: Report) -> dict[str, list[ClientCheck]]:
    """Every passing file loaded in the clients its card names, from the repo's own layout (the consumer matrix)."""
    return check_consumers(variants, targets, io, spec=spec, report=report)


def with_consumers(variant: VariantResult, checks: list[ClientCheck]) -> VariantResult:
    """The variant with its consumer checks; not published when a client its card names fails on its file."""
    failed = [c for c in checks if c.status == "failed"]
    if not failed:
        return replace(variant, consumers=checks)
    first = failed[0]
    return replace(variant, consumers=checks, passed=False,
                   gate=f"fails in {first.client} ({first.file}): {first.detail}")


def check_variants_in_clients(variants: dict[str, VariantResult], targets: dict[str, type[Target]], io: ModelIO, *,
                              spec: ModelSpec, threads: int, report: Report) -> StepResult:
    """The consumer matrix of the passing variants, applied to `variants` (see `with_consumers`). `targets` are
    classes: they travel to the worker, which imports their modules (a format defined outside hubforge too)."""
    passing = [v for v in variants.values() if v.passed]
    done = run_step(Step("evaluate", "every file in its clients", consumers_step, (passing, targets, io), threads,
                         label="consumers", kwargs={"spec": spec}), report)
    for variant in passing:
        if done.error:
            variants[variant.name] = replace(variant, passed=False,
                                             gate=f"failed (consumer check): {failure(done.error)}")
        else:
            variants[variant.name] = with_consumers(variant, done.value[variant.name])
    return done


def check_swap_safety(variants: dict[str, VariantResult], reference: RetrievalEmbeddings,
                      mixed: dict[str, RetrievalEmbeddings], *, spec: ModelSpec, threads: int,
                      report: Report) -> StepResult:
    """Swap safety of the variants in `mixed`, recorded on `variants` (a failure to compute it is stated, and
    publishes nothing less: it describes the file, it does not gate it)."""
    thresholds = {name: variants[name].gate_thresholds["min_retention"] for name in mixed}
    done = run_step(Step("evaluate", "swap safety (all variants)", swap_step, (reference, mixed, thresholds), threads,
                         label="swap safety", kwargs={"spec": spec}), report)
    for name in mixed:
        variants[name] = replace(variants[name], swap=None if done.error else done.value[name],
                                 swap_error=failure(done.error) if done.error else "")
    return done


def mteb_results_step(scores: dict[str, list], out_dir: Path, model_name: str, *, report: Report) -> None:
    """mteb's own result files of every evaluated variant ({revision label: its TaskScores}); in a worker, whose
    server has mteb imported (the coordinating process would spend seconds importing it for a few small files)."""
    for revision, tasks in scores.items():
        write_mteb_results(tasks, out_dir, model_name, revision=revision)


class FormatSearch:
    """One format's rounds of steps: build (the first candidate that passes the fidelity gate) → the gate on what it
    built → evaluate it (tasks) → the retention gate, which comes after both its scores and the reference's (the
    `baseline` step). A retention miss adds the next round, which builds on from the next candidate."""

    def __init__(self, target: type[Target], inputs: BuildInputs, reference: Reference, *, baseline: Step | None,
                 cache_root: Path, threads: int, report: Report):
        self.target, self.inputs, self.reference, self.baseline = target, inputs, reference, baseline
        self.cache_root, self.threads, self.report = cache_root, threads, report
        self.rounds, self.outcome, self.variant = 0, None, None
        self.retrieval: RetrievalEmbeddings | None = None  # the passing variant's, for swap safety

    def round(self, earlier: tuple[Attempt, ...] = ()) -> list[Step]:
        """The next round's build, and the gate on what it built."""
        self.rounds += 1
        subject = self.target.name + (f" #{self.rounds}" if self.rounds > 1 else "")
        build = Step("build", subject, build_step, (self.target, self.inputs, self.reference), self.threads,
                     kwargs={"cache_root": self.cache_root, "earlier": earlier})
        return [build, Step("gate", f"{subject} fidelity", self.built, after=(build,), in_process=True)]

    def built(self, done: StepResult) -> list[Step]:
        """Record what the round built; a passing build's evaluation and its retention gate (none without task
        quality, which has no baseline)."""
        outcome = done.value
        if done.error:
            earlier = self.variant.attempts if self.variant else []
            outcome = FormatOutcome(self.target.name, self.target, self.inputs.spec.gate,
                                    [*earlier, Attempt({}, error=failure(done.error))], None)
        if self.variant is not None and outcome.passed is None:  # the last evaluated candidate's scores stay
            self.variant = replace(self.variant, attempts=outcome.attempts)
            return []
        self.outcome, self.variant = outcome, _variant(outcome)
        if outcome.passed is None or self.baseline is None:
            return []
        subject = done.step.subject
        evaluate = Step("evaluate", subject, evaluate_step, (outcome, self.inputs, self.reference), self.threads,
                        after=(done.step,))
        return [evaluate, Step("gate", f"{subject} retention", self.retained, after=(evaluate, self.baseline),
                               in_process=True)]

    def retained(self, evaluated: StepResult, baseline: StepResult) -> list[Step]:
        """The retention gate on this round's task scores against the reference's; the next round when it misses."""
        if evaluated.error:
            self.variant = _variant(self.outcome, passed=False,
                                    gate=f"failed (evaluation): {failure(evaluated.error)}")
            return []
        tasks, note = evaluated.value.tasks, evaluated.value.note
        reference = {t.task: t.main_score for t in reference_scores(baseline, self.inputs.source).tasks}
        retention = {t.task: t.main_score / reference[t.task] for t in tasks if reference.get(t.task)}
        decision = check_retention(retention, self.outcome.gate)
        self.variant = _variant(self.outcome, passed=decision.passed, gate=decision.summary(), tasks=tasks,
                                retention=retention, evaluation_note=note)
        if self.variant.passed:
            self.retrieval = evaluated.value.retrieval
            return []
        attempts = self.outcome.attempts
        earlier = (*attempts[:-1], replace(attempts[-1], gate=self.variant.gate, passed=False))
        self.variant = replace(self.variant, attempts=list(earlier))
        self.report(f"{self.target.name}: {self.variant.gate} → next configuration", decision=True)
        return self.round(earlier)


def reference_scores(done: StepResult, source: SourceModel) -> Evaluated:
    """The fp32 reference's task scores, the retention gate's baseline; a run cannot go on without them."""
    if done.error:
        _raise(done, f"{source.repo_id}: evaluating its own fp32 pipeline failed",
               "check that the model encodes the spec's task texts with sentence-transformers / transformers")
    return done.value


# --- the run ----------------------------------------------------------------------------------------------------

def lanes_for(source: SourceModel) -> int:
    """Workers at once: two where a model's fp32 weights are small enough that two steps' copies fit beside each
    other (see LANE_WEIGHTS_MB), else one; never more than the machine's cores."""
    weights_mb = source.weights_bytes / 2**20
    return min(cores(), 2) if weights_mb <= LANE_WEIGHTS_MB else 1


def _raise(result: StepResult, what: str, hint: str) -> None:
    if isinstance(result.error, HubforgeError):
        raise result.error
    raise HubforgeError(f"{what}: {failure(result.error)}", hint) from result.error


def run(spec: ModelSpec, source: SourceModel, formats: list[str], *, options: EvalOptions = EvalOptions(),
        report: Report = silent, cache_root: Path | None = None) -> RunResult:
    """reference outputs ∥ export → build each format, the reference's task scores beside them → evaluate each
    passing one → swap safety, the consumer check → speed and memory, one at a time."""
    start_server()
    prepared = run_step(Step("build", "checks: tasks, model pipeline", prepare_step, (spec, source, options.quality),
                             label="prepare"), report)
    if prepared.error:
        _raise(prepared, f"{source.repo_id}: preparing the run failed", "check the spec and the model folder")
    io = prepared.value
    targets = [type(get_target(name)) for name in formats]
    cache_root, lanes = cache_root or cache_dir(), lanes_for(source)
    share = max(1, options.threads // lanes)
    fidelity_texts = sample_texts(spec.evaluation.fidelity_texts, spec.evaluation.fidelity_samples, split="train")
    inputs, reference, hardware, steps = reference_and_export(io, spec, source, fidelity_texts=fidelity_texts,
                                                              cache_root=cache_root, lanes=lanes, threads=share,
                                                              report=report)
    phase = FormatsPhase(targets, inputs, reference, options=options, cache_root=cache_root, threads=share,
                         report=report)
    steps = [prepared, *steps, *phase.run(lanes)]
    variants = phase.variants()
    steps += check_passing_variants(phase, variants, io, spec=spec, options=options, report=report)
    reference_row = VariantResult(
        name="fp32 (PyTorch)", runtime="pytorch", precision="fp32", target_hardware="reference", cpu_target=True,
        repo_suffix=None, passed=True, gate="reference", config={}, attempts=[], fidelity=None,
        tasks=phase.reference.tasks if phase.reference else [], size_bytes=source.weights_bytes)
    if options.speed:
        reference_row, timing_steps = time_variants(reference_row, variants, io, spec=spec, texts=fidelity_texts,
                                                    threads=options.threads, report=report)
        steps += timing_steps
    return RunResult(spec, source, hardware, reference_row, [variants[t.name] for t in targets], list(formats),
                     options.skipped(), tuple(step.record() for step in steps))


def reference_and_export(io: ModelIO, spec: ModelSpec, source: SourceModel, *, fidelity_texts: list[str],
                         cache_root: Path, lanes: int, threads: int,
                         report: Report) -> tuple[BuildInputs, Reference, Hardware, list[StepResult]]:
    """The reference's outputs on the fidelity texts beside the fp32 ONNX export; what every format builds from."""
    reference_run, export_run = run_graph([
        Step("build", "fp32", reference_step, (io, spec, fidelity_texts), threads, label="reference"),
        Step("build", "fp32 ONNX export", export_step, (spec, source, cache_root / cache_key(spec, source) / "export"),
             threads, label="export"),
    ], report, lanes)
    if reference_run.error:
        _raise(reference_run, f"{source.repo_id} does not run in its own fp32 pipeline",
               "check that the model loads and encodes with sentence-transformers / transformers")
    if export_run.error:
        _raise(export_run, f"ONNX export of {source.repo_id} failed",
               "check that the model's architecture is supported by optimum's ONNX exporter")
    reference, hardware = reference_run.value
    calibration = sample_texts(spec.calibration_texts, 300, split="test", seed=1)
    inputs = BuildInputs(spec, source, export_run.value, calibration, io)
    return inputs, reference, hardware, [reference_run, export_run]


class FormatsPhase:
    """Every format's search and the reference's task scores, as one step graph run on the phase's lanes; the
    reference's scores are computed beside the first builds, which need only the reference's outputs."""

    def __init__(self, targets: list[type[Target]], inputs: BuildInputs, reference: Reference, *, options: EvalOptions,
                 cache_root: Path, threads: int, report: Report):
        self.baseline = (Step("evaluate", "fp32", reference_tasks_step, (inputs.io, inputs.spec), threads)
                         if options.quality else None)
        self.searches = [FormatSearch(target, inputs, reference, baseline=self.baseline, cache_root=cache_root,
                                      threads=threads, report=report) for target in targets]
        self.source, self.report = inputs.source, report
        self.reference: Evaluated | None = None  # the reference's task scores, once the phase has run

    def run(self, lanes: int) -> list[StepResult]:
        largest_first = sorted(self.searches, key=lambda search: -search.target.workload)
        first = [self.baseline] if self.baseline else []
        steps = run_graph(first + [step for search in largest_first for step in search.round()], self.report, lanes)
        if self.baseline:
            self.reference = reference_scores(next(s for s in steps if s.step is self.baseline), self.source)
        return steps

    def variants(self) -> dict[str, VariantResult]:
        return {search.target.name: search.variant for search in self.searches}


def check_passing_variants(phase: FormatsPhase, variants: dict[str, VariantResult], io: ModelIO, *, spec: ModelSpec,
                           options: EvalOptions, report: Report) -> list[StepResult]:
    """Swap safety (each passing variant's retrieval vectors mixed with fp32's), then every passing file in its
    clients; `variants` (the phase's) is updated in place."""
    targets = {search.target.name: search.target for search in phase.searches}
    steps = []
    mixed = {s.target.name: s.retrieval for s in phase.searches if s.variant.passed and s.retrieval is not None}
    if phase.reference and phase.reference.retrieval is not None and mixed:
        steps.append(check_swap_safety(variants, phase.reference.retrieval, mixed, spec=spec, threads=options.threads,
                                       report=report))
    if options.consumers and any(v.passed for v in variants.values()):
        steps.append(check_variants_in_clients(variants, targets, io, spec=spec, threads=options.threads,
                                               report=report))
    return steps


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
                report(f"{repo_id}: {change.line()}", decision=True)
    return changes, community


def publish(spec: ModelSpec, formats: list[str] | None = None, source_dir: Path | None = None,
            *, dry_run: bool = False, out_dir: Path = Path("out"), token: str | None = None, create_pr: bool = False,
            options: EvalOptions = EvalOptions(), if_changed: bool = False, report: Report = silent) -> PublishOutcome:
    """Measure every format, then card, plot, plan and either write the repos (dry run) or push them."""
    from .card import render_cards
    from .hub import make_api
    from .plot import PLOT_FILE, render_variant_plot
    from .publish import check_write_access, plan_repos, write_local
    from .source import fetch_source, local_source

    formats = formats or list(spec.formats)
    start_server()  # the workers' server imports the runtimes while the Hub is asked and the model fetched
    api = make_api(token)
    if not dry_run:
        check_write_access(api)
    if if_changed and not _stale_repos(api, spec, formats, report=report):
        return PublishOutcome(None)
    source = local_source(spec, source_dir) if source_dir else fetch_source(spec, api)
    report(f"source {source.repo_id} @ {source.sha[:12]} ({source.path})", decision=True)
    result = run(spec, source, formats, options=options, report=report)

    changes, community = ({}, {}) if dry_run else previous_publication(api, result, report)
    plot = render_variant_plot(result, out_dir / f"{spec.id}.{PLOT_FILE}")
    cards = render_cards(result, plot=plot is not None, changes=changes, community=community)
    plans = plan_repos(result, cards, plot, changes=changes)
    results_path = write_results(result, changes, out_dir, report=report)
    if dry_run:
        return PublishOutcome(result, results_path, written=write_local(plans, out_dir))
    pushed = push_plans(api, plans, changes, create_pr=create_pr, report=report)
    return PublishOutcome(result, results_path, pushed=pushed, changes=changes)


def _stale_repos(api, spec: ModelSpec, formats: list[str], *, report: Report) -> list:
    """--if-changed: the repos whose upstream, spec or hubforge changed since their last publication."""
    from .updates import check_spec

    stale = [s for s in check_spec(api, spec, formats) if s.stale]
    for status in stale:
        report(f"{status.repo_id}: {status.reason}", decision=True)
    return stale


def write_results(result: RunResult, changes: dict, out_dir: Path, *, report: Report) -> Path:
    """<out>/<model>.results.json, and mteb's own result files of every evaluated variant under mteb-results/."""
    spec = result.spec
    results_path = out_dir / f"{spec.id}.results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_json = result.as_dict()
    if changes:
        results_json["changes"] = {repo_id: c.as_dict() for repo_id, c in changes.items()}
    results_path.write_text(json.dumps(results_json, indent=2))
    evaluated = {name: v.tasks for name, v in [("fp32", result.reference), *((v.name, v) for v in result.published)]
                 if v.tasks}
    if evaluated:
        args = (evaluated, out_dir / "mteb-results", f"{spec.publish.org}/{spec.repo_base}")
        written = run_step(Step("evaluate", "mteb result files", mteb_results_step, args, label="mteb results"), report)
        if written.error:
            _raise(written, "writing mteb's result files failed", f"check that {out_dir} is writable")
    return results_path


def push_plans(api, plans: list, changes: dict, *, create_pr: bool, report: Report) -> list:
    """Every repo pushed as one commit of its own, in parallel; a repo whose metrics regressed beyond
    publish.max_regression goes to a pull request instead of main."""
    from .publish import push_repo

    as_pr = []
    for plan in plans:
        regressions = changes[plan.repo_id].regressions if plan.repo_id in changes else []
        if regressions:
            report(f"{plan.repo_id}: {len(regressions)} metric(s) regressed by more than publish.max_regression "
                   f"({', '.join(f'{c.variant} {c.metric}' for c in regressions)}) → pull request, not main",
                   decision=True)
        as_pr.append(create_pr or bool(regressions))
    with ThreadPoolExecutor(max_workers=len(plans) or 1) as pool:
        return list(pool.map(lambda plan, pr: push_repo(api, plan, create_pr=pr), plans, as_pr))


