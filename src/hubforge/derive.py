"""Stage 1 — a spec from the model's own files, for a Hub repo or a local folder nobody wrote one for.

sentence-transformers and transformers already record what a spec says: modules.json (the module chain),
the Pooling module's config.json, sentence_bert_config.json (max length), config_sentence_transformers.json
(prompts), config.json (architecture). `hubforge specs new` writes the derived spec as YAML to edit and commit."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import SpecError
from .spec import POOLING_MODES, EvaluationSpec, ModelSpec, available_specs, load_spec

# sentence-transformers' Pooling config flags, older releases' form of its `pooling_mode`
POOLING_FLAGS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_max_tokens": "max",
                 "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                 "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")
# architectures whose position ids start at padding id + 1
OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "data2vec-text", "xmod"}
MAX_DERIVED_LENGTH = 512  # longer inputs cost every format's calibration and timing; a spec may raise it
# evaluation on the bundled intent sets, as the shipped specs of each task do
EVALUATION = {"sentence-embedding": {"classification": "banking77", "retrieval": "banking77", "sts": "banking77"},
              "cross-encoder": {"reranking": "banking77"},
              "feature-extraction": {"classification": "banking77"}}
# the files a spec is derived from: configs and tokenizer, never weights
MODEL_FILE_PATTERNS = ["*.json", "*.txt", "*.model", "*_*/*.json"]


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: not readable as JSON ({exc})", "re-save the model with save_pretrained()") from exc


def _pooling(folder: Path, modules: list[dict]) -> str:
    pooling = next((m for m in modules if m.get("type", "").endswith(".Pooling")), None)
    if pooling is None:
        return "mean"
    config = _read_json(folder / pooling.get("path", "") / "config.json")
    mode = config.get("pooling_mode") or next((m for flag, m in POOLING_FLAGS.items() if config.get(flag)), "mean")
    if mode not in POOLING_MODES:
        raise SpecError(f"{folder}: pooling {mode!r} is not one hubforge knows",
                        f"known: {', '.join(POOLING_MODES)}; write a spec with `hubforge specs new` and set it")
    return mode


def _max_length(folder: Path, config: dict) -> int:
    """sentence-transformers' max_seq_length, else the tokenizer's; never more than the model has positions for
    (RoBERTa-style position ids start after the padding id); capped."""
    st_config = folder / "sentence_bert_config.json"
    tokenizer_config = folder / "tokenizer_config.json"
    declared = [_read_json(st_config).get("max_seq_length") if st_config.exists() else None,
                _read_json(tokenizer_config).get("model_max_length") if tokenizer_config.exists() else None]
    length = next((int(n) for n in declared if isinstance(n, (int, float)) and 8 <= n <= 1_000_000),
                  MAX_DERIVED_LENGTH)
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 0:
        offset = config.get("pad_token_id", 0) + 1 if config.get("model_type") in OFFSET_POSITIONS else 0
        length = min(length, positions - offset)
    return min(length, MAX_DERIVED_LENGTH)


def _task(config: dict, modules: list[dict] | None) -> str:
    if any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
        return "cross-encoder"
    return "sentence-embedding" if modules else "feature-extraction"


def spec_id_for(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-") or "model"


def check_model_dir(folder: Path) -> dict:
    """The folder's config.json, after checking it is a model with a tokenizer."""
    if not (folder / "config.json").is_file():
        raise SpecError(f"{folder} is not a model directory (no config.json)",
                        "pass the folder written by save_pretrained() or SentenceTransformer.save(), a spec or a "
                        "Hub repo id")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise SpecError(f"{folder} has no tokenizer (none of {', '.join(TOKENIZER_FILES)})",
                        "save the tokenizer beside the model: tokenizer.save_pretrained(folder)")
    return _read_json(folder / "config.json")


def derive_spec(folder: Path, repo_id: str, revision: str = "main") -> ModelSpec:
    """The spec the model's files imply: task, pooling, normalization, query prompt, max length, every format
    (each records why where it does not apply), the evaluation its task has."""
    from .targets import format_names

    folder = Path(folder)
    config = check_model_dir(folder)
    modules = _read_json(folder / "modules.json") if (folder / "modules.json").is_file() else None
    task = _task(config, modules)
    prompts_file = folder / "config_sentence_transformers.json"
    prompts = (_read_json(prompts_file).get("prompts") or {}) if prompts_file.is_file() else {}
    return ModelSpec(
        id=spec_id_for(repo_id.split("/")[-1]),
        source={"repo": repo_id, "revision": revision},
        task=task,
        pooling=_pooling(folder, modules) if modules else "mean",
        normalize=any(m.get("type", "").endswith(".Normalize") for m in modules or []),
        query_prefix=prompts.get("query", ""),
        max_length=_max_length(folder, config),
        formats={name: {} for name in format_names()},
        evaluation=EvaluationSpec(**EVALUATION[task]),
        derived=True,
    )


def spec_yaml(spec: ModelSpec, origin: str, local: bool) -> str:
    """The spec as a YAML file to edit and commit, with a header that says where each value came from."""
    publish = f"hubforge publish THIS_FILE --source {origin}" if local else "hubforge publish THIS_FILE"
    header = (f"# Derived by hubforge from the files of {origin}:\n"
              "#   task from config.json's architectures and modules.json; pooling and normalize from its\n"
              "#   sentence-transformers modules; query_prefix from config_sentence_transformers.json's prompts;\n"
              f"#   max_length from sentence_bert_config.json, else the tokenizer's (at most {MAX_DERIVED_LENGTH}).\n"
              "# Every format is listed with its default options (`hubforge publish --help` lists the formats);\n"
              "# evaluation runs the bundled sets the task has. Check it, commit it, then:\n"
              f"#   {publish}\n")
    return header + yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)


@dataclass(frozen=True)
class ResolvedModel:
    """What a command's MODEL argument named: the spec, and the local folder to convert instead of downloading."""

    spec: ModelSpec
    source_dir: Path | None = None


REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_model(model: str, source_dir: Path | None = None, token: str | None = None) -> ResolvedModel:
    """MODEL is a spec id, a spec file, a local model directory or a Hub repo id, in that order of lookup; a folder or
    repo without a spec gets the one its files imply. `source_dir` (--source) replaces the download."""
    path = Path(model)
    if path.is_dir():
        folder = source_dir or path
        return ResolvedModel(derive_spec(folder, f"local/{spec_id_for(path.resolve().name)}"), folder)
    if path.suffix in (".yaml", ".yml") or path.is_file() or model in available_specs():
        return ResolvedModel(load_spec(model), source_dir)
    if model.startswith((".", "/", "~")):
        raise SpecError(f"{model}: no such file or directory", "pass a model directory, a spec file or a spec id")
    if not REPO_ID.match(model):
        raise SpecError(f"no spec named {model!r}, and it is not a model directory or a Hub repo id",
                        f"known specs: {', '.join(available_specs()) or 'none'}; a repo id looks like org/name")
    if source_dir:
        return ResolvedModel(derive_spec(source_dir, model), source_dir)
    return ResolvedModel(derive_spec(download_model_files(model, token), model))


def download_model_files(repo_id: str, token: str | None = None) -> Path:
    """The repo's configs and tokenizer (no weights), enough to derive its spec."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from .hub import make_api, with_retries

    api = make_api(token)

    def head() -> str:
        try:
            return api.model_info(repo_id).sha
        except GatedRepoError as exc:
            raise SpecError(f"{repo_id} is gated on {api.endpoint}",
                            "accept its terms on the Hub, then pass a token that may read it (HF_TOKEN)") from exc
        except RepositoryNotFoundError as exc:
            raise SpecError(f"{repo_id} is neither a spec nor a model on {api.endpoint}",
                            "check the repo id (and that the token may read it); known specs: "
                            f"{', '.join(available_specs()) or 'none'}") from exc

    sha = with_retries(head, f"reading {repo_id}")  # HTTP errors other than these become one-line HubErrors there
    return Path(with_retries(lambda: snapshot_download(repo_id, revision=sha, endpoint=api.endpoint, token=api.token,
                                                       allow_patterns=MODEL_FILE_PATTERNS),
                             f"downloading {repo_id}'s configuration"))
