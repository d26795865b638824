"""Shared by the quantizing targets: fixed-shape graphs, calibration feeds over real texts, and `QdqTarget`, the
ordered configuration search for the NPU formats (qnn, amd)."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from ..runtimes import OrtRuntime, feed_for
from ..attention_mask import additive_attention_mask
from .base import BuildInputs, CandidateConfig, SearchOptions, Target
from .sensitivity import SENSITIVITY_TEXTS, Ranking

Int8Or16 = Literal["uint8", "int8", "uint16", "int16"]


def quant_type(name: str):
    from onnxruntime.quantization import QuantType

    return {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8, "uint16": QuantType.QUInt16,
            "int16": QuantType.QInt16}[name]


def calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[name]


def fix_shape(src: Path, dst: Path, batch: int, *, seq: int, opset: int) -> Path:
    """NPUs compile a graph for one shape: pin batch and sequence axes ([1, 128] by default), at least at `opset`.
    The graph is fixed and converted before its weights are read (the checker inside fix_output_shapes finds them
    from the working directory; the version converter, run on the weights, holds about seven copies of them); they
    go to `dst`'s own external data file."""
    import contextlib

    import onnx
    from onnx import version_converter
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    model = onnx.load(str(src), load_external_data=False)
    if next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < opset:
        model = version_converter.convert_version(model, opset)
    make_dim_param_fixed(model.graph, "batch_size", batch)
    make_dim_param_fixed(model.graph, "sequence_length", seq)
    with contextlib.chdir(src.parent):
        fix_output_shapes(model)
    onnx.load_external_data_for_model(model, str(src.parent))
    onnx.save(model, str(dst), save_as_external_data=True, location=external_data_name(dst))
    return dst


def qdq_opset(config: "QdqConfig") -> int:
    """ONNX Runtime's quantizers move a graph to opset 21 for 16-bit QuantizeLinear/DequantizeLinear
    (`update_opset_version`); done here, on the graph without its weights."""
    sixteen_bit = {config.activation_type, config.weight_type} & {"uint16", "int16"}
    return 21 if sixteen_bit else 1


def external_data_name(model_path: Path) -> str:
    """ONNX Runtime's name for a model's external data file (`OnnxModel.save`)."""
    return model_path.name + ".data"


def remove_onnx(model_path: Path) -> None:
    model_path.unlink()
    model_path.with_name(external_data_name(model_path)).unlink(missing_ok=True)


def graph_input_names(model_path: Path) -> list[str]:
    import onnx

    return [i.name for i in onnx.load(str(model_path), load_external_data=False).graph.input]


def calibration_feeds(inputs: BuildInputs, input_names: list[str], samples: int,
                      *, pad_to: int | None = None) -> list[dict[str, np.ndarray]]:
    """One feed per real calibration text, shaped as the model sees it at inference: the query prefix on
    embedding models, (text, next text) pairs on cross-encoders, padded to `pad_to` for fixed-shape graphs,
    holding exactly the inputs the graph takes."""
    from transformers import AutoTokenizer

    from ..runtimes import model_feed

    tokenizer = AutoTokenizer.from_pretrained(inputs.io.model_dir)
    texts = inputs.calibration_texts[:samples]
    if inputs.spec.task == "cross-encoder":
        firsts, pairs = texts, texts[1:] + texts[:1]
    else:
        firsts, pairs = [inputs.spec.query_prefix + t for t in texts], None
    feeds = []
    for i, text in enumerate(firsts):
        feed = model_feed(tokenizer, [text], [pairs[i]] if pairs else None, max_length=pad_to or inputs.spec.max_length,
                          pad_to_max=pad_to is not None)
        feeds.append(feed_for(input_names, feed))
    return feeds


class TextCalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol (`get_next`) over real texts, padded to the fixed shape
    with their real attention masks. It is strided (`set_range`, `__len__`; the quantizers' `CalibStridedMinMax`
    option, which despite its name serves every calibration method): the calibrator then holds one text's
    activations at a time, where histogram calibration would otherwise keep every activation of every text."""

    STRIDE = 1
    OPTIONS = {"CalibStridedMinMax": STRIDE}

    def __init__(self, inputs: BuildInputs, model_path: Path, samples: int, *, seq: int):
        self._all = calibration_feeds(inputs, graph_input_names(model_path), samples, pad_to=seq)
        self._feeds = iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._feeds = iter(self._all[start_index:end_index])

    def get_next(self):
        return next(self._feeds, None)


class QdqOptions(SearchOptions):
    activation_type: Literal["uint8", "uint16"] = "uint16"
    calibration_samples: int = Field(64, ge=4, le=1000)
    sequence_length: int | None = Field(None, ge=8, description="fixed sequence length; defaults to max_length")


class QdqConfig(CandidateConfig):
    activation_type: Int8Or16
    weight_type: Int8Or16
    per_channel: bool
    ops: tuple[str, ...] | None  # None: every op type the quantizer knows
    calibration: Literal["minmax", "percentile"] = "minmax"
    samples_x: int = 1
    keep: tuple[str, ...] = ()  # nodes the accuracy-aware search keeps precise (how: see the subclass's `quantize`)


class QdqTarget(Target):
    """A QDQ graph at a fixed [1, sequence_length] shape for an NPU; subclasses say how their EP wants it."""

    repo_suffix: str
    library_name = "onnx"
    runtime_name = "onnxruntime"
    precision = "qdq"
    workload = 4
    cpu_target = False
    options_model = QdqOptions
    fixed_shape = True

    def weight_type(self, options: QdqOptions) -> str:
        return "int8"

    def candidates(self, options: QdqOptions, inputs: BuildInputs) -> list[QdqConfig]:
        """In order of cost to the NPU: every op per-tensor (fastest, usually wrecks encoders), then per-channel
        MatMul/Gemm only (searched on when it misses, see `sensitivity`), then 4x the calibration texts with
        percentile ranges, and last 16-bit activations."""
        matmul = QdqConfig(activation_type=options.activation_type, weight_type=self.weight_type(options),
                           per_channel=True, ops=("MatMul", "Gemm"))
        steps = [
            matmul.model_copy(update={"per_channel": False, "ops": None}),
            matmul,
            matmul.model_copy(update={"calibration": "percentile", "samples_x": 4}),
        ]
        if options.activation_type != "uint16":
            steps.append(matmul.model_copy(update={"activation_type": "uint16"}))
        return steps

    def cannot_pass(self, options: QdqOptions, config: QdqConfig, inputs: BuildInputs) -> str | None:
        """A candidate that quantizes every op gives the Add of attention scores and padding mask one per-tensor
        grid spanning the mask constant: its step (|constant| / 2^bits) dwarfs every score, so all scores round to
        one value and attention ignores the text (all-MiniLM-L6-v2 built anyway: mean cosine under 0.6, see
        tests/test_publish_e2e.py). The graph shows it; building the candidate would take a calibration pass and a
        quantization to find out."""
        if config.ops is not None and "Add" not in config.ops:
            return None
        mask = additive_attention_mask(inputs.fp32_onnx)
        if mask is None:
            return None
        value, add = mask
        levels = 2 ** int(config.activation_type.removeprefix("u").removeprefix("int")) - 1
        return (f"the attention mask constant {value:.3g} is added to the scores in {add}; quantized per tensor, "
                f"that sum's step would be {abs(value) / levels:.2g}, so every score rounds to one value")

    def sensitivity(self, options: QdqOptions, inputs: BuildInputs, config: QdqConfig,
                    *, files: dict[str, Path]) -> Ranking:
        """Ranked on the fixed-shape float graph over padded texts, rounded with the QDQ file's own scales."""
        import tempfile

        from .sensitivity import qdq_rounding, rank_nodes

        seq = options.sequence_length or inputs.spec.max_length
        round_weight, round_activation = qdq_rounding(files["onnx/model.onnx"])
        with tempfile.TemporaryDirectory() as tmp:
            fixed = fix_shape(inputs.fp32_onnx, Path(tmp) / "fixed.onnx", 1, seq=seq, opset=qdq_opset(config))
            feeds = calibration_feeds(inputs, graph_input_names(fixed), SENSITIVITY_TEXTS, pad_to=seq)
            return rank_nodes(fixed, feeds, round_weight=round_weight, round_activation=round_activation,
                              num_layers=inputs.source.config.get("num_hidden_layers", 0))

    @abstractmethod
    def quantize(self, fixed: Path, target: Path, reader: TextCalibrationReader, *, config: QdqConfig) -> None:
        """Write the QDQ graph of `fixed` to `target` as this NPU's execution provider wants it, with
        `reader.OPTIONS` among the quantizer's extra options and its weights in external data (the quantizer's
        calibration copy of the model then drops them once written, instead of holding them beside its session)."""

    def build(self, inputs: BuildInputs, options: QdqOptions, config: QdqConfig, *, out_dir: Path) -> dict[str, Path]:
        import onnx

        from ..process_memory import release_memory

        seq = options.sequence_length or inputs.spec.max_length
        fixed = fix_shape(inputs.fp32_onnx, out_dir / "fixed.onnx", 1, seq=seq, opset=qdq_opset(config))
        release_memory()
        reader = TextCalibrationReader(inputs, fixed, options.calibration_samples * config.samples_x, seq=seq)
        quantized = out_dir / "quantized.onnx"
        self.quantize(fixed, quantized, reader, config=config)
        remove_onnx(fixed)
        release_memory()
        target = out_dir / "model.onnx"
        onnx.save(onnx.load(str(quantized)), str(target))  # one file, as the NPU toolchains take it
        remove_onnx(quantized)
        return {"onnx/model.onnx": target}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files["onnx/model.onnx"])

    def evaluation_view(self, files: dict[str, Path]) -> OrtRuntime:
        """On a CPU, thousands of task texts padded one by one to [1, 128] take minutes; the same QDQ graph with
        its axes freed gives nearly the same outputs (padding leaks slightly through 16-bit attention ranges);
        the pipeline checks the agreement on the fidelity texts and states it on the card."""
        return OrtRuntime(files["onnx/model.onnx"], free_axes=True)
