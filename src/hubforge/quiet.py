"""Converters log advice meant for their own developers; the CLI reports what matters itself."""

from __future__ import annotations

import logging
import os
import warnings

LIBRARIES = ("transformers", "optimum", "nncf", "onnxruntime", "torch")


def quiet_libraries(*, to_log: bool = False) -> None:
    """Off the console, what libraries say below ERROR. A worker of a run with a log (`to_log`) keeps their
    warnings and log lines, which go to that log whole: only progress bars are turned off there."""
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if to_log:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)


def is_quiet() -> bool:
    return logging.getLogger().level >= logging.ERROR
