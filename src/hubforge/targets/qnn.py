"""`qnn` — QDQ static quantization for Qualcomm NPUs (QNN execution provider), fixed [1, max_len] shape."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ..runtimes import OrtRuntime
from .base import BuildInputs, Target, TargetOptions
from .qdq import (CALIBRATION_METHODS, QUANT_TYPES, TextCalibrationReader, ffn_output_matmuls, fix_shape,
                  qdq_candidates)


class QnnOptions(TargetOptions):
    activation_type: Literal["uint8", "uint16"] = "uint16"
    weight_type: Literal["uint8", "int8"] = "uint8"
    calibration_samples: int = Field(64, ge=4, le=1000)
    sequence_length: int | None = Field(None, ge=8, description="fixed sequence length; defaults to max_length")


class QnnQdqTarget(Target):
    name = "qnn"
    repo_suffix = "qnn"
    runtime_name = "onnxruntime"
    precision = "qdq"
    hardware = "Qualcomm Hexagon NPU (ONNX Runtime QNN execution provider)"
    description = "QDQ-quantized ONNX with a fixed input shape, as the QNN HTP backend needs"
    cpu_target = False
    options_model = QnnOptions

    def candidates(self, options: QnnOptions) -> list[dict]:
        return qdq_candidates(options.activation_type, {"weight_type": options.weight_type})

    def build(self, inputs: BuildInputs, options: QnnOptions, config: dict, out_dir: Path) -> dict[str, Path]:
        from onnxruntime.quantization import quantize
        from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

        seq = options.sequence_length or inputs.spec.max_length
        fixed = fix_shape(inputs.fp32_onnx, out_dir / "fixed.onnx", 1, seq)
        reader = TextCalibrationReader(inputs, fixed, options.calibration_samples * config["samples_x"], seq)
        qnn_config = get_qnn_qdq_config(
            fixed,
            reader,
            calibrate_method=CALIBRATION_METHODS[config["calibration"]],
            activation_type=QUANT_TYPES[config["activation_type"]],
            weight_type=QUANT_TYPES[config["weight_type"]],
            per_channel=config["per_channel"],
            op_types_to_quantize=None if config["ops"] == "all" else config["ops"].split(","),
            nodes_to_exclude=ffn_output_matmuls(fixed) if config["exclude_ffn_out"] else None,
        )
        target = out_dir / "model.onnx"
        quantize(fixed, target, qnn_config)
        fixed.unlink()
        return {"onnx/model.onnx": target}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files["onnx/model.onnx"])
