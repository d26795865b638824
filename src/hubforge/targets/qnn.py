"""`qnn` — QDQ static quantization for Qualcomm NPUs (QNN execution provider), fixed [1, max_len] shape."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .qdq import QdqConfig, QdqOptions, QdqTarget, TextCalibrationReader, calibration_method, quant_type


class QnnOptions(QdqOptions):
    weight_type: Literal["uint8", "int8"] = "int8"  # per-channel weights on HTP are signed and symmetric


def weight_overrides(model_path: Path, config: QdqConfig) -> dict[str, list[dict]]:
    """TensorQuantOverrides for the MatMul and Gemm weights: one symmetric scale per output channel when
    `config.per_channel` (`get_qnn_qdq_config` quantizes MatMul weights per tensor even with `per_channel=True`,
    assuming QNN has no per-channel MatMul, but QNN EP lowers a MatMul with a constant 2-D weight to
    FullyConnected, which takes per-axis weights as Gemm does), and 16-bit weights for the nodes the search keeps
    (HTP runs W16A16 layers beside W8A16 ones)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {i.name: len(i.dims) for i in graph.initializer}
    kept, overrides = set(config.keep), {}
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm") or weights.get(node.input[1]) != 2:
            continue
        if not config.per_channel and node.name not in kept:
            continue
        override = {"quant_type": quant_type("int16" if node.name in kept else config.weight_type), "symmetric": True}
        if config.per_channel:
            override["axis"] = 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
        overrides[node.input[1]] = [override]
    return overrides


class QnnQdqTarget(QdqTarget):
    name = "qnn"
    order = 40
    repo_suffix = "qnn"
    tags = ("qualcomm", "qnn", "npu")
    hardware = "Qualcomm Hexagon NPU (ONNX Runtime QNN execution provider)"
    description = "QDQ-quantized ONNX with a fixed input shape, as the QNN HTP backend needs"
    options_model = QnnOptions
    kept_as = "16-bit weights"

    def weight_type(self, options: QnnOptions) -> str:
        return options.weight_type

    def quantize(self, fixed: Path, target: Path, reader: TextCalibrationReader, *, config: QdqConfig) -> None:
        from onnxruntime.quantization import quantize
        from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

        qnn_config = get_qnn_qdq_config(
            fixed, reader, calibrate_method=calibration_method(config.calibration),
            activation_type=quant_type(config.activation_type), weight_type=quant_type(config.weight_type),
            per_channel=config.per_channel, op_types_to_quantize=list(config.ops) if config.ops else None,
            init_overrides=weight_overrides(fixed, config) or None,
        )
        qnn_config.extra_options.update(reader.OPTIONS)
        qnn_config.use_external_data_format = True
        quantize(fixed, target, qnn_config)
