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
from functools import cache
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
    sample: int | None  # test items evaluated, where not the full split
    train_per_label: int | None = None  # a classification task's train pool, where not the full split
    note: str = ""
    items: int | None = None  # what the main score averages over: test texts, queries or pairs
    ci95: tuple[float, float] | None = None  # where sampled: the main score's 95% confidence interval
    ci_method: str = ""
    result: dict | None = field(default=None, repr=False, compare=False)  # mteb's TaskResult as JSON, for
    # write_mteb_results (plain data: a run's coordinating process reads it without importing mteb)

    def as_dict(self) -> dict:
        return {"task": self.task, "task_type": self.task_type, "dataset": self.dataset,
                "dataset_name": self.dataset_name, "config": self.config, "split": self.split,
                "revision": self.revision, "main_metric": self.main_metric, "main_score": self.main_score,
                "scores": self.scores, "protocol": self.protocol, "sample": self.sample,
                "train_per_label": self.train_per_label, "note": self.note, "items": self.items,
                "ci95": list(self.ci95) if self.ci95 else None, "ci_method": self.ci_method}


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
        # similar lengths batch well; ties by text, so every run batches alike (an artifact that quantizes its
        # activations per batch at run time, like dynamic int8, gives each text the same outputs every run)
        missing = sorted({t for t in texts if (prefix, t) not in self._cache}, key=lambda t: (len(t), t))
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

    def embedded(self, texts: list[str], prefix: str) -> dict[str, np.ndarray]:
        """{text: vector} of texts this model embedded during the tasks (with `prefix`), without embedding again."""
        return {t: self._cache[prefix, t] for t in texts}


@dataclass(frozen=True)
class RetrievalEmbeddings:
    """One encoder's vectors of the spec's retrieval set, queries (with the query prefix) and documents apart: what
    swap safety mixes across encoders."""

    queries: dict[str, np.ndarray]
    documents: dict[str, np.ndarray]


class LookupEncoder(MtebEncoder):
    """mteb's EncoderProtocol over vectors already computed, queries and documents possibly from different
    encoders (an artifact's queries against an fp32 index)."""

    def __init__(self, queries: RetrievalEmbeddings, documents: RetrievalEmbeddings, name: str):
        super().__init__(None, "", name)
        self.queries, self.documents = queries.queries, documents.documents

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
        from mteb.types import PromptType

        side = self.queries if prompt_type == PromptType.query else self.documents
        return np.stack([side[t] for t in _texts(inputs)])


class MtebCrossEncoder:
    """mteb's CrossEncoderProtocol over a TextEncoder: each distinct (query, passage) pair scored once."""

    def __init__(self, encoder: TextEncoder, name: str):
        self.encoder = encoder
        self.mteb_model_meta = _model_meta(name, None)
        self._cache: dict[tuple[str, str], float] = {}

    def predict(self, inputs1, inputs2, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
        pairs = list(zip(_texts(inputs1), _texts(inputs2), strict=True))
        missing = sorted({p for p in pairs if p not in self._cache}, key=lambda p: (len(p[0]) + len(p[1]), p))
        if missing:
            scores = self.encoder.score([q for q, _ in missing], [d for _, d in missing])
            self._cache.update(zip(missing, scores.tolist()))
        return np.array([self._cache[p] for p in pairs], dtype=np.float32)


# --- the bundled tasks -------------------------------------------------------------------------------------------

def _derived_metadata(name: str, task_type: str, main_score: str, *, description: str):
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
                     *, top_ranked: dict[str, list[str]] | None) -> dict:
    from datasets import Dataset

    return {"queries": Dataset.from_dict({"id": list(queries), "text": list(queries.values())}),
            "corpus": Dataset.from_dict({"id": list(corpus), "text": list(corpus.values())}),
            "relevant_docs": qrels, "top_ranked": top_ranked}


@dataclass(frozen=True)
class Banking77Sample:
    """The bundled Banking77 splits every Banking77 task of a run reads, sampled once with Banking77Classification's
    seed (a stratified test sample by mteb's own subsampling, a train pool of so many per label), so classification,
    retrieval, reranking and STS embed the same texts: each artifact embeds the pool and the test sample once."""

    dataset: Any  # datasets.DatasetDict: train, test with text, label (ClassLabel), label_text
    sampled: Sampled

    def texts(self, split: str) -> bundled.LabelledTexts:
        return bundled.LabelledTexts(list(self.dataset[split]["text"]), list(self.dataset[split]["label_text"]))


@cache
def banking77_sample(test_sample: int | None, train_per_label: int | None) -> Banking77Sample:
    import mteb
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
    from mteb.abstasks.abstask import AbsTask

    ids = bundled.banking77_label_ids()
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(ids)), "label_text": Value("string")})
    splits = {}
    for split in ("train", "test"):
        data = bundled.banking77(split)
        splits[split] = Dataset.from_dict({"text": data.texts, "label": [ids[c] for c in data.labels],
                                           "label_text": data.labels}, features=features)
    dataset, seed = DatasetDict(splits), mteb.get_task("Banking77Classification").seed
    if test_sample and test_sample < len(dataset["test"]):
        dataset = AbsTask.stratified_subsampling(dataset, seed, ["test"], "label", n_samples=test_sample)
    if train_per_label:
        dataset["train"] = balanced_pool(dataset["train"], "label", train_per_label, seed=seed)
    return Banking77Sample(dataset, Sampled(test_sample if len(dataset["test"]) < len(splits["test"]) else None,
                                            train_per_label if len(dataset["train"]) < len(splits["train"]) else None))


def _intent_retrieval(data: Banking77Sample):
    from mteb.abstasks import AbsTaskRetrieval

    class IntentRetrieval(AbsTaskRetrieval):
        metadata = _derived_metadata(
            "banking77-intent-retrieval", "Retrieval", "ndcg_at_10",
            description="Each Banking77 test text retrieves the train texts of its intent from 5 per intent.")

        def load_data(self, num_proc=None, **kwargs):
            retrieval = bundled.banking77_retrieval(data.texts("train"), data.texts("test"))
            qrels = {q: dict.fromkeys(docs, 1) for q, docs in retrieval.qrels.items()}
            self.dataset = {"default": {"test": _retrieval_split(retrieval.queries, retrieval.corpus, qrels,
                                                                 top_ranked=None)}}
            self.data_loaded = True

    return IntentRetrieval()


def _intent_reranking(data: Banking77Sample):
    from mteb.abstasks import AbsTaskRetrieval

    class IntentReranking(AbsTaskRetrieval):
        metadata = _derived_metadata(
            "banking77-intent-reranking", "Reranking", "map_at_1000",
            description="Each Banking77 test text reranks 10 test texts, 2 of its intent.")

        def load_data(self, num_proc=None, **kwargs):
            reranking = bundled.banking77_reranking(data.texts("test"))
            ids = {text: f"d{i}" for i, text in enumerate(dict.fromkeys(t for c in reranking.candidates for t in c))}
            queries = {f"q{i}": text for i, text in enumerate(reranking.queries)}
            top = {q: [ids[t] for t in c] for q, c in zip(queries, reranking.candidates)}
            qrels = {q: {ids[t]: int(r) for t, r in zip(c, rel)} for q, c, rel in
                     zip(queries, reranking.candidates, reranking.relevant)}
            corpus = {i: t for t, i in ids.items()}
            self.dataset = {"default": {"test": _retrieval_split(queries, corpus, qrels, top_ranked=top)}}
            self.data_loaded = True

    return IntentReranking()


def _pairs_sts(pairs: bundled.PairSet, name: str, description: str, *, dataset: dict | None = None):
    from datasets import Dataset, DatasetDict
    from mteb.abstasks import AbsTaskSTS

    meta = _derived_metadata(name, "STS", "cosine_spearman", description=description)
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


def _banking77_classification(data: Banking77Sample):
    """mteb's own Banking77Classification (task, revision, protocol), its data read from the bundled copy."""
    import mteb

    task = mteb.get_task("Banking77Classification")
    task.dataset = data.dataset
    task.data_loaded = True
    return task


BUNDLED: dict[str, dict[str, Callable[[Banking77Sample], Any]]] = {
    "classification": {"banking77": _banking77_classification},
    "retrieval": {"banking77": _intent_retrieval},
    "reranking": {"banking77": _intent_reranking},
    "sts": {"banking77": lambda data: _pairs_sts(
        bundled.banking77_pairs(data.texts("test")), "banking77-intent-sts",
        "Pairs of Banking77 test texts; gold 1 for the same intent, 0 otherwise.")},
}
BUNDLED_TASK_NAMES = {"banking77-intent-retrieval", "banking77-intent-reranking", "banking77-intent-sts"}
# what each Banking77 task needs of the shared sample: (test items per label, train items per label)
BANKING77_NEEDS = {"classification": (1, 8),  # a stratified test sample; mteb's experiments draw 8 per label
                   "retrieval": (1, 5),  # its corpus holds 5 train texts per intent
                   "reranking": (3, 0),  # a query and two other test texts of its intent
                   "sts": (2, 0)}  # pairs of test texts of one intent


def _bundled_factory(kind: str, name: str) -> Callable[[Banking77Sample], Any]:
    if kind == "sts" and name.endswith(".csv"):
        path = Path(name)
        return lambda data: _pairs_sts(bundled.csv_pairs(name), f"sts-{path.stem}", f"The user's STS pairs in {name}.",
                                       dataset={"path": f"local/{path.name}",
                                                "revision": sha1(path.read_bytes()).hexdigest()})
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

    cross, evaluation = spec.task == "cross-encoder", spec.evaluation
    labels = len(bundled.banking77_label_ids())
    for kind, name in _requested(spec):
        _bundled_factory(kind, name)
        if cross and kind != "reranking":
            raise EvaluationError(f"evaluation.{kind} needs an embedding model; a cross-encoder runs reranking only")
        if name != "banking77":
            continue
        test_per_label, train_per_label = BANKING77_NEEDS[kind]
        if evaluation.test_sample and evaluation.test_sample < test_per_label * labels:
            raise EvaluationError(f"evaluation.test_sample {evaluation.test_sample} is below the "
                                  f"{test_per_label * labels} test items Banking77 {kind} needs ({test_per_label} "
                                  f"per label of a stratified sample)",
                                  "raise it, or set it to null for the full split")
        if evaluation.train_per_label and evaluation.train_per_label < train_per_label:
            raise EvaluationError(f"evaluation.train_per_label {evaluation.train_per_label} is below the "
                                  f"{train_per_label} train items per label Banking77 {kind} draws",
                                  "raise it, or set it to null for the full split")
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


@dataclass(frozen=True)
class Sampled:
    """What of a task's data was evaluated: test items of the evaluated split, train items per label of a
    classification task's pool (None: the full split)."""

    test: int | None = None
    train_per_label: int | None = None

    def describe(self, split: str) -> str:
        evaluated = f"{self.test} sampled {split} items" if self.test else f"full {split} split"
        return evaluated + (f", from a train pool of {self.train_per_label} per label" if self.train_per_label else "")


def balanced_pool(data, label: str, per_label: int, *, seed: int):
    """`per_label` items of each label, in the order of one seeded shuffle: how mteb's classification draws each
    experiment's training set (`_undersample_data`), done once, so every experiment draws from this pool."""
    order = np.random.RandomState(seed).permutation(len(data))
    labels, taken, keep = data[label][:], {}, []  # at once, as _EagerLabels reads them
    for i in order:
        if taken.get(labels[i], 0) < per_label:
            taken[labels[i]] = taken.get(labels[i], 0) + 1
            keep.append(int(i))
    return data.select(sorted(keep)) if len(keep) < len(data) else data


def _sample(task, test: int | None, train_per_label: int | None) -> Sampled:
    """Restrict every evaluated split to `test` items, deterministically (mteb's seed), and a classification task's
    train split to a pool of `train_per_label` per label; returns what that dropped. Classification keeps mteb's
    stratified subsampling; retrieval keeps its whole corpus."""
    from mteb.abstasks import AbsTaskClassification, AbsTaskRetrieval, AbsTaskSTS

    sampled_test = sampled_train = False
    if isinstance(task, AbsTaskRetrieval):
        task.convert_v1_dataset_format_to_v2(num_proc=None)
        for subset in task.dataset.values():
            for split in task.eval_splits:
                data = subset[split]
                if not test or len(data["queries"]) <= test:
                    continue
                sampled_test = True
                data["queries"] = data["queries"].shuffle(seed=task.seed).select(range(test))
                keep = set(data["queries"]["id"])
                data["relevant_docs"] = {q: d for q, d in data["relevant_docs"].items() if q in keep}
                if data["top_ranked"] is not None:
                    data["top_ranked"] = {q: d for q, d in data["top_ranked"].items() if q in keep}
        return Sampled(test if sampled_test else None)
    if not isinstance(task, AbsTaskClassification | AbsTaskSTS):
        return Sampled()
    classification = isinstance(task, AbsTaskClassification)
    subsets = task.dataset if task.metadata.is_multilingual else {"default": task.dataset}
    for key, data in subsets.items():
        splits = [s for s in task.eval_splits if test and len(data[s]) > test]
        if classification and splits:
            labels = len(set(data[splits[0]][task.label_column_name]))
            if test < labels:
                raise EvaluationError(f"evaluation.test_sample {test} is below the {labels} labels of "
                                      f"{task.metadata.name}; a stratified sample needs one per label")
            data = task.stratified_subsampling(data, task.seed, splits, task.label_column_name, n_samples=test)
        else:
            for split in splits:
                data[split] = data[split].shuffle(seed=task.seed).select(range(test))
        sampled_test |= bool(splits)
        if classification and train_per_label:
            pool = balanced_pool(data[task.train_split], task.label_column_name, train_per_label, seed=task.seed)
            sampled_train |= len(pool) < len(data[task.train_split])
            data[task.train_split] = pool
        if task.metadata.is_multilingual:
            task.dataset[key] = data
        else:
            task.dataset = data
    return Sampled(test if sampled_test else None, train_per_label if sampled_train else None)


def _protocol(task, split: str, sampled: Sampled) -> str:
    from mteb.abstasks import AbsTaskClassification

    name, kind = task.metadata.name, task.metadata.type
    if isinstance(task, AbsTaskClassification):
        return (f"mteb {name}: logistic regression on {task.samples_per_label}/label undersampled "
                f"{task.train_split}, {task.n_experiments} experiments, {sampled.describe(split)}")
    how = {"Retrieval": "cosine search of the corpus, nDCG@10", "Reranking": "reranking given candidates, MAP",
           "STS": "Spearman of cosine similarity vs gold"}.get(kind, f"{kind}, {task.metadata.main_score}")
    return f"mteb {name}: {how}, {sampled.describe(split)}"


def _items(task, split: str, subset: str) -> int | None:
    """How many items a task's main score averages over: queries of a retrieval task, rows otherwise."""
    from mteb.abstasks import AbsTaskRetrieval

    try:
        if isinstance(task, AbsTaskRetrieval):
            return len(task.dataset[subset][split]["queries"])
        data = task.dataset[subset] if task.metadata.is_multilingual else task.dataset
        return len(data[split])
    except (KeyError, TypeError):
        return None


def confidence_interval(task_type: str, score: float, items: int) -> tuple[tuple[float, float], str]:
    """A 95% interval for a main score measured on `items` sampled items: Wilson's for an accuracy, Fisher's z for
    a Spearman correlation, and for a mean of per-query scores in [0, 1] (nDCG, MAP) the normal interval with the
    largest variance such a mean allows (Bhatia-Davis), which is conservative."""
    from scipy.stats import binomtest, norm

    z = norm.ppf(0.975)
    if task_type == "Classification":
        interval = binomtest(round(score * items), items).proportion_ci(0.95, method="wilson")
        return (float(interval.low), float(interval.high)), "Wilson score interval"
    if task_type == "STS" and items > 3:
        centre, half = np.arctanh(np.clip(score, -0.999999, 0.999999)), z / np.sqrt(items - 3)
        return (float(np.tanh(centre - half)), float(np.tanh(centre + half))), "Fisher z-transform"
    half = z * np.sqrt(max(score * (1 - score), 0.0) / items)
    return (max(0.0, float(score - half)), min(1.0, float(score + half))), \
        "normal, largest variance of a mean in [0, 1]"


def _scalars(scores: dict) -> dict[str, float]:
    return {k: float(v) for k, v in scores.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "main_score"}


class _EagerLabels:
    """A train split whose label column reads as one list. mteb's undersampling reads labels one at a time, and
    under datasets 5 each read is a row lookup (about 50 s for Banking77, every artifact); same data, same
    algorithm, read once. The scores get the test labels as one array for the same reason."""

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
        undersample, calculate = task._undersample_data, task._calculate_scores
        task._undersample_data = lambda dataset, *args: undersample(_EagerLabels(dataset), *args)
        evaluator = task.evaluator  # each experiment's sklearn fit reads its train labels as a column too
        task.evaluator = lambda train, test, **kwargs: evaluator(_EagerLabels(train), test, **kwargs)
        # the test labels reach each of sklearn's seven metrics as a column that converts row by row (7 s a run)
        task._calculate_scores = lambda y_test, y_pred: calculate(np.asarray(y_test[:]), y_pred)


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


def task_model(encoder: TextEncoder, spec: ModelSpec) -> MtebEncoder | MtebCrossEncoder:
    name = f"hubforge/{spec.id}"
    return MtebCrossEncoder(encoder, name) if spec.task == "cross-encoder" else \
        MtebEncoder(encoder, spec.query_prefix, name)


def _retrieval_set(spec: ModelSpec) -> bundled.RetrievalSet:
    evaluation = spec.evaluation
    data = banking77_sample(evaluation.test_sample, evaluation.train_per_label)
    return bundled.banking77_retrieval(data.texts("train"), data.texts("test"))


def retrieval_embeddings(model: MtebEncoder | MtebCrossEncoder, spec: ModelSpec) -> RetrievalEmbeddings | None:
    """What `model` embedded of the spec's bundled retrieval set during `evaluate_tasks`; None where the spec
    names none (or the model is a cross-encoder)."""
    if spec.evaluation.retrieval != "banking77" or not isinstance(model, MtebEncoder):
        return None
    retrieval = _retrieval_set(spec)
    return RetrievalEmbeddings(model.embedded(list(retrieval.queries.values()), spec.query_prefix),
                               model.embedded(list(retrieval.corpus.values()), ""))


def retrieval_scores(queries: RetrievalEmbeddings, documents: RetrievalEmbeddings, spec: ModelSpec) -> dict:
    """mteb's scores of the spec's retrieval task with `queries`' query vectors searching `documents`' index."""
    import mteb

    evaluation = spec.evaluation
    task = _bundled_factory("retrieval", "banking77")(banking77_sample(evaluation.test_sample,
                                                                       evaluation.train_per_label))
    with _quiet():
        _load(task)
        result = mteb.evaluate(LookupEncoder(queries, documents, f"hubforge/{spec.id}"), task, cache=None,
                               co2_tracker=False, show_progress_bar=False,
                               encode_kwargs={"batch_size": 32, "show_progress_bar": False}).task_results[0]
    (entry,) = result.scores["test"]
    return entry


def evaluate_tasks(encoder: TextEncoder, spec: ModelSpec,
                   model: MtebEncoder | MtebCrossEncoder | None = None) -> list[TaskScore]:
    """Every task the spec asks for, through mteb.evaluate; one TaskScore per (task, subset, split). `model`: the
    mteb wrapper of `encoder` to use (`task_model`), for a caller that reads what it embedded afterwards."""
    import mteb

    evaluation = spec.evaluation
    banking77 = banking77_sample(evaluation.test_sample, evaluation.train_per_label)
    tasks = [(_bundled_factory(kind, task_name)(banking77), banking77.sampled if task_name == "banking77" else None)
             for kind, task_name in _requested(spec)]
    tasks += [(mteb.get_task(task_name), None) for task_name in evaluation.mteb_tasks]
    model = model or task_model(encoder, spec)
    out: list[TaskScore] = []
    for task, sampled in tasks:
        with _quiet():
            _load(task)  # loaded here, not inside mteb.evaluate, so a sample can be drawn first
            sampled = sampled or _sample(task, evaluation.test_sample, evaluation.train_per_label)
            result = mteb.evaluate(model, task, cache=None, co2_tracker=False, show_progress_bar=False,
                                   encode_kwargs={"batch_size": 32, "show_progress_bar": False}).task_results[0]
        meta, record = task.metadata, result.model_dump(mode="json")
        derived = meta.name in BUNDLED_TASK_NAMES
        for split, entries in result.scores.items():
            for entry in entries:
                items = _items(task, split, entry["hf_subset"])
                interval, method = confidence_interval(meta.type, float(entry["main_score"]), items) \
                    if sampled.test and items else (None, "")
                out.append(TaskScore(
                    task=meta.name, task_type=meta.type, dataset=meta.dataset["path"],
                    dataset_name=f"MTEB {meta.name}", config=entry["hf_subset"], split=split,
                    revision=meta.revision, main_metric=meta.main_score, main_score=float(entry["main_score"]),
                    scores=_scalars(entry), protocol=_protocol(task, split, sampled), sample=sampled.test,
                    train_per_label=sampled.train_per_label, items=items, ci95=interval, ci_method=method,
                    note=BUNDLED_NOTE if derived else "", result=record))
    return out


def write_mteb_results(scores: list[TaskScore], out_dir: Path, model_name: str, *, revision: str) -> list[Path]:
    """mteb's own files, `results/<model>/<revision>/<Task>.json` plus model_meta.json, under out_dir."""
    from mteb.cache import ResultCache
    from mteb.results import TaskResult

    cache = ResultCache(cache_path=Path(out_dir))
    meta = _model_meta(model_name, revision)
    paths = []
    for record in {id(s.result): s.result for s in scores}.values():
        result = TaskResult.model_validate(record)
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
