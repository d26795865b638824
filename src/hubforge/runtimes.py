"""One small interface per runtime, so every artifact and the fp32 reference are evaluated by the same code.

A runtime maps tokenized numpy inputs to the model's raw output (last_hidden_state or logits); `TextEncoder`
does tokenization, pooling and normalisation once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class Runtime(Protocol):
    name: str
    static_shape: tuple[int, int] | None
    provider: str

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray: ...


class TorchRuntime:
    """The fp32 PyTorch original: the reference every artifact is measured against."""

    name = "pytorch"
    static_shape = None
    provider = "cpu"

    def __init__(self, model_dir: Path, task: str):
        import torch
        from transformers import AutoModel, AutoModelForSequenceClassification

        cls = AutoModelForSequenceClassification if task == "cross-encoder" else AutoModel
        self.model = cls.from_pretrained(model_dir, dtype=torch.float32).eval()
        self._torch = torch

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        with self._torch.inference_mode():
            out = self.model(**{k: self._torch.from_numpy(v) for k, v in feed.items()})
        tensor = out.logits if hasattr(out, "logits") else out.last_hidden_state
        return tensor.float().numpy()


class OrtRuntime:
    """ONNX Runtime with the best execution provider present (CPU on a machine without accelerators)."""

    name = "onnxruntime"

    def __init__(self, model_path: Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        preferred = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider",
                     "QNNExecutionProvider", "VitisAIExecutionProvider", "CPUExecutionProvider"]
        available = ort.get_available_providers()
        providers = [p for p in preferred if p in available]
        self.session = ort.InferenceSession(str(model_path), options, providers=providers)
        self.provider = self.session.get_providers()[0]
        self.inputs = [i.name for i in self.session.get_inputs()]
        shape = self.session.get_inputs()[0].shape
        self.static_shape = tuple(shape) if all(isinstance(d, int) for d in shape) else None

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0].astype(np.float32)


class OpenVinoRuntime:
    """OpenVINO on the best device listed by `Core().available_devices` (NPU/GPU before CPU)."""

    name = "openvino"

    def __init__(self, model_xml: Path, device: str | None = None):
        import openvino as ov

        core = ov.Core()
        available = core.available_devices
        self.provider = device or next((d for d in ("NPU", "GPU", "CPU") if d in available), "CPU")
        model = core.read_model(str(model_xml))
        self.inputs = [p.get_any_name() for p in model.inputs]
        shape = model.inputs[0].get_partial_shape()
        self.static_shape = tuple(d.get_length() for d in shape) if shape.is_static else None
        self.compiled = core.compile_model(model, self.provider, {"PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        result = self.request.infer({k: v for k, v in feed.items() if k in self.inputs})
        return np.asarray(result[self.compiled.outputs[0]], dtype=np.float32)


class MnnRuntime:
    """MNN's Python Module API, as the card's usage snippet shows; it resizes to each batch's shape."""

    name = "mnn"
    provider = "cpu"
    static_shape = None

    def __init__(self, model_path: Path):
        import MNN.expr as F
        import MNN.nn as nn

        self._F = F
        info = nn.load_module_from_file(str(model_path), [], []).get_info()
        self.inputs = list(info["inputNames"])
        self.module = nn.load_module_from_file(str(model_path), self.inputs, info["outputNames"][:1])

    def forward(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        F = self._F
        args = [F.const(feed[name].astype(np.int32), list(feed[name].shape), F.NCHW, F.int) for name in self.inputs]
        out = self.module.forward(args)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return np.array(out.read(), dtype=np.float32)


def model_feed(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int,
               pad_to_max: bool) -> dict[str, np.ndarray]:
    """The int64 inputs every exported encoder takes; token_type_ids are zeros where the tokenizer has none.
    Used for inference and for calibration alike, so both see the same inputs."""
    encoded = tokenizer(texts, pairs, padding="max_length" if pad_to_max else True, truncation=True,
                        max_length=max_length, return_tensors="np")
    feed = {k: v.astype(np.int64) for k, v in encoded.items() if k in INPUT_NAMES}
    feed.setdefault("token_type_ids", np.zeros_like(feed["input_ids"]))
    return feed


@dataclass(frozen=True)
class ModelIO:
    """What a model needs around its runtime: tokenizer, task, pooling."""

    tokenizer_dir: Path
    task: str
    pooling: str
    normalize: bool
    max_length: int


class TextEncoder:
    """Tokenize, run a runtime in batches, pool and normalise: sentence embeddings or cross-encoder scores."""

    def __init__(self, io: ModelIO, runtime: Runtime, batch_size: int = 32):
        from transformers import AutoTokenizer

        self.io = io
        self.runtime = runtime
        self.tokenizer = AutoTokenizer.from_pretrained(io.tokenizer_dir)
        self.batch_size = 1 if runtime.static_shape else batch_size

    def tokenize(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, np.ndarray]:
        static = self.runtime.static_shape
        return model_feed(self.tokenizer, texts, pairs, static[1] if static else self.io.max_length, bool(static))

    def _run(self, texts: list[str], pairs: list[str] | None) -> list[np.ndarray]:
        outputs = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            chunk_pairs = pairs[start : start + self.batch_size] if pairs else None
            feed = self.tokenize(chunk, chunk_pairs)
            outputs.append((self.runtime.forward(feed), feed["attention_mask"]))
        return outputs

    def embed(self, texts: list[str], prefix: str = "") -> np.ndarray:
        """Pooled sentence vectors; feature-extraction models are compared by their mean-pooled states."""
        vectors = []
        for hidden, mask in self._run([prefix + t for t in texts], None):
            if self.io.pooling == "cls" and self.io.task != "feature-extraction":
                pooled = hidden[:, 0]
            else:
                weights = mask[..., None].astype(np.float32)
                pooled = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
            if self.io.normalize and self.io.task == "sentence-embedding":
                pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            vectors.append(pooled)
        return np.concatenate(vectors).astype(np.float32)

    def score(self, queries: list[str], passages: list[str]) -> np.ndarray:
        """Cross-encoder relevance logits, one per (query, passage) pair."""
        return np.concatenate([logits[:, 0] for logits, _ in self._run(queries, passages)]).astype(np.float32)

    def outputs(self, texts: list[str], prefix: str = "") -> np.ndarray:
        """What fidelity compares: embeddings, or scores of (text, next text) pairs for cross-encoders."""
        if self.io.task == "cross-encoder":
            return self.score(texts, texts[1:] + texts[:1])
        return self.embed(texts, prefix)
