"""Every dependency's telemetry off before it can fire: a publish talks to nobody but the configured Hub.

Imported first by `hubforge/__init__.py`, so the CLI, the Python API, the local Hub and the benchmarks all pass
through it before any of these libraries loads (they read their switches once, at import or when their native
library loads). Environment switches are set with `setdefault`: a user's explicit setting wins. Libraries with no
telemetry of their own are not listed (torch, transformers' own code, scikit-learn, matplotlib, mteb without
codecarbon, MNN's converter); tests/test_no_telemetry.py checks the whole set at the system-call level.
"""

from __future__ import annotations

import os
import sys

SWITCHES = {
    # huggingface_hub: no usage reports to the Hub; transformers, sentence-transformers, datasets, hf_xet read it too.
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # ONNX Runtime: its native 1DS client posts to mobile.events.data.microsoft.com seconds after the first session
    # and keeps a device id under ~/.cache/Microsoft. The native library reads this when it loads; calling
    # onnxruntime.disable_telemetry_events() after the import does not stop the upload (checked with strace, 1.32).
    "ORT_DISABLE_TELEMETRY": "1",
}
for _name, _value in SWITCHES.items():
    os.environ.setdefault(_name, _value)


def _block_openvino_telemetry() -> None:
    """OpenVINO's converter (ovc, which optimum-intel calls) and NNCF send usage to www.google-analytics.com through
    `openvino_telemetry`, which has no environment switch, only a consent file: absent means "send". Both fall back
    to a no-op stub when that package cannot be imported, so it is made unimportable in this process, unless the
    user opted in with OpenVINO's own `opt_in_out --opt_in` (which writes "1" to the consent file)."""
    try:
        with open(os.path.join(os.path.expanduser("~"), "intel", "openvino_telemetry")) as consent:
            if consent.read().strip() == "1":
                return
    except OSError:
        pass
    sys.modules.setdefault("openvino_telemetry", None)


_block_openvino_telemetry()
