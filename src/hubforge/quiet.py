"""Converters log advice meant for their own developers; the CLI reports what matters itself."""

from __future__ import annotations

import logging
import os
import warnings

LIBRARIES = ("transformers", "optimum", "nncf", "onnxruntime", "torch")


def quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)


def is_quiet() -> bool:
    return logging.getLogger().level >= logging.ERROR
