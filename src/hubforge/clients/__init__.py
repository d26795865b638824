"""Clients that cannot share hubforge's environment run in one of their own, as a subprocess.

sentence-transformers' backend="onnx" (and its ONNX export helpers) and optimum's ORTModel need optimum-onnx, which
requires transformers<4.58; hubforge runs on transformers 5. `st5_onnx.txt` lists that environment's packages
(`make install` builds it as .venv-st5-onnx); HUBFORGE_ST5_ONNX_PYTHON names its interpreter.
"""

from __future__ import annotations

import json
import os
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


def run_st5_onnx(request: dict) -> np.ndarray | None:
    """One request to `st5_onnx.py` (see its docstring); returns the array it wrote, if any."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.npy"
        done = subprocess.run([str(st5_onnx_python()), str(Path(__file__).with_name("st5_onnx.py"))],
                              input=json.dumps({"out": str(out), **request}), text=True, capture_output=True)
        if done.returncode:
            raise HubforgeError(f"{request['client']} failed on {request['path']}: "
                                f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}",
                                "the client's full output: rerun its request with st5_onnx.py")
        return np.load(out) if out.exists() else None
