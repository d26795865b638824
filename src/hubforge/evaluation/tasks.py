"""Task quality through mteb: its tasks, protocols and evaluators, its result files, the Hub's MTEB model-index.

hubforge writes no metric code of its own here. Banking77Classification is mteb's task with its data injected from
the bundled copy (nothing downloads); the intent retrieval, reranking and STS sets hubforge derives from Banking77
run as custom mteb tasks; `evaluation.mteb_tasks` are mteb's own tasks, loaded by mteb from HF_ENDPOINT.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import sha1
from pathlib import Path
from typing import Any

import numpy as np

from .. import datasets as bundled
from ..errors import EvaluationError
from ..runtimes import TextEncoder
from ..spec import ModelSpec

BUNDLED_NOTE = "derived by hubforge from its bundled Banking77 copy (PolyAI, CC BY 4.0); not a Hub data set"
CROSS_ENCODER_TYPES = {"Reranking"}


@dataclass(frozen=True)
class TaskScore:
    """One (task, subset, split) of one encoder: mteb's main score, its other scalar scores, and the provenance
    a card and the model-index need."""

    task: str
    task_type: str
    dataset: str
    dataset_name: str
    config: str
    split: str
    revision: str
    main_metric: str
    main_score: float
    scores: dict[str, float]
    protocol: str
    sample: int | None
    note: str = ""
    result: Any = field(default=None, repr=False, compare=False)  # mteb's TaskResult, for write_mteb_results

    def as_dict(self) -> dict:
        return {"task": self.task, "task_type": self.task_type, "dataset": self.dataset,
                "dataset_name": self.dataset_name, "config": self.config, "split": self.split,
                "revision": self.revision, "main_metric": self.main_metric, "main_score": self.main_score,
                "scores": self.scores, "protocol": self.protocol, "sample": self.sample, "note": self.note}


def _model_meta(name: str, revision: str | None):
    from mteb.models.model_meta import ModelMeta, ScoringFunction

    return ModelMeta.create_empty({"name": name, "revision": revision, "modalities": ["text"],
                                   "similarity_fn_name": ScoringFunction.COSINE, "framework": []})


def _texts(loader) -> list[str]:
    return [text for batch in loader for text in batch["text"]]


class MtebEncoder:
    """mteb's EncoderProtocol over a TextEncoder: the spec's query prefix on queries only, and every distinct
    text embedded once per artifact (Banking77's test texts serve classification, retrieval and STS alike)."""

    def __init__(self, encoder: TextEncoder, query_prefix: str, name: str):
        self.encoder = encoder
        self.query_prefix = query_prefix
        self.mteb_model_meta = _model_meta(name, None)
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    def embed(self, texts: list[str], prefix: str) -> np.ndarray:
        missing = sorted({t for t in texts if (prefix, t) not in self._cache}, key=len)  # similar lengths batch well
        if missing:
            self._cache.update(zip(((prefix, t) for t in missing), self.encoder.embed(missing, prefix=prefix)))
        return np.stack([self._cache[prefix, t] for t in texts]) if texts else np.zeros((0, 0), np.float32)

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
        from mteb.types import PromptType

        return self.embed(_texts(inputs), self.query_prefix if prompt_type == PromptType.query else "")

    def similarity(self, a, b):
        from mteb.similarity_functions import cos_sim

        return cos_sim(a, b)

    def similarity_pairwise(self, a, b):
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(a, b)


class MtebCrossEncoder:
    """mteb's CrossEncoderProtocol over a TextEncoder: each distinct (query, passage) pair scored once."""

    def __init__(self, encoder: TextEncoder, name: str):
        self.encoder = encoder
        self.mteb_model_meta = _model_meta(name, None)
        self._cache: dict[tuple[str, str], float] = {}

    def predict(self, inputs1, inputs2, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
        pairs = list(zip(_texts(inputs1), _texts(inputs2), strict=True))
        missing = sorted({p for p in pairs if p not in self._cache}, key=lambda p: len(p[0]) + len(p[1]))
        if missing:
            scores = self.encoder.score([q for q, _ in missing], [d for _, d in missing])
            self._cache.update(zip(missing, scores.tolist()))
        return np.array([self._cache[p] for p in pairs], dtype=np.float32)


# --- the bundled tasks -------------------------------------------------------------------------------------------

def _derived_metadata(name: str, task_type: str, main_score: str, description: str):
    from mteb.abstasks.task_metadata import TaskMetadata

    return TaskMetadata(
        name=name, description=description, reference="https://arxiv.org/abs/2003.04807",
        dataset={"path": f"hubforge/{name}", "revision": bundled.banking77_revision()},
        type=task_type, category="t2t", modalities=["text"], eval_splits=["test"], eval_langs=["eng-Latn"],
        main_score=main_score, date=("2019-01-01", "2019-12-31"), domains=["Written"], task_subtypes=[],
        license="cc-by-4.0", annotations_creators="human-annotated", dialect=[], sample_creation="found",
        bibtex_citation="", adapted_from=["Banking77Classification"],
    )


def _retrieval_split(queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, dict[str, int]],
                     top_ranked: dict[str, list[str]] | None) -> dict:
    from datasets import Dataset

    return {"queries": Dataset.from_dict({"id": list(queries), "text": list(queries.values())}),
            "corpus": Dataset.from_dict({"id": list(corpus), "text": list(corpus.values())}),
            "relevant_docs": qrels, "top_ranked": top_ranked}


def _intent_retrieval():
    from mteb.abstasks import AbsTaskRetrieval

    class IntentRetrieval(AbsTaskRetrieval):
        metadata = _derived_metadata(
            "banking77-intent-retrieval", "Retrieval", "ndcg_at_10",
            "Each Banking77 test text retrieves the train texts of its intent from 5 per intent.")

        def load_data(self, num_proc=None, **kwargs):
            data = bundled.banking77_retrieval()
            qrels = {q: dict.fromkeys(docs, 1) for q, docs in data.qrels.items()}
            self.dataset = {"default": {"test": _retrieval_split(data.queries, data.corpus, qrels, None)}}
            self.data_loaded = True

    return IntentRetrieval()


def _intent_reranking():
    from mteb.abstasks import AbsTaskRetrieval

    class IntentReranking(AbsTaskRetrieval):
        metadata = _derived_metadata(
            "banking77-intent-reranking", "Reranking", "map_at_1000",
            "Each Banking77 test text reranks 10 test texts, 2 of its intent.")

        def load_data(self, num_proc=None, **kwargs):
            data = bundled.banking77_reranking()
            ids = {text: f"d{i}" for i, text in enumerate(dict.fromkeys(t for c in data.candidates for t in c))}
            queries = {f"q{i}": text for i, text in enumerate(data.queries)}
            top = {q: [ids[t] for t in c] for q, c in zip(queries, data.candidates)}
            qrels = {q: {ids[t]: int(r) for t, r in zip(c, rel)} for q, c, rel in
                     zip(queries, data.candidates, data.relevant)}
            corpus = {i: t for t, i in ids.items()}
            self.dataset = {"default": {"test": _retrieval_split(queries, corpus, qrels, top)}}
            self.data_loaded = True

    return IntentReranking()


def _pairs_sts(pairs: bundled.PairSet, name: str, description: str, dataset: dict | None = None):
    from datasets import Dataset, DatasetDict
    from mteb.abstasks import AbsTaskSTS

    meta = _derived_metadata(name, "STS", "cosine_spearman", description)
    if dataset:  # a user's CSV: not derived from Banking77
        meta = meta.model_copy(update={"dataset": dataset, "adapted_from": None, "license": None})

    class PairsSTS(AbsTaskSTS):
        metadata = meta
        min_score, max_score = min(pairs.gold), max(pairs.gold)

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict(test=Dataset.from_dict(
                {"sentence1": pairs.first, "sentence2": pairs.second, "score": pairs.gold}))
            self.data_loaded = True

    return PairsSTS()


def _banking77_classification():
    """mteb's own Banking77Classification (task, revision, protocol), its data read from the bundled copy."""
    import mteb
    from datasets import Dataset, DatasetDict

    task = mteb.get_task("Banking77Classification")
    ids = bundled.banking77_label_ids()
    splits = {}
    for split in ("train", "test"):
        data = bundled.banking77(split)
        splits[split] = Dataset.from_dict({"text": data.texts, "label": [ids[c] for c in data.labels],
                                           "label_text": data.labels})
    task.dataset = DatasetDict(splits)
    task.data_loaded = True
    return task


BUNDLED: dict[str, dict[str, Callable[[], Any]]] = {
    "classification": {"banking77": _banking77_classification},
    "retrieval": {"banking77": _intent_retrieval},
    "reranking": {"banking77": _intent_reranking},
    "sts": {"banking77": lambda: _pairs_sts(
        bundled.banking77_pairs(), "banking77-intent-sts",
        "Pairs of Banking77 test texts; gold 1 for the same intent, 0 otherwise.")},
}
BUNDLED_TASK_NAMES = {"banking77-intent-retrieval", "banking77-intent-reranking", "banking77-intent-sts"}


def _bundled_factory(kind: str, name: str) -> Callable[[], Any]:
    if kind == "sts" and name.endswith(".csv"):
        path = Path(name)
        return lambda: _pairs_sts(bundled.csv_pairs(name), f"sts-{path.stem}", f"The user's STS pairs in {name}.",
                                  {"path": f"local/{path.name}", "revision": sha1(path.read_bytes()).hexdigest()})
    if name not in BUNDLED[kind]:
        raise EvaluationError(f"no bundled {kind} set named {name!r}; bundled: {', '.join(BUNDLED[kind])}",
                              "real MTEB tasks go in evaluation.mteb_tasks")
    return BUNDLED[kind][name]


def _requested(spec: ModelSpec) -> list[tuple[str, str]]:
    ev = spec.evaluation
    return [(kind, name) for kind, name in (("classification", ev.classification), ("retrieval", ev.retrieval),
                                            ("reranking", ev.reranking), ("sts", ev.sts)) if name]


# --- checks, sampling, running -----------------------------------------------------------------------------------

def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def check_tasks(spec: ModelSpec, endpoint: str | None = None) -> None:
    """Before any conversion: every task exists, suits the model, and has its data reachable (no silent skip)."""
    import mteb
    from huggingface_hub import HfApi

    cross, sample = spec.task == "cross-encoder", spec.evaluation.test_sample
    for kind, name in _requested(spec):
        _bundled_factory(kind, name)
        if cross and kind != "reranking":
            raise EvaluationError(f"evaluation.{kind} needs an embedding model; a cross-encoder runs reranking only")
        if kind == "classification" and sample and sample < len(bundled.banking77_label_ids()):
            raise EvaluationError(f"evaluation.test_sample {sample} is below the 77 labels of Banking77Classification; "
                                  "a stratified sample needs one per label")
    endpoint = endpoint or _hub_endpoint()
    for name in spec.evaluation.mteb_tasks:
        try:
            task = mteb.get_task(name)
        except Exception as exc:  # mteb raises KeyError or ValueError with a long "did you mean" list
            raise EvaluationError(f"unknown mteb task {name!r}", "check the name with mteb.get_tasks()") from exc
        if cross and task.metadata.type not in CROSS_ENCODER_TYPES:
            raise EvaluationError(f"mteb task {name} ({task.metadata.type}) needs an embedding model; "
                                  "a cross-encoder runs Reranking tasks only")
        path, revision = task.metadata.dataset["path"], task.metadata.dataset["revision"]
        try:
            HfApi(endpoint=endpoint).dataset_info(path, revision=revision)
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EvaluationError(
                f"mteb task {name}: data set {path}@{revision[:12]} is not reachable at {endpoint} ({reason})"
            ) from exc


def _sample(task, n: int) -> int | None:
    """Restrict every evaluated split to n test items, deterministically (mteb's seed); returns n where that
    dropped something. Classification keeps mteb's stratified subsampling; retrieval keeps its whole corpus."""
    from mteb.abstasks import AbsTaskClassification, AbsTaskRetrieval, AbsTaskSTS

    sampled = False
    if isinstance(task, AbsTaskRetrieval):
        task.convert_v1_dataset_format_to_v2(num_proc=None)
        for subset in task.dataset.values():
            for split in task.eval_splits:
                data = subset[split]
                if len(data["queries"]) <= n:
                    continue
                sampled = True
                data["queries"] = data["queries"].shuffle(seed=task.seed).select(range(n))
                keep = set(data["queries"]["id"])
                data["relevant_docs"] = {q: d for q, d in data["relevant_docs"].items() if q in keep}
                if data["top_ranked"] is not None:
                    data["top_ranked"] = {q: d for q, d in data["top_ranked"].items() if q in keep}
        return n if sampled else None
    if not isinstance(task, AbsTaskClassification | AbsTaskSTS):
        return None
    subsets = task.dataset if task.metadata.is_multilingual else {"default": task.dataset}
    for key, data in subsets.items():
        splits = [s for s in task.eval_splits if len(data[s]) > n]
        if not splits:
            continue
        sampled = True
        if isinstance(task, AbsTaskClassification):
            labels = len(set(data[splits[0]][task.label_column_name]))
            if n < labels:
                raise EvaluationError(f"evaluation.test_sample {n} is below the {labels} labels of "
                                      f"{task.metadata.name}; a stratified sample needs one per label")
            data = task.stratified_subsampling(data, task.seed, splits, task.label_column_name, n_samples=n)
        else:
            for split in splits:
                data[split] = data[split].shuffle(seed=task.seed).select(range(n))
        if task.metadata.is_multilingual:
            task.dataset[key] = data
        else:
            task.dataset = data
    return n if sampled else None


def _protocol(task, split: str, sample: int | None) -> str:
    from mteb.abstasks import AbsTaskClassification

    name, kind = task.metadata.name, task.metadata.type
    evaluated = f"{sample} sampled {split} items" if sample else f"full {split} split"
    if isinstance(task, AbsTaskClassification):
        return (f"mteb {name}: logistic regression on {task.samples_per_label}/label undersampled "
                f"{task.train_split}, {task.n_experiments} experiments, {evaluated}")
    how = {"Retrieval": "cosine search of the corpus, nDCG@10", "Reranking": "reranking given candidates, MAP",
           "STS": "Spearman of cosine similarity vs gold"}.get(kind, f"{kind}, {task.metadata.main_score}")
    return f"mteb {name}: {how}, {evaluated}"


def _scalars(scores: dict) -> dict[str, float]:
    return {k: float(v) for k, v in scores.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "main_score"}


class _EagerLabels:
    """A train split whose label column reads as one list. mteb's undersampling reads labels one at a time, and
    under datasets 5 each read is a row lookup (about 50 s for Banking77, every artifact); same data, same
    algorithm, read once."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        return self.dataset[key][:] if isinstance(key, str) else self.dataset[key]

    def select(self, indices):
        return self.dataset.select(indices)


def _load(task) -> None:
    from mteb.abstasks import AbsTaskClassification

    if not task.data_loaded:
        task.load_data()
    if isinstance(task, AbsTaskClassification):
        undersample = task._undersample_data
        task._undersample_data = lambda dataset, *args: undersample(_EagerLabels(dataset), *args)


class _DropSupersededNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "'Banking77Classification' is superseded" not in record.getMessage()


@contextmanager
def _quiet():
    """No progress bars from datasets' casts and maps, and no "superseded by v2" note for Banking77Classification:
    hubforge runs v1 on purpose, it is the leaderboard's number."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    note, log = _DropSupersededNote(), logging.getLogger("mteb.abstasks.abstask")
    log.addFilter(note)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The task 'Banking77Classification' is superseded")
            yield
    finally:
        log.removeFilter(note)
        if not was_disabled:
            datasets.enable_progress_bars()


def evaluate_tasks(encoder: TextEncoder, spec: ModelSpec) -> list[TaskScore]:
    """Every task the spec asks for, through mteb.evaluate; one TaskScore per (task, subset, split)."""
    import mteb

    tasks = [_bundled_factory(kind, task_name)() for kind, task_name in _requested(spec)]
    tasks += [mteb.get_task(task_name) for task_name in spec.evaluation.mteb_tasks]
    name = f"hubforge/{spec.id}"
    model = MtebCrossEncoder(encoder, name) if spec.task == "cross-encoder" else \
        MtebEncoder(encoder, spec.query_prefix, name)
    out: list[TaskScore] = []
    for task in tasks:
        with _quiet():
            _load(task)  # loaded here, not inside mteb.evaluate, so a sample can be drawn first
            sample = _sample(task, spec.evaluation.test_sample) if spec.evaluation.test_sample else None
            result = mteb.evaluate(model, task, cache=None, co2_tracker=False, show_progress_bar=False,
                                   encode_kwargs={"batch_size": 32, "show_progress_bar": False}).task_results[0]
        meta = task.metadata
        derived = meta.name in BUNDLED_TASK_NAMES
        for split, entries in result.scores.items():
            for entry in entries:
                out.append(TaskScore(
                    task=meta.name, task_type=meta.type, dataset=meta.dataset["path"],
                    dataset_name=f"MTEB {meta.name}", config=entry["hf_subset"], split=split,
                    revision=meta.revision, main_metric=meta.main_score, main_score=float(entry["main_score"]),
                    scores=_scalars(entry), protocol=_protocol(task, split, sample), sample=sample,
                    note=BUNDLED_NOTE if derived else "", result=result))
    return out


def write_mteb_results(scores: list[TaskScore], out_dir: Path, model_name: str, revision: str) -> list[Path]:
    """mteb's own files, `results/<model>/<revision>/<Task>.json` plus model_meta.json, under out_dir."""
    from mteb.cache import ResultCache

    cache = ResultCache(cache_path=Path(out_dir))
    meta = _model_meta(model_name, revision)
    paths = []
    for result in {id(s.result): s.result for s in scores}.values():
        cache.save_to_cache(result, meta)
        paths.append(cache.get_task_result_path(result.task_name, meta))
    return paths


def eval_results(scores: list[TaskScore]):
    """The Hub's MTEB model-index convention: one EvalResult per (task, subset, split) with mteb's main score."""
    from huggingface_hub import EvalResult

    return [EvalResult(task_type=s.task_type, dataset_type=s.dataset, dataset_name=s.dataset_name,
                       dataset_config=s.config, dataset_split=s.split, dataset_revision=s.revision,
                       metric_type=s.main_metric, metric_name=s.main_metric, metric_value=s.main_score)
            for s in scores]
