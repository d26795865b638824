"""Shared by the quantizing targets: fixed-shape graphs, a calibration reader over real texts, and the ordered
configuration search for QDQ graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantType
from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

from ..runtimes import INPUT_NAMES
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


class TextCalibrationReader(CalibrationDataReader):
    """Feeds real texts, padded to the fixed shape with their real attention masks."""

    def __init__(self, inputs: BuildInputs, model_path: Path, samples: int, seq: int):
        from transformers import AutoTokenizer

        names = {i.name for i in onnx.load(str(model_path), load_external_data=False).graph.input}
        tokenizer = AutoTokenizer.from_pretrained(inputs.io.tokenizer_dir)
        texts = inputs.calibration_texts[:samples]
        if inputs.spec.task == "cross-encoder":
            encoded = tokenizer(texts, texts[1:] + texts[:1], padding="max_length", truncation=True,
                                max_length=seq, return_tensors="np")
        else:
            prefixed = [inputs.spec.query_prefix + t for t in texts]
            encoded = tokenizer(prefixed, padding="max_length", truncation=True, max_length=seq, return_tensors="np")
        columns = {k: v.astype(np.int64) for k, v in encoded.items() if k in INPUT_NAMES and k in names}
        if "token_type_ids" in names and "token_type_ids" not in columns:
            columns["token_type_ids"] = np.zeros_like(columns["input_ids"])
        self._feeds = iter([{k: v[i : i + 1] for k, v in columns.items()} for i in range(len(texts))])

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
