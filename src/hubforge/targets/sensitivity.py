"""Where a quantized graph's error comes from, and the accuracy-aware search that keeps exactly those parts precise.

Each quantizable node (a MatMul, Gemm or fused Attention with a constant weight) is measured on its own: its float
input, collected from the float graph by ONNX Runtime's quantization debugger (`qdq_loss_debug`) on calibration
texts, goes through the node once in float and once rounded as the quantizer rounds it (input and weight), and the
node's noise is its output's error power relative to the output's variation across tokens (a constant part, such
as the contribution of a "massive activation" that a bias cancels, carries no signal but multiplies the
rounding of the weights it meets). Measured per node rather than along the quantized graph,
a node that merely passes on upstream error ranks low, and an error that shows only later (a weight row rounded
to zero under a large activation channel) is charged to the node that causes it. The format says how it rounds:
a QDQ graph's own scales (qnn, amd), or dynamic quantization's per-call ranges (int8).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WEIGHTED_OPS = ("MatMul", "Gemm", "Attention")
MAX_SEARCH_BUILDS = 7  # galloping over the ranked nodes, then bisection: 2·log2(n) builds at most, capped here
SENSITIVITY_TEXTS = 4  # calibration texts whose float activations the ranking reads

Rounding = Callable[[str, np.ndarray], np.ndarray]  # (node name, float tensor) -> the tensor as quantized


@dataclass(frozen=True)
class Ranking:
    """Quantizable nodes, the one adding the most noise first, and the encoder layer each sits in (None: outside
    the layers, e.g. a classifier head)."""

    nodes: tuple[str, ...]
    layers: dict[str, int | None]

    def layers_of(self, nodes: Sequence[str]) -> tuple[int, ...]:
        return tuple(sorted({self.layers[n] for n in nodes if self.layers.get(n) is not None}))


@dataclass(frozen=True)
class WeightedNode:
    name: str
    activation: str  # input tensor name
    weight: np.ndarray  # as [in, out]


def weighted_nodes(float_model: Path) -> list[WeightedNode]:
    """The float graph's quantizable nodes in graph order, each weight laid out [in, out]."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(float_model)).graph
    weights = {i.name: i for i in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type not in WEIGHTED_OPS or len(node.input) < 2 or node.input[1] not in weights:
            continue
        weight = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)
        if weight.ndim != 2:
            continue
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            weight = weight.T
        nodes.append(WeightedNode(node.name, node.input[0], weight))
    return nodes


def float_activations(float_model: Path, feeds: Sequence[dict[str, np.ndarray]]) -> dict[str, list[np.ndarray]]:
    """Every input and output of the quantizable ops, per feed, from the float graph."""
    import onnxruntime
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, modify_model_output_intermediate_tensors

    with tempfile.TemporaryDirectory(prefix="hubforge-sensitivity-") as tmp:
        augmented = Path(tmp) / "augmented.onnx"
        modify_model_output_intermediate_tensors(str(float_model), str(augmented), op_types_for_saving=WEIGHTED_OPS,
                                                 save_as_external_data=True)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # the debugger's default
        options.log_severity_level = 3  # not a warning per unused initializer of the augmented graph
        return collect_activations(str(augmented), list(feeds), session_options=options)


def rank_nodes(float_model: Path, feeds: Sequence[dict[str, np.ndarray]], *, round_weight: Rounding,
               round_activation: Rounding, num_layers: int) -> Ranking:
    """The quantizable nodes of an ONNX float graph ranked by the output noise rounding adds at each."""
    return rank(weighted_nodes(float_model), float_activations(float_model, feeds), round_weight=round_weight,
                round_activation=round_activation, num_layers=num_layers)


def rank(nodes: Sequence[WeightedNode], activations: dict[str, list[np.ndarray]], *, round_weight: Rounding,
         round_activation: Rounding, num_layers: int) -> Ranking:
    """`nodes` (in graph order) ranked by the output noise rounding adds at each, from their float inputs. Layers
    are counted from the graph's order (exporters keep no module names on nodes): every encoder layer holds the
    same number of quantizable nodes."""
    noise = {}
    for node in nodes:
        if node.activation not in activations:
            continue
        quantized_weight = round_weight(node.name, node.weight)
        signal = error = 0.0
        for x in activations[node.activation]:
            x = x.reshape(-1, node.weight.shape[0])
            exact = x @ node.weight
            signal += float(((exact - exact.mean(axis=0)) ** 2).sum())
            error += float(((round_activation(node.name, x) @ quantized_weight - exact) ** 2).sum())
        noise[node.name] = error / max(signal, 1e-30)
    order = [n.name for n in nodes if n.name in noise]
    per_layer = len(order) // num_layers if num_layers else 0
    layers = {name: (i // per_layer if per_layer and i < per_layer * num_layers else None)
              for i, name in enumerate(order)}
    return Ranking(tuple(sorted(noise, key=lambda name: -noise[name])), layers)


def fake_quantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, *, low: int, high: int) -> np.ndarray:
    return (np.clip(np.round(x / scale) + zero_point, low, high) - zero_point) * scale


def symmetric_weights(bits: int = 8, per_channel: bool = True) -> Rounding:
    """Signed symmetric weights, one scale per output channel (or per tensor)."""
    top = 2 ** (bits - 1) - 1

    def weight(_, w):
        scale = np.abs(w).max(axis=0 if per_channel else None, keepdims=per_channel) / top
        return fake_quantize(w, np.maximum(scale, 1e-12), np.zeros_like(scale), low=-top, high=top)

    return weight


def dynamic_rounding(weight_bits: int = 8, per_channel: bool = True) -> tuple[Rounding, Rounding]:
    """ONNX Runtime's dynamic quantization: symmetric signed weights, and each call's activation on an unsigned
    8-bit grid spanning its own range (and zero)."""
    def activation(_, x):
        low, high = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        scale = max((high - low) / 255, 1e-12)
        return fake_quantize(x, np.float32(scale), np.float32(round(-low / scale)), low=0, high=255)

    return symmetric_weights(weight_bits, per_channel), activation


def static_rounding(activations: dict[str, list[np.ndarray]],
                    nodes: Sequence[WeightedNode]) -> tuple[Rounding, Rounding]:
    """Static 8-bit quantization as NNCF's performance preset does it: symmetric per-channel weights, and each
    input on one symmetric per-tensor grid spanning what calibration saw."""
    ranges = {n.name: max(float(np.abs(x).max()) for x in activations[n.activation])
              for n in nodes if n.activation in activations}

    def activation(name, x):
        scale = max(ranges[name] / 127, 1e-12)
        return fake_quantize(x, np.float32(scale), np.float32(0), low=-128, high=127)

    return symmetric_weights(), activation


def qdq_rounding(qdq_model: Path) -> tuple[Rounding, Rounding]:
    """The rounding a QDQ graph applies, read from its own QuantizeLinear/DequantizeLinear parameters: each node's
    dequantized weight, and its input's scale and zero point."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(qdq_model)).graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    readers = {node.name: node for node in graph.node}

    def dequantizer(tensor):
        node = producers.get(tensor)
        return node if node is not None and node.op_type == "DequantizeLinear" else None

    def weight(name, w):
        node = readers.get(name)
        dq = dequantizer(node.input[1]) if node is not None else None
        if dq is None or dq.input[0] not in constants:
            return w  # left in float
        scale, zero = constants[dq.input[1]], constants[dq.input[2]].astype(np.int64)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and scale.size > 1:
            shape = [1, 1]
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        dequantized = (constants[dq.input[0]].astype(np.int64) - zero) * scale
        return dequantized.T.astype(np.float32) if dequantized.shape != w.shape else dequantized.astype(np.float32)

    def activation(name, x):
        node = readers.get(name)
        dq = dequantizer(node.input[0]) if node is not None else None
        quantize = producers.get(dq.input[0]) if dq is not None else None
        if quantize is None or quantize.op_type != "QuantizeLinear":
            return x
        scale, zero = constants[quantize.input[1]], constants[quantize.input[2]]
        info = np.iinfo(zero.dtype)
        return fake_quantize(x, scale, zero.astype(np.float32), low=info.min, high=info.max).astype(np.float32)

    return weight, activation


@dataclass(frozen=True)
class Probe:
    """One build of the search: how many of the ranked nodes it kept precise, and whether it passed."""

    kept: int
    passed: bool


def search_kept(count: int, passes: Callable[[int], bool], max_builds: int = MAX_SEARCH_BUILDS) -> list[Probe]:
    """The fewest top-ranked nodes to keep precise so that `passes(k)` holds, in a bounded number of builds:
    1, 2, 4, … nodes until one passes (most models need few), then bisection between the last failure and it.
    Returns every probe in order; the passing one with the fewest kept nodes is the answer."""
    probes: list[Probe] = []

    def probe(k: int) -> bool:
        probes.append(Probe(k, passes(k)))
        return probes[-1].passed

    failed, k = 0, 1
    while not probe(k):
        failed = k
        if k == count or len(probes) == max_builds:
            return probes
        k = min(2 * k, count)
    passed = k
    while passed - failed > 1 and len(probes) < max_builds:
        middle = (failed + passed) // 2
        if probe(middle):
            passed = middle
        else:
            failed = middle
    return probes

