"""What the worker server imports once (see workers.py), so that every worker forked from it starts with the
runtimes and converters loaded. Importing `hubforge` comes first, so telemetry is off before any of them loads.
Last, the imported objects are frozen out of the garbage collector's reach: each worker's collections (every step
calls one to hand freed memory back) then walk only what the step made, not the libraries' objects, and
don't touch, and so copy, the server's pages."""

import gc

from hubforge.runtimes import quiet_native_stdout

with quiet_native_stdout():  # MNN's native library prints its CPU features when it loads
    import MNN.expr  # noqa: F401
    import MNN.nn  # noqa: F401

import mteb  # noqa: E402, F401
import nncf  # noqa: E402, F401
import onnx  # noqa: E402, F401
import onnxruntime.quantization  # noqa: E402, F401
import onnxruntime.transformers.optimizer  # noqa: E402, F401
import openvino  # noqa: E402, F401
import onnxscript  # noqa: E402, F401
import torch.onnx  # noqa: E402, F401
import optimum.intel  # noqa: E402, F401
import sentence_transformers  # noqa: E402, F401
import sklearn.linear_model  # noqa: E402, F401
import torch  # noqa: E402, F401
import transformers  # noqa: E402, F401

import hubforge.pipeline  # noqa: E402, F401
from hubforge.targets import registry  # noqa: E402

registry()
gc.freeze()
