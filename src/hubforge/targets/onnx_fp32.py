"""`onnx` — the fp32 ONNX export itself, its attention mask bounded (attention_mask.py), laid out as the Hub's ONNX
repos are (onnx/model.onnx)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..export import EXTERNAL_DATA
from ..runtimes import OrtRuntime
from .base import BuildInputs, CandidateConfig, Target, TargetOptions


EXTERNAL_DATA_BYTES = 1 << 30


class OnnxFp32Target(Target):
    name = "onnx"
    order = 10
    repo_suffix = "onnx"
    library_name = "onnx"
    tags = ("onnx", "onnxruntime")
    runtime_name = "onnxruntime"
    precision = "fp32"
    clients = ("onnxruntime", "sentence-transformers (onnx)", "optimum (ORTModel)", "transformers.js", "fastembed")
    hardware = "any CPU or GPU with ONNX Runtime"
    description = ("fp32 ONNX export, padding masked without denormals, loadable by sentence-transformers "
                   "(backend='onnx'), optimum and transformers.js")

    def build(self, inputs: BuildInputs, options: TargetOptions, config: CandidateConfig,
              *, out_dir: Path) -> dict[str, Path]:
        """One file, as transformers.js and most consumers expect; from 1 GiB of weights on, the graph and its
        `model.onnx_data` side by side (ONNX Runtime, optimum and sentence-transformers load both layouts)."""
        import onnx

        graph, target, data = inputs.bounded_onnx, out_dir / "model.onnx", inputs.fp32_onnx.with_name(EXTERNAL_DATA)
        if data.stat().st_size < EXTERNAL_DATA_BYTES:
            onnx.save(onnx.load(str(graph)), str(target))
            return {"onnx/model.onnx": target}
        shutil.copyfile(graph, target)
        shutil.copyfile(data, out_dir / EXTERNAL_DATA)
        return {"onnx/model.onnx": target, f"onnx/{EXTERNAL_DATA}": out_dir / EXTERNAL_DATA}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files["onnx/model.onnx"])
