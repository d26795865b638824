"""Shared by the quantizing targets: fixed-shape graphs, calibration feeds over real texts, the sensitive-node
finder, and `QdqTarget`, the ordered configuration search for the NPU formats (qnn, amd)."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ..runtimes import OrtRuntime, feed_for
from .base import BuildInputs, CandidateConfig, Target, TargetOptions

Int8Or16 = Literal["uint8", "int8", "uint16", "int16"]


def quant_type(name: str):
    from onnxruntime.quantization import QuantType

    return {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8, "uint16": QuantType.QUInt16,
            "int16": QuantType.QInt16}[name]


def calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[name]


def fix_shape(src: Path, dst: Path, batch: int, seq: int) -> Path:
    """NPUs compile a graph for one shape: pin batch and sequence axes ([1, 128] by default)."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    model = onnx.load(str(src))
    make_dim_param_fixed(model.graph, "batch_size", batch)
    make_dim_param_fixed(model.graph, "sequence_length", seq)
    fix_output_shapes(model)
    onnx.save(model, str(dst))
    return dst


def graph_input_names(model_path: Path) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(str(model_path), load_external_data=False).graph.input]


def calibration_feeds(inputs: BuildInputs, input_names: list[str], samples: int,
                      pad_to: int | None = None) -> list[dict[str, np.ndarray]]:
    """One feed per real calibration text, shaped as the model sees it at inference: the query prefix on
    embedding models, (text, next text) pairs on cross-encoders, padded to `pad_to` for fixed-shape graphs,
    holding exactly the inputs the graph takes."""
    from transformers import AutoTokenizer

    from ..runtimes import model_feed

    tokenizer = AutoTokenizer.from_pretrained(inputs.io.model_dir)
    texts = inputs.calibration_texts[:samples]
    if inputs.spec.task == "cross-encoder":
        firsts, pairs = texts, texts[1:] + texts[:1]
    else:
        firsts, pairs = [inputs.spec.query_prefix + t for t in texts], None
    feeds = []
    for i, text in enumerate(firsts):
        feed = model_feed(tokenizer, [text], [pairs[i]] if pairs else None, pad_to or inputs.spec.max_length,
                          pad_to is not None)
        feeds.append(feed_for(input_names, feed))
    return feeds


class TextCalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol (`get_next`) over real texts, padded to the fixed shape
    with their real attention masks."""

    def __init__(self, inputs: BuildInputs, model_path: Path, samples: int, seq: int):
        self._feeds = iter(calibration_feeds(inputs, graph_input_names(model_path), samples, pad_to=seq))

    def get_next(self):
        return next(self._feeds, None)


ACTIVATION_OPS = {"Gelu", "FastGelu", "BiasGelu", "QuickGelu", "Erf", "Tanh", "Relu"}


def ffn_output_matmuls(model_path: Path) -> list[str]:
    """The MatMuls fed by each layer's FFN activation (GELU as one op or as its Erf/Tanh decomposition): their
    inputs carry the activation outliers that break 8-bit ranges. Found from the graph, not from node names, so
    it holds for every encoder architecture."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}

    def after_activation(tensor: str, depth: int) -> bool:
        node = producer.get(tensor)
        if node is None:
            return False
        if node.op_type in ACTIVATION_OPS:
            return True
        return depth > 0 and node.op_type in ("Mul", "Add", "Div") and any(
            after_activation(i, depth - 1) for i in node.input)

    return [n.name for n in graph.node if n.op_type == "MatMul" and after_activation(n.input[0], 4)]


class QdqOptions(TargetOptions):
    activation_type: Literal["uint8", "uint16"] = "uint16"
    calibration_samples: int = Field(64, ge=4, le=1000)
    sequence_length: int | None = Field(None, ge=8, description="fixed sequence length; defaults to max_length")


class QdqConfig(CandidateConfig):
    activation_type: Int8Or16
    weight_type: Int8Or16
    per_channel: bool
    ops: tuple[str, ...] | None  # None: every op type the quantizer knows
    calibration: Literal["minmax", "percentile"] = "minmax"
    samples_x: int = 1
    exclude_ffn_out: bool = False


class QdqTarget(Target):
    """A QDQ graph at a fixed [1, sequence_length] shape for an NPU; subclasses say how their EP wants it."""

    repo_suffix: str
    library_name = "onnx"
    runtime_name = "onnxruntime"
    precision = "qdq"
    cpu_target = False
    options_model = QdqOptions

    def weight_type(self, options: QdqOptions) -> str:
        return "int8"

    def candidates(self, options: QdqOptions, inputs: BuildInputs) -> list[QdqConfig]:
        """In order of cost to the NPU: every op per-tensor (fastest, usually wrecks encoders), then per-channel
        MatMul/Gemm only, then 4x the calibration texts with percentile ranges, then the sensitive FFN-output
        MatMuls left in float, and last 16-bit activations."""
        matmul = QdqConfig(activation_type=options.activation_type, weight_type=self.weight_type(options),
                           per_channel=True, ops=("MatMul", "Gemm"))
        steps = [
            matmul.model_copy(update={"per_channel": False, "ops": None}),
            matmul,
            matmul.model_copy(update={"calibration": "percentile", "samples_x": 4}),
            matmul.model_copy(update={"calibration": "percentile", "samples_x": 4, "exclude_ffn_out": True}),
        ]
        if options.activation_type != "uint16":
            steps.append(matmul.model_copy(update={"activation_type": "uint16"}))
        return steps

    @abstractmethod
    def quantize(self, fixed: Path, target: Path, reader: TextCalibrationReader, config: QdqConfig,
                 excluded: list[str] | None) -> None:
        """Write the QDQ graph of `fixed` to `target` as this NPU's execution provider wants it."""

    def build(self, inputs: BuildInputs, options: QdqOptions, config: QdqConfig, out_dir: Path) -> dict[str, Path]:
        seq = options.sequence_length or inputs.spec.max_length
        fixed = fix_shape(inputs.fp32_onnx, out_dir / "fixed.onnx", 1, seq)
        reader = TextCalibrationReader(inputs, fixed, options.calibration_samples * config.samples_x, seq)
        target = out_dir / "model.onnx"
        self.quantize(fixed, target, reader, config, ffn_output_matmuls(fixed) if config.exclude_ffn_out else None)
        fixed.unlink()
        return {"onnx/model.onnx": target}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files["onnx/model.onnx"])

    def evaluation_runtime(self, files: dict[str, Path], runtime: OrtRuntime) -> OrtRuntime:
        """On a CPU, thousands of task texts padded one by one to [1, 128] take minutes; the same QDQ graph with
        its axes freed gives nearly the same outputs (padding leaks slightly through 16-bit attention ranges);
        the pipeline checks the agreement on the fidelity texts and states it on the card."""
        return OrtRuntime(files["onnx/model.onnx"], free_axes=True)
