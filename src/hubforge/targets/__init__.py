"""The registry of target formats, built lazily: every module of this package is imported on first use and each
`Target` subclass with a `name` registers itself, so a new format is one new file (plus its usage template)."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from ..errors import FormatError, SpecError
from ..spec import ModelSpec


@cache
def _import_target_modules() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def registry() -> dict:
    """{format name: Target class}, in the order formats are built and listed."""
    from .base import REGISTERED

    _import_target_modules()
    return dict(sorted(REGISTERED.items(), key=lambda item: (item[1].order, item[0])))


def format_names() -> list[str]:
    return list(registry())


def get_target(name: str):
    targets = registry()
    if name not in targets:
        raise FormatError(f"unknown format {name!r}", f"valid formats: {', '.join(targets)}")
    return targets[name]()


def parse_formats(text: str) -> list[str]:
    """'qnn,amd,ov' -> validated names; an unknown name is an error listing the valid ones."""
    valid = format_names()
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise FormatError("no format given", f"valid formats: {', '.join(valid)}")
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise FormatError(f"unknown format(s): {', '.join(unknown)}", f"valid formats: {', '.join(valid)}")
    return list(dict.fromkeys(names))


def check_spec_formats(spec: ModelSpec, spec_name: str) -> None:
    """The spec's `formats:` names and options, checked against each target's options model."""
    from pydantic import ValidationError

    targets = registry()
    for name, options in spec.formats.items():
        if name not in targets:
            raise SpecError(f"{spec_name}: formats.{name}: unknown format",
                            f"valid formats: {', '.join(targets)}")
        try:
            targets[name].options_model.model_validate(options)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise SpecError(f"{spec_name}: formats.{name}: {problems}",
                            "fix the named option(s); see the format's options in `hubforge publish --help`") from exc
