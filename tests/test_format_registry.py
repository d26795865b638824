"""One format = one file: formats registered from a test module (no edit anywhere else) appear in the CLI's help,
the demo's default, the card and the published repo; a format whose build raises, or whose worker process is
killed, is recorded as a failed attempt while every other format is published, and the exit status says so. Also:
import hygiene and huggingface_hub's Retry-After handling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import invoke

@pytest.fixture()
def throwaway_formats():
    """Three formats defined in tests/throwaway_formats.py: a copy of the fp32 graph, one whose build raises, one
    whose build kills its worker process."""
    import importlib

    from hubforge.targets import base, registry

    module = importlib.import_module("throwaway_formats")
    assert set(module.NAMES) <= set(registry())
    yield
    for name in module.NAMES:
        del base.REGISTERED[name]
    sys.modules.pop("throwaway_formats")


def test_a_format_defined_in_a_test_appears_everywhere(throwaway_formats, tmp_path):
    from hubforge.cli import cli
    from hubforge.devhub.seed import bundled_minilm

    import click

    help_text = " ".join(invoke("publish", "--help").output.split()).replace("- ", "-")  # click wraps at hyphens
    assert "copy-onnx: a test-only copy of the fp32 graph" in help_text
    demo = cli.commands["demo"]
    demo_formats = next(p for p in demo.params if p.name == "formats")
    assert "copy-onnx" in demo_formats.get_default(click.Context(demo), call=True).split(",")

    result = invoke("-v", "publish", "all-minilm-l6-v2", "--source", str(bundled_minilm()), "--formats",
                    "onnx,copy-onnx,broken,killed,orphan-data", "--dry-run", "--out", str(tmp_path), "--no-quality",
                    "--no-speed")
    assert result.exit_code == 3, result.output
    results = json.loads((tmp_path / "all-minilm-l6-v2.results.json").read_text())
    variants = {v["name"]: v for v in results["variants"]}
    assert variants["onnx"]["passed"] and variants["copy-onnx"]["passed"]
    assert not variants["broken"]["passed"]
    assert variants["broken"]["attempts"][0]["error"] == "RuntimeError: simulated converter crash"
    assert "not published: broken: failed: RuntimeError: simulated converter crash" in result.output
    # the attempt's whole traceback is in the run's log, and the CLI's line says where
    log = tmp_path / "all-minilm-l6-v2.log"
    assert f"(traceback in {log})" in " ".join(result.output.split())
    failed = log.read_text().split("--- broken: default failed:\n", 1)[1]
    assert failed.startswith("Traceback (most recent call last):")
    assert 'in build\n    raise RuntimeError("simulated converter crash' in failed
    assert "RuntimeError: simulated converter crash\nsecond line that results.json leaves out" in failed
    assert "UserWarning: simulated converter advice" in log.read_text()  # a worker's warnings go to the log
    assert "--- broken: default failed:" in result.output and "second line that results.json" in result.output  # -v
    killed = variants["killed"]
    assert not killed["passed"] and killed["attempts"][0]["error"].startswith(
        "WorkerCrash: the worker for build killed died of SIGKILL"), killed
    assert "not published: killed: failed: WorkerCrash" in result.output
    orphan = variants["orphan-data"]
    assert orphan["attempts"][0]["passed"] and not orphan["passed"], orphan  # its gate passed where it was built
    assert orphan["gate"].startswith("fails in onnxruntime (onnx/model_orphan.onnx): ") and \
        "model_orphan.onnx_data" in orphan["gate"], orphan["gate"]
    assert not (tmp_path / "hubforge" / "all-minilm-l6-v2-orphan").exists()
    copy_checks = variants["copy-onnx"]["consumers"]
    assert [(c["client"], c["status"]) for c in copy_checks] == [("onnxruntime", "pass")]
    assert copy_checks[0]["value"] > 0.9999 and copy_checks[0]["agreement"] > 0.9999
    steps = {step["stage"]: step for step in results["stages"]}
    assert {"reference", "export", "build onnx", "build copy-onnx", "build broken", "build killed",
            "consumers"} <= set(steps)
    assert all(step["process"] == "worker" and step["seconds"] > 0 and step["peak_rss_mb"] > 0
               for name, step in steps.items() if name != "build killed")

    repo = tmp_path / "hubforge" / "all-minilm-l6-v2-copy"
    assert (repo / "onnx" / "model_copy.onnx").exists()
    card = (repo / "README.md").read_text()
    assert "### Throwaway test format (`onnx/model_copy.onnx`)" in card
    assert "A copy of the fp32 graph of hubforge/all-minilm-l6-v2-copy" in card
    assert "test-format" in card.split("---")[1]
    assert "**broken**: failed: RuntimeError: simulated converter crash" in card
    assert not (tmp_path / "hubforge" / "all-minilm-l6-v2-broken").exists()


def test_exit_status_is_documented():
    text = " ".join(invoke("publish", "--help").output.split())
    assert "0 every requested format was published" in text
    assert "3 the run finished, but some format was not published" in text
    assert "1 error before publishing" in text


def test_importing_the_spec_loads_no_runtime_and_no_cycle():
    code = ("import sys, hubforge.spec; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'openvino', 'nncf', 'torch') "
            "or m.startswith('hubforge.targets')]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_listing_specs_imports_no_quantization_tools():
    code = ("import sys; from click.testing import CliRunner; from hubforge.cli import cli; "
            "r = CliRunner().invoke(cli, ['specs', 'list']); assert r.exit_code == 0, r.output; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('onnxruntime', 'openvino', 'nncf')]; "
            "print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_retry_after_as_seconds_or_http_date():
    from email.utils import format_datetime
    from datetime import datetime, timedelta, timezone

    from hubforge.hub import retry_after_seconds

    assert retry_after_seconds("3") == 3.0
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=5), usegmt=True)
    assert 3.0 < retry_after_seconds(when) <= 5.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


@pytest.mark.parametrize("status", [503, 408])
def test_hub_answers_with_retry_after_date_are_retried(devhub, api, status):
    """A 503 (or 408) from the local Hub whose Retry-After is an HTTP date is waited out and retried."""
    from email.utils import format_datetime
    from datetime import datetime, timedelta, timezone

    from conftest import ADMIN_TOKEN
    from hubforge.hub import with_retries

    import requests

    date = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=1), usegmt=True)
    fault = {"count": 1, "status": status, "retry_after": date, "path_contains": "/api/whoami-v2"}
    response = requests.post(f"{devhub.url}/devhub/faults", json=fault,
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200, response.text
    waits = []
    name = with_retries(lambda: api.whoami()["name"], "checking the token", budget_s=30, sleep=waits.append)
    assert name == "hubforge" and len(waits) == 1 and 0 <= waits[0] <= 1.0
