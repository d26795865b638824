"""Shared by the quantizing targets: fixed-shape graphs, a calibration reader over real texts, and the ordered
configuration search for QDQ graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantType
from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

from ..runtimes import model_feed
from .base import BuildInputs

QUANT_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8, "uint16": QuantType.QUInt16,
               "int16": QuantType.QInt16}


def fix_shape(src: Path, dst: Path, batch: int, seq: int) -> Path:
    """NPUs compile a graph for one shape: pin batch and sequence axes ([1, 128] by default)."""
    model = onnx.load(str(src))
    make_dim_param_fixed(model.graph, "batch_size", batch)
    make_dim_param_fixed(model.graph, "sequence_length", seq)
    fix_output_shapes(model)
    onnx.save(model, str(dst))
    return dst


def calibration_feeds(inputs: BuildInputs, input_names: set[str], samples: int,
                      pad_to: int | None = None) -> list[dict[str, np.ndarray]]:
    """One feed per real calibration text, shaped as the model sees it at inference: the query prefix on
    embedding models, (text, next text) pairs on cross-encoders, padded to `pad_to` for fixed-shape graphs."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(inputs.io.tokenizer_dir)
    texts = inputs.calibration_texts[:samples]
    if inputs.spec.task == "cross-encoder":
        firsts, pairs = texts, texts[1:] + texts[:1]
    else:
        firsts, pairs = [inputs.spec.query_prefix + t for t in texts], None
    feeds = []
    for i, text in enumerate(firsts):
        feed = model_feed(tokenizer, [text], [pairs[i]] if pairs else None, pad_to or inputs.spec.max_length,
                          pad_to is not None)
        feeds.append({k: v for k, v in feed.items() if k in input_names})
    return feeds


class TextCalibrationReader(CalibrationDataReader):
    """Feeds real texts to ONNX Runtime's calibrator, padded to the fixed shape with their real attention masks."""

    def __init__(self, inputs: BuildInputs, model_path: Path, samples: int, seq: int):
        names = {i.name for i in onnx.load(str(model_path), load_external_data=False).graph.input}
        self._feeds = iter(calibration_feeds(inputs, names, samples, pad_to=seq))

    def get_next(self):
        return next(self._feeds, None)


CALIBRATION_METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}


def qdq_candidates(activation_type: str, base: dict) -> list[dict]:
    """In order of cost to the NPU: every op per-tensor (fastest, usually wrecks encoders), then per-channel
    MatMul/Gemm only, then 4x the calibration texts with percentile ranges, then the sensitive FFN-output MatMuls
    left in float, and last 16-bit activations."""
    matmul = {**base, "activation_type": activation_type, "per_channel": True, "ops": "MatMul,Gemm",
              "calibration": "minmax", "samples_x": 1, "exclude_ffn_out": False}
    steps = [
        {**matmul, "per_channel": False, "ops": "all"},
        matmul,
        {**matmul, "calibration": "percentile", "samples_x": 4},
        {**matmul, "calibration": "percentile", "samples_x": 4, "exclude_ffn_out": True},
    ]
    if activation_type != "uint16":
        steps.append({**matmul, "activation_type": "uint16"})
    return steps


def ffn_output_matmuls(model_path: Path) -> list[str]:
    """The MatMuls after GELU in each layer: their inputs carry the activation outliers that break 8-bit ranges."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node
            if n.op_type == "MatMul" and "/output/dense/" in n.name and "attention" not in n.name]
