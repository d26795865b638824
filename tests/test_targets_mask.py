"""Bounded attention masks (attention_mask.py): the published onnx, int8 and mnn artifacts fill padded
attention scores with MASK_FILL instead of a value below exp's range, and give the same outputs on real, padded
batches as the same graphs with the usual fill; the NPU formats keep the exporter's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from huggingface_hub import snapshot_download
from onnx import helper

from conftest import READ_TOKEN
from hubforge.export import EXTERNAL_DATA
from hubforge.attention_mask import (BOUNDED_GRAPH, MASK_FILL, ORT_ATTENTION_FILL, additive_attention_mask,
                                             bounded_export, fill_fused_attention, write_bounded_export)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    """The spec, model IO and fp32 export of the real MiniLM."""
    from hubforge.build import cache_key
    from hubforge.devhub.seed import bundled_minilm
    from hubforge.export import export_fp32_onnx
    from hubforge.reference import model_io
    from hubforge.source import local_source
    from hubforge.spec import load_spec

    spec = load_spec("all-minilm-l6-v2")
    source = local_source(spec, bundled_minilm())
    export = export_fp32_onnx(spec, source, tmp_path_factory.mktemp("mask") / cache_key(spec, source) / "export")
    return model_io(spec, source), export


def embed(io, runtime, texts: list[str]) -> np.ndarray:
    from hubforge.runtimes import TextEncoder

    return TextEncoder(io, runtime).embed(texts)  # batches of 32, each padded to its longest text


def test_onnx_is_the_export_with_the_bound_and_keeps_its_outputs(published_minilm, minilm_reference, minilm):
    from hubforge.runtimes import OrtRuntime

    io, export = minilm
    repo = Path(snapshot_download("hubforge/all-minilm-l6-v2-onnx", token=READ_TOKEN))
    assert additive_attention_mask(repo / "onnx/model.onnx") is None
    for name in ("model_fp16.onnx", "model_q4.onnx", "model_q4f16.onnx"):
        assert additive_attention_mask(repo / "onnx" / name) is None, name
    qnn = Path(snapshot_download("hubforge/all-minilm-l6-v2-qnn", token=READ_TOKEN))
    assert additive_attention_mask(next(qnn.rglob("*.onnx")))[0] < -1e38

    texts = minilm_reference[0]
    np.testing.assert_allclose(embed(io, OrtRuntime(repo / "onnx/model.onnx"), texts),
                               embed(io, OrtRuntime(export), texts), atol=1e-6)


def test_int8_fills_padded_scores_with_the_bound_and_keeps_its_outputs(published_minilm, minilm_reference, minilm,
                                                                      tmp_path):
    from hubforge.runtimes import OrtRuntime

    io, _ = minilm
    path = Path(snapshot_download("hubforge/all-minilm-l6-v2-onnx", token=READ_TOKEN)) / "onnx/model_quantized.onnx"
    model = onnx.load(str(path))
    attention = [n for n in model.graph.node if n.op_type == "QAttention"]
    assert len(attention) == 6
    for node in attention:
        assert {a.name: helper.get_attribute_value(a) for a in node.attribute}["mask_filter_value"] == MASK_FILL
    assert fill_fused_attention(model, ORT_ATTENTION_FILL) == 6
    default_fill = tmp_path / "default_fill.onnx"
    onnx.save(model, str(default_fill))

    texts = minilm_reference[0]
    np.testing.assert_allclose(embed(io, OrtRuntime(path), texts), embed(io, OrtRuntime(default_fill), texts),
                               atol=1e-6)


def test_mnn_is_converted_with_the_bound_and_keeps_its_outputs(published_minilm, minilm_reference, minilm, tmp_path):
    from hubforge.runtimes import MnnRuntime
    from hubforge.targets.mnn import MnnConfig, convert

    io, export = minilm
    path = Path(snapshot_download("hubforge/all-minilm-l6-v2-mnn", token=READ_TOKEN)) / "mnn/model.mnn"
    exporters_fill = convert(export, tmp_path / "exporters_fill.mnn", MnnConfig(weights="int8"))
    assert path.read_bytes() != exporters_fill.read_bytes()

    texts = minilm_reference[0]
    np.testing.assert_allclose(embed(io, MnnRuntime(path), texts), embed(io, MnnRuntime(exporters_fill), texts),
                               atol=1e-5)


def test_the_export_stage_writes_the_bounded_graph_beside_the_exporters(minilm):
    """One bounded graph per export, sharing its weights file; the exporter's graph keeps its mask (the NPU
    formats and their probe read it)."""
    _, export = minilm
    value, add = additive_attention_mask(export)
    assert value < -1e38
    assert {n.op_type for n in onnx.load(str(export), load_external_data=False).graph.node if n.name == add} == {"Add"}
    bounded = bounded_export(export)
    assert bounded == export.with_name(BOUNDED_GRAPH)
    assert bounded.stat().st_size < export.with_name(EXTERNAL_DATA).stat().st_size / 100  # the weights stay shared
    assert additive_attention_mask(bounded) is None  # every fill reaching a Softmax is now MASK_FILL
    graph = onnx.load(str(bounded), load_external_data=False).graph
    values = [helper.get_attribute_value(n.attribute[0]) for n in graph.node if n.op_type == "Constant"]
    values += [i for i in graph.initializer if not onnx.external_data_helper.uses_external_data(i)]
    assert any(onnx.numpy_helper.to_array(v).size == 1 and onnx.numpy_helper.to_array(v).item() == MASK_FILL
               for v in values if isinstance(v, onnx.TensorProto))
    written = bounded.stat().st_mtime_ns
    write_bounded_export(export)
    assert bounded.stat().st_mtime_ns == written
