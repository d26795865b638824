"""`amd` — QDQ for AMD Ryzen AI NPUs (VitisAI execution provider): int8 symmetric weights, 16-bit activations."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ..runtimes import OrtRuntime
from .base import BuildInputs, Target, TargetOptions
from .qdq import (CALIBRATION_METHODS, QUANT_TYPES, TextCalibrationReader, ffn_output_matmuls, fix_shape,
                  qdq_candidates)


class AmdOptions(TargetOptions):
    activation_type: Literal["uint8", "uint16"] = "uint16"
    calibration_samples: int = Field(64, ge=4, le=1000)
    sequence_length: int | None = Field(None, ge=8)


class AmdQdqTarget(Target):
    name = "amd"
    repo_suffix = "amd"
    runtime_name = "onnxruntime"
    precision = "qdq"
    hardware = "AMD Ryzen AI NPU (ONNX Runtime VitisAI execution provider)"
    description = "QDQ ONNX with symmetric int8 weights and a fixed input shape, the layout VitisAI compiles"
    cpu_target = False
    options_model = AmdOptions

    def candidates(self, options: AmdOptions) -> list[dict]:
        return qdq_candidates(options.activation_type, {})

    def build(self, inputs: BuildInputs, options: AmdOptions, config: dict, out_dir: Path) -> dict[str, Path]:
        from onnxruntime.quantization import QuantFormat, quantize_static

        seq = options.sequence_length or inputs.spec.max_length
        fixed = fix_shape(inputs.fp32_onnx, out_dir / "fixed.onnx", 1, seq)
        reader = TextCalibrationReader(inputs, fixed, options.calibration_samples * config["samples_x"], seq)
        target = out_dir / "model.onnx"
        quantize_static(
            fixed,
            target,
            reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=None if config["ops"] == "all" else config["ops"].split(","),
            per_channel=config["per_channel"],
            activation_type=QUANT_TYPES[config["activation_type"]],
            weight_type=QUANT_TYPES["int8"],
            calibrate_method=CALIBRATION_METHODS[config["calibration"]],
            nodes_to_exclude=ffn_output_matmuls(fixed) if config["exclude_ffn_out"] else None,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                           "UseQDQContribOps": config["activation_type"] == "uint16"},
        )
        fixed.unlink()
        return {"onnx/model.onnx": target}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files["onnx/model.onnx"])
