"""`amd` — QDQ for AMD Ryzen AI NPUs (VitisAI execution provider): int8 symmetric weights, 16-bit activations."""

from __future__ import annotations

from pathlib import Path

from .qdq import QdqConfig, QdqTarget, TextCalibrationReader, calibration_method, quant_type


class AmdQdqTarget(QdqTarget):
    name = "amd"
    order = 50
    repo_suffix = "amd"
    tags = ("amd", "vitis-ai", "ryzen-ai", "npu")
    hardware = "AMD Ryzen AI NPU (ONNX Runtime VitisAI execution provider)"
    description = "QDQ ONNX with symmetric int8 weights and a fixed input shape, the layout VitisAI compiles"

    def quantize(self, fixed: Path, target: Path, reader: TextCalibrationReader, *, config: QdqConfig) -> None:
        """The nodes the search keeps stay in float (VitisAI runs them on the CPU)."""
        from onnxruntime.quantization import QuantFormat, quantize_static

        quantize_static(
            fixed, target, reader, quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(config.ops) if config.ops else None, per_channel=config.per_channel,
            activation_type=quant_type(config.activation_type), weight_type=quant_type(config.weight_type),
            calibrate_method=calibration_method(config.calibration), nodes_to_exclude=list(config.keep),
            use_external_data_format=True,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False,
                           "UseQDQContribOps": config.activation_type == "uint16", **reader.OPTIONS},
        )
