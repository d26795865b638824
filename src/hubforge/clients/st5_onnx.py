"""Runs a published ONNX file in the clients that need optimum-onnx (sentence-transformers 5's backend="onnx",
optimum's ORTModel) and sentence-transformers' ONNX export helpers, inside this folder's own environment.

Reads {"requests": [...], "out_dir": ...} as JSON on stdin; request i writes its array to out_dir/i.npy (or its
files to its own "out_dir"), or its error's "Type: first line" to out_dir/i.error, and the others still run:
    {"client": "sentence-transformers", "path": ..., "file_name": ..., "texts": [...]}
    {"client": "cross-encoder", "path": ..., "file_name": ..., "pairs": [[a, b], ...]}
    {"client": "optimum", "path": ..., "file_name": ..., "texts": [...], "pooling": "mean"|"cls", "normalize": bool}
    {"client": "st-export-helpers", "path": ..., "out_dir": ...}                       (O3 and dynamic int8 files)
"""

import json
import sys
from pathlib import Path

import numpy as np


def sentence_transformers(request: dict) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    kwargs = {"file_name": request["file_name"]} if request.get("file_name") else {}
    model = SentenceTransformer(request["path"], backend="onnx", device="cpu", model_kwargs=kwargs)
    return model.encode(request["texts"])


def cross_encoder(request: dict) -> np.ndarray:
    import torch
    from sentence_transformers import CrossEncoder

    kwargs = {"file_name": request["file_name"]} if request.get("file_name") else {}
    model = CrossEncoder(request["path"], backend="onnx", device="cpu", activation_fn=torch.nn.Identity(),
                         model_kwargs=kwargs)
    return model.predict([tuple(pair) for pair in request["pairs"]])


def optimum(request: dict) -> np.ndarray:
    from optimum.onnxruntime import ORTModelForFeatureExtraction
    from transformers import AutoTokenizer

    subfolder, file_name = request["file_name"].rsplit("/", 1)
    model = ORTModelForFeatureExtraction.from_pretrained(request["path"], subfolder=subfolder, file_name=file_name)
    enc = AutoTokenizer.from_pretrained(request["path"])(request["texts"], padding=True, truncation=True,
                                                           return_tensors="pt")
    hidden = model(**enc).last_hidden_state.numpy()
    if request.get("pooling", "mean") == "cls":
        pooled = hidden[:, 0]
    else:
        mask = enc["attention_mask"].numpy()[..., None]
        pooled = (hidden * mask).sum(1) / mask.sum(1)
    if request.get("normalize"):
        pooled = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled


def st_export_helpers(request: dict) -> None:
    from sentence_transformers import (
        SentenceTransformer,
        export_dynamic_quantized_onnx_model,
        export_optimized_onnx_model,
    )

    model = SentenceTransformer(request["path"], backend="onnx", device="cpu")
    model.save_pretrained(request["out_dir"])
    export_optimized_onnx_model(model, "O3", request["out_dir"])
    export_dynamic_quantized_onnx_model(model, "avx512_vnni", request["out_dir"])


def main() -> None:
    batch = json.load(sys.stdin)
    run = {"sentence-transformers": sentence_transformers, "cross-encoder": cross_encoder, "optimum": optimum,
           "st-export-helpers": st_export_helpers}
    for i, request in enumerate(batch["requests"]):
        try:
            out = run[request["client"]](request)
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            (Path(batch["out_dir"]) / f"{i}.error").write_text(f"{type(exc).__name__}: {lines[0] if lines else ''}")
            continue
        if out is not None:
            np.save(Path(batch["out_dir"]) / f"{i}.npy", np.asarray(out, dtype=np.float32))


if __name__ == "__main__":
    main()
