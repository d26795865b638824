"""`q4` and `q4f16` — ONNX with 4-bit block-quantized MatMul weights (ONNX Runtime's MatMulNBits), at the file
names transformers.js loads with `dtype: "q4"` / `dtype: "q4f16"`; q4f16 is the same q4 graph converted to fp16,
as transformers.js' own conversion script makes it, for WebGPU consumers."""

from __future__ import annotations

from pathlib import Path

from ..runtimes import OrtRuntime
from ..spec import GateSpec
from .base import BuildInputs, CandidateConfig, Target, TargetOptions

# Weight-only 4-bit is measurably lossier than int8 on encoders. all-MiniLM-L6-v2, mean / p5 cosine vs fp32 over
# 128 Banking77 texts: int8 0.993 / 0.990; q4 block 32 symmetric 0.972 / 0.965, asymmetric 0.978 / 0.972, block 16
# asymmetric 0.983 / 0.978; ov-int4 group 32 symmetric 0.973 / 0.966, asymmetric 0.979 / 0.973, block 128 ~0.955.
# So 4-bit formats gate at 0.975 / 0.965 by default (stated on the card, set per format in the spec:
# `formats: {q4: {gate: {...}}}`); the spec's own gate is never lowered for them.
WEIGHT_4BIT_GATE = GateSpec(min_mean_cosine=0.975, min_p5_cosine=0.965, min_spearman=0.95, min_retention=0.98)


class Q4Config(CandidateConfig):
    block_size: int  # weights per scale along the input axis; larger blocks are smaller files
    symmetric: bool  # symmetric blocks store no zero points


def _quantize_q4(graph: Path, config: Q4Config):
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # a line per node
    quantizer = MatMulNBitsQuantizer(onnx.load(str(graph)), bits=4, block_size=config.block_size,
                                     is_symmetric=config.symmetric)
    quantizer.process()
    return quantizer.model.model


class OnnxQ4Target(Target):
    name = "q4"
    order = 35
    repo_suffix = "onnx"
    library_name = "onnx"
    tags = ("onnx", "onnxruntime", "int4")
    runtime_name = "onnxruntime"
    precision = "int4-weight"
    clients = ("onnxruntime", "sentence-transformers (onnx)", "optimum (ORTModel)", "transformers.js", "fastembed")
    hardware = "CPUs and browsers (ONNX Runtime, transformers.js WASM)"
    description = "4-bit block-quantized MatMul weights (MatMulNBits), fp32 activations; embeddings stay fp32"
    default_gate = WEIGHT_4BIT_GATE
    file_name = "onnx/model_q4.onnx"

    def candidates(self, options: TargetOptions, inputs: BuildInputs) -> list[Q4Config]:
        """Smallest first: transformers.js' own q4 (block 32, symmetric: no zero points), then asymmetric blocks,
        which fit skewed weight rows better, then blocks of 16. Block 128 saves 1 MB on MiniLM (the fp32 embedding
        table dominates the file) for 0.955 cosine, so it is not tried."""
        return [Q4Config(block_size=32, symmetric=True), Q4Config(block_size=32, symmetric=False),
                Q4Config(block_size=16, symmetric=False)]

    def convert(self, model):
        return model

    def build(self, inputs: BuildInputs, options: TargetOptions, config: Q4Config,
              *, out_dir: Path) -> dict[str, Path]:
        import onnx

        target = out_dir / Path(self.file_name).name
        onnx.save(self.convert(_quantize_q4(inputs.bounded_onnx, config)), str(target))
        return {self.file_name: target}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> OrtRuntime:
        return OrtRuntime(files[self.file_name])


class OnnxQ4F16Target(OnnxQ4Target):
    name = "q4f16"
    order = 36
    workload = 2
    tags = ("onnx", "onnxruntime", "int4", "fp16")
    precision = "int4-weight / fp16"
    hardware = "GPUs via WebGPU (transformers.js) / ONNX Runtime"
    description = "the q4 graph with every other weight and activation in fp16; inputs and outputs stay fp32"
    cpu_target = False
    file_name = "onnx/model_q4f16.onnx"

    def convert(self, model):
        from onnxruntime.transformers.float16 import convert_float_to_float16
        from onnxruntime.transformers.onnx_model import OnnxModel

        half = convert_float_to_float16(model, keep_io_types=True, op_block_list=["LayerNormalization"])
        OnnxModel(half).topological_sort()  # see fp16.py
        return half
