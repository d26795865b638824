"""`ov-int4` — OpenVINO IR with 4-bit group-wise weights compressed by NNCF (`nncf.compress_weights`), in the
`openvino` repo beside ov and ov-int8, named as sentence-transformers names its OpenVINO variants
(`openvino/openvino_model_<suffix>.xml`), loadable with `model_kwargs={"file_name": ...}`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .base import BuildInputs, CandidateConfig
from .openvino import OpenVinoOptions, OpenVinoTarget, exported_model, quiet_nncf
from .q4 import WEIGHT_4BIT_GATE


class Int4Config(CandidateConfig):
    mode: Literal["int4_sym", "int4_asym"]  # asymmetric groups store a zero point each and fit skewed rows better
    group_size: int  # weights per scale; larger groups are smaller files
    ratio: float  # share of weights in 4 bits; NNCF keeps the rest (and embeddings, last layer) in int8


class OpenVinoInt4Target(OpenVinoTarget):
    name = "ov-int4"
    order = 75
    precision = "int4-weight"
    description = ("OpenVINO IR with 4-bit group-wise weights (NNCF weight compression; embeddings and the most "
                   "sensitive layers in int8), activations in the device's float precision")
    default_gate = WEIGHT_4BIT_GATE
    file_stem = "openvino/openvino_model_int4"

    def candidates(self, options: OpenVinoOptions, inputs: BuildInputs) -> list[Int4Config]:
        """Smallest first; NNCF's data-free ratio picks which layers stay int8 by their 4-bit quantization error.
        Groups of 64-128 save 0.3-0.5 MB on MiniLM for 0.955-0.966 cosine, so they are not tried."""
        return [Int4Config(mode="int4_sym", group_size=32, ratio=1.0),
                Int4Config(mode="int4_asym", group_size=32, ratio=1.0),
                Int4Config(mode="int4_asym", group_size=32, ratio=0.8)]

    def build(self, inputs: BuildInputs, options: OpenVinoOptions, config: Int4Config,
              *, out_dir: Path) -> dict[str, Path]:
        import nncf
        import openvino as ov

        model = exported_model(inputs, options.static_shape)
        with quiet_nncf():
            compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode(config.mode),
                                               group_size=config.group_size, ratio=config.ratio)
        xml = out_dir / f"{Path(self.file_stem).name}.xml"
        ov.save_model(compressed, str(xml), compress_to_fp16=False)
        return {f"{self.file_stem}.xml": xml, f"{self.file_stem}.bin": xml.with_suffix(".bin")}
