"""The one fp32 ONNX export every target starts from: PyTorch's own exporter (`torch.onnx.export`, the dynamo path)
on the transformers model with eager attention, named as the Hub's ONNX repos name inputs and outputs.

Its graph keeps the patterns the later steps read: ONNX Runtime's BERT fusions (attention, SkipLayerNorm, GELU:
the int8 format), the additive padding mask the NPU formats' probe and the bounded mask find (attention_mask.py).
"""

from __future__ import annotations

import contextlib
import inspect
import shutil
from pathlib import Path

from .attention_mask import write_bounded_export
from .errors import ConversionError
from .process_memory import release_memory
from .runtimes import INPUT_NAMES
from .source import SourceModel
from .spec import ModelSpec

OPSET = 17
EXTERNAL_DATA = "model.onnx_data"  # optimum's and ONNX Runtime's name for model.onnx's weights file
DUMMY_TEXTS = ["hubforge exports this model", "and pads this shorter text"]  # two lengths: the mask is traced


def output_name(spec: ModelSpec) -> str:
    return "logits" if spec.task == "cross-encoder" else "last_hidden_state"


def export_fp32_onnx(spec: ModelSpec, source: SourceModel, out_dir: Path) -> Path:
    """Export with dynamic batch/sequence axes; outputs last_hidden_state (or logits for cross-encoders).

    The weights go to `model.onnx_data` beside the graph (ONNX's external data), so the steps that only read or
    rewrite the graph (shape fixing, node finders, ONNX Runtime's fusions) load kilobytes instead of the model.
    Beside it, the same graph with its attention mask bounded (`model_bounded.onnx`, attention_mask.py)."""
    target = out_dir / "model.onnx"
    if not target.exists():
        _export(spec, source, out_dir, target=target)
    write_bounded_export(target)
    return target


def positional(model, input_names: list[str], output: str):
    """The transformers model called with its inputs by position, returning the one output the Hub's ONNX repos
    publish (the exporter traces positional arguments; the model's forward takes keywords and returns a dict)."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return getattr(self.model(**dict(zip(input_names, inputs))), output)

    return Positional()


def load_model(spec: ModelSpec, source: SourceModel):
    """The transformers model at fp32 with eager attention (the exporters trace its plain operations)."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if spec.task == "cross-encoder" else AutoModel
    return cls.from_pretrained(source.path, dtype=torch.float32, attn_implementation="eager",
                               trust_remote_code=spec.trust_remote_code).eval()


@contextlib.contextmanager
def additive_padding_mask():
    """transformers 5 builds its eager padding mask by indexing a boolean mask per (batch, query, key); exported,
    that is a GatherND subgraph ONNX Runtime's attention fusion does not recognise. During the export, a plain
    bidirectional padding mask is written as encoders long wrote it, `(1 - mask) * min` broadcast over the scores
    (same values, so the same outputs); masks with other patterns (sliding windows) keep transformers' own."""
    import torch
    from transformers.masking_utils import AttentionMaskInterface, bidirectional_mask_function

    own = AttentionMaskInterface._global_mapping["eager"]

    def padding_mask(*, mask_function, attention_mask=None, dtype=torch.float32, **kwargs):
        if mask_function is not bidirectional_mask_function or attention_mask is None:
            return own(mask_function=mask_function, attention_mask=attention_mask, dtype=dtype, **kwargs)
        return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min

    AttentionMaskInterface._global_mapping["eager"] = padding_mask
    try:
        yield
    finally:
        AttentionMaskInterface._global_mapping["eager"] = own


def example_inputs(model, source: SourceModel) -> tuple[list[str], tuple]:
    """The inputs the model's forward takes, by their Hub names, and a padded batch of two texts for them."""
    import torch
    from transformers import AutoTokenizer

    names = [n for n in INPUT_NAMES if n in inspect.signature(model.forward).parameters]
    dummy = AutoTokenizer.from_pretrained(source.path)(DUMMY_TEXTS, padding=True, return_tensors="pt")
    return names, tuple(dummy[n] if n in dummy else torch.zeros_like(dummy["input_ids"]) for n in names)


def _trace(spec: ModelSpec, source: SourceModel, path: Path) -> None:
    import torch

    model = load_model(spec, source)
    names, args = example_inputs(model, source)
    batch, sequence = torch.export.Dim("batch_size"), torch.export.Dim("sequence_length")
    with additive_padding_mask():
        program = torch.onnx.export(positional(model, names, output_name(spec)), args, input_names=names,
                                    output_names=[output_name(spec)], opset_version=OPSET, dynamo=True,
                                    dynamic_shapes=(({0: batch, 1: sequence},) * len(names),), optimize=True,
                                    verbose=False)
    program.save(str(path), external_data=True)


def _export(spec: ModelSpec, source: SourceModel, out_dir: Path, *, target: Path) -> None:
    import onnx

    tmp = out_dir / "export-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _trace(spec, source, tmp / "model.onnx")
    except Exception as exc:
        first_line = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ConversionError(f"ONNX export of {source.repo_id} failed: {first_line}",
                              "check that the model's architecture exports with torch.onnx.export (dynamo=True)"
                              ) from exc
    release_memory()  # the PyTorch model and the exporter's copies, before the graph is read back
    graph = onnx.load(str(tmp / "model.onnx"), load_external_data=False)
    canonical_attention(graph)
    split_at_opset(graph)
    onnx.load_external_data_for_model(graph, str(tmp))
    onnx.save(graph, str(tmp / "external.onnx"), save_as_external_data=True, location=EXTERNAL_DATA)
    out_dir.mkdir(parents=True, exist_ok=True)
    (tmp / EXTERNAL_DATA).replace(out_dir / EXTERNAL_DATA)
    (tmp / "external.onnx").replace(target)
    shutil.rmtree(tmp, ignore_errors=True)


def split_at_opset(model) -> None:
    """The exporter writes some Splits with opset 18's `num_outputs` attribute into its opset-17 graph (ModernBERT's
    fused QKV and GLU projections), which ONNX Runtime refuses; at opset 17 a Split with no sizes splits equally into
    its outputs, which is what an attribute equal to their count asks."""
    for node in model.graph.node:
        count = next((a for a in node.attribute if a.name == "num_outputs"), None) if node.op_type == "Split" else None
        if count is not None and count.i == len(node.output) and len(node.input) == 1:
            node.attribute.remove(count)


def canonical_attention(model) -> None:
    """Two spellings of the dynamo exporter that ONNX Runtime's BERT attention fusion does not match, rewritten as
    the TorchScript exporter spelled them: attention scores scaled by a Mul (the fusion then takes that Mul for the
    mask's) are divided by its reciprocal, and an Unsqueeze of several non-negative axes is one Unsqueeze an axis."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    constants = {i.name: i for i in graph.initializer}
    constants.update({n.output[0]: n.attribute[0].t for n in graph.node if n.op_type == "Constant" and n.attribute})

    def constant(name: str):
        return numpy_helper.to_array(constants[name]) if name in constants else None

    added = []
    for softmax in (n for n in graph.node if n.op_type == "Softmax"):
        add = producer.get(softmax.input[0])
        for scale in (producer.get(t) for t in (add.input if add is not None and add.op_type == "Add" else ())):
            factor = constant(scale.input[1]) if scale is not None and scale.op_type == "Mul" else None
            scaled = getattr(producer.get(scale.input[0]), "op_type", "") if scale is not None else ""
            if factor is not None and factor.size == 1 and scaled == "MatMul":
                added.append(numpy_helper.from_array((1 / factor).astype(factor.dtype), f"{scale.name}_divisor"))
                scale.op_type, scale.input[1] = "Div", added[-1].name
    nodes = []
    for node in graph.node:
        axes = constant(node.input[1]) if node.op_type == "Unsqueeze" and len(node.input) == 2 else None
        if axes is None or axes.size < 2 or axes.min() < 0:
            nodes.append(node)
            continue
        source = node.input[0]
        for k, axis in enumerate(sorted(axes.tolist())):
            added.append(numpy_helper.from_array(np.array([axis], np.int64), f"{node.name}_axis{k}"))
            out = node.output[0] if k == axes.size - 1 else f"{node.name}_axis{k}_out"
            nodes.append(helper.make_node("Unsqueeze", [source, added[-1].name], [out], name=f"{node.name}_{k}"))
            source = out
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(added)
