"""Where the project's data lives: specs, templates, bundled evaluation data, the artifact cache."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent.parent
SPECS_DIR = Path(os.environ.get("HUBFORGE_SPECS_DIR", PROJECT_ROOT / "model_specs"))
TEMPLATES_DIR = PROJECT_ROOT / "templates"
DATA_DIR = PACKAGE_DIR / "data"


def cache_dir() -> Path:
    """Converted artifacts are cached here, keyed by upstream sha, spec hash and tool version."""
    return Path(os.environ.get("HUBFORGE_CACHE", Path.home() / ".cache" / "hubforge"))
