"""`fp16` — half-precision ONNX for TensorRT/DirectML/CUDA GPUs, with fp32 inputs and outputs kept."""

from __future__ import annotations

from pathlib import Path

from ..runtimes import OrtRuntime
from .base import BuildInputs, CandidateConfig, Target, TargetOptions


class OnnxFp16Target(Target):
    name = "fp16"
    order = 20
    repo_suffix = "onnx"
    library_name = "onnx"
    tags = ("onnx", "onnxruntime", "fp16")
    runtime_name = "onnxruntime"
    precision = "fp16"
    clients = ("onnxruntime", "sentence-transformers (onnx)", "optimum (ORTModel)", "transformers.js", "fastembed")
    hardware = "GPUs via ONNX Runtime TensorRT / CUDA / DirectML"
    description = "fp16 weights and activations; inputs and outputs stay fp32 so callers change nothing"
    cpu_target = False

    def build(self, inputs: BuildInputs, options: TargetOptions, config: CandidateConfig,
              *, out_dir: Path) -> dict[str, Path]:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel

        # given the path, the converter infers shapes file to file before it loads the weights (in memory, shape
        # inference would copy the model and its weights four times); the mask bounded as in every ONNX format
        half = convert_float_to_float16(str(inputs.bounded_onnx), keep_io_types=True,
                                        op_block_list=["LayerNormalization"])
        # the converter appends its Cast nodes after their consumers; ONNX Runtime sorts on load, but the ONNX spec
        # asks for topological order and readers that walk nodes in order (onnx2torch, some parsers) need it
        OnnxModel(half).topological_sort()
        target = out_dir / "model_fp16.onnx"
        onnx.save(half, str(target))
        return {"onnx/model_fp16.onnx": target}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files["onnx/model_fp16.onnx"])
