"""The GitHub workflows validate against the GitHub workflow schema and do what the scheduler needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"


def test_workflows_match_the_schema():
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert {Path(f).name for f in files} == {"ci.yml", "newest.yml", "republish.yml"}
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_workflow_is_caught(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps: 3\n")
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(broken)], capture_output=True, text=True)
    assert done.returncode != 0


def test_republish_is_scheduled_over_a_spec_matrix():
    flow = yaml.safe_load((WORKFLOWS / "republish.yml").read_text())
    triggers = flow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    job = flow["jobs"]["republish"]
    assert "matrix" in job["strategy"] and job["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    steps = " ".join(str(step) for step in job["steps"])
    assert "actions/cache" in steps and "upload-artifact" in steps and "--if-changed" in steps
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    assert "bash .ci/run" in str(ci["jobs"]["test"]["steps"])


def test_newest_releases_run_weekly_without_the_constraints():
    flow = yaml.safe_load((WORKFLOWS / "newest.yml").read_text())
    assert "schedule" in flow[True]
    job = flow["jobs"]["test"]
    assert job["env"]["CONSTRAINTS"] == "" and "bash .ci/run" in str(job["steps"])
    makefile = (WORKFLOWS.parents[1] / "Makefile").read_text()
    assert "CONSTRAINTS ?= constraints.txt" in makefile and "$(if $(CONSTRAINTS),-c $(CONSTRAINTS))" in makefile
