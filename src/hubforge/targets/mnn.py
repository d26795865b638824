"""`mnn` — MNN models for mobile and edge CPUs, converted by the MNN wheel's native converter from the export with
its attention mask bounded (attention_mask.py: padded inputs run without denormals, 3x faster on x86).

The `mnnconvert` console script reports usage to a remote service; `_tools.mnnconvert` is the same converter
without it, and it is the only one called here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..errors import ConversionError
from ..runtimes import MnnRuntime, quiet_native_stdout
from .base import BuildInputs, CandidateConfig, Target, TargetOptions


class MnnConfig(CandidateConfig):
    weights: Literal["int4", "int8", "fp16"]
    block: int | None = None  # int4: weights per scale (MNN's --weightQuantBlock)


def convert(onnx_path: Path, target: Path, config: MnnConfig) -> Path:
    """MNN's native converter (not the telemetry-sending console script) with the configuration's weights."""
    args = ["mnnconvert", "-f", "ONNX", "--modelFile", str(onnx_path), "--MNNModel", str(target), "--bizCode",
            "hubforge"]
    if config.weights == "fp16":
        args += ["--fp16"]
    else:
        args += ["--weightQuantBits", config.weights[3:]]
        args += ["--weightQuantBlock", str(config.block)] if config.block else []
    with quiet_native_stdout():
        import _tools

        _tools.mnnconvert(args)
    if not target.exists():
        raise ConversionError("MNN conversion produced no model", "run with a supported ONNX opset (17)")
    return target


class MnnTarget(Target):
    name = "mnn"
    order = 80
    repo_suffix = "mnn"
    library_name = "mnn"
    tags = ("mnn", "mobile", "edge")
    runtime_name = "mnn"
    clients = ("MNN",)
    precision = "int4-weight / int8-weight / fp16"
    hardware = "ARM and x86 CPUs of phones and edge devices (MNN)"
    description = ("MNN model; block-wise int4 or int8 weights (dequantized at load) or fp16 weights, the smallest "
                   "that passes the gate; padding masked without denormals")

    def candidates(self, options: TargetOptions, inputs: BuildInputs) -> list[MnnConfig]:
        """Smallest first. 4-bit blocks rarely pass the int8-class gate the format keeps by default; a spec that
        accepts weight-only 4-bit sets `formats: {mnn: {gate: ...}}` and gets the int4 file."""
        return [MnnConfig(weights="int4", block=32), MnnConfig(weights="int8"), MnnConfig(weights="fp16")]

    def build(self, inputs: BuildInputs, options: TargetOptions, config: MnnConfig,
              *, out_dir: Path) -> dict[str, Path]:
        return {"mnn/model.mnn": convert(inputs.bounded_onnx, out_dir / "model.mnn", config)}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> MnnRuntime:
        return MnnRuntime(files["mnn/model.mnn"])
