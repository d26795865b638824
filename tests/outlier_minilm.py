"""all-MiniLM-L6-v2 reparameterized to carry the activation outliers real encoders have, computing the same function.

Two kinds, both exact in real arithmetic:
- attention value channels scaled up, with the inverse folded into the output projection that reads them (the
  attention probabilities mix values linearly), so a few channels of each output projection's input are large;
- "massive activations" (Sun et al., 2024): extra FFN neurons with zero input weights and a large bias, which GELU
  passes through unchanged; their output weights are real (copied from existing neurons) and their constant
  contribution is subtracted from the output bias, so the FFN output matmul reads a few huge, constant channels.
Per-tensor activation scales then spend their range on those channels; the rest of the tensor rounds to few levels.
"""

from __future__ import annotations

import shutil
from pathlib import Path

VALUE_CHANNELS = (3, 101, 250)  # attention value channels scaled, every layer
VALUE_SCALE = 40.0
MASSIVE_LAYERS = (1, 3)  # layers given extra constant FFN neurons
MASSIVE_NEURONS = 2
MASSIVE_VALUE = 300.0


def build_outlier_minilm(folder: Path) -> Path:
    """Writes the reparameterized model (a sentence-transformers folder like the bundled one) to `folder`."""
    import torch
    from transformers import AutoModel

    from hubforge.devhub.seed import bundled_minilm

    source = bundled_minilm()
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    model = AutoModel.from_pretrained(source, dtype=torch.float32)
    with torch.no_grad():
        for layer in model.encoder.layer:
            value, output = layer.attention.self.value, layer.attention.output.dense
            for c in VALUE_CHANNELS:
                value.weight[c] *= VALUE_SCALE
                value.bias[c] *= VALUE_SCALE
                output.weight[:, c] /= VALUE_SCALE
        model = _with_massive_neurons(model)
    model.save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# all-MiniLM-L6-v2 with activation outliers "
                                      "(a function-preserving reparameterization, for tests)\n")
    return folder


def _with_massive_neurons(model):
    """Every layer grows MASSIVE_NEURONS FFN neurons (the config's intermediate size is shared); in MASSIVE_LAYERS
    they are constant and large, elsewhere zero."""
    import torch
    from transformers import AutoModel

    config = model.config
    config.intermediate_size += MASSIVE_NEURONS
    grown = AutoModel.from_config(config).eval()
    state = grown.state_dict()
    for name, tensor in model.state_dict().items():
        state[name] = _pad_to(tensor, state[name].shape)
    grown.load_state_dict(state)
    with torch.no_grad():
        for i in MASSIVE_LAYERS:
            ffn_in, ffn_out = grown.encoder.layer[i].intermediate.dense, grown.encoder.layer[i].output.dense
            for k in range(MASSIVE_NEURONS):
                neuron = config.intermediate_size - MASSIVE_NEURONS + k
                ffn_in.bias[neuron] = MASSIVE_VALUE
                ffn_out.weight[:, neuron] = ffn_out.weight[:, k]
                ffn_out.bias -= MASSIVE_VALUE * ffn_out.weight[:, neuron]
    return grown


def _pad_to(tensor, shape):
    import torch

    padded = torch.zeros(shape, dtype=tensor.dtype)
    padded[tuple(slice(0, n) for n in tensor.shape)] = tensor
    return padded
