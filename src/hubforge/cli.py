"""The `hubforge` command line: publish, evaluate, card, specs, devhub, demo."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import HubforgeError

console = Console(stderr=True, soft_wrap=True)
out = Console(width=None if sys.stdout.isatty() else 200)


def _format_list(ctx, param, value):
    if value is None:
        return None
    from .targets import parse_formats

    try:
        return parse_formats(value)
    except HubforgeError as exc:
        raise click.BadParameter(str(exc)) from exc


def _quiet_libraries() -> None:
    """Converters log advice meant for their own developers; hubforge reports what matters itself."""
    import logging
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in ("transformers", "optimum", "nncf", "onnxruntime", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _run(model: str, formats: list[str] | None, source_dir: Path | None, quality: bool, speed: bool,
         token: str | None = None):
    """Spec → source → reference → targets → evaluation → gate, with progress on the console."""
    from .hub import make_api
    from .pipeline import EvalOptions, run
    from .source import fetch_source, local_source
    from .spec import load_spec

    _quiet_libraries()
    spec = load_spec(model)
    formats = formats or list(spec.formats)
    api = make_api(token)
    with console.status(f"[bold]{spec.id}[/]: resolving source") as status:
        source = local_source(spec, source_dir) if source_dir else fetch_source(spec, api)
        console.print(f"source {source.repo_id} @ {source.sha[:12]} ({source.path})")

        def report(message: str) -> None:
            status.update(f"[bold]{spec.id}[/]: {message}")
            if "→" in message or message.startswith("export"):
                console.print(message)

        result = run(spec, source, formats, EvalOptions(quality=quality, speed=speed), report=report)
    return api, result


def results_table(result) -> Table:
    quality_keys = [k for k in ("recall@1", "recall@10", "mrr@10", "ndcg@10", "accuracy", "rerank_mrr@10",
                                "sts_spearman")
                    if k in result.reference.quality]
    table = Table(title=f"{result.spec.id} @ {result.source.sha[:12]} — {result.hardware.cpu}")
    for column in ["variant", "gate", "fidelity", *quality_keys, "retention", "p50 ms", "p90 ms", "seq/s", "size MB"]:
        table.add_column(column, justify="left" if column in ("variant", "gate", "fidelity") else "right")
    for v in [result.reference, *result.variants]:
        speed = v.speed
        table.add_row(
            v.name,
            "[green]pass[/]" if v.passed and v.fidelity else ("[red]" + v.gate + "[/]" if not v.passed else "—"),
            v.fidelity.summary() if v.fidelity else "—",
            *[f"{v.quality[k]:.4f}" if k in v.quality else "—" for k in quality_keys],
            f"{min(v.retention.values()):.3f}" if v.retention else ("1.000" if v is result.reference else "—"),
            f"{speed.p50_ms:.2f}" if speed else "—",
            f"{speed.p90_ms:.2f}" if speed else "—",
            f"{speed.sequences_per_s:.1f}" if speed else "—",
            f"{v.size_bytes / 1e6:.1f}",
        )
    return table


def _write_results(result, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.as_dict(), indent=2))
    console.print(f"results written to {path}")


class HubforgeFailure(click.ClickException):
    """A HubforgeError shown as `error: ...` plus its hint, exit code 1."""

    def __init__(self, error: HubforgeError):
        super().__init__(error.message)
        self.error = error

    def show(self, file=None) -> None:
        console.print(f"[red]error:[/] {self.error.message}", highlight=False)
        if self.error.hint:
            console.print(f"  [bold]hint:[/] {self.error.hint}", highlight=False)


class HubforgeGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HubforgeError as exc:
            raise HubforgeFailure(exc) from exc


@click.group(cls=HubforgeGroup)
@click.version_option(__version__, prog_name="hubforge")
def cli():
    """Turn Hugging Face encoder models into verified deployment artifacts on the Hub."""


FORMATS_HELP = "Comma-separated formats (onnx,fp16,int8,qnn,amd,ov,ov-int8,mnn); default: the spec's formats."


@cli.command()
@click.argument("model")
@click.option("--formats", callback=_format_list, help=FORMATS_HELP)
@click.option("--source", "source_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Publish a local model directory instead of the upstream repo.")
@click.option("--dry-run", is_flag=True, help="Write the repo folders locally and push nothing.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("out"), show_default=True,
              help="Where --dry-run writes the repos and results.json goes.")
@click.option("--token", envvar="HF_TOKEN", help="Hub token with the write role (default: $HF_TOKEN).")
@click.option("--create-pr", is_flag=True, help="Open a pull request instead of committing to main.")
@click.option("--no-quality", is_flag=True, help="Skip task-quality evaluation (fidelity is always measured).")
@click.option("--no-speed", is_flag=True, help="Skip latency and throughput measurement.")
@click.option("--if-changed", is_flag=True,
              help="Only publish when upstream, the spec or hubforge changed since the last publish.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON on stdout instead of a table.")
def publish(model, formats, source_dir, dry_run, out_dir, token, create_pr, no_quality, no_speed, if_changed,
            as_json):
    """Convert MODEL (a spec id or spec file) to every format, gate, card and push to the Hub."""
    from .card import render_cards
    from .hub import make_api
    from .plot import PLOT_FILE, render_variant_plot
    from .publish import check_write_access, plan_repos, push_repo, write_local

    if not dry_run:
        check_write_access(make_api(token))
    if if_changed:
        from .spec import load_spec
        from .updates import check_spec

        spec = load_spec(model)
        stale = [s for s in check_spec(make_api(token), spec, formats or list(spec.formats)) if s.stale]
        if not stale:
            console.print(f"{spec.id}: every repo is up to date; nothing to publish")
            return
        for status in stale:
            console.print(f"{status.repo_id}: {status.reason}")
    api, result = _run(model, formats, source_dir, not no_quality, not no_speed, token)
    plot = render_variant_plot(result, out_dir / f"{result.spec.id}.{PLOT_FILE}")
    plans = plan_repos(result, render_cards(result, plot=plot is not None), plot)
    _write_results(result, out_dir / f"{result.spec.id}.results.json")
    if dry_run:
        for folder in write_local(plans, out_dir):
            console.print(f"dry run: wrote {folder}")
    else:
        for plan in plans:
            pushed = push_repo(api, plan, create_pr=create_pr)
            state = "pull request " + pushed.pr_url if pushed.pr_url else ("committed" if pushed.changed else
                                                                            "unchanged")
            console.print(f"published {pushed.url} ({state})")
    _show(result, as_json)
    rejected = [v.name for v in result.variants if not v.passed]
    if rejected:
        console.print(f"[yellow]not published (missed the gate): {', '.join(rejected)}[/]")


def _show(result, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        out.print(results_table(result))


@cli.command()
@click.argument("model")
@click.option("--formats", callback=_format_list, help=FORMATS_HELP)
@click.option("--source", "source_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--results", "results_path", type=click.Path(path_type=Path), default=Path("results.json"),
              show_default=True)
@click.option("--token", envvar="HF_TOKEN")
@click.option("--no-speed", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def evaluate(model, formats, source_dir, results_path, token, no_speed, as_json):
    """Build and measure every artifact of MODEL against the fp32 reference; publish nothing."""
    _, result = _run(model, formats, source_dir, True, not no_speed, token)
    _write_results(result, results_path)
    _show(result, as_json)


@cli.command("check-updates")
@click.argument("models", nargs=-1)
@click.option("--token", envvar="HF_TOKEN")
@click.option("--json", "as_json", is_flag=True)
def check_updates(models, token, as_json):
    """List published repos that are stale (all specs by default); exits 1 if an upstream can't be read."""
    from .hub import make_api
    from .spec import available_specs, load_spec
    from .updates import check_spec

    api = make_api(token)
    statuses, failures = [], []
    for name in models or available_specs():
        spec = load_spec(name)
        try:
            statuses.extend((spec.id, s) for s in check_spec(api, spec, list(spec.formats)))
        except HubforgeError as exc:
            failures.append((spec.id, exc))
    for model_id, exc in failures:
        console.print(f"[red]{model_id}:[/] {exc.message}")
    if as_json:
        out.print_json(json.dumps([{"model": m, **s.as_dict()} for m, s in statuses]))
        sys.exit(1 if failures else 0)
    table = Table(title="published repos vs upstream")
    for column in ("model", "repo", "upstream head", "published from", "status"):
        table.add_column(column)
    for model_id, s in statuses:
        table.add_row(model_id, s.repo_id, s.upstream_head[:12], (s.published_upstream or "—")[:12],
                      f"[yellow]stale: {s.reason}[/]" if s.stale else "[green]up to date[/]")
    out.print(table)
    sys.exit(1 if failures else 0)


@cli.command()
@click.argument("model")
@click.option("--formats", callback=_format_list, help=FORMATS_HELP)
@click.option("--source", "source_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("out/cards"), show_default=True)
@click.option("--token", envvar="HF_TOKEN")
def card(model, formats, source_dir, out_dir, token):
    """Render the model cards of MODEL without publishing."""
    from .card import render_cards
    from .plot import PLOT_FILE, render_variant_plot

    _, result = _run(model, formats, source_dir, True, True, token)
    plot = render_variant_plot(result, out_dir / f"{result.spec.id}.{PLOT_FILE}")
    for repo_card in render_cards(result, plot=plot is not None):
        path = out_dir / repo_card.repo_id / "README.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(repo_card.text)
        if plot:
            shutil.copyfile(plot, path.parent / PLOT_FILE)
        console.print(f"card for {repo_card.repo_id}: {path}")


@cli.group(cls=HubforgeGroup)
def specs():
    """List and validate model specs."""


@specs.command("list")
def specs_list():
    """Show every spec in model_specs/."""
    from .spec import available_specs, load_spec

    table = Table(title="model specs")
    for column in ("id", "upstream", "task", "pooling", "formats"):
        table.add_column(column)
    for name in available_specs():
        spec = load_spec(name)
        table.add_row(spec.id, f"{spec.source.repo}@{spec.source.revision}", spec.task, spec.pooling,
                      ",".join(spec.formats))
    out.print(table)


@specs.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def specs_validate(paths):
    """Validate specs (all of model_specs/ by default); exits non-zero on the first invalid one."""
    from .spec import SPECS_DIR, load_spec

    for path in paths or sorted(SPECS_DIR.glob("*.yaml")):
        spec = load_spec(str(path))
        out.print(f"[green]ok[/] {path} ({spec.id}, hash {spec.digest()})")


@cli.group(cls=HubforgeGroup)
def devhub():
    """The local Hub-compatible server."""


@devhub.command("serve")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".hubforge/devhub"), show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--tokens", envvar="DEVHUB_TOKENS", required=True,
              help="TOKEN=USER:read|write entries, comma-separated (or $DEVHUB_TOKENS).")
def devhub_serve(data_dir, host, port, tokens):
    """Serve a persistent local Hub on HOST:PORT."""
    from .devhub.seed import parse_tokens
    from .devhub.server import serve

    console.print(f"devhub on http://{host}:{port}, data in {data_dir}")
    serve(data_dir, parse_tokens(tokens), host, port)


@devhub.command("seed")
@click.argument("repo_id")
@click.argument("folder", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--token", envvar="HF_TOKEN", required=True)
def devhub_seed(repo_id, folder, token):
    """Commit FOLDER (default: the bundled all-MiniLM-L6-v2) to REPO_ID on $HF_ENDPOINT, as an upstream model."""
    from .devhub.seed import bundled_minilm, seed_folder
    from .hub import make_api

    sha = seed_folder(make_api(token), repo_id, folder or bundled_minilm())
    console.print(f"seeded {repo_id} at {sha}")


@cli.command()
@click.option("--formats", callback=_format_list, default="onnx,fp16,int8,qnn,amd,ov,ov-int8,mnn",
              show_default=True)
@click.option("--no-speed", is_flag=True)
def demo(formats, no_speed):
    """Start a local Hub, seed it with the bundled all-MiniLM-L6-v2, and publish it to every format."""
    import subprocess

    from .devhub.seed import MINILM_REPO
    from .devhub.server import free_port, wait_until_up

    token = "hf_demo_write"
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="hubforge-devhub-")
    # HF_HOME too: snapshots from the local Hub must not land in the user's real Hub cache under real repo names
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": token, "HF_HOME": f"{data_dir}/hf-home",
           "DEVHUB_TOKENS": f"{token}=hubforge:write", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    hubforge = [sys.executable, "-m", "hubforge"]
    server = subprocess.Popen([*hubforge, "devhub", "serve", "--port", str(port), "--data-dir", data_dir], env=env)
    try:
        wait_until_up(env["HF_ENDPOINT"])
        subprocess.run([*hubforge, "devhub", "seed", MINILM_REPO], env=env, check=True)
        code = subprocess.run([*hubforge, "publish", "all-minilm-l6-v2", "--formats", ",".join(formats)]
                              + (["--no-speed"] if no_speed else []), env=env).returncode
    finally:
        server.terminate()
        server.wait(timeout=10)
    sys.exit(code)


def main() -> None:
    cli(prog_name="hubforge")
