"""Worker processes for the heavy steps of a run: the fp32 reference, the export, each format's build-measure-evaluate,
each speed-and-memory measurement.

Every step runs in a process of its own, forked from a server that imported the runtimes once (multiprocessing's
forkserver with `hubforge.preload`: a fork costs milliseconds where importing torch, ONNX Runtime and OpenVINO costs
seconds). What a converter leaks or keeps (ONNX Runtime's transformer optimizer, the quantizers' model copies, NNCF's
statistics, allocator caches) goes back to the system when its step ends, and the step's peak resident memory is its
own. Steps small enough to fit in memory side by side run in parallel lanes.

A run is a graph of steps (`run_graph`): each step names the steps it comes after, and runs once they have ended.
Decisions on results (a gate) are in-process steps of the same graph, and may add steps to it: a retention miss
adds the build of the next candidate.

A step function takes its arguments plus `report` (progress lines reach the caller's status display) and returns a
picklable value. An exception comes back as the step's `error` (HubforgeErrors keep their type and hint); a worker
that dies (a native crash, the kernel's out-of-memory killer) is a `WorkerCrash`.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any, Protocol, runtime_checkable

from .errors import HubforgeError

PRELOAD = "hubforge.preload"
LOG_ENV = "HUBFORGE_LOG"  # the run's log file, set by the CLI; workers write their output there


class Report(Protocol):
    """Progress of a run: every message updates the live status; a `decision` (a stage begun, a gate's verdict, a
    failure) is also printed as a line of its own."""

    def __call__(self, message: str, *, decision: bool = False) -> None: ...


def silent(message: str, *, decision: bool = False) -> None:
    """A Report that shows nothing."""


class WorkerCrash(HubforgeError):
    """A worker process ended without returning its step's result."""


@dataclass(frozen=True, eq=False)
class Step:
    """A node of a run's step graph, compared by identity. A worker step runs `function(*args, **kwargs,
    report=...)` in a process of its own. An in-process step is a decision on results already in (a gate): the
    scheduler calls `function(*the results of its after steps, *args, **kwargs)` itself, and it returns the steps
    it adds to the graph."""

    kind: str  # "build", "evaluate", "speed" or "gate": the steps table's column
    subject: str  # what it works on (a format and its round, fp32, ...): the steps table's row
    function: Callable[..., Any]
    args: tuple = ()
    threads: int | None = None  # runtime threads inside the step; None: every core
    label: str = ""  # its name where that is not "<kind> <subject>" (prepare, reference, export, ...)
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    after: tuple[Step, ...] = ()  # the steps it waits for: it is ready once every one of them has ended
    in_process: bool = False

    @property
    def name(self) -> str:
        return self.label or f"{self.kind} {self.subject}"


@dataclass(frozen=True)
class StepResult:
    step: Step
    value: Any
    error: BaseException | None
    seconds: float
    peak_rss_mb: float  # the worker's own peak resident memory (VmHWM), pages shared with the server included

    @property
    def name(self) -> str:
        return self.step.name

    def record(self) -> dict:
        """The step's line in results.json's `stages`."""
        return {"stage": self.name, "kind": self.step.kind, "subject": self.step.subject,
                "seconds": round(self.seconds, 2), "peak_rss_mb": round(self.peak_rss_mb, 1), "process": "worker"}


@dataclass(frozen=True)
class StepEvent:
    """A worker step started (no result yet) or ended (with its result)."""

    step: Step
    result: StepResult | None = None


@runtime_checkable
class WatchesSteps(Protocol):
    """A Report that also follows the worker steps as they start and end (the CLI's live view of what runs)."""

    def step_event(self, event: StepEvent) -> None: ...


def _tell(report: Report, event: StepEvent) -> None:
    if isinstance(report, WatchesSteps):
        report.step_event(event)


@cache
def _context():
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([PRELOAD])  # not "__main__": a user's script is never re-imported by the server
    return context


def start_server() -> None:
    """Start the server now: it imports the runtimes while the caller goes on (the first step waits for it)."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


def _to_log(path: str, name: str) -> None:
    """The worker's stdout and stderr, Python's and native libraries' alike (ONNX Runtime's calibration, NNCF,
    MNN), append to the run's log instead of the console."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    log = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    print(f"=== {name} (pid {os.getpid()})", flush=True)


def _child(connection, step: Step, *, quiet: bool, log_path: str | None) -> None:
    """A worker: `step` arrives without its `after` (a decision step's bound method would drag its owner along)."""
    from .process_memory import peak_mb
    from .quiet import quiet_libraries
    from .runtimes import use_threads

    if log_path:  # the libraries' warnings and log lines go to the log whole
        _to_log(log_path, step.name)
    elif quiet:
        quiet_libraries()
    use_threads(step.threads)

    def report(message: str, *, decision: bool = False) -> None:
        connection.send(("report", message, decision))

    try:
        value, error = step.function(*step.args, **step.kwargs, report=report), None
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent as data
        value, error = None, _portable(exc)
        traceback.print_exc()  # into the run's log, whole
        sys.stderr.flush()
    connection.send(("done", value, error, peak_mb()))
    connection.close()


def _portable(exc: BaseException) -> BaseException:
    """The exception itself where it pickles (HubforgeErrors do), else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        lines = str(exc).strip().splitlines()
        return RuntimeError(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)


def _crash(step: Step, exitcode: int | None) -> WorkerCrash:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        killed = " (SIGKILL: most often the kernel's out-of-memory killer)" if exitcode == -signal.SIGKILL else ""
        return WorkerCrash(f"the worker for {step.name} died of {name}{killed}",
                           "run with fewer formats at once, or on a machine with more memory")
    return WorkerCrash(f"the worker for {step.name} exited with status {exitcode} without a result")


class _Schedule:
    """The steps of a graph not yet run, and the results of those that ended."""

    def __init__(self, steps: list[Step]):
        self.waiting, self.ended = list(steps), {}

    def next_ready(self, *, in_process: bool) -> Step | None:
        """The first waiting step of that sort whose after steps have all ended (taken off the waiting list)."""
        for step in self.waiting:
            if step.in_process == in_process and all(before in self.ended for before in step.after):
                self.waiting.remove(step)
                return step
        return None

    def decide(self) -> None:
        """Run every ready in-process step; the steps each adds go to the front of the waiting list."""
        while step := self.next_ready(in_process=True):
            added = step.function(*(self.ended[before] for before in step.after), *step.args, **step.kwargs)
            self.ended[step] = StepResult(step, added, None, 0.0, 0.0)
            self.waiting[0:0] = added


def run_graph(steps: list[Step], report: Report, lanes: int = 1) -> list[StepResult]:
    """Run a step graph: every step once the steps it comes after have ended, worker steps at most `lanes` at a time
    in the order they wait (a decision's new steps first), in-process steps as soon as they are ready. Returns the
    worker steps' results in the order they started."""
    from multiprocessing.connection import wait

    from .quiet import is_quiet

    context, quiet, log_path = _context(), is_quiet(), os.environ.get(LOG_ENV)
    schedule, running, started = _Schedule(steps), {}, []
    try:
        while True:
            schedule.decide()
            while len(running) < lanes and (step := schedule.next_ready(in_process=False)):
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_child, args=(sender, replace(step, after=())),
                                          kwargs={"quiet": quiet, "log_path": log_path}, name=f"hubforge {step.name}")
                process.start()
                sender.close()
                running[receiver] = (step, process, time.perf_counter())
                started.append(step)
                _tell(report, StepEvent(step))
            if not running:
                break
            for receiver in wait(list(running)):
                step, process, start = running[receiver]
                result = _receive(receiver, step, process, start=start, report=report)
                if result is not None:
                    del running[receiver]
                    schedule.ended[result.step] = result
                    _tell(report, StepEvent(step, result))
    finally:
        for _, process, _ in running.values():
            process.kill()
            process.join()
    if schedule.waiting:
        raise RuntimeError(f"steps wait for steps not in the graph: {[step.name for step in schedule.waiting]}")
    return [schedule.ended[step] for step in started]


def _receive(receiver, step: Step, process, *, start: float, report: Report) -> StepResult | None:
    """A worker's next message: a progress line (reported; None), or its step's result."""
    try:
        kind, *payload = receiver.recv()
    except EOFError:
        process.join()
        return StepResult(step, None, _crash(step, process.exitcode), time.perf_counter() - start, 0.0)
    if kind == "report":
        report(payload[0], decision=payload[1])
        return None
    value, error, peak = payload
    process.join()
    return StepResult(step, value, error, time.perf_counter() - start, peak)


def run_step(step: Step, report: Report) -> StepResult:
    return run_graph([step], report)[0]


def cores() -> int:
    return len(os.sched_getaffinity(0))
