"""`amd` — QDQ for AMD Ryzen AI NPUs (VitisAI execution provider): int8 symmetric weights, 16-bit activations."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from ..runtimes import OrtRuntime
from .base import BuildInputs, Target, TargetOptions
from .qdq import QUANT_TYPES, TextCalibrationReader, fix_shape


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
    options_model = AmdOptions

    def candidates(self, options: AmdOptions) -> list[dict]:
        steps = [
            {"activation_type": options.activation_type, "per_channel": False, "ops": "all"},
            {"activation_type": options.activation_type, "per_channel": True, "ops": "MatMul,Gemm"},
        ]
        if options.activation_type != "uint16":
            steps.append({"activation_type": "uint16", "per_channel": True, "ops": "MatMul,Gemm"})
        return steps

    def build(self, inputs: BuildInputs, options: AmdOptions, config: dict, out_dir: Path) -> dict[str, Path]:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

        seq = options.sequence_length or inputs.spec.max_length
        fixed = fix_shape(inputs.fp32_onnx, out_dir / "fixed.onnx", 1, seq)
        reader = TextCalibrationReader(inputs, fixed, options.calibration_samples, seq)
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
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                           "UseQDQContribOps": config["activation_type"] == "uint16"},
        )
        fixed.unlink()
        return {"onnx/model.onnx": target}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files["onnx/model.onnx"])
