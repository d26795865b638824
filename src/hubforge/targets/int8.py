"""`int8` — dynamic int8 ONNX for CPUs, at the file name sentence-transformers and transformers.js look for."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Literal

from ..process_memory import release_memory
from ..runtimes import OrtRuntime
from ..attention_mask import fill_fused_attention
from .base import BuildInputs, CandidateConfig, SearchOptions, Target, TargetOptions
from .qdq import calibration_feeds, graph_input_names
from .sensitivity import SENSITIVITY_TEXTS, Ranking, dynamic_rounding, rank_nodes


class Int8Config(CandidateConfig):
    fusion: Literal["bert", "none"]  # ONNX Runtime's transformer-optimizer fusion type, or the unfused export
    per_channel: bool = True
    keep: tuple[str, ...] = ()  # nodes left in float by the accuracy-aware search


# ONNX Runtime's optimizer fuses per model family: the encoder families of optimum's `ORTConfigManager` map from
# `config.model_type`, all of which ONNX Runtime optimizes as "bert"; any other type runs unfused
ORT_FUSION = {model_type: "bert" for model_type in (
    "albert", "bert", "big_bird", "camembert", "deberta", "deberta-v2", "distilbert", "electra", "modernbert", "mpnet",
    "nystromformer", "roberta", "xlm-roberta")}


def fusion_type(model_type: str) -> str:
    return ORT_FUSION.get(model_type, "none")


def fuse(fp32_onnx: Path, out: Path, fusion: str, *, config: dict) -> None:
    """ONNX Runtime's transformer fusions (attention, LayerNorm, tanh-approximated GELU), run on the graph with its
    weights left on disk: the optimizer's shape inference copies the model it is given several times, which with
    the weights loaded is six copies of them. Its fusions read the few weights they merge (attention's Q, K, V) with
    numpy_helper.to_array, which resolves external data against the working directory. The fused attention's
    padding fill is bounded (attention_mask.py: padded inputs run without denormals). The heads and hidden size come
    from the model's config: the exporter's reshapes compute their shapes at run time, where the optimizer reads
    them from constants."""
    import contextlib

    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    fusions = FusionOptions(fusion)
    fusions.enable_gelu_approximation = True
    graph = onnx.load(str(fp32_onnx), load_external_data=False)
    with contextlib.chdir(fp32_onnx.parent):
        fused = optimize_model(graph, model_type=fusion, num_heads=config.get("num_attention_heads", 0),
                               hidden_size=config.get("hidden_size", 0), opt_level=0, optimization_options=fusions)
    del graph
    fill_fused_attention(fused.model)
    onnx.load_external_data_for_model(fused.model, str(fp32_onnx.parent))
    fused.save_model_to_file(str(out), use_external_data_format=True)  # weights to fused.onnx.data


class OnnxDynamicInt8Target(Target):
    name = "int8"
    order = 30
    options_model = SearchOptions
    repo_suffix = "onnx"
    library_name = "onnx"
    tags = ("onnx", "onnxruntime", "int8")
    runtime_name = "onnxruntime"
    precision = "int8"
    clients = ("onnxruntime", "sentence-transformers (onnx)", "optimum (ORTModel)", "transformers.js", "fastembed")
    hardware = "x86-64 / ARM CPUs (VNNI, AMX, dot-product instructions)"
    description = ("fused transformer graph (attention, LayerNorm, tanh-approximated GELU) with per-channel int8 "
                   "MatMul weights, activations quantized at run time, padding masked without denormals")

    def candidates(self, options: TargetOptions, inputs: BuildInputs) -> list[Int8Config]:
        """Per-tensor weights run no faster than per-channel on VNNI CPUs and lose accuracy once attention's Q, K and
        V weights are packed into one tensor, so only per-channel is tried (benchmarks/RESULTS.md). FastGelu, the
        tanh approximation, is a vectorised kernel where exact GELU is not; its error sits far below int8's.
        Architectures the optimizer has no fusions for (and fusions that fail) fall back to the unfused export.
        A candidate that misses the gate is searched on (`sensitivity`) before the next one is tried."""
        if fusion_type(inputs.source.model_type) == "bert":
            return [Int8Config(fusion="bert"), Int8Config(fusion="none")]
        return [Int8Config(fusion="none")]

    def build(self, inputs: BuildInputs, options: TargetOptions, config: Int8Config,
              *, out_dir: Path) -> dict[str, Path]:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with self._float_graph(inputs, config, out_dir) as graph:
            target = out_dir / "model_quantized.onnx"
            quantize_dynamic(graph, target, weight_type=QuantType.QInt8, per_channel=config.per_channel,
                             nodes_to_exclude=list(config.keep),
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        return {"onnx/model_quantized.onnx": target}

    @staticmethod
    @contextlib.contextmanager
    def _float_graph(inputs: BuildInputs, config: Int8Config, out_dir: Path):
        """The float graph `config` quantizes: ONNX Runtime's fusions of the export (the fused attention takes its
        own fill, see fuse), written to `out_dir` for the block, or the bounded export."""
        if config.fusion == "none":
            yield inputs.bounded_onnx
            return
        graph = out_dir / "fused.onnx"
        fuse(inputs.fp32_onnx, graph, config.fusion, config=inputs.source.config)
        release_memory()
        try:
            yield graph
        finally:
            graph.unlink()
            graph.with_name(graph.name + ".data").unlink()

    def sensitivity(self, options: TargetOptions, inputs: BuildInputs, config: Int8Config,
                    *, files: dict[str, Path]) -> Ranking:
        """Dynamic quantization rounds each activation on a grid spanning that call's range: a few outlier
        channels widen it for all the others. Ranked on the float graph `config` quantizes."""
        round_weight, round_activation = dynamic_rounding(per_channel=config.per_channel)
        with tempfile.TemporaryDirectory() as tmp, self._float_graph(inputs, config, Path(tmp)) as graph:
            feeds = calibration_feeds(inputs, graph_input_names(graph), SENSITIVITY_TEXTS)
            return rank_nodes(graph, feeds, round_weight=round_weight, round_activation=round_activation,
                              num_layers=inputs.source.config.get("num_hidden_layers", 0))

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files["onnx/model_quantized.onnx"])
