"""Typed errors: every failure a user can meet says what went wrong and how to fix it; and the CLI's exit statuses
(2, a bad command line, is click's; verify's own are in verify.py)."""

EXIT_OK = 0
EXIT_ERROR = 1  # a typed error before anything was published: bad spec, missing model, bad token, Hub refusal
EXIT_NOT_ALL_PUBLISHED = 3  # the run finished, but at least one requested format was not published


class HubforgeError(Exception):
    """Base error; `hint` tells the user what to do about it."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message

    def __reduce__(self):
        """Pickled with its hint, so an error raised in a worker process reaches the CLI whole."""
        return type(self), (self.message, self.hint)


def log_failure(what: str) -> None:
    """The traceback being handled, whole, on stderr: a worker's stderr is the run's log, where a failed attempt
    that results.json records as one line (`failure`) can be read in full."""
    import sys
    import traceback

    print(f"--- {what} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)


def failure(exc: BaseException) -> str:
    """'ExceptionType: first line of its message', as results.json and the card show a failed attempt."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class SpecError(HubforgeError):
    """A model spec is missing or invalid."""


class FormatError(HubforgeError):
    """An unknown or unsupported target format was requested."""


class SourceError(HubforgeError):
    """The upstream model cannot be resolved or downloaded."""


class ConversionError(HubforgeError):
    """A target format could not be produced."""


class EvaluationError(HubforgeError):
    """An evaluation could not run (e.g. its data set is unavailable offline)."""


class CardError(HubforgeError):
    """The model card cannot be rendered honestly (e.g. no upstream license)."""


class HubError(HubforgeError):
    """The Hub refused or failed a request."""


class AuthError(HubError):
    """The Hub token is missing, invalid or lacks the needed role."""
