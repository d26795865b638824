"""`int8` — dynamic int8 ONNX for CPUs, at the file name sentence-transformers and transformers.js look for."""

from __future__ import annotations

from pathlib import Path

from ..runtimes import OrtRuntime
from .base import BuildInputs, Target, TargetOptions
from .qdq import ffn_output_matmuls


class OnnxDynamicInt8Target(Target):
    name = "int8"
    repo_suffix = "onnx"
    runtime_name = "onnxruntime"
    precision = "int8"
    hardware = "x86-64 / ARM CPUs (VNNI, AMX, dot-product instructions)"
    description = ("fused transformer graph (attention, LayerNorm, tanh-approximated GELU) with per-channel int8 "
                   "MatMul weights, activations quantized at run time")

    def candidates(self, options: TargetOptions) -> list[dict]:
        """Per-tensor weights run no faster than per-channel on VNNI CPUs and lose accuracy once attention's Q, K and
        V weights are packed into one tensor, so only per-channel is tried (benchmarks/RESULTS.md). FastGelu, the
        tanh approximation, is a vectorised kernel where exact GELU is not; its error sits far below int8's."""
        return [{"per_channel": True}, {"per_channel": True, "skip_ffn_out": True}]

    def build(self, inputs: BuildInputs, options: TargetOptions, config: dict, out_dir: Path) -> dict[str, Path]:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        fusions = FusionOptions("bert")
        fusions.enable_gelu_approximation = True
        fused = out_dir / "fused.onnx"
        optimize_model(str(inputs.fp32_onnx), model_type="bert", num_heads=0, hidden_size=0,
                       optimization_options=fusions).save_model_to_file(str(fused))
        excluded = ffn_output_matmuls(fused) if config.get("skip_ffn_out") else []
        target = out_dir / "model_quantized.onnx"
        quantize_dynamic(fused, target, weight_type=QuantType.QInt8, per_channel=config["per_channel"],
                         nodes_to_exclude=excluded, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        fused.unlink()
        return {"onnx/model_quantized.onnx": target}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files["onnx/model_quantized.onnx"])
