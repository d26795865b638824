"""hubforge: verified deployment artifacts for Hugging Face encoder models."""

from . import telemetry  # noqa: F401  first: dependencies' telemetry off before any of them loads

__version__ = "0.3.2"


def publish(spec, **options):
    """Publish a model from Python exactly as `hubforge publish` does: `spec` is a spec id, a spec file path, a
    model directory, a Hub repo id or a `ModelSpec`; options are `pipeline.publish`'s (formats, source_dir, dry_run,
    out_dir, token, ...)."""
    from .derive import resolve_model
    from .pipeline import publish as run_publish
    from .spec import ModelSpec
    from .targets import check_spec_formats

    if not isinstance(spec, ModelSpec):
        resolved = resolve_model(str(spec), options.get("source_dir"), options.get("token"))
        check_spec_formats(resolved.spec, str(spec))
        spec, options = resolved.spec, {**options, "source_dir": resolved.source_dir}
    return run_publish(spec, **options)
