"""The machine a figure was measured on: no latency is shown without it."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

from ..runtimes import RUNTIME_PACKAGES

INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimddp")
# the runtimes' packages and the converters' whose versions a measurement depends on
VERSIONED_PACKAGES = (*RUNTIME_PACKAGES.values(), "transformers", "sentence-transformers", "nncf")


@dataclass(frozen=True)
class Hardware:
    cpu: str
    cores: int
    flags: tuple[str, ...]
    gpu: str | None
    os: str
    versions: dict[str, str]

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        flags = ", ".join(self.flags) or "no SIMD extensions detected"
        return f"{self.cpu}, {self.cores} cores ({flags}); GPU: {self.gpu or 'none'}"


def _cpuinfo() -> tuple[str, set[str]]:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name in ("", platform.machine(), platform.processor()):
                    name = value.strip()
                elif key.strip() in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, flags


def _gpu() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return None


@lru_cache(maxsize=1)
def fingerprint() -> Hardware:
    cpu, flags = _cpuinfo()
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return Hardware(cpu, len(os.sched_getaffinity(0)), tuple(f for f in INTERESTING_FLAGS if f in flags),
                    _gpu(), f"{platform.system()} {platform.release()}", versions)
