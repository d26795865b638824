"""The additive attention mask of an exported encoder: found (the NPU formats' probe reads it) and bounded (the
onnx, fp16, int8, q4, q4f16 and mnn artifacts).

Exporters mask padding by adding the dtype's minimum (-3.4e38) to the attention scores of padded positions, and
ONNX Runtime's fused attention adds -10000. Both lie far below the range of the runtimes' exp kernels, which clamp
there: softmax then writes denormal probabilities for padded positions instead of zeros, and every product with them
takes the x86 CPU's slow path. MiniLM at [1, 128] on one short text padded to 128 tokens (`python
benchmarks/bench_mask.py`, benchmarks/RESULTS.md): the fp32 graph takes 12.5 ms bounded against 14.6 with the
exporter's fill, the int8 graph 5.6 ms against 7.8 with ONNX Runtime's, MNN 23.9 ms against 72.6; on 128 real
tokens both are alike. The NPU formats (qnn, amd) keep the exporter's graph: their compilers, not a CPU's exp,
see it.

MASK_FILL keeps padded scores inside exp's normal range, while their weights (e^-30, 1e-13, of the largest score's
or less) stay below the float32 resolution of a sum that includes the largest: the embeddings on real, padded
batches are the same (int8 identical, MNN within 4.2e-7; tests/test_targets_mask.py) unless a padded position scores
ten or more above every real one, and the fidelity gate measures each artifact either way.
"""

from __future__ import annotations

from pathlib import Path

MASK_MAGNITUDE = 1e4  # additive attention masks use -10000 or the dtype's minimum; no score comes close
MASK_FILL = -30.0
ORT_ATTENTION_FILL = -10000.0  # ONNX Runtime's fused (Q)Attention fills padded scores with this by default
BOUNDED_GRAPH = "model_bounded.onnx"  # beside the export's model.onnx, reading the same model.onnx_data


def _mask_constants(graph) -> list[tuple[object, str]]:
    """(tensor, Add) for each large constant that reaches the Add summing scores and mask before a Softmax; the
    tensor is the graph's own TensorProto (an initializer or a Constant node's value), so it can be rewritten."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    producer = {out: node for node in graph.node for out in node.output}
    constants = {i.name: i for i in graph.initializer if np.prod(i.dims) <= 16}
    constants.update({n.output[0]: n.attribute[0].t for n in graph.node if n.op_type == "Constant" and n.attribute
                      and n.attribute[0].type == onnx.AttributeProto.TENSOR})

    def large_constant(tensor: str, depth: int):
        if tensor in constants:
            values = numpy_helper.to_array(constants[tensor])
            large = values.dtype.kind == "f" and values.size and np.abs(values).max() >= MASK_MAGNITUDE
            return constants[tensor] if large else None
        node = producer.get(tensor)
        if node is None or depth == 0 or node.op_type not in ("Where", "Mul", "Sub", "Cast", "Expand", "Unsqueeze",
                                                                "Reshape", "Add", "ConstantOfShape"):
            return None
        found = (large_constant(i, depth - 1) for i in node.input)
        return next((proto for proto in found if proto is not None), None)

    masks = []
    for node in graph.node:
        add = producer.get(node.input[0]) if node.op_type == "Softmax" else None
        if add is not None and add.op_type == "Add":
            masks += [(proto, add.name) for proto in (large_constant(t, 6) for t in add.input) if proto is not None]
    return masks


def additive_attention_mask(model_path: Path) -> tuple[float, str] | None:
    """The large constant an encoder adds to its attention scores to mask padding (the exporters write
    `scores + (1 - mask) * min`), and the Add that sums them before Softmax; None where the graph has no such mask
    (fused attention ops, masks applied by Where on the scores)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    masks = _mask_constants(onnx.load(str(model_path), load_external_data=False).graph)
    if not masks:
        return None
    proto, add = masks[0]
    values = numpy_helper.to_array(proto)
    return float(values.flat[np.abs(values).argmax()]), add


def write_bounded_export(fp32_onnx: Path) -> None:
    """Write the export with its mask constants set to MASK_FILL beside it (BOUNDED_GRAPH, sharing its external
    weights file), once: the export stage calls it, and every format that runs on a CPU or GPU builds from it
    (`BuildInputs.bounded_onnx`). Nothing is written where the graph has no additive mask."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    bounded = fp32_onnx.with_name(BOUNDED_GRAPH)
    if bounded.exists():
        return
    model = onnx.load(str(fp32_onnx), load_external_data=False)
    masks = _mask_constants(model.graph)
    if not masks:
        return
    for proto, _ in masks:
        values = numpy_helper.to_array(proto)
        proto.CopyFrom(numpy_helper.from_array(
            np.where(np.abs(values) >= MASK_MAGNITUDE, MASK_FILL, values).astype(values.dtype), proto.name))
    partial = bounded.with_suffix(".partial")
    onnx.save(model, str(partial))
    partial.replace(bounded)


def bounded_export(fp32_onnx: Path) -> Path:
    """The export with its attention mask bounded, or the export itself where it has none."""
    bounded = fp32_onnx.with_name(BOUNDED_GRAPH)
    return bounded if bounded.exists() else fp32_onnx


def fill_fused_attention(model, value: float = MASK_FILL) -> int:
    """ONNX Runtime's fused Attention nodes (and the QAttention the dynamic quantizer makes of them, which keeps
    their attributes) fill padded scores with `mask_filter_value`; set it (MASK_FILL by default). Returns the
    number of nodes set."""
    from onnx import helper

    nodes = [n for n in model.graph.node if n.op_type in ("Attention", "QAttention") and n.domain == "com.microsoft"]
    for node in nodes:
        kept = [a for a in node.attribute if a.name != "mask_filter_value"]
        del node.attribute[:]
        node.attribute.extend([*kept, helper.make_attribute("mask_filter_value", value)])
    return len(nodes)
