"""A re-run converts nothing: artifacts are cached by (upstream sha, spec hash, hubforge version)."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import all_formats, minilm_test_spec


def snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_rerun_reuses_every_converted_artifact(published_minilm, api, upstream_minilm, session_dir):
    from hubforge.pipeline import EvalOptions, run
    from hubforge.source import fetch_source
    from hubforge.spec import load_spec

    cache = Path(os.environ["HUBFORGE_CACHE"])
    before = snapshot(cache)
    assert any(p.endswith("built.json") for p in before)
    spec = load_spec(str(minilm_test_spec(session_dir / "specs")))
    source = fetch_source(spec, api)
    result = run(spec, source, all_formats().split(","), options=EvalOptions(quality=False, speed=False,
                                                                             consumers=False))
    assert all(v.passed for v in result.variants)
    after = snapshot(cache)
    assert after == before, sorted(set(after.items()) ^ set(before.items()))[:5]
    key = f"{source.sha[:12]}-{spec.digest()}"
    exports = [p for p in after if key in p and p.endswith(os.path.join("export", "model.onnx"))]
    assert len(exports) == 1, "all formats must start from one fp32 export"
