"""Task quality through mteb: the leaderboard's Banking77Classification number for the real fp32 MiniLM, the
derived tasks, samples, mteb's result files, the MTEB model-index, and mteb tasks read from the local Hub."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from conftest import outbound_guard

from hubforge.errors import EvaluationError
from hubforge.spec import EvaluationSpec, ModelSpec

BANKING77_LEADERBOARD = 0.8004  # mteb's Banking77Classification for all-MiniLM-L6-v2 (leaderboard 80.04)


def make_spec(task="sentence-embedding", **evaluation) -> ModelSpec:
    return ModelSpec(id="t", source={"repo": "sentence-transformers/all-MiniLM-L6-v2"}, task=task,
                     formats={}, evaluation=EvaluationSpec(**evaluation))


class CountingEncoder:
    """Wraps an encoder and records every text (with its prefix) it is asked to embed."""

    def __init__(self, encoder):
        self.encoder, self.embedded = encoder, []

    def embed(self, texts, prefix=""):
        self.embedded += [(prefix, t) for t in texts]
        return self.encoder.embed(texts, prefix=prefix)


class HashedWords:
    """A stand-in encoder for protocol tests that need no model: hashed bag of words, unit length; cross-encoder
    scores are word overlaps."""

    def embed(self, texts, prefix=""):
        out = np.zeros((len(texts), 64), np.float32)
        for row, text in enumerate(texts):
            for word in (prefix + text).lower().split():
                out[row, zlib.crc32(word.encode()) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def score(self, queries, passages):
        return np.array([len(set(q.lower().split()) & set(p.lower().split())) for q, p in zip(queries, passages)],
                        np.float32)


@pytest.fixture(scope="session")
def minilm_scores():
    """Every bundled task on the real fp32 MiniLM (PyTorch) on the default sample, each text embedded once (the
    full protocol's leaderboard number is test_evaluation.py's, through a real publish)."""
    import time

    from hubforge.devhub.seed import bundled_minilm
    from hubforge.evaluation.tasks import evaluate_tasks
    from hubforge.runtimes import ModelIO, TextEncoder, TorchRuntime

    path = bundled_minilm()
    encoder = CountingEncoder(TextEncoder(ModelIO(path, "sentence-embedding", "mean", True, 128),
                                          TorchRuntime(path, "sentence-embedding")))
    start = time.perf_counter()
    scores = evaluate_tasks(encoder, make_spec(classification="banking77", retrieval="banking77", sts="banking77"))
    return {s.task: s for s in scores}, encoder.embedded, time.perf_counter() - start


def test_banking77_classification_on_the_default_sample(minilm_scores):
    """The sample keeps mteb's protocol (10 experiments of logistic regression) on fewer items, near the full
    split's number."""
    scores, _, seconds = minilm_scores
    clf = scores["Banking77Classification"]
    assert clf.main_score == pytest.approx(BANKING77_LEADERBOARD, abs=0.05)
    assert clf.main_metric == "accuracy" and clf.task_type == "Classification" and clf.split == "test"
    assert clf.sample == 385 and clf.train_per_label == 9
    assert {"f1", "accuracy"} <= set(clf.scores)
    print(f"\nfp32 MiniLM (PyTorch), all bundled tasks, default sample: {seconds:.1f} s; "
          + ", ".join(f"{s.task} {s.main_metric} {s.main_score:.5f}" for s in scores.values()))


def test_derived_tasks_use_mteb_main_scores(minilm_scores):
    scores, _, _ = minilm_scores
    retrieval, sts = scores["banking77-intent-retrieval"], scores["banking77-intent-sts"]
    assert retrieval.main_metric == "ndcg_at_10" and retrieval.task_type == "Retrieval"
    assert sts.main_metric == "cosine_spearman" and sts.task_type == "STS"
    assert 0.4 < retrieval.main_score < 1 and 0.4 < sts.main_score < 1
    assert retrieval.scores["recall_at_1"] <= retrieval.scores["recall_at_10"]
    for s in (retrieval, sts):
        assert s.dataset == f"hubforge/{s.task}" and "derived" in s.note and len(s.revision) == 40
        assert s.as_dict()["main_score"] == s.main_score


def test_each_text_is_embedded_once(minilm_scores):
    _, embedded, _ = minilm_scores
    assert len(embedded) == len(set(embedded))


def test_a_test_sample_is_deterministic_and_recorded():
    from hubforge.evaluation.tasks import check_tasks, evaluate_tasks

    spec = make_spec(classification="banking77", retrieval="banking77", sts="banking77", test_sample=154,
                     train_per_label=10)
    first, again = evaluate_tasks(HashedWords(), spec), evaluate_tasks(HashedWords(), spec)
    assert [s.main_score for s in first] == [s.main_score for s in again]
    assert all(s.sample == 154 and s.train_per_label == 10 and
               s.protocol.endswith("154 sampled test items, from a train pool of 10 per label") for s in first)
    for score in first:  # a sampled score states its 95% interval, which holds it
        assert score.ci95[0] < score.main_score < score.ci95[1] and score.ci_method, score
    by_task = {s.task: s for s in first}
    assert by_task["Banking77Classification"].items == 154 and by_task["banking77-intent-retrieval"].items == 154
    assert by_task["Banking77Classification"].ci_method == "Wilson score interval"
    sts = by_task["banking77-intent-sts"]
    assert sts.ci_method == "Fisher z-transform" and sts.items == 154  # one pair per test text
    too_small = [(make_spec(classification="banking77", test_sample=50), "test_sample 50 is below the 77 test items"),
                 (make_spec(sts="banking77", test_sample=100),
                  "test_sample 100 is below the 154 test items Banking77 sts"),
                 (make_spec(classification="banking77", train_per_label=6), "train_per_label 6 is below the 8 train")]
    for spec, message in too_small:
        with pytest.raises(EvaluationError, match=message):
            check_tasks(spec)


def test_the_default_sample_is_shared_by_every_banking77_task():
    """Every Banking77 task reads one sample (385 stratified test items, 9 train texts per label): an artifact
    embeds the pool and the test items once, whatever the tasks. The card and results.json say so."""
    from hubforge.evaluation.tasks import banking77_sample, evaluate_tasks

    encoder = CountingEncoder(HashedWords())
    scores = evaluate_tasks(encoder, make_spec(classification="banking77", retrieval="banking77", sts="banking77"))
    sample = banking77_sample(385, 9)
    texts = set(sample.dataset["train"]["text"]) | set(sample.dataset["test"]["text"])
    assert len(sample.dataset["train"]) == 9 * 77 and len(sample.dataset["test"]) == 385
    embedded = {text for _, text in encoder.embedded}
    assert len(encoder.embedded) == len(embedded) and embedded <= texts  # once each, nothing beyond the sample
    assert len(embedded) > 0.99 * len(texts)  # mteb's ten draws of 8 from the pool of 9 miss a text at most
    assert {(s.sample, s.train_per_label) for s in scores} == {(385, 9)}


def test_query_prefix_reaches_queries_only():
    from hubforge.evaluation.tasks import evaluate_tasks

    encoder = CountingEncoder(HashedWords())
    spec = make_spec(retrieval="banking77", test_sample=77).model_copy(update={"query_prefix": "query: "})
    evaluate_tasks(encoder, spec)
    prefixed = [t for p, t in encoder.embedded if p == "query: "]
    assert len(prefixed) == 77 and len(encoder.embedded) == 77 + 385


def test_cross_encoder_reranks_and_is_refused_elsewhere():
    from hubforge.evaluation.tasks import check_tasks, evaluate_tasks

    (score,) = evaluate_tasks(HashedWords(), make_spec("cross-encoder", reranking="banking77", test_sample=231))
    assert score.task_type == "Reranking" and score.main_metric == "map_at_1000" and 0 < score.main_score <= 1
    with pytest.raises(EvaluationError, match="cross-encoder runs reranking only"):
        check_tasks(make_spec("cross-encoder", sts="banking77"))
    with pytest.raises(EvaluationError, match="no bundled retrieval set named 'nope'"):
        check_tasks(make_spec(retrieval="nope"))


def test_sts_from_a_users_csv(tmp_path):
    from hubforge.evaluation.tasks import evaluate_tasks

    path = tmp_path / "pairs.csv"
    path.write_text("sentence1,sentence2,score\na cat sat,a cat sat down,4\nthe sky,quarterly taxes,0\n"
                    "my card,my card is lost,3\nhello there,hello now friends,1\n")
    (score,) = evaluate_tasks(HashedWords(), make_spec(sts=str(path)))
    assert score.task == "sts-pairs" and score.dataset == "local/pairs.csv" and score.note == ""
    assert score.main_score == pytest.approx(1.0)


def test_mteb_result_files_and_model_index(tmp_path):
    import mteb
    from huggingface_hub import ModelCard, ModelCardData
    from mteb.results import TaskResult

    from hubforge.evaluation.tasks import (
        eval_results,
        evaluate_tasks,
        write_mteb_results,
    )

    scores = evaluate_tasks(HashedWords(), make_spec(classification="banking77", sts="banking77", test_sample=154))
    paths = write_mteb_results(scores, tmp_path, "hubforge/all-minilm-l6-v2-onnx", revision="abc123")
    assert {p.relative_to(tmp_path).as_posix() for p in paths} == {
        "results/hubforge__all-minilm-l6-v2-onnx/abc123/Banking77Classification.json",
        "results/hubforge__all-minilm-l6-v2-onnx/abc123/banking77-intent-sts.json"}
    # mteb writes scores to 6 decimals
    assert TaskResult.from_disk(paths[0]).get_score() == pytest.approx(scores[0].main_score, abs=5e-7)
    loaded = mteb.ResultCache(tmp_path).load_results(tasks=["Banking77Classification"], include_remote=False)
    assert loaded.model_results[0].model_name == "hubforge/all-minilm-l6-v2-onnx"

    data = ModelCardData(model_name="all-minilm-l6-v2-onnx", eval_results=eval_results(scores))
    parsed = ModelCard(f"---\n{data.to_yaml()}\n---\n# card\n").data
    first = parsed.to_dict()["model-index"][0]["results"][0]
    assert first["task"] == {"type": "Classification"}
    assert first["dataset"] == {"type": "mteb/banking77", "name": "MTEB Banking77Classification", "config": "default",
                                "split": "test", "revision": "0fd18e25b25c072e09e0d92ab615fda904d66300"}
    assert first["metrics"] == [{"type": "accuracy", "value": scores[0].main_score, "name": "accuracy"}]
    assert [r.metric_value for r in parsed.eval_results] == [s.main_score for s in scores]


def test_banking77_label_ids_follow_mteb():
    from hubforge.datasets import banking77_label_ids

    ids = banking77_label_ids()
    assert len(ids) == 77 and ids["activate_my_card"] == 0 and ids["Refund_not_showing_up"] == 51


# --- real mteb tasks, their data on the local Hub ----------------------------------------------------------------

IMDB_TASK = "ImdbClassification.v2"


def parquet(rows: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table(rows), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def local_imdb(api):
    """mteb's ImdbClassification.v2 data, shrunk to 20 train and 10 test reviews in its layout, at the revision
    mteb pins (a tag of that name: the local Hub cannot mint a given commit id)."""
    import mteb
    from huggingface_hub import CommitOperationAdd

    dataset = mteb.get_task(IMDB_TASK).metadata.dataset
    good = ["a wonderful moving film", "great acting and a great story", "I loved every minute", "superb"]
    bad = ["a dull waste of time", "terrible acting and a boring plot", "I hated it", "awful"]
    texts = lambda n: [(good if i % 2 else bad)[i % 4] + f" {i}" for i in range(n)]
    api.create_repo(dataset["path"], repo_type="dataset", exist_ok=True)
    api.create_commit(dataset["path"], [
        CommitOperationAdd("data/train-00000-of-00001.parquet",
                           parquet({"text": texts(20), "label": [i % 2 for i in range(20)]})),
        CommitOperationAdd("data/test-00000-of-00001.parquet",
                           parquet({"text": texts(10), "label": [i % 2 for i in range(10)]})),
    ], commit_message="imdb, shrunk", repo_type="dataset")
    api.create_tag(dataset["path"], tag=dataset["revision"], repo_type="dataset")
    return dataset


def test_mteb_task_loads_its_data_from_the_local_hub(local_imdb, devhub):
    from hubforge.evaluation.tasks import check_tasks, evaluate_tasks

    spec = make_spec(mteb_tasks=[IMDB_TASK])
    with outbound_guard(devhub.port) as violations:
        check_tasks(spec)
        (score,) = evaluate_tasks(HashedWords(), spec)
    assert not violations
    assert score.task == IMDB_TASK and score.dataset == "mteb/imdb" and score.revision == local_imdb["revision"]
    assert score.main_score == pytest.approx(1.0) and score.sample is None


def test_unreachable_mteb_task_is_a_one_line_error(devhub):
    from hubforge.evaluation.tasks import check_tasks

    with pytest.raises(EvaluationError) as missing:
        check_tasks(make_spec(mteb_tasks=["SciFact"]))
    assert "mteb task SciFact" in str(missing.value) and devhub.url in str(missing.value)
    assert "\n" not in str(missing.value)
    with pytest.raises(EvaluationError, match="SciFact.*not reachable at http://127.0.0.1:9"):
        check_tasks(make_spec(mteb_tasks=["SciFact"]), endpoint="http://127.0.0.1:9")
    with pytest.raises(EvaluationError, match="unknown mteb task 'NoSuchTask'"):
        check_tasks(make_spec(mteb_tasks=["NoSuchTask"]))


def test_confidence_intervals_of_sampled_scores():
    """Known values: Wilson's interval for 50 of 100, Fisher's for r = 0.5 on 103 pairs; the bound for a mean of
    per-query scores narrows as the sample grows and stays within [0, 1]."""
    from hubforge.evaluation.tasks import confidence_interval

    (low, high), _ = confidence_interval("Classification", 0.5, 100)
    assert (round(low, 3), round(high, 3)) == (0.404, 0.596)
    (low, high), _ = confidence_interval("STS", 0.5, 103)
    assert (round(low, 3), round(high, 3)) == (0.339, 0.632)
    narrow, wide = confidence_interval("Retrieval", 0.64, 3080)[0], confidence_interval("Retrieval", 0.64, 300)[0]
    assert wide[0] < narrow[0] < 0.64 < narrow[1] < wide[1]
    assert confidence_interval("Retrieval", 0.99, 20)[0][1] == 1.0
