"""hubforge: verified deployment artifacts for Hugging Face encoder models."""

from . import telemetry  # noqa: F401  first: dependencies' telemetry off before any of them loads

__version__ = "0.3.2"


def publish(spec, **options):
    """Publish a model from Python exactly as `hubforge publish` does: `spec` is a spec id, a spec file path or a
    `ModelSpec`; options are `pipeline.publish`'s (formats, source_dir, dry_run, out_dir, token, ...)."""
    from .pipeline import publish as run_publish
    from .spec import ModelSpec, load_spec
    from .targets import check_spec_formats

    if not isinstance(spec, ModelSpec):
        name, spec = str(spec), load_spec(str(spec))
        check_spec_formats(spec, name)
    return run_publish(spec, **options)
