"""Stage 4 — targets: the one fp32 export, and the build of one candidate configuration of one format.

Built files are cached under (upstream sha, spec hash, hubforge version, format, configuration), so a re-run
converts nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import __version__
from .source import SourceModel
from .spec import ModelSpec
from .targets.base import BuildInputs, CandidateConfig, Target, TargetOptions


def cache_key(spec: ModelSpec, source: SourceModel) -> str:
    return f"{source.sha[:12]}-{spec.digest()}-hubforge{__version__}"


def build_candidate(target: Target, inputs: BuildInputs, options: TargetOptions, *, config: CandidateConfig,
                    cache_root: Path) -> dict[str, Path]:
    """The candidate's files, from the cache when this exact build was done before."""
    folder = config.label().replace("=", "-").replace(",", "_")
    out_dir = cache_root / cache_key(inputs.spec, inputs.source) / target.name / folder
    manifest = out_dir / "built.json"
    if manifest.exists():
        files = {repo_path: out_dir / name for repo_path, name in json.loads(manifest.read_text()).items()}
        if all(p.exists() for p in files.values()):
            return files
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    files = target.build(inputs, options, config, out_dir=out_dir)
    manifest.write_text(json.dumps({k: v.name for k, v in files.items()}))
    return files
