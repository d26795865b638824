"""Formats defined by the tests, in a file of their own as a new format would be: importing this module registers
them. Workers (forked from the worker server) import it when they unpickle a format's class, as they would any
format's module."""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path

from hubforge.runtimes import OrtRuntime
from hubforge.targets.base import Target

TEMPLATE = Path(__file__).parent / "formats" / "copy-onnx.md.j2"


class CopyOnnxTarget(Target):
    name = "copy-onnx"
    repo_suffix = "copy"
    library_name = "onnx"
    tags = ("onnx", "test-format")
    runtime_name = "onnxruntime"
    precision = "fp32-copy"
    hardware = "a test-only copy of the fp32 graph"
    description = "registered by tests/throwaway_formats.py"
    usage_template = TEMPLATE

    def build(self, inputs, options, config, out_dir):
        import onnx

        target = out_dir / "model_copy.onnx"
        onnx.save(onnx.load(str(inputs.fp32_onnx)), str(target))
        return {"onnx/model_copy.onnx": target}

    def load(self, files, inputs):
        return OrtRuntime(files["onnx/model_copy.onnx"])


class BrokenTarget(CopyOnnxTarget):
    name = "broken"
    repo_suffix = "broken"
    hardware = "nothing: its build raises"

    def build(self, inputs, options, config, out_dir):
        warnings.warn("simulated converter advice")
        raise RuntimeError("simulated converter crash\nsecond line that results.json leaves out")


class KilledTarget(CopyOnnxTarget):
    """A converter that takes its process down, as a native crash or the out-of-memory killer does."""

    name = "killed"
    repo_suffix = "killed"
    hardware = "nothing: its build kills its own process"

    def build(self, inputs, options, config, out_dir):
        os.kill(os.getpid(), signal.SIGKILL)


class OrphanDataTarget(CopyOnnxTarget):
    """Its weights sit in an external data file its build does not list: it runs where it was built and passes its
    gate, but the repo would lack the weights, which the consumer check catches."""

    name = "orphan-data"
    repo_suffix = "orphan"
    hardware = "nothing: its repo would miss its weights"

    def build(self, inputs, options, config, out_dir):
        import onnx

        target = out_dir / "model_orphan.onnx"
        onnx.save(onnx.load(str(inputs.fp32_onnx)), str(target), save_as_external_data=True,
                  location="model_orphan.onnx_data")
        return {"onnx/model_orphan.onnx": target}

    def load(self, files, inputs):
        return OrtRuntime(files["onnx/model_orphan.onnx"])


NAMES = ("copy-onnx", "broken", "killed", "orphan-data")
