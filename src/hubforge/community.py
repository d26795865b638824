"""Measurements contributed by consumers (`hubforge verify --contribute`): one JSON record per machine under
`measurements/` in the published repo, merged by the repo's owner, rendered on the card apart from the publisher's
own rows. Records are untrusted input: only known fields are read, numbers as numbers, text without table markup."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError

from .evaluation.hardware import Hardware

MEASUREMENTS_DIR = "measurements"


def machine_id(hardware: Hardware) -> str:
    """The record's file name: the same machine re-measuring replaces its own record, whatever versions it runs."""
    identity = {k: v for k, v in hardware.as_dict().items() if k != "versions"}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def record_path(hardware: Hardware) -> str:
    return f"{MEASUREMENTS_DIR}/{machine_id(hardware)}.json"


def is_record(path: str) -> bool:
    return path.startswith(f"{MEASUREMENTS_DIR}/") and path.endswith(".json")


def _text(value, limit: int = 80) -> str:
    return " ".join(str(value or "").replace("|", "/").split())[:limit]


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def card_rows(record: dict) -> list[dict]:
    """One card row per variant of a record, with every field sanitised for a Markdown table."""
    hardware = record.get("hardware") or {}
    machine = _text(hardware.get("cpu"))
    if hardware.get("gpu"):
        machine += f" + {_text(hardware.get('gpu'))}"
    rows = []
    for variant in record.get("variants") or []:
        fidelity = variant.get("fidelity") or {}
        cosine = _number(fidelity.get("mean_cosine"))
        spearman = _number(fidelity.get("spearman"))
        rows.append({
            "machine": machine or "unknown", "os": _text(hardware.get("os")),
            "variant": _text(variant.get("name")),
            "runtime": _text(f"{variant.get('runtime', '')} {variant.get('runtime_version', '')}"),
            "provider": _text(variant.get("provider")),
            "p50_ms": _number(variant.get("latency_p50_ms")), "seq_s": _number(variant.get("sequences_per_s")),
            "memory_mb": _number(variant.get("memory_mb")),
            "fidelity": (f"cos {cosine:.4f}" if cosine is not None else
                         f"spearman {spearman:.4f}" if spearman is not None else "—"),
            "tasks": ", ".join(f"{_text(t.get('task'), 60)} {t['main_score']:.4f}"
                               for t in variant.get("tasks") or [] if _number(t.get("main_score")) is not None),
            "revision": _text(record.get("revision"), 12),
        })
    return rows


def read_records(api: HfApi, repo_id: str) -> list[dict]:
    """Every merged record on the repo's main branch; none for a repo not yet published."""
    try:
        paths = [p for p in api.list_repo_files(repo_id) if is_record(p)]
    except RepositoryNotFoundError:
        return []
    records = []
    for path in sorted(paths):
        local = hf_hub_download(repo_id, path, endpoint=api.endpoint, token=api.token)
        try:
            record = json.loads(Path(local).read_text(encoding="utf-8"))
        except ValueError:
            continue  # a record that cannot be read is left out of the card, not a reason to stop publishing
        if isinstance(record, dict):
            records.append(record)
    return records
