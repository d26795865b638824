"""Where the project's data lives: specs, templates, bundled evaluation data, the artifact cache.

The shipped specs and card templates are package data, so an installed wheel works outside a checkout; a user's
own directories come first."""

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_SPECS_DIR = PACKAGE_DIR / "specs"
BUNDLED_TEMPLATES_DIR = PACKAGE_DIR / "templates"
DATA_DIR = PACKAGE_DIR / "data"


@dataclass(frozen=True)
class SpecDir:
    path: Path
    origin: str  # what `hubforge specs list` says a spec from here came from


def spec_dirs() -> list[SpecDir]:
    """Where specs are looked up, first match wins: ./model_specs, $HUBFORGE_SPECS_DIR, the bundled ones."""
    dirs = [SpecDir(Path("model_specs"), "./model_specs")]
    if os.environ.get("HUBFORGE_SPECS_DIR"):
        dirs.append(SpecDir(Path(os.environ["HUBFORGE_SPECS_DIR"]), "$HUBFORGE_SPECS_DIR"))
    dirs.append(SpecDir(BUNDLED_SPECS_DIR, "bundled"))
    return [d for d in dirs if d.path.is_dir()]


def template_dirs() -> list[Path]:
    """Card templates: $HUBFORGE_TEMPLATES_DIR's files override the bundled ones of the same name."""
    user = os.environ.get("HUBFORGE_TEMPLATES_DIR")
    return [Path(user), BUNDLED_TEMPLATES_DIR] if user else [BUNDLED_TEMPLATES_DIR]


def template_file(relative: str) -> Path:
    return next((d / relative for d in template_dirs() if (d / relative).exists()), BUNDLED_TEMPLATES_DIR / relative)


def cache_dir() -> Path:
    """Converted artifacts are cached here, keyed by upstream sha, spec hash and tool version."""
    return Path(os.environ.get("HUBFORGE_CACHE", Path.home() / ".cache" / "hubforge"))
