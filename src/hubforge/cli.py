"""The `hubforge` command line: publish, evaluate, verify, card, specs, devhub, demo."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import EXIT_ERROR, EXIT_NOT_ALL_PUBLISHED, EXIT_OK, HubforgeError
from .quiet import quiet_libraries

if TYPE_CHECKING:
    from .workers import StepEvent

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


def _resolve(model: str, formats: list[str] | None, source_dir: Path | None = None, *, token: str | None = None):
    """MODEL (spec id, spec file, model directory or Hub repo id) as a spec, the formats to build, the local folder."""
    from .derive import resolve_model
    from .targets import check_spec_formats

    resolved = resolve_model(model, source_dir, token)
    check_spec_formats(resolved.spec, model)
    return resolved.spec, formats or list(resolved.spec.formats), resolved.source_dir


@contextlib.contextmanager
def _mirrored(log: Path, verbose: bool):
    """With -v, the log's lines on the console as the workers write them (a thread follows the file)."""
    import threading

    if not verbose:
        yield
        return
    done = threading.Event()

    def follow() -> None:
        position = 0
        while True:
            finished = done.wait(0.2)
            if log.exists():
                with log.open("rb") as fh:
                    fh.seek(position)
                    data = fh.read()
                end = len(data) if finished else data.rfind(b"\n") + 1  # whole lines while workers write
                position += end
                for line in data[:end].decode(errors="replace").splitlines():
                    console.print(line, markup=False, highlight=False, style="dim")
            if finished:
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class LiveStatus:
    """The CLI's Report. The live line names each worker step running and how long it has run, then the latest
    progress message (rich re-renders it several times a second); a decision is also printed as a line of its own."""

    def __init__(self, subject: str):
        self.subject, self.message, self.running = subject, "starting", {}

    def __call__(self, message: str, *, decision: bool = False) -> None:
        self.message = message
        if decision:
            console.print(message, highlight=False)

    def step_event(self, event: StepEvent) -> None:
        if event.result is None:
            self.running[event.step] = time.monotonic()
        else:
            self.running.pop(event.step, None)

    def __rich__(self) -> str:
        now = time.monotonic()
        steps = "".join(f"{escape(step.name)} [dim]{now - began:.0f} s[/] · " for step, began in self.running.items())
        return f"[bold]{escape(self.subject)}[/]: {steps}{escape(self.message)}"


@contextlib.contextmanager
def _progress(spec_id: str, log: Path):
    """A live status line for long work; decisions (gate results, failures) are printed as they happen. What the
    libraries print, and the traceback of every failed step, go to the `log` file."""
    from unittest import mock

    from .workers import LOG_ENV

    quiet_libraries()
    log.unlink(missing_ok=True)  # each run's own; the first worker creates it
    console.print(f"log: {log}", highlight=False)
    verbose = (click.get_current_context().find_root().obj or {}).get("verbose", False)
    live = LiveStatus(spec_id)
    with console.status(live), _mirrored(log, verbose), \
            mock.patch.dict(os.environ, {LOG_ENV: str(log)}):  # the variable is gone again after the run
        try:
            yield live
        except HubforgeError as exc:  # the one-line error points at the whole story
            if log.exists():
                exc.hint = f"{exc.hint}; the run's log: {log}" if exc.hint else f"the run's log: {log}"
            raise


def results_table(result) -> Table:
    tasks = [t.task for t in result.reference.tasks]
    table = Table(title=f"{result.spec.id} @ {result.source.sha[:12]} — {result.hardware.cpu}")
    for column in ["variant", "gate", "fidelity", *tasks, "retention", "p50 ms", "p90 ms", "seq/s", "load s", "mem MB",
                   "size MB"]:
        table.add_column(column, justify="left" if column in ("variant", "gate", "fidelity") else "right")
    for v in [result.reference, *result.variants]:
        speed = v.speed
        table.add_row(
            v.name,
            "[green]pass[/]" if v.passed and v.fidelity else ("[red]" + v.gate + "[/]" if not v.passed else "—"),
            v.fidelity.summary() if v.fidelity else "—",
            *[f"{v.quality[k]:.4f}" if k in v.quality else "—" for k in tasks],
            f"{min(v.retention.values()):.3f}" if v.retention else ("1.000" if v is result.reference else "—"),
            f"{speed.p50_ms:.2f}" if speed else "—",
            f"{speed.p90_ms:.2f}" if speed else "—",
            f"{speed.sequences_per_s:.1f}" if speed else "—",
            f"{v.memory.load_s:.2f}" if v.memory else "—",
            f"{v.memory.peak_mb:.0f}" if v.memory else "—",
            f"{v.size_bytes / 1e6:.1f}",
        )
    if result.skipped:
        table.caption = "not measured: " + "; ".join(map(str, result.skipped))
    return table


class HubforgeFailure(click.ClickException):
    """A HubforgeError shown as `error: ...` plus its hint, with the error's exit code (1 unless it names one)."""

    def __init__(self, error: HubforgeError):
        super().__init__(error.message)
        self.error = error
        self.exit_code = error.exit_code

    def show(self, file=None) -> None:
        console.print(f"[red]error:[/] {escape(self.error.message)}", highlight=False)
        if self.error.hint:  # hints name extras in brackets (hubforge[devhub]): not markup
            console.print(f"  [bold]hint:[/] {escape(self.error.hint)}", highlight=False)


class HubforgeGroup(click.Group):
    def invoke(self, ctx):
        import httpx

        from .errors import HubError
        from .hub import hub_endpoint

        try:
            return super().invoke(ctx)
        except HubforgeError as exc:
            raise HubforgeFailure(exc) from exc
        except httpx.TransportError as exc:  # a Hub call no step wrapped: still one line
            raise HubforgeFailure(HubError(f"cannot reach the Hub at {hub_endpoint()}: {exc}",
                                           "check HF_ENDPOINT and the network, then re-run")) from exc


@click.group(cls=HubforgeGroup)
@click.version_option(__version__, prog_name="hubforge")
@click.option("-v", "--verbose", is_flag=True,
              help="Mirror the run's log on the console: what converters and runtimes print, and every traceback.")
@click.pass_context
def cli(ctx, verbose):
    """Turn Hugging Face encoder models into verified deployment artifacts on the Hub."""
    ctx.obj = {"verbose": verbose}


class FormatsOption(click.Option):
    """--formats, whose help lists the registered formats when it is shown (not when the CLI is imported)."""

    def get_help_record(self, ctx):
        from .targets import registry

        listing = "; ".join(f"{name}: {target.hardware}" for name, target in registry().items())
        self.help = f"Comma-separated formats; default: the spec's formats. Formats — {listing}."
        return super().get_help_record(ctx)


def _all_formats() -> str:
    from .targets import format_names

    return ",".join(format_names())


formats_option = click.option("--formats", cls=FormatsOption, callback=_format_list)
EXIT_CODES_HELP = """\b
Exit status:
  0  every requested format was published (or written, with --dry-run)
  1  error before publishing: bad spec, unknown format, missing model, bad token, Hub error
  2  bad command line
  3  the run finished, but some format was not published (missed its gate or failed);
     the others were published, and results.json and the cards list the reasons"""


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("model")
@formats_option
@click.option("--source", "source_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Publish a local model directory instead of the upstream repo.")
@click.option("--dry-run", is_flag=True, help="Write the repo folders locally and push nothing.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("out"), show_default=True,
              help="Where --dry-run writes the repos; results.json and mteb's result files go here too.")
@click.option("--token", envvar="HF_TOKEN", help="Hub token with the write role (default: $HF_TOKEN).")
@click.option("--create-pr", is_flag=True, help="Open a pull request instead of committing to main.")
@click.option("--no-quality", is_flag=True, help="Skip task-quality evaluation (fidelity is always measured).")
@click.option("--no-speed", is_flag=True, help="Skip latency and throughput measurement.")
@click.option("--no-consumers", is_flag=True,
              help="Skip loading each file in the clients its card names (the card then says so).")
@click.option("--if-changed", is_flag=True,
              help="Only publish when upstream, the spec or hubforge changed since the last publish.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON on stdout instead of a table.")
def publish(model, formats, source_dir, *, dry_run, out_dir, token, create_pr, no_quality, no_speed, no_consumers,
            if_changed, as_json):
    """Convert MODEL to every format, gate, card and push to the Hub.

    MODEL is a spec id (`hubforge specs list`), a spec file, a local model directory or a Hub repo id; a directory or
    repo without a spec is converted with the spec its own files imply (`hubforge specs new MODEL` shows it)."""
    from .pipeline import EvalOptions
    from .pipeline import publish as run_publish

    spec, formats, source_dir = _resolve(model, formats, source_dir, token=token)
    log = out_dir / f"{spec.id}.log"
    with _progress(spec.id, log) as report:
        options = EvalOptions(quality=not no_quality, speed=not no_speed, consumers=not no_consumers)
        outcome = run_publish(spec, formats, source_dir, dry_run=dry_run, out_dir=out_dir, token=token,
                              create_pr=create_pr, options=options, if_changed=if_changed, report=report)
    if outcome.result is None:
        console.print(f"{spec.id}: every repo is up to date; nothing to publish")
        return
    console.print(f"results written to {outcome.results_path}")
    for folder in outcome.written:
        console.print(f"dry run: wrote {folder}")
    for pushed in outcome.pushed:
        state = "pull request " + pushed.pr_url if pushed.pr_url else ("committed" if pushed.changed else "unchanged")
        console.print(f"published {pushed.url} ({state})")
    _show(outcome.result, as_json)
    for variant in outcome.result.not_published:
        where = f" (traceback in {log})" if any(a.error for a in variant.attempts) else ""
        console.print(f"[yellow]not published: {variant.name}: {escape(variant.gate)}{where}[/]", highlight=False)
    sys.exit(outcome.exit_code)


def stages_table(result) -> Table:
    """Wall time and peak resident memory of every worker step, a row per format: where the time and memory went."""
    kinds = ("build", "evaluate", "speed")
    rows: dict[str, dict] = {}
    for step in result.stages:
        rows.setdefault(step["subject"], {})[step["kind"]] = step
    table = Table(title="steps (each in its own worker process): seconds / peak resident memory MB")
    table.add_column("step")
    for kind in kinds:
        table.add_column(kind, justify="right")
    for name, steps in rows.items():
        table.add_row(name, *(f"{steps[k]['seconds']:.1f} s / {steps[k]['peak_rss_mb']:.0f}" if k in steps else "—"
                              for k in kinds))
    peak = max(result.stages, key=lambda step: step["peak_rss_mb"])
    table.caption = (f"{sum(step['seconds'] for step in result.stages):.0f} s of steps; largest peak "
                     f"{peak['peak_rss_mb']:.0f} MB ({peak['stage']})")
    return table


def _show(result, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
        return
    out.print(results_table(result))
    if result.stages:
        out.print(stages_table(result))


def _measure_only(model, formats, source_dir, *, token, options, out_dir: Path):
    from .hub import make_api
    from .pipeline import run
    from .source import fetch_source, local_source

    spec, formats, source_dir = _resolve(model, formats, source_dir, token=token)
    with _progress(spec.id, out_dir / f"{spec.id}.log") as report:
        source = local_source(spec, source_dir) if source_dir else fetch_source(spec, make_api(token))
        return run(spec, source, formats, options=options, report=report)


@cli.command(epilog=EXIT_CODES_HELP.replace("published (or written, with --dry-run)", "measured and passed")
             .replace("was not published", "missed its gate or failed"))
@click.argument("model")
@formats_option
@click.option("--source", "source_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--results", "results_path", type=click.Path(path_type=Path), default=Path("results.json"),
              show_default=True)
@click.option("--token", envvar="HF_TOKEN")
@click.option("--no-speed", is_flag=True, help="Skip latency and throughput measurement.")
@click.option("--no-consumers", is_flag=True, help="Skip loading each file in the clients its card names.")
@click.option("--json", "as_json", is_flag=True)
def evaluate(model, formats, source_dir, *, results_path, token, no_speed, no_consumers, as_json):
    """Build and measure every artifact of MODEL against the fp32 reference; publish nothing."""
    from .pipeline import EvalOptions

    options = EvalOptions(speed=not no_speed, consumers=not no_consumers)
    result = _measure_only(model, formats, source_dir, token=token, options=options, out_dir=results_path.parent)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(result.as_dict(), indent=2))
    console.print(f"results written to {results_path}")
    _show(result, as_json)
    sys.exit(EXIT_NOT_ALL_PUBLISHED if result.not_published else EXIT_OK)


VERIFY_EXIT_CODES_HELP = """\b
Exit status:
  0  every file matches hubforge.json, and the local fidelity and task scores agree with the card within its
     gate (fidelity within 1 - the gate's threshold, task scores within 1 - min_retention of the card's)
  1  error: repo or upstream not found, bad token, a variant that does not run here, Hub error
  2  bad command line
  3  the local fidelity or a task score does not agree with the card within its gate
  4  a file differs from hubforge.json, is missing, or was added after publishing (tampered)"""


def verify_table(verification) -> Table:
    hardware = verification.card_hardware
    table = Table(title=f"{verification.repo_id} @ {verification.commit[:12]} — card: {hardware.get('cpu', '?')}; "
                        f"local: {verification.hardware.cpu}")
    for column in ("variant", "metric", "card", "local", "Δ", "tolerance", ""):
        table.add_column(column, justify="left" if column in ("variant", "metric", "") else "right")

    def show(x):
        return "—" if x is None else f"{x:.4f}"

    for c in verification.checks:
        verdict = "" if c.tolerance is None else ("[green]agrees[/]" if c.agrees else "[red]differs[/]")
        table.add_row(c.variant, c.metric, show(c.card), show(c.local), "—" if c.diff is None else f"{c.diff:+.4f}",
                      "—" if c.tolerance is None else f"±{c.tolerance:.4f}", verdict)
    for row in verification.rows:
        table.add_row(row.name, "provider", "", row.provider, "", "", row.runtime + " " + row.runtime_version)
    if verification.skipped:
        table.caption = "not measured: " + "; ".join(map(str, verification.skipped))
    return table


@cli.command(epilog=VERIFY_EXIT_CODES_HELP)
@click.argument("repo_id")
@click.option("--revision", help="Branch, tag or commit to verify (default: main).")
@click.option("--formats", callback=_format_list, help="Comma-separated variants of the repo (default: all).")
@click.option("--token", envvar="HF_TOKEN", help="Hub token (default: $HF_TOKEN); --contribute needs one.")
@click.option("--no-quality", is_flag=True, help="Skip the task evaluation (fidelity is always measured).")
@click.option("--no-speed", is_flag=True, help="Skip latency, throughput and memory.")
@click.option("--contribute", is_flag=True,
              help="Open a pull request adding this machine's measurements to the repo's measurements/.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON on stdout.")
def verify(repo_id, revision, formats, *, token, no_quality, no_speed, contribute, as_json):
    """Re-measure the published REPO_ID on this machine and compare it with its card."""
    from .hub import make_api
    from .pipeline import EvalOptions
    from .verify import contribute as open_pr
    from .verify import verify as run_verify

    api = make_api(token)
    log = Path(tempfile.gettempdir()) / f"hubforge-verify-{repo_id.replace('/', '--')}.log"
    with _progress(repo_id, log) as report:
        verification = run_verify(api, repo_id, revision, formats=formats,
                                  options=EvalOptions(quality=not no_quality, speed=not no_speed), report=report)
    if as_json:
        out.print_json(json.dumps(verification.as_dict()))
    else:
        out.print(verify_table(verification))
    if contribute:
        console.print(f"measurements offered as pull request {open_pr(api, verification)}")
    verdict = "agrees with" if verification.agrees else "[red]does not agree with[/]"
    console.print(f"{repo_id} @ {verification.commit[:12]} {verdict} its card on this machine")
    sys.exit(verification.exit_code)


@cli.command("check-updates")
@click.argument("models", nargs=-1)
@click.option("--token", envvar="HF_TOKEN")
@click.option("--json", "as_json", is_flag=True)
def check_updates(models, token, as_json):
    """List published repos that are stale (every spec by default; a MODEL as `publish` takes it); exits 1 if an
    upstream can't be read."""
    from .derive import resolve_model
    from .hub import make_api
    from .spec import available_specs
    from .updates import check_spec

    api = make_api(token)
    statuses, failures = [], []
    for name in models or available_specs():
        spec = resolve_model(name, token=token).spec
        try:
            statuses.extend((spec.id, s) for s in check_spec(api, spec, list(spec.formats)))
        except HubforgeError as exc:
            failures.append((spec.id, exc))
    for model_id, exc in failures:
        console.print(f"[red]{model_id}:[/] {exc.message}", highlight=False)
        if exc.hint:
            console.print(f"  [bold]hint:[/] {exc.hint}", highlight=False)
    if as_json:
        out.print_json(json.dumps([{"model": m, **s.as_dict()} for m, s in statuses]))
        sys.exit(EXIT_ERROR if failures else EXIT_OK)
    table = Table(title="published repos vs upstream")
    for column in ("model", "repo", "upstream head", "published from", "status"):
        table.add_column(column)
    for model_id, s in statuses:
        table.add_row(model_id, s.repo_id, s.upstream_head[:12], (s.published_upstream or "—")[:12],
                      f"[yellow]stale: {s.reason}[/]" if s.stale else "[green]up to date[/]")
    out.print(table)
    sys.exit(EXIT_ERROR if failures else EXIT_OK)


@cli.command()
@click.argument("model")
@formats_option
@click.option("--source", "source_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("out/cards"), show_default=True)
@click.option("--token", envvar="HF_TOKEN")
@click.option("--no-speed", is_flag=True, help="Skip latency and throughput measurement (the card says so).")
@click.option("--no-consumers", is_flag=True, help="Skip loading each file in its clients (the card says so).")
def card(model, formats, source_dir, *, out_dir, token, no_speed, no_consumers):
    """Render the model cards of MODEL without publishing."""
    from .card import render_cards
    from .pipeline import EvalOptions
    from .plot import PLOT_FILE, render_variant_plot

    options = EvalOptions(speed=not no_speed, consumers=not no_consumers)
    result = _measure_only(model, formats, source_dir, token=token, options=options, out_dir=out_dir)
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
    """Show every spec: ./model_specs, $HUBFORGE_SPECS_DIR, then the bundled ones (first of an id wins)."""
    from .spec import available_specs, load_spec

    table = Table(title="model specs")
    for column in ("id", "upstream", "task", "pooling", "formats", "from"):
        table.add_column(column)
    for found in available_specs().values():
        spec = load_spec(str(found.path))
        table.add_row(spec.id, f"{spec.source.repo}@{spec.source.revision}", spec.task, spec.pooling,
                      ",".join(spec.formats), found.origin)
    out.print(table)


@specs.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def specs_validate(paths):
    """Validate specs (every spec `specs list` shows by default); exits non-zero on the first invalid one."""
    from .spec import available_specs, load_spec
    from .targets import check_spec_formats

    for path in paths or [found.path for found in available_specs().values()]:
        spec = load_spec(str(path))
        check_spec_formats(spec, str(path))
        out.print(f"[green]ok[/] {path} ({spec.id}, hash {spec.digest()})")


@specs.command("new")
@click.argument("model")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the spec here (default: standard output).")
@click.option("--token", envvar="HF_TOKEN", help="Hub token for a private or gated repo (default: $HF_TOKEN).")
def specs_new(model, output, token):
    """Write the spec hubforge derives from MODEL's own files (a Hub repo id or a local model directory)."""
    from .derive import resolve_model, spec_yaml

    resolved = resolve_model(model, token=token)
    text = spec_yaml(resolved.spec, model, local=resolved.source_dir is not None)
    if output is None:
        click.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    source = f" --source {model}" if resolved.source_dir else ""
    console.print(f"wrote {output} ({resolved.spec.id}); `hubforge publish {output}{source}` uses it")


@cli.group(cls=HubforgeGroup)
def devhub():
    """The local Hub-compatible server."""


@devhub.command("serve")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".hubforge/devhub"), show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--tokens-file", envvar="DEVHUB_TOKENS_FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File of TOKEN=USER:ROLE[:ORG+ORG] lines, ROLE read|write|admin (default: $DEVHUB_TOKENS, "
                   "same entries comma-separated). Never on the command line: other users see it.")
def devhub_serve(data_dir, host, port, *, tokens_file):
    """Serve a persistent local Hub on HOST:PORT."""
    from .devhub.auth import TokenConfigError, load_tokens

    serve = _devhub_server().serve

    try:
        tokens = load_tokens(tokens_file)
    except TokenConfigError as exc:
        raise click.UsageError(str(exc))
    console.print(f"devhub on http://{host}:{port}, data in {data_dir}, {len(tokens)} tokens")
    serve(data_dir, tokens, host, port=port)


def _devhub_server():
    """The local Hub's server module; a one-line error where the `devhub` extra is not installed."""
    try:
        from .devhub import server
    except ModuleNotFoundError as exc:
        if exc.name not in ("fastapi", "starlette", "uvicorn", "multipart", "python_multipart"):
            raise
        raise HubforgeError(f"the local Hub needs {exc.name}, which a plain install of hubforge leaves out",
                            "pip install 'hubforge[devhub]'") from exc
    return server


@devhub.command("seed")
@click.argument("repo_id")
@click.argument("folder", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--token", envvar="HF_TOKEN", help="Hub token with the write role (default: $HF_TOKEN).")
def devhub_seed(repo_id, folder, token):
    """Commit FOLDER (default: the bundled all-MiniLM-L6-v2) to REPO_ID on $HF_ENDPOINT, as an upstream model."""
    from .devhub.seed import bundled_minilm, seed_folder
    from .errors import AuthError
    from .hub import make_api

    if not token:
        raise AuthError("seeding needs a Hub token with the write role", "set HF_TOKEN or pass --token")
    sha = seed_folder(make_api(token), repo_id, folder or bundled_minilm())
    console.print(f"seeded {repo_id} at {sha}")


@cli.command()
@click.option("--formats", callback=_format_list, default=_all_formats, show_default="every format")
@click.option("--no-speed", is_flag=True)
def demo(formats, no_speed):
    """Start a local Hub, seed it with the bundled all-MiniLM-L6-v2, and publish it to every format."""
    import subprocess

    from .devhub.seed import MINILM_REPO

    server_module = _devhub_server()
    free_port, wait_until_up = server_module.free_port, server_module.wait_until_up

    token = "hf_demo_write"
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="hubforge-devhub-")
    # HF_HOME too: snapshots from the local Hub must not land in the user's real Hub cache under real repo names
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_TOKEN": token, "HF_HOME": f"{data_dir}/hf-home",
           "DEVHUB_TOKENS": f"{token}=hubforge:write:{MINILM_REPO.split('/')[0]}", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "HF_HUB_DISABLE_XET": "1"}  # the local Hub speaks LFS; huggingface_hub 1.x prefers Xet when hf_xet is there
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
        shutil.rmtree(data_dir, ignore_errors=True)
    sys.exit(code)


def main() -> None:
    cli(prog_name="hubforge")
