"""`gguf`, `gguf-q8`, `gguf-q4` — GGUF files for llama.cpp, Ollama and LM Studio: the encoder with its vocabulary,
tokenizer type, normalizer and pooling in the metadata llama.cpp reads, so that llama.cpp tokenizes and pools as
the model's own pipeline does. f16 is written here; Q8_0 and Q4_K_M are llama.cpp's own quantizer's output.

The writer is ours, on gguf-py's tensor-name maps: llama.cpp's `convert_hf_to_gguf.py` is a script of its source
tree (no installable package carries it) and refuses tokenizers whose pre-tokenizer hash it does not list; a BERT
WordPiece vocabulary needs no pre-tokenizer, and what the file claims is checked by the gate through llama.cpp.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConversionError
from ..layout import stage
from ..paths import template_file
from ..runtimes import LlamaCppEncoder, LlamaCppRuntime, ModelIO, post_modules
from ..spec import GateSpec
from .base import BuildInputs, CandidateConfig, Target, TargetOptions
from .q4 import WEIGHT_4BIT_GATE

# model_type -> llama.cpp architecture, for the architectures whose graph llama.cpp builds from BERT's tensors and
# whose tokenizer it reads as WordPiece
ARCHITECTURES = {"bert": "BERT"}
POOLING = {"mean": "MEAN", "cls": "CLS", "lasttoken": "LAST"}
# f16 rounds each weight once; the gate asks it to be that close (the file the others are quantized from)
F16_GATE = GateSpec(min_mean_cosine=0.999, min_p5_cosine=0.998, min_spearman=0.99, min_retention=0.99)


class GgufConfig(CandidateConfig):
    file_type: str  # "f16", or the llama.cpp quantization type written from the f16 file (as the file is named)


def unsupported(io: ModelIO, model_type: str, tokenizer_json: dict) -> str | None:
    """Why llama.cpp would not give this model's outputs from a GGUF file; None: it does."""
    if io.task == "cross-encoder":
        return ("llama.cpp's BERT graph adds only the first token type's embedding (models/bert.cpp), so a pair's "
                "second text would read as the first")
    if model_type not in ARCHITECTURES:
        return f"llama.cpp runs no '{model_type}' encoder from this writer's tensor maps (supported: bert)"
    if (tokenizer_json.get("model") or {}).get("type") != "WordPiece":
        return "llama.cpp's BERT vocabulary is WordPiece; this tokenizer is not"
    modules = post_modules(io)
    names = [type(m).__name__ for m in modules]
    if names[0] != "Pooling" or any(m != "Normalize" for m in names[1:]):
        return f"a GGUF embedding file stands for pooling and normalizing only; this pipeline runs {names}"
    if modules[0].pooling_mode not in POOLING:
        return f"llama.cpp pools by mean, CLS or last token, not '{modules[0].pooling_mode}'"
    return None


def _vocabulary(tokenizer) -> tuple[list[str], list[int]]:
    """Tokens in id order as llama.cpp's WordPiece reads them (a word start carries the phantom space '▁', a
    continuation loses its '##') and their types (special tokens are control tokens)."""
    import gguf

    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    special = set(tokenizer.all_special_ids)
    tokens, types = [], []
    for i in range(len(by_id)):
        token = by_id[i]
        if i in special:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def write_f16(io: ModelIO, out_path: Path) -> Path:
    """The encoder as a llama.cpp BERT GGUF: 2-D weights in f16, norms and biases in f32."""
    import gguf

    model_dir = Path(io.model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    arch = getattr(gguf.MODEL_ARCH, ARCHITECTURES[config["model_type"]])
    writer = gguf.GGUFWriter(str(out_path), gguf.MODEL_ARCH_NAMES[arch])
    _write_hyperparameters(writer, model_dir.name, config, pooling=post_modules(io)[0].pooling_mode)
    _write_vocabulary(writer, model_dir, config)
    _write_tensors(writer, model_dir, gguf.get_tensor_name_map(arch, config["num_hidden_layers"]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


def _write_hyperparameters(writer, name: str, config: dict, *, pooling: str) -> None:
    import gguf

    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(getattr(gguf.PoolingType, POOLING[pooling]))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)


def _write_vocabulary(writer, model_dir: Path, config: dict) -> None:
    """WordPiece tokens and types, the normalizer's behaviour (llama.cpp lowercases unless told otherwise) and the
    special token ids."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokens, types = _vocabulary(tokenizer)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(config.get("type_vocab_size", 1))
    # what the tokenizer as loaded does, not what tokenizer.json says: transformers rebuilds the normalizer from
    # tokenizer_config.json's do_lower_case
    normalizer = tokenizer.backend_tokenizer.normalizer
    lowercase = normalizer is not None and normalizer.normalize_str("A") == "a"
    strip_accents = normalizer is not None and normalizer.normalize_str("\u00e9") == "e"
    writer.add_bool("tokenizer.ggml.normalizer.lowercase", lowercase)  # keys gguf-py 0.19 has no writer for
    writer.add_bool("tokenizer.ggml.normalizer.strip_accents", strip_accents)
    gguf.SpecialVocab(model_dir, n_vocab=len(tokens)).add_to_gguf(writer)


def _write_tensors(writer, model_dir: Path, names) -> None:
    import numpy as np
    import torch
    from transformers import AutoModel

    state = AutoModel.from_pretrained(model_dir, dtype=torch.float32).state_dict()
    for hf_name, tensor in state.items():
        if hf_name.startswith("pooler.") or hf_name.endswith("position_ids"):
            continue  # the pooler is not part of a sentence embedding
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ConversionError(f"GGUF: no llama.cpp tensor for {hf_name}", "only BERT encoders map")
        data = tensor.numpy()
        half = data.ndim == 2 and name != "token_types.weight"
        writer.add_tensor(name, data.astype(np.float16 if half else np.float32))


def f16_file(inputs: BuildInputs) -> Path:
    """The f16 GGUF of the run's model, written once beside the fp32 export (whose cache key it shares): the `gguf`
    file itself and what `gguf-q8` and `gguf-q4` quantize. Builds running at once each write their own temporary
    file and rename it into place, so a reader never sees a partial file."""
    path = inputs.fp32_onnx.with_name("model-f16.gguf")
    if not path.exists():
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        os.replace(write_f16(inputs.io, partial), path)
    return path


def quantize(f16: Path, out_path: Path, file_type: str) -> Path:
    """llama.cpp's quantizer, as `llama-quantize <f16> <out> <type>` runs it (K-quants fall back to a legacy type
    in tensors whose rows are not a multiple of 256 wide; the file's tensor types are recorded)."""
    import ctypes

    import llama_cpp

    from ..runtimes import thread_count

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{file_type}")
    params.nthread = thread_count()
    if llama_cpp.llama_model_quantize(str(f16).encode(), str(out_path).encode(), ctypes.byref(params)) != 0:
        raise ConversionError(f"llama.cpp could not quantize the GGUF file to {file_type}", "use the f16 file")
    return out_path


def tensor_types(path: Path) -> dict[str, int]:
    """{GGML type: tensors of that type} in a GGUF file."""
    from collections import Counter

    import gguf

    return dict(Counter(t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors))


class GgufTarget(Target):
    name = "gguf"
    order = 90
    repo_suffix = "gguf"
    library_name = "gguf"
    tags = ("gguf", "llama.cpp", "embeddings")
    runtime_name = "llama.cpp"
    clients = ("llama-cpp-python",)
    precision = "fp16"
    hardware = "CPUs and GPUs via llama.cpp, Ollama, LM Studio"
    description = "GGUF with f16 weights; llama.cpp tokenizes and pools as the model's pipeline does"
    default_gate = F16_GATE
    file_type = "f16"  # llama.cpp's naming: float types in lower case, quantization types as its enums spell them

    @classmethod
    def template_path(cls) -> Path:
        return template_file("formats/gguf.md.j2")  # one usage template for the three files

    def file_name(self, inputs: BuildInputs) -> str:
        return f"{inputs.source.repo_id.rsplit('/', 1)[-1]}-{self.file_type}.gguf"

    def candidates(self, options: TargetOptions, inputs: BuildInputs) -> list[GgufConfig]:
        return [GgufConfig(file_type=self.file_type)]

    def cannot_pass(self, options: TargetOptions, config: GgufConfig, inputs: BuildInputs) -> str | None:
        tokenizer = Path(inputs.io.model_dir) / "tokenizer.json"
        return unsupported(inputs.io, inputs.source.model_type,
                           json.loads(tokenizer.read_text()) if tokenizer.exists() else {})

    def build(self, inputs: BuildInputs, options: TargetOptions, config: GgufConfig,
              *, out_dir: Path) -> dict[str, Path]:
        _require_llama_cpp()
        name = self.file_name(inputs)
        if config.file_type == "f16":
            return {name: stage({name: f16_file(inputs)}, out_dir) / name}
        return {name: quantize(f16_file(inputs), out_dir / name, config.file_type)}

    def load(self, files: dict[str, Path], inputs: BuildInputs) -> LlamaCppRuntime:
        _require_llama_cpp()
        return LlamaCppRuntime(next(iter(files.values())))

    def encoder(self, files: dict[str, Path], io: ModelIO) -> LlamaCppEncoder:
        return LlamaCppEncoder(io, self.load(files, None))

    def details(self, encoder: LlamaCppEncoder, files: dict[str, Path], texts: list[str]) -> dict:
        """The share of texts llama.cpp tokenizes to the model's own ids (the usual cause of bad GGUF embeddings),
        and the file's tensor types."""
        own = encoder.tokenizer(texts, truncation=True, max_length=encoder.io.max_length)["input_ids"]
        same = sum(encoder.runtime.tokenize(text, encoder.io.max_length) == list(ids) for text, ids in zip(texts, own))
        return {"tokenizer_agreement": same / len(texts), "tokenizer_texts": len(texts),
                "tensor_types": tensor_types(next(iter(files.values())))}


class GgufQ8Target(GgufTarget):
    name = "gguf-q8"
    order = 91
    tags = ("gguf", "llama.cpp", "embeddings", "8-bit")
    precision = "int8-weight"
    description = "GGUF quantized to Q8_0 by llama.cpp (8-bit weights in blocks of 32, f16 scales)"
    default_gate = None  # the spec's gate
    file_type = "Q8_0"


class GgufQ4Target(GgufTarget):
    name = "gguf-q4"
    order = 92
    tags = ("gguf", "llama.cpp", "embeddings", "4-bit")
    precision = "int4-weight"
    description = "GGUF quantized to Q4_K_M by llama.cpp (4-bit K-quants, 6-bit where llama.cpp's recipe keeps it)"
    default_gate = WEIGHT_4BIT_GATE
    file_type = "Q4_K_M"


def _require_llama_cpp() -> None:
    import importlib.util

    missing = [package for package, module in (("gguf", "gguf"), ("llama-cpp-python", "llama_cpp"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise ConversionError(f"{' and '.join(missing)} not installed", "pip install 'hubforge[gguf]' (it builds "
                              "llama.cpp from source: a C++ compiler and cmake)")
