"""The registry of target formats: one file per format, so a new format is one new file plus a line here."""

from __future__ import annotations

from ..errors import FormatError
from .amd import AmdQdqTarget
from .base import Target
from .fp16 import OnnxFp16Target
from .int8 import OnnxDynamicInt8Target
from .mnn import MnnTarget
from .onnx_fp32 import OnnxFp32Target
from .openvino import OpenVinoInt8Target, OpenVinoTarget
from .qnn import QnnQdqTarget

TARGETS: dict[str, type[Target]] = {
    t.name: t
    for t in (OnnxFp32Target, OnnxFp16Target, OnnxDynamicInt8Target, QnnQdqTarget, AmdQdqTarget,
              OpenVinoTarget, OpenVinoInt8Target, MnnTarget)
}


def parse_formats(text: str) -> list[str]:
    """'qnn,amd,ov' -> validated names; an unknown name is an error listing the valid ones."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise FormatError("no format given", f"valid formats: {', '.join(TARGETS)}")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise FormatError(f"unknown format(s): {', '.join(unknown)}", f"valid formats: {', '.join(TARGETS)}")
    return list(dict.fromkeys(names))
