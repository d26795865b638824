"""The checks the Hub applies to a repo card's YAML header, at commit time and in `/api/validate-yaml`."""

from __future__ import annotations

import yaml


def _front_matter(readme: str) -> str | None:
    if not readme.startswith("---"):
        return None
    end = readme.find("\n---", 3)
    return readme[3:end] if end >= 0 else ""


def parse_card_data(readme: bytes) -> dict | None:
    """The card's metadata, or None when it has none; never raises, so a stored card cannot break reads."""
    header = _front_matter(readme.decode("utf-8", errors="replace"))
    if not header:
        return None
    try:
        data = yaml.safe_load(header)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def card_metadata_errors(readme: str, model_card: bool = True) -> list[str]:
    """Why the Hub would refuse this card; the field checks apply to model cards only."""
    if not readme.startswith("---"):
        return []
    if readme.find("\n---", 3) < 0:
        return ["metadata block is not closed by a '---' line"]
    try:
        data = yaml.safe_load(_front_matter(readme))
    except yaml.YAMLError as exc:
        return [f"metadata is not valid YAML: {exc}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["metadata must be a mapping"]
    return _model_card_errors(data) if model_card else []


def _model_card_errors(data: dict) -> list[str]:
    errors = []
    for key in ("license", "library_name", "pipeline_tag", "base_model_relation"):
        if key in data and not isinstance(data[key], str):
            errors.append(f'"{key}" must be a string')
    if "base_model" in data and not isinstance(data["base_model"], (str, list)):
        errors.append('"base_model" must be a string or a list of strings')
    if data.get("base_model_relation") not in (None, "adapter", "merge", "quantized", "finetune"):
        errors.append('"base_model_relation" must be one of adapter, merge, quantized, finetune')
    if "tags" in data and not (isinstance(data["tags"], list) and all(isinstance(t, str) for t in data["tags"])):
        errors.append('"tags" must be a list of strings')
    model_index = data.get("model-index") or []
    if not isinstance(model_index, list):
        return [*errors, '"model-index" must be a list']
    for i, model in enumerate(model_index):
        if not isinstance(model, dict) or "name" not in model or not isinstance(model.get("results"), list):
            errors.append(f'"model-index[{i}]" must have a name and a results list')
            continue
        for j, result in enumerate(model["results"]):
            if not isinstance(result, dict):
                errors.append(f'"model-index[{i}].results[{j}]" must be a mapping')
                continue
            task, dataset, metrics = result.get("task"), result.get("dataset"), result.get("metrics")
            if not (isinstance(task, dict) and "type" in task):
                errors.append(f'"model-index[{i}].results[{j}].task.type" is required')
            if not (isinstance(dataset, dict) and "type" in dataset and "name" in dataset):
                errors.append(f'"model-index[{i}].results[{j}].dataset" needs type and name')
            if not (isinstance(metrics, list) and all(isinstance(m, dict) and "type" in m and "value" in m
                                                      for m in metrics)):
                errors.append(f'"model-index[{i}].results[{j}].metrics" must be a list of {{type, value}}')
    return errors
