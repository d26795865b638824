"""Clients that cannot share hubforge's environment run in one of their own, as a subprocess.

sentence-transformers' backend="onnx" (and its ONNX export helpers) and optimum's ORTModel need optimum-onnx, which
requires transformers<4.58; hubforge runs on transformers 5. `st5_onnx.txt` lists that environment's packages
(`make install` builds it as .venv-st5-onnx); HUBFORGE_ST5_ONNX_PYTHON names its interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from hubforge.errors import HubforgeError

ST5_ONNX_PYTHON = "HUBFORGE_ST5_ONNX_PYTHON"
ST5_ONNX_REQUIREMENTS = Path(__file__).with_name("st5_onnx.txt")


class ClientUnavailable(HubforgeError):
    """A client's own environment is not installed."""


def st5_onnx_python() -> Path:
    python = Path(os.environ.get(ST5_ONNX_PYTHON, ".venv-st5-onnx/bin/python"))
    if not python.exists():
        raise ClientUnavailable(f"the sentence-transformers 5 / optimum-onnx client environment is missing ({python})",
                                f"run `make install`, or make a venv from {ST5_ONNX_REQUIREMENTS} and set "
                                f"{ST5_ONNX_PYTHON} to its python")
    return python


def run_st5_onnx_batch(requests: list[dict]) -> list[np.ndarray | str | None]:
    """Requests to `st5_onnx.py` (see its docstring) in one process; per request its array, its error as
    "Type: first line", or None (a request that writes files)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([str(st5_onnx_python()), str(Path(__file__).with_name("st5_onnx.py"))],
                              input=json.dumps({"out_dir": tmp, "requests": requests}), text=True,
                              capture_output=True)
        if done.returncode:
            last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
            raise HubforgeError(f"the sentence-transformers 5 / optimum-onnx client process failed: {last}",
                                "run its request with st5_onnx.py to see the client's full output")
        out = []
        for i in range(len(requests)):
            array, error = Path(tmp) / f"{i}.npy", Path(tmp) / f"{i}.error"
            out.append(np.load(array) if array.exists() else error.read_text() if error.exists() else None)
        return out


def run_st5_onnx(request: dict) -> np.ndarray | None:
    """One request to `st5_onnx.py`; its array, if it returns one. A failed request raises."""
    (out,) = run_st5_onnx_batch([request])
    if isinstance(out, str):
        raise HubforgeError(f"{request['client']} failed on {request['path']}: {out}",
                            "the client's full output: rerun its request with st5_onnx.py")
    return out


NODE_CLIENTS = "HUBFORGE_NODE_CLIENTS"
NODE_PACKAGES = Path(__file__).with_name("js")  # package.json and its lock: transformers.js, pinned


def node_modules() -> Path:
    """The folder whose node_modules holds transformers.js (`make install`: .node-clients)."""
    folder = Path(os.environ.get(NODE_CLIENTS, ".node-clients")).resolve()
    if not (folder / "node_modules" / "@huggingface" / "transformers").is_dir() or not shutil.which("node"):
        raise ClientUnavailable(f"transformers.js is not installed under {folder} (or node is missing)",
                                f"run `make install`, or `npm ci --prefix DIR` with {NODE_PACKAGES}/package*.json "
                                f"copied to DIR and set {NODE_CLIENTS}=DIR")
    return folder


def run_transformers_js(requests: list[dict]) -> list[np.ndarray | str]:
    """Requests to `js/embed.mjs` (see its header) in one node process; per request its embeddings or its error."""
    done = subprocess.run(["node", str(NODE_PACKAGES / "embed.mjs")], text=True, capture_output=True,
                          input=json.dumps({"modules": str(node_modules()), "requests": requests}))
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or len(lines) != len(requests):
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        raise HubforgeError(f"the transformers.js client process failed: {last}",
                            "run js/embed.mjs with node on the request to see its full output")
    return [np.asarray(line["embeddings"], dtype=np.float32) if "embeddings" in line else line["error"]
            for line in lines]
