"""The consumer matrix: every published file loaded, from the repo's own layout, in each client its card names, on
texts no gate or search saw; its outputs compared with the fp32 pipeline's (the card's figure) and with the file's
own outputs in hubforge's runtime (the check). A client that cannot load the file, or gives other outputs than the
file gives (mistokenized, mis-pooled, the wrong file picked), fails it, and the file is not published; the fidelity
gate has already judged the file itself. A client whose environment is not installed is "not measured".

Clients that need an environment of their own run in it as a subprocess (sentence-transformers' ONNX backend and
optimum's ORTModel: `clients.run_st5_onnx_batch`; transformers.js: node); the others run in this worker.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..clients import ClientUnavailable
from ..datasets import sample_texts
from ..errors import failure
from ..layout import TRANSFORMERS_JS_DTYPES, repo_files, stage
from ..reference import ReferenceEncoder
from ..runtimes import ModelIO, MnnRuntime, OpenVinoRuntime, OrtRuntime, TextEncoder
from ..spec import ModelSpec
from ..workers import Report
from .fidelity import cosine_rows

# short texts of several kinds, none of them a fidelity, calibration or task text
EDGE_TEXTS = ("Ok", "WHY IS MY CARD BLOCKED???", "Überweisung nach Zürich, 250 € — wann kommt sie an?",
              "card 4242 declined at 23:59 (error #51) 🙁", "i want 2 close my acount pls",
              "Can I top up by bank transfer, and how long does it take for the money to show?")
CONSUMER_SAMPLE = 26
CONSUMER_SEED = 11
# a client reproduces the file when its outputs agree with the file's own this closely (different fusions, thread
# counts and ONNX Runtime builds stay above it; a tokenizer or pooling mismatch falls far below)
MIN_AGREEMENT = {"mean cosine": 0.999, "Spearman": 0.99}


def consumer_texts(spec: ModelSpec, model_dir: Path) -> list[str]:
    """Texts of the spec's text set no stage samples (another seed of its test split) plus EDGE_TEXTS, each short
    enough that no client truncates it (half the max length for a cross-encoder's pairs): clients truncate at the
    length their own configs give, which the check does not judge."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    fits = spec.max_length // 2 if spec.task == "cross-encoder" else spec.max_length
    candidates = sample_texts(spec.evaluation.fidelity_texts, 10 * CONSUMER_SAMPLE, split="test", seed=CONSUMER_SEED)
    def short(texts) -> list[str]:
        return [t for t in texts if len(tokenizer(t)["input_ids"]) <= fits]

    return short(candidates)[:CONSUMER_SAMPLE] + short(EDGE_TEXTS)


@dataclass(frozen=True)
class ClientRequest:
    """One file of one staged repo, for one client."""

    client: str  # a key of CLIENTS
    folder: Path  # the repo as published (layout.repo_files), staged as symlinks
    file: str  # the file as the repo names it, e.g. onnx/model_quantized.onnx
    io: ModelIO
    texts: list[str]
    pairs: list[str] | None  # cross-encoders score (text, pair) pairs

    @property
    def path(self) -> Path:
        return self.folder / self.file


Outcome = np.ndarray | str  # the client's outputs, or its failure as "Type: first line"


@dataclass(frozen=True)
class Client:
    """A library consumers load published files with. `run` takes every request for it at once, and for every client
    sharing that function (one subprocess)."""

    name: str
    tasks: tuple[str, ...]
    run: Callable[[list[ClientRequest]], list[Outcome]]
    claims: Callable[[ClientRequest], bool] = lambda request: True  # beyond its format's claim (e.g. file naming)
    fixed_shape: bool = False  # feeds a fixed-shape file one sequence padded to its length (the card's recipes)


@dataclass(frozen=True)
class ClientCheck:
    """One (file, client) cell of the matrix."""

    client: str
    file: str
    status: str  # "pass", "failed" or "not measured"
    metric: str  # "mean cosine" (embeddings) or "Spearman" (cross-encoder scores)
    value: float | None = None  # against the fp32 pipeline
    worst: float | None = None  # lowest per-text cosine against fp32; None for scores
    agreement: float | None = None  # `metric` against the file's own outputs in hubforge's runtime
    texts: int = 0
    detail: str = ""  # why it failed or was not measured

    def as_dict(self) -> dict:
        return {"client": self.client, "file": self.file, "status": self.status, "metric": self.metric,
                "value": self.value, "worst": self.worst, "agreement": self.agreement, "texts": self.texts,
                "detail": self.detail}


def _each(function: Callable[[ClientRequest], np.ndarray]) -> Callable[[list[ClientRequest]], list[Outcome]]:
    """An in-process client: each request on its own, a failure recorded as data."""
    def run(requests: list[ClientRequest]) -> list[Outcome]:
        out: list[Outcome] = []
        for request in requests:
            try:
                out.append(np.asarray(function(request), dtype=np.float32))
            except ModuleNotFoundError as exc:
                hint = f"pip install {exc.name} (`pip install hubforge[clients]` has them all)"
                raise ClientUnavailable(f"{exc.name} is not installed", hint) from exc
            except Exception as exc:
                out.append(failure(exc))
        return out

    return run


def _outputs(encoder: TextEncoder, request: ClientRequest) -> np.ndarray:
    if request.pairs is not None:
        return encoder.score(request.texts, request.pairs)
    return encoder.embed(request.texts)


def _recipe(request: ClientRequest, runtime) -> np.ndarray:
    """A card's recipe: the runtime on the file, the repo's own tokenizer (padding to a fixed-shape graph's length,
    one text a call) and the pooling and normalisation the card states."""
    from transformers import AutoTokenizer

    encoder = TextEncoder(request.io, runtime)  # the model's own post-processing (its modules, its activation)
    encoder.tokenizer = AutoTokenizer.from_pretrained(request.folder)
    return _outputs(encoder, request)


def _onnxruntime(request: ClientRequest) -> np.ndarray:
    return _recipe(request, OrtRuntime(request.path))


def _openvino(request: ClientRequest) -> np.ndarray:
    return _recipe(request, OpenVinoRuntime(request.path))


def _mnn(request: ClientRequest) -> np.ndarray:
    return _recipe(request, MnnRuntime(request.path))


def _llama_cpp(request: ClientRequest) -> np.ndarray:
    """The card's llama-cpp-python recipe: the GGUF file alone, llama.cpp tokenizing and pooling."""
    from llama_cpp import Llama

    llm = Llama(str(request.path), embedding=True, verbose=False)
    try:
        return np.asarray(llm.embed(request.texts, normalize=True))
    finally:
        llm.close()


def _openvino_st(request: ClientRequest) -> np.ndarray:
    if request.pairs is not None:
        import torch
        from sentence_transformers import CrossEncoder

        model = CrossEncoder(str(request.folder), backend="openvino", device="cpu", activation_fn=torch.nn.Identity(),
                             model_kwargs={"file_name": request.file})
        return model.predict(list(zip(request.texts, request.pairs)))
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(request.folder), backend="openvino", device="cpu",
                                model_kwargs={"file_name": request.file})
    return model.encode(request.texts)


def _optimum_intel(request: ClientRequest) -> np.ndarray:
    from optimum.intel import OVModelForFeatureExtraction
    from transformers import AutoTokenizer

    subfolder, file_name = request.file.rsplit("/", 1)
    model = OVModelForFeatureExtraction.from_pretrained(request.folder, subfolder=subfolder, file_name=file_name,
                                                        compile=True)
    enc = AutoTokenizer.from_pretrained(request.folder)(request.texts, padding=True, truncation=True,
                                                       max_length=request.io.max_length, return_tensors="pt")
    return _pooled(model(**enc).last_hidden_state.numpy(), enc["attention_mask"].numpy(), request.io)


def _pooled(hidden: np.ndarray, mask: np.ndarray, io: ModelIO) -> np.ndarray:
    """Pooling as the card describes it, for the clients that return token states."""
    if io.pooling == "cls":
        pooled = hidden[:, 0]
    else:
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True) if io.normalize else pooled


def _fastembed(request: ClientRequest) -> np.ndarray:
    """Qdrant's fastembed with the file registered as a custom model and loaded from the folder (no download)."""
    import hashlib

    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    pooling = {"mean": PoolingType.MEAN, "cls": PoolingType.CLS}[request.io.pooling]
    # the registry is per process and refuses a name twice: one name per file
    name = f"hubforge/{hashlib.sha1(str(request.path).encode()).hexdigest()[:12]}"
    if not any(m["model"] == name for m in TextEmbedding.list_supported_models()):
        TextEmbedding.add_custom_model(model=name, pooling=pooling, normalization=request.io.normalize,
                                       sources=ModelSource(hf=name), dim=_hidden_size(request.folder),
                                       model_file=request.file)
    with tempfile.TemporaryDirectory() as cache:
        model = TextEmbedding(name, specific_model_path=str(request.folder), cache_dir=cache, local_files_only=True,
                              cuda=False, providers=["CPUExecutionProvider"])
        return np.stack(list(model.embed(request.texts)))


def _hidden_size(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["hidden_size"]


def _pooling_only(request: ClientRequest) -> bool:
    """Clients that pool token states themselves (mean or CLS, then normalise) reproduce a model whose pipeline is
    nothing more: not one with a Dense layer or another pooling mode."""
    modules = request.folder / "modules.json"
    types = {m["type"].rsplit(".", 1)[-1] for m in json.loads(modules.read_text())} if modules.exists() else set()
    return request.io.pooling in ("mean", "cls") and types <= {"Transformer", "Pooling", "Normalize"}


def _st5(requests: list[ClientRequest]) -> list[Outcome]:
    """sentence-transformers' ONNX backend and optimum's ORTModel, in their own environment, one process."""
    from ..clients import run_st5_onnx_batch

    def as_json(request: ClientRequest) -> dict:
        client = {"sentence-transformers (onnx)": "sentence-transformers", "optimum (ORTModel)": "optimum"}
        common = {"client": client[request.client], "path": str(request.folder), "file_name": request.file}
        if request.pairs is not None:
            return {**common, "client": "cross-encoder", "pairs": list(zip(request.texts, request.pairs))}
        return {**common, "texts": request.texts, "pooling": request.io.pooling, "normalize": request.io.normalize}

    return run_st5_onnx_batch([as_json(r) for r in requests])


def _transformers_js(requests: list[ClientRequest]) -> list[Outcome]:
    from ..clients import run_transformers_js

    return run_transformers_js([{"folder": str(r.folder), "dtype": TRANSFORMERS_JS_DTYPES[Path(r.file).name],
                                 "texts": r.texts, "pooling": r.io.pooling, "normalize": r.io.normalize}
                                for r in requests])


def _sentence_transformers_model(request: ClientRequest) -> bool:
    """A sentence-transformers model in a repo that carries its configuration (a fixed-shape file's does not)."""
    if request.io.task == "cross-encoder":
        return True
    return request.io.is_sentence_transformer and (request.folder / "modules.json").exists()


CLIENTS: dict[str, Client] = {c.name: c for c in (
    Client("onnxruntime", ("sentence-embedding", "cross-encoder", "feature-extraction"), _each(_onnxruntime),
           fixed_shape=True),
    Client("sentence-transformers (onnx)", ("sentence-embedding", "cross-encoder"),
           _st5, _sentence_transformers_model),
    Client("optimum (ORTModel)", ("sentence-embedding", "feature-extraction"),
           _st5, _pooling_only),
    Client("transformers.js", ("sentence-embedding", "feature-extraction"), _transformers_js,
           lambda r: Path(r.file).name in TRANSFORMERS_JS_DTYPES and _pooling_only(r)),
    Client("fastembed", ("sentence-embedding",), _each(_fastembed), _pooling_only),
    Client("sentence-transformers (openvino)", ("sentence-embedding", "cross-encoder"), _each(_openvino_st),
           _sentence_transformers_model),
    Client("optimum-intel (OVModel)", ("sentence-embedding", "feature-extraction"), _each(_optimum_intel),
           _pooling_only),
    Client("OpenVINO", ("sentence-embedding", "cross-encoder", "feature-extraction"), _each(_openvino),
           fixed_shape=True),
    Client("MNN", ("sentence-embedding", "cross-encoder", "feature-extraction"), _each(_mnn)),
    Client("llama-cpp-python", ("sentence-embedding", "feature-extraction"), _each(_llama_cpp)),
)}


def main_file(files: dict[str, Path]) -> str:
    """The file a client is pointed at: the graph, not its external data or weights file."""
    return next(rel for rel in sorted(files) if rel.endswith((".onnx", ".xml", ".mnn", ".gguf")))


def _agreement(reference: np.ndarray, got: np.ndarray, cross: bool) -> tuple[float, float | None]:
    if cross:
        from scipy.stats import spearmanr

        return float(spearmanr(reference, got.reshape(len(reference), -1)[:, 0]).statistic), None
    rows = cosine_rows(reference, got)
    return float(rows.mean()), float(rows.min())


def _check(request: ClientRequest, outcome: Outcome, reference: np.ndarray, *, own: np.ndarray) -> ClientCheck:
    """`reference`: the fp32 pipeline's outputs; `own`: the file's in hubforge's runtime."""
    cross = request.pairs is not None
    metric = "Spearman" if cross else "mean cosine"
    if isinstance(outcome, str):
        return ClientCheck(request.client, request.file, "failed", metric, texts=len(request.texts), detail=outcome)
    if outcome.shape[0] != len(request.texts):
        return ClientCheck(request.client, request.file, "failed", metric, texts=len(request.texts),
                           detail=f"{outcome.shape[0]} outputs for {len(request.texts)} texts")
    value, worst = _agreement(reference, outcome, cross)
    agreement, _ = _agreement(own, outcome, cross)
    passed = agreement >= MIN_AGREEMENT[metric]
    return ClientCheck(request.client, request.file, "pass" if passed else "failed", metric, value, worst, agreement,
                       len(request.texts), "" if passed else
                       f"{metric} {agreement:.4f} against the file's own outputs, below {MIN_AGREEMENT[metric]}")


def _own_outputs(variant, target, io: ModelIO, *, texts: list[str], pairs: list[str] | None) -> np.ndarray:
    """The file's outputs in the runtime hubforge measured it with (its target's `load`)."""
    encoder = target().encoder(variant.files, io)
    return encoder.score(texts, pairs) if pairs is not None else encoder.embed(texts)


def _requests(variants: list, targets: dict, io: ModelIO, *, spec: ModelSpec, texts: list[str], pairs: list[str] | None,
              root: Path) -> list[tuple[str, ClientRequest]]:
    """(variant name, request) for each client each variant's format claims that can run the spec's task, every
    repo staged under `root` as it will be published."""
    requests = []
    for suffix in dict.fromkeys(v.repo_suffix for v in variants):
        in_repo = [v for v in variants if v.repo_suffix == suffix]
        folder = stage(repo_files(io.model_dir, in_repo), root / suffix)
        for variant in in_repo:
            for name in targets[variant.name].clients:
                client, request = CLIENTS[name], ClientRequest(name, folder, main_file(variant.files), io, texts, pairs)
                if variant.fixed_shape and not client.fixed_shape:
                    continue
                if spec.task in client.tasks and client.claims(request):
                    requests.append((variant.name, request))
    return requests


def _run(requests: list[ClientRequest], report: Report) -> list[Outcome | ClientUnavailable]:
    """Every request's outcome; requests whose clients share a runner (one subprocess) go to it at once."""
    outcomes: dict[int, Outcome | ClientUnavailable] = {}
    runners = {id(CLIENTS[r.client].run): CLIENTS[r.client].run for r in requests}
    for key, runner in runners.items():
        batch = [i for i, r in enumerate(requests) if id(CLIENTS[r.client].run) == key]
        started = time.monotonic()
        try:
            outcomes.update(zip(batch, runner([requests[i] for i in batch])))
        except ClientUnavailable as exc:
            outcomes.update(dict.fromkeys(batch, exc))
        names = ", ".join(dict.fromkeys(requests[i].client for i in batch))
        report(f"consumers: {names}: {len(batch)} loads in {time.monotonic() - started:.1f} s")
    return [outcomes[i] for i in range(len(requests))]


def check_consumers(variants: list, targets: dict, io: ModelIO, *, spec: ModelSpec,
                    report: Report) -> dict[str, list[ClientCheck]]:
    """{variant name: its checks}, for every passing variant (results.VariantResult) and each client its format
    (`targets`: {variant name: Target class}) claims in `Target.clients` that can run the spec's task."""
    texts = consumer_texts(spec, io.model_dir)
    pairs = texts[1:] + texts[:1] if spec.task == "cross-encoder" else None
    metric = "Spearman" if pairs is not None else "mean cosine"
    reference = ReferenceEncoder(io).outputs(texts, "")
    checks: dict[str, list[ClientCheck]] = {v.name: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="hubforge-consumers-") as tmp:
        requests = _requests(variants, targets, io, spec=spec, texts=texts, pairs=pairs, root=Path(tmp))
        own = {v.name: _own_outputs(v, targets[v.name], io, texts=texts, pairs=pairs) for v in variants}
        outcomes = _run([request for _, request in requests], report)
    for (variant, request), outcome in zip(requests, outcomes):
        if isinstance(outcome, ClientUnavailable):
            missing = f"{outcome.message}; {outcome.hint}"
            checks[variant].append(ClientCheck(request.client, request.file, "not measured", metric, detail=missing))
        else:
            checks[variant].append(_check(request, outcome, reference, own=own[variant]))
    return checks
