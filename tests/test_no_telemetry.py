"""Nothing leaves the machine but the Hub calls, checked where nothing can bypass it: the system calls.

The real CLI runs in a subprocess under strace. No process may connect or send a datagram over AF_INET/AF_INET6
anywhere but 127.0.0.1 (or ::1) at the local Hub's port, nor look a name up (DNS on port 53, or the nscd and
systemd-resolved sockets). The Python-level `outbound_guard` cannot see native code (ONNX Runtime's telemetry
client) or the resolver; this check decides.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from conftest import WRITE_TOKEN
from hubforge.telemetry import SWITCHES

STRACE = shutil.which("strace")
# Anything set from outside that would switch telemetry off: the child must not inherit it, so a pass proves that
# hubforge turns telemetry off itself (importing hubforge here also puts its own switches into this environment).
OUTSIDE_SWITCHES = {*SWITCHES, "DISABLE_TELEMETRY", "DO_NOT_TRACK", "HF_HUB_OFFLINE", "NNCF_CI", "NNCF_DEV",
                    "PYTEST_CURRENT_TEST"}
# CI markers that openvino_telemetry and ONNX Runtime look for: the child must look like a user's machine, where a
# dependency that brings telemetry back would send it.
CI_MARKERS = {"CI", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "CIRCLECI", "TRAVIS", "JENKINS_URL",
              "CODEBUILD_BUILD_ID", "BUILDKITE", "TEAMCITY_VERSION", "APPVEYOR", "BITBUCKET_BUILD_NUMBER",
              "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI"}
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
RESOLVED_SOCKET = "/run/systemd/resolve/io.systemd.Resolve"
NSCD_SOCKETS = {"/run/nscd/socket", "/var/run/nscd/socket"}
# nscd also answers passwd/group lookups (torch asks for the user name); only these request types are host lookups:
# GETHOSTBYNAME(v6), GETHOSTBYADDR(v6), GETFDHST, GETAI (glibc nscd/nscd-client.h).
NSCD_HOST_REQUESTS = {4, 5, 6, 7, 13, 14}

CALL = re.compile(r"^(connect|sendto|sendmsg|sendmmsg)\((\d+), ")
INET = re.compile(r'sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
INET6 = re.compile(r'sa_family=AF_INET6, sin6_port=htons\((\d+)\),.*?inet_pton\(AF_INET6, "([^"]+)"')
UNIX = re.compile(r'sa_family=AF_UNIX, sun_path=@?"([^"]+)"')
PAYLOAD = re.compile(r'"((?:[^"\\]|\\.)*)"')


def require_strace() -> str:
    """In CI a missing strace is a failure (.ci/run installs it), never a silent skip."""
    if STRACE:
        return STRACE
    if os.environ.get("CI"):
        pytest.fail("strace is not installed: .ci/run installs it, and in CI this check must run")
    pytest.skip("strace is not installed (with CI set this is a failure)")


def child_env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """This environment without outside telemetry switches or CI markers, with a fresh home (no consent file or
    device id from an earlier run) and a fresh hubforge cache (so every converter really runs)."""
    env = {k: v for k, v in os.environ.items() if k not in OUTSIDE_SWITCHES | CI_MARKERS}
    (tmp_path / "home").mkdir()
    env.update(HOME=str(tmp_path / "home"), HUBFORGE_CACHE=str(tmp_path / "cache"), HF_ENDPOINT=endpoint, **extra)
    return env


def run_traced(strace: str, args: list[str], env: dict[str, str], trace_dir: Path) -> None:
    """`python -m hubforge ARGS` under strace; one trace file per process (-ff keeps each call on one line)."""
    trace_dir.mkdir()
    cmd = [strace, "-f", "-ff", "--seccomp-bpf", "-qq", "-s", "512", "-e", "signal=none",
           "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(trace_dir / "trace"),
           sys.executable, "-m", "hubforge", *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


def payload(line: str) -> bytes:
    """The first data buffer strace printed on the line, as bytes (strace writes C escapes)."""
    found = PAYLOAD.search(line)
    return codecs.escape_decode(found.group(1).encode())[0] if found else b""


def dns_name(query: bytes) -> str:
    """The name a DNS query asks for: length-prefixed labels after the 12-byte header."""
    labels, i = [], 12
    while i < len(query) and 0 < query[i] < 64:
        labels.append(query[i + 1:i + 1 + query[i]].decode(errors="replace"))
        i += 1 + query[i]
    return ".".join(labels)


def lookup(call: str, line: str, inet: list[tuple[str, int]], socket_path: str) -> str | None:
    """The name this call looks up ("" when it does not carry it), or None when it looks nothing up. Lookups: DNS
    (port 53), an nscd host request, anything sent to systemd-resolved."""
    if socket_path == RESOLVED_SOCKET:
        return ""
    data = b"" if call == "connect" else payload(line)
    if any(port == 53 for _, port in inet):
        return dns_name(data)
    if socket_path in NSCD_SOCKETS and int.from_bytes(data[4:8], "little") in NSCD_HOST_REQUESTS:
        return data[12:12 + int.from_bytes(data[8:12], "little")].rstrip(b"\0").decode(errors="replace")
    return None


def outbound(trace_dir: Path, hub_port: int | None) -> tuple[list[str], set[str]]:
    """(the trace lines that reach past 127.0.0.1:hub_port or look a name up, the names looked up).
    A send on a connected socket goes to the peer of that socket's last connect in the same process."""
    offending, names = [], set()
    for path in sorted(trace_dir.iterdir()):
        peers: dict[str, tuple[list[tuple[str, int]], str]] = {}
        for line in path.read_text(errors="replace").splitlines():
            call = CALL.match(line)
            if not call:
                continue
            name, fd = call.groups()
            unix = UNIX.search(line)
            peer = ([(ip, int(port)) for port, ip in INET.findall(line) + INET6.findall(line)],
                    unix.group(1) if unix else "")
            if name == "connect":
                peers[fd] = peer
            elif peer == ([], ""):
                peer = peers.get(fd, peer)
            inet, socket_path = peer
            asked = lookup(name, line, inet, socket_path)
            if asked is not None or any(ip not in LOOPBACK or port != hub_port for ip, port in inet):
                offending.append(f"{path.name}: {line}")
                names.update(filter(None, [asked]))
    return offending, names


def assert_nothing_outbound(trace_dir: Path, hub_port: int | None) -> None:
    offending, names = outbound(trace_dir, hub_port)
    shown = "\n".join(offending[:40]) + (f"\n... and {len(offending) - 40} more" if len(offending) > 40 else "")
    assert not offending, (f"{len(offending)} calls reach past 127.0.0.1:{hub_port} or look a name up; "
                           f"names looked up: {sorted(names) or 'none'}\n{shown}")


# one format per converter and runtime hubforge calls natively: PyTorch's exporter and ONNX Runtime (onnx), its
# dynamic and static quantizers (int8, qnn), its MatMulNBits quantizer (q4), OpenVINO with NNCF (ov-int8, ov-int4),
# MNN's converter and runtime (mnn), llama.cpp's quantizer and runtime (gguf-q8); their repos bring every client
TRACED_FORMATS = "onnx,int8,q4,qnn,ov-int8,ov-int4,mnn,gguf-q8"


def test_offline_dry_run_of_every_tool_sends_nothing(tmp_path):
    """An offline dry run needs no network at all: not even the Hub, so no port is allowed. Every converter and
    runtime runs (fresh cache) for minutes, long enough for delayed telemetry uploads."""
    strace = require_strace()
    from hubforge.devhub.seed import bundled_minilm
    from hubforge.evaluation.consumers import CLIENTS

    env = child_env(tmp_path, "http://127.0.0.1:9")  # the discard port: nothing listens there
    run_traced(strace, ["publish", "all-minilm-l6-v2", "--source", str(bundled_minilm()), "--dry-run",
                        "--formats", TRACED_FORMATS, "--no-quality", "--no-speed",
                        "--out", str(tmp_path / "out")], env, tmp_path / "strace")
    assert_nothing_outbound(tmp_path / "strace", hub_port=None)
    # the consumer check ran every client under the trace: node (transformers.js), the second venv, fastembed
    results = json.loads((tmp_path / "out" / "all-minilm-l6-v2.results.json").read_text())
    measured = {c["client"] for v in results["variants"] for c in v["consumers"] if c["status"] == "pass"}
    assert measured == set(CLIENTS), set(CLIENTS) - measured


def test_publish_to_the_local_hub_talks_only_to_its_port(devhub, api, upstream_minilm, tmp_path):
    """A real push (its own repos, so other tests' repos are untouched) reaches the local Hub and nothing else.
    ONNX and OpenVINO, the two runtimes that shipped telemetry, both run and push."""
    strace = require_strace()
    from hubforge.spec import spec_path

    spec = yaml.safe_load(spec_path("all-minilm-l6-v2").read_text())
    spec.update(id="no-telemetry-minilm", formats={"onnx": {}, "ov": {}})
    spec_file = tmp_path / "no-telemetry-minilm.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    env = child_env(tmp_path, devhub.url, HF_TOKEN=WRITE_TOKEN)
    run_traced(strace, ["publish", str(spec_file), "--no-quality", "--no-speed", "--no-consumers", "--out",
                        str(tmp_path / "out")],
               env, tmp_path / "strace")
    org = spec["publish"]["org"]
    assert api.file_exists(f"{org}/no-telemetry-minilm-onnx", "onnx/model.onnx")
    assert api.file_exists(f"{org}/no-telemetry-minilm-openvino", "openvino/openvino_model.xml")
    assert_nothing_outbound(tmp_path / "strace", hub_port=urlparse(devhub.url).port)
