"""`onnx` — the fp32 ONNX export itself, laid out as the Hub's ONNX repos are (onnx/model.onnx)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..runtimes import OrtRuntime
from .base import BuildInputs, CandidateConfig, Target, TargetOptions


class OnnxFp32Target(Target):
    name = "onnx"
    order = 10
    repo_suffix = "onnx"
    library_name = "onnx"
    tags = ("onnx", "onnxruntime")
    runtime_name = "onnxruntime"
    precision = "fp32"
    hardware = "any CPU or GPU with ONNX Runtime"
    description = "fp32 ONNX export, loadable by sentence-transformers (backend='onnx'), optimum and transformers.js"

    def build(self, inputs: BuildInputs, options: TargetOptions, config: CandidateConfig,
              out_dir: Path) -> dict[str, Path]:
        target = out_dir / "model.onnx"
        shutil.copyfile(inputs.fp32_onnx, target)
        return {"onnx/model.onnx": target}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files["onnx/model.onnx"])
