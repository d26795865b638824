"""The one fp32 ONNX export every target starts from (optimum's exporter, Hub-conventional outputs)."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

from .errors import ConversionError
from .evaluation.memory import release_memory
from .source import SourceModel
from .spec import ModelSpec
from .targets.attention_mask import write_bounded_export

OPSET = 17
EXTERNAL_DATA = "model.onnx_data"  # optimum's and ONNX Runtime's name for model.onnx's weights file


def optimum_task(spec: ModelSpec) -> str:
    return "text-classification" if spec.task == "cross-encoder" else "feature-extraction"


def export_fp32_onnx(spec: ModelSpec, source: SourceModel, out_dir: Path) -> Path:
    """Export with dynamic batch/sequence axes; outputs last_hidden_state (or logits for cross-encoders).

    The weights go to `model.onnx_data` beside the graph (ONNX's external data), so the steps that only read or
    rewrite the graph (shape fixing, node finders, ONNX Runtime's fusions) load kilobytes instead of the model.
    Beside it, the same graph with its attention mask bounded (`model_bounded.onnx`, attention_mask.py)."""
    target = out_dir / "model.onnx"
    if not target.exists():
        _export(spec, source, out_dir, target)
    write_bounded_export(target)
    return target


def _export(spec: ModelSpec, source: SourceModel, out_dir: Path, target: Path) -> None:
    import onnx
    from optimum.exporters.onnx import main_export

    tmp = out_dir / "export-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main_export(str(source.path), tmp, task=optimum_task(spec), opset=OPSET, library_name="transformers",
                        do_validation=False, local_files_only=True)
    except Exception as exc:
        raise ConversionError(f"ONNX export of {source.repo_id} failed: {exc}",
                              "check that the model's architecture is supported by optimum's ONNX exporter") from exc
    release_memory()  # the PyTorch model and the exporter's copies, before the graph is read back
    onnx.save(onnx.load(str(tmp / "model.onnx")), str(tmp / "external.onnx"), save_as_external_data=True,
              location=EXTERNAL_DATA)
    out_dir.mkdir(parents=True, exist_ok=True)
    (tmp / EXTERNAL_DATA).replace(out_dir / EXTERNAL_DATA)
    (tmp / "external.onnx").replace(target)
    shutil.rmtree(tmp, ignore_errors=True)
