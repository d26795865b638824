"""Tiny random encoders of the architectures users bring, saved as a user's model folder would be: transformers'
save_pretrained() plus, for embedders, sentence-transformers' module files."""

from __future__ import annotations

import json

ARCHITECTURES = {
    "bert": {},
    "roberta": {"pad_token_id": 0},
    "xlm-roberta": {"pad_token_id": 0},
    "distilbert": {"dim": 64, "n_layers": 2, "n_heads": 2, "hidden_dim": 128},
    "mpnet": {},
    "electra": {"embedding_size": 64},
    "deberta-v2": {"relative_attention": True, "position_buckets": 32, "pos_att_type": ["p2c", "c2p"]},
    "modernbert": {"pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102, "cls_token_id": 101,
                   "sep_token_id": 102, "global_attn_every_n_layers": 2, "local_attention": 16},
}
TOKEN_TYPE_TOKENIZERS = {"bert", "electra", "deberta-v2"}  # the others' tokenizers give no token_type_ids


def tiny_config(model_type: str, vocab_size: int):
    from transformers import AutoConfig

    size = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
            "max_position_embeddings": 128, "initializer_range": 0.3}
    return AutoConfig.for_model(model_type, vocab_size=vocab_size, num_labels=1, **size,
                                **ARCHITECTURES[model_type])


def write_st_modules(folder, modules: list[tuple[str, str]]) -> None:
    """modules.json for a sentence-transformers model: the transformer at the root, then (path, type) pairs."""
    entries = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    entries += [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
                for i, (path, kind) in enumerate(modules, start=1)]
    (folder / "modules.json").write_text(json.dumps(entries))


def make_model(folder, model_type: str, head: str, pooling: str):
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    from hubforge.devhub.seed import bundled_minilm

    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm())  # BERT WordPiece, built offline from the package
    torch.manual_seed(0)
    cls = AutoModelForSequenceClassification if head == "cross-encoder" else AutoModel
    model = cls.from_config(tiny_config(model_type, tokenizer.vocab_size)).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # as the architecture's own tokenizers declare: token_type_ids only where they produce them
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["model_input_names"] = ["input_ids", "token_type_ids", "attention_mask"] \
        if model_type in TOKEN_TYPE_TOKENIZERS else ["input_ids", "attention_mask"]
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# tiny test model\n")
    if head == "sentence-embedding":
        write_st_modules(folder, [("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")])
        (folder / "1_Pooling").mkdir()
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(
            {"embedding_dimension": 64, "pooling_mode": pooling}))
    return model, tokenizer
