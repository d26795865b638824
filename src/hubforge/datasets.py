"""Bundled evaluation and calibration data, loaded by name so specs can refer to it offline."""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass
from functools import cache

from .errors import EvaluationError
from .paths import DATA_DIR


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: list[str]


@dataclass(frozen=True)
class RetrievalSet:
    """BEIR-shaped: queries and corpus by id, qrels query id -> relevant doc ids."""

    name: str
    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, set[str]]


@dataclass(frozen=True)
class RerankingSet:
    """Each query with a candidate list; `relevant` marks which candidates are correct."""

    name: str
    queries: list[str]
    candidates: list[list[str]]
    relevant: list[list[bool]]


def _indices_by_label(labels: list[str]) -> dict[str, list[int]]:
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    return by_label


@cache
def banking77(split: str) -> LabelledTexts:
    path = DATA_DIR / "banking77" / f"{split}.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return LabelledTexts([r["text"] for r in rows], [r["category"] for r in rows])


@cache
def portuguese(split: str) -> list[str]:
    """One small set: both splits are the same 64 sentences (see data/portuguese/README.md)."""
    return (DATA_DIR / "portuguese" / "sentences.txt").read_text(encoding="utf-8").splitlines()


TEXT_SETS = {"banking77": lambda split: banking77(split).texts, "portuguese": portuguese}


def sample_texts(name: str, count: int, split: str = "test", *, seed: int = 0) -> list[str]:
    """A reproducible sample of real texts: calibration (test split) and fidelity (train split) sets."""
    if name not in TEXT_SETS:
        raise EvaluationError(f"unknown text set {name!r}", f"bundled text sets: {', '.join(TEXT_SETS)}")
    texts = TEXT_SETS[name](split)
    return random.Random(seed).sample(texts, min(count, len(texts)))


def banking77_label_ids() -> dict[str, int]:
    """Intent -> label id as in mteb/banking77 (the original Hub dataset's ClassLabel: intents sorted
    case-insensitively, so `Refund_not_showing_up` sits between `receiving_money` and `request_refund`)."""
    return {name: i for i, name in enumerate(sorted(set(banking77("train").labels), key=str.casefold))}


def banking77_revision() -> str:
    """Content hash of the bundled copy: the `revision` of the data sets hubforge derives from it."""
    digest = hashlib.sha1()
    for split in ("train", "test"):
        digest.update((DATA_DIR / "banking77" / f"{split}.csv").read_bytes())
    return digest.hexdigest()


def banking77_retrieval(train: LabelledTexts, test: LabelledTexts, corpus_per_intent: int = 5,
                        *, seed: int = 0) -> RetrievalSet:
    """Intent retrieval: every test text is a query, relevant to the train texts of its intent in a corpus of
    `corpus_per_intent` train texts per intent."""
    rng = random.Random(seed)
    corpus, doc_intent = {}, {}
    for label, idxs in sorted(_indices_by_label(train.labels).items()):
        for i in rng.sample(idxs, min(corpus_per_intent, len(idxs))):
            corpus[f"d{i}"] = train.texts[i]
            doc_intent[f"d{i}"] = label
    query_map = {f"q{i}": text for i, text in enumerate(test.texts)}
    qrels = {f"q{i}": {d for d, lab in doc_intent.items() if lab == label} for i, label in enumerate(test.labels)}
    return RetrievalSet("banking77-intent-retrieval", query_map, corpus, qrels)


def banking77_reranking(test: LabelledTexts, candidates: int = 10, seed: int = 0) -> RerankingSet:
    """Candidate lists for every test text: 2 other test texts of its intent among texts of other intents,
    shuffled. Drawn from the test split only, so an encoder has embedded them all for classification already."""
    rng = random.Random(seed)
    by_intent = _indices_by_label(test.labels)
    out_q, out_c, out_r = [], [], []
    for qi, label in enumerate(test.labels):
        positives = rng.sample([i for i in by_intent[label] if i != qi], 2)
        negatives = [i for i in rng.sample(range(len(test.texts)), candidates * 2) if test.labels[i] != label]
        pool = [(i, True) for i in positives] + [(i, False) for i in negatives[: candidates - 2]]
        rng.shuffle(pool)
        out_q.append(test.texts[qi])
        out_c.append([test.texts[i] for i, _ in pool])
        out_r.append([rel for _, rel in pool])
    return RerankingSet("banking77-intent-reranking", out_q, out_c, out_r)


@dataclass(frozen=True)
class PairSet:
    """STS-shaped: sentence pairs with a gold similarity score."""

    name: str
    first: list[str]
    second: list[str]
    gold: list[float]


def banking77_pairs(test: LabelledTexts, seed: int = 0) -> PairSet:
    """Intent similarity, one pair per test text: gold 1 with another text of its intent (even rows), 0 with a
    text of another intent (odd rows)."""
    rng = random.Random(seed)
    by_intent = _indices_by_label(test.labels)
    intents = sorted(by_intent)
    first, second, gold = [], [], []
    for a, a_intent in enumerate(test.labels):
        if a % 2:
            b = rng.choice(by_intent[rng.choice([i for i in intents if i != a_intent])])
        else:
            b = rng.choice([i for i in by_intent[a_intent] if i != a])
        first.append(test.texts[a])
        second.append(test.texts[b])
        gold.append(float(test.labels[a] == test.labels[b]))
    return PairSet("banking77-intent-pairs", first, second, gold)


def csv_pairs(path: str) -> PairSet:
    """A user's own STS file: CSV with columns sentence1, sentence2, score."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"sentence1", "sentence2", "score"} - set(rows[0] if rows else {})
    if missing:
        raise EvaluationError(f"{path} lacks column(s) {', '.join(sorted(missing))}",
                              "an STS CSV needs sentence1, sentence2 and score columns")
    return PairSet(path, [r["sentence1"] for r in rows], [r["sentence2"] for r in rows],
                   [float(r["score"]) for r in rows])


