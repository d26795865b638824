"""`qnn` — QDQ static quantization for Qualcomm NPUs (QNN execution provider), fixed [1, max_len] shape."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .qdq import QdqConfig, QdqOptions, QdqTarget, TextCalibrationReader, calibration_method, quant_type


class QnnOptions(QdqOptions):
    weight_type: Literal["uint8", "int8"] = "uint8"


class QnnQdqTarget(QdqTarget):
    name = "qnn"
    order = 40
    repo_suffix = "qnn"
    tags = ("qualcomm", "qnn", "npu")
    hardware = "Qualcomm Hexagon NPU (ONNX Runtime QNN execution provider)"
    description = "QDQ-quantized ONNX with a fixed input shape, as the QNN HTP backend needs"
    options_model = QnnOptions

    def weight_type(self, options: QnnOptions) -> str:
        return options.weight_type

    def quantize(self, fixed: Path, target: Path, reader: TextCalibrationReader, config: QdqConfig,
                 excluded: list[str] | None) -> None:
        from onnxruntime.quantization import quantize
        from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

        qnn_config = get_qnn_qdq_config(
            fixed, reader, calibrate_method=calibration_method(config.calibration),
            activation_type=quant_type(config.activation_type), weight_type=quant_type(config.weight_type),
            per_channel=config.per_channel, op_types_to_quantize=list(config.ops) if config.ops else None,
            nodes_to_exclude=excluded,
        )
        qnn_config.extra_options.update(reader.OPTIONS)
        qnn_config.use_external_data_format = True
        quantize(fixed, target, qnn_config)
