"""`ov` and `ov-int8` — OpenVINO IR for Intel CPUs, GPUs and NPUs, at the paths optimum-intel and
sentence-transformers (backend="openvino") load."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..runtimes import OpenVinoRuntime
from .base import BuildInputs, CandidateConfig, SearchOptions, Target, TargetOptions
from .qdq import calibration_feeds
from .sensitivity import SENSITIVITY_TEXTS, Ranking, WeightedNode, rank, static_rounding


class OpenVinoOptions(TargetOptions):
    static_shape: bool = Field(False, description="pin [1, max_length] for Intel NPUs, which need static shapes")


class OpenVinoInt8Options(OpenVinoOptions, SearchOptions):
    calibration_samples: int = Field(300, ge=4, le=2000)


def attention_at_inference_precision():
    """The attention products (activations times activations) stay at the device's inference precision. On CPUs
    with AMX, OpenVINO runs the graph's float ops in bf16, and int8 attention between them failed the fidelity gate
    of tests/test_architectures.py's tiny random BERT (0.3.1's test expected that failure); MiniLM keeps its cosine
    and runs faster (`python benchmarks/bench_minilm.py`: 0.9980 and 3.04 ms at [1, 128], against 0.9979 and 3.34 ms
    at 0.3.1, whose OpenVINO calls also copied their inputs and outputs). Models exported without the
    ScaledDotProductAttention op keep their attention quantized (validate=False)."""
    import nncf

    return nncf.IgnoredScope(types=["ScaledDotProductAttention"], validate=False)


class NncfConfig(CandidateConfig):
    preset: Literal["performance", "mixed"]
    smooth_quant_alpha: float
    keep: tuple[str, ...] = ()  # MatMuls the accuracy-aware search leaves in float (NNCF's ignored scope)


def weighted_matmuls(model) -> list[WeightedNode]:
    """An OpenVINO model's MatMuls with a constant 2-D weight, in graph order, each weight laid out [in, out]."""
    import numpy as np

    nodes = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        source = op.input_value(1).get_node()
        while source.get_type_name() == "Convert":
            source = source.input_value(0).get_node()
        if source.get_type_name() != "Constant":
            continue
        weight = source.get_data().astype(np.float32)
        if weight.ndim != 2:
            continue
        if op.get_attributes().get("transpose_b"):
            weight = weight.T
        nodes.append(WeightedNode(op.get_friendly_name(), op.get_friendly_name(), weight))
    return nodes


def matmul_inputs(model, names: set[str], feeds: list[dict]) -> dict[str, list]:
    """{MatMul name: its float input per feed}: the model with those inputs added as outputs (one per distinct
    tensor: Q, K and V read the same one), compiled once at f32."""
    import openvino as ov

    def port(value) -> tuple[str, int]:
        return value.get_node().get_friendly_name(), value.get_index()

    probe = model.clone()
    matmuls = [op for op in probe.get_ordered_ops() if op.get_friendly_name() in names]
    probe.add_outputs([op.input_value(0) for op in matmuls])
    index = {port(result.get_node().input_value(0)): i for i, result in enumerate(probe.outputs)}
    compiled = ov.Core().compile_model(probe, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    collected = {op.get_friendly_name(): [] for op in matmuls}
    for feed in feeds:
        results = compiled(feed)
        for op in matmuls:
            collected[op.get_friendly_name()].append(results[index[port(op.input_value(0))]])
    return collected


@contextlib.contextmanager
def quiet_nncf():
    """NNCF draws rich progress bars on stdout and logs at INFO; hubforge reports progress on its own status line."""
    import logging

    import nncf

    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def exported_model(inputs: BuildInputs, static_shape: bool):
    """optimum-intel's export from PyTorch rather than the shared ONNX: OpenVINO fuses attention from this graph
    and runs it faster (compare the ov rows of benchmarks/RESULTS.md across versions). Exported once per run,
    beside the fp32 ONNX export, and read back by every OpenVINO format and candidate; a lock keeps formats built
    side by side from exporting it twice."""
    import fcntl

    import openvino as ov

    xml = inputs.fp32_onnx.parent / "openvino" / "openvino_model.xml"
    xml.parent.mkdir(parents=True, exist_ok=True)
    with open(xml.parent / "export.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not xml.exists():
            _export_openvino(inputs, xml)
    model = ov.Core().read_model(str(xml))
    if static_shape:
        model.reshape({p.get_any_name(): [1, inputs.spec.max_length] for p in model.inputs})
    return model


def _export_openvino(inputs: BuildInputs, xml: Path) -> None:
    import openvino as ov

    partial = xml.with_name("partial.xml")
    model = _optimum_export(inputs) if _optimum_knows(inputs.source.model_type) \
        else _onnx_export(inputs)
    ov.save_model(model, str(partial), compress_to_fp16=False)
    partial.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    partial.replace(xml)


def _optimum_knows(model_type: str) -> bool:
    import optimum.exporters.openvino.model_configs  # noqa: F401  (registers optimum-intel's export configurations)
    from optimum.exporters.tasks import TasksManager

    try:
        TasksManager.get_supported_tasks_for_model_type(model_type, exporter="openvino", library_name="transformers")
    except KeyError:
        return False
    return True


def _optimum_export(inputs: BuildInputs):
    from optimum.intel import OVModelForFeatureExtraction, OVModelForSequenceClassification

    cls = OVModelForSequenceClassification if inputs.spec.task == "cross-encoder" else OVModelForFeatureExtraction
    with contextlib.redirect_stdout(io.StringIO()):
        exported = cls.from_pretrained(inputs.source.path, export=True, compile=False, local_files_only=True,
                                       trust_remote_code=inputs.spec.trust_remote_code)
    # optimum-intel exports into a TemporaryDirectory that only a finalizer removes, which a worker process (it ends
    # with os._exit) never runs: a model's weights would be left in /tmp at every publish
    shutil.rmtree(exported.model_save_dir, ignore_errors=True)
    return exported.model


def _onnx_export(inputs: BuildInputs):
    """For an architecture optimum-intel has no export configuration for (ModernBERT in optimum-intel 2.1): OpenVINO
    reads the shared fp32 ONNX export, with its input and output names and dynamic axes."""
    import openvino as ov

    return ov.Core().read_model(str(inputs.fp32_onnx))


class OpenVinoTarget(Target):
    name = "ov"
    order = 60
    repo_suffix = "openvino"
    library_name = "openvino"
    tags = ("intel", "openvino")
    runtime_name = "openvino"
    precision = "fp16"
    hardware = "Intel CPUs, integrated/discrete GPUs and NPUs (OpenVINO)"
    description = "OpenVINO IR with fp16-compressed weights"
    options_model = OpenVinoOptions
    file_stem = "openvino/openvino_model"
    clients = ("sentence-transformers (openvino)", "optimum-intel (OVModel)", "OpenVINO")

    def is_fixed_shape(self, options: OpenVinoOptions) -> bool:
        return options.static_shape

    def build(self, inputs: BuildInputs, options: OpenVinoOptions, config: CandidateConfig,
              *, out_dir: Path) -> dict[str, Path]:
        import openvino as ov

        xml = out_dir / "openvino_model.xml"
        ov.save_model(exported_model(inputs, options.static_shape), str(xml), compress_to_fp16=True)
        return {f"{self.file_stem}.xml": xml, f"{self.file_stem}.bin": xml.with_suffix(".bin")}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OpenVinoRuntime:
        return OpenVinoRuntime(files[f"{self.file_stem}.xml"])


class OpenVinoInt8Target(OpenVinoTarget):
    name = "ov-int8"
    order = 70
    workload = 3
    precision = "int8"
    description = ("OpenVINO IR with int8 weights and activations, quantized by NNCF (model_type=TRANSFORMER, "
                   "SmoothQuant; the attention products at the device's inference precision)")
    options_model = OpenVinoInt8Options
    file_stem = "openvino/openvino_model_qint8_quantized"

    def candidates(self, options: OpenVinoInt8Options, inputs: BuildInputs) -> list[NncfConfig]:
        """Symmetric activations (performance preset) are fastest on CPUs; asymmetric ones (mixed preset) trade speed
        for accuracy. SmoothQuant only moves scale between activations and weights, so it costs no run time and
        is always on: without it MiniLM's FFN outliers cost 0.013 cosine; alpha 0.98 kept 0.0001-0.0003 more
        cosine than 0.85-0.95 on MiniLM at the same speed. A miss is searched on (`sensitivity`) rather than
        through NNCF's `quantize_with_accuracy_control`, which ranks layer groups by how much reverting each one
        alone restores and so cannot see two independent breakers, as the outlier test model
        (tests/outlier_minilm.py) has."""
        first = NncfConfig(preset="performance", smooth_quant_alpha=0.98)
        return [first, first.model_copy(update={"preset": "mixed"})]

    def sensitivity(self, options: OpenVinoInt8Options, inputs: BuildInputs, config: NncfConfig,
                    *, files: dict[str, Path]) -> Ranking:
        """The float OpenVINO model's MatMuls ranked by the noise static 8-bit rounding adds at each."""
        model = exported_model(inputs, options.static_shape)
        nodes = weighted_matmuls(model)
        pad_to = inputs.spec.max_length if options.static_shape else None
        feeds = calibration_feeds(inputs, [p.get_any_name() for p in model.inputs], SENSITIVITY_TEXTS, pad_to=pad_to)
        activations = matmul_inputs(model, {n.name for n in nodes}, feeds)
        round_weight, round_activation = static_rounding(activations, nodes)
        return rank(nodes, activations, round_weight=round_weight, round_activation=round_activation,
                    num_layers=inputs.source.config.get("num_hidden_layers", 0))

    def build(self, inputs: BuildInputs, options: OpenVinoInt8Options, config: NncfConfig,
              *, out_dir: Path) -> dict[str, Path]:
        import nncf
        import openvino as ov

        model = exported_model(inputs, options.static_shape)
        names = [p.get_any_name() for p in model.inputs]
        pad_to = inputs.spec.max_length if options.static_shape else None
        items = calibration_feeds(inputs, names, options.calibration_samples, pad_to=pad_to)
        preset = nncf.QuantizationPreset.MIXED if config.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE
        advanced = nncf.AdvancedQuantizationParameters(
            smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=config.smooth_quant_alpha)
        )
        ignored = attention_at_inference_precision()
        if config.keep:
            ignored = nncf.IgnoredScope(names=list(config.keep), types=ignored.types, validate=False)
        with quiet_nncf():
            quantized = nncf.quantize(model, nncf.Dataset(items), preset=preset,
                                      model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items),
                                      ignored_scope=ignored, advanced_parameters=advanced)
        xml = out_dir / "openvino_model_qint8_quantized.xml"
        ov.save_model(quantized, str(xml), compress_to_fp16=False)
        return {f"{self.file_stem}.xml": xml, f"{self.file_stem}.bin": xml.with_suffix(".bin")}
