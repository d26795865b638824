"""Runs a published ONNX file in the clients that need optimum-onnx (sentence-transformers 5's backend="onnx",
optimum's ORTModel) and sentence-transformers' ONNX export helpers, inside this folder's own environment.

Reads one JSON request on stdin, writes its array to request["out"] (.npy) or its files to request["out_dir"]:
    {"client": "sentence-transformers", "path": ..., "file_name": ..., "texts": [...], "out": ...}
    {"client": "cross-encoder", "path": ..., "pairs": [[a, b], ...], "out": ...}
    {"client": "optimum", "path": ..., "file_name": ..., "texts": [...], "out": ...}   (mean-pooled last_hidden_state)
    {"client": "st-export-helpers", "path": ..., "out_dir": ...}                       (O3 and dynamic int8 files)
"""

import json
import sys

import numpy as np


def sentence_transformers(request: dict) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    kwargs = {"file_name": request["file_name"]} if request.get("file_name") else {}
    model = SentenceTransformer(request["path"], backend="onnx", device="cpu", model_kwargs=kwargs)
    return model.encode(request["texts"])


def cross_encoder(request: dict) -> np.ndarray:
    import torch
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(request["path"], backend="onnx", device="cpu", activation_fn=torch.nn.Identity())
    return model.predict([tuple(pair) for pair in request["pairs"]])


def optimum(request: dict) -> np.ndarray:
    from optimum.onnxruntime import ORTModelForFeatureExtraction
    from transformers import AutoTokenizer

    subfolder, file_name = request["file_name"].rsplit("/", 1)
    model = ORTModelForFeatureExtraction.from_pretrained(request["path"], subfolder=subfolder, file_name=file_name)
    enc = AutoTokenizer.from_pretrained(request["path"])(request["texts"], padding=True, truncation=True,
                                                           return_tensors="pt")
    hidden = model(**enc).last_hidden_state.numpy()
    mask = enc["attention_mask"].numpy()[..., None]
    return (hidden * mask).sum(1) / mask.sum(1)


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
    request = json.load(sys.stdin)
    if request["client"] == "st-export-helpers":
        st_export_helpers(request)
        return
    run = {"sentence-transformers": sentence_transformers, "cross-encoder": cross_encoder, "optimum": optimum}
    np.save(request["out"], np.asarray(run[request["client"]](request), dtype=np.float32))


if __name__ == "__main__":
    main()
