"""Task quality as users can check it: mteb's Banking77Classification at the leaderboard's protocol in a real
publish (table, results.json, card model-index and mteb's own result files), and every artifact of the shared
publish evaluated by the same mteb tasks with its retention gated."""

from __future__ import annotations

import json

import pytest
import yaml
from huggingface_hub import ModelCard

from conftest import invoke


@pytest.fixture(scope="session")
def leaderboard_publish(session_dir):
    """`hubforge publish all-minilm-l6-v2 --source <bundled MiniLM> --dry-run`: the shipped spec as it is, whose
    default is the full splits (the leaderboard's protocol), onnx only to keep it short."""
    from hubforge.devhub.seed import bundled_minilm
    from hubforge.spec import load_spec

    out = session_dir / "leaderboard-out"
    evaluation = load_spec("all-minilm-l6-v2").evaluation
    assert evaluation.test_sample is None and evaluation.train_per_label is None
    result = invoke("publish", "all-minilm-l6-v2", "--source", str(bundled_minilm()), "--dry-run", "--formats",
                    "onnx", "--no-speed", "--no-consumers", "--out", str(out))
    return result, json.loads((out / "all-minilm-l6-v2.results.json").read_text()), out


def test_fp32_banking77_is_the_leaderboard_number_everywhere(leaderboard_publish):
    result, results, out = leaderboard_publish
    assert result.exit_code == 0, result.output
    banking = next(t for t in results["reference"]["tasks"] if t["task"] == "Banking77Classification")
    assert banking["main_score"] == pytest.approx(0.8004, abs=0.002)
    assert banking["dataset"] == "mteb/banking77" and banking["split"] == "test" and banking["sample"] is None
    assert banking["dataset_name"] == "MTEB Banking77Classification" and banking["config"] == "default"
    assert banking["revision"] == "0fd18e25b25c072e09e0d92ab615fda904d66300"
    assert banking["train_per_label"] is None and banking["protocol"].endswith("10 experiments, full test split")
    assert banking["items"] == 3080 and banking["ci95"] is None  # the whole split: no sampling interval
    assert banking["main_metric"] == "accuracy" and {"f1", "accuracy"} <= set(banking["scores"])
    fp32_row = next(line for line in result.output.splitlines() if "fp32 (PyTorch)" in line)
    assert f"{banking['main_score']:.4f}" in fp32_row

    card = ModelCard((out / "hubforge" / "all-minilm-l6-v2-onnx" / "README.md").read_text())
    index = {r.dataset_type: r for r in card.data.eval_results}
    assert index["mteb/banking77"].dataset_name == "MTEB Banking77Classification"
    assert index["mteb/banking77"].task_type == "Classification"
    assert index["mteb/banking77"].metric_value == pytest.approx(0.8004, abs=0.002)
    assert "Banking77Classification (accuracy)" in card.text and "logistic regression" in card.text
    assert "| fp32 (PyTorch) | 0.80" in card.text and "confidence interval" not in card.text
    assert "consumer check: --no-consumers" in card.text and "## Loads in" not in card.text


def test_mteb_result_files_are_written_per_variant(leaderboard_publish):
    *_, out = leaderboard_publish
    files = sorted(p.relative_to(out / "mteb-results").as_posix() for p in (out / "mteb-results").rglob("*.json"))
    assert any(f.endswith("/fp32/Banking77Classification.json") for f in files), files
    assert any(f.endswith("/onnx/Banking77Classification.json") for f in files), files


def test_evaluate_command_prints_a_table_and_writes_json(upstream_minilm, session_dir, tmp_path):
    from conftest import minilm_test_spec

    out = tmp_path / "results.json"
    spec = minilm_test_spec(session_dir / "specs")
    result = invoke("evaluate", str(spec), "--formats", "int8", "--results", str(out), "--no-speed", "--no-consumers")
    assert result.exit_code == 0, result.output
    assert "fp32 (PyTorch)" in result.stdout and "int8" in result.stdout and "retention" in result.stdout
    assert "not measured: speed: --no-speed" in result.stdout
    data = json.loads(out.read_text())
    assert [v["name"] for v in data["variants"]] == ["int8"]
    assert data["variants"][0]["quality"]["banking77-intent-sts"] == pytest.approx(
        data["reference"]["quality"]["banking77-intent-sts"], abs=0.03)


def test_unreachable_mteb_task_fails_before_converting(tmp_path, upstream_minilm):
    spec = {"id": "mteb-offline", "source": {"repo": "sentence-transformers/all-MiniLM-L6-v2"},
            "task": "sentence-embedding", "formats": {"onnx": {}}, "evaluation": {"mteb_tasks": ["SciFact"]}}
    path = tmp_path / "mteb-offline.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = invoke("evaluate", str(path), "--no-speed", "--results", str(tmp_path / "results.json"))
    assert result.exit_code == 1
    assert "Traceback" in (tmp_path / "mteb-offline.log").read_text()  # the failed step's, in the run's log
    assert "mteb task SciFact" in result.output and "is not reachable at http://127.0.0.1" in result.output
    assert "export" not in result.output


def test_sts_csv_needs_its_columns(tmp_path):
    from hubforge.datasets import csv_pairs
    from hubforge.errors import EvaluationError

    path = tmp_path / "pairs.csv"
    path.write_text("a,b,score\nx,y,1\n")
    with pytest.raises(EvaluationError, match="sentence1, sentence2"):
        csv_pairs(str(path))


def test_a_retention_miss_builds_and_evaluates_the_next_candidate(session_dir, tmp_path):
    """A candidate past the fidelity gate that misses the retention gate is recorded with that reason, and the
    format's search builds its next candidate and evaluates it in turn ("build int8 #2", "evaluate int8 #2")."""
    from conftest import minilm_test_spec
    from hubforge.devhub.seed import bundled_minilm

    spec = yaml.safe_load(minilm_test_spec(session_dir / "specs").read_text())
    spec["gate"] = {**spec.get("gate", {}), "min_retention": 0.99999}  # no int8 graph keeps every score this well
    path = tmp_path / "all-minilm-l6-v2.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"
    result = invoke("publish", str(path), "--source", str(bundled_minilm()), "--dry-run", "--formats", "int8",
                    "--no-speed", "--no-consumers", "--out", str(out))
    results = json.loads((out / "all-minilm-l6-v2.results.json").read_text())
    variant = results["variants"][0]
    missed = [a for a in variant["attempts"] if (a["gate"] or "").startswith("fail (retention)")]
    assert len(missed) >= 2 and missed[0] == variant["attempts"][0], variant["attempts"]
    assert all(a["passed"] is False and a["fidelity"]["mean_cosine"] >= 0.99 for a in missed)
    stages = [s["stage"] for s in results["stages"]]
    for round_ in range(2, len(missed) + 1):
        assert f"build int8 #{round_}" in stages and f"evaluate int8 #{round_}" in stages, stages
    assert not variant["passed"] and variant["gate"].startswith("fail (retention)")
    assert result.exit_code == 3, result.output  # EXIT_NOT_ALL_PUBLISHED
    assert "int8: fail (retention)" in result.output and "next configuration" in result.output


def _sts_score(main_score: float):
    from hubforge.evaluation.tasks import TaskScore

    return TaskScore(task="banking77-intent-sts", task_type="STS", dataset="hubforge/banking77-intent-sts",
                     dataset_name="MTEB banking77-intent-sts", config="default", split="test", revision="r",
                     main_metric="cosine_spearman", main_score=main_score, scores={}, protocol="", sample=300)


def test_the_retention_gate_comes_after_the_format_scores_and_the_reference_scores(tmp_path):
    """A format's round is declared as steps: its build, the gate on what it built, then (for a passing build) its
    evaluation and the retention gate, which comes after both that evaluation and the reference's scores; a miss
    adds the next round, which builds on from the next candidate with the attempts so far."""
    import numpy as np

    from hubforge.evaluation.fidelity import measure_fidelity
    from hubforge.measure import MeasuredArtifact
    from hubforge.pipeline import Evaluated, FormatOutcome, FormatSearch
    from hubforge.results import Attempt
    from hubforge.spec import GateSpec, load_spec
    from hubforge.targets import get_target
    from hubforge.targets.base import BuildInputs
    from hubforge.workers import Step, StepResult

    artifact_file = tmp_path / "model_quantized.onnx"
    artifact_file.write_bytes(b"graph")
    outputs = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    fidelity = measure_fidelity(outputs, outputs)
    inputs = BuildInputs(load_spec("all-minilm-l6-v2"), None, tmp_path / "model.onnx", [], None)
    baseline = Step("evaluate", "fp32", print)

    def retention_gate(reference_score):
        messages = []
        search = FormatSearch(type(get_target("int8")), inputs, None, baseline=baseline, cache_root=tmp_path,
                              threads=1, report=lambda message, decision=False: messages.append(message))
        build, built = search.round()
        assert (build.name, built.name, built.after, built.in_process) == ("build int8", "gate int8 fidelity",
                                                                          (build,), True)
        outcome = FormatOutcome("int8", search.target, GateSpec(min_retention=0.99),
                                [Attempt({"fusion": "bert"}, fidelity, "pass", True)],
                                MeasuredArtifact({"onnx/model_quantized.onnx": artifact_file}, outputs, fidelity))
        evaluate, retained = built.function(StepResult(build, outcome, None, 1.0, 100.0))
        assert (evaluate.name, evaluate.after, evaluate.in_process) == ("evaluate int8", (build,), False)
        assert (retained.name, retained.after) == ("gate int8 retention", (evaluate, baseline))
        follow = retained.function(StepResult(evaluate, Evaluated([_sts_score(0.70)]), None, 1.0, 100.0),
                                   StepResult(baseline, Evaluated([_sts_score(reference_score)]), None, 1.0, 100.0))
        return search, follow, messages

    search, (next_build, next_gate), _ = retention_gate(0.80)
    assert next_build.name == "build int8 #2" and next_build.kwargs["earlier"] == tuple(search.variant.attempts)
    assert next_gate.name == "gate int8 #2 fidelity" and next_gate.after == (next_build,)
    assert search.variant.retention == {"banking77-intent-sts": pytest.approx(0.875)}
    assert not search.variant.passed and search.variant.gate.startswith("fail (retention)")
    assert search.variant.attempts[-1].gate.startswith("fail (retention)") and not search.variant.attempts[-1].passed

    search, follow, messages = retention_gate(0.7002)
    assert follow == [] and search.variant.passed and search.variant.gate == "pass", search.variant.gate
    assert search.variant.retention == {"banking77-intent-sts": pytest.approx(0.70 / 0.7002)}
    assert not messages


def _ended(marker, report):
    """A worker step that leaves a marker file, and returns its name."""
    marker.write_text("")
    return marker.name


def test_the_step_graph_runs_a_step_after_every_step_it_waits_for(tmp_path):
    """The scheduler starts a step only once every step it comes after has ended, runs a decision in-process with
    their results, runs the steps that decision adds, and refuses a graph whose steps wait for a step never in it."""
    from hubforge.workers import Step, run_graph

    seen = []

    def gate(slow, fast):
        assert (tmp_path / "slow").exists() and (tmp_path / "fast").exists()
        seen.append((slow.value, fast.value))
        return [Step("build", "added", _ended, (tmp_path / "added",))]

    class Watcher:
        def __init__(self):
            self.events = []

        def __call__(self, message, *, decision=False):
            pass

        def step_event(self, event):
            self.events.append(f"{event.step.name} {'ended' if event.result else 'started'}")

    first = Step("build", "first", _ended, (tmp_path / "first",))
    slow = Step("evaluate", "slow", _ended, (tmp_path / "slow",), after=(first,))
    fast = Step("evaluate", "fast", _ended, (tmp_path / "fast",))
    decision = Step("gate", "both", gate, after=(slow, fast), in_process=True)
    watcher = Watcher()
    results = run_graph([decision, slow, first, fast], watcher, lanes=2)
    assert [r.name for r in results] == ["build first", "evaluate fast", "evaluate slow", "build added"]
    assert seen == [("slow", "fast")] and all(r.error is None and r.peak_rss_mb > 0 for r in results)
    events = watcher.events
    assert len(events) == 8 and events.index("build first ended") < events.index("evaluate slow started")
    assert events.index("evaluate fast ended") < events.index("build added started")
    assert events.index("evaluate slow ended") < events.index("build added started")

    with pytest.raises(RuntimeError, match="evaluate orphan"):
        run_graph([Step("evaluate", "orphan", _ended, (tmp_path / "o",), after=(Step("build", "never", print),))],
                  lambda message, decision=False: None)
    assert not (tmp_path / "o").exists()


def test_the_live_line_names_the_steps_running_and_the_latest_message():
    """The CLI's live status follows the scheduler's step events: each running worker step with its time so far,
    then the latest progress message (markup in it shown as text)."""
    from rich.console import Console

    from hubforge.cli import LiveStatus
    from hubforge.workers import Step, StepEvent, StepResult, WatchesSteps

    live = LiveStatus("all-minilm-l6-v2")
    build, evaluate = Step("build", "int8", print), Step("evaluate", "fp32", print)
    assert isinstance(live, WatchesSteps)

    def shown() -> str:
        console = Console(width=300)
        with console.capture() as captured:
            console.print(live)
        return captured.get().strip()

    live.step_event(StepEvent(build))
    live.step_event(StepEvent(evaluate))
    live("int8: building [fusion=bert]")
    assert shown() == "all-minilm-l6-v2: build int8 0 s · evaluate fp32 0 s · int8: building [fusion=bert]"
    live.step_event(StepEvent(build, StepResult(build, None, None, 1.0, 100.0)))
    assert shown() == "all-minilm-l6-v2: evaluate fp32 0 s · int8: building [fusion=bert]"
