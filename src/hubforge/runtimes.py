"""One small interface per runtime, so every artifact and the fp32 reference are evaluated by the same code.

A runtime maps tokenized numpy inputs to the model's raw output (last_hidden_state or logits), fed exactly the
inputs its graph or forward() takes. `TextEncoder` then runs the model's own sentence-transformers module chain
(Pooling, Dense, Normalize, ...) or cross-encoder activation on that output, as a consumer of the published repo
gets it; the fp32 reference is `SentenceTransformer` / `CrossEncoder` itself (`reference.ReferenceEncoder`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sys
import weakref
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# what a runtime's `provider` names when it ran on a GPU or an NPU (ONNX Runtime's providers, OpenVINO's devices)
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider", "GPU")
NPU_PROVIDERS = ("QNNExecutionProvider", "VitisAIExecutionProvider", "NPU")
CPU_PROVIDERS = ("cpu", "CPU", "CPUExecutionProvider")
# each runtime's `name` -> the package that provides it, whose version results.json and verify record
RUNTIME_PACKAGES = {"pytorch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino", "mnn": "MNN",
                    "llama.cpp": "llama-cpp-python"}
_THREADS: int | None = None


def use_threads(count: int | None) -> None:
    """Threads every runtime opened in this process gets (None: every core); a worker sharing the machine with
    others takes its share."""
    global _THREADS
    _THREADS = count
    if count:
        from threadpoolctl import threadpool_limits

        threadpool_limits(count)  # BLAS and OpenMP pools (scikit-learn's logistic regression, numpy): busy-waiting
        if "torch" in sys.modules:  # pools of two workers sharing two cores slow both down threefold
            sys.modules["torch"].set_num_threads(count)


def thread_count() -> int:
    return _THREADS or len(os.sched_getaffinity(0))


@contextlib.contextmanager
def torch_on_one_thread():
    """For the small post-processing ops (pooling, normalising, an activation) after another runtime's call:
    torch's pool would wake every core for them while that runtime's threads still spin, which on two cores
    costs more than the ops themselves (felt most by fixed-shape graphs, called once per text)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Runtime(Protocol):
    name: str
    static_shape: tuple[int, int] | None
    provider: str

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray: ...


def feed_for(input_names: list[str], feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Exactly the inputs a model takes: token_type_ids only where it has them (zeros if the tokenizer gave
    none), nothing it would reject (DistilBERT, MPNet and ModernBERT take no token_type_ids)."""
    selected = {name: feed[name] for name in input_names if name in feed}
    if "token_type_ids" in input_names and "token_type_ids" not in selected:
        selected["token_type_ids"] = np.zeros_like(feed["input_ids"])
    return selected


class TorchRuntime:
    """The fp32 PyTorch network (transformers), fed the arguments its forward() declares."""

    name = "pytorch"
    static_shape = None
    provider = "cpu"

    def __init__(self, model_dir: Path | None = None, task: str = "sentence-embedding", model=None,
                 *, trust_remote_code: bool = False):
        import torch
        from transformers import AutoModel, AutoModelForSequenceClassification

        if model is None:
            cls = AutoModelForSequenceClassification if task == "cross-encoder" else AutoModel
            model = cls.from_pretrained(model_dir, dtype=torch.float32, trust_remote_code=trust_remote_code)
        self.model = model.eval()
        self.inputs = [n for n in INPUT_NAMES if n in inspect.signature(model.forward).parameters]
        self._torch = torch

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        with self._torch.inference_mode():
            out = self.model(**{k: self._torch.from_numpy(v) for k, v in feed_for(self.inputs, feed).items()})
        tensor = out.logits if hasattr(out, "logits") else out.last_hidden_state
        return tensor.float().numpy()


class OrtRuntime:
    """ONNX Runtime with the best execution provider present (CPU on a machine without accelerators)."""

    name = "onnxruntime"

    def __init__(self, model_path: Path, free_axes: bool = False):
        """`free_axes` opens a fixed-shape graph with its input and output axes made dynamic again: the same
        nodes and quantization parameters, so real-token outputs are identical, without padding every text."""
        import onnxruntime as ort

        model = str(model_path)
        if free_axes:
            import onnx

            graph = onnx.load(model)
            for value in [*graph.graph.input, *graph.graph.output]:
                for axis, name in zip(value.type.tensor_type.shape.dim, ("batch_size", "sequence_length")):
                    axis.dim_param = name
            del graph.graph.value_info[:]
            model = graph.SerializeToString()
        options = ort.SessionOptions()
        options.intra_op_num_threads = thread_count()
        preferred = [*GPU_PROVIDERS, *NPU_PROVIDERS, "CPUExecutionProvider"]
        available = ort.get_available_providers()
        providers = [p for p in preferred if p in available]
        self.session = ort.InferenceSession(model, options, providers=providers)
        self.provider = self.session.get_providers()[0]
        self.inputs = [i.name for i in self.session.get_inputs()]
        shape = self.session.get_inputs()[0].shape
        self.static_shape = tuple(shape) if all(isinstance(d, int) for d in shape) else None

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, feed_for(self.inputs, feed))[0].astype(np.float32)


class OpenVinoRuntime:
    """OpenVINO on the best device listed by `Core().available_devices` (NPU/GPU before CPU), with the device's
    default inference precision, as consumers get it; the provider names it where it is not f32."""

    name = "openvino"

    def __init__(self, model_xml: Path, device: str | None = None, properties: dict | None = None):
        """`properties`: compile properties on top of hubforge's (benchmarks/profile_openvino.py: PERF_COUNT)."""
        import openvino as ov

        core = ov.Core()
        available = core.available_devices
        self.provider = device or next((d for d in ("NPU", "GPU", "CPU") if d in available), "CPU")
        model = core.read_model(str(model_xml))
        self.inputs = [p.get_any_name() for p in model.inputs]
        shape = model.inputs[0].get_partial_shape()
        self.static_shape = tuple(d.get_length() for d in shape) if shape.is_static else None
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if self.provider == "CPU" and thread_count() > 1:
            # one thread is left to the plugin's default: compiling some graphs with INFERENCE_NUM_THREADS=1 dies of
            # SIGFPE (OpenVINO 2026.4, ModernBERT with fp16 weights)
            config["INFERENCE_NUM_THREADS"] = thread_count()
        self.compiled = core.compile_model(model, self.provider, {**config, **(properties or {})})
        self.request = self.compiled.create_infer_request()
        if self.provider == "CPU":  # CPUs with AMX or avx512_bf16 run the graph's float ops in bf16 by default
            precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            self.provider = "CPU" if precision == "f32" else f"CPU ({precision} inference precision)"

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Inputs and outputs shared with the request, as OpenVINO's latency guide does: no copy of the feed and no
        fresh output array a call. The result is the request's output memory, valid until the next call: every
        caller pools or scores it before that."""
        result = self.request.infer(feed_for(self.inputs, feed), share_inputs=True, share_outputs=True)
        return np.asarray(result[self.compiled.outputs[0]], dtype=np.float32)


@contextlib.contextmanager
def quiet_native_stdout():
    """MNN's native code prints to the C stdout; keep the CLI's progress display and --json output clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


class MnnRuntime:
    """MNN's Python Module API, as the card's usage snippet shows (with every core: MNN's default is one thread);
    it resizes to each batch's shape."""

    name = "mnn"
    provider = "cpu"
    static_shape = None

    def __init__(self, model_path: Path):
        import MNN.expr as F
        import MNN.nn as nn

        self._F = F
        with quiet_native_stdout():
            info = nn.load_module_from_file(str(model_path), [], []).get_info()
            self.inputs = list(info["inputNames"])
            self.module = nn.load_module_from_file(str(model_path), self.inputs, info["outputNames"][:1],
                                                   thread_num=thread_count())

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        F = self._F
        feed = feed_for(self.inputs, feed)
        args = [F.const(feed[name].astype(np.int32), list(feed[name].shape), F.NCHW, F.int) for name in self.inputs]
        out = self.module.forward(args)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return np.array(out.read(), dtype=np.float32)


class LlamaCppRuntime:
    """llama.cpp through llama-cpp-python, as its consumers run a GGUF embedding file: llama.cpp's own tokenizer and
    the pooling the file's metadata names."""

    name = "llama.cpp"
    provider = "cpu"
    static_shape = None

    def __init__(self, model_path: Path):
        import llama_cpp

        self._llama_cpp = llama_cpp
        # n_ctx 0: the model's trained context, which then bounds the tokens decoded at once (sequences attend
        # within a micro-batch block-diagonally, so a micro-batch holds whole sequences)
        self.llama = llama_cpp.Llama(str(model_path), embedding=True, n_ctx=0, n_batch=1 << 16, n_ubatch=1 << 16,
                                     n_threads=thread_count(), n_threads_batch=thread_count(), verbose=False)
        self.ubatch = self.llama.context_params.n_ubatch
        self.max_sequences = self.llama.context_params.n_seq_max
        # closed before interpreter shutdown tears down the module llama-cpp-python's own __del__ still needs
        weakref.finalize(self, self.llama.close)

    def tokenize(self, text: str, max_length: int) -> list[int]:
        """llama.cpp's ids for `text` with the model's [CLS] and [SEP]; cut at `max_length` keeping the closing
        token, as the model's own tokenizer truncates."""
        ids = self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        return ids if len(ids) <= max_length else ids[: max_length - 1] + ids[-1:]

    def embed_tokens(self, sequences: list[list[int]]) -> np.ndarray:
        """Pooled vectors, decoded in micro-batches of whole sequences."""
        vectors, chunk, filled = [], [], 0
        for tokens in (t[: self.ubatch] for t in sequences):
            if chunk and (filled + len(tokens) > self.ubatch or len(chunk) == self.max_sequences):
                vectors.append(self._decode(chunk))
                chunk, filled = [], 0
            chunk.append(tokens)
            filled += len(tokens)
        return np.concatenate([*vectors, self._decode(chunk)])

    def _decode(self, sequences: list[list[int]]) -> np.ndarray:
        lib = self._llama_cpp
        batch = lib.llama_batch_init(sum(map(len, sequences)), 0, 1)
        try:
            for seq_id, tokens in enumerate(sequences):
                for pos, token in enumerate(tokens):
                    k = batch.n_tokens
                    batch.token[k], batch.pos[k], batch.n_seq_id[k], batch.logits[k] = token, pos, 1, True
                    batch.seq_id[k][0] = seq_id
                    batch.n_tokens += 1
            memory = lib.llama_get_memory(self.llama.ctx)  # none for an encoder; cleared otherwise
            if memory:
                lib.llama_memory_clear(memory, True)
            if lib.llama_decode(self.llama.ctx, batch) != 0:
                raise RuntimeError(f"llama_decode failed on {len(sequences)} sequences")
            width = self.llama.n_embd()
            return np.array([np.ctypeslib.as_array(lib.llama_get_embeddings_seq(self.llama.ctx, s), shape=(width,))
                             for s in range(len(sequences))], dtype=np.float32)
        finally:
            lib.llama_batch_free(batch)

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Every position of the feed, padding included, so that speed and memory are measured at the shape asked
        for, as for the other runtimes (consumers' vectors come from `embed_tokens` of real tokens only)."""
        return self.embed_tokens(feed["input_ids"].tolist())


def model_feed(tokenizer, texts: list[str], pairs: list[str] | None, *, max_length: int,
               pad_to_max: bool) -> dict[str, np.ndarray]:
    """The int64 inputs the tokenizer gives; each runtime picks the ones its model takes (`feed_for`).
    Used for inference and for calibration alike, so both see the same inputs."""
    encoded = tokenizer(texts, pairs, padding="max_length" if pad_to_max else True, truncation=True,
                        max_length=max_length, return_tensors="np")
    return {k: v.astype(np.int64) for k, v in encoded.items() if k in INPUT_NAMES}


@dataclass(frozen=True)
class ModelIO:
    """What a model needs around its runtime: its folder (tokenizer, module configs), task, pooling."""

    model_dir: Path
    task: str
    pooling: str
    normalize: bool
    max_length: int
    trust_remote_code: bool = False

    @property
    def is_sentence_transformer(self) -> bool:
        return self.task == "sentence-embedding" and (Path(self.model_dir) / "modules.json").exists()


@lru_cache(maxsize=8)
def cross_encoder(io: ModelIO):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(io.model_dir), device="cpu", max_length=io.max_length, local_files_only=True,
                        trust_remote_code=io.trust_remote_code)


def _modules_after_transformer(io: ModelIO) -> tuple:
    """A sentence-transformers model's modules after its Transformer (Pooling with its declared mode, Dense,
    Normalize, ...), each loaded by its own class as SentenceTransformer loads it, without the transformer's
    weights (which every artifact replaces)."""
    import inspect

    from sentence_transformers.util import import_module_class

    modules = []
    for entry in json.loads((Path(io.model_dir) / "modules.json").read_text())[1:]:
        module_class = import_module_class(entry["type"], str(io.model_dir), trust_remote_code=io.trust_remote_code,
                                           local_files_only=True)
        if len(inspect.signature(module_class.load).parameters) == 1:  # old-style modules load from their folder
            modules.append(module_class.load(str(Path(io.model_dir) / entry["path"])))
        else:
            modules.append(module_class.load(str(io.model_dir), subfolder=entry["path"], local_files_only=True))
    return tuple(modules)


@lru_cache(maxsize=8)
def post_modules(io: ModelIO) -> tuple:
    """What runs after the transformer: a sentence-transformers model's own modules; for plain transformers models,
    the spec's pooling (and Normalize) as ST modules."""
    from sentence_transformers.models import Normalize, Pooling

    if io.is_sentence_transformer:
        return _modules_after_transformer(io)
    hidden = json.loads((Path(io.model_dir) / "config.json").read_text()).get("hidden_size", 1)
    pooling = "mean" if io.task == "feature-extraction" else io.pooling
    modules = [Pooling(hidden, pooling_mode=pooling)]
    if io.normalize and io.task == "sentence-embedding":
        modules.append(Normalize())
    return tuple(modules)


@lru_cache(maxsize=8)
def cross_encoder_activation(io: ModelIO):
    """The activation `CrossEncoder.predict` applies to the logits (Sigmoid for one label unless configured)."""
    return cross_encoder(io).activation_fn


class TextEncoder:
    """Tokenize, run a runtime in batches, then the model's own post-processing: sentence embeddings or
    cross-encoder scores."""

    def __init__(self, io: ModelIO, runtime: Runtime, batch_size: int = 32):
        from transformers import AutoTokenizer

        self.io = io
        self.runtime = runtime
        self.tokenizer = AutoTokenizer.from_pretrained(io.model_dir)
        self.batch_size = 1 if runtime.static_shape else batch_size

    def tokenize(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, np.ndarray]:
        static = self.runtime.static_shape
        return model_feed(self.tokenizer, texts, pairs, max_length=static[1] if static else self.io.max_length,
                          pad_to_max=bool(static))

    def _run(self, texts: list[str], pairs: list[str] | None):
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            chunk_pairs = pairs[start : start + self.batch_size] if pairs else None
            feed = self.tokenize(chunk, chunk_pairs)
            yield self.runtime.forward(feed), feed

    def embed(self, texts: list[str], prefix: str = "") -> np.ndarray:
        """Sentence vectors through the model's module chain; feature-extraction models by mean-pooled states."""
        import torch

        vectors = []
        with torch.inference_mode():
            for hidden, feed in self._run([prefix + t for t in texts], None):
                features = {"token_embeddings": torch.from_numpy(hidden),
                            "attention_mask": torch.from_numpy(feed["attention_mask"]),
                            "input_ids": torch.from_numpy(feed["input_ids"])}
                with torch_on_one_thread():
                    for module in post_modules(self.io):
                        features = module(features)
                vectors.append(features["sentence_embedding"].float().numpy())
        return np.concatenate(vectors).astype(np.float32)

    def score(self, queries: list[str], passages: list[str]) -> np.ndarray:
        """Cross-encoder scores, one per (query, passage) pair, after the model's own activation function."""
        import torch

        activation = cross_encoder_activation(self.io)
        scores = []
        with torch.inference_mode():
            for logits, _ in self._run(queries, passages):
                with torch_on_one_thread():
                    scores.append(activation(torch.from_numpy(logits)).float().numpy()[:, 0])
        return np.concatenate(scores).astype(np.float32)

    def outputs(self, texts: list[str], prefix: str = "") -> np.ndarray:
        """What fidelity compares: embeddings, or scores of (text, next text) pairs for cross-encoders."""
        if self.io.task == "cross-encoder":
            return self.score(texts, texts[1:] + texts[:1])
        return self.embed(texts, prefix)


class LlamaCppEncoder(TextEncoder):
    """A GGUF file as llama.cpp's consumers get its vectors: llama.cpp tokenizes and pools; the model's modules
    after pooling (Normalize, the only kind a GGUF embedding file can stand for) then run as in its pipeline."""

    runtime: LlamaCppRuntime

    def embed(self, texts: list[str], prefix: str = "") -> np.ndarray:
        import torch

        pooled = self.runtime.embed_tokens([self.runtime.tokenize(prefix + t, self.io.max_length) for t in texts])
        features = {"sentence_embedding": torch.from_numpy(pooled)}
        with torch.inference_mode():
            for module in post_modules(self.io)[1:]:
                features = module(features)
        return features["sentence_embedding"].float().numpy()
