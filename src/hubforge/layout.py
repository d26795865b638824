"""What a published repo holds besides its card: the model's pipeline files (configs, tokenizer, sentence-transformers
modules) and its variants' files. The consumer check loads exactly this layout, and publish pushes it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

WEIGHT_SUFFIXES = {".safetensors", ".bin", ".h5", ".msgpack", ".onnx", ".ot", ".pt", ".pth", ".gguf"}
SKIPPED = {"README.md", ".gitattributes"}
# transformers.js' `dtype` for each ONNX file name it knows (its conversion script's naming)
TRANSFORMERS_JS_DTYPES = {"model.onnx": "fp32", "model_fp16.onnx": "fp16", "model_quantized.onnx": "q8",
                          "model_q4.onnx": "q4", "model_q4f16.onnx": "q4f16"}
# what makes a folder load as a sentence-transformers model (and pick its ONNX or OpenVINO file by backend)
SENTENCE_TRANSFORMERS_CONFIG = ("modules.json", "config_sentence_transformers.json", "sentence_bert_config.json")


def _module_folders(model_dir: Path) -> set[str]:
    modules = model_dir / "modules.json"
    if not modules.exists():
        return set()
    return {entry["path"] for entry in json.loads(modules.read_text()) if entry.get("path")}


def pipeline_files(model_dir: Path, sentence_transformers: bool = True) -> dict[str, Path]:
    """What a consumer's pipeline reads besides the transformer's weights: configs, the tokenizer and every
    sentence-transformers module folder (1_Pooling/, 2_Dense/ with its weights, ...). Without
    `sentence_transformers`, none of that library's configuration or modules: a fixed-shape NPU graph takes one
    padded sequence a call, which sentence-transformers, transformers.js and optimum cannot feed it."""
    dropped = set() if sentence_transformers else _module_folders(model_dir)
    files = {}
    for path in sorted(model_dir.rglob("*")):
        rel = path.relative_to(model_dir)
        if not path.is_file() or ".cache" in rel.parts or rel.name in SKIPPED or rel.parts[0] in dropped:
            continue
        if len(rel.parts) == 1 and (rel.suffix in WEIGHT_SUFFIXES or
                                    (not sentence_transformers and rel.name in SENTENCE_TRANSFORMERS_CONFIG)):
            continue
        if rel.parts[0] in ("onnx", "openvino"):  # upstream's own exports are not ours to republish
            continue
        files[rel.as_posix()] = path
    return files


def repo_files(model_dir: Path, variants: list) -> dict[str, Path]:
    """Pipeline files plus every variant's files (results.VariantResult), as one repo holds them."""
    fixed_shape = any(v.fixed_shape for v in variants)
    files: dict[str, Path] = dict(pipeline_files(model_dir, sentence_transformers=not fixed_shape))
    for variant in variants:
        files.update(variant.files)
    return files


def stage(files: dict[str, Path], root: Path) -> Path:
    """The repo as a folder, for clients that load a local folder: hard links where the file system allows, else
    copies (not symlinks: ONNX Runtime refuses external data that resolves outside the model's folder)."""
    for rel, path in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(Path(path).resolve(), target)
        except OSError:
            shutil.copyfile(path, target)
    return root
